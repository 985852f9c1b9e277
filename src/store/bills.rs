//! Imported bills: streaming import with restatement detection, reading them back, digests.
//!
//! A bill (organization + Billing Date) has a content hash over its lines. An import streams
//! lines in: a bill the database does not know yet goes straight into `bill_lines`; lines of a
//! known bill go to a temporary staging table, and at `finish` its hash decides: the same →
//! unchanged (the staged lines are dropped), different → a restatement (its lines are replaced,
//! `revision` + 1). The whole file is one transaction; dropping the `Import` rolls it back.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::sql::{date, get_date, get_decimal, get_timestamp, timestamp};
use super::{ImportSummary, Store, StoreError};
use chrono::NaiveDate;

use cmat_engine::billing::{organization_key, BillKey, BillLine, LineSource};

/// A loaded bill, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillInfo {
    pub key: BillKey,
    /// 1 when first imported, + 1 per restatement.
    pub revision: i64,
    pub lines: u64,
    pub subscriptions: u64,
    /// "sha256:…" over the bill's lines (order and row numbers do not count).
    pub content_sha256: String,
    pub imported_at: chrono::DateTime<Utc>,
    pub source_file: String,
}

/// An organization seen on the current bills, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationInfo {
    pub name: String,
    /// Distinct AutotaskCompanyID values on its lines (empty: not linked).
    pub autotask_company_ids: Vec<i64>,
    pub bills: u64,
    pub subscriptions: u64,
}

/// The columns of a line besides its bill, in table order (after `bill_id`).
pub(super) const LINE_COLUMNS: &str =
    "source_row, service_name, broker_name, customer_number, product_name, \
     item_code, quantity, unit_cost_price, unit_sales_price, total_cost, total_sales, \
     currency_code, product_id, subscription_id, subscription_name, autotask_company_id, \
     payment_frequency, organization_currency_code, organization_groups";

const INSERT_LINE: &str =
    "INSERT INTO bill_lines (bill_id, source_row, service_name, broker_name, \
     customer_number, product_name, item_code, quantity, unit_cost_price, unit_sales_price, \
     total_cost, total_sales, currency_code, product_id, subscription_id, subscription_name, \
     autotask_company_id, payment_frequency, organization_currency_code, organization_groups) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
     ?20)";

const INSERT_STAGED: &str = "INSERT INTO temp.import_staging (staging_index, seq, source_row, \
     service_name, broker_name, customer_number, product_name, item_code, quantity, \
     unit_cost_price, unit_sales_price, total_cost, total_sales, currency_code, product_id, \
     subscription_id, subscription_name, autotask_company_id, payment_frequency, \
     organization_currency_code, organization_groups) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
     ?20, ?21)";

/// An import in progress: lines go in one by one (streaming); nothing is visible until `finish`.
/// Dropping it without `finish` rolls everything back.
pub struct Import<'a> {
    /// Shared from the `&mut Store` `begin_import` took, so that the prepared statements can
    /// borrow the connection; nothing else can reach the store meanwhile.
    store: &'a Store,
    insert_line: rusqlite::Statement<'a>,
    insert_staged: rusqlite::Statement<'a>,
    source_name: String,
    imported_at: String,
    bills: Vec<PendingBill>,
    /// By organization key ([`organization_key`]) and Billing Date.
    index: HashMap<(String, NaiveDate), usize>,
    /// The bill of the previous line: exports list a bill's lines together, so most lookups
    /// end here without building a key.
    last: Option<usize>,
    lines: u64,
    /// The text of a line's five amounts, written in place for each line (no allocation per
    /// amount on the store's hot path).
    amounts: [String; 5],
    finished: bool,
}

struct PendingBill {
    key: BillKey,
    organization_key: String,
    target: Target,
    hash: ContentHash,
    lines: u64,
    /// Per subscription id: (service, subscription name, Σ sales, Σ cost) per service, for
    /// `bill_totals` (the review's trends).
    totals: HashMap<String, Vec<(String, String, rust_decimal::Decimal, rust_decimal::Decimal)>>,
}

enum Target {
    /// Unknown to the database: a row was inserted at first sight, lines go straight in.
    New { bill_id: i64 },
    /// Known: lines are staged until `finish` compares the content.
    Known { bill_id: i64, content_sha256: String, staging_index: i64 },
}

