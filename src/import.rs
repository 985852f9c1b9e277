//! The CSV reader for Cloudmore's General Billing Report (SPEC.md, "Input").
//!
//! UTF-8 with an optional BOM, comma-separated, a header row; columns matched by name (trimmed,
//! case-insensitive) in any order, extra columns ignored. Numbers are exact decimals with `.` as
//! separator (never floats, no scientific notation), dates ISO `YYYY-MM-DD`.
//!
//! The file is streamed: one reused record, each line handed to the store's [`Import`] as it is
//! read, so memory stays flat whatever the size. Every malformed row is reported as
//! `FILE:ROW: reason` (ROW is the line in the file, the header being 1) and a file with any of
//! them imports nothing: the store's transaction is rolled back.
//!
//! [`Import`]: crate::store::Import

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::billing::{BillLine, LineSource};
use crate::store::{Import, ImportSummary, Store, StoreError};

/// How many bad rows an error lists before "… and N more".
pub const MAX_LISTED_ROWS: usize = 50;

/// The report's columns cmat reads, as Cloudmore names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    BillingDate,
    ServiceName,
    BrokerName,
    OrganizationName,
    CustomerNumber,
    ProductName,
    ItemCode,
    Quantity,
    UnitCostPrice,
    UnitSalesPrice,
    TotalCost,
    TotalSales,
    CurrencyCode,
    ProductId,
    SubscriptionId,
    SubscriptionName,
    AutotaskCompanyId,
    PaymentFrequency,
    OrganizationCurrencyCode,
}

const COLUMNS: [Column; 19] = [
    Column::BillingDate,
    Column::ServiceName,
    Column::BrokerName,
    Column::OrganizationName,
    Column::CustomerNumber,
    Column::ProductName,
    Column::ItemCode,
    Column::Quantity,
    Column::UnitCostPrice,
    Column::UnitSalesPrice,
    Column::TotalCost,
    Column::TotalSales,
    Column::CurrencyCode,
    Column::ProductId,
    Column::SubscriptionId,
    Column::SubscriptionName,
    Column::AutotaskCompanyId,
    Column::PaymentFrequency,
    Column::OrganizationCurrencyCode,
];

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::BillingDate => "Billing Date",
            Column::ServiceName => "Service Name",
            Column::BrokerName => "Broker Name",
            Column::OrganizationName => "Organization Name",
            Column::CustomerNumber => "Customer Number",
            Column::ProductName => "Product Name",
            Column::ItemCode => "Item Code",
            Column::Quantity => "Quantity",
            Column::UnitCostPrice => "Unit Cost Price",
            Column::UnitSalesPrice => "Unit Sales Price",
            Column::TotalCost => "Total Cost",
            Column::TotalSales => "Total Sales",
            Column::CurrencyCode => "Currency Code",
            Column::ProductId => "Product ID",
            Column::SubscriptionId => "Subscription ID",
            Column::SubscriptionName => "Subscription Name",
            Column::AutotaskCompanyId => crate::billing::AUTOTASK_COMPANY_COLUMN,
            Column::PaymentFrequency => "Payment Frequency",
            Column::OrganizationCurrencyCode => "Organization Currency Code",
        }
    }

    /// SPEC.md's required columns: they must be in the header and non-empty on every row.
    fn required(self) -> bool {
        matches!(
            self,
            Column::BillingDate
                | Column::ServiceName
                | Column::OrganizationName
                | Column::ProductName
                | Column::Quantity
                | Column::UnitCostPrice
                | Column::UnitSalesPrice
                | Column::TotalCost
                | Column::TotalSales
                | Column::CurrencyCode
                | Column::SubscriptionId
        )
    }
}

