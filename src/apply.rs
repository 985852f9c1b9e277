//! Apply: sends exactly a plan's changes to Autotask, parents before children, each write
//! journaled before it is sent and audited after. The only stage that writes to Autotask.
//!
//! Safety rests on two habits. Every write is recorded as an intent first, so a crash leaves
//! a trace. And a write whose outcome is unknown (timeout, dropped connection) is never sent
//! again blindly: the next run re-reads the records the plan touches and plans from what
//! Autotask really holds, finding a landed create by its natural key.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::diff::{Action, Entity};
use crate::plan::{plain, Plan, PlanChange, PlanParent};
use crate::snapshot::Snapshot;
use crate::store::{AuditOutcome, AuditRow, JournalIntent, JournalOutcome, Store, StoreError};

/// How a write failed, as far as apply needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteFailure {
    /// Autotask answered and refused: nothing was written.
    Rejected {
        status: Option<u16>,
        message: String,
    },
    /// No answer: the write may or may not have landed. Never re-sent without a lookup.
    OutcomeUnknown { message: String },
    /// The hour's request budget is spent: stop now, resume later.
    Budget { message: String },
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteFailure::Rejected { message, .. } => write!(f, "{message}"),
            WriteFailure::OutcomeUnknown { message } => write!(f, "outcome unknown: {message}"),
            WriteFailure::Budget { message } => write!(f, "{message}"),
        }
    }
}

/// The writes apply needs; the Autotask client implements it (and tests fake it).
pub trait AutotaskWriter: Sync {
    /// `POST path` → the new record's id (Autotask may answer `{"itemId": null}`).
    fn create(&self, path: &str, body: &Value) -> Result<Option<i64>, WriteFailure>;
    /// `PATCH path` with `id` in the body (the collection URL, never `/{id}`).
    fn update(&self, path: &str, body: &Value) -> Result<(), WriteFailure>;
    fn delete(&self, path: &str) -> Result<(), WriteFailure>;
}

/// The records a plan touches, to re-read before writing and refresh after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Every contract of these companies is read (that is how a landed create is found).
    pub company_ids: BTreeSet<i64>,
    pub contract_ids: BTreeSet<i64>,
    pub skus: BTreeSet<String>,
    /// Unit periods outside this window are neither read nor compared (as in the pull).
    pub units_window: Option<crate::snapshot::UnitsWindow>,
}

impl Scope {
    pub fn is_empty(&self) -> bool {
        self.company_ids.is_empty() && self.contract_ids.is_empty() && self.skus.is_empty()
    }

    /// The scope of a plan: companies and contracts it writes under, skus it creates.
    pub fn of_plan(plan: &Plan, snapshot: &Snapshot) -> Scope {
        let mut scope = Scope::default();
        for change in &plan.changes {
            match Entity::from_name(&change.entity) {
                Some(Entity::Services) => {
                    if let Some(sku) = change.fields.get("sku").and_then(Value::as_str) {
                        scope.skus.insert(sku.to_string());
                    }
                }
                Some(Entity::Contracts) => {
                    if let Some(company) = change.fields.get("companyID").and_then(Value::as_i64) {
                        scope.company_ids.insert(company);
                    }
                    if let Some(id) = change.id {
                        scope.contract_ids.insert(id);
                    }
                }
                _ => {
                    if let Some(PlanParent::Existing { id, .. }) = &change.parent {
                        scope.contract_ids.insert(*id);
                    }
                }
            }
        }
        for id in &scope.contract_ids {
            if let Some(contract) = snapshot.contracts.get(id) {
                scope.company_ids.insert(contract.company_id);
            }
        }
        scope
    }

