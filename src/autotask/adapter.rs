//! The Autotask adapter: what a typed write becomes on the wire (path, method, JSON body), the
//! client behind the [`AutotaskWriter`] and [`AutotaskReader`] seams apply writes and re-reads
//! through, and what apply needs to know of a client error ([`WriteFailure`]). It knows the
//! engine's writes and scope, never apply or the diff.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::client::AutotaskClient;
use super::error::{AutotaskError, Rejection};
use super::parallel;
use super::query::{chunked_in, Condition, Filter, FilterValue};
use super::read::{absorb, add_records, units_filter, DEFAULT_SUBSCRIPTION_UDF};
use cmat_engine::plan::FieldValue;
use cmat_engine::scope::Scope;
use cmat_engine::snapshot::{units_in_force, Snapshot};
use cmat_engine::table::Table;
use cmat_engine::write::{Action, Write};

/// Why a write failed, shared across apply's threads; its text is the failure's message.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// How a write failed, as far as apply needs to know. The message is the cause's own text;
/// `source()` goes on with the cause's causes, so nothing is flattened or said twice.
#[derive(Debug, Clone)]
pub enum WriteFailure {
    /// Autotask answered and refused: nothing was written. `kind` says what was refused
    /// (apply matches on it, never on the message).
    Rejected { status: Option<u16>, kind: Rejection, message: String, cause: Option<Cause> },
    /// No answer: the write may or may not have landed. Never re-sent without a lookup.
    OutcomeUnknown { message: String, cause: Option<Cause> },
    /// The hour's request budget is spent: stop now, resume later.
    Budget { message: String, cause: Option<Cause> },
}

impl WriteFailure {
    /// The client error behind this failure, if it came from one.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            WriteFailure::Rejected { cause, .. }
            | WriteFailure::OutcomeUnknown { cause, .. }
            | WriteFailure::Budget { cause, .. } => cause.as_ref(),
        }
    }
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteFailure::Rejected { message, .. } => write!(f, "{message}"),
            WriteFailure::OutcomeUnknown { message, .. } => write!(f, "outcome unknown: {message}"),
            WriteFailure::Budget { message, .. } => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for WriteFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause().and_then(|cause| cause.source())
    }
}

/// The writes apply needs; the Autotask client implements it (and tests fake it).
pub trait AutotaskWriter: Sync {
    /// `POST path` → the new record's id (an answer without one is an unknown outcome).
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
        date: NaiveDate,
    ) -> Result<i64, WriteFailure>;
}

/// Reads a scope from Autotask in pages.
pub trait AutotaskReader {
    fn read_scope(&self, scope: &Scope) -> Result<Snapshot, WriteFailure>;
}

/// How a request goes: POST a new record, PATCH the collection, DELETE by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Create,
    Update,
    Delete,
}

/// One write as Autotask takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub body: Value,
}

impl Request {
    /// Sends it; an update or delete returns the id it was given.
    pub fn send(
        &self,
        writer: &dyn AutotaskWriter,
        id: Option<i64>,
    ) -> Result<Option<i64>, WriteFailure> {
        match self.method {
            Method::Create => writer.create(&self.path, &self.body),
            Method::Update => writer.update(&self.path, &self.body).map(|()| id),
            Method::Delete => writer.delete(&self.path).map(|()| id),
        }
    }
}

/// A decimal as a JSON number token, as Autotask's Swagger types amounts. The amounts cmat
/// sends have at most 4 decimals and far fewer than 15 significant digits, so the number's
/// text is the decimal's, exactly.
pub fn api_number(amount: Decimal) -> Result<Value, String> {
    amount
        .normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .map(Value::Number)
        .map_err(|_| format!("{amount} cannot be sent as a JSON number"))
}

