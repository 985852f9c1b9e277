//! Conversions between domain values and SQLite cells: decimals as TEXT, dates as ISO TEXT,
//! timestamps as RFC 3339 UTC TEXT, booleans as 0/1.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rusqlite::types::Type;
use rusqlite::Row;
use rust_decimal::Decimal;

/// RFC 3339 UTC with a `Z`, keeping sub-second digits only when there are some.
pub(super) fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(super) fn date(value: &NaiveDate) -> String {
    value.format("%Y-%m-%d").to_string()
}

fn conversion(
    index: usize,
    err: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(err))
}

/// A TEXT decimal, parsed from the row's own bytes (no copy: bill lines are read by the million).
pub(super) fn get_decimal(row: &Row<'_>, index: usize) -> rusqlite::Result<Decimal> {
    let text = row.get_ref(index)?.as_str().map_err(|e| conversion(index, e))?;
    Decimal::from_str(text).map_err(|e| conversion(index, e))
}

pub(super) fn get_opt_decimal(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Decimal>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| Decimal::from_str(&t).map_err(|e| conversion(index, e))).transpose()
}

pub(super) fn get_date(row: &Row<'_>, index: usize) -> rusqlite::Result<NaiveDate> {
    let text: String = row.get(index)?;
    NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|e| conversion(index, e))
}

pub(super) fn get_timestamp(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(index)?;
    parse_timestamp(&text).map_err(|e| conversion(index, e))
}

pub(super) fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

pub(super) fn opt_decimal(value: &Option<Decimal>) -> Option<String> {
    value.as_ref().map(Decimal::to_string)
}
