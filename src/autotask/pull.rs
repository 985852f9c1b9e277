//! `pull autotask`: reads the whole Autotask side cmat cares about into a [`Snapshot`].
//!
//! Every entity is read with `POST {Entity}/query` in pages of 500 (no per-record reads).
//! Independent entities are read in parallel by at most [`PullOptions::workers`] threads; the
//! client's per-endpoint cap still holds. Contract service units are one row per service and
//! month of the contract (12 per service for a year's contract, most of them in the future),
//! so with [`PullOptions::units_window`] only the periods overlapping the current bills'
//! Billing Dates are read (`endDate gte from and startDate lte to`): the engine reads units
//! only on a current bill's Billing Date. On a large tenant that is a tenth of the requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use super::client::{AutotaskClient, AutotaskError};
use super::query::{Condition, Filter};
use super::records::{self, RecordError};
use crate::snapshot::{Snapshot, UnitsWindow};
use crate::store::{Store, StoreError};

/// The entities a pull reads, in the order the summary lists them.
pub const ENTITIES: [&str; 7] = [
    "Companies",
    "Contracts",
    "Services",
    "ContractServices",
    "ContractServiceUnits",
    "ContractCharges",
    "BillingCodes",
];

/// The default name of the Contracts UDF holding the subscription id.
pub const DEFAULT_SUBSCRIPTION_UDF: &str = "Subscription ID";

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Api(#[from] AutotaskError),
    #[error("Autotask sent a record cmat cannot read: {0}")]
    Record(#[from] RecordError),
    #[error("the snapshot could not be stored (the previous one is kept): {0}")]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The Contracts UDF holding the subscription id (the mapping settings' `subscription_udf`).
    pub subscription_udf: String,
    /// Entities read at once (each by one thread, page after page).
    pub workers: usize,
    /// Read only the unit periods overlapping this window; None reads every period.
    pub units_window: Option<UnitsWindow>,
}

/// The ContractServiceUnits filter of a window: periods ending on or after `from` and
/// starting on or before `to`.
pub fn units_filter(window: Option<UnitsWindow>) -> Filter {
    match window {
        None => Filter::all(),
        Some(window) => Filter::new(Condition::gte("endDate", window.from))
            .and_then(|filter| filter.and(Condition::lte("startDate", window.to)))
            .unwrap_or_else(|_| Filter::all()),
    }
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            subscription_udf: DEFAULT_SUBSCRIPTION_UDF.to_string(),
            workers: 3,
            units_window: None,
        }
    }
}

