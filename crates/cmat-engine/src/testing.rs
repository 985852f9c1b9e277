//! Test support, compiled only for tests and the `testing` feature (the test kit turns it on;
//! the shipped binary never does): what Autotask does with a plan, and the tenant picklists the
//! tests plan against.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::billing::{BillLine, LineSource};
use crate::plan::Plan;
use crate::rules::*;
use crate::snapshot::{
    Contract, ContractCharge, ContractService, ContractServiceUnit, Picklists, Service, Snapshot,
};
use crate::write::{Ref, Write};

/// The picklists of the simulator's tenant (`cmat-sim`), as a pull reads them: the numbers live
/// tenants show (Monthly = 2). Kept as a fixture so the engine's tests need no simulator; the
/// test kit checks that it is still what `cmat-sim` serves.
pub fn reference_picklists() -> Picklists {
    serde_json::from_str(include_str!("../../../fixtures/reference-picklists.json"))
        .expect("fixtures/reference-picklists.json is a Picklists")
}

/// Plays a plan against a snapshot as Autotask would: new ids, an adjustment splits the unit
/// periods at its date and creates the contract service when needed; a period's price is the
/// one the latest adjustment up to its start set (assumed of Autotask's per-period `price`,
/// to check on a real tenant; the simulator shows the current price on every period). What Autotask refuses
/// is left out, as there ([`play_checked`] says what).
pub fn play(plan: &Plan, snapshot: &mut Snapshot) {
    play_checked(plan, snapshot);
}

/// [`play`], returning what Autotask would refuse, one message per write: a second adjustment
/// of one contract service on one day ("duplicate key row in contract_service_period"), an
/// adjustment dated outside its contract's start and end dates, one taking the units below
/// zero. In this model every unit period starts with an adjustment, so a period starting on a
/// day is an adjustment on that day.
pub fn play_checked(plan: &Plan, snapshot: &mut Snapshot) -> Vec<String> {
    let mut refused = Vec::new();
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
        // Refs to records this play created; a ref to one it did not is skipped, as Autotask
        // would refuse it.
        let Ok(write) =
            change.write.map_refs(|Ref(reference)| ids.get(reference).copied().ok_or(()))
        else {
            continue;
        };
        match write {
            Write::CreateContract(new) => {
                let id = new_id();
                ids.insert(change.reference.clone(), id);
                snapshot.contracts.insert(
                    id,
                    Contract {
                        id,
                        company_id: new.company_id,
                        contract_name: new.name,
                        contract_type: new.contract_type,
                        status: new.status,
                        start_date: new.start_date,
                        end_date: new.end_date,
                        service_level_agreement_id: Some(new.service_level_agreement_id),
                        contract_category: new.category,
                        subscription_id: Some(new.subscription),
                    },
                );
            }
            Write::UpdateContract { id, edits } => {
                if let Some(contract) = snapshot.contracts.get_mut(&id) {
                    if let Some(name) = edits.name {
                        contract.contract_name = name.new;
                    }
                    if let Some(end) = edits.end_date {
                        contract.end_date = end.new;
                    }
                    if let Some(sla) = edits.service_level_agreement_id {
                        contract.service_level_agreement_id = Some(sla.new);
                    }
                    if let Some(category) = edits.category {
                        contract.contract_category = Some(category.new);
                    }
                    if let Some(udf) = edits.subscription {
                        contract.subscription_id = Some(udf.edit.new);
                    }
                }
            }
            Write::CreateService(new) => {
                let id = new_id();
                ids.insert(change.reference.clone(), id);
                snapshot.services.insert(
                    id,
                    Service {
                        id,
                        name: new.name,
                        sku: Some(new.sku),
                        billing_code_id: new.billing_code_id,
                        period_type: new.period_type.unwrap_or_default(),
                        unit_price: new.unit_price,
                        unit_cost: Some(new.unit_cost),
                        is_active: true,
                    },
                );
            }
            Write::AdjustContractService(adjustment) => {
                let (contract_id, service_id) = (adjustment.contract.id(), adjustment.service.id());
                let effective = adjustment.effective_date;
                let (contract_start, contract_end) = snapshot
                    .contracts
                    .get(&contract_id)
                    .map(|c| (c.start_date, c.end_date))
                    .unwrap_or((effective, effective));
                if effective < contract_start || effective > contract_end {
                    refused.push(format!(
                        "{}: effectiveDate {effective} must lie within the contract's start and end dates ({contract_start}..{contract_end})",
                        change.reference
                    ));
                    continue;
                }
                let steps = match adjusted_steps(snapshot, contract_id, service_id, &adjustment) {
                    Ok(steps) => steps,
                    Err(refusal) => {
                        refused.push(format!("{}: {refusal}", change.reference));
                        continue;
                    }
                };
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
                                adjusted_price: Some(adjustment.adjusted_unit_price),
                                unit_cost: Some(adjustment.adjusted_unit_cost),
                                foreign_currency: false,
                                invoice_description: None,
                            },
                        );
                        id
                    }
                };
                // An adjustment's price and cost become the contract's (Autotask's behaviour).
                if let Some(service) = snapshot.contract_services.get_mut(&contract_service_id) {
                    service.adjusted_price = Some(adjustment.adjusted_unit_price);
                    service.unit_cost = Some(adjustment.adjusted_unit_cost);
                }
                // The periods again, from the steps: each runs to the next one's start, the
                // last to the contract's end (a renewed contract's last period runs on).
                let old: BTreeMap<chrono::NaiveDate, i64> = snapshot
                    .contract_service_units
                    .values()
                    .filter(|u| u.contract_id == contract_id && u.service_id == service_id)
                    .map(|u| (u.start_date, u.id))
                    .collect();
                snapshot
                    .contract_service_units
                    .retain(|_, u| u.contract_id != contract_id || u.service_id != service_id);
                for (index, (start, units, price)) in steps.iter().enumerate() {
                    let end = match steps.get(index + 1) {
                        Some((next, _, _)) => next.pred_opt().unwrap_or(*next),
                        None => contract_end.max(*start),
                    };
                    let id = old.get(start).copied().unwrap_or_else(&mut new_id);
                    snapshot.contract_service_units.insert(
                        id,
                        ContractServiceUnit {
                            id,
                            contract_id,
                            contract_service_id,
                            service_id,
                            start_date: *start,
                            end_date: end,
                            units: *units,
                            price: *price,
                            cost: None,
                        },
                    );
                }
            }
            Write::CreateCharge { contract, charge } => {
                let id = new_id();
                snapshot.charges.insert(
                    id,
                    ContractCharge {
                        id,
                        contract_id: contract.id(),
                        name: charge.name,
                        description: Some(charge.description),
                        date_purchased: charge.date_purchased,
                        charge_type: charge.charge_type,
                        unit_quantity: charge.unit_quantity,
                        unit_price: charge.unit_price,
                        unit_cost: charge.unit_cost,
                        billing_code_id: Some(charge.billing_code_id),
                        is_billed: false,
                    },
                );
            }
            Write::UpdateCharge { id, edits, .. } => {
                let crate::write::ChargeEdits { unit_price, unit_cost } = edits;
                if let Some(charge) = snapshot.charges.get_mut(&id) {
                    if let Some(price) = unit_price {
                        charge.unit_price = price.new;
                    }
                    if let Some(cost) = unit_cost {
                        charge.unit_cost = Some(cost.new);
                    }
                }
            }
            Write::DeleteCharge { id, .. } => {
                // Autotask deletes only an unbilled charge.
                if snapshot.charges.get(&id).is_some_and(|charge| !charge.is_billed) {
                    snapshot.charges.remove(&id);
                }
            }
        }
    }
    refused
}

