//! Autotask JSON records (camelCase, matched case-insensitively) to and from the domain types
//! of [`cmat_engine::snapshot`]. Money is parsed from the number's text into `Decimal`, never via a
//! float calculation; dates are the calendar date Autotask sent, never shifted by a timezone.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use cmat_engine::snapshot::{
    BillingCode, Company, Contract, ContractCharge, ContractService, ContractServiceUnit, Currency,
    IncompleteRecord, Service,
};

/// A record Autotask sent that does not fit: names the entity, the record id and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entity} {id}: field `{field}`: {message}")]
pub struct RecordError {
    pub entity: String,
    /// The record's id, or "(no id)".
    pub id: String,
    pub field: String,
    pub message: String,
}

/// A view on one JSON record with typed, case-insensitive field access.
pub struct Record<'a> {
    entity: &'a str,
    id: String,
    map: &'a Map<String, Value>,
}

fn describe(value: &Value) -> String {
    let text = match value {
        Value::Null => return "null".into(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let mut shown = value.to_string();
    if shown.len() > 40 {
        let cut = (0..=40).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    format!("{text} ({shown})")
}

impl<'a> Record<'a> {
    pub fn new(entity: &'a str, value: &'a Value) -> Result<Record<'a>, RecordError> {
        let Some(map) = value.as_object() else {
            return Err(RecordError {
                entity: entity.to_string(),
                id: "(no id)".into(),
                field: "(record)".into(),
                message: format!("expected an object, got {}", describe(value)),
            });
        };
        let mut record = Record { entity, id: "(no id)".into(), map };
        let id = record.int("id")?;
        record.id = id.to_string();
        Ok(record)
    }

    fn error(&self, field: &str, message: impl Into<String>) -> RecordError {
        RecordError {
            entity: self.entity.to_string(),
            id: self.id.clone(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The field's value, matched exactly first and then ignoring ASCII case; None if absent.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).or_else(|| {
            self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)).map(|(_, v)| v)
        })
    }

    /// Present and not null.
    fn present(&self, field: &str) -> Option<&'a Value> {
        self.get(field).filter(|v| !v.is_null())
    }

    fn required(&self, field: &str) -> Result<&'a Value, RecordError> {
        match self.get(field) {
            None => Err(self.error(field, "missing")),
            Some(Value::Null) => Err(self.error(field, "is null")),
            Some(v) => Ok(v),
        }
    }

    fn as_int(&self, field: &str, value: &Value) -> Result<i64, RecordError> {
        let parsed = match value {
            Value::Number(n) => n.as_i64().or_else(|| {
                // 12.0 is still the integer 12; 12.5 is not.
                let d = decimal_from_text(&n.to_string())?;
                if d.fract().is_zero() {
                    d.trunc().to_i64()
                } else {
                    None
                }
            }),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| {
            self.error(field, format!("expected an integer, got {}", describe(value)))
        })
    }

    pub fn int(&self, field: &str) -> Result<i64, RecordError> {
        let value = self.required(field)?;
        self.as_int(field, value)
    }

    pub fn opt_int(&self, field: &str) -> Result<Option<i64>, RecordError> {
        self.present(field).map(|v| self.as_int(field, v)).transpose()
    }

    pub fn text(&self, field: &str) -> Result<String, RecordError> {
        match self.required(field)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.error(field, format!("expected text, got {}", describe(other)))),
        }
    }

    /// Text, with absent, null and empty all meaning None.
    pub fn opt_text(&self, field: &str) -> Result<Option<String>, RecordError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.error(field, format!("expected text, got {}", describe(other))))
            }
        }
    }

    pub fn boolean(&self, field: &str) -> Result<bool, RecordError> {
        match self.required(field)? {
            Value::Bool(b) => Ok(*b),
            other => {
                Err(self.error(field, format!("expected true or false, got {}", describe(other))))
            }
        }
    }

    /// A boolean that defaults when absent or null.
    pub fn boolean_or(&self, field: &str, default: bool) -> Result<bool, RecordError> {
        match self.present(field) {
            None => Ok(default),
            Some(_) => self.boolean(field),
        }
    }

    fn as_decimal(&self, field: &str, value: &Value) -> Result<Decimal, RecordError> {
        let parsed = match value {
            Value::Number(n) => decimal_from_text(&n.to_string()),
            Value::String(s) => decimal_from_text(s.trim()),
            _ => None,
        };
        parsed.ok_or_else(|| {
            self.error(field, format!("expected a decimal number, got {}", describe(value)))
        })
    }

    pub fn decimal(&self, field: &str) -> Result<Decimal, RecordError> {
        let value = self.required(field)?;
        self.as_decimal(field, value)
    }

    pub fn opt_decimal(&self, field: &str) -> Result<Option<Decimal>, RecordError> {
        self.present(field).map(|v| self.as_decimal(field, v)).transpose()
    }

    fn as_date(&self, field: &str, value: &Value) -> Result<NaiveDate, RecordError> {
        match value {
            Value::String(s) => date_from_text(s).ok_or_else(|| {
                self.error(field, format!("expected a date like 2026-11-01T00:00:00, got {s:?}"))
            }),
            other => Err(self.error(field, format!("expected a date, got {}", describe(other)))),
        }
    }

    pub fn date(&self, field: &str) -> Result<NaiveDate, RecordError> {
        let value = self.required(field)?;
        self.as_date(field, value)
    }

    /// The value of the user-defined field `name` (matched ignoring case and surrounding
    /// spaces); None when the record has no UDFs, lacks this one, or it is empty.
    pub fn udf(&self, name: &str) -> Result<Option<String>, RecordError> {
        const FIELD: &str = "userDefinedFields";
        let Some(list) = self.present(FIELD) else {
            return Ok(None);
        };
        let Value::Array(list) = list else {
            return Err(self.error(FIELD, format!("expected a list, got {}", describe(list))));
        };
        for entry in list {
            let Some(entry) = entry.as_object() else {
                return Err(self.error(
                    FIELD,
                    format!("expected {{name, value}} entries, got {}", describe(entry)),
                ));
            };
            let entry_name = entry
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("name"))
                .and_then(|(_, v)| v.as_str());
            if entry_name.is_some_and(|n| n.trim().eq_ignore_ascii_case(name.trim())) {
                let value =
                    entry.iter().find(|(k, _)| k.eq_ignore_ascii_case("value")).map(|(_, v)| v);
                return match value {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
                    Some(Value::Number(n)) => Ok(Some(n.to_string())),
                    Some(other) => Err(self.error(
                        &format!("{FIELD}[{name}]"),
                        format!("expected text, got {}", describe(other)),
                    )),
                };
            }
        }
        Ok(None)
    }
}