    /// The part of a snapshot this scope covers; compared with a fresh read to spot staleness.
    pub fn restrict(&self, snapshot: &Snapshot) -> Snapshot {
        let contracts: BTreeMap<_, _> = snapshot
            .contracts
            .iter()
            .filter(|(id, c)| {
                self.contract_ids.contains(id) || self.company_ids.contains(&c.company_id)
            })
            .map(|(id, c)| (*id, c.clone()))
            .collect();
        let under = |contract_id: &i64| contracts.contains_key(contract_id);
        Snapshot {
            companies: BTreeMap::new(),
            services: snapshot
                .services
                .iter()
                .filter(|(_, s)| s.sku.as_ref().is_some_and(|sku| self.skus.contains(sku)))
                .map(|(id, s)| (*id, s.clone()))
                .collect(),
            contract_services: snapshot
                .contract_services
                .iter()
                .filter(|(_, s)| under(&s.contract_id))
                .map(|(id, s)| (*id, s.clone()))
                .collect(),
            contract_service_units: snapshot
                .contract_service_units
                .iter()
                .filter(|(_, u)| under(&u.contract_id))
                .filter(|(_, u)| self.units_window.is_none_or(|w| w.holds(u)))
                .map(|(id, u)| (*id, u.clone()))
                .collect(),
            charges: snapshot
                .charges
                .iter()
                .filter(|(_, c)| under(&c.contract_id))
                .map(|(id, c)| (*id, c.clone()))
                .collect(),
            billing_codes: BTreeMap::new(),
            refreshed_at: None,
            contracts,
        }
    }
}

