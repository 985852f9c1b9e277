//! A review as HTML (one self-contained page), CSV (one row per company, subscription and
//! product) or JSON (the model, amounts as decimal strings).

use std::str::FromStr;

use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};
use rust_decimal::{Decimal, RoundingStrategy};
use std::io::Write as _;

use serde::Serialize;

use super::{
    charts, AzureTrend, Change, CompanyReview, Exception, Figures, Period, PeriodTotal,
    ProductReview, Review, SubscriptionReview, Totals,
};
use chrono::NaiveDate;
use cmat_engine::spreadsheet::spreadsheet_safe;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Csv,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the review page template failed")]
    Template(#[from] minijinja::Error),
    #[error("the review could not be written as CSV")]
    Csv(#[from] csv::Error),
    #[error("the review could not be written as JSON")]
    Json(#[from] serde_json::Error),
    #[error("the review could not be written")]
    Io(#[from] std::io::Error),
}

/// The review in `format`. `generated_at` is shown on the page only (CSV and JSON hold data).
pub fn render(review: &Review, format: Format, generated_at: &str) -> Result<String, RenderError> {
    match format {
        Format::Html => html(review, generated_at),
        Format::Csv => csv(review),
        Format::Json => json(review),
    }
}

/// The review in `format`, written to `out` as it is rendered: a large tenant's JSON is
/// 150 MB, which need not be held in memory beside the review.
pub fn render_to(
    review: &Review,
    format: Format,
    generated_at: &str,
    out: &mut dyn std::io::Write,
) -> Result<(), RenderError> {
    match format {
        Format::Json => json_to(review, &mut *out)?,
        Format::Html => html_to(review, generated_at, &mut *out)?,
        Format::Csv => csv_to(review, &mut *out)?,
    }
    Ok(out.flush()?)
}

/// The JSON form: `format_version` first, then the model.
pub fn json(review: &Review) -> Result<String, RenderError> {
    let mut bytes = Vec::new();
    json_to(review, &mut bytes)?;
    String::from_utf8(bytes).map_err(|err| RenderError::Io(std::io::Error::other(err)))
}

fn json_to(review: &Review, out: &mut dyn std::io::Write) -> Result<(), RenderError> {
    #[derive(Serialize)]
    struct Versioned<'a> {
        format_version: u32,
        #[serde(flatten)]
        review: &'a Review,
    }
    let mut writer = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut writer, &Versioned { format_version: 1, review })?;
    writer.write_all(b"\n")?;
    Ok(writer.flush()?)
}

const CSV_HEADER: [&str; 27] = [
    "period",
    "level",
    "organization",
    "customer_number",
    "autotask_company_id",
    "subscription_id",
    "subscription_name",
    "service",
    "billing",
    "item_code",
    "product_name",
    "units",
    "unit_price",
    "unit_cost",
    "revenue",
    "cost",
    "margin",
    "margin_percent",
    "previous_units",
    "previous_revenue",
    "change",
    "autotask_revenue",
    "autotask_status",
    "billing_date",
    "intended_revenue",
    "price_book_difference",
    "unexplained_difference",
];

/// One row per company, subscription and product (`level`), then one `total` row. Amounts
/// are plain numbers (`-12.50`); every text cell goes through `spreadsheet_safe`. Written
/// field by field: a large tenant has 250,000 rows, so a company's or subscription's cells are
/// made safe once, and amounts are formatted into one reused buffer.
pub fn csv(review: &Review) -> Result<String, RenderError> {
    let mut bytes = Vec::new();
    csv_to(review, &mut bytes)?;
    String::from_utf8(bytes).map_err(|err| RenderError::Io(std::io::Error::other(err)))
}

/// The CSV, written to `out` as it is made (a large tenant's is 55 MB).
fn csv_to(review: &Review, out: &mut dyn std::io::Write) -> Result<(), RenderError> {
    let mut out = Cells { writer: csv::Writer::from_writer(out), buffer: String::new() };
    out.writer.write_record(CSV_HEADER)?;
    let period = review.period.to_string();
    for company in &review.companies {
        company_rows(&mut out, &period, company)?;
    }
    total_row(&mut out, &period, &review.totals)?;
    Ok(out.writer.flush()?)
}

/// The cells every row of a company starts with, made safe once for all its rows.
struct CompanyCells<'a> {
    period: &'a str,
    organization: String,
    customer_number: String,
    company_id: String,
}

impl CompanyCells<'_> {
    fn write(&self, out: &mut Cells, level: &str) -> csv::Result<()> {
        out.text(self.period)?;
        out.text(level)?;
        out.text(&self.organization)?;
        out.text(&self.customer_number)?;
        out.text(&self.company_id)
    }
}

