//! One row of the report to a [`BillLine`]: the columns cmat reads, where they are in a file's
//! header, and how each cell's value is checked. Shared by the CSV and the `.xlsx` readers: a
//! cell is text (CSV, or a text cell of a workbook) or typed (a workbook's number or date).

use std::borrow::Cow;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use cmat_engine::billing::BillLine;

/// The report's columns cmat reads, as Cloudmore names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
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
    OrganizationGroups,
}

pub(super) const COLUMNS: [Column; 20] = [
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
    Column::OrganizationGroups,
];

impl Column {
    pub(super) fn name(self) -> &'static str {
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
            Column::AutotaskCompanyId => cmat_engine::billing::AUTOTASK_COMPANY_COLUMN,
            Column::PaymentFrequency => "Payment Frequency",
            Column::OrganizationCurrencyCode => "Organization Currency Code",
            Column::OrganizationGroups => "Organization Groups",
        }
    }

    /// SPEC.md's required columns: they must be in the header.
    pub(super) fn required(self) -> bool {
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

    /// Required columns whose cell must not be empty. Subscription ID may be: a manual billing
    /// line (a discount or fee) has none, and is imported (SPEC.md, "Input").
    fn must_have_value(self) -> bool {
        self.required() && self != Column::SubscriptionId
    }
}

/// One cell as a reader found it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell<'a> {
    Empty,
    Text(Cow<'a, str>),
    /// A workbook's numeric cell, as the exact decimal of its shortest round-trip text.
    Number(Decimal),
    /// A workbook's date cell.
    Date(NaiveDate),
    /// A cell the reader could not turn into one of the above (an Excel error, a boolean, a
    /// date with a time, bytes not in the file's encoding): the reason, without the column.
    Bad(String),
}

impl Cell<'_> {
    /// The cell, borrowed (a refusal's reason is copied: it is rare).
    pub(super) fn view(&self) -> Cell<'_> {
        match self {
            Cell::Empty => Cell::Empty,
            Cell::Text(text) => Cell::Text(Cow::Borrowed(text)),
            Cell::Number(value) => Cell::Number(*value),
            Cell::Date(date) => Cell::Date(*date),
            Cell::Bad(reason) => Cell::Bad(reason.clone()),
        }
    }
}

/// How the text of numbers is written in this file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecimalSeparator {
    Point,
    /// `;`-separated CSV re-saved by Excel in a European locale.
    Comma,
}

