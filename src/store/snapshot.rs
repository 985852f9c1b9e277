//! The Autotask snapshot: load, replace (one transaction, with the pull's marks), merge
//! (upsert by id), remove charges.

use rusqlite::{params, Connection, Row, Statement, Transaction};

use super::meta_keys::{PULL_MARKS, SNAPSHOT_INCOMPLETE, SNAPSHOT_REFRESHED_AT};
use super::sql::{
    date, get_date, get_decimal, get_opt_decimal, opt_decimal, parse_timestamp, timestamp,
};
use super::{Store, StoreError};
use std::collections::BTreeMap;

use cmat_engine::table::Table;

use cmat_engine::snapshot::{
    BillingCode, Company, Contract, ContractCharge, ContractService, ContractServiceUnit, Currency,
    IncompleteRecord, PicklistEntry, Picklists, PullMarks, Service, Snapshot,
};

/// How many records of each kind the snapshot holds, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    pub companies: u64,
    pub contracts: u64,
    pub services: u64,
    pub contract_services: u64,
    pub contract_service_units: u64,
    pub charges: u64,
    pub billing_codes: u64,
    pub refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The SQL table holding a snapshot [`Table`]'s records.
fn sql_table(table: Table) -> &'static str {
    match table {
        Table::Companies => "companies",
        Table::Contracts => "contracts",
        Table::Services => "services",
        Table::ContractServices => "contract_services",
        Table::ContractServiceUnits => "contract_service_units",
        Table::ContractCharges => "charges",
        Table::BillingCodes => "billing_codes",
    }
}

/// The tenant's lists, stored beside the records and replaced with them.
const LIST_TABLES: [&str; 2] = ["picklists", "currencies"];

impl Store {
    pub fn load_snapshot(&self) -> Result<Snapshot, StoreError> {
        let refreshed_at = self.refreshed_at()?;
        let mut snapshot = load(&self.conn).map_err(|e| self.wrap(e))?;
        snapshot.refreshed_at = refreshed_at;
        snapshot.incomplete = self.incomplete()?;
        Ok(snapshot)
    }

