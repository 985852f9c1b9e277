use super::Exit;
use std::path::PathBuf;

use clap::Args;

use super::{CommandResult, Context};
use crate::import::import_file;
use crate::store::{Access, ImportSummary, Store};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Cloudmore General Billing Report exports (CSV); each file is imported whole or not at all
    #[arg(required = true, value_name = "FILE.csv")]
    pub files: Vec<PathBuf>,
}

pub fn run(context: &Context, args: ImportArgs) -> CommandResult {
    let mut store = Store::open(&context.workspace.state_db(), Access::Write)?;
    for path in &args.files {
        let name = path.display().to_string();
        let summary = import_file(&mut store, path, &name)?;
        print!("{}", render_summary(&name, &summary));
    }
    Ok(Exit::Success)
}

/// `bill.csv: 412 lines, 3 new bills, 1 restated, 0 unchanged`, then one line per restated bill.
pub(super) fn render_summary(name: &str, summary: &ImportSummary) -> String {
    let new = summary.new_bills.len();
    let mut text = format!(
        "{name}: {} {}, {new} new {}, {} restated, {} unchanged\n",
        summary.lines,
        if summary.lines == 1 { "line" } else { "lines" },
        if new == 1 { "bill" } else { "bills" },
        summary.restated_bills.len(),
        summary.unchanged_bills.len(),
    );
    for key in &summary.restated_bills {
        text.push_str(&format!("  restated: {} {}\n", key.organization_name, key.billing_date));
    }
    text
}