/// One malformed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The line in the file where the row starts (the header is 1).
    pub row: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read")]
    Open { file: String, source: std::io::Error },
    #[error("{file}:{row}: cannot read")]
    Read { file: String, row: u64, source: csv::Error },
    #[error(
        "{file}: the file is empty; expected a Cloudmore General Billing Report with a header row"
    )]
    Empty { file: String },
    #[error("{file}: the file is UTF-16; export the report as UTF-8")]
    Utf16 { file: String },
    #[error("{file}:{row}: the header is not valid UTF-8; export the report as UTF-8")]
    HeaderNotUtf8 { file: String, row: u64 },
    #[error("{file}: missing {} {}{}", plural(columns.len(), "column", "columns"), quoted_list(columns), hint.as_deref().unwrap_or(""))]
    MissingColumns {
        file: String,
        columns: Vec<&'static str>,
        /// Why the columns may be missing (a wrong delimiter), starting with "; ".
        hint: Option<String>,
    },
    #[error("{file}:{row}: column \"{column}\" appears twice in the header")]
    DuplicateColumn { file: String, row: u64, column: &'static str },
    #[error("{}", bad_rows_message(file, rows, *omitted))]
    BadRows {
        file: String,
        /// The first [`MAX_LISTED_ROWS`] bad rows, in file order.
        rows: Vec<RowError>,
        /// How many more bad rows were found but not listed.
        omitted: u64,
    },
    #[error("{file}: cannot store the import")]
    Store { file: String, source: StoreError },
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn quoted_list(columns: &[&str]) -> String {
    columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
}

fn bad_rows_message(file: &str, rows: &[RowError], omitted: u64) -> String {
    let total = rows.len() as u64 + omitted;
    let mut text = format!(
        "{file}: {total} malformed {}, nothing imported",
        plural(total as usize, "row", "rows")
    );
    for row in rows {
        text.push_str(&format!("\n{file}:{}: {}", row.row, row.reason));
    }
    if omitted > 0 {
        text.push_str(&format!("\n… and {omitted} more"));
    }
    text
}

/// Imports one report file in one transaction. `display_name` names the file in messages and
/// in each line's source ("bill.csv:17").
pub fn import_file(
    store: &mut Store,
    path: &Path,
    display_name: &str,
) -> Result<ImportSummary, ImportError> {
    let file = File::open(path)
        .map_err(|source| ImportError::Open { file: display_name.to_string(), source })?;
    import_reader(store, file, display_name)
}

/// [`import_file`] for any reader (tests, the benchmark).
pub fn import_reader(
    store: &mut Store,
    input: impl Read,
    display_name: &str,
) -> Result<ImportSummary, ImportError> {
    let file = || display_name.to_string();
    let mut input = BufReader::with_capacity(256 * 1024, EndsWithNewline::new(input));
    let start = input.fill_buf().map_err(|source| ImportError::Open { file: file(), source })?;
    if start.starts_with(b"\xff\xfe") || start.starts_with(b"\xfe\xff") {
        return Err(ImportError::Utf16 { file: file() });
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        // Row lengths are checked here, so that every ragged row is listed, not just the first.
        .flexible(true)
        // Lines end at '\n' only, so that a row's position is the line it starts on for CRLF
        // files too (with CRLF as the terminator the csv crate leaves the '\n' to the next
        // record, which then reports the line before its own). A '\r' left at the end of the
        // last cell is whitespace, trimmed like any other.
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(input);
    let header = reader
        .byte_headers()
        .map_err(|source| ImportError::Read { file: file(), row: 1, source })?
        .clone();
    let header_row = start_line(header.position(), reader.position().line(), &header);
    if is_blank(&header) {
        return Err(ImportError::Empty { file: file() });
    }
    let layout = Layout::from_header(&header, display_name, header_row)?;

    let mut import = store
        .begin_import(display_name)
        .map_err(|source| ImportError::Store { file: file(), source })?;
    let mut bad = BadRows::default();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(source) => {
                let row = source.position().map(|p| p.line()).unwrap_or(header_row + 1);
                return Err(ImportError::Read { file: file(), row, source });
            }
        }
        let row = start_line(record.position(), reader.position().line(), &record);
        if is_blank(&record) {
            continue;
        }
        match layout.parse(&record, display_name, row) {
            Ok(line) if bad.is_empty() => add(&mut import, &line, display_name)?,
            // Once a row is bad nothing will be imported: keep checking, stop storing.
            Ok(_) => {}
            Err(reason) => bad.push(RowError { row, reason }),
        }
    }
    if !bad.is_empty() {
        drop(import);
        return Err(ImportError::BadRows { file: file(), rows: bad.listed, omitted: bad.omitted });
    }
    import.finish().map_err(|source| ImportError::Store { file: file(), source })
}