    /// Replaces the whole snapshot in one transaction; the pull marks stay as they are (the
    /// records replaced here were read by id, not by change stamp).
    pub fn replace_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.replace(snapshot, None)
    }

    /// Replaces the snapshot and the marks of the pull that read it, in one transaction (a
    /// failed pull leaves both as they were).
    pub fn replace_pulled_snapshot(
        &mut self,
        snapshot: &Snapshot,
        marks: &PullMarks,
    ) -> Result<(), StoreError> {
        self.replace(snapshot, Some(marks))
    }

    /// The marks of the last pull; none when there was none or they cannot be read (then the
    /// next pull reads everything, which is always correct).
    pub fn pull_marks(&self) -> Result<PullMarks, StoreError> {
        Ok(self
            .get_meta(PULL_MARKS)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }

    /// The records the last pull kept out as incomplete (JSON in `meta`, beside the snapshot:
    /// a handful at most, so no table of their own).
    fn incomplete(&self) -> Result<BTreeMap<String, IncompleteRecord>, StoreError> {
        match self.get_meta(SNAPSHOT_INCOMPLETE)? {
            None => Ok(BTreeMap::new()),
            Some(text) => serde_json::from_str(&text).map_err(|err| StoreError::Unreadable {
                path: self.path.display().to_string(),
                what: format!("meta {SNAPSHOT_INCOMPLETE}"),
                source: Box::new(err),
            }),
        }
    }

    fn replace(
        &mut self,
        snapshot: &Snapshot,
        marks: Option<&PullMarks>,
    ) -> Result<(), StoreError> {
        let incomplete =
            serde_json::to_string(&snapshot.incomplete).unwrap_or_else(|_| "{}".into());
        let marks = match marks.map(serde_json::to_string).transpose() {
            Ok(marks) => marks,
            Err(err) => {
                return Err(StoreError::Unreadable {
                    path: self.path.display().to_string(),
                    what: "the pull marks".to_string(),
                    source: Box::new(err),
                })
            }
        };
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            if let Some(marks) = &marks {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![PULL_MARKS, marks],
                )?;
            }
            for table in Table::ALL.map(sql_table).into_iter().chain(LIST_TABLES) {
                tx.execute(&format!("DELETE FROM {table}"), [])?;
            }
            upsert(&tx, snapshot)?;
            set_incomplete(&tx, &incomplete)?;
            match &snapshot.refreshed_at {
                Some(at) => tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![SNAPSHOT_REFRESHED_AT, timestamp(at)],
                )?,
                None => tx.execute("DELETE FROM meta WHERE key = ?1", [SNAPSHOT_REFRESHED_AT])?,
            };
            tx.commit()
        })();
        result.map_err(|e| self.wrap(e))
    }

    /// Inserts or replaces each record present in `records` (by id); `refreshed_at` untouched.
    /// A record read complete is no longer incomplete; `records.incomplete` are added.
    pub fn merge_snapshot(&mut self, records: &Snapshot) -> Result<(), StoreError> {
        let mut incomplete = self.incomplete()?;
        for table in Table::ALL {
            for id in table.ids(records) {
                incomplete.remove(&format!("{}/{id}", table.name()));
            }
        }
        incomplete.extend(records.incomplete.iter().map(|(k, r)| (k.clone(), r.clone())));
        let incomplete = serde_json::to_string(&incomplete).unwrap_or_else(|_| "{}".into());
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            upsert(&tx, records)?;
            set_incomplete(&tx, &incomplete)?;
            tx.commit()
        })();
        result.map_err(|e| self.wrap(e))
    }

    /// Removes deleted charges from the snapshot.
    pub fn remove_charges(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            {
                let mut statement = tx.prepare("DELETE FROM charges WHERE id = ?1")?;
                for id in ids {
                    statement.execute([id])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|e| self.wrap(e))
    }

    /// The tenant's picklists as the last pull read them (empty before any pull).
    pub fn picklists(&self) -> Result<Picklists, StoreError> {
        load_picklists(&self.conn).map_err(|e| self.wrap(e))
    }

    pub fn snapshot_counts(&self) -> Result<SnapshotCounts, StoreError> {
        let count = |table: Table| -> Result<u64, StoreError> {
            let sql = format!("SELECT COUNT(*) FROM {}", sql_table(table));
            self.conn
                .query_row(&sql, [], |row| row.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(|e| self.wrap(e))
        };
        Ok(SnapshotCounts {
            companies: count(Table::Companies)?,
            contracts: count(Table::Contracts)?,
            services: count(Table::Services)?,
            contract_services: count(Table::ContractServices)?,
            contract_service_units: count(Table::ContractServiceUnits)?,
            charges: count(Table::ContractCharges)?,
            billing_codes: count(Table::BillingCodes)?,
            refreshed_at: self.refreshed_at()?,
        })
    }

    fn refreshed_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        match self.get_meta(SNAPSHOT_REFRESHED_AT)? {
            None => Ok(None),
            Some(text) => parse_timestamp(&text).map(Some).map_err(|err| StoreError::Unreadable {
                path: self.path.display().to_string(),
                what: format!("meta {SNAPSHOT_REFRESHED_AT} ({text:?}, an RFC 3339 timestamp)"),
                source: Box::new(err),
            }),
        }
    }
}

fn set_incomplete(tx: &Transaction<'_>, json: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![SNAPSHOT_INCOMPLETE, json],
    )
}

/// Writes every record of the snapshot over the stored one with its id (the picklists by
/// entity, field and position), each table by its write function.
fn upsert(tx: &Transaction<'_>, s: &Snapshot) -> rusqlite::Result<()> {
    for table in Table::ALL {
        upsert_table(tx, table, s)?;
    }
    write_table(tx, CURRENCIES_UPSERT, s.currencies.values(), write_currency)?;
    let mut statement = tx.prepare(
        "INSERT OR REPLACE INTO picklists (entity, field, value, label, is_active, position)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (key, entries) in &s.picklists.fields {
        let (entity, field) = key.split_once('.').unwrap_or((key.as_str(), ""));
        for (position, entry) in entries.iter().enumerate() {
            statement.execute(params![
                entity,
                field,
                entry.value,
                entry.label,
                entry.is_active,
                position as i64
            ])?;
        }
    }
    Ok(())
}

/// Writes `table`'s records of the snapshot by its statement and row function.
fn upsert_table(tx: &Transaction<'_>, table: Table, s: &Snapshot) -> rusqlite::Result<()> {
    match table {
        Table::Companies => write_table(tx, COMPANIES_UPSERT, s.companies.values(), write_company),
        Table::Contracts => write_table(tx, CONTRACTS_UPSERT, s.contracts.values(), write_contract),
        Table::Services => write_table(tx, SERVICES_UPSERT, s.services.values(), write_service),
        Table::ContractServices => write_table(
            tx,
            CONTRACT_SERVICES_UPSERT,
            s.contract_services.values(),
            write_contract_service,
        ),
        Table::ContractServiceUnits => write_table(
            tx,
            CONTRACT_SERVICE_UNITS_UPSERT,
            s.contract_service_units.values(),
            write_contract_service_unit,
        ),
        Table::ContractCharges => {
            write_table(tx, CHARGES_UPSERT, s.charges.values(), write_contract_charge)
        }
        Table::BillingCodes => {
            write_table(tx, BILLING_CODES_UPSERT, s.billing_codes.values(), write_billing_code)
        }
    }
}

