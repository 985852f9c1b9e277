//! What the billing review (`cmat report`) reads: the periods imported, one period's lines
//! (streamed, so an earlier period is aggregated without being held), and every period's
//! totals in one pass. Amounts are parsed as `Decimal` here and summed in Rust: SQLite's SUM
//! would turn the TEXT decimals into floats.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rusqlite::params;
use rust_decimal::Decimal;

use super::sql::{date, get_date, get_decimal, get_timestamp};
use super::{Store, StoreError};
use cmat_engine::billing::{BillLine, LineSource};

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
    /// order of [`Store::bill_lines`], without holding them all.
    pub fn visit_bill_lines(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        mut visit: impl FnMut(BillLine),
    ) -> Result<(), StoreError> {
        let sql = "SELECT b.organization_name, b.billing_date, b.source_file, l.source_row,
                          l.service_name, l.broker_name, l.customer_number, l.product_name,
                          l.item_code, l.quantity, l.unit_cost_price, l.unit_sales_price,
                          l.total_cost, l.total_sales, l.currency_code, l.product_id,
                          l.subscription_id, l.subscription_name, l.autotask_company_id,
                          l.payment_frequency, l.organization_currency_code
                   FROM bills b JOIN bill_lines l ON l.bill_id = b.id
                   WHERE b.billing_date >= ?1 AND b.billing_date < ?2
                   ORDER BY b.billing_date, b.organization_name, l.id";
        let mut read = || -> rusqlite::Result<()> {
            let mut statement = self.conn.prepare(sql)?;
            let mut rows = statement.query(params![date(&from), date(&to)])?;
            while let Some(row) = rows.next()? {
                visit(BillLine {
                    organization_name: row.get(0)?,
                    billing_date: get_date(row, 1)?,
                    source: LineSource {
                        file: row.get(2)?,
                        row: row.get::<_, i64>(3)?.max(0) as u64,
                    },
                    service_name: row.get(4)?,
                    broker_name: row.get(5)?,
                    customer_number: row.get(6)?,
                    product_name: row.get(7)?,
                    item_code: row.get(8)?,
                    quantity: get_decimal(row, 9)?,
                    unit_cost_price: get_decimal(row, 10)?,
                    unit_sales_price: get_decimal(row, 11)?,
                    total_cost: get_decimal(row, 12)?,
                    total_sales: get_decimal(row, 13)?,
                    currency_code: row.get(14)?,
                    product_id: row.get(15)?,
                    subscription_id: row.get(16)?,
                    subscription_name: row.get(17)?,
                    autotask_company_id: row.get(18)?,
                    payment_frequency: row.get(19)?,
                    organization_currency_code: row.get(20)?,
                });
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
    /// the totals per subscription and Billing Date: the review's trend charts.
    pub fn bill_history(&self, services: &[String]) -> Result<History, StoreError> {
        let read = || -> rusqlite::Result<History> {
            let mut history = History::default();
            let mut bills = self.conn.prepare(
                "SELECT id, billing_date, organization_name FROM bills ORDER BY billing_date",
            )?;
            let bills: Vec<(i64, NaiveDate, String)> = bills
                .query_map([], |row| Ok((row.get(0)?, get_date(row, 1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut lines = self.conn.prepare(
                "SELECT service_name, subscription_id, subscription_name, total_sales, total_cost
                 FROM bill_lines WHERE bill_id = ?1",
            )?;
            for (bill_id, billing_date, organization) in bills {
                let mut sales = Decimal::ZERO;
                let mut cost = Decimal::ZERO;
                let mut rows = lines.query([bill_id])?;
                while let Some(row) = rows.next()? {
                    let line_sales = get_decimal(row, 3)?;
                    let line_cost = get_decimal(row, 4)?;
                    sales += line_sales;
                    cost += line_cost;
                    let service = row.get_ref(0)?.as_str().map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            0,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?;
                    if services.iter().any(|s| s == service) {
                        let subscription: String = row.get(1)?;
                        let entry = history
                            .subscriptions
                            .entry((billing_date, subscription))
                            .or_insert_with(|| {
                                (
                                    organization.clone(),
                                    row.get(2).unwrap_or_default(),
                                    Decimal::ZERO,
                                    Decimal::ZERO,
                                )
                            });
                        entry.2 += line_sales;
                        entry.3 += line_cost;
                    }
                }
                let total = history.by_date.entry(billing_date).or_default();
                total.0 += sales;
                total.1 += cost;
            }
            Ok(history)
        };
        read().map_err(|e| self.wrap(e))
    }
}
