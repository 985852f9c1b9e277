//! The apply workflow: settle what an earlier run left in flight, check a saved plan against
//! what it was computed from (digests, then Autotask itself), plan again from what Autotask
//! holds, settle the journal, write, and refresh the snapshot from what was written. No
//! prompts and no printing: what a person should hear comes back as [`Note`]s.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::autotask::adapter::{AutotaskReader, WriteFailure};
use crate::autotask::read::ChildrenRead;
use crate::autotask::{ApplyConnection, PullError};
use crate::store::{AuditOutcome, AuditRow, JournalOutcome, Store, StoreError};
use crate::workspace::ApplyConfig;
use cmat_engine::plan::{Approval, ApprovalStatus, Plan, PlanError};
use cmat_engine::scope::Scope;
use cmat_engine::snapshot::Snapshot;
use cmat_engine::table::Table;
use cmat_engine::write::{Action, Entity, NaturalKey, Write};

use super::{Loaded, PlanningError};

mod journal;
mod schedule;
mod write;

pub use write::{apply_plan, ApplyError, ApplyOptions, ApplyReport};

/// A plan read from a file, and where it came from (for messages).
pub struct SavedPlan {
    pub plan: Plan,
    pub path: PathBuf,
    /// Whether the file's approval holds, judged from its exact bytes when read.
    pub approval: ApprovalStatus,
}

/// Why a plan may not be written under `[apply] require_approval` (issue 29); nothing was.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("[apply] require_approval = true: only a saved plan a person approved is written; nothing was written\nhint: cmat plan --out plan.json, then cmat approve plan.json --by NAME (someone else), then cmat apply plan.json")]
    NoPlanFile,
    #[error("{path}: the plan is not approved and [apply] require_approval = true; nothing was written\nhint: cmat approve {path} --by NAME, then cmat apply {path}")]
    Unapproved { path: String },
    #[error("{path}: the plan's approval is void: {reason}; nothing was written\nhint: review the plan again and approve it anew: cmat approve {path} --by NAME")]
    Void { path: String, reason: String },
    #[error("{path}: approved by {name}, who also made the plan, and [apply] require_distinct_approver = true; nothing was written")]
    SameAsAuthor { path: String, name: String },
}

/// The approval a saved plan must carry under `[apply]`'s rules, or why it cannot be written.
/// Without `require_approval` a valid approval is still returned (for the audit trail), and
/// a void one is only worth a warning, which the caller gives.
pub fn check_approval(
    config: &ApplyConfig,
    saved: Option<&SavedPlan>,
) -> Result<Option<Approval>, ApprovalError> {
    let Some(saved) = saved else {
        return if config.require_approval { Err(ApprovalError::NoPlanFile) } else { Ok(None) };
    };
    let path = saved.path.display().to_string();
    match (&saved.approval, config.require_approval) {
        (ApprovalStatus::Approved(approval), _) => {
            if config.require_distinct_approver
                && same_person(saved.plan.created_by.as_deref(), &approval.by)
            {
                return Err(ApprovalError::SameAsAuthor { path, name: approval.by.clone() });
            }
            Ok(Some(approval.clone()))
        }
        (ApprovalStatus::Unapproved, true) => Err(ApprovalError::Unapproved { path }),
        (ApprovalStatus::Void(reason), true) => {
            Err(ApprovalError::Void { path, reason: reason.clone() })
        }
        (_, false) => Ok(None),
    }
}