/// Progress as it happens, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullProgress {
    /// A page of `records` records of `entity` arrived.
    Page { entity: &'static str, records: usize },
    /// All of `entity` is read.
    Done { entity: &'static str, records: usize },
}

/// What a pull did, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// Records read per entity, in [`ENTITIES`] order.
    pub counts: Vec<(&'static str, usize)>,
    /// HTTP requests this pull sent (the client's counter difference).
    pub requests: u64,
    pub elapsed: Duration,
}

/// Reads every entity and converts the records. Nothing is stored here.
pub fn pull_snapshot(
    client: &AutotaskClient,
    options: &PullOptions,
    progress: &(dyn Fn(PullProgress) + Sync),
) -> Result<(Snapshot, PullReport), PullError> {
    let started = Instant::now();
    let requests_before = client.requests_sent();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<BTreeMap<usize, Result<Vec<Value>, AutotaskError>>> =
        Mutex::new(BTreeMap::new());
    let workers = options.workers.clamp(1, ENTITIES.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(entity) = ENTITIES.get(index).copied() else {
                    return;
                };
                let mut on_page = |records: usize| progress(PullProgress::Page { entity, records });
                let filter = match entity {
                    "ContractServiceUnits" => units_filter(options.units_window),
                    _ => Filter::all(),
                };
                let result = client.query_pages(entity, &filter, &mut on_page);
                match &result {
                    Ok(records) => progress(PullProgress::Done { entity, records: records.len() }),
                    Err(_) => failed.store(true, Ordering::SeqCst),
                }
                results
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(index, result);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Report the first failure in entity order (stable across runs).
    let mut raw: Vec<Vec<Value>> = Vec::with_capacity(ENTITIES.len());
    for (index, entity) in ENTITIES.iter().enumerate() {
        match results.remove(&index) {
            // Moved, not copied: a large tenant's records are hundreds of MB as JSON values.
            Some(Ok(records)) => raw.push(records),
            Some(Err(err)) => return Err(err.into()),
            None => {
                // Skipped because another entity failed; that failure is in `results`.
                if let Some(Err(err)) = results.values().find(|r| r.is_err()) {
                    return Err(clone_error(err).into());
                }
                return Err(AutotaskError::Config(format!("{entity} was not read")).into());
            }
        }
    }
    let mut snapshot = Snapshot::default();
    for (entity, values) in ENTITIES.iter().zip(raw) {
        add_records(&mut snapshot, entity, &values, &options.subscription_udf)?;
    }
    snapshot.refreshed_at = Some(Utc::now());
    let counts = vec![
        (ENTITIES[0], snapshot.companies.len()),
        (ENTITIES[1], snapshot.contracts.len()),
        (ENTITIES[2], snapshot.services.len()),
        (ENTITIES[3], snapshot.contract_services.len()),
        (ENTITIES[4], snapshot.contract_service_units.len()),
        (ENTITIES[5], snapshot.charges.len()),
        (ENTITIES[6], snapshot.billing_codes.len()),
    ];
    let report = PullReport {
        counts,
        requests: client.requests_sent().saturating_sub(requests_before),
        elapsed: started.elapsed(),
    };
    Ok((snapshot, report))
}

/// Reads the snapshot and replaces the stored one in one transaction; a failed read or write
/// leaves the previous snapshot as it was.
pub fn pull_into_store(
    client: &AutotaskClient,
    store: &mut Store,
    options: &PullOptions,
    progress: &(dyn Fn(PullProgress) + Sync),
) -> Result<PullReport, PullError> {
    let (snapshot, report) = pull_snapshot(client, options, progress)?;
    store.replace_snapshot(&snapshot)?;
    Ok(report)
}

/// AutotaskError holds no io::Error, so a faithful copy is possible.
fn clone_error(err: &AutotaskError) -> AutotaskError {
    use AutotaskError as E;
    match err {
        E::Config(m) => E::Config(m.clone()),
        E::Unauthorized { request } => E::Unauthorized { request: request.clone() },
        E::Api { request, status, messages } => {
            E::Api { request: request.clone(), status: *status, messages: messages.clone() }
        }
        E::ThreadThreshold { request, attempts } => {
            E::ThreadThreshold { request: request.clone(), attempts: *attempts }
        }
        E::Transport { request, message } => {
            E::Transport { request: request.clone(), message: message.clone() }
        }
        E::OutcomeUnknown { request, reason } => {
            E::OutcomeUnknown { request: request.clone(), reason: reason.clone() }
        }
        E::BadResponse { request, message } => {
            E::BadResponse { request: request.clone(), message: message.clone() }
        }
        E::HourlyBudget { used, limit, share } => {
            E::HourlyBudget { used: *used, limit: *limit, share: *share }
        }
        E::Zone { request, user, message } => {
            E::Zone { request: request.clone(), user: user.clone(), message: message.clone() }
        }
        E::Filter { request, source } => {
            E::Filter { request: request.clone(), source: source.clone() }
        }
    }
}

/// Converts `values` of `entity` (one of [`ENTITIES`]) and adds them to `snapshot` by id.
pub fn add_records(
    snapshot: &mut Snapshot,
    entity: &str,
    values: &[Value],
    subscription_udf: &str,
) -> Result<(), RecordError> {
    for value in values {
        match entity {
            "Companies" => {
                let r = records::company(value)?;
                snapshot.companies.insert(r.id, r);
            }
            "Contracts" => {
                let r = records::contract(value, subscription_udf)?;
                snapshot.contracts.insert(r.id, r);
            }
            "Services" => {
                let r = records::service(value)?;
                snapshot.services.insert(r.id, r);
            }
            "ContractServices" => {
                let r = records::contract_service(value)?;
                snapshot.contract_services.insert(r.id, r);
            }
            "ContractServiceUnits" => {
                let r = records::contract_service_unit(value)?;
                snapshot.contract_service_units.insert(r.id, r);
            }
            "ContractCharges" => {
                let r = records::contract_charge(value)?;
                snapshot.charges.insert(r.id, r);
            }
            "BillingCodes" => {
                let r = records::billing_code(value)?;
                snapshot.billing_codes.insert(r.id, r);
            }
            other => {
                return Err(RecordError {
                    entity: other.to_string(),
                    id: "(any)".into(),
                    field: "(entity)".into(),
                    message: "not an entity cmat reads".into(),
                })
            }
        }
    }
    Ok(())
}