/// The line a record starts on. The csv crate dates a record from before the blank lines it
/// skips (so a row after an empty line was reported one line early); counting back from where
/// the record ends is exact: the reader's line after it, less the line breaks inside its
/// quoted cells, less the one that ends it (every record ends with one, [`EndsWithNewline`],
/// except one whose quote is never closed: for it the csv crate's own line is the better one).
fn start_line(dated: Option<&csv::Position>, line_after: u64, record: &csv::ByteRecord) -> u64 {
    let inside: usize =
        record.iter().map(|cell| cell.iter().filter(|byte| **byte == b'\n').count()).sum();
    let counted_back = line_after.saturating_sub(inside as u64 + 1);
    counted_back.max(dated.map(csv::Position::line).unwrap_or(1)).max(1)
}

/// The input, with a `\n` added at the end when it does not end with one; it changes no cell
/// (a line break at the end of the file ends the last record, and cells are trimmed).
struct EndsWithNewline<R> {
    inner: R,
    last: Option<u8>,
    done: bool,
}

impl<R> EndsWithNewline<R> {
    fn new(inner: R) -> Self {
        EndsWithNewline { inner, last: None, done: false }
    }
}

impl<R: Read> Read for EndsWithNewline<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let read = self.inner.read(buf)?;
        if read > 0 {
            self.last = Some(buf[read - 1]);
            return Ok(read);
        }
        self.done = true;
        match self.last {
            Some(byte) if byte != b'\n' => {
                buf[0] = b'\n';
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// A line with nothing but whitespace (a blank CRLF line reads as one cell holding "\r").
fn is_blank(record: &csv::ByteRecord) -> bool {
    record.is_empty() || (record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace))
}

fn add(import: &mut Import<'_>, line: &BillLine, file: &str) -> Result<(), ImportError> {
    import.add_line(line).map_err(|source| ImportError::Store { file: file.to_string(), source })
}

#[derive(Default)]
struct BadRows {
    listed: Vec<RowError>,
    omitted: u64,
}

impl BadRows {
    fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }
    fn push(&mut self, error: RowError) {
        if self.listed.len() < MAX_LISTED_ROWS {
            self.listed.push(error);
        } else {
            self.omitted += 1;
        }
    }
}

/// Where each known column is in this file's header.
struct Layout {
    positions: [Option<usize>; COLUMNS.len()],
    width: usize,
}