/// The fields [`request`] sends when it creates a record of each entity (besides those the
/// rules set only when they name a value: a contract's category and line of business), for
/// `cmat doctor` to compare with what the tenant requires. A test holds it to [`request`].
pub const SENT_ON_CREATE: [(&str, &[&str]); 4] = [
    (
        "Contracts",
        &[
            "companyID",
            "contractName",
            "contractType",
            "status",
            "contractPeriodType",
            "startDate",
            "endDate",
            "serviceLevelAgreementID",
            "timeReportingRequiresStartAndStopTimes",
        ],
    ),
    (
        "Services",
        &["name", "sku", "billingCodeID", "periodType", "unitPrice", "unitCost", "isActive"],
    ),
    (
        "ContractCharges",
        &[
            "name",
            "description",
            "datePurchased",
            "chargeType",
            "unitQuantity",
            "unitPrice",
            "unitCost",
            "billingCodeID",
            "isBillableToCompany",
            "contractID",
        ],
    ),
    (
        "ContractServiceAdjustments",
        &[
            "serviceID",
            "effectiveDate",
            "unitChange",
            "adjustedUnitPrice",
            "adjustedUnitCost",
            "contractID",
        ],
    ),
];

/// The request for a write whose every record is known by its Autotask id. Its fields come
/// from the engine's field maps (`Write::field_values`), the same the saved plan shows.
pub fn request(write: &Write<i64>) -> Result<Request, String> {
    let mut body = Map::new();
    for (name, value) in write.field_values() {
        body.insert(name.to_string(), api_value(value)?);
    }
    for (name, id) in ids_sent(write) {
        body.insert(name.to_string(), json!(id));
    }
    let method = match write.action() {
        Action::Create | Action::Adjust => Method::Create,
        Action::Update => Method::Update,
        Action::Delete => Method::Delete,
    };
    Ok(Request { method, path: path_of(write), body: Value::Object(body) })
}

/// The ids a body carries besides the fields: the record an update or delete changes, a new
/// child's contract. A charge update sends only `id` and what changes: the contract is in the
/// path (live child PATCHes). A delete sends no body; its ids are kept for the journal, which
/// `cmat revert` reads.
fn ids_sent(write: &Write<i64>) -> Vec<(&'static str, i64)> {
    match write {
        Write::CreateService(_) | Write::CreateContract(_) => Vec::new(),
        Write::UpdateContract { id, .. } | Write::UpdateCharge { id, .. } => vec![("id", *id)],
        Write::AdjustContractService(adjustment) => {
            vec![("contractID", adjustment.contract.id())]
        }
        Write::CreateCharge { contract, .. } => vec![("contractID", contract.id())],
        Write::DeleteCharge { id, contract, .. } => {
            vec![("id", *id), ("contractID", contract.id())]
        }
    }
}

/// Where each write goes: a contract's children under it; a delete by id (API-NOTES:
/// `DELETE Contracts/{contractId}/Charges/{id}`).
fn path_of(write: &Write<i64>) -> String {
    match write {
        Write::CreateService(_) => "Services".to_string(),
        Write::CreateContract(_) | Write::UpdateContract { .. } => "Contracts".to_string(),
        Write::AdjustContractService(adjustment) => {
            format!("Contracts/{}/ServiceAdjustments", adjustment.contract.id())
        }
        Write::CreateCharge { contract, .. } | Write::UpdateCharge { contract, .. } => {
            format!("Contracts/{}/Charges", contract.id())
        }
        Write::DeleteCharge { id, contract, .. } => {
            format!("Contracts/{}/Charges/{id}", contract.id())
        }
    }
}

/// A written field's value as Autotask takes it: decimals as JSON numbers, a UDF as
/// `[{"name": …, "value": …}]`.
fn api_value(value: FieldValue) -> Result<Value, String> {
    Ok(match value {
        FieldValue::Text(text) => Value::String(text),
        FieldValue::Int(number) => Value::from(number),
        FieldValue::Decimal(number) => api_number(number)?,
        FieldValue::Bool(flag) => Value::Bool(flag),
        FieldValue::Date(date) => Value::String(date.to_string()),
        FieldValue::Udf { name, value } => json!([{ "name": name, "value": value }]),
        FieldValue::Planned(reference) => {
            return Err(format!("record {reference} has no Autotask id yet"))
        }
    })
}

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

