//! The Autotask client behind apply's traits ([`AutotaskWriter`], [`AutotaskReader`]).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use chrono::NaiveDate;
use serde_json::Value;

use super::client::AutotaskClient;
use super::error::{AutotaskError, Rejection};
use super::pull::{absorb, add_records, DEFAULT_SUBSCRIPTION_UDF};
use super::query::{chunked_in, Condition, Filter, FilterValue};
use crate::apply::{AutotaskReader, AutotaskWriter, Scope, WriteFailure};
use cmat_engine::diff::units_in_force;
use cmat_engine::snapshot::Snapshot;

/// Apply's view of Autotask: the client plus the name of the subscription UDF.
pub struct ApplyConnection<'a> {
    pub client: &'a AutotaskClient,
    pub subscription_udf: String,
}

impl<'a> ApplyConnection<'a> {
    pub fn new(client: &'a AutotaskClient, subscription_udf: impl Into<String>) -> Self {
        ApplyConnection { client, subscription_udf: subscription_udf.into() }
    }
}

/// What apply needs to know of a client error.
pub fn write_failure(err: AutotaskError) -> WriteFailure {
    match err {
        AutotaskError::OutcomeUnknown { .. } => {
            WriteFailure::OutcomeUnknown { message: err.to_string() }
        }
        AutotaskError::HourlyBudget { .. } => WriteFailure::Budget { message: err.to_string() },
        other => WriteFailure::Rejected {
            status: other.http_status(),
            kind: other.rejection().unwrap_or(Rejection::Other),
            message: other.to_string(),
        },
    }
}

impl AutotaskWriter for ApplyConnection<'_> {
    fn create(&self, path: &str, body: &Value) -> Result<Option<i64>, WriteFailure> {
        self.client.create(path, body).map_err(write_failure)
    }
    fn update(&self, path: &str, body: &Value) -> Result<(), WriteFailure> {
        self.client.update(path, body).map_err(write_failure)
    }
    fn delete(&self, path: &str) -> Result<(), WriteFailure> {
        self.client.delete(path).map_err(write_failure)
    }
    fn units_on(
        &self,
        contract_id: i64,
        service_id: i64,
        date: NaiveDate,
    ) -> Result<i64, WriteFailure> {
        units_on(self.client, contract_id, service_id, date)
    }
}

impl AutotaskWriter for AutotaskClient {
    fn create(&self, path: &str, body: &Value) -> Result<Option<i64>, WriteFailure> {
        AutotaskClient::create(self, path, body).map_err(write_failure)
    }
    fn update(&self, path: &str, body: &Value) -> Result<(), WriteFailure> {
        AutotaskClient::update(self, path, body).map_err(write_failure)
    }
    fn delete(&self, path: &str) -> Result<(), WriteFailure> {
        AutotaskClient::delete(self, path).map_err(write_failure)
    }
    fn units_on(
        &self,
        contract_id: i64,
        service_id: i64,
        date: NaiveDate,
    ) -> Result<i64, WriteFailure> {
        units_on(self, contract_id, service_id, date)
    }
}

/// Units in force on `date` for a contract's service: one query of ContractServiceUnits.
fn units_on(
    client: &AutotaskClient,
    contract_id: i64,
    service_id: i64,
    date: NaiveDate,
) -> Result<i64, WriteFailure> {
    let filter = Filter::new(Condition::eq("contractID", contract_id))
        .and_then(|filter| filter.and(Condition::eq("serviceID", service_id)))
        .map_err(|source| {
            write_failure(AutotaskError::Filter {
                request: "POST ContractServiceUnits/query".into(),
                source,
            })
        })?;
    let mut snapshot = Snapshot::default();
    read_filtered(client, &mut snapshot, "ContractServiceUnits", filter, DEFAULT_SUBSCRIPTION_UDF)?;
    let mut periods: Vec<_> = snapshot.contract_service_units.values().collect();
    periods.sort_by_key(|unit| (unit.start_date, unit.id));
    Ok(units_in_force(&periods, date))
}

impl AutotaskReader for ApplyConnection<'_> {
    fn read_scope(&self, scope: &Scope) -> Result<Snapshot, WriteFailure> {
        read_scope(self.client, scope, &self.subscription_udf)
    }
}