/// "  Billing   DATE " → "billing date": how header names are compared.
fn normalize(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Layout {
    fn from_header(
        header: &csv::ByteRecord,
        file: &str,
        header_row: u64,
    ) -> Result<Layout, ImportError> {
        let mut names = Vec::with_capacity(header.len());
        for field in header.iter() {
            let name = std::str::from_utf8(field).map_err(|_| ImportError::HeaderNotUtf8 {
                file: file.to_string(),
                row: header_row,
            })?;
            names.push(normalize(name));
        }
        let mut positions = [None; COLUMNS.len()];
        for (slot, column) in positions.iter_mut().zip(COLUMNS) {
            let wanted = normalize(column.name());
            let mut found = names.iter().enumerate().filter(|(_, n)| **n == wanted);
            *slot = found.next().map(|(i, _)| i);
            if found.next().is_some() {
                return Err(ImportError::DuplicateColumn {
                    file: file.to_string(),
                    row: header_row,
                    column: column.name(),
                });
            }
        }
        let missing: Vec<&'static str> = COLUMNS
            .iter()
            .zip(&positions)
            .filter(|(c, p)| c.required() && p.is_none())
            .map(|(c, _)| c.name())
            .collect();
        if !missing.is_empty() {
            let hint = match header.len() {
                1 => {
                    let only = String::from_utf8_lossy(&header[0]);
                    [';', '\t', '|']
                        .into_iter()
                        .find(|d| only.contains(*d))
                        .map(|d| {
                            format!(
                                "; the header is a single column: is the file separated by {:?} instead of commas?",
                                d
                            )
                        })
                }
                _ => None,
            };
            return Err(ImportError::MissingColumns {
                file: file.to_string(),
                columns: missing,
                hint,
            });
        }
        Ok(Layout { positions, width: header.len() })
    }

    /// The trimmed text of a cell ("" for an absent optional column), noting why it is unusable.
    fn cell<'r>(
        &self,
        record: &'r csv::ByteRecord,
        column: Column,
        reasons: &mut Vec<String>,
    ) -> &'r str {
        let Some(index) = self.positions[column as usize] else {
            return "";
        };
        let bytes = record.get(index).unwrap_or_default();
        match std::str::from_utf8(bytes) {
            Ok(value) => {
                let value = value.trim();
                if value.is_empty() && column.required() {
                    reasons.push(format!("{} is empty", column.name()));
                }
                value
            }
            Err(err) => {
                reasons.push(format!(
                    "{} is not valid UTF-8 (byte {} of the cell)",
                    column.name(),
                    err.valid_up_to() + 1
                ));
                ""
            }
        }
    }

    /// One row to a line, or every reason it is malformed ("; "-separated).
    fn parse(&self, record: &csv::ByteRecord, file: &str, row: u64) -> Result<BillLine, String> {
        if record.len() != self.width {
            return Err(format!(
                "the row has {} {}, the header has {}",
                record.len(),
                plural(record.len(), "field", "fields"),
                self.width
            ));
        }
        let mut reasons: Vec<String> = Vec::new();
        let mut text = |column: Column| self.cell(record, column, &mut reasons);
        let billing_date = text(Column::BillingDate);
        let service_name = text(Column::ServiceName).to_string();
        let broker_name = text(Column::BrokerName).to_string();
        let organization_name = text(Column::OrganizationName).to_string();
        let customer_number = text(Column::CustomerNumber).to_string();
        let product_name = text(Column::ProductName).to_string();
        let item_code = text(Column::ItemCode).to_string();
        let quantity = text(Column::Quantity);
        let unit_cost_price = text(Column::UnitCostPrice);
        let unit_sales_price = text(Column::UnitSalesPrice);
        let total_cost = text(Column::TotalCost);
        let total_sales = text(Column::TotalSales);
        let currency_code = text(Column::CurrencyCode).to_string();
        let product_id = text(Column::ProductId).to_string();
        let subscription_id = text(Column::SubscriptionId).to_string();
        let subscription_name = text(Column::SubscriptionName).to_string();
        let autotask_company_id = text(Column::AutotaskCompanyId);
        let payment_frequency = text(Column::PaymentFrequency).to_string();
        let organization_currency_code = text(Column::OrganizationCurrencyCode).to_string();

        let billing_date = check(&mut reasons, parse_date(Column::BillingDate, billing_date));
        let quantity = check(&mut reasons, parse_decimal(Column::Quantity, quantity));
        let unit_cost_price =
            check(&mut reasons, parse_decimal(Column::UnitCostPrice, unit_cost_price));
        let unit_sales_price =
            check(&mut reasons, parse_decimal(Column::UnitSalesPrice, unit_sales_price));
        let total_cost = check(&mut reasons, parse_decimal(Column::TotalCost, total_cost));
        let total_sales = check(&mut reasons, parse_decimal(Column::TotalSales, total_sales));
        let autotask_company_id = check(&mut reasons, parse_company_id(autotask_company_id));
        match (
            billing_date,
            quantity,
            unit_cost_price,
            unit_sales_price,
            total_cost,
            total_sales,
            autotask_company_id,
        ) {
            (
                Some(Some(billing_date)),
                Some(Some(quantity)),
                Some(Some(unit_cost_price)),
                Some(Some(unit_sales_price)),
                Some(Some(total_cost)),
                Some(Some(total_sales)),
                Some(autotask_company_id),
            ) if reasons.is_empty() => Ok(BillLine {
                source: LineSource { file: file.to_string(), row },
                billing_date,
                service_name,
                broker_name,
                organization_name,
                customer_number,
                product_name,
                item_code,
                quantity,
                unit_cost_price,
                unit_sales_price,
                total_cost,
                total_sales,
                currency_code,
                product_id,
                subscription_id,
                subscription_name,
                autotask_company_id,
                payment_frequency,
                organization_currency_code,
            }),
            _ => Err(reasons.join("; ")),
        }
    }
}

