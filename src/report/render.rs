//! A review as HTML (one self-contained page), CSV (one row per company, subscription and
//! product) or JSON (the model, amounts as decimal strings).

use std::str::FromStr;

use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::{charts, Figures, Review};
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
}

/// The review in `format`. `generated_at` is shown on the page only (CSV and JSON hold data).
pub fn render(review: &Review, format: Format, generated_at: &str) -> Result<String, RenderError> {
    match format {
        Format::Html => html(review, generated_at),
        Format::Csv => csv(review),
        Format::Json => json(review),
    }
}

/// The JSON form: `format_version` first, then the model.
pub fn json(review: &Review) -> Result<String, RenderError> {
    #[derive(Serialize)]
    struct Versioned<'a> {
        format_version: u32,
        #[serde(flatten)]
        review: &'a Review,
    }
    let mut text = serde_json::to_string_pretty(&Versioned { format_version: 1, review })?;
    text.push('\n');
    Ok(text)
}

const CSV_HEADER: [&str; 24] = [
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
];

fn amount(value: Option<Decimal>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// One row per company, subscription and product (`level`), then one `total` row. Amounts
/// are plain numbers (`-12.50`); every text cell goes through `spreadsheet_safe`.
pub fn csv(review: &Review) -> Result<String, RenderError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER)?;
    let period = review.period.to_string();
    let text = |value: &str| spreadsheet_safe(value);
    let figures = |f: &Figures| {
        [f.revenue.to_string(), f.cost.to_string(), f.margin.to_string(), amount(f.margin_percent)]
    };
    for company in &review.companies {
        let company_id = company.autotask_company_id.map(|id| id.to_string()).unwrap_or_default();
        let [revenue, cost, margin, percent] = figures(&company.figures);
        writer.write_record([
            period.clone(),
            "company".into(),
            text(&company.organization),
            text(&company.customer_number),
            company_id.clone(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            revenue,
            cost,
            margin,
            percent,
            String::new(),
            amount(company.previous_revenue),
            company.change.as_str().into(),
            String::new(),
            String::new(),
            String::new(),
        ])?;
        for sub in &company.subscriptions {
            let [revenue, cost, margin, percent] = figures(&sub.figures);
            writer.write_record([
                period.clone(),
                "subscription".into(),
                text(&company.organization),
                text(&company.customer_number),
                company_id.clone(),
                text(&sub.subscription_id),
                text(&sub.subscription_name),
                text(&sub.service),
                sub.billing.into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                revenue,
                cost,
                margin,
                percent,
                String::new(),
                amount(sub.previous_revenue),
                sub.change.as_str().into(),
                amount(sub.autotask_revenue),
                sub.autotask_status.into(),
                sub.billing_date.map(|d| d.to_string()).unwrap_or_default(),
            ])?;
            for product in &sub.products {
                let [revenue, cost, margin, percent] = figures(&product.figures);
                writer.write_record([
                    period.clone(),
                    "product".into(),
                    text(&company.organization),
                    text(&company.customer_number),
                    company_id.clone(),
                    text(&sub.subscription_id),
                    text(&sub.subscription_name),
                    text(&sub.service),
                    sub.billing.into(),
                    text(&product.item_code),
                    text(&product.product_name),
                    product.units.to_string(),
                    amount(product.unit_price),
                    amount(product.unit_cost),
                    revenue,
                    cost,
                    margin,
                    percent,
                    amount(product.previous_units),
                    amount(product.previous_revenue),
                    product.change.as_str().into(),
                    String::new(),
                    String::new(),
                    sub.billing_date.map(|d| d.to_string()).unwrap_or_default(),
                ])?;
            }
        }
    }
    let totals = &review.totals;
    let [revenue, cost, margin, percent] = figures(&totals.bills);
    let mut total = vec![String::new(); CSV_HEADER.len()];
    total[0] = period;
    total[1] = "total".into();
    total[14] = revenue;
    total[15] = cost;
    total[16] = margin;
    total[17] = percent;
    total[21] = amount(totals.autotask_total);
    total[22] = match totals.difference {
        Some(d) if d.is_zero() => "matches".into(),
        Some(_) => "differs".into(),
        None => "unknown".into(),
    };
    writer.write_record(&total)?;
    let bytes = writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

const TEMPLATE: &str = include_str!("review.html");

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

fn decimal_of(value: &Value) -> Result<Decimal, minijinja::Error> {
    let text = value.to_string();
    Decimal::from_str(&text).map_err(|_| {
        minijinja::Error::new(ErrorKind::InvalidOperation, format!("not an amount: {text:?}"))
    })
}

pub fn html(review: &Review, generated_at: &str) -> Result<String, RenderError> {
    let mut env = Environment::new();
    // The name ends in .html: minijinja escapes every value for HTML unless marked safe, and
    // this template marks nothing safe.
    env.add_template("review.html", TEMPLATE)?;
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
    let template = env.get_template("review.html")?;
    let charts = charts::charts(review);
    let left_out_exceptions = review
        .exceptions
        .iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "unlinked_organization" | "unmapped_service" | "manual_line_not_billed"
            )
        })
        .count();
    Ok(template.render(minijinja::context! {
        review => Value::from_serialize(review),
        charts => Value::from_serialize(&charts),
        generated_at => generated_at,
        left_out_exceptions => left_out_exceptions,
        version => env!("CARGO_PKG_VERSION"),
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
