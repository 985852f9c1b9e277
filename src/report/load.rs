//! Reads what a review needs from the state database (the I/O half of `cmat report`; the
//! review itself is [`super::build`]'s, pure).

use chrono::{DateTime, Utc};

use super::{
    build, HistoryInput, Period, PeriodSums, PlanNote, Review, ReviewInput, WriteKind, WriteProblem,
};
use std::path::Path;

use crate::store::{
    Access, AuditFilter, AuditOutcome, BillRevision, JournalOutcome, Store, StoreError,
};
use cmat_engine::rules::{BillingKind, RuleSet};
use cmat_engine::snapshot::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no bills imported yet: nothing to review (hint: run `cmat import FILE.xlsx` first)")]
    NoBills,
    #[error("--period {period}: no bill is dated in that month (imported: {known})")]
    NoSuchPeriod { period: Period, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The review of `period` (default: the latest Billing Date's month) from the store, with
/// the workspace's checked rules.
pub fn review(store: &Store, rules: &RuleSet, period: Option<Period>) -> Result<Review, LoadError> {
    // Where the time goes, at debug level (the large tenant's benchmark prints it).
    let tick = phases("");
    let bills = store.bill_revisions()?;
    let Periods { period, latest_period, previous } = choose_period(&bills, period)?;

    // The period's and the previous period's sums and every period's totals are read on a
    // second connection while this one reads the period and computes the plan's warnings:
    // the halves overlap on two cores (each is about half of the work on a large tenant).
    let path = store.path();
    let (now, earlier) = std::thread::scope(|scope| {
        let earlier = scope.spawn(|| earlier_periods(path, rules, period, previous));
        let now = this_period(store, rules, period, latest_period);
        tick("period read, plan computed");
        let earlier = earlier.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        tick("previous period and history read");
        (now, earlier)
    });
    let ThisPeriod { snapshot, desired_warnings: desired, plan_warnings, intended, planned } = now?;
    let Earlier { current, previous: previous_sums, history } = earlier?;
    let restated: Vec<_> = bills
        .iter()
        .filter(|b| period.contains(b.billing_date) && b.revision > 1)
        .cloned()
        .collect();
    let writes = period_writes(store, &bills, period)?;

    tick("writes read");
    let plan_notes = plan_warnings.as_deref().map_err(Clone::clone);
    let review = build(&ReviewInput {
        period,
        rules,
        current: &current,
        previous: previous_sums.as_ref().map(|(p, sums)| (*p, sums)),
        snapshot: &snapshot,
        desired_warnings: &desired,
        plan_warnings: plan_notes,
        history: &history,
        intended: &intended,
        planned: planned.as_ref(),
        restated: &restated,
        writes: &writes,
    });
    tick("review built");
    Ok(review)
}

/// The period a review shows, the latest one imported, and the one before it.
struct Periods {
    period: Period,
    latest_period: Period,
    previous: Option<Period>,
}

/// The period asked for (default: the latest Billing Date's month), which must have bills.
fn choose_period(bills: &[BillRevision], asked: Option<Period>) -> Result<Periods, LoadError> {
    let Some(latest) = bills.iter().map(|b| b.billing_date).max() else {
        return Err(LoadError::NoBills);
    };
    let mut periods: Vec<Period> = bills.iter().map(|b| Period::of(b.billing_date)).collect();
    periods.dedup();
    let latest_period = Period::of(latest);
    let period = asked.unwrap_or(latest_period);
    if !periods.contains(&period) {
        let known: Vec<String> = periods.iter().map(ToString::to_string).collect();
        return Err(LoadError::NoSuchPeriod { period, known: known.join(", ") });
    }
    let previous = periods.iter().copied().filter(|p| *p < period).max();
    Ok(Periods { period, latest_period, previous })
}

/// Says at debug level how long after its making each phase ended (the large tenant's
/// benchmark prints them); `indent` sets a part's phases under the whole's.
fn phases(indent: &'static str) -> impl Fn(&str) {
    let started = std::time::Instant::now();
    move |done| {
        let elapsed = started.elapsed().as_millis();
        tracing::debug!(target: "cmat::report", "{indent}{done} after {elapsed} ms");
    }
}

/// What the review needs of its own period, read and computed on the caller's connection.
struct ThisPeriod {
    snapshot: Snapshot,
    desired_warnings: Vec<PlanNote>,
    /// None when not computed, with why.
    plan_warnings: Result<Vec<PlanNote>, String>,
    /// Per subscription, what the desired state puts in Autotask for the period.
    intended: std::collections::BTreeMap<String, rust_decimal::Decimal>,
    /// The subscriptions the plan would change; None when the plan is not computed.
    planned: Option<std::collections::BTreeSet<String>>,
}

/// The desired state's and the plan's warnings over the period's lines: the engine takes whole
/// `BillLine`s, so this period's are held (and dropped here).
fn this_period(
    store: &Store,
    rules: &RuleSet,
    period: Period,
    latest_period: Period,
) -> Result<ThisPeriod, LoadError> {
    let tick = phases("  ");
    let lines = store.bill_lines_between(period.first_day(), period.next().first_day())?;
    tick("period's lines read");

    // The plan's warnings are its diff's (`cmat_engine::plan::compute` is resolve, desired
    // state, diff): the desired state is computed once for both lists, and none of the plan's
    // changes, references or digests are built, since the review shows warnings only. The
    // lines are let go before the snapshot is loaded: the two are the largest things held.
    let desired_state = cmat_engine::desired::desired_state(rules, &lines);
    tick("desired state computed");
    let intended = super::intended_amounts(&desired_state, period);
    drop(lines);
    tick("lines released");
    let snapshot = store.load_snapshot()?;
    tick("snapshot loaded");
    let desired: Vec<PlanNote> = desired_state.warnings.iter().map(note_of).collect();
    let (plan_warnings, planned) = if snapshot.refreshed_at.is_none() {
        (Err("No Autotask snapshot yet: what Autotask holds, drift and duplicate contracts are not checked (run `cmat pull autotask`).".into()), None)
    } else if period != latest_period {
        (Err(format!(
            "Drift and duplicate contracts are checked against today's Autotask on the review of the latest period ({latest_period}) only."
        )), None)
    } else {
        plan_warnings(rules, &desired_state, &snapshot)
    };
    tick("plan's warnings computed");
    Ok(ThisPeriod { snapshot, desired_warnings: desired, plan_warnings, intended, planned })
}

/// A warning as the review keeps it.
fn note_of(warning: &cmat_engine::desired::Warning) -> PlanNote {
    PlanNote {
        code: warning.code,
        message: warning.message.clone(),
        source: warning.source.clone(),
    }
}

/// The plan's warnings (`Err`: why they are not computed), and the subscriptions the plan would
/// change: where Autotask differs from what the rules put there on the Billing Date and the
/// plan changes nothing, the rules schedule the difference (a decrease deferred to the next
/// period or the term's end).
fn plan_warnings(
    rules: &RuleSet,
    desired_state: &cmat_engine::desired::DesiredState,
    snapshot: &Snapshot,
) -> (Result<Vec<PlanNote>, String>, Option<std::collections::BTreeSet<String>>) {
    match cmat_engine::picklists::resolve(rules, &snapshot.picklists) {
        Ok(values) => {
            let diff = cmat_engine::diff::diff(rules, &values, desired_state, snapshot);
            let planned = diff
                .changes
                .iter()
                .filter_map(|change| change.key.subscription().map(str::to_owned))
                .collect();
            (Ok(diff.warnings.iter().map(note_of).collect()), Some(planned))
        }
        Err(errors) => (
            Err(format!(
                "The plan could not be computed ({} picklist label(s) the tenant lacks; see `cmat plan`): drift and duplicate contracts are not checked.",
                errors.len()
            )),
            None,
        ),
    }
}

/// The period and the one before summed (from lines borrowed from the store: neither is held
/// as lines here), and every period's totals.
struct Earlier {
    current: PeriodSums,
    previous: Option<(Period, PeriodSums)>,
    history: HistoryInput,
}

/// [`Earlier`], on a connection of its own (`path`, read only), so that it can run beside
/// [`this_period`].
fn earlier_periods(
    path: &Path,
    rules: &RuleSet,
    period: Period,
    previous: Option<Period>,
) -> Result<Earlier, LoadError> {
    let store = Store::open(path, Access::Read)?;
    let sum = |period: Period| -> Result<PeriodSums, StoreError> {
        let mut sums = PeriodSums::default();
        store.visit_review_lines(period.first_day(), period.next().first_day(), |line| {
            sums.add(rules, line)
        })?;
        Ok(sums)
    };
    let current = sum(period)?;
    let previous = match previous {
        Some(previous) => Some((previous, sum(previous)?)),
        None => None,
    };
    let consumption: Vec<String> = rules
        .services
        .iter()
        .filter(|(_, rule)| rule.value == BillingKind::Consumption)
        .map(|(name, _)| name.clone())
        .collect();
    let history = HistoryInput::from_store(&store.bill_history(&consumption)?);
    Ok(Earlier { current, previous, history })
}

/// The writes of the period's runs that failed, were skipped or have an unknown outcome, and the
/// contracts they adopted (`cmat adopt --apply`). The period's runs are those from the first
/// import of its bills to the first import of a later period's bills; unresolved writes are
/// always shown (they are today's business), and so is what the last sync left unsettled.
fn period_writes(
    store: &Store,
    bills: &[crate::store::BillRevision],
    period: Period,
) -> Result<Vec<WriteProblem>, StoreError> {
    let mut problems = period_audit_problems(store, bills, period)?;
    problems.extend(unresolved_writes(store)?);
    problems.extend(unsettled_changes(store)?);
    Ok(problems)
}

/// The period's audit rows worth a line in the review: approvals, adopted contracts, and each
/// write that failed or was skipped (once per run, action, entity and key).
fn period_audit_problems(
    store: &Store,
    bills: &[crate::store::BillRevision],
    period: Period,
) -> Result<Vec<WriteProblem>, StoreError> {
    let from: Option<DateTime<Utc>> =
        bills.iter().filter(|b| period.contains(b.billing_date)).map(|b| b.imported_at).min();
    let until: Option<DateTime<Utc>> =
        bills.iter().filter(|b| Period::of(b.billing_date) > period).map(|b| b.imported_at).min();
    let Some(from) = from else { return Ok(Vec::new()) };
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let filter = AuditFilter { run_id: None, since: Some(from.date_naive()) };
    for row in store.audit_rows(&filter)? {
        if row.at < from || until.is_some_and(|until| row.at >= until) {
            continue;
        }
        if row.action == "approve" {
            problems.push(approval_note(row));
        } else if row.outcome == AuditOutcome::Applied {
            problems.extend(adopted_contract(row));
        } else if seen.insert((
            row.run_id.clone(),
            row.action.clone(),
            row.entity.clone(),
            row.key.clone(),
        )) {
            problems.push(failed_write(row));
        }
    }
    Ok(problems)
}

/// Who approved the run's plan (four-eyes, issue 29): a note, not a problem.
fn approval_note(row: crate::store::AuditRow) -> WriteProblem {
    WriteProblem {
        run_id: row.run_id,
        kind: WriteKind::Approval,
        action: row.action,
        entity: row.entity,
        key: row.key,
        message: format!(
            "approved by {} ({}; plan made by {})",
            row.new_value.unwrap_or_default(),
            row.message,
            row.old_value.as_deref().unwrap_or("an unnamed author")
        ),
    }
}

/// A contract made by hand that `cmat adopt --apply` linked: cmat bills through it from now
/// on, so its units and prices change this period. Other applied writes are no problem.
fn adopted_contract(row: crate::store::AuditRow) -> Option<WriteProblem> {
    let adopted =
        row.action == "update" && row.entity == "Contracts" && row.field == "userDefinedFields";
    adopted.then(|| WriteProblem {
        kind: WriteKind::Adopted,
        message: format!(
            "contract #{} adopted: it now carries the subscription, accepted in {}; cmat keeps its units and prices from now on",
            row.autotask_id.unwrap_or_default(),
            row.rule
        ),
        run_id: row.run_id,
        action: row.action,
        entity: row.entity,
        key: row.key,
    })
}

/// A write that failed or was skipped.
fn failed_write(row: crate::store::AuditRow) -> WriteProblem {
    WriteProblem {
        run_id: row.run_id,
        kind: WriteKind::Failed,
        action: row.action,
        entity: row.entity,
        key: row.key,
        message: if row.outcome == AuditOutcome::Skipped {
            format!("skipped: {}", row.message)
        } else {
            row.message
        },
    }
}

/// Writes sent without a recorded outcome: the next apply looks each up first.
fn unresolved_writes(store: &Store) -> Result<Vec<WriteProblem>, StoreError> {
    Ok(store
        .journal_unresolved()?
        .into_iter()
        .map(|entry| {
            let message = match entry.outcome {
                JournalOutcome::Unknown { message } => format!("outcome unknown: {message}"),
                _ => "sent, outcome not recorded (the run stopped)".into(),
            };
            WriteProblem {
                run_id: entry.intent.run_id,
                kind: WriteKind::Unknown,
                action: entry.intent.action,
                entity: entry.intent.entity,
                key: entry.intent.key,
                message: format!("{message}; the next apply looks it up by its natural key first"),
            }
        })
        .collect())
}

/// What the last sync's own re-plan still held after writing (`cli::sync`).
fn unsettled_changes(store: &Store) -> Result<Vec<WriteProblem>, StoreError> {
    let unsettled: Vec<crate::store::NotConverged> = store
        .get_meta(crate::store::meta_keys::LAST_SYNC_NOT_CONVERGED)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    let at = store.get_meta(crate::store::meta_keys::LAST_SYNC_AT)?.unwrap_or_default();
    Ok(unsettled
        .into_iter()
        .map(|change| WriteProblem {
            run_id: format!("the last sync ({at})"),
            kind: WriteKind::NotConverged,
            action: change.action,
            entity: change.entity,
            key: change.key,
            message: format!(
                "still planned after the sync wrote it: {} (rule at {}); the next sync would send it again",
                change.reason, change.rule
            ),
        })
        .collect())
}