impl AutotaskReader for AutotaskClient {
    /// With the default UDF name; use [`ApplyConnection`] for another.
    fn read_scope(&self, scope: &Scope) -> Result<Snapshot, WriteFailure> {
        read_scope(self, scope, DEFAULT_SUBSCRIPTION_UDF)
    }
}

/// Reads, in pages and `in` chunks of 500, every record a scope covers: the contracts of its
/// companies and its contracts, the services with its skus, and the contract services, units
/// and charges of those contracts. No per-record reads; the queries of each step go side by
/// side (apply re-reads its scope before and after writing, on every run).
pub fn read_scope(
    client: &AutotaskClient,
    scope: &Scope,
    subscription_udf: &str,
) -> Result<Snapshot, WriteFailure> {
    let ints = |ids: &BTreeSet<i64>| ids.iter().map(|id| FilterValue::Int(*id)).collect();
    let skus = scope.skus.iter().map(|s| FilterValue::Text(s.clone())).collect();
    let mut parents = in_queries("Contracts", "companyID", ints(&scope.company_ids), None)?;
    parents.extend(in_queries("Contracts", "id", ints(&scope.contract_ids), None)?);
    parents.extend(in_queries("Services", "sku", skus, None)?);
    let mut snapshot = read_all(client, parents, subscription_udf)?;

    let contract_ids: BTreeSet<i64> = snapshot.contracts.keys().copied().collect();
    let units = crate::autotask::pull::units_filter(scope.units_window);
    let mut children = Vec::new();
    for (entity, base) in [
        ("ContractServices", None),
        ("ContractServiceUnits", scope.units_window.map(|_| &units)),
        ("ContractCharges", None),
    ] {
        children.extend(in_queries(entity, "contractID", ints(&contract_ids), base)?);
    }
    absorb(&mut snapshot, read_all(client, children, subscription_udf)?);
    Ok(snapshot)
}

/// `entity` where `field in values`, as queries of at most 500 values each.
fn in_queries(
    entity: &'static str,
    field: &str,
    values: Vec<FilterValue>,
    base: Option<&Filter>,
) -> Result<Vec<(&'static str, Filter)>, WriteFailure> {
    let filters = chunked_in(base, field, values).map_err(|source| {
        write_failure(AutotaskError::Filter { request: format!("POST {entity}/query"), source })
    })?;
    Ok(filters.into_iter().map(|filter| (entity, filter)).collect())
}

/// Threads reading queries side by side; the client still keeps each endpoint at 3 in flight.
const READERS: usize = 9;

/// Runs `queries` side by side into one snapshot; the first failure stops the rest.
fn read_all(
    client: &AutotaskClient,
    queries: Vec<(&'static str, Filter)>,
    subscription_udf: &str,
) -> Result<Snapshot, WriteFailure> {
    let workers = queries.len().min(READERS);
    let queue = Mutex::new(queries.into_iter());
    let snapshot = Mutex::new(Snapshot::default());
    let failure: Mutex<Option<WriteFailure>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if locked(&failure).is_some() {
                    return;
                }
                let Some((entity, filter)) = locked(&queue).next() else {
                    return;
                };
                let mut part = Snapshot::default();
                match read_filtered(client, &mut part, entity, filter, subscription_udf) {
                    Ok(()) => absorb(&mut locked(&snapshot), part),
                    Err(err) => {
                        locked(&failure).get_or_insert(err);
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()) {
        Some(err) => Err(err),
        None => Ok(snapshot.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())),
    }
}

/// A lock that survives a panicked holder (the data is records, never half-updated).
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_filtered(
    client: &AutotaskClient,
    snapshot: &mut Snapshot,
    entity: &str,
    filter: Filter,
    subscription_udf: &str,
) -> Result<(), WriteFailure> {
    let records = client.query(entity, &filter).map_err(write_failure)?;
    add_records(snapshot, entity, &records, subscription_udf).map_err(|err| {
        WriteFailure::Rejected {
            status: None,
            kind: Rejection::Other,
            message: format!("Autotask sent a record cmat cannot read: {err}"),
        }
    })
}
