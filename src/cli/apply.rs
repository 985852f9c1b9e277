use super::Exit;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::session::{self, Loaded};
use super::{CommandError, CommandResult, Context};
use crate::apply::{apply_plan, scope_differences, ApplyOptions, AutotaskReader, Scope};
use crate::autotask::{ApplyConnection, AutotaskClient};
use crate::store::{Access, JournalOutcome, Store};
use cmat_engine::plan::Plan;

#[derive(Debug, Args)]
#[command(
    after_help = "Before writing, cmat re-reads from Autotask (in pages) the records the plan touches. \
A saved plan is refused as stale, with nothing written, when those records, the imported bills or the \
mapping rules changed since it was made; without a plan file cmat plans again from what Autotask holds.\n\n\
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
    let saved = match &args.plan_file {
        Some(path) => Some(SavedPlan { plan: read_plan(path)?, path: path.clone() }),
        None => None,
    };
    let mut store = session::open_store(context, Access::Write)?;
    let mut loaded = session::load(context, &store)?;
    let client = session::connect_autotask(context)?;
    execute(context, &mut store, &mut loaded, &client, saved, args.auto_approve)?;
    Ok(Exit::Success)
}

/// A plan read from a file, and where it came from (for messages).
pub struct SavedPlan {
    pub plan: Plan,
    pub path: PathBuf,
}

/// What an apply did, for `sync`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    NothingToDo,
    Written,
}