/// Reads a scope from Autotask in pages (the Autotask module implements it).
pub trait AutotaskReader {
    fn read_scope(&self, scope: &Scope) -> Result<Snapshot, WriteFailure>;
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stale plan: {0}; nothing was written (run `cmat plan` again)")]
    Stale(String),
    #[error("cannot re-read the records the plan touches: {0}")]
    Reread(WriteFailure),
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

/// The HTTP path and body of a change, with refs resolved to the ids Autotask returned.
fn request(change: &PlanChange, ids: &BTreeMap<String, i64>) -> Result<(String, Value), String> {
    let resolve_ref = |reference: &str| {
        ids.get(reference)
            .copied()
            .ok_or_else(|| format!("{reference} was not created"))
    };
    let parent_id = match &change.parent {
        Some(PlanParent::Existing { id, .. }) => Some(*id),
        Some(PlanParent::Planned { reference }) => Some(resolve_ref(reference)?),
        None => None,
    };
    let mut body = Map::new();
    for (field, value) in &change.fields {
        let value = match value {
            Value::Object(map) if map.contains_key("ref") => {
                json!(resolve_ref(
                    map.get("ref").and_then(Value::as_str).unwrap_or_default()
                )?)
            }
            other => other.clone(),
        };
        body.insert(field.clone(), value);
    }
    if let Some(id) = change.id {
        body.insert("id".into(), json!(id));
    }
    let entity = Entity::from_name(&change.entity)
        .ok_or_else(|| format!("unknown entity {}", change.entity))?;
    let child = |segment: &str| -> Result<String, String> {
        let contract =
            parent_id.ok_or_else(|| format!("{} needs a parent contract", change.entity))?;
        Ok(format!("Contracts/{contract}/{segment}"))
    };
    let path = match entity {
        Entity::Services => "Services".to_string(),
        Entity::Contracts => "Contracts".to_string(),
        Entity::ContractServices => child("Services")?,
        Entity::ContractServiceAdjustments => child("ServiceAdjustments")?,
        Entity::ContractCharges => child("Charges")?,
    };
    if entity != Entity::Services && entity != Entity::Contracts {
        if let Some(contract) = parent_id {
            body.insert("contractID".into(), json!(contract));
        }
    }
    let path = match (change.action, change.id) {
        (Action::Delete, Some(id)) => format!("{path}/{id}"),
        _ => path,
    };
    Ok((path, Value::Object(body)))
}

pub struct ApplyOptions {
    /// Writes in flight at once (Autotask allows 3 per endpoint and integration).
    pub concurrency: usize,
    pub run_id: String,
    pub now: fn() -> DateTime<Utc>,
    /// Called after each change, for a progress bar.
    pub on_progress: Option<Box<dyn Fn(u64) + Sync>>,
}

/// Sends every change of the plan, phase by phase (Services, Contracts, contract services,
/// adjustments, charges), journaling and auditing each. Stops early when the hour's budget
/// is spent; the rest is reported as skipped and a rerun resumes.
pub fn apply_plan(
    plan: &Plan,
    writer: &dyn AutotaskWriter,
    store: &mut Store,
    options: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let store = Mutex::new(store);
    let ids: Mutex<BTreeMap<String, i64>> = Mutex::new(BTreeMap::new());
    let outcomes: Mutex<BTreeMap<usize, Outcome>> = Mutex::new(BTreeMap::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let store_error: Mutex<Option<StoreError>> = Mutex::new(None);

    let mut phases: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (index, change) in plan.changes.iter().enumerate() {
        let phase = Entity::from_name(&change.entity)
            .map(Entity::phase)
            .unwrap_or(u8::MAX);
        phases.entry(phase).or_default().push(index);
    }
    let done = std::sync::atomic::AtomicU64::new(0);
    for indexes in phases.values() {
        let queue = Mutex::new(indexes.iter().copied().collect::<VecDeque<_>>());
        std::thread::scope(|scope| {
            for _ in 0..options.concurrency.max(1) {
                scope.spawn(|| loop {
                    let Some(index) = queue.lock().ok().and_then(|mut queue| queue.pop_front())
                    else {
                        return;
                    };
                    let change = &plan.changes[index];
                    let outcome = if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        Outcome::Skipped("not sent: the run stopped early".into())
                    } else {
                        let prepared = ids
                            .lock()
                            .map(|ids| request(change, &ids))
                            .unwrap_or_else(|_| Err("internal lock poisoned".to_string()));
                        match prepared {
                            Err(reason) => Outcome::Skipped(format!("not sent: {reason}")),
                            Ok((path, body)) => {
                                match send(change, &path, &body, writer, &store, &options.run_id) {
                                    Ok(outcome) => outcome,
                                    Err(err) => {
                                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                                        if let Ok(mut slot) = store_error.lock() {
                                            slot.get_or_insert(err);
                                        }
                                        Outcome::Skipped(
                                            "not sent: the state database failed".into(),
                                        )
                                    }
                                }
                            }
                        }
                    };
                    if let Outcome::Written { id: Some(id) } = &outcome {
                        if let Ok(mut ids) = ids.lock() {
                            ids.insert(change.reference.clone(), *id);
                        }
                    }
                    if let Outcome::Failed(WriteFailure::Budget { .. }) = &outcome {
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    let rows = audit_rows(change, &outcome, &options.run_id, (options.now)());
                    if let Ok(mut store) = store.lock() {
                        if let Err(err) = store.append_audit(&rows) {
                            if let Ok(mut slot) = store_error.lock() {
                                slot.get_or_insert(err);
                            }
                        }
                    }
                    if let Ok(mut outcomes) = outcomes.lock() {
                        outcomes.insert(index, outcome);
                    }
                    let count = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    if let Some(progress) = &options.on_progress {
                        progress(count);
                    }
                });
            }
        });
    }
    if let Some(err) = store_error.into_inner().ok().flatten() {
        return Err(ApplyError::Store(err));
    }
    let mut report = ApplyReport {
        run_id: options.run_id.clone(),
        ..ApplyReport::default()
    };
    for (index, outcome) in outcomes.into_inner().unwrap_or_default() {
        let change = &plan.changes[index];
        let label = format!(
            "{} {} {}",
            change.reference,
            crate::plan::action_name(change.action),
            change.entity
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
                report
                    .failures
                    .push(format!("{label} ({}): {failure}", change.key));
            }
            Outcome::Skipped(reason) => {
                report.skipped += 1;
                report
                    .failures
                    .push(format!("{label} ({}): {reason}", change.key));
            }
        }
    }
    Ok(report)
}

/// Journal the intent, send, journal the outcome. Only a store failure is an `Err`.
fn send(
    change: &PlanChange,
    path: &str,
    body: &Value,
    writer: &dyn AutotaskWriter,
    store: &Mutex<&mut Store>,
    run_id: &str,
) -> Result<Outcome, StoreError> {
    let intent = JournalIntent {
        run_id: run_id.to_string(),
        change_ref: change.reference.clone(),
        action: crate::plan::action_name(change.action).to_string(),
        entity: change.entity.clone(),
        key: change.key.clone(),
        request_body: body.to_string(),
    };
    let mut journal_id = lock(store)?.journal_intent(&intent)?;
    let mut result = match change.action {
        Action::Create | Action::Adjust => writer.create(path, body),
        Action::Update => writer.update(path, body).map(|()| change.id),
        Action::Delete => writer.delete(path).map(|()| change.id),
    };
    // Autotask keeps one adjustment per contract service and day ("duplicate …
    // contract_service_period"). A restated bill re-adjusting the same day is refused as
    // such, and nothing was written: it goes again, once, on the next day.
    if let (Action::Adjust, Err(WriteFailure::Rejected { message, .. })) = (change.action, &result)
    {
        if let Some(next_day) = message
            .contains("duplicate")
            .then(|| next_day(body))
            .flatten()
        {
            lock(store)?.journal_outcome(
                journal_id,
                &JournalOutcome::Failed {
                    message: message.clone(),
                },
            )?;
            journal_id = lock(store)?.journal_intent(&JournalIntent {
                request_body: next_day.to_string(),
                ..intent
            })?;
            result = writer.create(path, &next_day);
        }
    }
    let (outcome, journal) = match result {
        Ok(id) => (
            Outcome::Written { id },
            JournalOutcome::Done { autotask_id: id },
        ),
        Err(WriteFailure::OutcomeUnknown { message }) => (
            Outcome::Failed(WriteFailure::OutcomeUnknown {
                message: message.clone(),
            }),
            JournalOutcome::Unknown { message },
        ),
        Err(failure) => {
            let message = failure.to_string();
            (Outcome::Failed(failure), JournalOutcome::Failed { message })
        }
    };
    lock(store)?.journal_outcome(journal_id, &journal)?;
    Ok(outcome)
}

/// The same adjustment body, effective one day later.
fn next_day(body: &Value) -> Option<Value> {
    let date: chrono::NaiveDate = body
        .get("effectiveDate")?
        .as_str()?
        .get(..10)?
        .parse()
        .ok()?;
    let mut moved = body.clone();
    moved["effectiveDate"] = json!(date.succ_opt()?.to_string());
    Some(moved)
}

fn lock<'a, 'b>(
    store: &'a Mutex<&'b mut Store>,
) -> Result<std::sync::MutexGuard<'a, &'b mut Store>, StoreError> {
    store
        .lock()
        .map_err(|_| StoreError::Other("state database lock poisoned".into()))
}

/// One audit row per field of the change (SPEC.md: "one row per field written").
fn audit_rows(
    change: &PlanChange,
    outcome: &Outcome,
    run_id: &str,
    at: DateTime<Utc>,
) -> Vec<AuditRow> {
    let (result, autotask_id, status, message) = match outcome {
        Outcome::Written { id } => (
            AuditOutcome::Applied,
            id.or(change.id),
            Some(200),
            change.reason.clone(),
        ),
        Outcome::Failed(WriteFailure::Rejected { status, message }) => {
            (AuditOutcome::Failed, change.id, *status, message.clone())
        }
        Outcome::Failed(failure) => (AuditOutcome::Failed, change.id, None, failure.to_string()),
        Outcome::Skipped(reason) => (AuditOutcome::Skipped, change.id, None, reason.clone()),
    };
    change
        .fields
        .iter()
        .map(|(field, value)| AuditRow {
            run_id: run_id.to_string(),
            at,
            action: crate::plan::action_name(change.action).to_string(),
            entity: change.entity.clone(),
            autotask_id,
            key: change.key.clone(),
            field: field.clone(),
            old_value: change
                .before
                .as_ref()
                .and_then(|before| before.get(field))
                .map(plain),
            new_value: Some(plain(value)),
            rule: change.rule.clone(),
            outcome: result,
            http_status: status,
            message: message.clone(),
        })
        .collect()
}

/// Compares what Autotask holds now with what the snapshot says, over the plan's scope.
/// Returns the differences found, for the "stale plan" message.
pub fn scope_differences(scope: &Scope, snapshot: &Snapshot, fresh: &Snapshot) -> Vec<String> {
    let known = scope.restrict(snapshot);
    let fresh = scope.restrict(fresh);
    let mut differences = Vec::new();
    fn compare<T: PartialEq>(
        kind: &str,
        known: &BTreeMap<i64, T>,
        fresh: &BTreeMap<i64, T>,
        out: &mut Vec<String>,
    ) {
        for (id, record) in fresh {
            match known.get(id) {
                None => out.push(format!("{kind} {id} is new in Autotask")),
                Some(old) if old != record => out.push(format!("{kind} {id} changed in Autotask")),
                _ => {}
            }
        }
        for id in known.keys().filter(|id| !fresh.contains_key(id)) {
            out.push(format!("{kind} {id} is gone from Autotask"));
        }
    }
    compare(
        "contract",
        &known.contracts,
        &fresh.contracts,
        &mut differences,
    );
    compare(
        "service",
        &known.services,
        &fresh.services,
        &mut differences,
    );
    compare(
        "contract service",
        &known.contract_services,
        &fresh.contract_services,
        &mut differences,
    );
    compare(
        "contract service units",
        &known.contract_service_units,
        &fresh.contract_service_units,
        &mut differences,
    );
    compare("charge", &known.charges, &fresh.charges, &mut differences);
    differences
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::{default_rules, line};
    use crate::plan::Digests;
    use crate::snapshot::Company;
    use crate::store::{Access, AuditFilter};

    /// Records every request; fails the write whose 0-based position is `fail_at`.
    struct FakeAutotask {
        sent: Mutex<Vec<(String, Value)>>,
        fail_at: Option<(usize, WriteFailure)>,
        next_id: std::sync::atomic::AtomicI64,
    }

    impl FakeAutotask {
        fn new(fail_at: Option<(usize, WriteFailure)>) -> Self {
            FakeAutotask {
                sent: Mutex::new(Vec::new()),
                fail_at,
                next_id: 500.into(),
            }
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
            Ok(Some(
                self.next_id
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            ))
        }
        fn update(&self, path: &str, body: &Value) -> Result<(), WriteFailure> {
            self.record(path, body)
        }
        fn delete(&self, path: &str) -> Result<(), WriteFailure> {
            self.record(path, &Value::Null)
        }
    }

    fn onboarding_plan() -> Plan {
        let rules = default_rules();
        let lines = vec![
            line(
                "2026-10-01",
                "Contoso",
                "Microsoft CSP",
                "S1",
                "A",
                "10",
                "5",
            ),
            line("2026-10-01", "Contoso", "Azure Plan", "AZ", "M1", "2", "3"),
        ];
        let mut snapshot = Snapshot::default();
        snapshot.companies.insert(
            100,
            Company {
                id: 100,
                company_name: "Contoso".into(),
                is_active: true,
            },
        );
        let desired = crate::desired::desired_state(&rules, &lines);
        let digests = Digests {
            snapshot: String::new(),
            inputs: String::new(),
            mappings: String::new(),
        };
        Plan::new(
            crate::diff::diff(&rules, &desired, &snapshot),
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
        // Service first, then both contracts (either order), then the children under real ids.
        assert_eq!(paths[0], "Services");
        assert_eq!(&paths[1..3], &["Contracts", "Contracts"]);
        let adjustment = sent
            .iter()
            .find(|(path, _)| path.ends_with("/ServiceAdjustments"))
            .expect("adjustment");
        assert_eq!(adjustment.1["serviceID"], json!(500));
        assert_eq!(
            adjustment.0,
            format!(
                "Contracts/{}/ServiceAdjustments",
                adjustment.1["contractID"]
            )
        );
        let audit = store.audit_rows(&AuditFilter::default()).expect("audit");
        let fields: usize = plan.changes.iter().map(|c| c.fields.len()).sum();
        assert_eq!(audit.len(), fields, "one audit row per field written");
        assert!(store.journal_unresolved().expect("journal").is_empty());
    }

    #[test]
    fn an_unknown_outcome_is_journaled_and_its_children_are_not_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("state.db"), Access::Write).expect("store");
        let plan = onboarding_plan();
        // The first write is the Service create: its outcome is unknown.
        let fake = FakeAutotask::new(Some((
            0,
            WriteFailure::OutcomeUnknown {
                message: "connection reset".into(),
            },
        )));
        let report = apply_plan(&plan, &fake, &mut store, &options()).expect("apply");
        assert_eq!(report.unknown, 1);
        assert_eq!(
            report.skipped, 1,
            "the adjustment needing the service is not sent: {report:?}"
        );
        let unresolved = store.journal_unresolved().expect("journal");
        assert_eq!(unresolved.len(), 1);
        assert_eq!(unresolved[0].intent.key, "sku:A");
        let sent = fake.sent.lock().expect("lock");
        assert_eq!(
            sent.iter().filter(|(path, _)| path == "Services").count(),
            1,
            "never re-sent"
        );
    }

    #[test]
    fn a_spent_hourly_budget_stops_the_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("state.db"), Access::Write).expect("store");
        let plan = onboarding_plan();
        let fake = FakeAutotask::new(Some((
            0,
            WriteFailure::Budget {
                message: "hour spent".into(),
            },
        )));
        let options = ApplyOptions {
            concurrency: 1,
            ..options()
        };
        let report = apply_plan(&plan, &fake, &mut store, &options).expect("apply");
        assert!(report.budget_exhausted);
        assert_eq!(fake.sent.lock().expect("lock").len(), 1);
        assert_eq!(report.skipped, plan.changes.len() as u64 - 1);
    }
}
