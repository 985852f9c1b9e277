//! `cmat apply`: arguments, the plan shown, the confirmation, progress and the summary; the
//! steps themselves are [`crate::workflow::apply`].

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::session::{self, Loaded};
use super::{CommandError, CommandResult, Context, Exit};
use crate::autotask::read::ChildrenRead;
use crate::autotask::{ApplyConnection, AutotaskClient};
use crate::store::{Access, Store};
use crate::workflow::apply::{self as workflow, ApplyOptions, ApplyReport, Note, SavedPlan};
use cmat_engine::plan::{Approval, ApprovalStatus, Plan};

#[derive(Debug, Args)]
#[command(
    after_help = "Before writing, cmat re-reads from Autotask (in pages) the records the plan touches. \
A saved plan is refused as stale, with nothing written, when those records, the imported bills or the \
mapping rules changed since it was made; without a plan file cmat plans again from what Autotask holds.\n\n\
With `[apply] require_approval = true` in cmat.toml only a saved plan approved with `cmat approve` is written \
(and with `require_distinct_approver = true`, by someone other than its author); the approver goes into the audit trail.\n\n\
Every write is journaled before it is sent and audited after (`cmat audit`). A write whose outcome is \
unknown (timeout, dropped connection) is never sent again blindly: rerun `cmat apply` and cmat finds it \
by its natural key first.\n\nExit codes: 0 success (or nothing to do), 1 error or a change that did not complete."
)]
pub struct ApplyArgs {
    /// A plan saved by `cmat plan --out FILE`; without it, cmat plans now and shows the plan first
    #[arg(value_name = "PLAN_FILE")]
    pub plan_file: Option<PathBuf>,
    /// Write without asking (required when standard input is not a terminal)
    #[arg(long)]
    pub auto_approve: bool,
}

pub fn run(context: &Context, args: ApplyArgs) -> CommandResult {
    // A malformed plan file is reported before anything else is opened or contacted.
    let saved = args.plan_file.as_deref().map(workflow::read_plan).transpose()?;
    // Under `[apply] require_approval`, an unapproved plan is refused before anything else.
    workflow::check_approval(&context.workspace.config()?.apply, saved.as_ref())?;
    let mut store = session::open_store(context, Access::Write)?;
    let mut loaded = session::load(context, &store)?;
    let client = session::connect_autotask(context)?;
    execute(context, &mut store, &mut loaded, &client, saved, None, args.auto_approve)?;
    Ok(Exit::Success)
}

/// What an apply did, for `sync`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    NothingToDo,
    Written,
}

/// What the workflow has to say, as a person reads it on standard error.
fn say(note: Note) {
    match note {
        Note::Settling { seconds } => eprintln!(
            "note: an earlier run stopped while writing; waiting {seconds} s for its last writes to land before re-reading Autotask"
        ),
        Note::Replanning { differences } => eprintln!(
            "note: Autotask differs from the snapshot in {} record(s) the plan touches (e.g. {}); planning again from what it holds now",
            differences.len(),
            differences.first().map(String::as_str).unwrap_or_default()
        ),
        Note::RefreshFailed(err) => eprintln!(
            "warning: could not re-read what was written ({err}); run `cmat pull autotask` before the next plan"
        ),
    }
}

/// Plans (or reads the plan file), shows the plan, asks, writes, and says what happened: the
/// command-line side of [`workflow`]. Shared by `apply`, `sync` and `demo`. `pulled`: what a
/// pull of this run has just read, which a new plan need not re-read (see
/// [`workflow::prepare`]).
pub fn execute(
    context: &Context,
    store: &mut Store,
    loaded: &mut Loaded,
    client: &AutotaskClient,
    saved: Option<SavedPlan>,
    pulled: Option<&ChildrenRead>,
    auto_approve: bool,
) -> Result<Applied, CommandError> {
    let config = context.workspace.config()?;
    let approval = approval_of(&config, saved.as_ref())?;
    let settle_seconds = config.autotask.settle_seconds.unwrap_or(15);
    workflow::settle_earlier_writes(store, settle_seconds, &mut say)?;
    let connection =
        ApplyConnection::new(client, loaded.rules.settings.subscription_udf.value.clone());
    let plan = workflow::prepare(store, loaded, &connection, saved, pulled, &mut say)?;
    let text = plan.to_text(&loaded.company_names(), context.stdout_is_terminal);
    println!("{text}");
    if !plan.has_changes() {
        return Ok(Applied::NothingToDo);
    }
    workflow::refuse_under_margin_floors(&plan)?;
    warn_if_over_budget(client, plan.changes.len());
    confirm(context, auto_approve, plan.changes.len())?;
    let report = write(context, store, loaded, &connection, &plan, approval)?;
    if report.is_clean() {
        return Ok(Applied::Written);
    }
    Err(incomplete_run(&report, plan.changes.len()).into())
}

