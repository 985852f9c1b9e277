//! Apply: sends exactly a plan's changes to Autotask, parents before children, each write
//! journaled before it is sent and audited after. The only stage that writes to Autotask.
//!
//! Safety rests on two habits. Every write is recorded as an intent first, so a crash leaves
//! a trace. And a write whose outcome is unknown (timeout, dropped connection) is never sent
//! again blindly: the next run re-reads the records the plan touches and plans from what
//! Autotask really holds, finding a landed create by its natural key.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::autotask::Rejection;
use crate::store::{AuditOutcome, AuditRow, JournalIntent, JournalOutcome, Store, StoreError};
use cmat_engine::diff::{Action, Entity};
use cmat_engine::plan::{plain, Plan, PlanChange, PlanParent};
use cmat_engine::snapshot::Snapshot;

/// How a write failed, as far as apply needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteFailure {
    /// Autotask answered and refused: nothing was written. `kind` says what was refused
    /// (apply matches on it, never on the message).
    Rejected { status: Option<u16>, kind: Rejection, message: String },
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
    /// Units in force on `date` for a contract's service, read from Autotask now
    /// (ContractServiceUnits). Asked only when Autotask refuses a second same-day adjustment.
    fn units_on(
        &self,
        contract_id: i64,
        service_id: i64,
        date: chrono::NaiveDate,
    ) -> Result<i64, WriteFailure>;
}

/// The records a plan touches, to re-read before writing and refresh after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Every contract of these companies is read (that is how a landed create is found).
    pub company_ids: BTreeSet<i64>,
    pub contract_ids: BTreeSet<i64>,
    pub skus: BTreeSet<String>,
    /// Unit periods outside this window are neither read nor compared (as in the pull).
    pub units_window: Option<cmat_engine::snapshot::UnitsWindow>,
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
            picklists: Default::default(),
            currencies: BTreeMap::new(),
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

/// Fields Autotask types as numbers. The plan keeps them as exact decimal strings; the API
/// gets JSON numbers, as its Swagger declares them.
const DECIMAL_FIELDS: [&str; 5] =
    ["unitPrice", "unitCost", "unitQuantity", "adjustedUnitPrice", "adjustedUnitCost"];

/// A decimal string as a JSON number token. The amounts cmat sends have at most 4 decimals and
/// far fewer than 15 significant digits, so the number's text is the decimal's, exactly.
fn api_number(amount: &str) -> Result<Value, String> {
    let decimal: rust_decimal::Decimal =
        amount.parse().map_err(|_| format!("{amount:?} is not a decimal amount"))?;
    decimal
        .normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .map(Value::Number)
        .map_err(|_| format!("{amount:?} cannot be sent as a JSON number"))
}

