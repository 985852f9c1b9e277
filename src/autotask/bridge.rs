//! The Autotask client behind apply's traits ([`AutotaskWriter`], [`AutotaskReader`]).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde_json::Value;

use super::client::{AutotaskClient, AutotaskError};
use super::pull::{add_records, DEFAULT_SUBSCRIPTION_UDF};
use super::query::{chunked_in, Condition, Filter, FilterValue};
use crate::apply::{AutotaskReader, AutotaskWriter, Scope, WriteFailure};
use crate::diff::units_in_force;
use crate::snapshot::Snapshot;

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
        other => WriteFailure::Rejected { status: other.http_status(), message: other.to_string() },
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
/// and charges of those contracts. No per-record reads.
pub fn read_scope(
    client: &AutotaskClient,
    scope: &Scope,
    subscription_udf: &str,
) -> Result<Snapshot, WriteFailure> {
    let mut snapshot = Snapshot::default();
    let ints = |ids: &BTreeSet<i64>| ids.iter().map(|id| FilterValue::Int(*id)).collect();
    let skus = scope.skus.iter().map(|s| FilterValue::Text(s.clone()));
    let mut read = |entity: &str, field: &str, values: Vec<FilterValue>| {
        read_in(client, &mut snapshot, entity, field, values, subscription_udf, None)
    };
    read("Contracts", "companyID", ints(&scope.company_ids))?;
    read("Contracts", "id", ints(&scope.contract_ids))?;
    read("Services", "sku", skus.collect())?;
    let contract_ids: BTreeSet<i64> = snapshot.contracts.keys().copied().collect();
    let units = crate::autotask::pull::units_filter(scope.units_window);
    for (entity, base) in [
        ("ContractServices", None),
        ("ContractServiceUnits", scope.units_window.map(|_| &units)),
        ("ContractCharges", None),
    ] {
        read_in(
            client,
            &mut snapshot,
            entity,
            "contractID",
            ints(&contract_ids),
            subscription_udf,
            base,
        )?;
    }
    Ok(snapshot)
}

/// `entity` where `field in values`, in chunks of 500, added to `snapshot`.
fn read_in(
    client: &AutotaskClient,
    snapshot: &mut Snapshot,
    entity: &str,
    field: &str,
    values: Vec<FilterValue>,
    subscription_udf: &str,
    base: Option<&Filter>,
) -> Result<(), WriteFailure> {
    let filters = chunked_in(base, field, values).map_err(|source| {
        write_failure(AutotaskError::Filter { request: format!("POST {entity}/query"), source })
    })?;
    for filter in filters {
        read_filtered(client, snapshot, entity, filter, subscription_udf)?;
    }
    Ok(())
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
            message: format!("Autotask sent a record cmat cannot read: {err}"),
        }
    })
}
