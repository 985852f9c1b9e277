//! `cmat check`: parse and check every mapping file, report every error at once.

use super::Exit;

use super::{CommandResult, Context};

pub fn run(context: &Context) -> CommandResult {
    match cmat_mapping::check_workspace(&context.workspace.root) {
        Ok(checked) => {
            // Labels are checked against the tenant's picklists once a pull has read them.
            let picklists = stored_picklists(context)?;
            let resolved = match picklists.is_empty() {
                true => Ok(()),
                false => cmat_engine::picklists::resolve(&checked.rules, &picklists).map(|_| ()),
            };
            if let Err(errors) = resolved {
                for error in &errors {
                    eprintln!("{error}");
                }
                eprintln!(
                    "\n{} {} against the Autotask tenant's picklists (as of the last `cmat pull autotask`)",
                    errors.len(),
                    plural(errors.len(), "error", "errors")
                );
                return Ok(Exit::Problem);
            }
            println!(
                "checked {} {}, {} {}: ok",
                checked.files,
                plural(checked.files, "file", "files"),
                checked.rule_count,
                plural(checked.rule_count, "rule", "rules")
            );
            Ok(Exit::Success)
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            eprintln!(
                "\n{} {} in the mapping files",
                diagnostics.len(),
                plural(diagnostics.len(), "error", "errors")
            );
            Ok(Exit::Problem)
        }
    }
}

/// What the last pull read; none without a state database or a pull (then nothing to check).
fn stored_picklists(
    context: &Context,
) -> Result<cmat_engine::snapshot::Picklists, super::CommandError> {
    let path = context.workspace.state_db();
    if !path.exists() {
        return Ok(Default::default());
    }
    Ok(crate::store::Store::open(&path, crate::store::Access::Read)?.picklists()?)
}

fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 {
        one
    } else {
        many
    }
}
