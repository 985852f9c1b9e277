//! Test support, compiled only for tests and the `testing` feature (the test kit turns it on;
//! the shipped binary never does): what Autotask does with a plan, and the tenant picklists the
//! tests plan against.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::billing::{BillLine, LineSource};
use crate::diff::Action;
use crate::plan::{Plan, PlanParent};
use crate::rules::*;
use crate::snapshot::{
    Contract, ContractCharge, ContractService, ContractServiceUnit, Picklists, Service, Snapshot,
};

/// The picklists of the simulator's tenant (`cmat-sim`), as a pull reads them: the numbers live
/// tenants show (Monthly = 2). Kept as a fixture so the engine's tests need no simulator; the
/// test kit checks that it is still what `cmat-sim` serves.
pub fn reference_picklists() -> Picklists {
    serde_json::from_str(include_str!("../../../fixtures/reference-picklists.json"))
        .expect("fixtures/reference-picklists.json is a Picklists")
}

fn decimal(value: &Value) -> Decimal {
    value.as_str().and_then(|text| text.parse().ok()).unwrap_or_default()
}

fn day(value: &Value) -> NaiveDate {
    value.as_str().and_then(|text| text.parse().ok()).unwrap_or_default()
}

/// Plays a plan against a snapshot as Autotask would: new ids, an adjustment splits the unit
/// periods at its date and creates the contract service when needed.
pub fn play(plan: &Plan, snapshot: &mut Snapshot) {
    let mut ids: BTreeMap<String, i64> = BTreeMap::new();
    let mut next_id = [
        snapshot.contracts.keys().last(),
        snapshot.services.keys().last(),
        snapshot.contract_services.keys().last(),
        snapshot.contract_service_units.keys().last(),
        snapshot.charges.keys().last(),
    ]
    .into_iter()
    .flatten()
    .max()
    .copied()
    .unwrap_or(0)
    .max(1_000_000);
    let mut new_id = || {
        next_id += 1;
        next_id
    };
    for change in &plan.changes {
        let parent = match &change.parent {
            Some(PlanParent::Existing { id, .. }) => Some(*id),
            Some(PlanParent::Planned { reference }) => ids.get(reference).copied(),
            None => None,
        };
        let field = |name: &str| change.fields.get(name).cloned().unwrap_or(Value::Null);
        let reference_id = |value: Value| match value {
            Value::Object(map) => {
                map.get("ref").and_then(Value::as_str).and_then(|r| ids.get(r).copied())
            }
            other => other.as_i64(),
        };
        match (change.entity.as_str(), change.action) {
            ("Contracts", Action::Create) => {
                let id = new_id();
                ids.insert(change.reference.clone(), id);
                snapshot.contracts.insert(
                    id,
                    Contract {
                        id,
                        company_id: field("companyID").as_i64().unwrap_or_default(),
                        contract_name: field("contractName").as_str().unwrap_or_default().into(),
                        contract_type: field("contractType").as_i64().unwrap_or_default(),
                        status: field("status").as_i64().unwrap_or_default(),
                        start_date: day(&field("startDate")),
                        end_date: day(&field("endDate")),
                        service_level_agreement_id: field("serviceLevelAgreementID").as_i64(),
                        contract_category: field("contractCategory").as_i64(),
                        subscription_id: field("userDefinedFields")[0]["value"]
                            .as_str()
                            .map(String::from),
                    },
                );
            }
            ("Contracts", Action::Update) => {
                if let Some(contract) = change.id.and_then(|id| snapshot.contracts.get_mut(&id)) {
                    if let Some(name) = change.fields.get("contractName") {
                        contract.contract_name = name.as_str().unwrap_or_default().into();
                    }
                    if let Some(end) = change.fields.get("endDate") {
                        contract.end_date = day(end);
                    }
                    if let Some(sla) = change.fields.get("serviceLevelAgreementID") {
                        contract.service_level_agreement_id = sla.as_i64();
                    }
                    if let Some(category) = change.fields.get("contractCategory") {
                        contract.contract_category = category.as_i64();
                    }
                }
            }
            ("Services", Action::Create) => {
                let id = new_id();
                ids.insert(change.reference.clone(), id);
                snapshot.services.insert(
                    id,
                    Service {
                        id,
                        name: field("name").as_str().unwrap_or_default().into(),
                        sku: field("sku").as_str().map(String::from),
                        billing_code_id: field("billingCodeID").as_i64().unwrap_or_default(),
                        period_type: field("periodType").as_i64().unwrap_or_default(),
                        unit_price: decimal(&field("unitPrice")),
                        unit_cost: Some(decimal(&field("unitCost"))),
                        is_active: true,
                    },
                );
            }
            ("ContractServiceAdjustments", Action::Adjust) => {
                let (Some(contract_id), Some(service_id)) =
                    (parent, reference_id(field("serviceID")))
                else {
                    continue;
                };
                let effective = day(&field("effectiveDate"));
                let change_units = field("unitChange").as_i64().unwrap_or_default();
                let contract_end =
                    snapshot.contracts.get(&contract_id).map(|c| c.end_date).unwrap_or(effective);
                let existing = snapshot
                    .contract_services
                    .values()
                    .find(|cs| cs.contract_id == contract_id && cs.service_id == service_id)
                    .map(|cs| cs.id);
                let contract_service_id = match existing {
                    Some(id) => id,
                    None => {
                        let id = new_id();
                        snapshot.contract_services.insert(
                            id,
                            ContractService {
                                id,
                                contract_id,
                                service_id,
                                adjusted_price: Some(decimal(&field("adjustedUnitPrice"))),
                                unit_cost: Some(decimal(&field("adjustedUnitCost"))),
                                foreign_currency: false,
                                invoice_description: None,
                            },
                        );
                        id
                    }
                };
                // An adjustment's price and cost become the contract's (Autotask's behaviour).
                if let Some(service) = snapshot.contract_services.get_mut(&contract_service_id) {
                    if let Some(price) = change.fields.get("adjustedUnitPrice") {
                        service.adjusted_price = Some(decimal(price));
                    }
                    if let Some(cost) = change.fields.get("adjustedUnitCost") {
                        service.unit_cost = Some(decimal(cost));
                    }
                }
                // Units in force before the adjustment; a renewed contract's last period runs on.
                let before = snapshot
                    .contract_service_units
                    .values()
                    .filter(|u| u.contract_id == contract_id && u.service_id == service_id)
                    .filter(|u| u.start_date < effective)
                    .max_by_key(|u| u.start_date)
                    .map(|u| u.units)
                    .unwrap_or(0);
                let mut covered = false;
                for unit in snapshot.contract_service_units.values_mut() {
                    if unit.contract_id != contract_id || unit.service_id != service_id {
                        continue;
                    }
                    if unit.start_date < effective && unit.end_date >= effective {
                        unit.end_date = effective.pred_opt().unwrap_or(effective);
                    } else if unit.start_date >= effective {
                        unit.units += change_units;
                        covered |= unit.start_date == effective;
                    }
                }
                if !covered {
                    let id = new_id();
                    snapshot.contract_service_units.insert(
                        id,
                        ContractServiceUnit {
                            id,
                            contract_id,
                            contract_service_id,
                            service_id,
                            start_date: effective,
                            end_date: contract_end,
                            units: before + change_units,
                            price: None,
                            cost: None,
                        },
                    );
                }
            }
            ("ContractServices", Action::Update) => {
                if let Some(service) =
                    change.id.and_then(|id| snapshot.contract_services.get_mut(&id))
                {
                    if let Some(price) = change.fields.get("adjustedPrice") {
                        service.adjusted_price = Some(decimal(price));
                    }
                }
            }
            ("ContractCharges", Action::Create) => {
                let Some(contract_id) = parent else { continue };
                let id = new_id();
                snapshot.charges.insert(
                    id,
                    ContractCharge {
                        id,
                        contract_id,
                        name: field("name").as_str().unwrap_or_default().into(),
                        description: field("description").as_str().map(String::from),
                        date_purchased: day(&field("datePurchased")),
                        charge_type: field("chargeType").as_i64().unwrap_or_default(),
                        unit_quantity: decimal(&field("unitQuantity")),
                        unit_price: decimal(&field("unitPrice")),
                        unit_cost: change.fields.get("unitCost").map(decimal),
                        billing_code_id: field("billingCodeID").as_i64(),
                        is_billed: false,
                    },
                );
            }
            ("ContractCharges", Action::Update) => {
                if let Some(charge) = change.id.and_then(|id| snapshot.charges.get_mut(&id)) {
                    if let Some(price) = change.fields.get("unitPrice") {
                        charge.unit_price = decimal(price);
                    }
                    if let Some(cost) = change.fields.get("unitCost") {
                        charge.unit_cost = Some(decimal(cost));
                    }
                }
            }
            ("ContractCharges", Action::Delete) => {
                if let Some(id) = change.id {
                    snapshot.charges.remove(&id);
                }
            }
            _ => {}
        }
    }
}