/// The cells every row of a subscription starts with (after its company's).
struct SubscriptionCells<'a> {
    company: &'a CompanyCells<'a>,
    subscription_id: String,
    subscription_name: String,
    service: String,
    billing: &'a str,
}

impl SubscriptionCells<'_> {
    fn write(&self, out: &mut Cells, level: &str) -> csv::Result<()> {
        self.company.write(out, level)?;
        out.text(&self.subscription_id)?;
        out.text(&self.subscription_name)?;
        out.text(&self.service)?;
        out.text(self.billing)
    }
}

/// A company's row, then its subscriptions' and their products'.
fn company_rows(out: &mut Cells, period: &str, company: &CompanyReview) -> csv::Result<()> {
    let cells = CompanyCells {
        period,
        organization: spreadsheet_safe(&company.organization),
        customer_number: spreadsheet_safe(&company.customer_number),
        company_id: company.autotask_company_id.map(|id| id.to_string()).unwrap_or_default(),
    };
    cells.write(out, "company")?;
    out.empty(9)?;
    out.figures(&company.figures)?;
    out.empty(1)?;
    out.amount(company.previous_revenue)?;
    out.text(company.change.as_str())?;
    out.empty(6)?;
    out.end()?;
    for sub in &company.subscriptions {
        subscription_rows(out, &cells, sub)?;
    }
    Ok(())
}

/// A subscription's row, with what Autotask holds and intends for it, then its products'.
fn subscription_rows(
    out: &mut Cells,
    company: &CompanyCells<'_>,
    sub: &SubscriptionReview,
) -> csv::Result<()> {
    let cells = SubscriptionCells {
        company,
        subscription_id: spreadsheet_safe(&sub.subscription_id),
        subscription_name: spreadsheet_safe(&sub.subscription_name),
        service: spreadsheet_safe(&sub.service),
        billing: sub.billing,
    };
    let billing_date = sub.billing_date.map(|d| d.to_string()).unwrap_or_default();
    cells.write(out, "subscription")?;
    out.empty(5)?;
    out.figures(&sub.figures)?;
    out.empty(1)?;
    out.amount(sub.previous_revenue)?;
    out.text(sub.change.as_str())?;
    out.amount(sub.autotask_revenue)?;
    out.text(sub.autotask_status)?;
    out.text(&billing_date)?;
    out.amount(sub.intended_revenue)?;
    out.amount(sub.price_book_difference)?;
    out.amount(sub.unexplained_difference)?;
    out.end()?;
    for product in &sub.products {
        product_row(out, &cells, product, &billing_date)?;
    }
    Ok(())
}

/// A product's row: its units, prices and figures against the previous period's.
fn product_row(
    out: &mut Cells,
    subscription: &SubscriptionCells<'_>,
    product: &ProductReview,
    billing_date: &str,
) -> csv::Result<()> {
    subscription.write(out, "product")?;
    out.text(&spreadsheet_safe(&product.item_code))?;
    out.text(&spreadsheet_safe(&product.product_name))?;
    out.amount(Some(product.units))?;
    out.amount(product.unit_price)?;
    out.amount(product.unit_cost)?;
    out.figures(&product.figures)?;
    out.amount(product.previous_units)?;
    out.amount(product.previous_revenue)?;
    out.text(product.change.as_str())?;
    out.empty(2)?;
    out.text(billing_date)?;
    out.empty(3)?;
    out.end()
}

/// The last row: the bills' figures against Autotask's total.
fn total_row(out: &mut Cells, period: &str, totals: &Totals) -> csv::Result<()> {
    out.text(period)?;
    out.text("total")?;
    out.empty(12)?;
    out.figures(&totals.bills)?;
    out.empty(3)?;
    out.amount(totals.autotask_total)?;
    out.text(match totals.difference {
        Some(d) if d.is_zero() => "matches",
        Some(_) => "differs",
        None => "unknown",
    })?;
    out.empty(1)?;
    out.amount(Some(totals.to_autotask + totals.price_book_difference))?;
    out.amount(Some(totals.price_book_difference))?;
    out.amount(totals.unexplained_difference)?;
    out.end()
}

/// The CSV being written, a field at a time.
struct Cells<'w> {
    writer: csv::Writer<&'w mut dyn std::io::Write>,
    /// An amount's digits, reused from field to field.
    buffer: String,
}

