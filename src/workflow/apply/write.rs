//! Apply: sends exactly a plan's changes to Autotask, parents before children, each write
//! journaled before it is sent and audited after. The only stage that writes to Autotask.
//!
//! Safety rests on two habits. Every write is recorded as an intent first, so a crash leaves
//! a trace. And a write whose outcome is unknown (timeout, dropped connection) is never sent
//! again blindly: the next run re-reads the records the plan touches and plans from what
//! Autotask really holds, finding a landed create by its natural key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};

use chrono::{DateTime, Utc};

use crate::autotask::adapter::{self, Request};
use crate::autotask::Rejection;
use crate::locks;
use crate::store::{AuditOutcome, AuditRow, JournalIntent, JournalOutcome, Store, StoreError};
use cmat_engine::plan::{plain, Plan, PlanChange};
use cmat_engine::write::{Adjustment, Ref, Write};

use super::journal::{keep_journal, FinishOnDrop, Journal, Record};
use super::schedule::{Done, Schedule};

pub use crate::autotask::adapter::{AutotaskWriter, WriteFailure};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the plan was computed from moved since: nothing is written.
    #[error("stale plan {path}: {}; nothing was written (hint: run `cmat plan` again)", shown(.reasons))]
    Stale { path: String, reasons: Vec<String> },
    #[error("cannot re-read the plan's records")]
    Reread(#[source] WriteFailure),
    /// `[margins] policy = refuse`: prices under a floor (each "source: message"); nothing is
    /// written.
    #[error("refusing to apply: {} price(s) under a margin floor whose policy is `refuse`; nothing was written:\n  {}\nhint: change the price rule or the floor (`cmat explain SUBSCRIPTION_ID` shows which rules set them), then plan again", .refusals.len(), .refusals.join("\n  "))]
    UnderMarginFloors { refusals: Vec<String> },
}

/// The first ten reasons, and how many more.
fn shown(reasons: &[String]) -> String {
    let shown: Vec<&str> = reasons.iter().take(10).map(String::as_str).collect();
    let more = reasons.len().saturating_sub(shown.len());
    format!(
        "{}{}",
        shown.join("; "),
        if more > 0 { format!("; and {more} more") } else { String::new() }
    )
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub run_id: String,
    pub written: u64,
    pub failed: u64,
    pub skipped: u64,
    pub unknown: u64,
    /// Messages of failed writes, in plan order ("c3 create Contracts: …").
    pub failures: Vec<String>,
    pub budget_exhausted: bool,
    /// Each written change's ref with the id of its record in Autotask (a created record's is
    /// the id Autotask gave it): the refresh after writing reads created contracts by id.
    pub ids: BTreeMap<String, i64>,
}

impl ApplyReport {
    pub fn is_clean(&self) -> bool {
        self.failed == 0 && self.skipped == 0 && self.unknown == 0
    }
}

/// What happened to one change.
#[derive(Debug, Clone)]
enum Outcome {
    Written { id: Option<i64> },
    Failed(WriteFailure),
    Skipped(String),
}

/// The write with its planned records replaced by the ids Autotask returned.
fn resolve(change: &PlanChange, ids: &BTreeMap<String, i64>) -> Result<Write<i64>, String> {
    change.write.map_refs(|Ref(reference)| {
        ids.get(reference).copied().ok_or_else(|| format!("{reference} was not created"))
    })
}

pub struct ApplyOptions {
    /// Writes in flight at once (Autotask allows 3 per endpoint and integration).
    pub concurrency: usize,
    pub run_id: String,
    pub now: fn() -> DateTime<Utc>,
    /// Called after each change, for a progress bar.
    pub on_progress: Option<Box<dyn Fn(u64) + Sync>>,
}