fn ruled<T>(value: T) -> Ruled<T> {
    Ruled { value, origin: RuleOrigin { file: "mappings/test.cmat".into(), line: 1 } }
}

fn template(text: &str) -> Template {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map(|i| i + open).expect("closed");
        if open > 0 {
            parts.push(TemplatePart::Text(rest[..open].to_string()));
        }
        parts.push(TemplatePart::Field(
            TemplateField::from_name(&rest[open + 1..close]).expect("field"),
        ));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest.to_string()));
    }
    Template { parts, origin: RuleOrigin { file: "mappings/test.cmat".into(), line: 2 } }
}

/// The default rules (`cmat init`), built by hand so the engine's tests do not depend on the
/// parser.
pub fn default_rules() -> RuleSet {
    RuleSet {
        settings: Settings {
            service_billing_code: ruled(29682801),
            product_billing_code: ruled(29682802),
            service_level_agreement: ruled(1),
            subscription_udf: ruled("Subscription ID".into()),
            contract_type: ruled(PicklistChoice::Label("Recurring Service".into())),
            contract_status: ruled(PicklistChoice::Label("Active".into())),
            timezone: ruled("UTC".into()),
        },
        services: [
            ("Microsoft CSP", BillingKind::Licence),
            ("Microsoft NCE", BillingKind::Licence),
            ("Microsoft Azure", BillingKind::Consumption),
            ("Azure Plan", BillingKind::Consumption),
        ]
        .into_iter()
        .map(|(name, kind)| (name.to_string(), ruled(kind)))
        .collect(),
        companies: CompanyLinks {
            column: Some(ruled("AutotaskCompanyID".into())),
            explicit: BTreeMap::new(),
        },
        contract: ContractRule {
            name: [
                (BillingKind::Licence, template("Microsoft 365 - {organization}")),
                (BillingKind::Consumption, template("Microsoft Azure - {organization}")),
            ]
            .into_iter()
            .collect(),
            start: ruled(ContractStart::FirstBillingDate),
            term_months: ruled(12),
            renewal: ruled(Renewal::Extend),
            category: None,
            period: ruled(PeriodType::Monthly),
        },
        products: ProductRule {
            match_by: ruled(ProductKey::ItemCode),
            explicit: BTreeMap::new(),
            create: Some(ServiceCreateRule {
                name: template("{product}"),
                period_type: ruled(PeriodType::Monthly),
                origin: RuleOrigin { file: "mappings/test.cmat".into(), line: 3 },
            }),
        },
        prices: PriceRule {
            unit_price: ruled(PriceSource::SalesPrice),
            unit_cost: ruled(CostSource::CostPrice),
            scale: ruled(4),
            rounding: ruled(Rounding::HalfUp),
        },
        consumption: ConsumptionRule {
            charge_name: template("Azure consumption {period}"),
            correction_name: template("Azure consumption {period} correction"),
            charge_type: ruled(PicklistChoice::Label("Operational".into())),
        },
        policies: Policies {
            removed_product: ruled(RemovedProduct::ZeroUnits),
            cancelled_subscription: ruled(CancelledSubscription::Report),
            hand_edit: ruled(HandEdit::Overwrite),
            billed_charge_mismatch: ruled(BilledChargeMismatch::Correct),
        },
    }
}

/// A bill line of the default columns; unit cost 80 % of `price`; organization "Unlinked" has no
/// Autotask company.
pub fn line(
    date: &str,
    organization: &str,
    service: &str,
    subscription: &str,
    item: &str,
    quantity: &str,
    price: &str,
) -> BillLine {
    let quantity: Decimal = quantity.parse().expect("quantity");
    let price: Decimal = price.parse().expect("price");
    BillLine {
        source: LineSource { file: "bill.csv".into(), row: 2 },
        billing_date: date.parse().expect("date"),
        service_name: service.into(),
        broker_name: "Broker".into(),
        organization_name: organization.into(),
        customer_number: "C1".into(),
        product_name: format!("Product {item}"),
        item_code: item.into(),
        quantity,
        unit_cost_price: price * Decimal::new(8, 1),
        unit_sales_price: price,
        total_cost: quantity * price * Decimal::new(8, 1),
        total_sales: quantity * price,
        currency_code: "EUR".into(),
        product_id: format!("P-{item}"),
        subscription_id: subscription.into(),
        subscription_name: format!("Sub {subscription}"),
        autotask_company_id: if organization == "Unlinked" { None } else { Some(100) },
        ..Default::default()
    }
}