impl Cells<'_> {
    fn text(&mut self, value: &str) -> csv::Result<()> {
        self.writer.write_field(value)
    }

    fn empty(&mut self, count: usize) -> csv::Result<()> {
        for _ in 0..count {
            self.writer.write_field("")?;
        }
        Ok(())
    }

    /// A plain number (`-12.50`), or an empty cell.
    fn amount(&mut self, value: Option<Decimal>) -> csv::Result<()> {
        self.buffer.clear();
        if let Some(value) = value {
            push_decimal(&mut self.buffer, value);
        }
        self.writer.write_field(&self.buffer)
    }

    /// Revenue, cost, margin, margin %.
    fn figures(&mut self, figures: &Figures) -> csv::Result<()> {
        self.amount(Some(figures.revenue))?;
        self.amount(Some(figures.cost))?;
        self.amount(Some(figures.margin))?;
        self.amount(figures.margin_percent)
    }

    /// Ends the record written field by field.
    fn end(&mut self) -> csv::Result<()> {
        self.writer.write_record(None::<&[u8]>)
    }
}

/// `value` as `Decimal`'s `Display` writes it (a test holds them equal), without the
/// formatting machinery: a large tenant's CSV holds two million amounts.
fn push_decimal(out: &mut String, value: Decimal) {
    // The mantissa (under 10^29) as two u64 halves of 19 digits: a u64 divides in one
    // instruction, a u128 by a library call.
    const HALF: u128 = 10_000_000_000_000_000_000;
    let magnitude = value.mantissa().unsigned_abs();
    let (high, low) = match u64::try_from(magnitude) {
        Ok(low) => (0, low),
        Err(_) => ((magnitude / HALF) as u64, (magnitude % HALF) as u64),
    };
    let mut digits = [b'0'; 40];
    let mut start = digits.len();
    let mut push = |mut rest: u64, width: usize| {
        let end = start;
        while rest > 0 || end - start < width {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
    };
    if high > 0 {
        push(low, 19);
        push(high, 1);
    } else {
        push(low, 1);
    }
    let digits = &digits[start..];
    let scale = value.scale() as usize;
    if value.is_sign_negative() {
        out.push('-');
    }
    if scale == 0 {
        out.extend(digits.iter().map(|b| char::from(*b)));
    } else if digits.len() <= scale {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.extend(digits.iter().map(|b| char::from(*b)));
    } else {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.extend(whole.iter().map(|b| char::from(*b)));
        out.push('.');
        out.extend(fraction.iter().map(|b| char::from(*b)));
    }
}

const TEMPLATE: &str = include_str!("review.html");
const COMPANY_DETAILS: &str = include_str!("company-details.html");
/// The company details are rendered in this many chunks at once.
const DETAIL_CHUNKS: usize = 2;

/// `1234.5` → `1,234.50` (two places, half away from zero); none → `—`.
fn money(value: Value) -> Result<String, minijinja::Error> {
    if value.is_none() || value.is_undefined() {
        return Ok("—".into());
    }
    let decimal = decimal_of(&value)?;
    let rounded = decimal.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let text = format!("{:.2}", rounded.abs());
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if rounded.is_sign_negative() && !rounded.is_zero() { "−" } else { "" };
    Ok(format!("{sign}{grouped}.{cents}"))
}

/// A decimal as a sort key for the table's script (plain, exact).
fn plain(value: Value) -> Result<String, minijinja::Error> {
    if value.is_none() || value.is_undefined() {
        return Ok(String::new());
    }
    Ok(decimal_of(&value)?.normalize().to_string())
}

/// Units: whole numbers without decimals, fractions as they are.
fn quantity(value: Value) -> Result<String, minijinja::Error> {
    if value.is_none() || value.is_undefined() {
        return Ok("—".into());
    }
    Ok(decimal_of(&value)?.normalize().to_string())
}

fn percent(value: Value) -> Result<String, minijinja::Error> {
    if value.is_none() || value.is_undefined() {
        return Ok("—".into());
    }
    Ok(format!(
        "{:.1} %",
        decimal_of(&value)?.round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
    ))
}

/// An amount of the review (a decimal string, as `Decimal` serializes), read without copying
/// its text: the page calls the amount filters some 300,000 times on a large tenant.
fn decimal_of(value: &Value) -> Result<Decimal, minijinja::Error> {
    let parsed = match value.as_str() {
        Some(text) => Decimal::from_str(text),
        None => Decimal::from_str(&value.to_string()),
    };
    parsed.map_err(|_| {
        minijinja::Error::new(ErrorKind::InvalidOperation, format!("not an amount: {value:?}"))
    })
}

pub fn html(review: &Review, generated_at: &str) -> Result<String, RenderError> {
    let mut bytes = Vec::new();
    html_to(review, generated_at, &mut bytes)?;
    String::from_utf8(bytes).map_err(|err| RenderError::Io(std::io::Error::other(err)))
}

/// The page, written to `out` as it is rendered (a large tenant's is 38 MB).
fn html_to(
    review: &Review,
    generated_at: &str,
    out: &mut dyn std::io::Write,
) -> Result<(), RenderError> {
    let env = environment()?;
    let company_details = company_details(&env, review)?;
    let template = env.get_template("review.html")?;
    let charts = charts::charts(review);
    let company_details: Vec<Value> =
        company_details.into_iter().map(Value::from_safe_string).collect();
    template.render_captured_to(
        minijinja::context! {
            review => Value::from_serialize(Page::of(review)),
            charts => Value::from_serialize(&charts),
            company_details => company_details,
            generated_at => generated_at,
            left_out_exceptions => left_out_exceptions(review),
            version => env!("CARGO_PKG_VERSION"),
        },
        out,
    )?;
    Ok(())
}

/// The page's templates with the filters and tests they use.
fn environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    // The names end in .html: minijinja escapes every value for HTML unless marked safe, and
    // the templates mark nothing safe. The page takes the company details as HTML the details
    // template rendered (and escaped) itself.
    env.add_template("review.html", TEMPLATE)?;
    env.add_template("company-details.html", COMPANY_DETAILS)?;
    env.add_filter("money", money);
    env.add_filter("plain", plain);
    env.add_filter("quantity", quantity);
    env.add_filter("percent", percent);
    env.add_filter("shorten", |text: String, length: usize| {
        if text.chars().count() <= length {
            text
        } else {
            let kept: String = text.chars().take(length.saturating_sub(1)).collect();
            format!("{kept}…")
        }
    });
    env.add_test("negative", |value: Value| {
        !value.is_none() && decimal_of(&value).is_ok_and(|d| d.is_sign_negative() && !d.is_zero())
    });
    Ok(env)
}