/// What apply needs to know of a client error; the error itself is kept as the cause.
pub fn write_failure(err: AutotaskError) -> WriteFailure {
    let message = err.to_string();
    match err {
        AutotaskError::OutcomeUnknown { .. } => {
            WriteFailure::OutcomeUnknown { message, cause: Some(Arc::new(err)) }
        }
        AutotaskError::HourlyBudget { .. } | AutotaskError::HourlyLockout { .. } => {
            WriteFailure::Budget { message, cause: Some(Arc::new(err)) }
        }
        other => WriteFailure::Rejected {
            status: other.http_status(),
            kind: other.rejection().unwrap_or(Rejection::Other),
            message,
            cause: Some(Arc::new(other)),
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
    let units = Table::ContractServiceUnits;
    read_filtered(client, &mut snapshot, units, &filter, DEFAULT_SUBSCRIPTION_UDF)?;
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
    let mut parents = in_queries(Table::Contracts, "companyID", ints(&scope.company_ids), None)?;
    parents.extend(in_queries(Table::Contracts, "id", ints(&scope.contract_ids), None)?);
    parents.extend(in_queries(Table::Services, "sku", skus, None)?);
    let mut snapshot = read_all(client, parents, subscription_udf)?;

    let contract_ids: BTreeSet<i64> = snapshot.contracts.keys().copied().collect();
    let units = units_filter(scope.units_window);
    let mut children = Vec::new();
    for (table, base) in [
        (Table::ContractServices, None),
        (Table::ContractServiceUnits, scope.units_window.map(|_| &units)),
        (Table::ContractCharges, None),
    ] {
        children.extend(in_queries(table, "contractID", ints(&contract_ids), base)?);
    }
    absorb(&mut snapshot, read_all(client, children, subscription_udf)?);
    Ok(snapshot)
}

/// `table` where `field in values`, as queries of at most 500 values each.
fn in_queries(
    table: Table,
    field: &str,
    values: Vec<FilterValue>,
    base: Option<&Filter>,
) -> Result<Vec<(Table, Filter)>, WriteFailure> {
    let filters = chunked_in(base, field, values).map_err(|source| {
        let request = format!("POST {}/query", table.name());
        write_failure(AutotaskError::Filter { request, source })
    })?;
    Ok(filters.into_iter().map(|filter| (table, filter)).collect())
}

/// Threads reading queries side by side; the client still keeps each endpoint at 3 in flight.
const READERS: usize = 9;

/// Runs `queries` side by side ([`parallel::run_in_order`]) into one snapshot; the first
/// failure stops the rest.
fn read_all(
    client: &AutotaskClient,
    queries: Vec<(Table, Filter)>,
    subscription_udf: &str,
) -> Result<Snapshot, WriteFailure> {
    let parts = parallel::run_in_order(&queries, READERS, |(table, filter)| {
        let mut part = Snapshot::default();
        read_filtered(client, &mut part, *table, filter, subscription_udf).map(|()| part)
    })?;
    let mut snapshot = Snapshot::default();
    for part in parts {
        absorb(&mut snapshot, part);
    }
    Ok(snapshot)
}

fn read_filtered(
    client: &AutotaskClient,
    snapshot: &mut Snapshot,
    table: Table,
    filter: &Filter,
    subscription_udf: &str,
) -> Result<(), WriteFailure> {
    let records = client.query(table.name(), filter).map_err(write_failure)?;
    add_records(snapshot, table, &records, subscription_udf).map_err(|err| WriteFailure::Rejected {
        status: None,
        kind: Rejection::Other,
        message: format!("Autotask sent a record cmat cannot read: {err}"),
        cause: Some(Arc::new(err)),
    })
}

#[cfg(test)]
mod tests;
