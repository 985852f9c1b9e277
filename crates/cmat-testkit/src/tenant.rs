//! A deterministic tenant generator for benchmarks and scale tests: Cloudmore bills of a
//! given size, day after day with churn, and the Autotask snapshot those bills lead to.
//! Never used by the commands a customer runs.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value;

use cmat_engine::billing::{BillLine, LineSource};
use cmat_engine::snapshot::{Company, ContractServiceUnit, PicklistEntry, Picklists, Snapshot};
pub use cmat_engine::testing::{play, reference_picklists};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantSize {
    pub organizations: usize,
    /// Licence subscriptions per organization.
    pub licence_subscriptions: usize,
    /// Products (contract services) per licence subscription.
    pub products_per_subscription: usize,
    /// Azure meter lines per organization (one Azure subscription each).
    pub azure_lines: usize,
}

impl TenantSize {
    pub const SMALL: TenantSize = TenantSize {
        organizations: 20,
        licence_subscriptions: 4,
        products_per_subscription: 5,
        azure_lines: 100,
    };
    pub const MEDIUM: TenantSize = TenantSize {
        organizations: 500,
        licence_subscriptions: 4,
        products_per_subscription: 6,
        azure_lines: 100,
    };
    /// 2,000 organizations, 10,000 subscriptions, 50,000 contract services, 200,000 Azure lines.
    pub const LARGE: TenantSize = TenantSize {
        organizations: 2_000,
        licence_subscriptions: 4,
        products_per_subscription: 6,
        azure_lines: 100,
    };
}

/// splitmix64: a tiny, well-known generator; enough for reproducible test data.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub const FIRST_COMPANY_ID: i64 = 30_000_000;
const CATALOG: u64 = 300;

/// The bill lines of `day` (0 = onboarding): licence counts drift by `churn_per_mille` ‰ a day.
pub fn bill_lines(size: TenantSize, day: u32, churn_per_mille: u64) -> Vec<BillLine> {
    let billing_date = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default();
    let mut lines = Vec::with_capacity(
        size.organizations
            * (size.licence_subscriptions * size.products_per_subscription + size.azure_lines),
    );
    let mut row = 1u64;
    for org in 0..size.organizations {
        let organization = format!("Organization {org:05}");
        let company_id = FIRST_COMPANY_ID + org as i64;
        let mut shape = Random(org as u64 + 1);
        let mut push = |service: &str,
                        subscription: String,
                        item: String,
                        quantity: Decimal,
                        price: Decimal| {
            row += 1;
            lines.push(BillLine {
                source: LineSource { file: format!("day-{day}.csv"), row },
                billing_date,
                service_name: service.to_string(),
                broker_name: "Broker".into(),
                organization_name: organization.clone(),
                customer_number: format!("C{org:05}"),
                product_name: format!("Product {item}"),
                item_code: item.clone(),
                quantity,
                unit_cost_price: (price * Decimal::new(85, 2)).round_dp(4),
                unit_sales_price: price,
                total_cost: (quantity * price * Decimal::new(85, 2)).round_dp(4),
                total_sales: (quantity * price).round_dp(4),
                currency_code: "EUR".into(),
                product_id: format!("P-{item}"),
                subscription_id: subscription,
                subscription_name: "Subscription".into(),
                autotask_company_id: Some(company_id),
                ..Default::default()
            });
        };
        for sub in 0..size.licence_subscriptions {
            let subscription = format!("{org:05}-lic-{sub}");
            for product in 0..size.products_per_subscription {
                let item =
                    format!("SKU{:04}", (shape.below(CATALOG) + product as u64 * 7) % CATALOG);
                let mut quantity = 1 + shape.below(50) as i64;
                // Churn: each day, about `churn_per_mille` ‰ of counts move by one or two.
                let mut drift = Random((org * 1_000 + sub * 100 + product) as u64 * 7919);
                for _ in 0..day {
                    if drift.below(1000) < churn_per_mille {
                        quantity = (quantity + drift.below(5) as i64 - 2).max(1);
                    }
                }
                let price = Decimal::new(100 + shape.below(5_000) as i64, 2);
                push("Microsoft NCE", subscription.clone(), item, Decimal::from(quantity), price);
            }
        }
        if size.azure_lines > 0 {
            let subscription = format!("{org:05}-azure");
            for meter in 0..size.azure_lines {
                let quantity = Decimal::new(shape.below(100_000) as i64 + 1, 3);
                let price = Decimal::new(shape.below(50_000) as i64 + 1, 4);
                push(
                    "Azure Plan",
                    subscription.clone(),
                    format!("METER{meter:03}"),
                    quantity,
                    price,
                );
            }
        }
    }
    lines
}

