//! Imported bills: streaming import with restatement detection, reading them back, digests.
//!
//! A bill (organization + Billing Date) has a content hash over its lines. An import streams
//! lines in, each bill's gathered into blocks ([`line_blocks`](super::line_blocks)): a bill the
//! database does not know yet has its blocks written to `bill_line_blocks` as they fill; a
//! known bill's go to a temporary staging table, and at `finish` its hash decides: the same →
//! unchanged (the staged blocks are dropped), different → a restatement (its lines are
//! replaced, `revision` + 1). Memory stays flat: when the open blocks of all bills hold more
//! than [`MAX_BUFFERED`] bytes, they are all written. The whole file is one transaction;
//! dropping the `Import` rolls it back.

use std::collections::HashMap;

use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::line_blocks::{
    decode_for_import, encode_for_import, visit_bill, BlockWriter, CorruptBlock, RawLine,
    StoredLine, BLOCK_BYTES, SELECT_BLOCKS,
};
use super::sql::{date, get_date, get_timestamp, timestamp};
use super::wal_flush::WalFlusher;
use super::{ImportSummary, Store, StoreError};
use chrono::NaiveDate;

use cmat_engine::billing::{organization_key_of, BillKey, BillLine};

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

const INSERT_BLOCK: &str =
    "INSERT INTO bill_line_blocks (bill_id, line_count, lines) VALUES (?1, ?2, ?3)";
const INSERT_STAGED: &str =
    "INSERT INTO temp.import_blocks (staging_index, line_count, lines) VALUES (?1, ?2, ?3)";

/// The most bytes the open blocks of all bills hold before they are all written.
const MAX_BUFFERED: usize = 8 * 1024 * 1024;

/// An import in progress: lines go in one by one (streaming); nothing is visible until `finish`.
/// Dropping it without `finish` rolls everything back.
pub struct Import<'a> {
    /// Shared from the `&mut Store` `begin_import` took, so that the prepared statements can
    /// borrow the connection; nothing else can reach the store meanwhile.
    store: &'a Store,
    insert_block: rusqlite::Statement<'a>,
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
    /// Bytes in the bills' open blocks.
    buffered: usize,
    /// Where [`Import::add_line`] encodes a line.
    encoded: Vec<u8>,
    /// Where a line's bytes are laid out for its digest.
    hashed: Vec<u8>,
    /// Writes the WAL out as new bills' blocks fill it (`wal_flush.rs`).
    wal_flusher: WalFlusher,
    finished: bool,
}

struct PendingBill {
    key: BillKey,
    organization_key: String,
    target: Target,
    hash: ContentHash,
    lines: u64,
    totals: BillTotals,
    /// The lines not yet written.
    block: Vec<u8>,
    block_lines: i64,
    writer: BlockWriter,
}

/// Per subscription id: (service, subscription name, Σ sales, Σ cost) per service, for
/// `bill_totals` (the review's trends).
#[derive(Default)]
pub(super) struct BillTotals(
    HashMap<String, Vec<(String, String, rust_decimal::Decimal, rust_decimal::Decimal)>>,
);

enum Target {
    /// Unknown to the database: a row was inserted at first sight, lines go straight in.
    New { bill_id: i64 },
    /// Known: lines are staged until `finish` compares the content.
    Known { bill_id: i64, content_sha256: String, staging_index: i64 },
}

impl Target {
    fn bill_id(&self) -> i64 {
        match self {
            Target::New { bill_id } | Target::Known { bill_id, .. } => *bill_id,
        }
    }
}