/// `"12.3400"`, `12.34`, `1e-5` → Decimal. JSON numbers are converted from their shortest
/// round-trip text, which is exact for Autotask's 4-decimal amounts.
pub fn decimal_from_text(text: &str) -> Option<Decimal> {
    if text.is_empty() {
        return None;
    }
    Decimal::from_str(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
        .or_else(|| Decimal::from_scientific(&text.to_ascii_lowercase()).ok())
}

/// `2026-11-01`, `2026-11-01T00:00:00`, `…Z`, `…T00:00:00.000+00:00` → 2026-11-01: the date
/// part as written, with no zone conversion.
pub fn date_from_text(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    let date = text.get(..10)?;
    let rest = &text[10..];
    if !(rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ')) {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// A date as Autotask wants it in a request body: midnight, no zone.
pub fn date_to_api(date: NaiveDate) -> String {
    format!("{}T00:00:00", date.format("%Y-%m-%d"))
}

/// A change stamp (`lastModifiedDateTime`): RFC 3339, or without a zone (then UTC, which is
/// what Autotask stores), with or without fractions. None for anything else.
pub fn timestamp_from_text(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|at| at.and_utc())
}

/// A stamp as a filter value: UTC with milliseconds, the shape Autotask sends.
pub fn timestamp_to_api(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Fields Datto's metadata (generated from a live tenant) marks nullable that cmat needs: a
/// record with one of them null is kept out of the snapshot, never fails a pull.
pub const NULLABLE_NEEDED: [(&str, &str); 4] = [
    ("ContractCharges", "unitPrice"),
    ("ContractServiceUnits", "contractServiceID"),
    ("BillingCodes", "name"),
    ("BillingCodes", "useType"),
];

/// The incomplete record behind `err`, when it is one of [`NULLABLE_NEEDED`] null (or absent)
/// on a record that has an id; anything else stays an error.
pub fn incomplete(err: &RecordError, value: &Value) -> Option<IncompleteRecord> {
    let nullable = NULLABLE_NEEDED
        .iter()
        .any(|(entity, field)| *entity == err.entity && field.eq_ignore_ascii_case(&err.field));
    if !nullable || !(err.message == "is null" || err.message == "missing") {
        return None;
    }
    let record = Record::new(&err.entity, value).ok()?;
    Some(IncompleteRecord {
        entity: err.entity.clone(),
        id: record.int("id").ok()?,
        field: err.field.clone(),
        contract_id: record.opt_int("contractID").ok().flatten(),
    })
}

pub fn company(value: &Value) -> Result<Company, RecordError> {
    let r = Record::new("Companies", value)?;
    Ok(Company {
        id: r.int("id")?,
        company_name: r.text("companyName")?,
        is_active: r.boolean_or("isActive", true)?,
        currency_id: r.opt_int("currencyID")?,
    })
}

pub fn currency(value: &Value) -> Result<Currency, RecordError> {
    let r = Record::new("Currencies", value)?;
    Ok(Currency {
        id: r.int("id")?,
        name: r.text("name")?,
        is_internal: r.boolean_or("isInternalCurrency", false)?,
    })
}

/// `udf_name` is the settings' subscription UDF ("Subscription ID").
pub fn contract(value: &Value, udf_name: &str) -> Result<Contract, RecordError> {
    let r = Record::new("Contracts", value)?;
    Ok(Contract {
        id: r.int("id")?,
        company_id: r.int("companyID")?,
        contract_name: r.text("contractName")?,
        contract_type: r.int("contractType")?,
        status: r.int("status")?,
        start_date: r.date("startDate")?,
        end_date: r.date("endDate")?,
        service_level_agreement_id: r.opt_int("serviceLevelAgreementID")?,
        contract_category: r.opt_int("contractCategory")?,
        subscription_id: r.udf(udf_name)?,
    })
}

pub fn service(value: &Value) -> Result<Service, RecordError> {
    let r = Record::new("Services", value)?;
    Ok(Service {
        id: r.int("id")?,
        name: r.text("name")?,
        sku: r.opt_text("sku")?,
        billing_code_id: r.int("billingCodeID")?,
        period_type: r.int("periodType")?,
        unit_price: r.decimal("unitPrice")?,
        unit_cost: r.opt_decimal("unitCost")?,
        is_active: r.boolean_or("isActive", true)?,
    })
}

/// The contract's price is the adjusted price: queries return it as
/// `internalCurrencyAdjustedPrice` (`adjustedPrice` is read too, should an API version send
/// it), in the tenant's internal currency. `unitPrice` is the Service's catalogue price in the
/// customer's currency and `internalCurrencyUnitPrice` the same in the tenant's: where they
/// differ (multi-currency on), their ratio turns the internal adjusted price into the
/// customer's currency, the one the bill and an adjustment's `adjustedUnitPrice` are in, as a
/// live sync did (API-NOTES). Only when the ratio cannot be known (a zero catalogue price in
/// one currency) is the price marked `foreign_currency`, not compared.
pub fn contract_service(value: &Value) -> Result<ContractService, RecordError> {
    let r = Record::new("ContractServices", value)?;
    let (adjusted_price, foreign_currency) = customer_price(
        r.opt_decimal("adjustedPrice")?,
        r.opt_decimal("internalCurrencyAdjustedPrice")?,
        r.opt_decimal("unitPrice")?,
        r.opt_decimal("internalCurrencyUnitPrice")?,
    );
    Ok(ContractService {
        id: r.int("id")?,
        contract_id: r.int("contractID")?,
        service_id: r.int("serviceID")?,
        adjusted_price,
        unit_cost: r.opt_decimal("unitCost")?,
        foreign_currency,
        invoice_description: r.opt_text("invoiceDescription")?,
    })
}

/// The adjusted price in the customer's currency (4 places, as Autotask stores amounts), and
/// whether it could not be told. `adjustedPrice`, when sent, is already the customer's.
fn customer_price(
    adjusted: Option<Decimal>,
    internal_adjusted: Option<Decimal>,
    customer_unit: Option<Decimal>,
    internal_unit: Option<Decimal>,
) -> (Option<Decimal>, bool) {
    if adjusted.is_some() {
        return (adjusted, false);
    }
    match (internal_adjusted, customer_unit, internal_unit) {
        (Some(price), Some(customer), Some(internal)) if customer != internal => {
            if customer.is_zero() || internal.is_zero() {
                return (internal_adjusted, true);
            }
            let converted = (price * customer / internal).round_dp(4);
            (Some(converted.normalize()), false)
        }
        _ => (internal_adjusted, false),
    }
}

pub fn contract_service_unit(value: &Value) -> Result<ContractServiceUnit, RecordError> {
    let r = Record::new("ContractServiceUnits", value)?;
    Ok(ContractServiceUnit {
        id: r.int("id")?,
        contract_id: r.int("contractID")?,
        contract_service_id: r.int("contractServiceID")?,
        service_id: r.int("serviceID")?,
        start_date: r.date("startDate")?,
        end_date: r.date("endDate")?,
        units: r.int("units")?,
        price: r.opt_decimal("price")?,
        cost: r.opt_decimal("cost")?,
    })
}

/// A charge without a unit cost reads as unknown: an API user without permission to see
/// costs reads every cost as null, and a null must never turn into a correcting charge.
pub fn contract_charge(value: &Value) -> Result<ContractCharge, RecordError> {
    let r = Record::new("ContractCharges", value)?;
    Ok(ContractCharge {
        id: r.int("id")?,
        contract_id: r.int("contractID")?,
        name: r.text("name")?,
        description: r.opt_text("description")?,
        date_purchased: r.date("datePurchased")?,
        charge_type: r.int("chargeType")?,
        unit_quantity: r.decimal("unitQuantity")?,
        unit_price: r.decimal("unitPrice")?,
        unit_cost: r.opt_decimal("unitCost")?,
        billing_code_id: r.opt_int("billingCodeID")?,
        is_billed: r.boolean_or("isBilled", false)?,
    })
}

pub fn billing_code(value: &Value) -> Result<BillingCode, RecordError> {
    let r = Record::new("BillingCodes", value)?;
    Ok(BillingCode {
        id: r.int("id")?,
        name: r.text("name")?,
        use_type: r.int("useType")?,
        is_active: r.boolean_or("isActive", true)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn contract_reads_camel_case_any_case_and_the_udf() {
        let value = json!({
            "id": 4410, "CompanyID": 29683501, "contractName": "Microsoft 365 - Contoso",
            "contractType": 7, "status": 1, "startDate": "2026-11-01T00:00:00",
            "endDate": "2027-10-31T00:00:00.000Z", "serviceLevelAgreementID": null,
            "contractCategory": 3,
            "userDefinedFields": [{"name": "Other", "value": "x"}, {"name": "subscription id", "value": " 6f1c "}]
        });
        let c = contract(&value, "Subscription ID").unwrap();
        assert_eq!(c.company_id, 29683501);
        assert_eq!(c.start_date, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(c.end_date, NaiveDate::from_ymd_opt(2027, 10, 31).unwrap());
        assert_eq!(c.service_level_agreement_id, None);
        assert_eq!(c.contract_category, Some(3));
        assert_eq!(c.subscription_id.as_deref(), Some("6f1c"));

        let mut bare = value.clone();
        bare.as_object_mut().unwrap().remove("userDefinedFields");
        assert_eq!(contract(&bare, "Subscription ID").unwrap().subscription_id, None);
    }

    #[test]
    fn change_stamps_are_utc_whatever_shape_they_come_in() {
        let expected = "2026-10-01T08:00:00.120Z";
        for text in [
            "2026-10-01T08:00:00.12Z",
            "2026-10-01T08:00:00.120",
            "2026-10-01T10:00:00.12+02:00",
            " 2026-10-01T08:00:00.1200000 ",
        ] {
            let at = timestamp_from_text(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(timestamp_to_api(at), expected, "{text}");
        }
        for text in ["", "2026-10-01", "yesterday", "2026-13-01T08:00:00"] {
            assert_eq!(timestamp_from_text(text), None, "{text}");
        }
    }

    #[test]
    fn dates_are_never_shifted() {
        for text in [
            "2026-11-01",
            "2026-11-01T00:00:00",
            "2026-11-01T00:00:00Z",
            "2026-11-01T00:00:00.000Z",
            "2026-11-01T23:30:00-05:00",
        ] {
            assert_eq!(date_from_text(text), NaiveDate::from_ymd_opt(2026, 11, 1), "{text}");
        }
        assert_eq!(date_from_text("2026-11-0"), None);
        assert_eq!(date_from_text("2026-11-01X"), None);
        assert_eq!(date_from_text("01/11/2026"), None);
        assert_eq!(
            date_to_api(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()),
            "2026-01-02T00:00:00"
        );
    }

    #[test]
    fn money_is_exact_from_numbers_and_text() {
        let value: Value = serde_json::from_str(
            r#"{"id":1,"contractID":2,"name":"Azure 2026-11","datePurchased":"2026-11-01T00:00:00",
            "chargeType":1,"unitQuantity":1,"unitPrice":1234.5678,"unitCost":"0.1000",
            "billingCodeID":null,"isBilled":false}"#,
        )
        .unwrap();
        let c = contract_charge(&value).unwrap();
        assert_eq!(c.unit_price, d("1234.5678"));
        assert_eq!(c.unit_cost, Some(d("0.1000")));
        assert_eq!(c.unit_quantity, d("1"));
        assert_eq!(decimal_from_text("1e-5"), Some(d("0.00001")));
        assert_eq!(decimal_from_text("0.1"), Some(d("0.1")));
        assert_eq!(decimal_from_text("abc"), None);
    }

    #[test]
    fn units_accept_integral_numbers_only() {
        let mut value = json!({"id": 9, "contractID": 1, "contractServiceID": 2, "serviceID": 3,
            "startDate": "2026-11-01T00:00:00", "endDate": "2026-11-30T00:00:00",
            "units": 12.0, "price": 10.5, "cost": null});
        assert_eq!(contract_service_unit(&value).unwrap().units, 12);
        value["units"] = json!(12.5);
        let err = contract_service_unit(&value).unwrap_err();
        assert_eq!(err.field, "units");
        assert_eq!(err.id, "9");
    }

    #[test]
    fn errors_name_entity_id_and_field() {
        let err = service(&json!({"id": 812, "name": "E3", "billingCodeID": "x",
            "periodType": 1, "unitPrice": 1}))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Services 812: field `billingCodeID`: expected an integer, got a string (\"x\")"
        );
        let err = service(&json!({"id": 812, "name": "E3", "billingCodeID": 1,
            "periodType": 1, "unitPrice": null}))
        .unwrap_err();
        assert_eq!(err.to_string(), "Services 812: field `unitPrice`: is null");
        let err = company(&json!({"companyName": "x"})).unwrap_err();
        assert_eq!(err.to_string(), "Companies (no id): field `id`: missing");
        let err = company(&json!([1])).unwrap_err();
        assert!(err.to_string().contains("expected an object"), "{err}");
        let err = contract_service(&json!({"id": 5, "contractID": 1, "serviceID": 1,
            "unitPrice": "1.0", "userDefinedFields": 3}))
        .unwrap();
        assert_eq!(
            err.adjusted_price, None,
            "unitPrice is the catalogue price, not the contract's"
        );
    }

    fn live(name: &str) -> Vec<Value> {
        let text = match name {
            "companies" => include_str!("../../fixtures/autotask-live/companies.json"),
            "contracts" => include_str!("../../fixtures/autotask-live/contracts.json"),
            "contract-services" => {
                include_str!("../../fixtures/autotask-live/contract-services.json")
            }
            "contract-charges" => {
                include_str!("../../fixtures/autotask-live/contract-charges.json")
            }
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).expect("fixture is JSON")
    }

    #[test]
    fn live_contracts_open_ended_and_without_udfs() {
        let records = live("contracts");
        let open = contract(&records[0], "Subscription ID").unwrap();
        assert_eq!(open.start_date, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        assert_eq!(open.end_date, NaiveDate::from_ymd_opt(9999, 12, 31).unwrap());
        assert_eq!(open.subscription_id, None, "no userDefinedFields at all");
        let azure = contract(&records[1], "Subscription ID").unwrap();
        assert_eq!(azure.subscription_id.as_deref(), Some("b275c4b1-5258-4492-bad6-f43b34c3a0ac"));
        assert_eq!(azure.end_date, NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
    }

    #[test]
    fn live_contract_services_bill_the_adjusted_price() {
        let records = live("contract-services");
        let plain = contract_service(&records[0]).unwrap();
        assert_eq!(plain.adjusted_price, Some(d("20.6")), "not the catalogue unitPrice 22");
        assert_eq!(plain.unit_cost, Some(d("18.54")));
        assert!(!plain.foreign_currency);
        let foreign = contract_service(&records[1]).unwrap();
        assert!(!foreign.foreign_currency, "a multi-currency price is converted, not unknown");
        let hidden = contract_service(&records[2]).unwrap();
        assert_eq!(hidden.unit_cost, None, "a hidden cost stays unknown");
    }

    #[test]
    fn live_charges_and_companies() {
        let charge = contract_charge(&live("contract-charges")[0]).unwrap();
        assert_eq!(charge.date_purchased, NaiveDate::from_ymd_opt(2026, 10, 1).unwrap());
        assert_eq!(charge.unit_cost, None);
        assert_eq!(charge.unit_price, d("1234.5678"));
        assert!(charge.is_billed);
        let companies: Vec<Company> =
            live("companies").iter().map(|c| company(c).unwrap()).collect();
        assert_eq!(companies[0].id, 0, "the tenant's own company reads like any other");
    }

    #[test]
    fn multi_currency_prices_read_in_the_customers_currency() {
        // The live sync's record (API-NOTES): internal figures 40 times the customer's.
        let live = json!({"id": 1, "contractID": 2, "serviceID": 3, "unitPrice": 34.55,
            "internalCurrencyUnitPrice": 1382, "internalCurrencyAdjustedPrice": 1382});
        let service = contract_service(&live).unwrap();
        assert_eq!((service.adjusted_price, service.foreign_currency), (Some(d("34.55")), false));
        // A contract price away from the catalogue's.
        let repriced = json!({"id": 1, "contractID": 2, "serviceID": 3, "unitPrice": 10,
            "internalCurrencyUnitPrice": 11, "internalCurrencyAdjustedPrice": 13.5802});
        assert_eq!(contract_service(&repriced).unwrap().adjusted_price, Some(d("12.3456")));
        // One currency: the internal price is the price.
        let plain = json!({"id": 1, "contractID": 2, "serviceID": 3, "unitPrice": 22,
            "internalCurrencyUnitPrice": 22, "internalCurrencyAdjustedPrice": 20.6});
        assert_eq!(contract_service(&plain).unwrap().adjusted_price, Some(d("20.6")));
        // No ratio to convert by: unknown, never compared.
        let free = json!({"id": 1, "contractID": 2, "serviceID": 3, "unitPrice": 0,
            "internalCurrencyUnitPrice": 5, "internalCurrencyAdjustedPrice": 40});
        assert!(contract_service(&free).unwrap().foreign_currency);
    }

    #[test]
    fn nullable_fields_make_a_record_incomplete_not_an_error() {
        let charge = json!({"id": 77, "contractID": 4410, "name": "Azure", "datePurchased": "2026-11-01",
            "chargeType": 1, "unitQuantity": 1, "unitPrice": null});
        let err = contract_charge(&charge).unwrap_err();
        let record = incomplete(&err, &charge).expect("incomplete");
        assert_eq!(
            (record.key(), record.field.as_str(), record.contract_id),
            ("ContractCharges/77".to_string(), "unitPrice", Some(4410))
        );
        let unit = json!({"id": 9, "contractID": 1, "contractServiceID": null, "serviceID": 3,
            "startDate": "2026-11-01", "endDate": "2026-11-30", "units": 1});
        let err = contract_service_unit(&unit).unwrap_err();
        assert_eq!(incomplete(&err, &unit).map(|r| r.contract_id), Some(Some(1)));
        let code = json!({"id": 5, "name": "Recurring", "useType": null});
        let err = billing_code(&code).unwrap_err();
        assert_eq!(incomplete(&err, &code).map(|r| r.contract_id), Some(None));
        // A field that is not nullable, or a value of the wrong kind, stays an error.
        let wrong = json!({"id": 5, "name": "Recurring", "useType": "five"});
        assert_eq!(incomplete(&billing_code(&wrong).unwrap_err(), &wrong), None);
        let unit_less = json!({"id": 9, "contractID": 1, "contractServiceID": 2, "serviceID": 3,
            "startDate": "2026-11-01", "endDate": "2026-11-30", "units": null});
        assert_eq!(incomplete(&contract_service_unit(&unit_less).unwrap_err(), &unit_less), None);
    }

    #[test]
    fn billing_codes_and_companies() {
        let b = billing_code(
            &json!({"id": 29682801, "name": "Recurring", "useType": 5, "isActive": true}),
        )
        .unwrap();
        assert_eq!((b.use_type, b.is_active), (5, true));
        let c = company(&json!({"id": 1, "companyName": "Contoso", "isActive": false})).unwrap();
        assert!(!c.is_active);
    }
}