/// The picklists `cmat-sim` serves, as a pull would read them: what
/// `fixtures/reference-picklists.json` (the engine's tests' copy) must stay equal to.
pub fn simulator_picklists() -> Picklists {
    let slas = cmat_sim::Seed::default().slas;
    let entities = cmat_sim::schema::entities(&slas);
    let mut picklists = Picklists::default();
    for (entity, fields) in cmat_engine::picklists::PICKLIST_FIELDS {
        let Some(def) = entities.iter().find(|def| def.name == entity) else { continue };
        for name in fields {
            let Some(values) = def.field(name).and_then(|field| field.picklist.as_ref()) else {
                continue;
            };
            let entries = values
                .iter()
                .filter_map(|value| {
                    Some(PicklistEntry {
                        value: value.value.parse().ok()?,
                        label: value.label.clone(),
                        is_active: value.is_active,
                    })
                })
                .collect();
            picklists.fields.insert(Picklists::key(entity, name), entries);
        }
    }
    picklists
}

/// The companies of a generated tenant, as a snapshot to start from.
pub fn companies(size: TenantSize) -> Snapshot {
    let mut snapshot = Snapshot { picklists: reference_picklists(), ..Snapshot::default() };
    for org in 0..size.organizations {
        let id = FIRST_COMPANY_ID + org as i64;
        snapshot.companies.insert(
            id,
            Company {
                id,
                company_name: format!("Organization {org:05}"),
                is_active: true,
                currency_id: None,
            },
        );
    }
    snapshot
}

const REPORT_HEADER: [&str; 25] = [
    "Billing Date",
    "Service Name",
    "Broker Name",
    "Organization Name",
    "Customer Number",
    "Product Name",
    "Item Code",
    "Quantity",
    "Unit Cost Price",
    "Unit Sales Price",
    "Total Cost",
    "Total Sales",
    "Margin Amount",
    "Margin Percentage",
    "Currency Code",
    "Product ID",
    "Payment Frequency",
    "Purchase Order Number",
    "Subscription ID",
    "Subscription Name",
    "Billing Line Details",
    "Organization Currency Code",
    "Organization Groups",
    "Note",
    "AutotaskCompanyID",
];

/// The lines as a Cloudmore General Billing Report export (every column Cloudmore writes).
pub fn write_bill_csv(to: impl std::io::Write, lines: &[BillLine]) -> std::io::Result<()> {
    let mut out = csv::Writer::from_writer(to);
    out.write_record(REPORT_HEADER)?;
    for l in lines {
        let margin = l.total_sales - l.total_cost;
        let date = l.billing_date.to_string();
        let company = l.autotask_company_id.map(|id| id.to_string());
        out.write_record([
            date.as_str(),
            &l.service_name,
            &l.broker_name,
            &l.organization_name,
            &l.customer_number,
            &l.product_name,
            &l.item_code,
            &l.quantity.to_string(),
            &l.unit_cost_price.to_string(),
            &l.unit_sales_price.to_string(),
            &l.total_cost.to_string(),
            &l.total_sales.to_string(),
            &margin.to_string(),
            "",
            &l.currency_code,
            &l.product_id,
            "Monthly",
            "",
            &l.subscription_id,
            &l.subscription_name,
            "",
            &l.currency_code,
            "",
            "",
            company.as_deref().unwrap_or(""),
        ])?;
    }
    out.flush()
}

/// The newest change stamp of a generated tenant's records: the day before the first bill.
pub const LAST_CHANGED: &str = "2026-10-31T06:15:00Z";

