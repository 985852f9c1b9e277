//! What the billing review (`cmat report`) reads: the periods imported, one period's lines
//! (streamed, so an earlier period is aggregated without being held), and every period's
//! totals in one pass. Amounts are parsed as `Decimal` here and summed in Rust: SQLite's SUM
//! would turn the TEXT decimals into floats.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::line_blocks::{visit_bill, StoredLine, SELECT_BLOCKS};
use super::sql::{get_date, get_decimal, get_timestamp};
use super::{Store, StoreError};
use cmat_engine::billing::BillLine;

/// One bill (organization + Billing Date) as the review lists it: restated bills are
/// "charges corrected after billing" candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRevision {
    pub organization_name: String,
    pub billing_date: NaiveDate,
    pub revision: i64,
    pub imported_at: chrono::DateTime<chrono::Utc>,
    pub source_file: String,
}

/// One pass over every current line: per Billing Date, the bills' totals, and per
/// (Billing Date, subscription) the totals of the lines whose service is one of `services`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub by_date: BTreeMap<NaiveDate, (Decimal, Decimal)>,
    /// (Billing Date, subscription id) → (organization, subscription name, sales, cost).
    pub subscriptions: BTreeMap<(NaiveDate, String), (String, String, Decimal, Decimal)>,
}

/// A bill line as the review sums it: a stored line borrowed from its block, with its bill's
/// organization, Billing Date and file. The review's aggregation never needs owned strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewLine<'a> {
    pub organization_name: &'a str,
    pub billing_date: NaiveDate,
    /// The line's file (its bill's source); with `stored.source_row`, the line's place.
    pub file: &'a str,
    pub stored: StoredLine<'a>,
}

impl ReviewLine<'_> {
    /// `file:row`, as [`cmat_engine::billing::LineSource`] shows it.
    pub fn source(&self) -> String {
        format!("{}:{}", self.file, self.stored.source_row)
    }
}

/// A TEXT cell, borrowed.
fn text<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(index)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl Store {
    /// Every bill with its revision, by Billing Date then organization (no line is read).
    pub fn bill_revisions(&self) -> Result<Vec<BillRevision>, StoreError> {
        let read = || -> rusqlite::Result<Vec<BillRevision>> {
            let mut statement = self.conn.prepare(
                "SELECT organization_name, billing_date, revision, imported_at, source_file
                 FROM bills ORDER BY billing_date, organization_name",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(BillRevision {
                    organization_name: row.get(0)?,
                    billing_date: get_date(row, 1)?,
                    revision: row.get(2)?,
                    imported_at: get_timestamp(row, 3)?,
                    source_file: row.get(4)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.wrap(e))
    }

    /// Calls `visit` with every current line whose Billing Date is in `from..to`, in the
    /// order of [`Store::bill_lines`], as a [`ReviewLine`] borrowed from the stored block:
    /// nothing is copied (the previous period's 248,000 lines of a large tenant are summed
    /// without one allocation per line).
    pub fn visit_review_lines(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        mut visit: impl FnMut(&ReviewLine<'_>),
    ) -> Result<(), StoreError> {
        let mut read = || -> rusqlite::Result<()> {
            let mut blocks = self.conn.prepare(SELECT_BLOCKS)?;
            for bill in self.stored_bills(Some((from, to)))? {
                visit_bill(&mut blocks, bill.id, |line| {
                    visit(&ReviewLine {
                        organization_name: &bill.organization_name,
                        billing_date: bill.billing_date,
                        file: &bill.source_file,
                        stored: *line,
                    })
                })?;
            }
            Ok(())
        };
        read().map_err(|e| self.wrap(e))
    }

    /// The lines of Billing Dates in `from..to`.
    pub fn bill_lines_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<BillLine>, StoreError> {
        let mut lines = Vec::new();
        self.visit_bill_lines(Some((from, to)), |line| lines.push(line))?;
        Ok(lines)
    }

    /// Every period's totals and, for the lines of `services` (the consumption services),
    /// the totals per subscription and Billing Date: the review's trend charts. Read from
    /// `bill_totals` (written at import, and by migration 0010 for bills imported before it).
    pub fn bill_history(&self, services: &[String]) -> Result<History, StoreError> {
        let read = || -> rusqlite::Result<History> {
            let mut history = History::default();
            let mut totals = self.conn.prepare(
                "SELECT b.billing_date, b.organization_name, t.service_name, t.subscription_id,
                        t.subscription_name, t.total_sales, t.total_cost
                 FROM bills b JOIN bill_totals t ON t.bill_id = b.id",
            )?;
            let mut rows = totals.query([])?;
            while let Some(row) = rows.next()? {
                history.add_totals(row, services)?;
            }
            Ok(history)
        };
        read().map_err(|e| self.wrap(e))
    }
}

impl History {
    /// One row of [`Store::bill_history`]'s query: into its Billing Date's totals, and into
    /// its subscription's when its service is one of `services`.
    fn add_totals(&mut self, row: &rusqlite::Row<'_>, services: &[String]) -> rusqlite::Result<()> {
        let billing_date = get_date(row, 0)?;
        let (organization, service) = (text(row, 1)?, text(row, 2)?);
        let (subscription, name) = (text(row, 3)?, text(row, 4)?);
        let (sales, cost) = (get_decimal(row, 5)?, get_decimal(row, 6)?);
        let total = self.by_date.entry(billing_date).or_default();
        total.0 += sales;
        total.1 += cost;
        if services.iter().any(|s| s == service) {
            let entry =
                self.subscriptions.entry((billing_date, subscription.to_string())).or_insert_with(
                    || (organization.to_string(), name.to_string(), Decimal::ZERO, Decimal::ZERO),
                );
            entry.2 += sales;
            entry.3 += cost;
        }
        Ok(())
    }
}