/// Records who approved the plan, writes it with a progress bar on a terminal, and prints the
/// run's summary.
fn write(
    context: &Context,
    store: &mut Store,
    loaded: &mut Loaded,
    connection: &ApplyConnection<'_>,
    plan: &Plan,
    approval: Option<(Approval, Option<String>)>,
) -> Result<ApplyReport, CommandError> {
    let started = Instant::now();
    let run_id = workflow::new_run_id();
    record_approval(store, &run_id, approval)?;
    let client = connection.client;
    let requests_before = client.requests_sent();
    let progress = progress_bar(context, plan.changes.len());
    let progress_for_writes = progress.clone();
    let options = ApplyOptions {
        concurrency: 3,
        run_id: run_id.clone(),
        now: chrono::Utc::now,
        on_progress: progress_for_writes
            .map(|bar| Box::new(move |done| bar.set_position(done)) as Box<dyn Fn(u64) + Sync>),
    };
    let mut finished = |note| {
        if let Some(bar) = &progress {
            bar.finish_and_clear();
        }
        say(note)
    };
    let report = workflow::write(store, loaded, connection, plan, &options, &mut finished)?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    print_summary(&run_id, &report, started, client, requests_before);
    Ok(report)
}

/// A progress bar of the writes, on a terminal only.
fn progress_bar(context: &Context, writes: usize) -> Option<indicatif::ProgressBar> {
    context.stdout_is_terminal.then(|| {
        let bar = indicatif::ProgressBar::new(writes as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} writes, {eta} left")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    })
}

/// The run's one-line account: writes by outcome, time, writes in flight, requests and the
/// hour's budget, then where its audit trail is.
fn print_summary(
    run_id: &str,
    report: &ApplyReport,
    started: Instant,
    client: &AutotaskClient,
    requests_before: u64,
) {
    println!(
        "\nApply {}: {} written, {} failed, {} skipped, {} with unknown outcome, in {:.1} s{}; {} Autotask request(s){}.",
        run_id,
        report.written,
        report.failed,
        report.skipped,
        report.unknown,
        started.elapsed().as_secs_f64(),
        client
            .writes_in_flight()
            .map(|writes| format!(
                " (writing {:.1} s, {:.2} writes in flight on average)",
                writes.window.as_secs_f64(),
                writes.average
            ))
            .unwrap_or_default(),
        client.requests_sent() - requests_before,
        client
            .hourly_usage()
            .map(|usage| format!("; the tenant has used {} of {} this hour", usage.used, usage.limit))
            .unwrap_or_default()
    );
    println!("Audit trail: cmat audit --run {run_id}");
}

/// What did not complete, and how to finish it.
fn incomplete_run(report: &ApplyReport, changes: usize) -> String {
    let mut message = format!(
        "{} of {} change(s) did not complete:\n  {}",
        report.failed + report.skipped + report.unknown,
        changes,
        report.failures.join("\n  ")
    );
    if report.budget_exhausted {
        message.push_str("\nhint: the hour's Autotask request budget is spent; run `cmat apply` again after it rolls over: nothing is written twice");
    } else {
        message.push_str("\nhint: run `cmat apply` again: cmat re-reads Autotask first, so nothing is written twice");
    }
    message
}

/// The approval (and the plan's author) a saved plan carries, refused under `[apply]`'s
/// rules when missing or void; a void one is otherwise only a warning.
fn approval_of(
    config: &crate::workspace::Config,
    saved: Option<&SavedPlan>,
) -> Result<Option<(Approval, Option<String>)>, CommandError> {
    let approval = workflow::check_approval(&config.apply, saved)?;
    if let Some(SavedPlan { approval: ApprovalStatus::Void(reason), path, .. }) = saved {
        eprintln!("warning: {}: the plan's approval is void: {reason}", path.display());
    }
    let author = saved.and_then(|saved| saved.plan.created_by.clone());
    Ok(approval.map(|approval| (approval, author)))
}

/// Puts who approved the plan into the run's audit trail, and says so.
fn record_approval(
    store: &mut Store,
    run_id: &str,
    approval: Option<(Approval, Option<String>)>,
) -> Result<(), CommandError> {
    if let Some((approval, author)) = approval {
        workflow::record_approval(store, run_id, &approval, author)?;
        println!("Approved by {} (plan {}).", approval.by, approval.digest);
    }
    Ok(())
}

/// Says up front when the plan needs more requests than cmat may use this hour: it will stop
/// there, and a rerun after the hour rolls over resumes where it stopped.
fn warn_if_over_budget(client: &AutotaskClient, writes: usize) {
    let Some(usage) = client.hourly_usage() else {
        return;
    };
    let allowed = (client.max_hourly_share() * rust_decimal::Decimal::from(usage.limit))
        .trunc()
        .to_string()
        .parse::<u64>()
        .unwrap_or(0);
    let left = allowed.saturating_sub(usage.used);
    if writes as u64 > left {
        eprintln!(
            "note: this plan needs {writes} writes but only about {left} of this hour's Autotask requests are left \
             for cmat ({} of {} used, cmat stops at {allowed}); it will stop there and `cmat apply` resumes after the hour rolls over",
            usage.used, usage.limit
        );
    }
}

fn confirm(context: &Context, auto_approve: bool, changes: usize) -> Result<(), CommandError> {
    if auto_approve {
        return Ok(());
    }
    if !context.stdin_is_terminal {
        return Err("refusing to write to Autotask without confirmation: standard input is not a terminal (hint: review the plan, then pass --auto-approve)".into());
    }
    print!("\nWrite these {changes} change(s) to Autotask? Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err("apply cancelled; nothing was written".into())
    }
}