/// Plans (or reads the plan file), re-reads the plan's records from Autotask, asks, writes,
/// and refreshes the snapshot from what was written. Shared by `apply` and `sync`.
pub fn execute(
    context: &Context,
    store: &mut Store,
    loaded: &mut Loaded,
    client: &AutotaskClient,
    saved: Option<SavedPlan>,
    auto_approve: bool,
) -> Result<Applied, CommandError> {
    settle_earlier_writes(context, store)?;
    let connection =
        ApplyConnection::new(client, loaded.rules.settings.subscription_udf.value.clone());
    let reader = &connection;
    let plan = match saved {
        Some(SavedPlan { mut plan, path }) => {
            let path = path.as_path();
            plan.restore_grouping(&loaded.snapshot);
            // Digests only: no need to plan again to know whether the inputs moved.
            let current = loaded.digests();
            let mut stale = Vec::new();
            for (what, saved, now) in [
                ("the Autotask snapshot", &plan.digests.snapshot, &current.snapshot),
                ("the imported bills", &plan.digests.inputs, &current.inputs),
                ("the mapping rules", &plan.digests.mappings, &current.mappings),
            ] {
                if saved != now {
                    stale.push(format!("{what} changed since the plan was made"));
                }
            }
            if !stale.is_empty() {
                return Err(stale_error(path, &stale));
            }
            let differences = reread(store, loaded, reader, &plan)?;
            if !differences.is_empty() {
                return Err(stale_error(path, &differences));
            }
            plan
        }
        None => {
            if loaded.snapshot.picklists.is_empty() {
                // Never pulled: the rules' labels need the tenant's picklists to become numbers.
                crate::autotask::pull::read_tenant_lists(client, &mut loaded.snapshot)?;
                store.replace_snapshot(&loaded.snapshot)?;
            }
            let mut plan = loaded.plan()?;
            // Units change relatively: plan only from what Autotask holds right now.
            for _ in 0..3 {
                if !plan.has_changes() {
                    break;
                }
                let differences = reread(store, loaded, reader, &plan)?;
                if differences.is_empty() {
                    break;
                }
                eprintln!(
                    "note: Autotask differs from the snapshot in {} record(s) the plan touches (e.g. {}); planning again from what it holds now",
                    differences.len(),
                    differences[0]
                );
                plan = loaded.plan()?;
            }
            plan
        }
    };
    resolve_journal(store, &loaded.snapshot)?;
    let text = plan.to_text(&loaded.company_names(), context.stdout_is_terminal);
    println!("{text}");
    if !plan.has_changes() {
        return Ok(Applied::NothingToDo);
    }
    warn_if_over_budget(client, plan.changes.len());
    confirm(context, auto_approve, plan.changes.len())?;

    let started = Instant::now();
    let run_id = new_run_id();
    let requests_before = client.requests_sent();
    let progress = context.stdout_is_terminal.then(|| {
        let bar = indicatif::ProgressBar::new(plan.changes.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} writes, {eta} left")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress_for_writes = progress.clone();
    let options = ApplyOptions {
        concurrency: 3,
        run_id: run_id.clone(),
        now: chrono::Utc::now,
        on_progress: progress_for_writes
            .map(|bar| Box::new(move |done| bar.set_position(done)) as Box<dyn Fn(u64) + Sync>),
    };
    let report = apply_plan(&plan, &connection, store, &options)?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }

    // Refresh the snapshot from Autotask so the next plan is empty without another pull.
    let scope =
        Scope { units_window: loaded.units_window(), ..Scope::of_plan(&plan, &loaded.snapshot) };
    match reader.read_scope(&scope) {
        Ok(fresh) => refresh_scope(store, &scope, &fresh)?,
        Err(err) => eprintln!("warning: could not re-read what was written ({err}); run `cmat pull autotask` before the next plan"),
    }
    loaded.snapshot = store.load_snapshot()?;

    println!(
        "\nApply {}: {} written, {} failed, {} skipped, {} with unknown outcome, in {:.1} s; {} Autotask request(s){}.",
        run_id,
        report.written,
        report.failed,
        report.skipped,
        report.unknown,
        started.elapsed().as_secs_f64(),
        client.requests_sent() - requests_before,
        client
            .hourly_usage()
            .map(|usage| format!("; the tenant has used {} of {} this hour", usage.used, usage.limit))
            .unwrap_or_default()
    );
    println!("Audit trail: cmat audit --run {run_id}");
    if report.is_clean() {
        return Ok(Applied::Written);
    }
    let mut message = format!(
        "{} of {} change(s) did not complete:\n  {}",
        report.failed + report.skipped + report.unknown,
        plan.changes.len(),
        report.failures.join("\n  ")
    );
    if report.budget_exhausted {
        message.push_str("\nhint: the hour's Autotask request budget is spent; run `cmat apply` again after it rolls over: nothing is written twice");
    } else {
        message.push_str("\nhint: run `cmat apply` again: cmat re-reads Autotask first, so nothing is written twice");
    }
    Err(message.into())
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

/// Waits until writes a run that died left without any outcome had time to land: Autotask goes
/// on executing a request after its client is gone, and a re-read made before it lands would
/// not see it, so the write would be sent twice. `[autotask] settle_seconds` (default 15).
fn settle_earlier_writes(context: &Context, store: &Store) -> Result<(), CommandError> {
    let pending = store
        .journal_unresolved()?
        .into_iter()
        .filter(|entry| entry.outcome == JournalOutcome::Pending)
        .map(|entry| entry.recorded_at)
        .max();
    let Some(newest) = pending else {
        return Ok(());
    };
    let seconds = context.workspace.config()?.autotask.settle_seconds.unwrap_or(15);
    let wait = newest + chrono::Duration::seconds(seconds as i64) - chrono::Utc::now();
    if let Ok(wait) = wait.to_std() {
        eprintln!(
            "note: an earlier run stopped while writing; waiting {} s for its last writes to land before re-reading Autotask",
            wait.as_secs() + 1
        );
        std::thread::sleep(wait);
    }
    Ok(())
}

/// Time, process and a per-process sequence: unique even for several applies in one second.
fn new_run_id() -> String {
    static SEQUENCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    format!("{}-{}-{sequence}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), std::process::id())
}

fn read_plan(path: &Path) -> Result<Plan, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("{}: cannot read: {err}", path.display()))?;
    Ok(Plan::from_json(&path.display().to_string(), &text)?)
}

fn stale_error(path: &Path, reasons: &[String]) -> CommandError {
    let shown: Vec<&str> = reasons.iter().take(10).map(String::as_str).collect();
    let more = reasons.len().saturating_sub(shown.len());
    format!(
        "stale plan {}: {}{}; nothing was written (hint: run `cmat plan` again)",
        path.display(),
        shown.join("; "),
        if more > 0 { format!("; and {more} more") } else { String::new() }
    )
    .into()
}

/// Re-reads the plan's records from Autotask (in pages) and, where they differ from the
/// snapshot, stores what Autotask holds now. Returns the differences found.
fn reread(
    store: &mut Store,
    loaded: &mut Loaded,
    reader: &dyn AutotaskReader,
    plan: &Plan,
) -> Result<Vec<String>, CommandError> {
    let scope =
        Scope { units_window: loaded.units_window(), ..Scope::of_plan(plan, &loaded.snapshot) };
    let fresh = reader
        .read_scope(&scope)
        .map_err(|err| format!("cannot re-read the plan's records: {err}"))?;
    let differences = scope_differences(&scope, &loaded.snapshot, &fresh);
    if !differences.is_empty() {
        refresh_scope(store, &scope, &fresh)?;
        loaded.snapshot = store.load_snapshot()?;
    }
    Ok(differences)
}

/// Replaces the scope's part of the stored snapshot with what Autotask holds now.
pub fn refresh_scope(
    store: &mut Store,
    scope: &Scope,
    fresh: &cmat_engine::snapshot::Snapshot,
) -> Result<(), CommandError> {
    let mut snapshot = store.load_snapshot()?;
    let known = scope.restrict(&snapshot);
    for id in known.contracts.keys() {
        snapshot.contracts.remove(id);
    }
    for id in known.services.keys() {
        snapshot.services.remove(id);
    }
    for id in known.contract_services.keys() {
        snapshot.contract_services.remove(id);
    }
    for id in known.contract_service_units.keys() {
        snapshot.contract_service_units.remove(id);
    }
    for id in known.charges.keys() {
        snapshot.charges.remove(id);
    }
    let fresh = scope.restrict(fresh);
    snapshot.contracts.extend(fresh.contracts);
    snapshot.services.extend(fresh.services);
    snapshot.contract_services.extend(fresh.contract_services);
    snapshot.contract_service_units.extend(fresh.contract_service_units);
    snapshot.charges.extend(fresh.charges);
    store.replace_snapshot(&snapshot)?;
    Ok(())
}

/// Writes left with an unknown outcome by an earlier run are settled against what Autotask
/// now holds (the caller has just re-read it): found by natural key, or known not to have landed.
fn resolve_journal(
    store: &mut Store,
    snapshot: &cmat_engine::snapshot::Snapshot,
) -> Result<(), CommandError> {
    for entry in store.journal_unresolved()? {
        let key = &entry.intent.key;
        let found = if let Some(sku) = key.strip_prefix("sku:") {
            snapshot.services.values().find(|s| s.sku.as_deref() == Some(sku)).map(|s| Some(s.id))
        } else if entry.intent.entity == "Contracts" && entry.intent.action == "create" {
            let subscription = key.strip_prefix("subscription:").unwrap_or(key);
            snapshot
                .contracts
                .values()
                .find(|c| c.subscription_id.as_deref() == Some(subscription))
                .map(|c| Some(c.id))
        } else {
            // Updates and adjustments: the new plan was computed from Autotask's own values.
            Some(None)
        };
        let outcome = match found {
            Some(autotask_id) => JournalOutcome::Done { autotask_id },
            None => JournalOutcome::Failed {
                message: "did not land: not found in Autotask by its natural key on the next run"
                    .into(),
            },
        };
        store.journal_outcome(entry.id, &outcome)?;
    }
    Ok(())
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
