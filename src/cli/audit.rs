use super::Exit;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Args;

use super::{session, CommandResult, Context};
use crate::store::{Access, AuditFilter};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only the writes of this run (the id `apply` prints)
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Only writes on or after this date (YYYY-MM-DD, UTC)
    #[arg(long, value_name = "DATE")]
    pub since: Option<NaiveDate>,
    /// Write the CSV to FILE instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(context: &Context, args: AuditArgs) -> CommandResult {
    let store = session::open_store(context, Access::Read)?;
    let rows = store.audit_rows(&AuditFilter { run_id: args.run, since: args.since })?;
    let mut bytes = Vec::new();
    crate::audit::write_csv(&rows, &mut bytes)?;
    match &args.out {
        Some(path) => {
            super::plan::write_atomically(path, &bytes)?;
            eprintln!("{} audit row(s) written to {}", rows.len(), path.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(Exit::Success)
}
