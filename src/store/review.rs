//! What the billing review (`cmat report`) reads: the periods imported, one period's lines
//! (streamed, so an earlier period is aggregated without being held), and every period's
//! totals in one pass. Amounts are parsed as `Decimal` here and summed in Rust: SQLite's SUM
//! would turn the TEXT decimals into floats.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rusqlite::params;
use rust_decimal::Decimal;

use super::bills::{line_at, LINE_COLUMNS};
use super::sql::{date, get_date, get_decimal, get_timestamp};
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

/// A bill line as the review sums it, borrowed from where it is read (a row of the store,
/// or a [`BillLine`] already held): the review's aggregation never needs owned strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewLine<'a> {
    pub organization_name: &'a str,
    pub billing_date: NaiveDate,
    /// The line's file (its bill's source); with `source_row`, the line's place.
    pub file: &'a str,
    pub source_row: u64,
    pub service_name: &'a str,
    pub customer_number: &'a str,
    pub product_name: &'a str,
    pub item_code: &'a str,
    pub quantity: Decimal,
    pub unit_cost_price: Decimal,
    pub unit_sales_price: Decimal,
    pub total_cost: Decimal,
    pub total_sales: Decimal,
    pub currency_code: &'a str,
    pub subscription_id: &'a str,
    pub subscription_name: &'a str,
    pub autotask_company_id: Option<i64>,
}