/// Sends every change of the plan, parents before children ([`Schedule`]: the Services, then
/// per contract its contract, contract services, adjustments, charges), journaling and
/// auditing each. Stops early when the hour's budget is spent; the rest is reported as skipped
/// and a rerun resumes.
///
/// The writer threads never touch the database: a journal thread commits their records in
/// batches (one commit for whatever arrived meanwhile), and a thread waits only for its own
/// intent's commit before sending, so the journal does not hold the network back.
pub fn apply_plan(
    plan: &Plan,
    writer: &dyn AutotaskWriter,
    store: &mut Store,
    options: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let (journal, records) = mpsc::channel();
    let run = Run {
        plan,
        writer,
        options,
        journal: Journal(journal),
        ids: Mutex::new(BTreeMap::new()),
        outcomes: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
        store_error: Mutex::new(None),
        done: AtomicU64::new(0),
    };
    let schedule = Schedule::of(&plan.changes);
    std::thread::scope(|scope| {
        let run = &run;
        scope.spawn(move || keep_journal(store, &records, &|err| run.fail_store(err)));
        // Dropped last, even when a writer thread panics: the journal thread commits what is
        // left and stops, so the scope can end.
        let _finish = FinishOnDrop(&run.journal);
        std::thread::scope(|writers| {
            for _ in 0..options.concurrency.max(1) {
                writers.spawn(|| {
                    while let Some(index) = schedule.next() {
                        // Released even if the write panics, so no other writer waits forever.
                        let _done = Done(&schedule, index);
                        run.apply_one(index);
                    }
                });
            }
        });
    });
    run.report()
}

/// The state one apply shares between its writer threads.
struct Run<'a> {
    plan: &'a Plan,
    writer: &'a dyn AutotaskWriter,
    options: &'a ApplyOptions,
    journal: Journal,
    /// Plan refs → ids Autotask returned.
    ids: Mutex<BTreeMap<String, i64>>,
    outcomes: Mutex<BTreeMap<usize, Outcome>>,
    /// Set when the hour's budget is spent or the state database fails: send nothing more.
    stop: AtomicBool,
    store_error: Mutex<Option<StoreError>>,
    done: AtomicU64,
}

impl Run<'_> {
    fn apply_one(&self, index: usize) {
        let change = &self.plan.changes[index];
        let outcome = self.outcome_of(change);
        if let Outcome::Written { id: Some(id) } = &outcome {
            locks::lock(&self.ids).insert(change.reference.clone(), *id);
        }
        if let Outcome::Failed(WriteFailure::Budget { .. }) = &outcome {
            self.stop.store(true, Ordering::SeqCst);
        }
        let rows = audit_rows(change, &outcome, &self.options.run_id, (self.options.now)());
        self.journal.send(Record::Audit(rows));
        locks::lock(&self.outcomes).insert(index, outcome);
        let count = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(progress) = &self.options.on_progress {
            progress(count);
        }
    }

    fn outcome_of(&self, change: &PlanChange) -> Outcome {
        if self.stop.load(Ordering::SeqCst) {
            return Outcome::Skipped("not sent: the run stopped early".into());
        }
        let prepared = resolve(change, &locks::lock(&self.ids))
            .and_then(|write| adapter::request(&write).map(|request| (write, request)));
        let (write, request) = match prepared {
            Ok(prepared) => prepared,
            Err(reason) => return Outcome::Skipped(format!("not sent: {reason}")),
        };
        match send(change, &write, &request, self.writer, &self.journal, &self.options.run_id) {
            Ok(outcome) => outcome,
            Err(NotJournaled) => Outcome::Skipped("not sent: the state database failed".into()),
        }
    }

    fn fail_store(&self, err: StoreError) {
        self.stop.store(true, Ordering::SeqCst);
        locks::lock(&self.store_error).get_or_insert(err);
    }

    fn report(self) -> Result<ApplyReport, ApplyError> {
        if let Some(err) = locks::into_inner(self.store_error) {
            return Err(ApplyError::Store(err));
        }
        let mut report = ApplyReport {
            run_id: self.options.run_id.clone(),
            ids: locks::into_inner(self.ids),
            ..ApplyReport::default()
        };
        for (index, outcome) in locks::into_inner(self.outcomes) {
            let change = &self.plan.changes[index];
            let label = format!(
                "{} {} {} ({})",
                change.reference,
                change.action().as_str(),
                change.entity().as_str(),
                change.key
            );
            match outcome {
                Outcome::Written { .. } => report.written += 1,
                Outcome::Failed(failure) => {
                    match failure {
                        WriteFailure::OutcomeUnknown { .. } => report.unknown += 1,
                        WriteFailure::Budget { .. } => {
                            report.budget_exhausted = true;
                            report.failed += 1;
                        }
                        WriteFailure::Rejected { .. } => report.failed += 1,
                    }
                    report.failures.push(format!("{label}: {failure}"));
                }
                Outcome::Skipped(reason) => {
                    report.skipped += 1;
                    report.failures.push(format!("{label}: {reason}"));
                }
            }
        }
        Ok(report)
    }
}

