//! What the pull and apply's re-reads share: reading Autotask records into a [`Snapshot`]
//! table by table ([`add_records`], [`absorb`]), the unit periods' window filter, the tenant's
//! picklists and currencies, and what a pull tells apply it has just read ([`ChildrenRead`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::client::{AutotaskClient, AutotaskError};
use super::query::{Condition, Filter};
use super::records::{self, RecordError};
use crate::store::StoreError;
use cmat_engine::picklists::PICKLIST_FIELDS;
use cmat_engine::snapshot::{PicklistEntry, Picklists, Snapshot, UnitsWindow};
use cmat_engine::table::Table;

pub use cmat_engine::table::absorb;

/// The default name of the Contracts UDF holding the subscription id.
pub const DEFAULT_SUBSCRIPTION_UDF: &str = "Subscription ID";

/// Why Autotask's records could not be read (or, by a pull, stored).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Api(#[from] AutotaskError),
    #[error("Autotask sent a record cmat cannot read: {0}")]
    Record(#[from] RecordError),
    #[error("the snapshot could not be stored (the previous one is kept): {0}")]
    Store(#[from] StoreError),
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

/// Whose contract services and unit periods a pull read from Autotask. Every other entity it
/// reads whole (in full, or by changes checked against Autotask's count); these two only for
/// a [`Focus`](super::pull::Focus)'s contracts when it has one. Apply, right after a pull in the same run, need
/// not read again what the pull has just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildrenRead {
    /// Every record of both.
    All,
    /// Only the records of these contracts.
    OfContracts(BTreeSet<i64>),
}

/// The tenant's picklists and currencies into `snapshot`: what turns the rules' labels into
/// numbers and tells each company's currency (read once a day by a pull, or by apply when no
/// pull has read them yet).
pub fn read_tenant_lists(
    client: &AutotaskClient,
    snapshot: &mut Snapshot,
) -> Result<(), PullError> {
    snapshot.picklists = read_picklists(client)?;
    snapshot.currencies = read_currencies(client)?;
    Ok(())
}

/// The tenant's picklists for [`PICKLIST_FIELDS`]. A value that is not a number is an error
/// naming the field: cmat would have nothing to send for it.
pub fn read_picklists(client: &AutotaskClient) -> Result<Picklists, PullError> {
    let mut picklists = Picklists::default();
    for (entity, wanted) in PICKLIST_FIELDS {
        for field in client.get_fields(entity)? {
            let Some(name) = wanted.iter().find(|name| name.eq_ignore_ascii_case(&field.name))
            else {
                continue;
            };
            if !field.is_pick_list {
                continue;
            }
            let mut entries = Vec::with_capacity(field.picklist_values.len());
            for value in &field.picklist_values {
                let Some(number) = value.as_i64() else {
                    return Err(PullError::Record(RecordError {
                        entity: format!("{entity}/entityInformation/fields"),
                        id: name.to_string(),
                        field: "picklistValues".into(),
                        message: format!(
                            "value {:?} ({:?}) is not a number",
                            value.value, value.label
                        ),
                    }));
                };
                entries.push(PicklistEntry {
                    value: number,
                    label: value.label.clone(),
                    is_active: value.is_active,
                });
            }
            picklists.fields.insert(Picklists::key(entity, name), entries);
        }
    }
    Ok(picklists)
}

/// The tenant's currencies (one page; read with the picklists). An Autotask that does not
/// offer the entity (no multi-currency module, an older API) has none to tell: empty.
fn read_currencies(
    client: &AutotaskClient,
) -> Result<BTreeMap<i64, cmat_engine::snapshot::Currency>, PullError> {
    let records = match client.query("Currencies", &Filter::all()) {
        Ok(records) => records,
        Err(err) if refused(&err) => return Ok(BTreeMap::new()),
        Err(err) => return Err(err.into()),
    };
    let mut currencies = BTreeMap::new();
    for record in &records {
        let currency = records::currency(record)?;
        currencies.insert(currency.id, currency);
    }
    Ok(currencies)
}

/// An answer that says this Autotask cannot read by changes (an unknown field is a 500, a
/// missing endpoint a 404), as opposed to one that would fail a full read as well.
pub(crate) fn refused(err: &AutotaskError) -> bool {
    matches!(err, AutotaskError::Api { .. } | AutotaskError::BadResponse { .. })
}

/// Converts `values` of `table` and adds them to `snapshot` by id. A record with a nullable
/// field cmat needs null is kept out, in `snapshot.incomplete` (with a warning naming it); any
/// other record that does not fit is an error.
pub fn add_records(
    snapshot: &mut Snapshot,
    table: Table,
    values: &[Value],
    subscription_udf: &str,
) -> Result<(), RecordError> {
    for value in values {
        match add_record(snapshot, table, value, subscription_udf) {
            Ok(id) => {
                // A record read complete is no longer incomplete.
                if !snapshot.incomplete.is_empty() {
                    snapshot.incomplete.remove(&format!("{}/{id}", table.name()));
                }
            }
            Err(err) => {
                let Some(record) = records::incomplete(&err, value) else {
                    return Err(err);
                };
                table.remove(snapshot, record.id);
                snapshot.incomplete.insert(record.key(), record);
            }
        }
    }
    Ok(())
}

/// Converts one record of `table` into `snapshot`; its id.
fn add_record(
    snapshot: &mut Snapshot,
    table: Table,
    value: &Value,
    subscription_udf: &str,
) -> Result<i64, RecordError> {
    Ok(match table {
        Table::Companies => put(&mut snapshot.companies, records::company(value)?, |r| r.id),
        Table::Contracts => {
            put(&mut snapshot.contracts, records::contract(value, subscription_udf)?, |r| r.id)
        }
        Table::Services => put(&mut snapshot.services, records::service(value)?, |r| r.id),
        Table::ContractServices => {
            put(&mut snapshot.contract_services, records::contract_service(value)?, |r| r.id)
        }
        Table::ContractServiceUnits => {
            put(&mut snapshot.contract_service_units, records::contract_service_unit(value)?, |r| {
                r.id
            })
        }
        Table::ContractCharges => {
            put(&mut snapshot.charges, records::contract_charge(value)?, |r| r.id)
        }
        Table::BillingCodes => {
            put(&mut snapshot.billing_codes, records::billing_code(value)?, |r| r.id)
        }
    })
}

/// Puts `record` into `table` under its id; the id.
fn put<T>(table: &mut BTreeMap<i64, T>, record: T, id: fn(&T) -> i64) -> i64 {
    let id = id(&record);
    table.insert(id, record);
    id
}