/// Puts who approved a run's plan into its audit trail: `approve` of the `Plan` whose digest
/// is the key, the author as the old value and the approver as the new one.
pub fn record_approval(
    store: &mut Store,
    run_id: &str,
    approval: &Approval,
    author: Option<String>,
) -> Result<(), StoreError> {
    let row = AuditRow {
        run_id: run_id.to_string(),
        at: chrono::Utc::now(),
        action: "approve".into(),
        entity: "Plan".into(),
        autotask_id: None,
        key: approval.digest.clone(),
        field: "approved_by".into(),
        old_value: author,
        new_value: Some(approval.by.clone()),
        rule: String::new(),
        outcome: AuditOutcome::Applied,
        http_status: None,
        message: format!(
            "approved at {}",
            approval.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    };
    store.append_audit(&[row])
}

/// Names compared as people write them: case and surrounding spaces aside.
pub fn same_person(author: Option<&str>, approver: &str) -> bool {
    author.is_some_and(|author| author.trim().to_lowercase() == approver.trim().to_lowercase())
}

/// What the workflow tells the person running it, as it goes.
#[derive(Debug)]
pub enum Note {
    /// An earlier run stopped while writing: waiting this long for its writes to land.
    Settling { seconds: u64 },
    /// Autotask differs from the snapshot in records the plan touches: planning again.
    Replanning { differences: Vec<String> },
    /// The snapshot could not be refreshed after writing.
    RefreshFailed(WriteFailure),
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{path}: cannot read")]
    ReadPlan {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    #[error(transparent)]
    Planning(#[from] PlanningError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pull(#[from] PullError),
}

impl From<WriteFailure> for WorkflowError {
    fn from(failure: WriteFailure) -> Self {
        WorkflowError::Apply(ApplyError::Reread(failure))
    }
}

pub fn read_plan(path: &Path) -> Result<SavedPlan, WorkflowError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| WorkflowError::ReadPlan { path: name.clone(), source })?;
    let plan = Plan::from_json(&name, &text)?;
    let approval = plan.approval_status(&text);
    Ok(SavedPlan { plan, path: path.to_path_buf(), approval })
}

/// Waits until writes a run that died left without any outcome had time to land: Autotask goes
/// on executing a request after its client is gone, and a re-read made before it lands would
/// not see it, so the write would be sent twice. `[autotask] settle_seconds` (default 15).
pub fn settle_earlier_writes(
    store: &Store,
    settle_seconds: u64,
    note: &mut dyn FnMut(Note),
) -> Result<(), WorkflowError> {
    let pending = store
        .journal_unresolved()?
        .into_iter()
        .filter(|entry| entry.outcome == JournalOutcome::Pending)
        .map(|entry| entry.recorded_at)
        .max();
    let Some(newest) = pending else {
        return Ok(());
    };
    let wait = newest + chrono::Duration::seconds(settle_seconds as i64) - chrono::Utc::now();
    if let Ok(wait) = wait.to_std() {
        note(Note::Settling { seconds: wait.as_secs() + 1 });
        std::thread::sleep(wait);
    }
    Ok(())
}

/// The plan to write: the saved one when nothing it was computed from moved (else
/// [`ApplyError::Stale`]), or a new one from what Autotask holds right now. The journal of
/// earlier runs is settled against the records just re-read.
///
/// `pulled` is what a pull of this same run read moments before `loaded` was made (`sync`):
/// those records are what Autotask holds right now already, so a new plan re-reads only the
/// records it touches that the pull did not read. Never trusted for a saved plan, nor while
/// writes of an earlier run may still land (the journal holds writes without an outcome).
pub fn prepare(
    store: &mut Store,
    loaded: &mut Loaded,
    connection: &ApplyConnection<'_>,
    saved: Option<SavedPlan>,
    pulled: Option<&ChildrenRead>,
    note: &mut dyn FnMut(Note),
) -> Result<Plan, WorkflowError> {
    let plan = match saved {
        Some(saved) => still_current(store, loaded, connection, saved)?,
        None => plan_from_autotask(store, loaded, connection, pulled, note)?,
    };
    resolve_journal(store, &loaded.snapshot)?;
    Ok(plan)
}

/// A saved plan, when nothing it was computed from moved: its digests first (no need to plan
/// again to know whether the inputs moved), then the records it touches, re-read.
fn still_current(
    store: &mut Store,
    loaded: &mut Loaded,
    connection: &ApplyConnection<'_>,
    saved: SavedPlan,
) -> Result<Plan, WorkflowError> {
    let SavedPlan { mut plan, path, .. } = saved;
    let path = path.display().to_string();
    plan.restore_grouping(&loaded.snapshot);
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
        return Err(ApplyError::Stale { path, reasons: stale }.into());
    }
    let scope = touched(loaded, &plan);
    let differences = reread(store, loaded, connection, &scope)?;
    if !differences.is_empty() {
        return Err(ApplyError::Stale { path, reasons: differences }.into());
    }
    Ok(plan)
}