/// A cell quoted in a message: at most 40 characters of it, so that a megabyte cell makes a
/// one-line error rather than a megabyte one.
fn shown(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &text[..cut], text.chars().count()),
    }
}

/// Keeps a cell's value, or its reason to be rejected.
fn check<T>(reasons: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(reason) => {
            reasons.push(reason);
            None
        }
    }
}

/// An ISO date `YYYY-MM-DD`; empty → Ok(None) (reported as an empty required cell already).
fn parse_date(column: Column, text: &str) -> Result<Option<NaiveDate>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return Err(format!("{} {} is not an ISO date (YYYY-MM-DD)", column.name(), shown(text)));
    }
    // The shape is checked: plain digit arithmetic, no format-string parsing per row.
    let number = |range: std::ops::Range<usize>| {
        bytes[range].iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'))
    };
    NaiveDate::from_ymd_opt(number(0..4) as i32, number(5..7), number(8..10))
        .map(Some)
        .ok_or_else(|| format!("{} {} is not a valid date", column.name(), shown(text)))
}

/// The most significant digits a `Decimal` holds exactly; more would be rounded silently.
const MAX_DIGITS: usize = 28;

/// `-?DIGITS(.DIGITS)?`, exactly; empty → Ok(None) (reported as an empty required cell already).
/// `Decimal::from_str` alone would also take "1_000" and round over-long numbers.
fn parse_decimal(column: Column, text: &str) -> Result<Option<Decimal>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    parse_exact_decimal(column.name(), text).map(Some)
}

/// The one strict decimal reader, shared with the Cloudmore API client: `-?DIGITS(.DIGITS)?`,
/// at most 28 significant digits; the error names the field (`name`) and the text.
pub fn parse_exact_decimal(name: &str, text: &str) -> Result<Decimal, String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !fraction.map(digits).unwrap_or(true) {
        let why = if text.contains(',') {
            " (use \".\" as the decimal separator, without thousands separators)"
        } else if text.contains(['e', 'E']) && text.bytes().any(|b| b.is_ascii_digit()) {
            " (scientific notation is not accepted)"
        } else {
            ""
        };
        return Err(format!("{name} {} is not a decimal number{why}", shown(text)));
    }
    let significant = whole.trim_start_matches('0').len() + fraction.map_or(0, str::len);
    if significant > MAX_DIGITS {
        return Err(format!(
            "{name} {} has more than {MAX_DIGITS} digits and cannot be kept exactly",
            shown(text)
        ));
    }
    text.parse::<Decimal>()
        .map_err(|err| format!("{name} {} is not a decimal number ({err})", shown(text)))
}

