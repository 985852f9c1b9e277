//! The naive baseline: what a hand-written sync script does, with the same client library
//! (same retries, same 3-requests-in-flight cap, same threshold checks) but no snapshot.
//!
//! Once at start it reads the Services (to find a sku's service), then for each subscription
//! on the bill, three at a time:
//! - licence: query its contract by the "Subscription ID" UDF, its contract services and its
//!   unit periods (one query each), then one adjustment per product whose units differ on the
//!   Billing Date and one update per contract service whose price differs;
//! - consumption (Azure): query its contract and its charges, then create or update the one
//!   charge of the Billing Date.
//!
//! A missing contract or service is created (no reads follow for a new contract). Like cmat,
//! an adjustment refused as a same-day duplicate goes again on the next day.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{Months, NaiveDate};
use cmat::autotask::{AutotaskClient, Condition, Filter};
use cmat_engine::billing::BillLine;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{PRODUCT_BILLING_CODE, SERVICE_BILLING_CODE, SLA};

/// Services' `periodType` for Monthly, as the simulator's picklist (and a live tenant's, API
/// notes) has it: a hand-written script looks it up once and writes it down.
const MONTHLY: i64 = 2;

#[derive(Debug, Default)]
pub struct NaiveReport {
    pub subscriptions: usize,
    pub writes_ok: u64,
    pub failures: Vec<String>,
}

fn int(value: &Value, field: &str) -> Option<i64> {
    value.get(field).and_then(Value::as_i64)
}

fn decimal(value: &Value, field: &str) -> Option<Decimal> {
    match value.get(field)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

fn date(value: &Value, field: &str) -> Option<NaiveDate> {
    value.get(field)?.as_str().and_then(|s| s.get(..10)).and_then(|s| s.parse().ok())
}

fn filter(condition: Condition) -> Filter {
    Filter::new(condition).expect("a valid filter")
}

struct Naive<'a> {
    client: &'a AutotaskClient,
    services: Mutex<HashMap<String, i64>>,
    writes_ok: AtomicU64,
    failures: Mutex<Vec<String>>,
}

pub fn run(client: &AutotaskClient, lines: &[BillLine]) -> NaiveReport {
    let mut by_subscription: BTreeMap<&str, Vec<&BillLine>> = BTreeMap::new();
    for line in lines {
        by_subscription.entry(line.subscription_id.as_str()).or_default().push(line);
    }
    let subscriptions: Vec<(&str, Vec<&BillLine>)> = by_subscription.into_iter().collect();
    let mut services = HashMap::new();
    match client.query("Services", &Filter::all()) {
        Ok(rows) => {
            for row in rows {
                if let (Some(id), Some(sku)) =
                    (int(&row, "id"), row.get("sku").and_then(Value::as_str))
                {
                    services.insert(sku.to_string(), id);
                }
            }
        }
        Err(err) => panic!("naive: cannot read Services: {err}"),
    }
    let naive = Naive {
        client,
        services: Mutex::new(services),
        writes_ok: AtomicU64::new(0),
        failures: Mutex::new(Vec::new()),
    };
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some((subscription, lines)) = subscriptions.get(index) else {
                    return;
                };
                if let Err(message) = naive.subscription(subscription, lines) {
                    naive
                        .failures
                        .lock()
                        .expect("failures")
                        .push(format!("{subscription}: {message}"));
                }
            });
        }
    });
    NaiveReport {
        subscriptions: subscriptions.len(),
        writes_ok: naive.writes_ok.into_inner(),
        failures: naive.failures.into_inner().expect("failures"),
    }
}