/// The state database could not journal a write, so it was not sent (the journal thread keeps
/// the store's error for the report).
struct NotJournaled;

/// Journal the intent (committed before sending), send, journal the outcome (queued). Only a
/// store failure is an `Err`.
fn send(
    change: &PlanChange,
    write: &Write<i64>,
    request: &Request,
    writer: &dyn AutotaskWriter,
    journal: &Journal,
    run_id: &str,
) -> Result<Outcome, NotJournaled> {
    let intent = JournalIntent {
        run_id: run_id.to_string(),
        change_ref: change.reference.clone(),
        action: change.action().as_str().to_string(),
        entity: change.entity().as_str().to_string(),
        key: change.key.to_string(),
        request_body: request.body.to_string(),
    };
    let journal_id = journal.intent(intent.clone()).ok_or(NotJournaled)?;
    tracing::debug!(
        target: crate::logging::APPLY_TARGET,
        "{} {} {} ({}): sending to {}",
        change.reference,
        intent.action,
        intent.entity,
        change.key,
        request.path
    );
    let sent = Sent { journal_id, result: request.send(writer, change.id()) };
    let sent = match duplicate_adjustment(write, &sent.result) {
        Some(refused) => match refused.retry(writer, journal, sent.journal_id, intent)? {
            Retried::Sent(sent) => sent,
            Retried::Landed(reason) => return Ok(Outcome::Skipped(reason)),
        },
        None => sent,
    };
    Ok(record_outcome(change, journal, sent))
}

/// A write sent, under its journal entry, and what Autotask answered.
struct Sent {
    journal_id: i64,
    result: Result<Option<i64>, WriteFailure>,
}

/// An adjustment Autotask refused as a second one for its contract service and day.
struct DuplicateAdjustment<'a> {
    adjustment: &'a Adjustment<i64>,
    status: Option<u16>,
    message: String,
}

/// What became of a refused same-day adjustment.
enum Retried {
    /// Sent again on the next day, or given up as refused (under the journal entry given).
    Sent(Sent),
    /// Not sent again: an earlier write of it landed (the reason).
    Landed(String),
}

/// The refusal of `write` as a second adjustment on its day, if that is what `result` is.
fn duplicate_adjustment<'a>(
    write: &'a Write<i64>,
    result: &Result<Option<i64>, WriteFailure>,
) -> Option<DuplicateAdjustment<'a>> {
    match (write, result) {
        (
            Write::AdjustContractService(adjustment),
            Err(WriteFailure::Rejected {
                status,
                kind: Rejection::DuplicateAdjustment,
                message,
                ..
            }),
        ) => Some(DuplicateAdjustment { adjustment, status: *status, message: message.clone() }),
        _ => None,
    }
}

impl DuplicateAdjustment<'_> {
    /// Autotask keeps one adjustment per contract service and day ("duplicate …
    /// contract_service_period"), and nothing was written. The adjustment already there is
    /// either one Autotask held when the plan was made (a restated bill changing the same
    /// day's count again: the change goes, once, on the next day), or one that landed after
    /// the plan's re-read, like a killed run's write that Autotask finished late: sent again
    /// on the next day, it would count the units twice. The units in force now tell which.
    fn retry(
        self,
        writer: &dyn AutotaskWriter,
        journal: &Journal,
        journal_id: i64,
        intent: JournalIntent,
    ) -> Result<Retried, NotJournaled> {
        let DuplicateAdjustment { adjustment, status, message } = self;
        Ok(match same_day(adjustment, writer) {
            SameDay::NextDay(next_day) => {
                journal.send(Record::Outcome(journal_id, JournalOutcome::Failed { message }));
                let moved = JournalIntent { request_body: next_day.body.to_string(), ..intent };
                let journal_id = journal.intent(moved).ok_or(NotJournaled)?;
                Retried::Sent(Sent { journal_id, result: next_day.send(writer, None) })
            }
            SameDay::Landed(reason) => {
                let message = format!("{message} ({reason})");
                journal.send(Record::Outcome(journal_id, JournalOutcome::Failed { message }));
                Retried::Landed(reason)
            }
            SameDay::Stop(reason) => Retried::Sent(Sent {
                journal_id,
                result: Err(WriteFailure::Rejected {
                    status,
                    kind: Rejection::DuplicateAdjustment,
                    message: format!("{message}; {reason}"),
                    cause: None,
                }),
            }),
        })
    }
}