/// "  Billing   DATE " → "billing date": how header names are compared.
pub(super) fn normalize(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// How many of cmat's columns a header names (to tell a header row, or a separator, apart).
pub(super) fn known_columns(names: &[String]) -> usize {
    let names: Vec<String> = names.iter().map(|n| normalize(n)).collect();
    COLUMNS.iter().filter(|c| names.contains(&normalize(c.name()))).count()
}

/// Why a header cannot be used.
#[derive(Debug)]
pub(super) enum HeaderError {
    Missing(Vec<&'static str>),
    Duplicate(&'static str),
}

/// Where each known column is in this file's header.
pub(super) struct Layout {
    positions: [Option<usize>; COLUMNS.len()],
    pub(super) width: usize,
    pub(super) decimals: DecimalSeparator,
}

impl Layout {
    pub(super) fn from_names(
        names: &[String],
        decimals: DecimalSeparator,
    ) -> Result<Layout, HeaderError> {
        let names: Vec<String> = names.iter().map(|n| normalize(n)).collect();
        let mut positions = [None; COLUMNS.len()];
        for (slot, column) in positions.iter_mut().zip(COLUMNS) {
            let wanted = normalize(column.name());
            let mut found = names.iter().enumerate().filter(|(_, n)| **n == wanted);
            *slot = found.next().map(|(i, _)| i);
            if found.next().is_some() {
                return Err(HeaderError::Duplicate(column.name()));
            }
        }
        let missing: Vec<&'static str> = COLUMNS
            .iter()
            .zip(&positions)
            .filter(|(c, p)| c.required() && p.is_none())
            .map(|(c, _)| c.name())
            .collect();
        if !missing.is_empty() {
            return Err(HeaderError::Missing(missing));
        }
        Ok(Layout { positions, width: names.len(), decimals })
    }

    /// Whether the cell at `index` is one cmat reads (the others are never decoded).
    pub(super) fn reads(&self, index: usize) -> bool {
        self.positions.contains(&Some(index))
    }

    /// One row to a line, or every reason it is malformed ("; "-separated). `cells` holds the
    /// row's cells by column position (missing trailing cells are empty).
    pub(super) fn parse(
        &self,
        cells: &[Cell<'_>],
        file: &str,
        row: u64,
    ) -> Result<BillLine, String> {
        let mut line = BillLine::default();
        self.parse_into(
            |index| cells.get(index).map_or(Cell::Empty, Cell::view),
            file,
            row,
            &mut line,
        )?;
        Ok(line)
    }

    /// [`parse`](Self::parse) into `line`, reusing its texts' buffers (a CSV import parses a
    /// million rows into one line), with the row's cells given by position (`cell_at`): a CSV
    /// record hands out the columns read, borrowed, and builds no vector of cells. On an
    /// error `line` holds part of the row.
    pub(super) fn parse_into<'c>(
        &self,
        cell_at: impl Fn(usize) -> Cell<'c>,
        file: &str,
        row: u64,
        line: &mut BillLine,
    ) -> Result<(), String> {
        let mut reasons: Vec<String> = Vec::new();
        let cell = |column: Column| -> Cell<'c> {
            match self.positions[column as usize] {
                Some(index) => cell_at(index),
                None => Cell::Empty,
            }
        };
        read_texts(&cell, line, &mut reasons);
        match self.read_values(&cell, &mut reasons) {
            Some(values) if reasons.is_empty() => {
                if line.source.file != file {
                    line.source.file = file.to_string();
                }
                line.source.row = row;
                values.write_into(line);
                Ok(())
            }
            _ => Err(reasons.join("; ")),
        }
    }

    /// The row's date, amounts and company id, each bad or empty one's reason added to
    /// `reasons` (in the columns' order); `None` when any is missing.
    fn read_values<'c>(
        &self,
        cell: &impl Fn(Column) -> Cell<'c>,
        reasons: &mut Vec<String>,
    ) -> Option<Values> {
        let date = date_of(Column::BillingDate, &cell(Column::BillingDate));
        let billing_date = required(reasons, Column::BillingDate, date);
        let mut amount = |column: Column| {
            let value = self.decimal_of(column, &cell(column));
            required(reasons, column, value)
        };
        let quantity = amount(Column::Quantity);
        let unit_cost_price = amount(Column::UnitCostPrice);
        let unit_sales_price = amount(Column::UnitSalesPrice);
        let total_cost = amount(Column::TotalCost);
        let total_sales = amount(Column::TotalSales);
        let autotask_company_id = check(reasons, company_id_of(&cell(Column::AutotaskCompanyId)));
        Some(Values {
            billing_date: billing_date?,
            quantity: quantity?,
            unit_cost_price: unit_cost_price?,
            unit_sales_price: unit_sales_price?,
            total_cost: total_cost?,
            total_sales: total_sales?,
            autotask_company_id: autotask_company_id?,
        })
    }

    /// A decimal cell: a workbook number as it is, text by this file's decimal separator;
    /// empty → Ok(None) (reported as an empty required cell already).
    fn decimal_of(&self, column: Column, cell: &Cell<'_>) -> Result<Option<Decimal>, String> {
        match cell {
            Cell::Empty => Ok(None),
            Cell::Number(value) => Ok(Some(*value)),
            Cell::Text(text) => {
                let text = trimmed(text);
                if text.is_empty() {
                    return Ok(None);
                }
                match self.decimals {
                    DecimalSeparator::Point => parse_exact_decimal(column.name(), text).map(Some),
                    DecimalSeparator::Comma => {
                        if text.contains('.') {
                            return Err(format!(
                                "{} {} is not a decimal number (this file is ';'-separated, so its decimal separator is ',')",
                                column.name(),
                                shown(text)
                            ));
                        }
                        parse_exact_decimal(column.name(), &text.replacen(',', ".", 1))
                            .map(Some)
                            .map_err(|_| {
                                format!(
                                    "{} {} is not a decimal number (use \",\" as the decimal separator, without thousands separators)",
                                    column.name(),
                                    shown(text)
                                )
                            })
                    }
                }
            }
            Cell::Date(_) => Err(format!("{} is a date, expected a number", column.name())),
            Cell::Bad(reason) => Err(format!("{} {reason}", column.name())),
        }
    }
}

/// A row's cells that are not text, read and checked; copied into the line only when the whole
/// row is good.
struct Values {
    billing_date: NaiveDate,
    quantity: Decimal,
    unit_cost_price: Decimal,
    unit_sales_price: Decimal,
    total_cost: Decimal,
    total_sales: Decimal,
    autotask_company_id: Option<i64>,
}

impl Values {
    fn write_into(self, line: &mut BillLine) {
        line.billing_date = self.billing_date;
        line.quantity = self.quantity;
        line.unit_cost_price = self.unit_cost_price;
        line.unit_sales_price = self.unit_sales_price;
        line.total_cost = self.total_cost;
        line.total_sales = self.total_sales;
        line.autotask_company_id = self.autotask_company_id;
    }
}

/// The row's text columns, written into the line's reused buffers; an unreadable cell, or an
/// empty one that must have a value, adds its reason.
fn read_texts<'c>(
    cell: &impl Fn(Column) -> Cell<'c>,
    line: &mut BillLine,
    reasons: &mut Vec<String>,
) {
    let mut text = |column: Column, target: &mut String| {
        target.clear();
        match text_into(column, &cell(column), target) {
            Ok(()) if target.is_empty() && column.must_have_value() => {
                reasons.push(format!("{} is empty", column.name()));
            }
            Ok(()) => {}
            Err(reason) => reasons.push(reason),
        }
    };
    text(Column::ServiceName, &mut line.service_name);
    text(Column::BrokerName, &mut line.broker_name);
    text(Column::OrganizationName, &mut line.organization_name);
    text(Column::CustomerNumber, &mut line.customer_number);
    text(Column::ProductName, &mut line.product_name);
    text(Column::ItemCode, &mut line.item_code);
    text(Column::CurrencyCode, &mut line.currency_code);
    text(Column::ProductId, &mut line.product_id);
    text(Column::SubscriptionId, &mut line.subscription_id);
    text(Column::SubscriptionName, &mut line.subscription_name);
    text(Column::PaymentFrequency, &mut line.payment_frequency);
    text(Column::OrganizationCurrencyCode, &mut line.organization_currency_code);
    text(Column::OrganizationGroups, &mut line.organization_groups);
}