/// Writes `records` with one prepared statement.
fn write_table<'a, T: 'a>(
    tx: &Transaction<'_>,
    sql: &str,
    records: impl IntoIterator<Item = &'a T>,
    write: fn(&mut Statement<'_>, &T) -> rusqlite::Result<usize>,
) -> rusqlite::Result<()> {
    let mut statement = tx.prepare(sql)?;
    for record in records {
        write(&mut statement, record)?;
    }
    Ok(())
}

const COMPANIES_UPSERT: &str =
    "INSERT OR REPLACE INTO companies (id, company_name, is_active, currency_id)
         VALUES (?1, ?2, ?3, ?4)";

/// One `Company` as its row of `companies`.
fn write_company(statement: &mut Statement<'_>, c: &Company) -> rusqlite::Result<usize> {
    statement.execute(params![c.id, c.company_name, c.is_active, c.currency_id])
}

const CONTRACTS_UPSERT: &str =
    "INSERT OR REPLACE INTO contracts (id, company_id, contract_name, contract_type, status,
             start_date, end_date, service_level_agreement_id, contract_category, subscription_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// One `Contract` as its row of `contracts`.
fn write_contract(statement: &mut Statement<'_>, c: &Contract) -> rusqlite::Result<usize> {
    statement.execute(params![
        c.id,
        c.company_id,
        c.contract_name,
        c.contract_type,
        c.status,
        date(&c.start_date),
        date(&c.end_date),
        c.service_level_agreement_id,
        c.contract_category,
        c.subscription_id,
    ])
}

const SERVICES_UPSERT: &str =
    "INSERT OR REPLACE INTO services (id, name, sku, billing_code_id, period_type, unit_price,
             unit_cost, is_active)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// One `Service` as its row of `services`.
fn write_service(statement: &mut Statement<'_>, v: &Service) -> rusqlite::Result<usize> {
    statement.execute(params![
        v.id,
        v.name,
        v.sku,
        v.billing_code_id,
        v.period_type,
        v.unit_price.to_string(),
        opt_decimal(&v.unit_cost),
        v.is_active,
    ])
}

const CONTRACT_SERVICES_UPSERT: &str =
    "INSERT OR REPLACE INTO contract_services (id, contract_id, service_id, adjusted_price,
             unit_cost, foreign_currency, invoice_description)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// One `ContractService` as its row of `contract_services`.
fn write_contract_service(
    statement: &mut Statement<'_>,
    v: &ContractService,
) -> rusqlite::Result<usize> {
    statement.execute(params![
        v.id,
        v.contract_id,
        v.service_id,
        opt_decimal(&v.adjusted_price),
        opt_decimal(&v.unit_cost),
        v.foreign_currency,
        v.invoice_description,
    ])
}

const CONTRACT_SERVICE_UNITS_UPSERT: &str =
    "INSERT OR REPLACE INTO contract_service_units (id, contract_id, contract_service_id,
             service_id, start_date, end_date, units, price, cost)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// One `ContractServiceUnit` as its row of `contract_service_units`.
fn write_contract_service_unit(
    statement: &mut Statement<'_>,
    u: &ContractServiceUnit,
) -> rusqlite::Result<usize> {
    statement.execute(params![
        u.id,
        u.contract_id,
        u.contract_service_id,
        u.service_id,
        date(&u.start_date),
        date(&u.end_date),
        u.units,
        opt_decimal(&u.price),
        opt_decimal(&u.cost),
    ])
}

const CHARGES_UPSERT: &str =
    "INSERT OR REPLACE INTO charges (id, contract_id, name, description, date_purchased,
             charge_type, unit_quantity, unit_price, unit_cost, billing_code_id, is_billed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// One `ContractCharge` as its row of `charges`.