/// Logs a failure, queues the journal's outcome, and gives the change's [`Outcome`].
fn record_outcome(change: &PlanChange, journal: &Journal, sent: Sent) -> Outcome {
    if let Err(failure) = &sent.result {
        // Beside the request lines of `-v`, which cannot know the change they carry.
        tracing::warn!(
            target: crate::logging::APPLY_TARGET,
            "{} {} {} ({}) failed: {failure}",
            change.reference,
            change.action().as_str(),
            change.entity().as_str(),
            change.key
        );
    }
    let (outcome, journal_outcome) = match sent.result {
        Ok(id) => (Outcome::Written { id }, JournalOutcome::Done { autotask_id: id }),
        Err(WriteFailure::OutcomeUnknown { message, cause }) => (
            Outcome::Failed(WriteFailure::OutcomeUnknown { message: message.clone(), cause }),
            JournalOutcome::Unknown { message },
        ),
        Err(failure) => {
            let message = failure.to_string();
            (Outcome::Failed(failure), JournalOutcome::Failed { message })
        }
    };
    journal.send(Record::Outcome(sent.journal_id, journal_outcome));
    outcome
}

/// What to do with an adjustment Autotask refused as a second one on the same day.
enum SameDay {
    /// Autotask holds what the plan was computed from: the change goes on the next day.
    NextDay(Request),
    /// Autotask already holds the units the change aims at: an earlier write landed.
    Landed(String),
    /// Autotask holds something else, or cannot be read: not sent; the next run replans.
    Stop(String),
}

fn same_day(adjustment: &Adjustment<i64>, writer: &dyn AutotaskWriter) -> SameDay {
    let date = adjustment.effective_date;
    let next_day = date.succ_opt().and_then(|next| {
        let moved = Adjustment { effective_date: next, ..adjustment.clone() };
        adapter::request(&Write::AdjustContractService(moved)).ok()
    });
    let Some(next_day) = next_day else {
        return SameDay::Stop("not sent: the adjustment cannot be moved to the next day".into());
    };
    let before = adjustment.units_before;
    let target = before + adjustment.unit_change;
    // A change of ours that landed on the refused day shows on the day after it.
    let checked = date.succ_opt().unwrap_or(date);
    match writer.units_on(adjustment.contract.id(), adjustment.service.id(), checked) {
        Ok(units) if units == before => SameDay::NextDay(next_day),
        Ok(units) if units == target => SameDay::Landed(format!(
            "not sent again: Autotask already holds {target} units from {date}; an earlier write of this adjustment landed after the plan was made"
        )),
        Ok(units) => SameDay::Stop(format!(
            "not sent: Autotask now holds {units} units where the plan expected {before} (run `cmat apply` again to plan from them)"
        )),
        Err(err) => SameDay::Stop(format!(
            "not sent: cannot re-read the units to tell whether this change already landed ({err})"
        )),
    }
}