/// A required cell's value: its reason kept when it is bad, "is empty" when it is empty.
fn required<T>(
    reasons: &mut Vec<String>,
    column: Column,
    result: Result<Option<T>, String>,
) -> Option<T> {
    match check(reasons, result)? {
        Some(value) => Some(value),
        None => {
            reasons.push(format!("{} is empty", column.name()));
            None
        }
    }
}

/// `text.trim()`, without its Unicode scan for the nearly every cell that starts and ends with
/// a visible ASCII character.
fn trimmed(text: &str) -> &str {
    let visible = |byte: Option<&u8>| byte.is_some_and(|b| b.is_ascii_graphic());
    let bytes = text.as_bytes();
    if visible(bytes.first()) && visible(bytes.last()) {
        text
    } else {
        text.trim()
    }
}

/// A text cell's trimmed text, written into `target`; a workbook number as its text (a numeric
/// Customer Number).
fn text_into(column: Column, cell: &Cell<'_>, target: &mut String) -> Result<(), String> {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    match cell {
        Cell::Empty => {}
        Cell::Text(text) => target.push_str(trimmed(text)),
        Cell::Number(value) => {
            let _ = write!(target, "{}", value.normalize());
        }
        Cell::Date(date) => {
            let _ = write!(target, "{}", date.format("%Y-%m-%d"));
        }
        Cell::Bad(reason) => return Err(format!("{} {reason}", column.name())),
    }
    Ok(())
}