/// A new plan from what Autotask holds right now: units change relatively, so the records it
/// touches are re-read (but those `pulled` has just read) and it is planned again while they
/// differ, three times at most.
fn plan_from_autotask(
    store: &mut Store,
    loaded: &mut Loaded,
    connection: &ApplyConnection<'_>,
    pulled: Option<&ChildrenRead>,
    note: &mut dyn FnMut(Note),
) -> Result<Plan, WorkflowError> {
    if loaded.snapshot.picklists.is_empty() {
        // Never pulled: the rules' labels need the tenant's picklists to become numbers.
        crate::autotask::read::read_tenant_lists(connection.client, &mut loaded.snapshot)?;
        store.replace_snapshot(&loaded.snapshot)?;
    }
    let mut plan = loaded.plan()?;
    let trusted = match pulled {
        Some(read) if store.journal_unresolved()?.is_empty() => Some(read),
        _ => None,
    };
    for _ in 0..3 {
        if !plan.has_changes() {
            break;
        }
        let mut scope = touched(loaded, &plan);
        if let Some(read) = trusted {
            scope = not_read(scope, &loaded.snapshot, read);
        }
        let differences = reread(store, loaded, connection, &scope)?;
        if differences.is_empty() {
            break;
        }
        note(Note::Replanning { differences });
        plan = loaded.plan()?;
    }
    Ok(plan)
}

/// `[margins] policy = refuse`: a plan with prices under such a floor is not written. The CLI
/// asks before showing the confirmation; [`write`] asks again, so no caller can skip it.
pub fn refuse_under_margin_floors(plan: &Plan) -> Result<(), ApplyError> {
    let refusals: Vec<String> = plan
        .margin_refusals()
        .iter()
        .map(|warning| format!("{}: {}", warning.source, warning.message))
        .collect();
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::UnderMarginFloors { refusals })
    }
}

/// Writes the plan, then refreshes the snapshot from Autotask so the next plan is empty
/// without another pull.
pub fn write(
    store: &mut Store,
    loaded: &mut Loaded,
    connection: &ApplyConnection<'_>,
    plan: &Plan,
    options: &ApplyOptions,
    note: &mut dyn FnMut(Note),
) -> Result<ApplyReport, WorkflowError> {
    refuse_under_margin_floors(plan)?;
    let report = apply_plan(plan, connection, store, options)?;
    let scope = written(loaded, plan, &report);
    match connection.read_scope(&scope) {
        Ok(fresh) => refresh_scope(store, &scope, &fresh)?,
        Err(failure) => note(Note::RefreshFailed(failure)),
    }
    loaded.snapshot = store.load_snapshot()?;
    Ok(report)
}