/// One audit row per field of the change (SPEC.md: "one row per field written").
fn audit_rows(
    change: &PlanChange,
    outcome: &Outcome,
    run_id: &str,
    at: DateTime<Utc>,
) -> Vec<AuditRow> {
    let (result, autotask_id, status, message) = match outcome {
        Outcome::Written { id } => {
            (AuditOutcome::Applied, id.or(change.id()), Some(200), change.reason.clone())
        }
        Outcome::Failed(WriteFailure::Rejected { status, message, .. }) => {
            (AuditOutcome::Failed, change.id(), *status, message.clone())
        }
        Outcome::Failed(failure) => (AuditOutcome::Failed, change.id(), None, failure.to_string()),
        Outcome::Skipped(reason) => (AuditOutcome::Skipped, change.id(), None, reason.clone()),
    };
    change
        .field_rows()
        .into_iter()
        .map(|(field, old, new)| AuditRow {
            run_id: run_id.to_string(),
            at,
            action: change.action().as_str().to_string(),
            entity: change.entity().as_str().to_string(),
            autotask_id,
            key: change.key.to_string(),
            old_value: old.as_ref().map(plain),
            new_value: new.as_ref().map(plain),
            field,
            rule: change.rule.clone(),
            outcome: result,
            http_status: status,
            message: message.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::schedule::contract_of;
    use super::*;
    use crate::autotask::adapter::api_number;
    use crate::store::{Access, AuditFilter};
    use cmat_engine::plan::Digests;
    use cmat_engine::snapshot::Company;
    use cmat_engine::snapshot::Snapshot;
    use cmat_engine::testing::{default_rules, line};
    use cmat_engine::write::{Action, Entity};
    use serde_json::{json, Value};
    use std::collections::BTreeSet;

    /// Records every request; fails the write whose 0-based position is `fail_at`.
    struct FakeAutotask {
        sent: Mutex<Vec<(String, Value)>>,
        fail_at: Option<(usize, WriteFailure)>,
        next_id: std::sync::atomic::AtomicI64,
        /// What `units_on` answers.
        units: i64,
    }

    impl FakeAutotask {
        fn new(fail_at: Option<(usize, WriteFailure)>) -> Self {
            FakeAutotask { sent: Mutex::new(Vec::new()), fail_at, next_id: 500.into(), units: 0 }
        }
        fn record(&self, path: &str, body: &Value) -> Result<(), WriteFailure> {
            let mut sent = self.sent.lock().expect("lock");
            let position = sent.len();
            sent.push((path.to_string(), body.clone()));
            match &self.fail_at {
                Some((at, failure)) if *at == position => Err(failure.clone()),
                _ => Ok(()),
            }
        }
    }

    impl AutotaskWriter for FakeAutotask {
        fn create(&self, path: &str, body: &Value) -> Result<Option<i64>, WriteFailure> {
            self.record(path, body)?;
            Ok(Some(self.next_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst)))
        }
        fn update(&self, path: &str, body: &Value) -> Result<(), WriteFailure> {
            self.record(path, body)
        }
        fn delete(&self, path: &str) -> Result<(), WriteFailure> {
            self.record(path, &Value::Null)
        }
        fn units_on(
            &self,
            _contract_id: i64,
            _service_id: i64,
            _date: chrono::NaiveDate,
        ) -> Result<i64, WriteFailure> {
            Ok(self.units)
        }
    }

    fn onboarding_plan() -> Plan {
        let rules = default_rules();
        let lines = vec![
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5"),
            line("2026-10-01", "Contoso", "Azure Plan", "AZ", "M1", "2", "3"),
        ];
        let mut snapshot = Snapshot::default();
        snapshot.companies.insert(
            100,
            Company { id: 100, company_name: "Contoso".into(), is_active: true, currency_id: None },
        );
        let desired = cmat_engine::desired::desired_state(&rules, &lines);
        let digests =
            Digests { snapshot: String::new(), inputs: String::new(), mappings: String::new() };
        let values =
            cmat_engine::picklists::resolve(&rules, &cmat_testkit::tenant::reference_picklists())
                .expect("the reference tenant has every default label");
        Plan::new(
            cmat_engine::diff::diff(&rules, &values, &desired, &snapshot),
            digests,
            DateTime::UNIX_EPOCH,
        )
    }

    fn options() -> ApplyOptions {
        ApplyOptions {
            concurrency: 3,
            run_id: "run-1".into(),
            now: || DateTime::UNIX_EPOCH,
            on_progress: None,
        }
    }

    #[test]
    fn amounts_go_to_autotask_as_json_numbers_with_their_exact_text() {
        let number =
            |text: &str| api_number(text.parse().expect("decimal")).expect("number").to_string();
        assert_eq!(number("20.6000"), "20.6");
        assert_eq!(number("59354.1036"), "59354.1036");
        assert_eq!(number("-170.1084"), "-170.1084");
        assert_eq!(number("1.0000"), "1");
        // An amount that is not a decimal never reaches a request: the saved plan is refused.
        let json = onboarding_plan().to_json().replacen("\"5.0000\"", "\"1,5\"", 1);
        assert!(Plan::from_json("plan.json", &json).is_err());
    }

    /// `cmat doctor` compares the tenant's required fields with `SENT_ON_CREATE`: it must be
    /// what a create really sends (the subscription UDF and the settings the rules name
    /// only when they do aside).
    #[test]
    fn creates_send_the_fields_doctor_checks_against_the_tenants_required_ones() {
        let plan = onboarding_plan();
        let ids: BTreeMap<String, i64> =
            plan.changes.iter().map(|c| (c.reference.clone(), 1)).collect();
        let mut seen = BTreeSet::new();
        for change in &plan.changes {
            if !matches!(change.action(), Action::Create | Action::Adjust) {
                continue;
            }
            let write = resolve(change, &ids).expect("resolved");
            let request = adapter::request(&write).expect("request");
            let entity = change.entity().as_str();
            let (_, listed) = adapter::SENT_ON_CREATE
                .iter()
                .find(|(name, _)| *name == entity)
                .unwrap_or_else(|| panic!("{entity} is not in SENT_ON_CREATE"));
            let sent: BTreeSet<&str> = request
                .body
                .as_object()
                .expect("a JSON object")
                .keys()
                .map(String::as_str)
                .filter(|k| {
                    !matches!(
                        *k,
                        "userDefinedFields"
                            | "contractCategory"
                            | "organizationalLevelAssociationID"
                    )
                })
                .collect();
            let listed: BTreeSet<&str> = listed.iter().copied().collect();
            // A charge's cost goes only when known.
            let optional = ["unitCost"];
            assert!(sent.is_subset(&listed), "{entity}: {sent:?} vs {listed:?}");
            assert!(
                listed.difference(&sent).all(|k| optional.contains(k)),
                "{entity}: {sent:?} vs {listed:?}"
            );
            seen.insert(entity);
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    /// A child PATCH carries only `id` and what changes (live integrations do): the contract
    /// is in the path, never in the body.
    #[test]
    fn a_charge_update_sends_only_its_id_and_the_changed_fields() {
        let write: Write<i64> = Write::UpdateCharge {
            id: 77,
            contract: cmat_engine::write::Id::Existing(4410),
            edits: cmat_engine::write::ChargeEdits {
                unit_price: Some(cmat_engine::write::Edit {
                    old: Some("10".parse().expect("decimal")),
                    new: "12.5".parse().expect("decimal"),
                }),
                unit_cost: None,
            },
        };
        let request = adapter::request(&write).expect("request");
        assert_eq!(request.path, "Contracts/4410/Charges");
        assert_eq!(request.body, json!({"id": 77, "unitPrice": 12.5}));
    }

    /// A contract's writes wait for that contract's earlier writes only: the Azure contract's
    /// charge goes as soon as the Azure contract is written, whatever the licence contract's
    /// writes are doing.
    #[test]
    fn a_write_waits_only_for_its_own_contracts_earlier_writes() {
        let plan = onboarding_plan();
        let entity = |index: usize| plan.changes[index].entity();
        let contract = |index: usize| contract_of(&plan.changes[index].key).map(str::to_string);
        let schedule = Schedule::of(&plan.changes);
        let services = plan.changes.iter().filter(|c| c.entity() == Entity::Services).count();
        assert!(services > 0);
        // The Services first; nothing else is handed out until they are done.
        let handed: Vec<usize> =
            (0..services).map(|_| schedule.next().expect("a service")).collect();
        assert!(handed.iter().all(|index| entity(*index) == Entity::Services));
        let nothing_ready =
            |schedule: &Schedule| schedule.state.lock().expect("lock").ready.is_empty();
        assert!(nothing_ready(&schedule), "contracts wait for the Services");
        for index in handed {
            schedule.done(index);
        }
        let (first, second) = (schedule.next().expect("one"), schedule.next().expect("two"));
        assert_eq!((entity(first), entity(second)), (Entity::Contracts, Entity::Contracts));
        assert!(nothing_ready(&schedule), "children wait for their contracts");
        let (azure, licence) = if contract(first).as_deref() == Some("AZ") {
            (first, second)
        } else {
            (second, first)
        };
        schedule.done(azure);
        let charge = schedule.next().expect("the Azure charge");
        assert_eq!((entity(charge), contract(charge)), (Entity::ContractCharges, contract(azure)));
        assert!(nothing_ready(&schedule), "the licence contract is still in flight");
        schedule.done(charge);
        schedule.done(licence);
        let mut rest = Vec::new();
        while let Some(index) = schedule.next() {
            rest.push(entity(index));
            schedule.done(index);
        }
        assert!(!rest.is_empty(), "the licence contract's children");
        assert!(rest.iter().all(|e| *e != Entity::Contracts && *e != Entity::Services));
        assert!(rest.windows(2).all(|pair| pair[0].phase() <= pair[1].phase()));
    }

    #[test]
    fn writes_parents_first_and_resolves_refs_to_returned_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("state.db"), Access::Write).expect("store");
        let plan = onboarding_plan();
        let fake = FakeAutotask::new(None);
        let report = apply_plan(&plan, &fake, &mut store, &options()).expect("apply");
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.written, plan.changes.len() as u64);
        let sent = fake.sent.lock().expect("lock").clone();
        let paths: Vec<_> = sent.iter().map(|(path, _)| path.clone()).collect();
        // Service first, then the contracts, each before its children, under real ids (which
        // child follows which contract: `a_write_waits_only_for_its_own_contracts_earlier_writes`).
        assert_eq!(paths[0], "Services");
        assert_eq!(paths[1], "Contracts");
        assert_eq!(paths.iter().filter(|path| *path == "Contracts").count(), 2);
        let adjustment = sent
            .iter()
            .find(|(path, _)| path.ends_with("/ServiceAdjustments"))
            .expect("adjustment");
        assert_eq!(adjustment.1["serviceID"], json!(500));
        assert_eq!(
            adjustment.0,
            format!("Contracts/{}/ServiceAdjustments", adjustment.1["contractID"])
        );
        let audit = store.audit_rows(&AuditFilter::default()).expect("audit");
        let fields: usize = plan.changes.iter().map(|c| c.fields().len()).sum();
        assert_eq!(audit.len(), fields, "one audit row per field written");
        assert!(store.journal_unresolved().expect("journal").is_empty());
    }

    /// `cmat revert`'s delete: `DELETE Contracts/{contract}/Charges/{id}`, journaled with the
    /// ids, audited one row per field of the charge removed (old value, no new one).
    #[test]
    fn a_charge_delete_goes_by_path_and_audits_what_was_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("state.db"), Access::Write).expect("store");
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
        let charge = cmat_engine::write::NewCharge {
            name: "Azure consumption 2026-11".into(),
            description: String::new(),
            date_purchased: date,
            charge_type: 1,
            unit_quantity: "1".parse().expect("decimal"),
            unit_price: "12.5".parse().expect("decimal"),
            unit_cost: None,
            billing_code_id: 9,
            is_billable_to_company: true,
        };
        let change = cmat_engine::diff::Change {
            key: cmat_engine::write::NaturalKey::Charge {
                subscription: "AZ".into(),
                date,
                group: None,
                correction: None,
            },
            write: Write::DeleteCharge {
                id: 77,
                contract: cmat_engine::write::Id::Existing(4410),
                charge,
            },
            rule: cmat_engine::rules::RuleOrigin { file: "revert:r1".into(), line: 0 },
            reason: "revert".into(),
            company_id: 1,
            contract_label: String::new(),
        };
        let diff = cmat_engine::diff::Diff { changes: vec![change], ..Default::default() };
        let digests =
            Digests { snapshot: String::new(), inputs: String::new(), mappings: String::new() };
        let plan = Plan::new(diff, digests, DateTime::UNIX_EPOCH);
        let fake = FakeAutotask::new(None);
        let report = apply_plan(&plan, &fake, &mut store, &options()).expect("apply");
        assert!(report.is_clean(), "{report:?}");
        let sent = fake.sent.lock().expect("lock").clone();
        assert_eq!(sent, vec![("Contracts/4410/Charges/77".to_string(), Value::Null)]);
        let audit = store.audit_rows(&AuditFilter::default()).expect("audit");
        assert_eq!(audit.len(), 8, "one row per field of the charge: {audit:#?}");
        assert!(audit.iter().all(|row| row.action == "delete" && row.new_value.is_none()));
        assert!(audit.iter().all(|row| row.autotask_id == Some(77)));
        let price = audit.iter().find(|row| row.field == "unitPrice").expect("unitPrice");
        assert_eq!(price.old_value.as_deref(), Some("12.5"));
        let done = store.journal_done().expect("journal");
        assert_eq!(done.len(), 1);
        let body: Value = serde_json::from_str(&done[0].0.request_body).expect("json");
        assert_eq!(body, json!({"id": 77, "contractID": 4410}));
    }

    #[test]
    fn an_unknown_outcome_is_journaled_and_its_children_are_not_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("state.db"), Access::Write).expect("store");
        let plan = onboarding_plan();
        // The first write is the Service create: its outcome is unknown.
        let fake = FakeAutotask::new(Some((
            0,
            WriteFailure::OutcomeUnknown { message: "connection reset".into(), cause: None },
        )));
        let report = apply_plan(&plan, &fake, &mut store, &options()).expect("apply");
        assert_eq!(report.unknown, 1);
        assert_eq!(report.skipped, 1, "the adjustment needing the service is not sent: {report:?}");
        let unresolved = store.journal_unresolved().expect("journal");
        assert_eq!(unresolved.len(), 1);
        assert_eq!(unresolved[0].intent.key, "sku:A");
        let sent = fake.sent.lock().expect("lock");
        assert_eq!(sent.iter().filter(|(path, _)| path == "Services").count(), 1, "never re-sent");
    }

    #[test]
    fn a_spent_hourly_budget_stops_the_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("state.db"), Access::Write).expect("store");
        let plan = onboarding_plan();
        let fake = FakeAutotask::new(Some((
            0,
            WriteFailure::Budget { message: "hour spent".into(), cause: None },
        )));
        let options = ApplyOptions { concurrency: 1, ..options() };
        let report = apply_plan(&plan, &fake, &mut store, &options).expect("apply");
        assert!(report.budget_exhausted);
        assert_eq!(fake.sent.lock().expect("lock").len(), 1);
        assert_eq!(report.skipped, plan.changes.len() as u64 - 1);
    }

    /// The onboarding plan's adjustment (10 units of a new product) refused as a second one
    /// on its day, with Autotask holding `units` now: what is sent, and the report.
    fn refused_same_day(units: i64) -> (Vec<(String, Value)>, ApplyReport) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("state.db"), Access::Write).expect("store");
        let plan = onboarding_plan();
        let adjustment =
            plan.changes.iter().find(|c| c.action() == Action::Adjust).expect("an adjustment");
        assert_eq!(adjustment.fields()["unitChange"], json!(10));
        assert_eq!(adjustment.before().unwrap()["units"], json!("0"));
        // Service, two contracts, then the adjustment (one at a time: a fixed order).
        let mut fake = FakeAutotask::new(Some((
            3,
            WriteFailure::Rejected {
                status: Some(500),
                kind: Rejection::DuplicateAdjustment,
                message: "Cannot insert duplicate key row in object 'dbo.contract_service_period'"
                    .into(),
                cause: None,
            },
        )));
        fake.units = units;
        let options = ApplyOptions { concurrency: 1, ..options() };
        let report = apply_plan(&plan, &fake, &mut store, &options).expect("apply");
        let sent = fake.sent.lock().expect("lock").clone();
        (sent, report)
    }

    fn adjustments(sent: &[(String, Value)]) -> Vec<Value> {
        sent.iter()
            .filter(|(path, _)| path.ends_with("/ServiceAdjustments"))
            .map(|(_, body)| body["effectiveDate"].clone())
            .collect()
    }

    #[test]
    fn a_refused_same_day_adjustment_goes_on_the_next_day_when_autotask_holds_the_planned_units() {
        let (sent, report) = refused_same_day(0);
        assert_eq!(adjustments(&sent), vec![json!("2026-10-01"), json!("2026-10-02")]);
        assert!(report.is_clean(), "{report:?}");
    }

    #[test]
    fn a_refused_same_day_adjustment_that_already_landed_is_not_sent_again() {
        // A killed run's adjustment that Autotask finished after this run re-read the units.
        let (sent, report) = refused_same_day(10);
        assert_eq!(adjustments(&sent), vec![json!("2026-10-01")], "never doubled");
        assert_eq!(report.skipped, 1, "{report:?}");
        assert!(report.failures[0].contains("already holds 10 units"), "{report:?}");
    }

    #[test]
    fn a_refused_same_day_adjustment_is_not_moved_when_autotask_holds_something_else() {
        let (sent, report) = refused_same_day(4);
        assert_eq!(adjustments(&sent), vec![json!("2026-10-01")]);
        assert_eq!(report.failed, 1, "{report:?}");
        assert!(report.failures[0].contains("holds 4 units"), "{report:?}");
    }
}