fn date_of(column: Column, cell: &Cell<'_>) -> Result<Option<NaiveDate>, String> {
    match cell {
        Cell::Empty => Ok(None),
        Cell::Date(date) => Ok(Some(*date)),
        Cell::Text(text) => parse_date(column, trimmed(text)),
        Cell::Number(_) => Err(format!("{} is a number, expected a date", column.name())),
        Cell::Bad(reason) => Err(format!("{} {reason}", column.name())),
    }
}

fn company_id_of(cell: &Cell<'_>) -> Result<Option<i64>, String> {
    let name = Column::AutotaskCompanyId.name();
    match cell {
        Cell::Number(value) => {
            if value.fract().is_zero() && !value.is_sign_negative() {
                use rust_decimal::prelude::ToPrimitive;
                value
                    .trunc()
                    .to_i64()
                    .map(Some)
                    .ok_or_else(|| format!("{name} {value} is too large for an Autotask id"))
            } else {
                Err(format!("{name} {value} is not an integer"))
            }
        }
        Cell::Text(text) => parse_company_id(trimmed(text)),
        other => {
            let mut text = String::new();
            text_into(Column::AutotaskCompanyId, other, &mut text)?;
            parse_company_id(&text)
        }
    }
}

/// A cell quoted in a message: at most 40 characters of it, so that a megabyte cell makes a
/// one-line error rather than a megabyte one.
pub(super) fn shown(text: &str) -> String {
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

/// A date as text: ISO `YYYY-MM-DD`, or day, month and year separated by `/`, `.` or `-` when
/// the order cannot be mistaken (`25/01/2026`: 25 is no month); `01/02/2026` is an error, never
/// a guess. Empty → Ok(None) (reported as an empty required cell already).
pub(super) fn parse_date(column: Column, text: &str) -> Result<Option<NaiveDate>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let date = match iso_date(text.as_bytes()) {
        Some(date) => date,
        None => day_month_year(column, text)?,
    };
    date.map(Some).ok_or_else(|| format!("{} {} is not a valid date", column.name(), shown(text)))
}

/// Plain digit arithmetic on digits whose shape is checked: no format-string parsing per row.
fn digits_value(part: &[u8]) -> u32 {
    part.iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'))
}

/// `YYYY-MM-DD`: `None` when the text has not that shape, `Some(None)` when it has but names
/// no day of the calendar.
fn iso_date(bytes: &[u8]) -> Option<Option<NaiveDate>> {
    let iso = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    iso.then(|| {
        NaiveDate::from_ymd_opt(
            digits_value(&bytes[0..4]) as i32,
            digits_value(&bytes[5..7]),
            digits_value(&bytes[8..10]),
        )
    })
}

/// Day, month and year separated by `/`, `.` or `-`, when which is the day cannot be
/// mistaken; `Ok(None)` when they name no day of the calendar.
fn day_month_year(column: Column, text: &str) -> Result<Option<NaiveDate>, String> {
    let not_a_date = || {
        format!(
            "{} {} is not a date (expected YYYY-MM-DD, or a day and month that cannot be mistaken, such as 25/01/2026)",
            column.name(),
            shown(text)
        )
    };
    let separator = text.chars().find(|c| matches!(c, '/' | '.' | '-')).ok_or_else(not_a_date)?;
    let parts: Vec<&str> = text.split(separator).collect();
    let [a, b, year] = parts.as_slice() else { return Err(not_a_date()) };
    let short = |p: &str| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    if !short(a) || !short(b) || year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_date());
    }
    let (a, b) = (digits_value(a.as_bytes()), digits_value(b.as_bytes()));
    let year = digits_value(year.as_bytes()) as i32;
    let (day, month) = if a == b || (a > 12 && b <= 12) {
        (a, b)
    } else if b > 12 && a <= 12 {
        (b, a)
    } else {
        return Err(format!(
            "{} {} is ambiguous: day and month could be either way round (export the report as .xlsx, or with ISO dates YYYY-MM-DD)",
            column.name(),
            shown(text)
        ));
    };
    Ok(NaiveDate::from_ymd_opt(year, month, day))
}

/// The most significant digits a `Decimal` holds exactly; more would be rounded silently.
const MAX_DIGITS: usize = 28;

