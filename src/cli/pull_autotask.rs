//! `cmat pull autotask`: refreshes the Autotask snapshot in `.cmat/state.db`
//! ([`crate::workflow::pull`]), with a progress bar and a summary.

use super::Exit;
use std::fmt::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::{CommandError, CommandResult, Context};
use crate::autotask::pull::{Focus, PullReport};
use crate::autotask::{AutotaskClient, EntityRead, FullReason, PullProgress};
use crate::store::{Access, Store};
use crate::workflow::pull as workflow;
use cmat_engine::table::Table;

/// What the rules decide about a pull (`demo` and `sync` make one too).
pub use crate::workflow::pull::Reading;

pub fn run(context: &Context, full: bool) -> CommandResult {
    // Take the workspace lock before spending any request.
    let mut store = Store::open(&context.workspace.state_db(), Access::Write)?;
    let client = super::session::connect_autotask(context)?;
    let reading = match cmat_mapping::load_rules(&context.workspace.root) {
        Ok(rules) => Reading::of(&rules),
        Err(_) => Reading::without_rules(),
    };
    // A plain pull reads contract services and unit periods in full (only `sync` knows which
    // subscriptions changed since it last applied them).
    pull_into(context, &mut store, &client, &reading, full, None)?;
    Ok(Exit::Success)
}

/// Refreshes the snapshot ([`workflow::pull_autotask`]) with a progress bar, and prints the
/// summary; shared by pull, sync and demo. The report says what was read (`sync` hands it to
/// apply).
pub fn pull_into(
    context: &Context,
    store: &mut Store,
    client: &AutotaskClient,
    reading: &Reading,
    full: bool,
    focus: Option<Focus>,
) -> Result<PullReport, CommandError> {
    let bar = context.stdout_is_terminal.then(progress_bar);
    let records = std::sync::atomic::AtomicUsize::new(0);
    let progress = |event: PullProgress| {
        let Some(bar) = &bar else { return };
        match event {
            PullProgress::Page { records: n, .. } => {
                let total = records.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n;
                bar.set_message(format!("{total} records"));
            }
            PullProgress::Done { .. } => bar.inc(1),
        }
    };
    let result = workflow::pull_autotask(store, client, reading, full, focus, &progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = result?;
    print!("{}", summary(&report, client));
    warn_incomplete(&report);
    Ok(report)
}

/// A bar of the entities read, the records so far beside it.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(Table::ALL.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} reading Autotask [{bar:20}] {pos}/{len} entities, {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// One warning per record kept out of the snapshot as incomplete.
fn warn_incomplete(report: &PullReport) {
    for record in &report.incomplete {
        eprintln!(
            "warning: Autotask sent {} {} with `{}` null; it is kept out of the snapshot and nothing that depends on it is written{} (`cmat doctor` lists such records)",
            record.entity,
            record.id,
            record.field,
            record.contract_id.map(|id| format!(" (contract {id} is left as it is)")).unwrap_or_default()
        );
    }
}

fn summary(report: &PullReport, client: &AutotaskClient) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Autotask snapshot refreshed in {:.1} s:", report.elapsed.as_secs_f64());
    let width = report.counts.iter().map(|(entity, _)| entity.len()).max().unwrap_or(0);
    for ((entity, count), (_, read)) in report.counts.iter().zip(&report.reads) {
        let _ = write!(out, "  {entity:<width$}  {count:>7}");
        match read {
            EntityRead::Changes { changed, since } => {
                let _ = write!(
                    out,
                    "  ({changed} changed since {} UTC)",
                    since.format("%Y-%m-%d %H:%M")
                );
            }
            EntityRead::Focused { contracts, .. } => {
                let _ = write!(
                    out,
                    "  (read for the {contracts} contract(s) whose bills changed; the rest kept)"
                );
            }
            EntityRead::Full(FullReason::CountDiffers { autotask, snapshot }) => {
                let _ = write!(
                    out,
                    "  (read in full: Autotask holds {autotask}, the changes left {snapshot})"
                );
            }
            EntityRead::Full(FullReason::Refused(_)) => {
                let _ = write!(out, "  (read in full: Autotask refused the change read)");
            }
            EntityRead::Full(_) => {}
        }
        out.push('\n');
    }
    let _ = write!(out, "Requests: {} sent", client.requests_sent());
    if let Some(usage) = client.hourly_usage() {
        let _ = write!(
            out,
            "; the tenant has used {} of its {} requests this hour (cmat stops at {} %)",
            usage.used,
            usage.limit,
            (client.max_hourly_share() * rust_decimal::Decimal::ONE_HUNDRED).normalize()
        );
    }
    out.push('\n');
    out
}