fn write_contract_charge(
    statement: &mut Statement<'_>,
    c: &ContractCharge,
) -> rusqlite::Result<usize> {
    statement.execute(params![
        c.id,
        c.contract_id,
        c.name,
        c.description,
        date(&c.date_purchased),
        c.charge_type,
        c.unit_quantity.to_string(),
        c.unit_price.to_string(),
        opt_decimal(&c.unit_cost),
        c.billing_code_id,
        c.is_billed,
    ])
}

const BILLING_CODES_UPSERT: &str =
    "INSERT OR REPLACE INTO billing_codes (id, name, use_type, is_active)
         VALUES (?1, ?2, ?3, ?4)";

/// One `BillingCode` as its row of `billing_codes`.
fn write_billing_code(statement: &mut Statement<'_>, b: &BillingCode) -> rusqlite::Result<usize> {
    statement.execute(params![b.id, b.name, b.use_type, b.is_active])
}

const CURRENCIES_UPSERT: &str =
    "INSERT OR REPLACE INTO currencies (id, name, is_internal) VALUES (?1, ?2, ?3)";

/// One `Currency` as its row of `currencies`.
fn write_currency(statement: &mut Statement<'_>, c: &Currency) -> rusqlite::Result<usize> {
    statement.execute(params![c.id, c.name, c.is_internal])
}

/// The stored snapshot, each table read by its row function; none is left out.
fn load(conn: &Connection) -> rusqlite::Result<Snapshot> {
    let mut snapshot = Snapshot {
        picklists: load_picklists(conn)?,
        currencies: load_table(conn, CURRENCIES_LOAD, currency_row, |r| r.id)?,
        ..Snapshot::default()
    };
    for table in Table::ALL {
        load_into(conn, table, &mut snapshot)?;
    }
    Ok(snapshot)
}

/// Reads `table`'s rows into the snapshot by its query and row function.
fn load_into(conn: &Connection, table: Table, s: &mut Snapshot) -> rusqlite::Result<()> {
    match table {
        Table::Companies => s.companies = load_table(conn, COMPANIES_LOAD, company_row, |r| r.id)?,
        Table::Contracts => s.contracts = load_table(conn, CONTRACTS_LOAD, contract_row, |r| r.id)?,
        Table::Services => s.services = load_table(conn, SERVICES_LOAD, service_row, |r| r.id)?,
        Table::ContractServices => {
            s.contract_services =
                load_table(conn, CONTRACT_SERVICES_LOAD, contract_service_row, |r| r.id)?
        }
        Table::ContractServiceUnits => {
            s.contract_service_units =
                load_table(conn, CONTRACT_SERVICE_UNITS_LOAD, contract_service_unit_row, |r| r.id)?
        }
        Table::ContractCharges => {
            s.charges = load_table(conn, CHARGES_LOAD, contract_charge_row, |r| r.id)?
        }
        Table::BillingCodes => {
            s.billing_codes = load_table(conn, BILLING_CODES_LOAD, billing_code_row, |r| r.id)?
        }
    }
    Ok(())
}