/// The one strict decimal reader, shared with the Cloudmore API client: `-?DIGITS(.DIGITS)?`,
/// at most 28 significant digits; the error names the field (`name`) and the text.
/// `Decimal::from_str` alone would also take "1_000" and round over-long numbers.
pub fn parse_exact_decimal(name: &str, text: &str) -> Result<Decimal, String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text).as_bytes();
    let (whole, fraction) = match unsigned.iter().position(|&byte| byte == b'.') {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    // "1." is refused, though "1" is not.
    let point_without_digits = fraction.is_some_and(<[u8]>::is_empty);
    let fraction = fraction.unwrap_or_default();
    let well_formed =
        whole.iter().all(u8::is_ascii_digit) && fraction.iter().all(u8::is_ascii_digit);
    if !well_formed || whole.is_empty() || point_without_digits {
        return Err(format!(
            "{name} {} is not a decimal number{}",
            shown(text),
            why_malformed(text)
        ));
    }
    let digits = whole.len() + fraction.len();
    if digits > MAX_DIGITS {
        let leading_zeros = whole.iter().take_while(|&&byte| byte == b'0').count();
        if digits - leading_zeros > MAX_DIGITS {
            return Err(format!(
                "{name} {} has more than {MAX_DIGITS} digits and cannot be kept exactly",
                shown(text)
            ));
        }
    }
    decimal_of_digits(whole, fraction, text.starts_with('-'))
        .map_err(|err| format!("{name} {} is not a decimal number ({err})", shown(text)))
}

/// What a malformed number likely is, for its error: a decimal comma, scientific notation.
fn why_malformed(text: &str) -> &'static str {
    if text.contains(',') {
        " (use \".\" as the decimal separator, without thousands separators)"
    } else if text.contains(['e', 'E']) && text.bytes().any(|b| b.is_ascii_digit()) {
        " (scientific notation is not accepted)"
    } else {
        ""
    }
}

/// The decimal of checked digits: at most 28 significant ones, so the mantissa fits 96 bits
/// (10^28 < 2^96) and the scale is at most 28. Up to 19 digits always fit 64 bits, where a
/// multiply is one instruction; longer ones are built in 128.
fn decimal_of_digits(
    whole: &[u8],
    fraction: &[u8],
    minus: bool,
) -> Result<Decimal, rust_decimal::Error> {
    let scale = fraction.len() as u32;
    // As `Decimal::from_str`: a zero is never negative.
    let negative = |mantissa_is_zero: bool| minus && !mantissa_is_zero;
    if whole.len() + fraction.len() <= 19 {
        let append = |value: u64, digits: &[u8]| {
            digits.iter().fold(value, |value, digit| value * 10 + u64::from(digit - b'0'))
        };
        let mantissa = append(append(0, whole), fraction);
        return Ok(Decimal::from_parts(
            mantissa as u32,
            (mantissa >> 32) as u32,
            0,
            negative(mantissa == 0),
            scale,
        ));
    }
    let mantissa = whole
        .iter()
        .chain(fraction)
        .fold(0i128, |value, digit| value * 10 + i128::from(digit - b'0'));
    let mut value = Decimal::try_from_i128_with_scale(mantissa, scale)?;
    value.set_sign_negative(negative(mantissa == 0));
    Ok(value)
}