/// Time, process and a per-process sequence: unique even for several applies in one second.
pub fn new_run_id() -> String {
    static SEQUENCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    format!("{}-{}-{sequence}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), std::process::id())
}

/// The records a plan writes to ([`Scope::written_by`]), their unit periods in the window
/// the plan was made with. Its contracts are read by id (with their contract services, units
/// and charges); not the other contracts of their companies: the plan writes nothing there.
fn touched(loaded: &Loaded, plan: &Plan) -> Scope {
    Scope { units_window: loaded.units_window(), ..Scope::written_by(plan) }
}

/// The part of `scope` a pull of this run did not read: contracts, services and charges it
/// reads whole, contract services and unit periods only of the contracts it names.
fn not_read(scope: Scope, snapshot: &Snapshot, read: &ChildrenRead) -> Scope {
    let ChildrenRead::OfContracts(read) = read else {
        return Scope { units_window: scope.units_window, ..Scope::default() };
    };
    let unread = |id: &i64| !read.contains(id);
    // A company under which a contract is created: re-read when one of its contracts' children
    // were not read.
    let company_ids: BTreeSet<i64> = scope
        .company_ids
        .into_iter()
        .filter(|company| {
            snapshot.contracts.values().any(|c| c.company_id == *company && unread(&c.id))
        })
        .collect();
    Scope {
        company_ids,
        contract_ids: scope.contract_ids.into_iter().filter(unread).collect(),
        skus: BTreeSet::new(),
        units_window: scope.units_window,
    }
}

/// What to read back after writing: the records written. A contract created in this run is
/// read by the id Autotask gave it; one whose create got no id is looked for among its
/// company's contracts.
fn written(loaded: &Loaded, plan: &Plan, report: &ApplyReport) -> Scope {
    let mut scope = touched(loaded, plan);
    scope.company_ids.clear();
    for change in &plan.changes {
        if let Write::CreateContract(contract) = &change.write {
            match report.ids.get(&change.reference) {
                Some(id) => scope.contract_ids.insert(*id),
                None => scope.company_ids.insert(contract.company_id),
            };
        }
    }
    scope
}

/// Re-reads `scope` from Autotask (in pages) and, where it differs from the snapshot, stores
/// what Autotask holds now. Returns the differences found.
fn reread(
    store: &mut Store,
    loaded: &mut Loaded,
    reader: &dyn AutotaskReader,
    scope: &Scope,
) -> Result<Vec<String>, WorkflowError> {
    if scope.is_empty() {
        return Ok(Vec::new());
    }
    let fresh = reader.read_scope(scope)?;
    let differences = scope.differences(&loaded.snapshot, &fresh);
    if !differences.is_empty() {
        refresh_scope(store, scope, &fresh)?;
        loaded.snapshot = store.load_snapshot()?;
    }
    Ok(differences)
}

/// Replaces the scope's part of the stored snapshot with what Autotask holds now.
pub fn refresh_scope(store: &mut Store, scope: &Scope, fresh: &Snapshot) -> Result<(), StoreError> {
    let mut snapshot = store.load_snapshot()?;
    let known = scope.restrict(&snapshot);
    let mut fresh = scope.restrict(fresh);
    for table in Table::ALL {
        for id in table.ids(&known) {
            table.remove(&mut snapshot, id);
        }
        table.move_into(&mut snapshot, &mut fresh);
    }
    store.replace_snapshot(&snapshot)
}

/// Writes left with an unknown outcome by an earlier run are settled against what Autotask
/// now holds (the caller has just re-read it): a create found by its natural key, or known not
/// to have landed. Updates and adjustments need nothing: the new plan was computed from
/// Autotask's own values.
fn resolve_journal(store: &mut Store, snapshot: &Snapshot) -> Result<(), StoreError> {
    for entry in store.journal_unresolved()? {
        let intent = &entry.intent;
        let creates = Action::from_name(&intent.action) == Some(Action::Create);
        let found = match (intent.key.parse::<NaturalKey>(), Entity::from_name(&intent.entity)) {
            (Ok(NaturalKey::Service { sku }), _) => snapshot
                .services
                .values()
                .find(|s| s.sku.as_deref() == Some(sku.as_str()))
                .map(|s| Some(s.id)),
            (Ok(NaturalKey::Subscription(subscription)), Some(Entity::Contracts)) if creates => {
                snapshot
                    .contracts
                    .values()
                    .find(|c| c.subscription_id.as_deref() == Some(subscription.as_str()))
                    .map(|c| Some(c.id))
            }
            // A key no cmat writes cannot be looked up: it did not land as far as cmat knows.
            (Err(_), _) if creates => None,
            _ => Some(None),
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
