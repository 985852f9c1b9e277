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
    let text = row.get_ref(index)?.as_str().map_err(|e| conversion(index, e))?;
    match iso_date(text) {
        Some(date) => Ok(date),
        None => NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| conversion(index, e)),
    }
}

/// `YYYY-MM-DD` as this module writes it, read without a format string (the review reads a
/// date for each of a large tenant's 120,000 totals); anything else is left to chrono.
fn iso_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range].iter().try_fold(0u32, |value, digit| {
            digit.is_ascii_digit().then(|| value * 10 + u32::from(digit - b'0'))
        })
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_read_as_chrono_reads_them() {
        for text in ["2026-11-01", "2024-02-29", "0001-01-01", "9999-12-31"] {
            assert_eq!(iso_date(text), NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(), "{text}");
        }
        for text in ["2026-02-30", "2026-13-01", "2026-1-01", "2026/11/01", "20a6-11-01", ""] {
            assert_eq!(iso_date(text), None, "{text}");
        }
    }
}
