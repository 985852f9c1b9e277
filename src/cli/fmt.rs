//! `cmat fmt [--check]`: rewrite mapping files in canonical form.

use super::Exit;

use clap::Args;

use super::{CommandResult, Context};
use cmat_mapping::Diagnostics;

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Write nothing; list the files that are not in canonical form and exit 1 if any
    #[arg(long)]
    pub check: bool,
}

pub fn run(context: &Context, args: FmtArgs) -> CommandResult {
    let root = &context.workspace.root;
    let sources = match cmat_mapping::mapping_sources(root) {
        Ok(sources) => sources,
        Err(diagnostics) => return Ok(report(&diagnostics)),
    };
    // Format everything first: a syntax error anywhere means nothing is written.
    let mut changed = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in &sources {
        match cmat_mapping::format_source(name, text) {
            Ok(formatted) if formatted != *text => changed.push((name, formatted)),
            Ok(_) => {}
            Err(diagnostics) => errors.extend(diagnostics),
        }
    }
    if !errors.is_empty() {
        return Ok(report(&Diagnostics::new(errors)));
    }
    if args.check {
        for (name, _) in &changed {
            println!("{name}");
        }
        if changed.is_empty() {
            return Ok(Exit::Success);
        }
        eprintln!(
            "error: {} of {} mapping files are not formatted; run `cmat fmt`",
            changed.len(),
            sources.len()
        );
        return Ok(Exit::Problem);
    }
    for (name, formatted) in &changed {
        let path = root.join(name.as_str());
        std::fs::write(&path, formatted)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        println!("formatted {name}");
    }
    Ok(Exit::Success)
}

fn report(diagnostics: &Diagnostics) -> Exit {
    eprint!("{diagnostics}");
    Exit::Problem
}
