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
            let mut warnings = checked.warnings.clone();
            warnings.extend(unseen_scopes(context, &checked.scope_terms)?);
            for warning in &warnings {
                eprint!("{warning}");
            }
            println!(
                "checked {} {}, {} {}: ok{}",
                checked.files,
                plural(checked.files, "file", "files"),
                checked.rule_count,
                plural(checked.rule_count, "rule", "rules"),
                match warnings.len() {
                    0 => String::new(),
                    count => format!(", {count} {}", plural(count, "warning", "warnings")),
                }
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

/// Scope terms no imported bill has (likely typos): warnings, not errors, since a rule may
/// well be written before the first bill it matches. None without imported bills.
fn unseen_scopes(
    context: &Context,
    terms: &[(cmat_engine::rules::ScopeTerm, cmat_mapping::Location)],
) -> Result<Vec<cmat_mapping::Diagnostic>, super::CommandError> {
    let path = context.workspace.state_db();
    if terms.is_empty() || !path.exists() {
        return Ok(Vec::new());
    }
    let store = crate::store::Store::open(&path, crate::store::Access::Read)?;
    if store.bill_lines_count()? == 0 {
        return Ok(Vec::new());
    }
    let mut warnings = Vec::new();
    for (term, location) in terms {
        if !store.scope_seen(term)? {
            warnings.push(cmat_mapping::Diagnostic::warning_at(
                cmat_mapping::ErrorKind::UnseenScope { term: term.to_string() },
                location.clone(),
            ));
        }
    }
    Ok(warnings)
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
