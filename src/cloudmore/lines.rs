//! From the report's lines to cmat's [`BillLine`]s and into the store: the one mapping of a
//! report line's fields ([`bill_line`]), the organizations' company links, and the import
//! (the same [`Import`](crate::store::Import) a CSV export goes through: all or nothing).

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use super::report::{Fields, ReportLine};
use crate::import::parse_exact_decimal;
use crate::json_kind::kind;
use crate::store::{ImportSummary, Store, StoreError};
use cmat_engine::billing::{BillLine, LineSource};

/// The name of the organization custom property that links it to an Autotask company.
const COMPANY_PROPERTY: &str = "AutotaskCompanyID";

type RawLine = Fields;

/// An organization as `GET …/organizations` (or its detail) returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    #[serde(deserialize_with = "text_or_number")]
    pub id: String,
    pub name: String,
    #[serde(default, deserialize_with = "optional_text_or_number")]
    pub customer_number: Option<String>,
    /// Absent when the list does not carry them: then the detail is asked.
    #[serde(default)]
    pub custom_properties: Option<Value>,
}

fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected text, found {}", kind(&other)))),
    }
}

fn optional_text_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!("expected text, found {}", kind(&other)))),
    }
}

/// The AutotaskCompanyID property of an organization: `Ok(None)` when it has none (or it is
/// empty), `Err` (a warning's text) when its value or the properties' shape is unusable.
pub fn company_link(organization: &Organization) -> Result<Option<i64>, String> {
    let Some(properties) = &organization.custom_properties else {
        return Ok(None);
    };
    let value = match properties {
        Value::Null => None,
        // [{"name": "AutotaskCompanyID", "value": "…"}]
        Value::Array(items) => {
            let mut found = None;
            for item in items {
                let name = item.get("name").and_then(Value::as_str);
                let Some(name) = name else {
                    return Err("customProperties: an entry without a \"name\"".into());
                };
                if name.trim().eq_ignore_ascii_case(COMPANY_PROPERTY) {
                    found = item.get("value").cloned();
                }
            }
            found
        }
        // {"AutotaskCompanyID": "…"}
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(COMPANY_PROPERTY))
            .map(|(_, v)| v.clone()),
        other => {
            return Err(format!(
                "customProperties is {}, expected a list of {{name, value}}",
                kind(other)
            ))
        }
    };
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("{COMPANY_PROPERTY} is {}", kind(&other))),
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<i64>() {
        Ok(id) if id >= 0 => Ok(Some(id)),
        _ => Err(format!("{COMPANY_PROPERTY} {text:?} is not an Autotask company id")),
    }
}

/// A text field: a JSON string (trimmed) or number; `Ok(None)` when absent or null.
pub(super) fn field_text(line: &RawLine, name: &str) -> Result<Option<String>, String> {
    let Some(raw) = line.get(&name.to_ascii_lowercase()) else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Null) => Ok(None),
        Ok(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Ok(Value::Number(_)) => Ok(Some(raw.get().trim().to_string())),
        Ok(other) => Err(format!("field \"{name}\" is {}, expected text", kind(&other))),
        Err(err) => Err(format!("field \"{name}\": {err}")),
    }
}

/// An amount: a JSON number (read from its text: exact, exponent allowed) or a decimal string.
pub(super) fn field_decimal(line: &RawLine, name: &str) -> Result<Decimal, String> {
    let Some(raw) = line.get(&name.to_ascii_lowercase()) else {
        return Err(format!("field \"{name}\" is missing"));
    };
    let text = raw.get().trim();
    if text.starts_with('"') {
        let value: String =
            serde_json::from_str(text).map_err(|e| format!("field \"{name}\": {e}"))?;
        return parse_exact_decimal(name, value.trim());
    }
    if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
        if text.contains(['e', 'E']) {
            return Decimal::from_scientific(text)
                .map_err(|e| format!("field \"{name}\" {text} cannot be kept exactly ({e})"));
        }
        return parse_exact_decimal(name, text);
    }
    let shown: String = text.chars().take(20).collect();
    Err(format!("field \"{name}\" is {shown}, expected a number or a decimal string"))
}