/// A contract service's unit periods as steps (start, units, price) with an adjustment added,
/// as Autotask keeps them: the units on a date are the sum of the adjustments up to it; a
/// period's price is the one the latest adjustment up to its start set. Refused as Autotask
/// would: a second adjustment on one day, or units below zero from some day on.
fn adjusted_steps(
    snapshot: &Snapshot,
    contract_id: i64,
    service_id: i64,
    adjustment: &crate::write::Adjustment<i64>,
) -> Result<Vec<(chrono::NaiveDate, i64, Option<Decimal>)>, String> {
    let effective = adjustment.effective_date;
    let mut periods: Vec<&ContractServiceUnit> = snapshot
        .contract_service_units
        .values()
        .filter(|u| u.contract_id == contract_id && u.service_id == service_id)
        .collect();
    periods.sort_by_key(|u| (u.start_date, u.id));
    if periods.iter().any(|u| u.start_date == effective) {
        return Err(format!(
            "duplicate key row in contract_service_period for service {service_id} of contract {contract_id} on {effective}"
        ));
    }
    // Adjustments as (date, change, price) from the periods, then the new one among them.
    let mut changes: Vec<(chrono::NaiveDate, i64, Option<Decimal>)> = Vec::new();
    let mut previous = 0;
    for unit in &periods {
        changes.push((unit.start_date, unit.units - previous, unit.price));
        previous = unit.units;
    }
    changes.push((effective, adjustment.unit_change, Some(adjustment.adjusted_unit_price)));
    changes.sort_by_key(|(date, _, _)| *date);
    let mut steps = Vec::new();
    let (mut units, mut price) = (0, None);
    for (date, change, step_price) in changes {
        units += change;
        if units < 0 {
            return Err(format!(
                "the adjustment on {effective} would take the units below 0 on {date}"
            ));
        }
        price = step_price.or(price);
        steps.push((date, units, price));
    }
    Ok(steps)
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
            line_of_business: None,
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
            per_term: None,
        },
        prices: PriceRule {
            unit_price: ruled(PriceSource::SalesPrice),
            unit_cost: ruled(CostSource::CostPrice),
            scale: ruled(4),
            rounding: ruled(Rounding::HalfUp),
            margin_floor: None,
            price_point: None,
            max_price: None,
            margin_policy: ruled(MarginPolicy::Warn),
            margin_policy_written: false,
        },
        consumption: ConsumptionRule {
            charge_name: template("Azure consumption {period}"),
            correction_name: template("Azure consumption {period} correction"),
            charge_type: ruled(PicklistChoice::Label("Operational".into())),
            split: ruled(ConsumptionSplit::Subscription),
        },
        policies: Policies {
            removed_product: ruled(RemovedProduct::ZeroUnits),
            cancelled_subscription: ruled(CancelledSubscription::Report),
            hand_edit: ruled(HandEdit::Overwrite),
            billed_charge_mismatch: ruled(BilledChargeMismatch::Correct),
            decrease: ruled(DecreaseTiming::BillingDate),
            skip_zero_amount: None,
        },
        scoped: Vec::new(),
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
