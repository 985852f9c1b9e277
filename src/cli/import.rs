use super::Exit;
use std::path::PathBuf;

use clap::Args;

use super::{CommandResult, Context};
use crate::import::{import_file_with, ImportOptions};
use crate::store::{Access, ImportSummary, Store};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Cloudmore General Billing Reports, as Cloudmore sends them (.xlsx) or as CSV; each file
    /// is imported whole or not at all
    #[arg(required = true, value_name = "FILE.xlsx|FILE.csv")]
    pub files: Vec<PathBuf>,
}

pub fn run(context: &Context, args: ImportArgs) -> CommandResult {
    let mut store = Store::open(&context.workspace.state_db(), Access::Write)?;
    let options = options(context);
    for path in &args.files {
        let name = path.display().to_string();
        let summary = import_file_with(&mut store, path, &name, &options)?;
        print!("{}", render_summary(&name, &summary));
    }
    Ok(Exit::Success)
}

/// What the workspace's rules require of a report: the column they link companies by. Rules
/// that do not load are `cmat check`'s to report; the import then checks nothing more.
pub(super) fn options(context: &Context) -> ImportOptions {
    let rules = cmat_mapping::load_rules(&context.workspace.root).ok();
    ImportOptions {
        link_column: rules.and_then(|rules| rules.companies.column.map(|column| column.value)),
    }
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