/// The HTTP path and body of a change, with refs resolved to the ids Autotask returned.
fn request(change: &PlanChange, ids: &BTreeMap<String, i64>) -> Result<(String, Value), String> {
    let resolve_ref = |reference: &str| {
        ids.get(reference).copied().ok_or_else(|| format!("{reference} was not created"))
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
                json!(resolve_ref(map.get("ref").and_then(Value::as_str).unwrap_or_default())?)
            }
            Value::String(amount) if DECIMAL_FIELDS.contains(&field.as_str()) => {
                api_number(amount)?
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
    let run = Run {
        plan,
        writer,
        options,
        store: Mutex::new(store),
        ids: Mutex::new(BTreeMap::new()),
        outcomes: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
        store_error: Mutex::new(None),
        done: AtomicU64::new(0),
    };
    let mut phases: BTreeMap<u8, VecDeque<usize>> = BTreeMap::new();
    for (index, change) in plan.changes.iter().enumerate() {
        let phase = Entity::from_name(&change.entity).map(Entity::phase).unwrap_or(u8::MAX);
        phases.entry(phase).or_default().push_back(index);
    }
    // A phase ends before the next starts: children need their parents' ids.
    for queue in phases.into_values() {
        let queue = Mutex::new(queue);
        std::thread::scope(|scope| {
            for _ in 0..options.concurrency.max(1) {
                scope.spawn(|| {
                    while let Some(index) =
                        queue.lock().ok().and_then(|mut queue| queue.pop_front())
                    {
                        run.apply_one(index);
                    }
                });
            }
        });
    }
    run.report()
}

/// The state one apply shares between its writer threads.
struct Run<'a, 'b> {
    plan: &'a Plan,
    writer: &'a dyn AutotaskWriter,
    options: &'a ApplyOptions,
    store: Mutex<&'b mut Store>,
    /// Plan refs → ids Autotask returned.
    ids: Mutex<BTreeMap<String, i64>>,
    outcomes: Mutex<BTreeMap<usize, Outcome>>,
    /// Set when the hour's budget is spent or the state database fails: send nothing more.
    stop: AtomicBool,
    store_error: Mutex<Option<StoreError>>,
    done: AtomicU64,
}

impl Run<'_, '_> {
    fn apply_one(&self, index: usize) {
        let change = &self.plan.changes[index];
        let outcome = self.outcome_of(change);
        if let Outcome::Written { id: Some(id) } = &outcome {
            if let Ok(mut ids) = self.ids.lock() {
                ids.insert(change.reference.clone(), *id);
            }
        }
        if let Outcome::Failed(WriteFailure::Budget { .. }) = &outcome {
            self.stop.store(true, Ordering::SeqCst);
        }
        let rows = audit_rows(change, &outcome, &self.options.run_id, (self.options.now)());
        if let Err(err) = lock(&self.store).and_then(|mut store| store.append_audit(&rows)) {
            self.fail_store(err);
        }
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.insert(index, outcome);
        }
        let count = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(progress) = &self.options.on_progress {
            progress(count);
        }
    }

    fn outcome_of(&self, change: &PlanChange) -> Outcome {
        if self.stop.load(Ordering::SeqCst) {
            return Outcome::Skipped("not sent: the run stopped early".into());
        }
        let prepared = self
            .ids
            .lock()
            .map_err(|_| "internal lock poisoned".to_string())
            .and_then(|ids| request(change, &ids));
        let (path, body) = match prepared {
            Ok(prepared) => prepared,
            Err(reason) => return Outcome::Skipped(format!("not sent: {reason}")),
        };
        match send(change, &path, &body, self.writer, &self.store, &self.options.run_id) {
            Ok(outcome) => outcome,
            Err(err) => {
                self.fail_store(err);
                Outcome::Skipped("not sent: the state database failed".into())
            }
        }
    }

    fn fail_store(&self, err: StoreError) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = self.store_error.lock() {
            slot.get_or_insert(err);
        }
    }

    fn report(self) -> Result<ApplyReport, ApplyError> {
        if let Some(err) = self.store_error.into_inner().ok().flatten() {
            return Err(ApplyError::Store(err));
        }
        let mut report =
            ApplyReport { run_id: self.options.run_id.clone(), ..ApplyReport::default() };
        for (index, outcome) in self.outcomes.into_inner().unwrap_or_default() {
            let change = &self.plan.changes[index];
            let label = format!(
                "{} {} {} ({})",
                change.reference,
                cmat_engine::plan::action_name(change.action),
                change.entity,
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
        action: cmat_engine::plan::action_name(change.action).to_string(),
        entity: change.entity.clone(),
        key: change.key.clone(),
        request_body: body.to_string(),
    };
    let mut journal_id = lock(store)?.journal_intent(&intent)?;
    tracing::debug!(
        target: crate::logging::APPLY_TARGET,
        "{} {} {} ({}): sending to {path}",
        change.reference,
        intent.action,
        change.entity,
        change.key
    );
    let mut result = match change.action {
        Action::Create | Action::Adjust => writer.create(path, body),
        Action::Update => writer.update(path, body).map(|()| change.id),
        Action::Delete => writer.delete(path).map(|()| change.id),
    };
    // Autotask keeps one adjustment per contract service and day ("duplicate …
    // contract_service_period"), and nothing was written. The adjustment already there is
    // either one Autotask held when the plan was made (a restated bill changing the same
    // day's count again: the change goes, once, on the next day), or one that landed after
    // the plan's re-read, like a killed run's write that Autotask finished late: sent again on
    // the next day, it would count the units twice. The units in force now tell which.
    if let (
        Action::Adjust,
        Err(WriteFailure::Rejected { status, kind: Rejection::DuplicateAdjustment, message }),
    ) = (change.action, &result)
    {
        match same_day(change, body, writer) {
            SameDay::NextDay(next_day) => {
                lock(store)?.journal_outcome(
                    journal_id,
                    &JournalOutcome::Failed { message: message.clone() },
                )?;
                journal_id = lock(store)?.journal_intent(&JournalIntent {
                    request_body: next_day.to_string(),
                    ..intent
                })?;
                result = writer.create(path, &next_day);
            }
            SameDay::Landed(reason) => {
                lock(store)?.journal_outcome(
                    journal_id,
                    &JournalOutcome::Failed { message: format!("{message} ({reason})") },
                )?;
                return Ok(Outcome::Skipped(reason));
            }
            SameDay::Stop(reason) => {
                result = Err(WriteFailure::Rejected {
                    status: *status,
                    kind: Rejection::DuplicateAdjustment,
                    message: format!("{message}; {reason}"),
                });
            }
        }
    }
    if let Err(failure) = &result {
        // Beside the request lines of `-v`, which cannot know the change they carry.
        tracing::warn!(
            target: crate::logging::APPLY_TARGET,
            "{} {} {} ({}) failed: {failure}",
            change.reference,
            cmat_engine::plan::action_name(change.action),
            change.entity,
            change.key
        );
    }
    let (outcome, journal) = match result {
        Ok(id) => (Outcome::Written { id }, JournalOutcome::Done { autotask_id: id }),
        Err(WriteFailure::OutcomeUnknown { message }) => (
            Outcome::Failed(WriteFailure::OutcomeUnknown { message: message.clone() }),
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

/// What to do with an adjustment Autotask refused as a second one on the same day.
enum SameDay {
    /// Autotask holds what the plan was computed from: the change goes on the next day.
    NextDay(Value),
    /// Autotask already holds the units the change aims at: an earlier write landed.
    Landed(String),
    /// Autotask holds something else, or cannot be read: not sent; the next run replans.
    Stop(String),
}

fn same_day(change: &PlanChange, body: &Value, writer: &dyn AutotaskWriter) -> SameDay {
    let field = |name: &str| body.get(name).and_then(Value::as_i64);
    let date = body
        .get("effectiveDate")
        .and_then(Value::as_str)
        .and_then(|text| text.get(..10))
        .and_then(|text| text.parse::<chrono::NaiveDate>().ok());
    let (Some(contract), Some(service), Some(unit_change), Some(date), Some(next_day)) =
        (field("contractID"), field("serviceID"), field("unitChange"), date, next_day(body))
    else {
        return SameDay::Stop("not sent: the adjustment cannot be moved to the next day".into());
    };
    let before = change
        .before
        .as_ref()
        .and_then(|before| before.get("units"))
        .map(plain)
        .and_then(|units| units.parse::<i64>().ok())
        .unwrap_or(0);
    let target = before + unit_change;
    // A change of ours that landed on the refused day shows on the day after it.
    let checked = date.succ_opt().unwrap_or(date);
    match writer.units_on(contract, service, checked) {
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

/// The same adjustment body, effective one day later.
fn next_day(body: &Value) -> Option<Value> {
    let date: chrono::NaiveDate = body.get("effectiveDate")?.as_str()?.get(..10)?.parse().ok()?;
    let mut moved = body.clone();
    moved["effectiveDate"] = json!(date.succ_opt()?.to_string());
    Some(moved)
}

fn lock<'a, 'b>(
    store: &'a Mutex<&'b mut Store>,
) -> Result<std::sync::MutexGuard<'a, &'b mut Store>, StoreError> {
    store.lock().map_err(|_| StoreError::Poisoned)
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
            (AuditOutcome::Applied, id.or(change.id), Some(200), change.reason.clone())
        }
        Outcome::Failed(WriteFailure::Rejected { status, message, .. }) => {
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
            action: cmat_engine::plan::action_name(change.action).to_string(),
            entity: change.entity.clone(),
            autotask_id,
            key: change.key.clone(),
            field: field.clone(),
            old_value: change.before.as_ref().and_then(|before| before.get(field)).map(plain),
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
    compare("contract", &known.contracts, &fresh.contracts, &mut differences);
    compare("service", &known.services, &fresh.services, &mut differences);
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
    use crate::store::{Access, AuditFilter};
    use cmat_engine::plan::Digests;
    use cmat_engine::snapshot::Company;
    use cmat_engine::testing::{default_rules, line};

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
        assert_eq!(api_number("20.6000").expect("number").to_string(), "20.6");
        assert_eq!(api_number("59354.1036").expect("number").to_string(), "59354.1036");
        assert_eq!(api_number("-170.1084").expect("number").to_string(), "-170.1084");
        assert_eq!(api_number("1.0000").expect("number").to_string(), "1");
        assert!(api_number("1,5").is_err());
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
            format!("Contracts/{}/ServiceAdjustments", adjustment.1["contractID"])
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
            WriteFailure::OutcomeUnknown { message: "connection reset".into() },
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
        let fake =
            FakeAutotask::new(Some((0, WriteFailure::Budget { message: "hour spent".into() })));
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
            plan.changes.iter().find(|c| c.action == Action::Adjust).expect("an adjustment");
        assert_eq!(adjustment.fields["unitChange"], json!(10));
        assert_eq!(adjustment.before.as_ref().unwrap()["units"], json!("0"));
        // Service, two contracts, then the adjustment (one at a time: a fixed order).
        let mut fake = FakeAutotask::new(Some((
            3,
            WriteFailure::Rejected {
                status: Some(500),
                kind: Rejection::DuplicateAdjustment,
                message: "Cannot insert duplicate key row in object 'dbo.contract_service_period'"
                    .into(),
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