/// The optional AutotaskCompanyID: empty → not linked; otherwise a non-negative integer.
fn parse_company_id(text: &str) -> Result<Option<i64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let name = Column::AutotaskCompanyId.name();
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{name} {} is not an integer", shown(text)));
    }
    text.parse::<i64>()
        .map(Some)
        .map_err(|_| format!("{name} {} is too large for an Autotask id", shown(text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Access;

    const HEADER: &str = "Billing Date,Service Name,Broker Name,Organization Name,Customer Number,Product Name,Item Code,Quantity,Unit Cost Price,Unit Sales Price,Total Cost,Total Sales,Currency Code,Product ID,Subscription ID,Subscription Name,AutotaskCompanyID";

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("state.db"), Access::Write).expect("open")
    }

    fn run(input: &str) -> Result<ImportSummary, ImportError> {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir);
        import_reader(&mut store, input.as_bytes(), "bill.csv")
    }

    #[test]
    fn decimals_are_exact_and_strict() {
        let q = |t: &str| parse_decimal(Column::Quantity, t);
        assert_eq!(q("12.50").unwrap().unwrap().to_string(), "12.50");
        assert_eq!(q("-0.0001").unwrap().unwrap().to_string(), "-0.0001");
        assert_eq!(q("").unwrap(), None);
        for bad in ["1e5", "1,5", "1_000", "+1", ".5", "5.", "1.2.3", "abc", "- 1", "NaN"] {
            assert!(q(bad).is_err(), "{bad} accepted");
        }
        assert!(q("1e5").unwrap_err().contains("scientific"));
        assert!(q("1,5").unwrap_err().contains("\".\""));
        assert!(q("12345678901234567890.123456789").is_err());
        assert!(q("0000000000000000000000000000001.5").is_ok());
    }

    #[test]
    fn dates_are_iso_only() {
        let d = |t: &str| parse_date(Column::BillingDate, t);
        assert!(d("2026-10-01").unwrap().is_some());
        for bad in ["01/10/2026", "2026-1-01", "2026-10-01T00:00:00", "20261001", "+2026-10-0"] {
            assert!(d(bad).unwrap_err().contains("ISO"), "{bad}");
        }
        assert!(d("2026-02-30").unwrap_err().contains("not a valid date"));
    }

    #[test]
    fn company_ids() {
        assert_eq!(parse_company_id("29683501"), Ok(Some(29683501)));
        assert_eq!(parse_company_id(""), Ok(None));
        assert!(parse_company_id("2968x").is_err());
        assert!(parse_company_id("-1").is_err());
        assert!(parse_company_id("99999999999999999999").is_err());
    }

    #[test]
    fn columns_in_any_order_with_extras_and_odd_case() {
        let input = "note, subscription id ,TOTAL SALES,Total Cost,Unit Sales Price,Unit Cost Price,Quantity,Product Name,Organization Name,Service Name,Billing  Date,Currency Code,Extra\n\
                     x,sub-1,20.00,15.00,10.00,7.50,2,M365,Contoso Ltd,Microsoft NCE,2026-10-01,EUR,y\n";
        let summary = run(input).unwrap();
        assert_eq!(summary.lines, 1);
        assert_eq!(summary.new_bills.len(), 1);
    }

    #[test]
    fn every_bad_row_is_listed_and_capped() {
        let mut input = format!("{HEADER}\n");
        for _ in 0..60 {
            input.push_str("2026-10-01,S,B,O,C,P,I,1x,1,1,1,1,EUR,P,S,N,\n");
        }
        let err = run(&input).unwrap_err();
        let ImportError::BadRows { rows, omitted, .. } = &err else { panic!("{err}") };
        assert_eq!(rows.len(), MAX_LISTED_ROWS);
        assert_eq!(*omitted, 10);
        assert_eq!(rows[0].row, 2);
        let text = err.to_string();
        assert!(text.starts_with("bill.csv: 60 malformed rows, nothing imported\nbill.csv:2: Quantity \"1x\" is not a decimal number\n"), "{text}");
        assert!(text.ends_with("\n… and 10 more"), "{text}");
    }

    #[test]
    fn quoted_multiline_cells_keep_the_starting_line() {
        let input = format!(
            "{HEADER}\n2026-10-01,S,B,O,C,\"P\nline two\",I,1,1,1,1,1,EUR,P,S,N,\n2026-10-01,S,B,O,C,P,I,x,1,1,1,1,EUR,P,S,N,\n"
        );
        let err = run(&input).unwrap_err();
        let ImportError::BadRows { rows, .. } = &err else { panic!("{err}") };
        assert_eq!(rows[0].row, 4);
    }

    #[test]
    fn rows_are_file_lines_with_crlf_and_blank_lines() {
        let input = format!(
            "{HEADER}\r\n2026-10-01,S,B,O,C,P,I,1,1,1,1,1,EUR,P,S,N,\r\n\r\n2026-10-01,S,B,O,C,P,I,x,1,1,1,1,EUR,P,S,\"N\",\r\n"
        );
        let err = run(&input).unwrap_err();
        let ImportError::BadRows { rows, .. } = &err else { panic!("{err}") };
        assert_eq!(
            rows,
            &[RowError { row: 4, reason: "Quantity \"x\" is not a decimal number".into() }]
        );
        let ok = format!("{HEADER}\r\n2026-10-01,S,B,O,C,P,I,1,1,1,1,1,EUR,P,S,N,29683501\r\n\r\n");
        assert_eq!(run(&ok).unwrap().lines, 1);
    }

    /// The csv crate skips empty lines without counting them into the next record's position:
    /// a bad row after a blank line was reported one line early.
    #[test]
    fn rows_are_file_lines_after_empty_lines_and_without_a_final_newline() {
        let good = "2026-10-01,S,B,O,C,P,I,1,1,1,1,1,EUR,P,S,N,";
        let bad = "2026-10-01,S,B,O,C,P,I,x,1,1,1,1,EUR,P,S,N,";
        for (input, row) in [
            (format!("\n\n{HEADER}\n{good}\n\n\n{bad}\n"), 7),
            (format!("{HEADER}\n{good}\n\n{bad}"), 4),
            (format!("{HEADER}\n\"{good}\n\n\"\n\n{bad}\n\n"), 6),
            // A quote never closed runs to the end of the file: the row is where it starts.
            (format!("{HEADER}\n{good}\n{bad}\n\"{good}\n{good}\n"), 4),
        ] {
            let err = run(&input).unwrap_err();
            let ImportError::BadRows { rows, .. } = &err else { panic!("{err}") };
            assert_eq!(rows.last().unwrap().row, row, "{input:?}: {err}");
        }
    }

    #[test]
    fn empty_and_header_only_files() {
        assert!(matches!(run(""), Err(ImportError::Empty { .. })));
        assert!(matches!(run("\n\n"), Err(ImportError::Empty { .. })));
        let summary = run(&format!("{HEADER}\n")).unwrap();
        assert_eq!(summary, ImportSummary::default());
    }

    #[test]
    fn a_semicolon_file_gets_a_hint() {
        let err = run(&HEADER.replace(',', ";")).unwrap_err();
        assert!(err.to_string().contains("separated by ';'"), "{err}");
    }

    #[test]
    fn utf16_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir);
        let err = import_reader(&mut store, &b"\xff\xfeB\x00"[..], "bill.csv").unwrap_err();
        assert!(matches!(err, ImportError::Utf16 { .. }), "{err}");
    }

    proptest::proptest! {
        /// No input makes the reader panic, and a rejected file leaves the store empty.
        #[test]
        fn never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = store(&dir);
            let mut input = format!("{HEADER}\n").into_bytes();
            input.extend_from_slice(&body);
            if import_reader(&mut store, &input[..], "bill.csv").is_err() {
                proptest::prop_assert!(store.bills().unwrap().is_empty());
            }
        }
    }
}