/// The one mapping from a report line to cmat's billing line (the company link is set by the
/// caller, from the line's organization).
pub fn bill_line(line: &RawLine, source: LineSource) -> Result<BillLine, String> {
    let required = |name: &str| match field_text(line, name)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(format!("field \"{name}\" is missing or empty")),
    };
    let optional = |name: &str| field_text(line, name).map(Option::unwrap_or_default);
    let date_text = required("billingDate")?;
    // "2026-11-01" or a .NET DateTime "2026-11-01T00:00:00(Z|+01:00)": the date part.
    let date_part = date_text.split('T').next().unwrap_or(&date_text);
    let billing_date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d")
        .ok()
        .filter(|_| date_part.len() == 10)
        .ok_or_else(|| format!("field \"billingDate\" {date_text:?} is not an ISO date"))?;
    let subscription_id = optional("subscriptionId")?;
    Ok(BillLine {
        source,
        billing_date,
        service_name: required("serviceName")?,
        broker_name: optional("brokerName")?,
        organization_name: required("organizationName")?,
        customer_number: optional("customerNumber")?,
        product_name: required("productName")?,
        item_code: optional("itemCode")?,
        quantity: field_decimal(line, "quantity")?,
        unit_cost_price: field_decimal(line, "unitCostPrice")?,
        unit_sales_price: field_decimal(line, "unitSalesPrice")?,
        total_cost: field_decimal(line, "totalCost")?,
        total_sales: field_decimal(line, "totalSales")?,
        currency_code: required("currencyCode")?,
        product_id: optional("productId")?,
        subscription_id,
        subscription_name: optional("subscriptionName")?,
        autotask_company_id: None,
        payment_frequency: optional("paymentFrequency")?,
        organization_currency_code: optional("organizationCurrencyCode")?,
        organization_groups: optional("organizationGroups")?,
    })
}

/// The report's lines as bill lines, each with the index of its organization in `organizations`
/// (by id, else by a unique customer number, else by a unique name); every unreadable line is
/// listed as `PATH: reason`.
pub(super) fn bill_lines(
    lines: &[ReportLine],
    organizations: &[Organization],
    file: &str,
) -> Result<Vec<(BillLine, Option<usize>)>, Vec<String>> {
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut by_number: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, organization) in organizations.iter().enumerate() {
        by_id.insert(organization.id.to_ascii_lowercase(), index);
        if let Some(number) = organization.customer_number.as_deref().map(str::trim) {
            if !number.is_empty() {
                by_number.entry(number).or_default().push(index);
            }
        }
        by_name.entry(organization.name.trim()).or_default().push(index);
    }
    let unique = |found: Option<&Vec<usize>>| match found.map(Vec::as_slice) {
        Some([one]) => Some(*one),
        _ => None,
    };
    let mut problems = Vec::new();
    let mut parsed = Vec::with_capacity(lines.len());
    for (index, raw) in lines.iter().enumerate() {
        let source = LineSource { file: file.to_string(), row: index as u64 + 1 };
        match bill_line(&raw.fields, source) {
            Ok(line) => {
                let organization = field_text(&raw.fields, "organizationId")
                    .ok()
                    .flatten()
                    .and_then(|id| by_id.get(&id.to_ascii_lowercase()).copied())
                    .or_else(|| unique(by_number.get(line.customer_number.as_str())))
                    .or_else(|| unique(by_name.get(line.organization_name.as_str())));
                parsed.push((line, organization));
            }
            Err(reason) => problems.push(format!("{}: {reason}", raw.path)),
        }
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}

/// Stores the lines as one import, each organization's link set on its lines; an unusable link
/// is a warning for that organization (its lines import unlinked), never a failed pull.
pub(super) fn store_lines(
    store: &mut Store,
    source_name: &str,
    parsed: Vec<(BillLine, Option<usize>)>,
    organizations: &[Organization],
) -> Result<(ImportSummary, Vec<String>), StoreError> {
    let mut warnings = Vec::new();
    let mut links: HashMap<usize, Option<i64>> = HashMap::new();
    let mut import = store.begin_import(source_name)?;
    for (mut line, organization) in parsed {
        if let Some(index) = organization {
            let link = *links.entry(index).or_insert_with(|| {
                let organization = &organizations[index];
                company_link(organization).unwrap_or_else(|why| {
                    warnings.push(format!(
                        "organization {:?} (id {}): {why}; its lines are imported without a company link",
                        organization.name, organization.id
                    ));
                    None
                })
            });
            line.autotask_company_id = link;
        }
        import.add_line(&line)?;
    }
    Ok((import.finish()?, warnings))
}