/// The Autotask tenant a snapshot describes, as a `cmat-sim` seed (the API's JSON shape, see
/// `fixtures/autotask-seed.json`): the companies, the two billing codes the default rules use
/// (29682801 Recurring Contract Service, 29682802 Material Cost Code), contracts with their
/// "Subscription ID", services, contract services, one adjustment per change of units (the
/// simulator derives ContractServiceUnits from them) and charges. Ids are kept, so a plan
/// computed against `snapshot` names the seeded records. Records carry change stamps spread
/// over the week before [`LAST_CHANGED`] (by id), as an export of a tenant would: its
/// records were last changed at different moments in the past, not all when the simulator
/// started. For benchmarks: `benches/sync.rs`.
pub fn sim_seed_json(snapshot: &Snapshot, external_request_threshold: u64) -> Value {
    use serde_json::json;
    let last_changed = chrono::DateTime::parse_from_rfc3339(LAST_CHANGED).unwrap_or_default();
    let stamped = |mut record: Value, fields: &[&str]| {
        let id = record["id"].as_i64().unwrap_or(0);
        let at = last_changed - chrono::Duration::minutes(id.rem_euclid(10_000));
        for field in fields {
            record[*field] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        }
        record
    };
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let money = |d: Decimal| d.to_string();
    let companies: Vec<Value> = snapshot
        .companies
        .values()
        .map(|c| {
            let record = json!({"id": c.id, "companyName": c.company_name, "companyType": 1,
                   "ownerResourceID": 29682885, "phone": "+1 555 0100", "isActive": c.is_active});
            stamped(record, &["lastTrackedModifiedDateTime"])
        })
        .collect();
    let billing_codes = json!([
        {"id": 29682801, "name": "Recurring Services - Microsoft", "useType": 5,
         "billingCodeType": 1, "isActive": true},
        {"id": 29682802, "name": "Cloud Consumption - Azure", "useType": 4,
         "billingCodeType": 1, "isActive": true},
    ]);
    let contracts: Vec<Value> = snapshot
        .contracts
        .values()
        .map(|c| {
            let mut record = json!({
                "id": c.id, "companyID": c.company_id, "contractName": c.contract_name,
                "contractType": c.contract_type, "status": c.status,
                "startDate": day(c.start_date), "endDate": day(c.end_date),
                "timeReportingRequiresStartAndStopTimes": 0,
            });
            if let Some(sla) = c.service_level_agreement_id {
                record["serviceLevelAgreementID"] = json!(sla);
            }
            if let Some(category) = c.contract_category {
                record["contractCategory"] = json!(category);
            }
            if let Some(subscription) = &c.subscription_id {
                record["userDefinedFields"] =
                    json!([{"name": "Subscription ID", "value": subscription}]);
            }
            stamped(record, &["lastModifiedDateTime"])
        })
        .collect();
    let services: Vec<Value> = snapshot
        .services
        .values()
        .map(|s| {
            let record = json!({"id": s.id, "name": s.name, "sku": s.sku,
                   "billingCodeID": s.billing_code_id, "periodType": s.period_type,
                   "unitPrice": money(s.unit_price), "unitCost": s.unit_cost.map(money),
                   "isActive": s.is_active});
            stamped(record, &["lastModifiedDate"])
        })
        .collect();
    let contract_services: Vec<Value> = snapshot
        .contract_services
        .values()
        .map(|cs| {
            // The catalogue price is the Service's; the contract's own is the adjusted price.
            let catalogue = snapshot.services.get(&cs.service_id).map(|s| money(s.unit_price));
            json!({"id": cs.id, "contractID": cs.contract_id, "serviceID": cs.service_id,
                   "unitPrice": catalogue, "adjustedPrice": cs.adjusted_price.map(money),
                   "unitCost": cs.unit_cost.map(money)})
        })
        .collect();
    // Unit periods back to adjustments: one per change of units, at the period's start.
    let mut periods: BTreeMap<i64, Vec<&ContractServiceUnit>> = BTreeMap::new();
    for unit in snapshot.contract_service_units.values() {
        periods.entry(unit.contract_service_id).or_default().push(unit);
    }
    let mut adjustments = Vec::new();
    for (contract_service_id, mut units) in periods {
        units.sort_by_key(|u| (u.start_date, u.id));
        let mut previous = 0;
        for unit in units {
            if unit.units != previous {
                adjustments.push(json!({
                    "contractID": unit.contract_id, "contractServiceID": contract_service_id,
                    "serviceID": unit.service_id, "effectiveDate": day(unit.start_date),
                    "unitChange": unit.units - previous,
                }));
                previous = unit.units;
            }
        }
    }
    let charges: Vec<Value> = snapshot
        .charges
        .values()
        .map(|c| {
            let record = json!({"id": c.id, "contractID": c.contract_id, "name": c.name,
                   "description": c.description, "datePurchased": day(c.date_purchased),
                   "chargeType": c.charge_type, "unitQuantity": money(c.unit_quantity),
                   "unitPrice": money(c.unit_price), "unitCost": c.unit_cost.map(money),
                   "billingCodeID": c.billing_code_id});
            stamped(record, &["lastModifiedDateTime", "statusLastModifiedDate"])
        })
        .collect();
    json!({
        "credentials": {"username": "bench@example.com", "secret": "bench-secret",
                        "integrationCode": "BENCHCODE"},
        "threshold": {"externalRequestThreshold": external_request_threshold},
        "contractUserDefinedFields": ["Subscription ID"],
        "serviceLevelAgreements": [
            {"value": "1", "label": "Standard", "isActive": true, "isDefaultValue": true}
        ],
        "Companies": companies,
        "BillingCodes": billing_codes,
        "Contracts": contracts,
        "Services": services,
        "ContractServices": contract_services,
        "ContractServiceAdjustments": adjustments,
        "ContractCharges": charges,
    })
}