/// The rows of one table by id.
fn load_table<T>(
    conn: &Connection,
    sql: &str,
    row: fn(&Row<'_>) -> rusqlite::Result<T>,
    id: fn(&T) -> i64,
) -> rusqlite::Result<BTreeMap<i64, T>> {
    let mut statement = conn.prepare(sql)?;
    let mut records = BTreeMap::new();
    for record in statement.query_map([], row)? {
        let record = record?;
        records.insert(id(&record), record);
    }
    Ok(records)
}

const COMPANIES_LOAD: &str =
    "SELECT id, company_name, is_active, currency_id FROM companies ORDER BY id";

/// A `Company` from its row of the query in `load`.
fn company_row(r: &Row<'_>) -> rusqlite::Result<Company> {
    Ok(Company {
        id: r.get(0)?,
        company_name: r.get(1)?,
        is_active: r.get(2)?,
        currency_id: r.get(3)?,
    })
}

const CONTRACTS_LOAD: &str =
    "SELECT id, company_id, contract_name, contract_type, status, start_date, end_date,
                service_level_agreement_id, contract_category, subscription_id
         FROM contracts ORDER BY id";

/// A `Contract` from its row of the query in `load`.
fn contract_row(r: &Row<'_>) -> rusqlite::Result<Contract> {
    Ok(Contract {
        id: r.get(0)?,
        company_id: r.get(1)?,
        contract_name: r.get(2)?,
        contract_type: r.get(3)?,
        status: r.get(4)?,
        start_date: get_date(r, 5)?,
        end_date: get_date(r, 6)?,
        service_level_agreement_id: r.get(7)?,
        contract_category: r.get(8)?,
        subscription_id: r.get(9)?,
    })
}

const SERVICES_LOAD: &str =
    "SELECT id, name, sku, billing_code_id, period_type, unit_price, unit_cost, is_active
         FROM services ORDER BY id";

/// A `Service` from its row of the query in `load`.
fn service_row(r: &Row<'_>) -> rusqlite::Result<Service> {
    Ok(Service {
        id: r.get(0)?,
        name: r.get(1)?,
        sku: r.get(2)?,
        billing_code_id: r.get(3)?,
        period_type: r.get(4)?,
        unit_price: get_decimal(r, 5)?,
        unit_cost: get_opt_decimal(r, 6)?,
        is_active: r.get(7)?,
    })
}

const CONTRACT_SERVICES_LOAD: &str =
    "SELECT id, contract_id, service_id, adjusted_price, unit_cost, foreign_currency,
                invoice_description
         FROM contract_services ORDER BY id";

/// A `ContractService` from its row of the query in `load`.
fn contract_service_row(r: &Row<'_>) -> rusqlite::Result<ContractService> {
    Ok(ContractService {
        id: r.get(0)?,
        contract_id: r.get(1)?,
        service_id: r.get(2)?,
        adjusted_price: get_opt_decimal(r, 3)?,
        unit_cost: get_opt_decimal(r, 4)?,
        foreign_currency: r.get(5)?,
        invoice_description: r.get(6)?,
    })
}

const CONTRACT_SERVICE_UNITS_LOAD: &str =
    "SELECT id, contract_id, contract_service_id, service_id, start_date, end_date, units,
                price, cost
         FROM contract_service_units ORDER BY id";

/// A `ContractServiceUnit` from its row of the query in `load`.
fn contract_service_unit_row(r: &Row<'_>) -> rusqlite::Result<ContractServiceUnit> {
    Ok(ContractServiceUnit {
        id: r.get(0)?,
        contract_id: r.get(1)?,
        contract_service_id: r.get(2)?,
        service_id: r.get(3)?,
        start_date: get_date(r, 4)?,
        end_date: get_date(r, 5)?,
        units: r.get(6)?,
        price: get_opt_decimal(r, 7)?,
        cost: get_opt_decimal(r, 8)?,
    })
}

const CHARGES_LOAD: &str =
    "SELECT id, contract_id, name, description, date_purchased, charge_type, unit_quantity,
                unit_price, unit_cost, billing_code_id, is_billed
         FROM charges ORDER BY id";

/// A `ContractCharge` from its row of the query in `load`.
fn contract_charge_row(r: &Row<'_>) -> rusqlite::Result<ContractCharge> {
    Ok(ContractCharge {
        id: r.get(0)?,
        contract_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        date_purchased: get_date(r, 4)?,
        charge_type: r.get(5)?,
        unit_quantity: get_decimal(r, 6)?,
        unit_price: get_decimal(r, 7)?,
        unit_cost: get_opt_decimal(r, 8)?,
        billing_code_id: r.get(9)?,
        is_billed: r.get(10)?,
    })
}

const BILLING_CODES_LOAD: &str =
    "SELECT id, name, use_type, is_active FROM billing_codes ORDER BY id";

/// A `BillingCode` from its row of the query in `load`.
fn billing_code_row(r: &Row<'_>) -> rusqlite::Result<BillingCode> {
    Ok(BillingCode { id: r.get(0)?, name: r.get(1)?, use_type: r.get(2)?, is_active: r.get(3)? })
}

const CURRENCIES_LOAD: &str = "SELECT id, name, is_internal FROM currencies ORDER BY id";

/// A `Currency` from its row of the query in `load`.
fn currency_row(r: &Row<'_>) -> rusqlite::Result<Currency> {
    Ok(Currency { id: r.get(0)?, name: r.get(1)?, is_internal: r.get(2)? })
}

fn load_picklists(conn: &Connection) -> rusqlite::Result<Picklists> {
    let mut picklists = Picklists::default();
    let mut statement = conn.prepare(
        "SELECT entity, field, value, label, is_active FROM picklists
         ORDER BY entity, field, position",
    )?;
    let mut rows = statement.query([])?;
    while let Some(r) = rows.next()? {
        let (entity, field): (String, String) = (r.get(0)?, r.get(1)?);
        picklists.fields.entry(Picklists::key(&entity, &field)).or_default().push(PicklistEntry {
            value: r.get(2)?,
            label: r.get(3)?,
            is_active: r.get(4)?,
        });
    }
    Ok(picklists)
}
