//! `cmat check`: parse and check every mapping file, report every error at once.

use std::process::ExitCode;

use super::{CommandResult, Context};
use crate::mapping;

pub fn run(context: &Context) -> CommandResult {
    match mapping::check_workspace(&context.workspace.root) {
        Ok(checked) => {
            println!(
                "checked {} {}, {} {}: ok",
                checked.files,
                plural(checked.files, "file", "files"),
                checked.rule_count,
                plural(checked.rule_count, "rule", "rules")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            eprintln!(
                "\n{} {} in the mapping files",
                diagnostics.len(),
                plural(diagnostics.len(), "error", "errors")
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 {
        one
    } else {
        many
    }
}