/// A line read from [`LINE_COLUMNS`], found in `row` from column `first` on.
pub(super) fn line_at(
    row: &rusqlite::Row<'_>,
    first: usize,
    organization_name: String,
    billing_date: NaiveDate,
    file: String,
) -> rusqlite::Result<BillLine> {
    let column = |offset: usize| first + offset;
    Ok(BillLine {
        organization_name,
        billing_date,
        source: LineSource { file, row: row.get::<_, i64>(column(0))?.max(0) as u64 },
        service_name: row.get(column(1))?,
        broker_name: row.get(column(2))?,
        customer_number: row.get(column(3))?,
        product_name: row.get(column(4))?,
        item_code: row.get(column(5))?,
        quantity: get_decimal(row, column(6))?,
        unit_cost_price: get_decimal(row, column(7))?,
        unit_sales_price: get_decimal(row, column(8))?,
        total_cost: get_decimal(row, column(9))?,
        total_sales: get_decimal(row, column(10))?,
        currency_code: row.get(column(11))?,
        product_id: row.get(column(12))?,
        subscription_id: row.get(column(13))?,
        subscription_name: row.get(column(14))?,
        autotask_company_id: row.get(column(15))?,
        payment_frequency: row.get(column(16))?,
        organization_currency_code: row.get(column(17))?,
        organization_groups: row.get(column(18))?,
    })
}

impl Store {
    /// How many lines the current bills hold.
    pub fn bill_lines_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM bill_lines", [], |row| row.get::<_, i64>(0))
            .map(|count| count.max(0) as u64)
            .map_err(|e| self.wrap(e))
    }

    /// Whether any imported line has what a scope term names (for `cmat check`'s warning about
    /// a scope no bill has: likely a typo). Terms that name no organization, service or
    /// product (a term, a currency) are always "seen".
    pub fn scope_seen(&self, term: &cmat_engine::rules::ScopeTerm) -> Result<bool, StoreError> {
        use cmat_engine::rules::ScopeTerm;
        let like = |pattern: &str| {
            pattern.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_").replace('*', "%")
        };
        let (sql, value): (&str, String) = match term {
            ScopeTerm::Service(value) => {
                ("SELECT 1 FROM bill_lines WHERE service_name = ?1 LIMIT 1", value.clone())
            }
            ScopeTerm::Organization(value) => {
                ("SELECT 1 FROM bills WHERE organization_name = ?1 LIMIT 1", value.clone())
            }
            ScopeTerm::CustomerNumber(value) => (
                "SELECT 1 FROM bill_lines WHERE trim(customer_number) = ?1 LIMIT 1",
                value.clone(),
            ),
            // Exact, as the rules compare groups.
            ScopeTerm::OrganizationGroup(value) => (
                "SELECT 1 FROM bill_lines
                 WHERE instr(';' || replace(organization_groups, '; ', ';') || ';', ';' || ?1 || ';') > 0
                 LIMIT 1",
                value.clone(),
            ),
            ScopeTerm::ItemCode(value) => {
                ("SELECT 1 FROM bill_lines WHERE item_code = ?1 LIMIT 1", value.clone())
            }
            ScopeTerm::ProductId(value) => {
                ("SELECT 1 FROM bill_lines WHERE product_id = ?1 LIMIT 1", value.clone())
            }
            ScopeTerm::ProductName(pattern) => (
                "SELECT 1 FROM bill_lines WHERE product_name LIKE ?1 ESCAPE '\\' LIMIT 1",
                like(pattern),
            ),
            ScopeTerm::MeterCategory(value) => (
                "SELECT 1 FROM bill_lines WHERE product_name LIKE ?1 ESCAPE '\\'
                    OR product_name LIKE ?1 || ' - %' ESCAPE '\\' LIMIT 1",
                like(value),
            ),
            ScopeTerm::Subscription(value) => {
                ("SELECT 1 FROM bill_lines WHERE subscription_id = ?1 LIMIT 1", value.clone())
            }
            ScopeTerm::Term(_) | ScopeTerm::Currency(_) => return Ok(true),
        };
        let found =
            self.conn.query_row(sql, [value], |_| Ok(())).optional().map_err(|e| self.wrap(e))?;
        Ok(found.is_some())
    }
}

