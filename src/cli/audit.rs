use super::Exit;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Args;

use super::{session, CommandResult, Context};
use crate::audit::ChainBreak;
use crate::store::{Access, AuditFilter};

#[derive(Debug, Args)]
#[command(after_help = "Each row carries the digest of the row before (prev_digest) and its own \
(digest), in the CSV too. `--verify` checks that chain: exit 0 intact, 1 naming the first row \
changed, removed or reordered. `--verify --file audit.csv` checks an exported copy instead.")]
pub struct AuditArgs {
    /// Only the writes of this run (the id `apply` prints)
    #[arg(long, value_name = "ID", conflicts_with = "verify")]
    pub run: Option<String>,
    /// Only writes on or after this date (YYYY-MM-DD, UTC)
    #[arg(long, value_name = "DATE", conflicts_with = "verify")]
    pub since: Option<NaiveDate>,
    /// Write the CSV to FILE instead of standard output
    #[arg(long, value_name = "FILE", conflicts_with = "verify")]
    pub out: Option<PathBuf>,
    /// Check the trail's hash chain instead of exporting it (exit 0 intact, 1 broken)
    #[arg(long)]
    pub verify: bool,
    /// With --verify: check this exported CSV instead of the workspace's trail
    #[arg(long, value_name = "FILE", requires = "verify")]
    pub file: Option<PathBuf>,
}

pub fn run(context: &Context, args: AuditArgs) -> CommandResult {
    if args.verify {
        return match &args.file {
            Some(path) => verify_file(path),
            None => verify_workspace(context),
        };
    }
    let store = session::open_store(context, Access::Read)?;
    let rows = store.audit_chain(&AuditFilter { run_id: args.run, since: args.since })?;
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

fn verify_workspace(context: &Context) -> CommandResult {
    let store = session::open_store(context, Access::Read)?;
    let verdict = store.verify_audit_chain()?;
    let name = store.path().display().to_string();
    Ok(report(&name, verdict.rows, verdict.head.as_deref(), verdict.broken))
}

fn verify_file(path: &std::path::Path) -> CommandResult {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let checked = crate::audit::verify_csv(std::io::BufReader::new(file))
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(match checked {
        Ok(check) => report(&name, check.rows(), check.head(), None),
        Err(broken) => report(&name, 0, None, Some(broken)),
    })
}

/// One line on stdout when intact (with the head digest, worth keeping elsewhere), one on
/// stderr naming the break otherwise.
fn report(name: &str, rows: u64, head: Option<&str>, broken: Option<ChainBreak>) -> Exit {
    match broken {
        None => {
            println!(
                "audit trail intact: {rows} row(s) in {name}, last digest {}",
                head.unwrap_or("(none: the trail is empty)")
            );
            Exit::Success
        }
        Some(broken) => {
            eprintln!("error: the audit trail in {name} is not intact: {broken}");
            Exit::Problem
        }
    }
}