impl Store {
    /// How many lines the current bills hold.
    pub fn bill_lines_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(SUM(line_count), 0) FROM bills", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|count| count.max(0) as u64)
            .map_err(|e| self.wrap(e))
    }

    /// Whether any imported line has what a scope term names (for `cmat check`'s warning about
    /// a scope no bill has: likely a typo). Terms that name no organization, service or
    /// product (a term, a currency) are always "seen".
    pub fn scope_seen(&self, term: &cmat_engine::rules::ScopeTerm) -> Result<bool, StoreError> {
        use cmat_engine::rules::scoped::meter_category;
        use cmat_engine::rules::{LineFacts, ScopeTerm};
        if matches!(
            term,
            ScopeTerm::Term(_) | ScopeTerm::Currency(_) | ScopeTerm::From(_) | ScopeTerm::Until(_)
        ) {
            return Ok(true);
        }
        let seen = || -> rusqlite::Result<bool> {
            let bills = self.stored_bills(None)?;
            let mut blocks = self.conn.prepare(SELECT_BLOCKS)?;
            for bill in &bills {
                let mut seen = false;
                visit_bill(&mut blocks, bill.id, |line| {
                    seen = seen
                        || term.matches(&LineFacts {
                            service: line.service_name,
                            broker: line.broker_name,
                            organization: &bill.organization_name,
                            customer_number: line.customer_number,
                            organization_groups: line.organization_groups,
                            item_code: line.item_code,
                            product_id: line.product_id,
                            product_name: line.product_name,
                            meter_category: meter_category(line.product_name),
                            subscription: line.subscription_id,
                            term: line.payment_frequency,
                            currency: line.currency_code,
                            billing_date: bill.billing_date,
                        });
                })?;
                if seen {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        seen().map_err(|e| self.wrap(e))
    }

    /// The bills, or those dated in `from..to`, in the order their lines are read back: by
    /// date, then organization.
    pub(super) fn stored_bills(
        &self,
        dates: Option<(NaiveDate, NaiveDate)>,
    ) -> rusqlite::Result<Vec<StoredBill>> {
        let (from, to) = match dates {
            Some((from, to)) => (Some(date(&from)), Some(date(&to))),
            None => (None, None),
        };
        let mut bills = self.conn.prepare(
            "SELECT id, organization_name, billing_date, source_file FROM bills
             WHERE (?1 IS NULL OR billing_date >= ?1) AND (?2 IS NULL OR billing_date < ?2)
             ORDER BY billing_date, organization_name, id",
        )?;
        let rows = bills.query_map(params![from, to], |row| {
            Ok(StoredBill {
                id: row.get(0)?,
                organization_name: row.get(1)?,
                billing_date: get_date(row, 2)?,
                source_file: row.get(3)?,
            })
        })?;
        rows.collect()
    }
}

/// A bill as its lines are read back with it.
pub(super) struct StoredBill {
    pub(super) id: i64,
    pub(super) organization_name: String,
    pub(super) billing_date: NaiveDate,
    pub(super) source_file: String,
}

impl Store {
    /// Starts importing one source (a file, or one API pull) in its own transaction.
    pub fn begin_import(&mut self, source_name: &str) -> Result<Import<'_>, StoreError> {
        self.conn
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS import_blocks (
                     id INTEGER PRIMARY KEY,
                     staging_index INTEGER NOT NULL,
                     line_count INTEGER NOT NULL,
                     lines BLOB NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS temp.import_blocks_by_index
                     ON import_blocks (staging_index);
                 PRAGMA cache_size = -8192;
                 BEGIN IMMEDIATE;
                 DELETE FROM temp.import_blocks;",
            )
            .map_err(|e| {
                rollback(&self.conn);
                self.wrap(e)
            })?;
        let store: &Store = self;
        let statements = (|| -> rusqlite::Result<_> {
            Ok((store.conn.prepare(INSERT_BLOCK)?, store.conn.prepare(INSERT_STAGED)?))
        })();
        let (insert_block, insert_staged) = statements.map_err(|e| {
            rollback(&store.conn);
            store.wrap(e)
        })?;
        Ok(Import {
            store,
            insert_block,
            insert_staged,
            source_name: source_name.to_string(),
            imported_at: timestamp(&Utc::now()),
            bills: Vec::new(),
            index: HashMap::new(),
            last: None,
            lines: 0,
            buffered: 0,
            encoded: Vec::new(),
            hashed: Vec::new(),
            wal_flusher: WalFlusher::start(&store.path),
            finished: false,
        })
    }

    /// Every line of every current bill (restated bills: only their latest version), by
    /// Billing Date, organization, then their order in the source.
    pub fn bill_lines(&self) -> Result<Vec<BillLine>, StoreError> {
        let mut lines = Vec::new();
        self.visit_bill_lines(None, |line| lines.push(line))?;
        Ok(lines)
    }

    /// Calls `visit` with every current line (or those with a Billing Date in `from..to`), in
    /// the order of [`Store::bill_lines`], without holding them all.
    pub fn visit_bill_lines(
        &self,
        dates: Option<(NaiveDate, NaiveDate)>,
        mut visit: impl FnMut(BillLine),
    ) -> Result<(), StoreError> {
        let mut read = || -> rusqlite::Result<()> {
            let mut blocks = self.conn.prepare(SELECT_BLOCKS)?;
            for bill in self.stored_bills(dates)? {
                visit_bill(&mut blocks, bill.id, |line| {
                    visit(line.into_bill_line(
                        &bill.organization_name,
                        bill.billing_date,
                        &bill.source_file,
                    ))
                })?;
            }
            Ok(())
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
                        (SELECT COUNT(DISTINCT subscription_id) FROM bill_totals
                         WHERE bill_id = b.id),
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
            let mut bills = self.stored_bills(None)?;
            bills.sort_by(|a, b| a.organization_name.cmp(&b.organization_name));
            let mut blocks = self.conn.prepare(SELECT_BLOCKS)?;
            let mut organizations: Vec<OrganizationInfo> = Vec::new();
            let mut subscriptions = std::collections::HashSet::new();
            for bill in &bills {
                if organizations.last().map(|last| &last.name) != Some(&bill.organization_name) {
                    subscriptions.clear();
                    organizations.push(OrganizationInfo {
                        name: bill.organization_name.clone(),
                        autotask_company_ids: Vec::new(),
                        bills: 0,
                        subscriptions: 0,
                    });
                }
                let Some(organization) = organizations.last_mut() else { continue };
                organization.bills += 1;
                let ids = &mut organization.autotask_company_ids;
                visit_bill(&mut blocks, bill.id, |line| {
                    if let Some(id) = line.autotask_company_id {
                        if let Err(at) = ids.binary_search(&id) {
                            ids.insert(at, id);
                        }
                    }
                    if !subscriptions.contains(line.subscription_id) {
                        subscriptions.insert(line.subscription_id.to_string());
                    }
                })?;
                organization.subscriptions = subscriptions.len() as u64;
            }
            Ok(organizations)
        };
        read().map_err(|e| self.wrap(e))
    }
}

/// A line's contribution to its bill's content hash ([`line_digest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LineDigest(pub(super) [u8; 32]);

/// Encodes `line` as [`Import::add_encoded_line`] takes it: so that an import can encode on the
/// thread that parses while the store's thread hashes and writes.
pub fn encode_line(line: &BillLine, out: &mut Vec<u8>) {
    encode_for_import(line, out);
}

impl Import<'_> {
    pub fn add_line(&mut self, line: &BillLine) -> Result<(), StoreError> {
        let mut encoded = std::mem::take(&mut self.encoded);
        encoded.clear();
        encode_for_import(line, &mut encoded);
        let added = self.add_encoded_line(&encoded);
        self.encoded = encoded;
        added
    }

    /// A line encoded by [`encode_line`].
    pub fn add_encoded_line(&mut self, encoded: &[u8]) -> Result<(), StoreError> {
        self.add(encoded).map_err(|e| self.store.wrap(e))
    }

    fn add(&mut self, encoded: &[u8]) -> rusqlite::Result<()> {
        let corrupt = |e: CorruptBlock| rusqlite::Error::ToSqlConversionFailure(e.into());
        let (organization, billing_date, line) = decode_for_import(encoded).map_err(corrupt)?;
        let customer_number = std::str::from_utf8(line.customer_number())
            .map_err(|_| corrupt(CorruptBlock("text not UTF-8")))?;
        let slot = match self.last {
            Some(slot)
                if self.bills[slot].key.billing_date == billing_date
                    && self.bills[slot].key.organization_name == organization
                    && self.bills[slot].key_matches(customer_number) =>
            {
                slot
            }
            _ => self.slot_for(organization, billing_date, customer_number)?,
        };
        self.last = Some(slot);
        self.lines += 1;
        let bill = &mut self.bills[slot];
        let line_digest =
            digest(line.texts, line.amounts, line.autotask_company_id, &mut self.hashed);
        bill.hash.add(&line_digest);
        bill.totals.add_raw(&line).map_err(corrupt)?;
        bill.lines += 1;
        let before = bill.block.len();
        bill.writer.push_raw(&mut bill.block, &line);
        bill.block_lines += 1;
        self.buffered += bill.block.len() - before;
        if bill.block.len() >= BLOCK_BYTES {
            self.write_block(slot)?;
        }
        if self.buffered >= MAX_BUFFERED {
            self.write_all_blocks()?;
        }
        Ok(())
    }

    /// Writes the open block of the bill in `slot`, where its lines go.
    fn write_block(&mut self, slot: usize) -> rusqlite::Result<()> {
        let bill = &mut self.bills[slot];
        if bill.block_lines == 0 {
            return Ok(());
        }
        let block = std::mem::take(&mut bill.block);
        let lines = std::mem::take(&mut bill.block_lines);
        self.buffered -= block.len();
        match &bill.target {
            Target::New { bill_id } => {
                self.insert_block.execute(params![bill_id, lines, &block])?;
                self.wal_flusher.wrote(block.len());
            }
            // Staged in the temporary database, which has no WAL.
            Target::Known { staging_index, .. } => {
                self.insert_staged.execute(params![staging_index, lines, block])?;
            }
        };
        Ok(())
    }

    fn write_all_blocks(&mut self) -> rusqlite::Result<()> {
        for slot in 0..self.bills.len() {
            self.write_block(slot)?;
        }
        Ok(())
    }

    /// Finds or opens the bill of a line; a bill the database does not know gets its row now.
    fn slot_for(
        &mut self,
        organization_name: &str,
        billing_date: NaiveDate,
        customer_number: &str,
    ) -> rusqlite::Result<usize> {
        let index_key = (organization_key_of(organization_name, customer_number), billing_date);
        if let Some(&slot) = self.index.get(&index_key) {
            return Ok(slot);
        }
        let key = BillKey { organization_name: organization_name.to_string(), billing_date };
        let target = self.target_of(&index_key.0, &key)?;
        let slot = self.bills.len();
        self.bills.push(PendingBill {
            key,
            organization_key: index_key.0.clone(),
            target,
            hash: ContentHash::default(),
            totals: BillTotals::default(),
            lines: 0,
            block: Vec::new(),
            block_lines: 0,
            writer: BlockWriter::default(),
        });
        self.index.insert(index_key, slot);
        Ok(slot)
    }

    /// The stored bill a new bill key of this import replaces, or a new row for it (its content
    /// hash written when the import completes).
    fn target_of(&self, organization_key: &str, key: &BillKey) -> rusqlite::Result<Target> {
        let conn = &self.store.conn;
        let billing_date = date(&key.billing_date);
        let existing: Option<(i64, String)> = conn
            .query_row(
                "SELECT id, content_sha256 FROM bills
                 WHERE organization_key = ?1 AND billing_date = ?2",
                params![organization_key, billing_date],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if let Some((bill_id, content_sha256)) = existing {
            return Ok(Target::Known {
                bill_id,
                content_sha256,
                staging_index: self.bills.len() as i64,
            });
        }
        conn.execute(
            "INSERT INTO bills (organization_key, organization_name, billing_date,
                                content_sha256, revision, line_count, imported_at,
                                source_file)
             VALUES (?1, ?2, ?3, '', 1, 0, ?4, ?5)",
            params![
                organization_key,
                key.organization_name,
                billing_date,
                self.imported_at,
                self.source_name
            ],
        )?;
        Ok(Target::New { bill_id: conn.last_insert_rowid() })
    }

    pub fn finish(mut self) -> Result<ImportSummary, StoreError> {
        let summary = self.complete().map_err(|e| self.store.wrap(e))?;
        self.finished = true;
        Ok(summary)
    }

    fn complete(&mut self) -> rusqlite::Result<ImportSummary> {
        self.write_all_blocks()?;
        let mut summary = ImportSummary { lines: self.lines, ..ImportSummary::default() };
        for bill in &self.bills {
            let list = match self.settle(bill)? {
                Settled::New => &mut summary.new_bills,
                Settled::Unchanged => &mut summary.unchanged_bills,
                Settled::Restated => &mut summary.restated_bills,
            };
            list.push(bill.key.clone());
        }
        self.store.conn.execute_batch(&format!(
            "DELETE FROM temp.import_blocks; COMMIT; {CACHE_AFTER_IMPORT}"
        ))?;
        summary.new_bills.sort();
        summary.unchanged_bills.sort();
        summary.restated_bills.sort();
        Ok(summary)
    }

    /// Writes one bill's outcome: its totals, and its hash and line count (a new bill), its
    /// name (the same lines, renamed), or its staged blocks and a new revision (restated).
    fn settle(&self, bill: &PendingBill) -> rusqlite::Result<Settled> {
        let conn = &self.store.conn;
        // Written again whatever the outcome below (the same totals for an unchanged bill).
        bill.totals.replace(conn, bill.target.bill_id())?;
        let content = bill.hash.finish();
        match &bill.target {
            Target::New { bill_id } => {
                conn.execute(
                    "UPDATE bills SET content_sha256 = ?1, line_count = ?2 WHERE id = ?3",
                    params![content, bill.lines as i64, bill_id],
                )?;
                Ok(Settled::New)
            }
            Target::Known { bill_id, content_sha256, .. } if *content_sha256 == content => {
                // The same lines under a new organization name (a rename in Cloudmore):
                // the bill keeps its key and takes the name.
                conn.execute(
                    "UPDATE bills SET organization_name = ?1
                     WHERE id = ?2 AND organization_name != ?1",
                    params![bill.key.organization_name, bill_id],
                )?;
                Ok(Settled::Unchanged)
            }
            Target::Known { bill_id, staging_index, .. } => {
                self.restate(bill, *bill_id, *staging_index, &content)?;
                Ok(Settled::Restated)
            }
        }
    }

    /// A known bill whose lines changed: its blocks replaced by the staged ones, its row given
    /// the new hash, count, name and source, one revision up.
    fn restate(
        &self,
        bill: &PendingBill,
        bill_id: i64,
        staging_index: i64,
        content: &str,
    ) -> rusqlite::Result<()> {
        let conn = &self.store.conn;
        conn.execute("DELETE FROM bill_line_blocks WHERE bill_id = ?1", [bill_id])?;
        conn.execute(
            "INSERT INTO bill_line_blocks (bill_id, line_count, lines)
             SELECT ?1, line_count, lines FROM temp.import_blocks
             WHERE staging_index = ?2 ORDER BY id",
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
        Ok(())
    }
}

/// What an import did to one of the bills it read.
enum Settled {
    New,
    Unchanged,
    Restated,
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
    let _ = conn.execute_batch(CACHE_AFTER_IMPORT);
}

/// An import keeps 8 MiB of pages, not the connection's 32 ([`CACHE_SIZE`](super::CACHE_SIZE)):
/// it only appends, and the smaller cache kept the million-line import's peak at 43 MB
/// instead of 66 and made it faster. This puts the connection's size back.
const CACHE_AFTER_IMPORT: &str = super::CACHE_SIZE;

/// The content of a bill, independent of the order of its lines and of their row numbers: the
/// sum (mod 2^256) of each line's SHA-256, with the line count. Summing keeps it streaming (no
/// list of lines to sort) and, unlike XOR, a repeated line still counts twice.
#[derive(Default)]
struct ContentHash {
    sum: [u64; 4],
    count: u64,
}

impl BillTotals {
    pub(super) fn add(&mut self, line: &StoredLine<'_>) {
        // Its texts are texts already: nothing can be refused.
        let _ = self.add_texts(
            line.subscription_id,
            line.service_name.as_bytes(),
            || Ok((line.service_name, line.subscription_name)),
            line.total_sales,
            line.total_cost,
        );
    }

    /// [`add`](Self::add) for a line whose texts are bytes: only its subscription id is
    /// checked as UTF-8 (the service and name only for the subscription's first line).
    fn add_raw(&mut self, line: &RawLine<'_>) -> Result<(), CorruptBlock> {
        let text = |bytes| std::str::from_utf8(bytes).map_err(|_| CorruptBlock("text not UTF-8"));
        self.add_texts(
            text(line.subscription_id())?,
            line.service_name(),
            || Ok((text(line.service_name())?, text(line.subscription_name())?)),
            line.total_sales(),
            line.total_cost(),
        )
    }

    fn add_texts<'t>(
        &mut self,
        subscription_id: &str,
        service_name: &[u8],
        names: impl FnOnce() -> Result<(&'t str, &'t str), CorruptBlock>,
        total_sales: rust_decimal::Decimal,
        total_cost: rust_decimal::Decimal,
    ) -> Result<(), CorruptBlock> {
        let services = match self.0.get_mut(subscription_id) {
            Some(services) => services,
            None => self.0.entry(subscription_id.to_string()).or_default(),
        };
        match services.iter_mut().find(|(service, ..)| service.as_bytes() == service_name) {
            Some((_, _, sales, cost)) => {
                *sales += total_sales;
                *cost += total_cost;
            }
            None => {
                let (service, name) = names()?;
                services.push((service.to_string(), name.to_string(), total_sales, total_cost));
            }
        }
        Ok(())
    }

    /// The bill's rows of `bill_totals`, replaced by these.
    pub(super) fn replace(&self, conn: &Connection, bill_id: i64) -> rusqlite::Result<()> {
        conn.execute("DELETE FROM bill_totals WHERE bill_id = ?1", [bill_id])?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO bill_totals (bill_id, service_name, subscription_id, subscription_name,
                                      total_sales, total_cost)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (subscription, services) in &self.0 {
            for (service, name, sales, cost) in services {
                insert.execute(params![
                    bill_id,
                    service,
                    subscription,
                    name,
                    sales.to_string(),
                    cost.to_string()
                ])?;
            }
        }
        Ok(())
    }
}