/// The optional AutotaskCompanyID: empty → not linked; otherwise a non-negative integer.
pub(super) fn parse_company_id(text: &str) -> Result<Option<i64>, String> {
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

    fn q(text: &str) -> Result<Option<Decimal>, String> {
        let layout = Layout {
            positions: [None; COLUMNS.len()],
            width: 0,
            decimals: DecimalSeparator::Point,
        };
        layout.decimal_of(Column::Quantity, &Cell::Text(text.into()))
    }

    fn q_comma(text: &str) -> Result<Option<Decimal>, String> {
        let layout = Layout {
            positions: [None; COLUMNS.len()],
            width: 0,
            decimals: DecimalSeparator::Comma,
        };
        layout.decimal_of(Column::Quantity, &Cell::Text(text.into()))
    }

    #[test]
    fn decimals_are_exact_and_strict() {
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
        // The same value, scale and sign as `Decimal::from_str` gives.
        for text in [
            "0",
            "-0",
            "-0.00",
            "12.50",
            "-12.3400",
            "0.0000000000000000000000000001",
            "9999999999999999999999999999",
            "-9999999999999999999999999.999",
            "007.10",
            "1",
        ] {
            let ours = q(text).unwrap().unwrap();
            let theirs: Decimal = text.parse().unwrap();
            assert_eq!(
                (ours, ours.to_string(), ours.scale(), ours.is_sign_negative()),
                (theirs, theirs.to_string(), theirs.scale(), theirs.is_sign_negative()),
                "{text}"
            );
        }
    }

    proptest::proptest! {
        /// Any text of digits, points and signs: refused exactly when `Decimal::from_str`
        /// refuses it or it is not plain decimal notation, and otherwise the same value, scale
        /// and sign.
        #[test]
        fn decimals_match_from_str(text in "-?[0-9]{0,32}(\\.[0-9]{0,32})?[.-]?") {
            let plain = regex_free_plain(&text);
            match (q(&text), text.parse::<Decimal>()) {
                (Ok(Some(ours)), Ok(theirs)) => {
                    proptest::prop_assert!(plain);
                    proptest::prop_assert_eq!(
                        (ours, ours.scale(), ours.is_sign_negative()),
                        (theirs, theirs.scale(), theirs.is_sign_negative())
                    );
                }
                (Ok(None), _) => proptest::prop_assert!(text.is_empty()),
                (Ok(Some(ours)), Err(_)) => proptest::prop_assert!(false, "{} accepted as {}", text, ours),
                (Err(_), theirs) => {
                    let digits = text.bytes().filter(u8::is_ascii_digit).count();
                    proptest::prop_assert!(!plain || theirs.is_err() || digits > MAX_DIGITS, "{} refused", text);
                }
            }
        }
    }

    /// `-?DIGITS(.DIGITS)?`.
    fn regex_free_plain(text: &str) -> bool {
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits(whole) && fraction.is_none_or(digits)
    }

    #[test]
    fn decimal_commas_in_semicolon_files() {
        assert_eq!(q_comma("12,50").unwrap().unwrap().to_string(), "12.50");
        assert_eq!(q_comma("-3").unwrap().unwrap().to_string(), "-3");
        assert!(q_comma("12.50").unwrap_err().contains("';'-separated"));
        assert!(q_comma("1.234,50").is_err());
        assert!(q_comma("1,2,3").is_err());
    }

    #[test]
    fn dates_iso_or_unambiguous() {
        let d = |t: &str| parse_date(Column::BillingDate, t);
        assert_eq!(d("2026-10-01").unwrap().unwrap().to_string(), "2026-10-01");
        assert_eq!(d("25/01/2026").unwrap().unwrap().to_string(), "2026-01-25");
        assert_eq!(d("01/25/2026").unwrap().unwrap().to_string(), "2026-01-25");
        assert_eq!(d("25.1.2026").unwrap().unwrap().to_string(), "2026-01-25");
        assert_eq!(d("05/05/2026").unwrap().unwrap().to_string(), "2026-05-05");
        assert!(d("01/02/2026").unwrap_err().contains("ambiguous"));
        for bad in ["2026-1-01", "2026-10-01T00:00:00", "20261001", "+2026-10-0", "1/2/26"] {
            assert!(d(bad).is_err(), "{bad}");
        }
        assert!(d("2026-02-30").unwrap_err().contains("not a valid date"));
        assert!(d("31/02/2026").unwrap_err().contains("not a valid date"));
    }

    #[test]
    fn company_ids() {
        assert_eq!(parse_company_id("29683501"), Ok(Some(29683501)));
        assert_eq!(parse_company_id(""), Ok(None));
        assert!(parse_company_id("2968x").is_err());
        assert!(parse_company_id("-1").is_err());
        assert!(parse_company_id("99999999999999999999").is_err());
        assert_eq!(company_id_of(&Cell::Number(Decimal::from(29683501))), Ok(Some(29683501)));
        assert!(company_id_of(&Cell::Number(Decimal::new(15, 1))).is_err());
    }
}