/// How many exceptions say a line was left out of Autotask (the page's count beside them).
fn left_out_exceptions(review: &Review) -> usize {
    review
        .exceptions
        .iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "unlinked_organization" | "unmapped_service" | "manual_line_not_billed"
            )
        })
        .count()
}

/// Every company's subscriptions and products, the bulk of a large tenant's page (250,000
/// rows): rendered in [`DETAIL_CHUNKS`] chunks on as many threads, in order.
fn company_details(
    env: &Environment<'_>,
    review: &Review,
) -> Result<Vec<String>, minijinja::Error> {
    let template = env.get_template("company-details.html")?;
    let chunk = review.companies.len().div_ceil(DETAIL_CHUNKS).max(1);
    let render = |first: usize, companies: &[CompanyReview]| {
        let companies: Vec<PageCompany<'_>> =
            companies.iter().map(|c| PageCompany::of(c, true)).collect();
        template.render(minijinja::context! {
            companies => Value::from_serialize(&companies),
            first => first,
            previous_period => review.previous_period,
        })
    };
    let chunks: Vec<Result<String, minijinja::Error>> = std::thread::scope(|scope| {
        let mut chunks = review.companies.chunks(chunk).enumerate();
        let first = chunks.next();
        let others: Vec<_> = chunks
            .map(|(index, companies)| {
                let render = &render;
                scope.spawn(move || render(index * chunk, companies))
            })
            .collect();
        let mut rendered = vec![first.map_or(Ok(String::new()), |(_, c)| render(0, c))];
        for other in others {
            rendered.push(other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        rendered
    });
    chunks.into_iter().collect()
}

/// The review as the page's template reads it: the same fields, except that a consumption
/// subscription with more than 12 meters carries only the 10 largest (the page folds the
/// rest; `product_count` says how many there are). A large tenant's 200,000 Azure meters are
/// then not all turned into template values only to be skipped.
#[derive(Serialize)]
struct Page<'a> {
    period: Period,
    previous_period: Option<Period>,
    billing_dates: &'a [NaiveDate],
    currencies: &'a [String],
    totals: &'a Totals,
    exceptions: &'a [Exception],
    companies: Vec<PageCompany<'a>>,
    azure: &'a [AzureTrend],
    history: &'a [PeriodTotal],
    notes: &'a [String],
}

#[derive(Serialize)]
struct PageCompany<'a> {
    organization: &'a str,
    customer_number: &'a str,
    autotask_company_id: Option<i64>,
    autotask_company: Option<&'a str>,
    figures: &'a Figures,
    previous_revenue: Option<Decimal>,
    change: Change,
    subscriptions: Vec<PageSubscription<'a>>,
}