impl<'a> ReviewLine<'a> {
    /// The review's view of a line held in full (the period the plan is computed over).
    pub fn of(line: &'a BillLine) -> ReviewLine<'a> {
        ReviewLine {
            organization_name: &line.organization_name,
            billing_date: line.billing_date,
            file: &line.source.file,
            source_row: line.source.row,
            service_name: &line.service_name,
            customer_number: &line.customer_number,
            product_name: &line.product_name,
            item_code: &line.item_code,
            quantity: line.quantity,
            unit_cost_price: line.unit_cost_price,
            unit_sales_price: line.unit_sales_price,
            total_cost: line.total_cost,
            total_sales: line.total_sales,
            currency_code: &line.currency_code,
            subscription_id: &line.subscription_id,
            subscription_name: &line.subscription_name,
            autotask_company_id: line.autotask_company_id,
        }
    }

    /// `file:row`, as [`cmat_engine::billing::LineSource`] shows it.
    pub fn source(&self) -> String {
        format!("{}:{}", self.file, self.source_row)
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

    /// The bills dated in `from..to` as (id, organization, Billing Date, source file), in the
    /// order lines are read back: by date, then organization.
    fn bills_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> rusqlite::Result<Vec<(i64, String, NaiveDate, String)>> {
        let mut bills = self.conn.prepare(
            "SELECT id, organization_name, billing_date, source_file FROM bills
             WHERE billing_date >= ?1 AND billing_date < ?2
             ORDER BY billing_date, organization_name",
        )?;
        let rows = bills.query_map(params![date(&from), date(&to)], |row| {
            Ok((row.get(0)?, row.get(1)?, get_date(row, 2)?, row.get(3)?))
        })?;
        rows.collect()
    }

    /// Calls `visit` with every current line whose Billing Date is in `from..to`, in the
    /// order of [`Store::bill_lines`], without holding them all. Bill by bill, each read
    /// through the `bill_lines_by_bill` index (no sort of the period's lines).
    pub fn visit_bill_lines(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        mut visit: impl FnMut(BillLine),
    ) -> Result<(), StoreError> {
        let mut read = || -> rusqlite::Result<()> {
            let bills = self.bills_between(from, to)?;
            let sql =
                format!("SELECT {LINE_COLUMNS} FROM bill_lines WHERE bill_id = ?1 ORDER BY id");
            let mut lines = self.conn.prepare(&sql)?;
            for (bill_id, organization, billing_date, file) in bills {
                let mut rows = lines.query([bill_id])?;
                while let Some(row) = rows.next()? {
                    visit(line_at(row, 0, organization.clone(), billing_date, file.clone())?);
                }
            }
            Ok(())
        };
        read().map_err(|e| self.wrap(e))
    }

    /// Calls `visit` with every current line whose Billing Date is in `from..to`, in the
    /// order of [`Store::visit_bill_lines`], as a [`ReviewLine`] borrowed from the row: only
    /// the columns the review sums are read, and nothing is copied (the previous period's
    /// 248,000 lines of a large tenant are summed without one allocation per line).
    pub fn visit_review_lines(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        mut visit: impl FnMut(&ReviewLine<'_>),
    ) -> Result<(), StoreError> {
        let mut read = || -> rusqlite::Result<()> {
            let bills = self.bills_between(from, to)?;
            let mut lines = self.conn.prepare(
                "SELECT source_row, service_name, customer_number, product_name, item_code,
                        quantity, unit_cost_price, unit_sales_price, total_cost, total_sales,
                        currency_code, subscription_id, subscription_name, autotask_company_id
                 FROM bill_lines WHERE bill_id = ?1 ORDER BY id",
            )?;
            for (bill_id, organization, billing_date, file) in &bills {
                let mut rows = lines.query([bill_id])?;
                while let Some(row) = rows.next()? {
                    visit(&ReviewLine {
                        organization_name: organization,
                        billing_date: *billing_date,
                        file,
                        source_row: row.get::<_, i64>(0)?.max(0) as u64,
                        service_name: text(row, 1)?,
                        customer_number: text(row, 2)?,
                        product_name: text(row, 3)?,
                        item_code: text(row, 4)?,
                        quantity: get_decimal(row, 5)?,
                        unit_cost_price: get_decimal(row, 6)?,
                        unit_sales_price: get_decimal(row, 7)?,
                        total_cost: get_decimal(row, 8)?,
                        total_sales: get_decimal(row, 9)?,
                        currency_code: text(row, 10)?,
                        subscription_id: text(row, 11)?,
                        subscription_name: text(row, 12)?,
                        autotask_company_id: row.get(13)?,
                    });
                }
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
        self.visit_bill_lines(from, to, |line| lines.push(line))?;
        Ok(lines)
    }

    /// Every period's totals and, for the lines of `services` (the consumption services),
    /// the totals per subscription and Billing Date: the review's trend charts. Read from
    /// `bill_totals` (written at import); a bill imported before it existed has its lines
    /// summed instead.
    pub fn bill_history(&self, services: &[String]) -> Result<History, StoreError> {
        let read = || -> rusqlite::Result<History> {
            let mut history = History::default();
            let mut add = |billing_date: NaiveDate,
                           organization: &str,
                           service: &str,
                           subscription: &str,
                           name: &str,
                           sales: Decimal,
                           cost: Decimal| {
                let total = history.by_date.entry(billing_date).or_default();
                total.0 += sales;
                total.1 += cost;
                if services.iter().any(|s| s == service) {
                    let entry = history
                        .subscriptions
                        .entry((billing_date, subscription.to_string()))
                        .or_insert_with(|| {
                            (
                                organization.to_string(),
                                name.to_string(),
                                Decimal::ZERO,
                                Decimal::ZERO,
                            )
                        });
                    entry.2 += sales;
                    entry.3 += cost;
                }
            };
            let mut totals = self.conn.prepare(
                "SELECT b.billing_date, b.organization_name, t.service_name, t.subscription_id,
                        t.subscription_name, t.total_sales, t.total_cost
                 FROM bills b JOIN bill_totals t ON t.bill_id = b.id",
            )?;
            let mut rows = totals.query([])?;
            while let Some(row) = rows.next()? {
                add(
                    get_date(row, 0)?,
                    text(row, 1)?,
                    text(row, 2)?,
                    text(row, 3)?,
                    text(row, 4)?,
                    get_decimal(row, 5)?,
                    get_decimal(row, 6)?,
                );
            }
            let mut missing = self.conn.prepare(
                "SELECT id, billing_date, organization_name FROM bills b
                 WHERE NOT EXISTS (SELECT 1 FROM bill_totals t WHERE t.bill_id = b.id)",
            )?;
            let missing: Vec<(i64, NaiveDate, String)> = missing
                .query_map([], |row| Ok((row.get(0)?, get_date(row, 1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut lines = self.conn.prepare(
                "SELECT service_name, subscription_id, subscription_name, total_sales, total_cost
                 FROM bill_lines WHERE bill_id = ?1",
            )?;
            for (bill_id, billing_date, organization) in missing {
                let mut rows = lines.query([bill_id])?;
                while let Some(row) = rows.next()? {
                    add(
                        billing_date,
                        &organization,
                        text(row, 0)?,
                        text(row, 1)?,
                        text(row, 2)?,
                        get_decimal(row, 3)?,
                        get_decimal(row, 4)?,
                    );
                }
            }
            Ok(history)
        };
        read().map_err(|e| self.wrap(e))
    }
}