impl Store {
    /// Starts importing one source (a file, or one API pull) in its own transaction.
    pub fn begin_import(&mut self, source_name: &str) -> Result<Import<'_>, StoreError> {
        self.conn
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS import_staging (
                     staging_index INTEGER NOT NULL,
                     seq INTEGER NOT NULL,
                     source_row INTEGER NOT NULL,
                     service_name TEXT NOT NULL,
                     broker_name TEXT NOT NULL,
                     customer_number TEXT NOT NULL,
                     product_name TEXT NOT NULL,
                     item_code TEXT NOT NULL,
                     quantity TEXT NOT NULL,
                     unit_cost_price TEXT NOT NULL,
                     unit_sales_price TEXT NOT NULL,
                     total_cost TEXT NOT NULL,
                     total_sales TEXT NOT NULL,
                     currency_code TEXT NOT NULL,
                     product_id TEXT NOT NULL,
                     subscription_id TEXT NOT NULL,
                     subscription_name TEXT NOT NULL,
                     autotask_company_id INTEGER,
                     payment_frequency TEXT NOT NULL,
                     organization_currency_code TEXT NOT NULL,
                     organization_groups TEXT NOT NULL,
                     PRIMARY KEY (staging_index, seq)
                 ) WITHOUT ROWID;
                 BEGIN IMMEDIATE;
                 DELETE FROM temp.import_staging;",
            )
            .map_err(|e| {
                rollback(&self.conn);
                self.wrap(e)
            })?;
        let store: &Store = self;
        let statements = (|| -> rusqlite::Result<_> {
            Ok((store.conn.prepare(INSERT_LINE)?, store.conn.prepare(INSERT_STAGED)?))
        })();
        let (insert_line, insert_staged) = statements.map_err(|e| {
            rollback(&store.conn);
            store.wrap(e)
        })?;
        Ok(Import {
            store,
            insert_line,
            insert_staged,
            source_name: source_name.to_string(),
            imported_at: timestamp(&Utc::now()),
            bills: Vec::new(),
            index: HashMap::new(),
            last: None,
            lines: 0,
            amounts: Default::default(),
            finished: false,
        })
    }

    /// Every line of every current bill (restated bills: only their latest version), by
    /// Billing Date, organization, then their order in the source.
    pub fn bill_lines(&self) -> Result<Vec<BillLine>, StoreError> {
        let sql = format!(
            "SELECT b.organization_name, b.billing_date, b.source_file, {LINE_COLUMNS}
             FROM bill_lines l JOIN bills b ON b.id = l.bill_id
             ORDER BY b.billing_date, b.organization_name, l.id"
        );
        let read = || -> rusqlite::Result<Vec<BillLine>> {
            let mut statement = self.conn.prepare(&sql)?;
            let rows = statement.query_map([], |row| {
                line_at(row, 3, row.get(0)?, get_date(row, 1)?, row.get(2)?)
            })?;
            rows.collect()
        };
        read().map_err(|e| self.wrap(e))
    }

    /// "sha256:…" over the current bills' contents; changes exactly when a bill is added or restated.
    pub fn inputs_digest(&self) -> Result<String, StoreError> {
        let read = || -> rusqlite::Result<String> {
            let mut statement = self.conn.prepare(
                "SELECT organization_name, billing_date, content_sha256 FROM bills
                 ORDER BY organization_name, billing_date, organization_key",
            )?;
            let mut rows = statement.query([])?;
            let mut hasher = Sha256::new();
            while let Some(row) = rows.next()? {
                for index in 0..3 {
                    let text: String = row.get(index)?;
                    hash_field(&mut hasher, text.as_bytes());
                }
            }
            Ok(format!("sha256:{}", hex(&hasher.finalize())))
        };
        read().map_err(|e| self.wrap(e))
    }

    /// Every current bill, by Billing Date then organization.
    pub fn bills(&self) -> Result<Vec<BillInfo>, StoreError> {
        let read = || -> rusqlite::Result<Vec<BillInfo>> {
            let mut statement = self.conn.prepare(
                "SELECT b.organization_name, b.billing_date, b.revision, b.line_count,
                        (SELECT COUNT(DISTINCT subscription_id) FROM bill_lines WHERE bill_id = b.id),
                        b.content_sha256, b.imported_at, b.source_file
                 FROM bills b ORDER BY b.billing_date, b.organization_name",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(BillInfo {
                    key: BillKey {
                        organization_name: row.get(0)?,
                        billing_date: get_date(row, 1)?,
                    },
                    revision: row.get(2)?,
                    lines: row.get::<_, i64>(3)?.max(0) as u64,
                    subscriptions: row.get::<_, i64>(4)?.max(0) as u64,
                    content_sha256: row.get(5)?,
                    imported_at: get_timestamp(row, 6)?,
                    source_file: row.get(7)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.wrap(e))
    }

    /// Every organization on the current bills, by name.
    pub fn organizations(&self) -> Result<Vec<OrganizationInfo>, StoreError> {
        let read = || -> rusqlite::Result<Vec<OrganizationInfo>> {
            let mut statement = self.conn.prepare(
                "SELECT b.organization_name,
                        (SELECT group_concat(id) FROM (
                             SELECT DISTINCT l.autotask_company_id AS id FROM bill_lines l
                             JOIN bills b2 ON b2.id = l.bill_id
                             WHERE b2.organization_name = b.organization_name
                               AND l.autotask_company_id IS NOT NULL
                             ORDER BY 1)),
                        COUNT(*),
                        (SELECT COUNT(DISTINCT l.subscription_id) FROM bill_lines l
                         JOIN bills b3 ON b3.id = l.bill_id
                         WHERE b3.organization_name = b.organization_name)
                 FROM bills b GROUP BY b.organization_name ORDER BY b.organization_name",
            )?;
            let rows = statement.query_map([], |row| {
                let ids: Option<String> = row.get(1)?;
                Ok(OrganizationInfo {
                    name: row.get(0)?,
                    autotask_company_ids: ids
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(|id| id.parse().ok())
                        .collect(),
                    bills: row.get::<_, i64>(2)?.max(0) as u64,
                    subscriptions: row.get::<_, i64>(3)?.max(0) as u64,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.wrap(e))
    }
}

/// A line's contribution to its bill's content hash. Computed apart from the insert
/// ([`line_digest`]) so that an import can hash on the thread that parses while the store's
/// thread writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineDigest(pub(super) [u8; 32]);

impl Import<'_> {
    pub fn add_line(&mut self, line: &BillLine) -> Result<(), StoreError> {
        self.add_digested_line(line, line_digest(line))
    }

    /// [`add_line`](Self::add_line) with the line's digest already computed.
    pub fn add_digested_line(
        &mut self,
        line: &BillLine,
        digest: LineDigest,
    ) -> Result<(), StoreError> {
        self.add(line, &digest).map_err(|e| self.store.wrap(e))
    }

    fn add(&mut self, line: &BillLine, digest: &LineDigest) -> rusqlite::Result<()> {
        let slot = match self.last {
            Some(slot)
                if self.bills[slot].key.billing_date == line.billing_date
                    && self.bills[slot].key.organization_name == line.organization_name
                    && self.bills[slot].key_matches(line) =>
            {
                slot
            }
            _ => self.slot_for(line)?,
        };
        self.last = Some(slot);
        self.lines += 1;
        let bill = &mut self.bills[slot];
        bill.hash.add(digest);
        bill.add_totals(line);
        bill.lines += 1;
        let [quantity, unit_cost_price, unit_sales_price, total_cost, total_sales] =
            &mut self.amounts;
        for (text, amount) in [
            (&mut *quantity, line.quantity),
            (&mut *unit_cost_price, line.unit_cost_price),
            (&mut *unit_sales_price, line.unit_sales_price),
            (&mut *total_cost, line.total_cost),
            (&mut *total_sales, line.total_sales),
        ] {
            text.clear();
            // Writing to a String cannot fail.
            let _ = write!(text, "{amount}");
        }
        let [quantity, unit_cost_price, unit_sales_price, total_cost, total_sales] = &self.amounts;
        let row = line.source.row as i64;
        match &bill.target {
            Target::New { bill_id } => {
                self.insert_line.execute(params![
                    bill_id,
                    row,
                    line.service_name,
                    line.broker_name,
                    line.customer_number,
                    line.product_name,
                    line.item_code,
                    quantity,
                    unit_cost_price,
                    unit_sales_price,
                    total_cost,
                    total_sales,
                    line.currency_code,
                    line.product_id,
                    line.subscription_id,
                    line.subscription_name,
                    line.autotask_company_id,
                    line.payment_frequency,
                    line.organization_currency_code,
                    line.organization_groups,
                ])?;
            }
            Target::Known { staging_index, .. } => {
                self.insert_staged.execute(params![
                    staging_index,
                    bill.lines as i64,
                    row,
                    line.service_name,
                    line.broker_name,
                    line.customer_number,
                    line.product_name,
                    line.item_code,
                    quantity,
                    unit_cost_price,
                    unit_sales_price,
                    total_cost,
                    total_sales,
                    line.currency_code,
                    line.product_id,
                    line.subscription_id,
                    line.subscription_name,
                    line.autotask_company_id,
                    line.payment_frequency,
                    line.organization_currency_code,
                    line.organization_groups,
                ])?;
            }
        }
        Ok(())
    }

    /// Finds or opens the bill of `line`; a bill the database does not know gets its row now.
    fn slot_for(&mut self, line: &BillLine) -> rusqlite::Result<usize> {
        let organization = organization_key(line);
        let index_key = (organization, line.billing_date);
        if let Some(&slot) = self.index.get(&index_key) {
            return Ok(slot);
        }
        let key = BillKey {
            organization_name: line.organization_name.clone(),
            billing_date: line.billing_date,
        };
        let conn = &self.store.conn;
        let billing_date = date(&key.billing_date);
        let existing: Option<(i64, String)> = conn
            .query_row(
                "SELECT id, content_sha256 FROM bills
                 WHERE organization_key = ?1 AND billing_date = ?2",
                params![index_key.0, billing_date],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let target = match existing {
            Some((bill_id, content_sha256)) => {
                Target::Known { bill_id, content_sha256, staging_index: self.bills.len() as i64 }
            }
            None => {
                conn.execute(
                    "INSERT INTO bills (organization_key, organization_name, billing_date,
                                        content_sha256, revision, line_count, imported_at,
                                        source_file)
                     VALUES (?1, ?2, ?3, '', 1, 0, ?4, ?5)",
                    params![
                        index_key.0,
                        key.organization_name,
                        billing_date,
                        self.imported_at,
                        self.source_name
                    ],
                )?;
                Target::New { bill_id: conn.last_insert_rowid() }
            }
        };
        let slot = self.bills.len();
        self.bills.push(PendingBill {
            key,
            organization_key: index_key.0.clone(),
            target,
            hash: ContentHash::default(),
            totals: HashMap::new(),
            lines: 0,
        });
        self.index.insert(index_key, slot);
        Ok(slot)
    }

    pub fn finish(mut self) -> Result<ImportSummary, StoreError> {
        let summary = self.complete().map_err(|e| self.store.wrap(e))?;
        self.finished = true;
        Ok(summary)
    }

    fn complete(&mut self) -> rusqlite::Result<ImportSummary> {
        let conn = &self.store.conn;
        let mut summary = ImportSummary { lines: self.lines, ..ImportSummary::default() };
        let mut insert_total = conn.prepare(
            "INSERT INTO bill_totals (bill_id, service_name, subscription_id, subscription_name,
                                      total_sales, total_cost)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for bill in &self.bills {
            let bill_id = match &bill.target {
                Target::New { bill_id } | Target::Known { bill_id, .. } => *bill_id,
            };
            // Written again whatever the outcome below: an unchanged bill imported before
            // migration 0006 gets its totals now.
            conn.execute("DELETE FROM bill_totals WHERE bill_id = ?1", [bill_id])?;
            for (subscription, services) in &bill.totals {
                for (service, name, sales, cost) in services {
                    insert_total.execute(params![
                        bill_id,
                        service,
                        subscription,
                        name,
                        sales.to_string(),
                        cost.to_string()
                    ])?;
                }
            }
            let content = bill.hash.finish();
            match &bill.target {
                Target::New { bill_id } => {
                    conn.execute(
                        "UPDATE bills SET content_sha256 = ?1, line_count = ?2 WHERE id = ?3",
                        params![content, bill.lines as i64, bill_id],
                    )?;
                    summary.new_bills.push(bill.key.clone());
                }
                Target::Known { bill_id, content_sha256, .. } if *content_sha256 == content => {
                    // The same lines under a new organization name (a rename in Cloudmore):
                    // the bill keeps its key and takes the name.
                    conn.execute(
                        "UPDATE bills SET organization_name = ?1
                         WHERE id = ?2 AND organization_name != ?1",
                        params![bill.key.organization_name, bill_id],
                    )?;
                    summary.unchanged_bills.push(bill.key.clone());
                }
                Target::Known { bill_id, staging_index, .. } => {
                    conn.execute("DELETE FROM bill_lines WHERE bill_id = ?1", [bill_id])?;
                    conn.execute(
                        &format!(
                            "INSERT INTO bill_lines (bill_id, {LINE_COLUMNS})
                             SELECT ?1, {LINE_COLUMNS} FROM temp.import_staging
                             WHERE staging_index = ?2 ORDER BY seq"
                        ),
                        params![bill_id, staging_index],
                    )?;
                    conn.execute(
                        "UPDATE bills SET content_sha256 = ?1, line_count = ?2,
                                revision = revision + 1, imported_at = ?3, source_file = ?4,
                                organization_name = ?5
                         WHERE id = ?6",
                        params![
                            content,
                            bill.lines as i64,
                            self.imported_at,
                            self.source_name,
                            bill.key.organization_name,
                            bill_id
                        ],
                    )?;
                    summary.restated_bills.push(bill.key.clone());
                }
            }
        }
        conn.execute_batch("DELETE FROM temp.import_staging; COMMIT;")?;
        summary.new_bills.sort();
        summary.unchanged_bills.sort();
        summary.restated_bills.sort();
        Ok(summary)
    }
}

impl Drop for Import<'_> {
    fn drop(&mut self) {
        if !self.finished {
            rollback(&self.store.conn);
        }
    }
}

fn rollback(conn: &Connection) {
    // Nothing to report to: the caller is already returning the error that stopped the import.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// The content of a bill, independent of the order of its lines and of their row numbers: the
/// sum (mod 2^256) of each line's SHA-256, with the line count. Summing keeps it streaming (no
/// list of lines to sort) and, unlike XOR, a repeated line still counts twice.
#[derive(Default)]
struct ContentHash {
    sum: [u64; 4],
    count: u64,
}

impl PendingBill {
    fn add_totals(&mut self, line: &BillLine) {
        let services = match self.totals.get_mut(line.subscription_id.as_str()) {
            Some(services) => services,
            None => self.totals.entry(line.subscription_id.clone()).or_default(),
        };
        match services.iter_mut().find(|(service, ..)| *service == line.service_name) {
            Some((_, _, sales, cost)) => {
                *sales += line.total_sales;
                *cost += line.total_cost;
            }
            None => services.push((
                line.service_name.clone(),
                line.subscription_name.clone(),
                line.total_sales,
                line.total_cost,
            )),
        }
    }

    fn key_matches(&self, line: &BillLine) -> bool {
        let number = line.customer_number.trim();
        match self.organization_key.strip_prefix("number:") {
            Some(key) => key == number,
            None => number.is_empty(),
        }
    }
}

/// The SHA-256 of a line's content (not its row): its bill's hash sums these, so the order
/// of lines does not count.
pub fn line_digest(line: &BillLine) -> LineDigest {
    let mut hasher = Sha256::new();
    for field in [
        line.service_name.as_str(),
        &line.broker_name,
        &line.customer_number,
        &line.product_name,
        &line.item_code,
        &line.currency_code,
        &line.product_id,
        &line.subscription_id,
        &line.subscription_name,
    ] {
        hash_field(&mut hasher, field.as_bytes());
    }
    // Normalized: "25.00" and "25" are the same quantity, so a re-export that drops trailing
    // zeros is not a restatement. `serialize` is the exact 16-byte form (no text formatting
    // on the hot path).
    for amount in [
        line.quantity,
        line.unit_cost_price,
        line.unit_sales_price,
        line.total_cost,
        line.total_sales,
    ] {
        hasher.update(amount.normalize().serialize());
    }
    // Added by migration 0005: hashed only when present, so that a bill imported before
    // them (or from an export without them) keeps its content hash.
    // Organization Groups (migration 0009), likewise.
    for (tag, field) in [
        (b'f', line.payment_frequency.as_str()),
        (b'c', line.organization_currency_code.as_str()),
        (b'g', line.organization_groups.as_str()),
    ] {
        if !field.is_empty() {
            hasher.update([tag]);
            hash_field(&mut hasher, field.as_bytes());
        }
    }
    match line.autotask_company_id {
        Some(id) => {
            hasher.update([1]);
            hasher.update(id.to_le_bytes());
        }
        None => hasher.update([0]),
    }
    LineDigest(hasher.finalize().into())
}

impl ContentHash {
    fn add(&mut self, digest: &LineDigest) {
        let mut carry = 0u128;
        for (limb, chunk) in self.sum.iter_mut().zip(digest.0.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            let total = *limb as u128 + u64::from_le_bytes(bytes) as u128 + carry;
            *limb = total as u64;
            carry = total >> 64;
        }
        self.count += 1;
    }

    fn finish(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"cmat-bill-v1");
        hasher.update(self.count.to_le_bytes());
        for limb in self.sum {
            hasher.update(limb.to_le_bytes());
        }
        format!("sha256:{}", hex(&hasher.finalize()))
    }
}

/// Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
pub(super) fn hash_field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