#[derive(Serialize)]
struct PageSubscription<'a> {
    subscription_id: &'a str,
    subscription_name: &'a str,
    service: &'a str,
    billing: &'a str,
    billing_date: Option<NaiveDate>,
    figures: &'a Figures,
    previous_revenue: Option<Decimal>,
    change: Change,
    autotask_revenue: Option<Decimal>,
    autotask_status: &'a str,
    price_book_difference: Option<Decimal>,
    unexplained_difference: Option<Decimal>,
    products: &'a [ProductReview],
    product_count: usize,
}

/// Meters a folded subscription shows, and the count above which it is folded (the template's).
const FOLDED_METERS: usize = 10;
const FOLD_ABOVE: usize = 12;

impl<'a> Page<'a> {
    fn of(review: &'a Review) -> Page<'a> {
        Page {
            period: review.period,
            previous_period: review.previous_period,
            billing_dates: &review.billing_dates,
            currencies: &review.currencies,
            totals: &review.totals,
            exceptions: &review.exceptions,
            // The summary table's rows: their subscriptions are the details'.
            companies: review.companies.iter().map(|c| PageCompany::of(c, false)).collect(),
            azure: &review.azure,
            history: &review.history,
            notes: &review.notes,
        }
    }
}

impl<'a> PageCompany<'a> {
    fn of(company: &'a CompanyReview, with_subscriptions: bool) -> PageCompany<'a> {
        PageCompany {
            organization: &company.organization,
            customer_number: &company.customer_number,
            autotask_company_id: company.autotask_company_id,
            autotask_company: company.autotask_company.as_deref(),
            figures: &company.figures,
            previous_revenue: company.previous_revenue,
            change: company.change,
            subscriptions: match with_subscriptions {
                true => company.subscriptions.iter().map(PageSubscription::of).collect(),
                false => Vec::new(),
            },
        }
    }
}

impl<'a> PageSubscription<'a> {
    fn of(sub: &'a SubscriptionReview) -> PageSubscription<'a> {
        let folded = sub.billing == "consumption" && sub.products.len() > FOLD_ABOVE;
        let shown = if folded { FOLDED_METERS } else { sub.products.len() };
        PageSubscription {
            subscription_id: &sub.subscription_id,
            subscription_name: &sub.subscription_name,
            service: &sub.service,
            billing: sub.billing,
            billing_date: sub.billing_date,
            figures: &sub.figures,
            previous_revenue: sub.previous_revenue,
            change: sub.change,
            autotask_revenue: sub.autotask_revenue,
            autotask_status: sub.autotask_status,
            price_book_difference: sub.price_book_difference,
            unexplained_difference: sub.unexplained_difference,
            products: sub.products.get(..shown).unwrap_or(&sub.products),
            product_count: sub.products.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_as_decimal_displays_them() {
        let mut values: Vec<Decimal> = [
            "0",
            "-0",
            "0.00",
            "-0.00",
            "1",
            "-1",
            "12.50",
            "-12.3400",
            "0.0001",
            "0.0000000000000000000000000001",
            "-0.0000000000000000000000000001",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "7922816251426433759354395.0335",
            "10000000000000000000",
            "9999999999999999999",
            "18446744073709551615",
            "18446744073709551616",
            "123456789.123456789",
        ]
        .iter()
        .map(|text| Decimal::from_str(text).expect("decimal"))
        .collect();
        let mut negative_zero = Decimal::new(0, 2);
        negative_zero.set_sign_negative(true);
        values.push(negative_zero);
        // A spread of mantissas and scales.
        let mut seed: u128 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mantissa = (seed >> 32) as i128 % (1i128 << 95);
            let scale = (seed % 29) as u32;
            values.push(Decimal::from_i128_with_scale(mantissa, scale));
        }
        for value in values {
            let mut ours = String::new();
            push_decimal(&mut ours, value);
            assert_eq!(ours, value.to_string(), "{value:?}");
        }
    }

    #[test]
    fn money_is_grouped_and_signed() {
        let shown = |text: &str| money(Value::from(text)).unwrap_or_default();
        assert_eq!(shown("1234567.891"), "1,234,567.89");
        assert_eq!(shown("-12.5"), "−12.50");
        assert_eq!(shown("0.004"), "0.00");
        assert_eq!(shown("-0.004"), "0.00");
        assert_eq!(shown("999.995"), "1,000.00");
        assert_eq!(money(Value::from(())).unwrap_or_default(), "—");
    }
}