impl PendingBill {
    fn key_matches(&self, customer_number: &str) -> bool {
        let number = customer_number.trim();
        match self.organization_key.strip_prefix("number:") {
            Some(key) => key == number,
            None => number.is_empty(),
        }
    }
}

/// The SHA-256 of a line's content (not its row): its bill's hash sums these, so the order
/// of lines does not count.
pub(super) fn line_digest(line: &BillLine) -> LineDigest {
    let line = StoredLine::of(line);
    let mut scratch = Vec::new();
    digest(line.texts().map(str::as_bytes), line.amounts(), line.autotask_company_id, &mut scratch)
}

/// [`line_digest`] of a line's texts (in [`StoredLine::texts`]'s order), amounts and company.
/// The bytes hashed are laid out in `scratch` first and hashed in one call: feeding SHA-256
/// thirty small pieces cost more than hashing them.
fn digest(
    texts: [&[u8]; 12],
    amounts: [rust_decimal::Decimal; 5],
    company: Option<i64>,
    scratch: &mut Vec<u8>,
) -> LineDigest {
    scratch.clear();
    // The nine texts of migration 0001, then the three later migrations added.
    let (first, added) = texts.split_at(9);
    for field in first {
        put_field(scratch, field);
    }
    // Normalized: "25.00" and "25" are the same quantity, so a re-export that drops trailing
    // zeros is not a restatement. `serialize` is the exact 16-byte form (no text formatting
    // on the hot path).
    for amount in amounts {
        // A mantissa not ending in 0 is normalized already (and not zero, so not -0).
        let normalized = if amount.mantissa() % 10 != 0 { amount } else { amount.normalize() };
        scratch.extend_from_slice(&normalized.serialize());
    }
    // Added by migration 0005: hashed only when present, so that a bill imported before
    // them (or from an export without them) keeps its content hash.
    // Organization Groups (migration 0009), likewise.
    // Payment Frequency, Organization Currency Code, Organization Groups.
    for (tag, field) in [b'f', b'c', b'g'].into_iter().zip(added) {
        if !field.is_empty() {
            scratch.push(tag);
            put_field(scratch, field);
        }
    }
    match company {
        Some(id) => {
            scratch.push(1);
            scratch.extend_from_slice(&id.to_le_bytes());
        }
        None => scratch.push(0),
    }
    LineDigest(Sha256::digest(scratch.as_slice()).into())
}

/// A field as [`hash_field`] hashes it.
fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
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
