//! The Autotask snapshot: load, replace (one transaction, with the pull's marks), merge
//! (upsert by id), remove charges.

use rusqlite::{params, Connection, Transaction};

use super::meta_keys::{PULL_MARKS, SNAPSHOT_INCOMPLETE, SNAPSHOT_REFRESHED_AT};
use super::sql::{
    date, get_date, get_decimal, get_opt_decimal, opt_decimal, parse_timestamp, timestamp,
};
use super::{Store, StoreError};
use std::collections::BTreeMap;

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

const TABLES: [&str; 9] = [
    "companies",
    "contracts",
    "services",
    "contract_services",
    "contract_service_units",
    "charges",
    "billing_codes",
    "picklists",
    "currencies",
];

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
            for table in TABLES {
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
        let read = |entity: &str, id: &i64| format!("{entity}/{id}");
        let complete: Vec<String> = (records.charges.keys().map(|id| read("ContractCharges", id)))
            .chain(records.contract_service_units.keys().map(|id| read("ContractServiceUnits", id)))
            .chain(records.billing_codes.keys().map(|id| read("BillingCodes", id)))
            .collect();
        for key in complete {
            incomplete.remove(&key);
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
        let count = |table: &str| -> Result<u64, StoreError> {
            self.conn
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(|e| self.wrap(e))
        };
        Ok(SnapshotCounts {
            companies: count("companies")?,
            contracts: count("contracts")?,
            services: count("services")?,
            contract_services: count("contract_services")?,
            contract_service_units: count("contract_service_units")?,
            charges: count("charges")?,
            billing_codes: count("billing_codes")?,
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

fn upsert(tx: &Transaction<'_>, s: &Snapshot) -> rusqlite::Result<()> {
    let mut statement = tx.prepare(
        "INSERT OR REPLACE INTO companies (id, company_name, is_active, currency_id)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for c in s.companies.values() {
        statement.execute(params![c.id, c.company_name, c.is_active, c.currency_id])?;
    }
    let mut statement = tx.prepare(
        "INSERT OR REPLACE INTO contracts (id, company_id, contract_name, contract_type, status,
             start_date, end_date, service_level_agreement_id, contract_category, subscription_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for c in s.contracts.values() {
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
        ])?;
    }
    let mut statement = tx.prepare(
        "INSERT OR REPLACE INTO services (id, name, sku, billing_code_id, period_type, unit_price,
             unit_cost, is_active)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for v in s.services.values() {
        statement.execute(params![
            v.id,
            v.name,
            v.sku,
            v.billing_code_id,
            v.period_type,
            v.unit_price.to_string(),
            opt_decimal(&v.unit_cost),
            v.is_active,
        ])?;
    }
    let mut statement = tx.prepare(
        "INSERT OR REPLACE INTO contract_services (id, contract_id, service_id, adjusted_price,
             unit_cost, foreign_currency, invoice_description)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for v in s.contract_services.values() {
        statement.execute(params![
            v.id,
            v.contract_id,
            v.service_id,
            opt_decimal(&v.adjusted_price),
            opt_decimal(&v.unit_cost),
            v.foreign_currency,
            v.invoice_description,
        ])?;
    }
    let mut statement = tx.prepare(
        "INSERT OR REPLACE INTO contract_service_units (id, contract_id, contract_service_id,
             service_id, start_date, end_date, units, price, cost)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for u in s.contract_service_units.values() {
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
        ])?;
    }
    let mut statement = tx.prepare(
        "INSERT OR REPLACE INTO charges (id, contract_id, name, description, date_purchased,
             charge_type, unit_quantity, unit_price, unit_cost, billing_code_id, is_billed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for c in s.charges.values() {
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
        ])?;
    }
    let mut statement = tx.prepare(
        "INSERT OR REPLACE INTO billing_codes (id, name, use_type, is_active)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for b in s.billing_codes.values() {
        statement.execute(params![b.id, b.name, b.use_type, b.is_active])?;
    }
    let mut statement = tx
        .prepare("INSERT OR REPLACE INTO currencies (id, name, is_internal) VALUES (?1, ?2, ?3)")?;
    for c in s.currencies.values() {
        statement.execute(params![c.id, c.name, c.is_internal])?;
    }
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

fn load(conn: &Connection) -> rusqlite::Result<Snapshot> {
    let mut snapshot = Snapshot::default();
    let mut statement =
        conn.prepare("SELECT id, company_name, is_active, currency_id FROM companies ORDER BY id")?;
    for company in statement.query_map([], |r| {
        Ok(Company {
            id: r.get(0)?,
            company_name: r.get(1)?,
            is_active: r.get(2)?,
            currency_id: r.get(3)?,
        })
    })? {
        let company = company?;
        snapshot.companies.insert(company.id, company);
    }
    let mut statement = conn.prepare(
        "SELECT id, company_id, contract_name, contract_type, status, start_date, end_date,
                service_level_agreement_id, contract_category, subscription_id
         FROM contracts ORDER BY id",
    )?;
    for contract in statement.query_map([], |r| {
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
    })? {
        let contract = contract?;
        snapshot.contracts.insert(contract.id, contract);
    }
    let mut statement = conn.prepare(
        "SELECT id, name, sku, billing_code_id, period_type, unit_price, unit_cost, is_active
         FROM services ORDER BY id",
    )?;
    for service in statement.query_map([], |r| {
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
    })? {
        let service = service?;
        snapshot.services.insert(service.id, service);
    }
    let mut statement = conn.prepare(
        "SELECT id, contract_id, service_id, adjusted_price, unit_cost, foreign_currency,
                invoice_description
         FROM contract_services ORDER BY id",
    )?;
    for record in statement.query_map([], |r| {
        Ok(ContractService {
            id: r.get(0)?,
            contract_id: r.get(1)?,
            service_id: r.get(2)?,
            adjusted_price: get_opt_decimal(r, 3)?,
            unit_cost: get_opt_decimal(r, 4)?,
            foreign_currency: r.get(5)?,
            invoice_description: r.get(6)?,
        })
    })? {
        let record = record?;
        snapshot.contract_services.insert(record.id, record);
    }
    let mut statement = conn.prepare(
        "SELECT id, contract_id, contract_service_id, service_id, start_date, end_date, units,
                price, cost
         FROM contract_service_units ORDER BY id",
    )?;
    for record in statement.query_map([], |r| {
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
    })? {
        let record = record?;
        snapshot.contract_service_units.insert(record.id, record);
    }
    let mut statement = conn.prepare(
        "SELECT id, contract_id, name, description, date_purchased, charge_type, unit_quantity,
                unit_price, unit_cost, billing_code_id, is_billed
         FROM charges ORDER BY id",
    )?;
    for record in statement.query_map([], |r| {
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
    })? {
        let record = record?;
        snapshot.charges.insert(record.id, record);
    }
    let mut statement =
        conn.prepare("SELECT id, name, use_type, is_active FROM billing_codes ORDER BY id")?;
    for record in statement.query_map([], |r| {
        Ok(BillingCode {
            id: r.get(0)?,
            name: r.get(1)?,
            use_type: r.get(2)?,
            is_active: r.get(3)?,
        })
    })? {
        let record = record?;
        snapshot.billing_codes.insert(record.id, record);
    }
    snapshot.picklists = load_picklists(conn)?;
    let mut statement = conn.prepare("SELECT id, name, is_internal FROM currencies ORDER BY id")?;
    for currency in statement.query_map([], |r| {
        Ok(Currency { id: r.get(0)?, name: r.get(1)?, is_internal: r.get(2)? })
    })? {
        let currency = currency?;
        snapshot.currencies.insert(currency.id, currency);
    }
    Ok(snapshot)
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