impl Naive<'_> {
    fn create(&self, path: &str, body: &Value) -> Result<Option<i64>, String> {
        let id = self.client.create(path, body).map_err(|e| e.to_string())?;
        self.writes_ok.fetch_add(1, Ordering::SeqCst);
        Ok(id)
    }

    fn update(&self, path: &str, body: &Value) -> Result<(), String> {
        self.client.update(path, body).map_err(|e| e.to_string())?;
        self.writes_ok.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn query(&self, entity: &str, filter: &Filter) -> Result<Vec<Value>, String> {
        self.client.query(entity, filter).map_err(|e| e.to_string())
    }

    fn subscription(&self, subscription: &str, lines: &[&BillLine]) -> Result<(), String> {
        let first = lines[0];
        let licence = matches!(first.service_name.as_str(), "Microsoft CSP" | "Microsoft NCE");
        let billing_date = first.billing_date;
        let company = first.autotask_company_id.ok_or("no AutotaskCompanyID")?;
        let found =
            self.query("Contracts", &filter(Condition::eq("Subscription ID", subscription).udf()))?;
        let (contract_id, new_contract) = match found.first().and_then(|c| int(c, "id")) {
            Some(id) => (id, false),
            None => {
                let name = if licence {
                    format!("Microsoft 365 - {}", first.organization_name)
                } else {
                    format!("Microsoft Azure - {}", first.organization_name)
                };
                let end = billing_date
                    .checked_add_months(Months::new(12))
                    .and_then(|d| d.pred_opt())
                    .unwrap_or(billing_date);
                let body = json!({
                    "companyID": company, "contractName": name, "contractType": 7, "status": 1,
                    "startDate": billing_date.to_string(), "endDate": end.to_string(),
                    "serviceLevelAgreementID": SLA, "timeReportingRequiresStartAndStopTimes": 0,
                    "userDefinedFields": [{"name": "Subscription ID", "value": subscription}],
                });
                let id =
                    self.create("Contracts", &body)?.ok_or("contract created without an id")?;
                (id, true)
            }
        };
        if licence {
            self.licences(contract_id, new_contract, billing_date, lines)
        } else {
            self.consumption(contract_id, new_contract, billing_date, lines)
        }
    }

    fn service_id(&self, line: &BillLine) -> Result<i64, String> {
        let mut services = self.services.lock().map_err(|e| e.to_string())?;
        if let Some(id) = services.get(&line.item_code) {
            return Ok(*id);
        }
        let body = json!({
            "name": line.product_name, "sku": line.item_code, "billingCodeID": SERVICE_BILLING_CODE,
            "periodType": MONTHLY, "unitPrice": line.unit_sales_price.to_string(),
            "unitCost": line.unit_cost_price.to_string(), "isActive": true,
        });
        let id = self.create("Services", &body)?.ok_or("service created without an id")?;
        services.insert(line.item_code.clone(), id);
        Ok(id)
    }

    fn licences(
        &self,
        contract_id: i64,
        new_contract: bool,
        billing_date: NaiveDate,
        lines: &[&BillLine],
    ) -> Result<(), String> {
        let (contract_services, units) = if new_contract {
            (Vec::new(), Vec::new())
        } else {
            let by_contract = filter(Condition::eq("contractID", contract_id));
            (
                self.query("ContractServices", &by_contract)?,
                self.query("ContractServiceUnits", &by_contract)?,
            )
        };
        let mut wanted: BTreeMap<&str, (i64, &BillLine)> = BTreeMap::new();
        for line in lines {
            let entry = wanted.entry(line.item_code.as_str()).or_insert((0, line));
            entry.0 += line.quantity.trunc().try_into().unwrap_or(0i64);
        }
        for (count, line) in wanted.values() {
            let service_id = self.service_id(line)?;
            let on_contract =
                contract_services.iter().find(|cs| int(cs, "serviceID") == Some(service_id));
            let current = units
                .iter()
                .filter(|u| int(u, "serviceID") == Some(service_id))
                .filter(|u| date(u, "startDate").is_some_and(|d| d <= billing_date))
                .filter(|u| date(u, "endDate").is_none_or(|d| d >= billing_date))
                .filter_map(|u| int(u, "units"))
                .next_back()
                .unwrap_or(0);
            let change = count - current;
            // A contract service's own price is read-only: like a live integration, the script
            // moves it with an adjustment (of 0 units when the count stays).
            let price_moved = on_contract.is_some_and(|cs| {
                decimal(cs, "internalCurrencyAdjustedPrice") != Some(line.unit_sales_price)
            });
            if change != 0 || price_moved {
                let mut body = json!({
                    "contractID": contract_id, "serviceID": service_id,
                    "effectiveDate": billing_date.to_string(), "unitChange": change,
                });
                if on_contract.is_none() || price_moved {
                    body["adjustedUnitPrice"] = json!(line.unit_sales_price.to_string());
                    body["adjustedUnitCost"] = json!(line.unit_cost_price.to_string());
                }
                let path = format!("Contracts/{contract_id}/ServiceAdjustments");
                if let Err(message) = self.create(&path, &body) {
                    if !message.contains("duplicate") {
                        return Err(message);
                    }
                    let next = billing_date.succ_opt().unwrap_or(billing_date);
                    body["effectiveDate"] = json!(next.to_string());
                    self.create(&path, &body)?;
                }
            }
        }
        Ok(())
    }

    fn consumption(
        &self,
        contract_id: i64,
        new_contract: bool,
        billing_date: NaiveDate,
        lines: &[&BillLine],
    ) -> Result<(), String> {
        let charges = if new_contract {
            Vec::new()
        } else {
            self.query("ContractCharges", &filter(Condition::eq("contractID", contract_id)))?
        };
        let price: Decimal = lines.iter().map(|l| l.total_sales).sum();
        let cost: Decimal = lines.iter().map(|l| l.total_cost).sum();
        let name = format!("Azure consumption {}", billing_date.format("%Y-%m"));
        let existing = charges.iter().find(|c| {
            date(c, "datePurchased") == Some(billing_date)
                && c.get("name").and_then(Value::as_str) == Some(name.as_str())
        });
        match existing {
            None => {
                let body = json!({
                    "contractID": contract_id, "name": name, "datePurchased": billing_date.to_string(),
                    "chargeType": 1, "unitQuantity": "1", "unitPrice": price.to_string(),
                    "unitCost": cost.to_string(), "billingCodeID": PRODUCT_BILLING_CODE,
                });
                self.create(&format!("Contracts/{contract_id}/Charges"), &body)?;
            }
            Some(charge)
                if decimal(charge, "unitPrice") != Some(price)
                    || decimal(charge, "unitCost") != Some(cost) =>
            {
                let body = json!({"id": int(charge, "id"), "unitPrice": price.to_string(),
                                  "unitCost": cost.to_string()});
                self.update(&format!("Contracts/{contract_id}/Charges"), &body)?;
            }
            Some(_) => {}
        }
        Ok(())
    }
}
