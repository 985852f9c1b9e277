//! The diff: desired state against the Autotask snapshot, by natural keys only (the
//! "Subscription ID" UDF, contract + service, contract + date purchased + name), never by
//! names or fuzzy matching. A pure function: same inputs, same changes, same order.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::desired::{
    covering_end_date, DesiredCharge, DesiredContract, DesiredContractService, DesiredState,
    Warning,
};
use crate::picklists::TenantValues;
use crate::rules::{
    BilledChargeMismatch, BillingKind, CancelledSubscription, DecreaseTiming, HandEdit,
    RemovedProduct, Renewal, RuleOrigin, RuleSet, TemplateField,
};
use crate::snapshot::{Contract, ContractCharge, ContractService, ContractServiceUnit, Snapshot};

mod wording;
use wording::contract_label;

// Autotask's maximum lengths for the text fields cmat writes (entityInformation/fields).
/// Contracts.contractName's length: a longer name is shortened, with a warning.
pub const CONTRACT_NAME_MAX: usize = 100;
/// Services.name's length: a created Service's name is shortened to it.
pub const SERVICE_NAME_MAX: usize = 150;
/// ContractCharges.name's length: charge and correction names are shortened to it.
pub const CHARGE_NAME_MAX: usize = 100;

pub use crate::write::{Action, Entity};
use crate::write::{
    Adjustment, ContractEdits, Edit, Id, NaturalKey, NewCharge, NewContract, NewService, Write,
};

/// One write the plan asks for, with why: the rule behind it and a reason for people. Planned
/// records are named by their natural key until the plan numbers them.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The record's natural key: what the plan names it by and orders it by.
    pub key: NaturalKey,
    /// The write itself, parents named by natural key.
    pub write: Write<NaturalKey>,
    /// The mapping rule behind the write, so a person can find why it is planned.
    pub rule: RuleOrigin,
    /// Why, in words, for the text plan and explain.
    pub reason: String,
    /// For grouping in the text plan: the Autotask company and the contract's label.
    pub company_id: i64,
    /// The contract's name, subscription and id (when it exists) in the text plan.
    pub contract_label: String,
}

/// The diff's outcome: the writes to make, how many records already agree, and what a
/// person must hear about (the desired state's warnings included).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// The writes, in the order the plan lists them (phase, key, action).
    pub changes: Vec<Change>,
    /// Records compared and found in step: the plan's "unchanged" count.
    pub unchanged: u64,
    /// Sorted and without duplicates.
    pub warnings: Vec<Warning>,
}

/// A money amount as Autotask stores it: at the rules' scale (4 places), so "5.5" reads
/// "5.5000" like Autotask's, in the plan as in the request.
pub fn scaled(value: Decimal, scale: u32) -> Decimal {
    let mut rounded = value.round_dp(scale);
    rounded.rescale(scale);
    rounded
}

/// An amount at the rules' scale, as text.
pub fn amount(value: Decimal, scale: u32) -> String {
    scaled(value, scale).to_string()
}

/// The first `max` characters of `text`, cut on a character boundary, never inside one.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Lookups over the snapshot by natural key, built once per diff.
struct SnapshotIndex<'a> {
    contracts_by_subscription: BTreeMap<&'a str, &'a Contract>,
    /// Subscriptions more than one contract carries, with their contract ids.
    duplicated_subscriptions: BTreeMap<&'a str, Vec<i64>>,
    services_by_sku: BTreeMap<String, i64>,
    contract_services: BTreeMap<(i64, i64), &'a ContractService>,
    units: BTreeMap<(i64, i64), Vec<&'a ContractServiceUnit>>,
    charges_by_contract: BTreeMap<i64, Vec<&'a ContractCharge>>,
}

impl<'a> SnapshotIndex<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        let (contracts_by_subscription, duplicated_subscriptions) =
            contracts_by_subscription(snapshot);
        let mut contract_services = BTreeMap::new();
        for service in snapshot.contract_services.values() {
            contract_services.entry((service.contract_id, service.service_id)).or_insert(service);
        }
        let mut units: BTreeMap<(i64, i64), Vec<_>> = BTreeMap::new();
        for unit in snapshot.contract_service_units.values() {
            units.entry((unit.contract_id, unit.service_id)).or_default().push(unit);
        }
        for periods in units.values_mut() {
            periods.sort_by_key(|unit| (unit.start_date, unit.id));
        }
        let mut charges_by_contract: BTreeMap<i64, Vec<_>> = BTreeMap::new();
        for charge in snapshot.charges.values() {
            charges_by_contract.entry(charge.contract_id).or_default().push(charge);
        }
        SnapshotIndex {
            contracts_by_subscription,
            duplicated_subscriptions,
            services_by_sku: services_by_sku(snapshot),
            contract_services,
            units,
            charges_by_contract,
        }
    }
}

/// Contracts by their subscription, and the subscriptions more than one contract carries.
/// Two contracts for one subscription were left by another integration or by hand: picking
/// one could bill twice, creating a third would make it worse. Nothing is written for the
/// subscription until a person removes the extra contract.
fn contracts_by_subscription(
    snapshot: &Snapshot,
) -> (BTreeMap<&str, &Contract>, BTreeMap<&str, Vec<i64>>) {
    let mut by_subscription: BTreeMap<&str, Vec<&Contract>> = BTreeMap::new();
    for contract in snapshot.contracts.values() {
        if let Some(subscription) = contract.subscription_id.as_deref().filter(|s| !s.is_empty()) {
            by_subscription.entry(subscription).or_default().push(contract);
        }
    }
    let mut contracts_by_subscription = BTreeMap::new();
    let mut duplicated_subscriptions = BTreeMap::new();
    for (subscription, contracts) in by_subscription {
        match contracts.as_slice() {
            [only] => {
                contracts_by_subscription.insert(subscription, *only);
            }
            _ => {
                duplicated_subscriptions
                    .insert(subscription, contracts.iter().map(|c| c.id).collect::<Vec<_>>());
            }
        }
    }
    (contracts_by_subscription, duplicated_subscriptions)
}

/// The Service of each sku: an active one first, then the oldest.
fn services_by_sku(snapshot: &Snapshot) -> BTreeMap<String, i64> {
    let mut services_by_sku: BTreeMap<String, (bool, i64)> = BTreeMap::new();
    for service in snapshot.services.values() {
        let Some(sku) = service.sku.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let candidate = (service.is_active, service.id);
        services_by_sku
            .entry(sku.to_string())
            .and_modify(|best| {
                if (candidate.0 && !best.0) || (candidate.0 == best.0 && candidate.1 < best.1) {
                    *best = candidate;
                }
            })
            .or_insert(candidate);
    }
    services_by_sku.into_iter().map(|(sku, (_, id))| (sku, id)).collect()
}

pub use crate::snapshot::units_in_force;

/// The first incomplete record (a charge without a price, a unit period without its contract
/// service) of the contract carrying `subscription`: what Autotask holds for it is not fully
/// known, so a write could duplicate or over-adjust.
fn incomplete_record_of<'a>(
    snapshot: &'a Snapshot,
    index: &SnapshotIndex<'_>,
    subscription: &str,
) -> Option<&'a crate::snapshot::IncompleteRecord> {
    if snapshot.incomplete.is_empty() {
        return None;
    }
    let contract_id = index.contracts_by_subscription.get(subscription)?.id;
    snapshot.incomplete.values().find(|record| record.contract_id == Some(contract_id))
}

/// Where a bill's unit change goes, and the units in force there before it. Autotask keeps one
/// adjustment per contract service and day, and an adjustment starts a unit period whose count
/// differs from the day before. A restated bill (the same Billing Date, a new count) must go to
/// the first day from the Billing Date that no adjustment has taken yet, and compare with the
/// count the last of those adjustments left.
pub fn adjustment_day(
    periods: &[&ContractServiceUnit],
    billing_date: NaiveDate,
    contract_end: NaiveDate,
) -> (NaiveDate, i64) {
    // A period starting on a day is an adjustment there when its units differ from the day
    // before's, or its price does (a price-only adjustment takes the day as well: Autotask
    // refuses a second one). A monthly period boundary changes neither.
    let taken = |day: NaiveDate| {
        let previous = day.pred_opt();
        let before = previous.map(|previous| units_in_force(periods, previous)).unwrap_or(0);
        let price_before = previous.and_then(|previous| price_in_force(periods, previous));
        periods.iter().any(|unit| {
            unit.start_date == day
                && (unit.units != before
                    || matches!((unit.price, price_before), (Some(a), Some(b)) if a != b))
        })
    };
    let mut day = billing_date;
    while taken(day) {
        match day.succ_opt().filter(|next| *next <= contract_end) {
            Some(next) => day = next,
            // Every day to the contract's end is taken: Autotask will say so.
            None => return (day, units_in_force(periods, day)),
        }
    }
    let settled = if day > billing_date { day.pred_opt().unwrap_or(day) } else { day };
    (day, units_in_force(periods, settled))
}

/// The price of the unit period in force on a date, where Autotask gives one.
fn price_in_force(periods: &[&ContractServiceUnit], date: NaiveDate) -> Option<Decimal> {
    periods
        .iter()
        .rev()
        .find(|unit| unit.start_date <= date && date <= unit.end_date)
        .and_then(|unit| unit.price)
}

/// The price of the unit period in force on a date, or of the last one before it (a contract
/// renewed in the same plan has no period there yet: the renewal carries the last one on).
fn price_carried(periods: &[&ContractServiceUnit], date: NaiveDate) -> Option<Decimal> {
    price_in_force(periods, date).or_else(|| {
        periods.iter().rev().find(|unit| unit.start_date <= date).and_then(|unit| unit.price)
    })
}

/// Where a contract's services and charges hang, and the dates adjustments must stay within.
struct ContractTarget {
    parent: Id<NaturalKey>,
    existing_id: Option<i64>,
    start: NaiveDate,
    end: NaiveDate,
}

/// Everything one diff reads: the rules, the picklist numbers they resolved to on this
/// tenant, and the snapshot's lookups.
struct Context<'a> {
    rules: &'a RuleSet,
    values: &'a TenantValues,
    index: SnapshotIndex<'a>,
}

/// The changes that bring Autotask (`snapshot`) to the desired state under the rules, with
/// the warnings of everything not written. Pure: same inputs, same diff, same order.
pub fn diff(
    rules: &RuleSet,
    values: &TenantValues,
    desired: &DesiredState,
    snapshot: &Snapshot,
) -> Diff {
    let mut out = Diff { warnings: desired.warnings.clone(), ..Diff::default() };
    let context = Context { rules, values, index: SnapshotIndex::new(snapshot) };
    let mut planned_services: BTreeSet<String> = BTreeSet::new();
    let mut unknowns = Unknowns::default();
    for contract in desired.contracts.values() {
        if let Some(warning) = held_back(&context, snapshot, contract) {
            out.warnings.push(warning);
            continue;
        }
        out.warnings.extend(currency_mismatch(snapshot, contract));
        let target = diff_contract(&context, contract, &mut out);
        match contract.kind {
            BillingKind::Licence => {
                for service in contract.services.values() {
                    let sx = ServiceDiff { context: &context, contract, service, target: &target };
                    diff_contract_service(&sx, &mut planned_services, &mut unknowns, &mut out);
                }
            }
            BillingKind::Consumption => {
                for charge in contract.charges.values() {
                    diff_charge(&context, contract, charge, &target, &mut unknowns, &mut out);
                }
            }
        }
    }
    warn_skipped_but_billed(&context, desired, &mut out);
    unknowns.warn(&mut out.warnings);
    hold_incomplete_billing_codes(snapshot, &mut out);
    // By the key's text, as plans have always been ordered.
    out.changes.sort_by_cached_key(|change| {
        (change.write.entity().phase(), change.key.to_string(), change.write.action())
    });
    out.warnings.sort();
    out.warnings.dedup();
    out
}

/// Why nothing is written for a contract on this run (company 0, duplicated subscription,
/// incomplete record, unknown company), as its warning; None when it goes ahead.
fn held_back(
    context: &Context,
    snapshot: &Snapshot,
    contract: &DesiredContract,
) -> Option<Warning> {
    let index = &context.index;
    if contract.company_id == 0 {
        return Some(Warning::own_company(contract));
    }
    if let Some(ids) = index.duplicated_subscriptions.get(contract.subscription_id.as_str()) {
        let udf = &context.rules.settings.subscription_udf.value;
        return Some(Warning::duplicate_contracts(contract, ids, udf));
    }
    if let Some(record) = incomplete_record_of(snapshot, index, &contract.subscription_id) {
        return Some(Warning::incomplete_record(record, contract));
    }
    if !snapshot.companies.is_empty() && !snapshot.companies.contains_key(&contract.company_id) {
        return Some(Warning::unknown_company(contract));
    }
    None
}

/// A subscription billed in another currency than its Autotask company's (said, not blocking).
fn currency_mismatch(snapshot: &Snapshot, contract: &DesiredContract) -> Option<Warning> {
    let currency = snapshot
        .companies
        .get(&contract.company_id)
        .and_then(|company| company.currency_id)
        .and_then(|id| snapshot.currencies.get(&id))
        .filter(|currency| {
            !currency.name.trim().eq_ignore_ascii_case(contract.currency_code.trim())
        })?;
    Some(Warning::company_currency_mismatch(contract, &currency.name))
}

/// A billing code Autotask sent without its name or use type is not known to be the right
/// kind: no Service or charge is created with it, nor anything planned on such a Service.
fn hold_incomplete_billing_codes(snapshot: &Snapshot, out: &mut Diff) {
    let incomplete = |id: i64| snapshot.incomplete.contains_key(&format!("BillingCodes/{id}"));
    let code_of = |write: &Write<NaturalKey>| match write {
        Write::CreateService(service) => Some(service.billing_code_id),
        Write::CreateCharge { charge, .. } => Some(charge.billing_code_id),
        _ => None,
    };
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut codes = BTreeSet::new();
    loop {
        let before = held.len();
        for change in &out.changes {
            let mut refs = Vec::new();
            let _ = change.write.map_refs(|key| {
                refs.push(key.to_string());
                Ok::<_, ()>(())
            });
            let code = code_of(&change.write).filter(|id| incomplete(*id));
            if code.is_some() || refs.iter().any(|key| held.contains(key)) {
                codes.extend(code);
                held.insert(change.key.to_string());
            }
        }
        if held.len() == before {
            break;
        }
    }
    if held.is_empty() {
        return;
    }
    out.changes.retain(|change| !held.contains(&change.key.to_string()));
    for id in codes {
        out.warnings.push(Warning::incomplete_billing_code(id, held.len()));
    }
}

/// A product a `skip` rule now leaves out may still be billed by a contract service cmat made
/// earlier: cmat does not end it on its own (the rule may be temporary), but says so.
fn warn_skipped_but_billed(context: &Context<'_>, desired: &DesiredState, out: &mut Diff) {
    let index = &context.index;
    for ((subscription, product), rule) in &desired.skipped {
        let still_wanted = desired
            .contracts
            .get(subscription)
            .is_some_and(|contract| contract.services.contains_key(product));
        let Some(contract) = index.contracts_by_subscription.get(subscription.as_str()) else {
            continue;
        };
        let Some(service_id) = index.services_by_sku.get(product) else { continue };
        let units = index
            .units
            .get(&(contract.id, *service_id))
            .and_then(|periods| periods.last())
            .map(|period| period.units)
            .unwrap_or(0);
        if still_wanted || units == 0 {
            continue;
        }
        out.warnings.push(Warning::skipped_but_billed(
            subscription,
            product,
            rule,
            contract.id,
            units,
        ));
    }
}

/// An existing contract's fields brought to the rules, or a new contract: where its services
/// and charges hang.
fn diff_contract(context: &Context, contract: &DesiredContract, out: &mut Diff) -> ContractTarget {
    let (rules, index) = (context.rules, &context.index);
    let name = truncate(&contract.name, CONTRACT_NAME_MAX);
    contract_notices(rules, contract, &name, out);
    let Some(existing) = index.contracts_by_subscription.get(contract.subscription_id.as_str())
    else {
        return create_contract(context, contract, name, out);
    };
    if existing.company_id != contract.company_id {
        out.warnings.push(Warning::company_mismatch(existing, contract));
    }

    let (mut wanted, end) = wanted_end_dates(rules, contract, existing, out);
    wanted.extend(wanted_owned_fields(contract, existing, name));
    edit_contract(rules, contract, existing, wanted, out);
    ContractTarget {
        parent: Id::Existing(existing.id),
        existing_id: Some(existing.id),
        start: existing.start_date,
        end,
    }
}

/// One edit of an existing contract the rules want, with its rule.
struct WantedEdit {
    edit: ContractEdit,
    rule: RuleOrigin,
    /// Written whatever `hand_edit` says (a renewal, a cancellation): not a hand edit undone.
    always: bool,
}

/// What a contract's name and appearance on the bill say before any write is decided.
fn contract_notices(rules: &RuleSet, contract: &DesiredContract, name: &str, out: &mut Diff) {
    if name != contract.name {
        out.warnings.push(Warning::contract_name_shortened(contract));
    }
    if contract.stopped_appearing {
        let policy = rules.policies.cancelled_subscription.value;
        out.warnings.push(Warning::stopped_appearing(contract, policy));
    }
}

/// A contract the snapshot does not have: created, and the target its services hang on.
fn create_contract(
    context: &Context,
    contract: &DesiredContract,
    name: String,
    out: &mut Diff,
) -> ContractTarget {
    let key = NaturalKey::Subscription(contract.subscription_id.clone());
    let settings = &context.rules.settings;
    let write = Write::CreateContract(NewContract {
        company_id: contract.company_id,
        name,
        contract_type: context.values.contract_type,
        status: context.values.contract_status,
        period_type: context.values.contract_period_type,
        start_date: contract.start_date,
        end_date: contract.end_date,
        service_level_agreement_id: contract.service_level_agreement.value,
        time_reporting_requires_start_and_stop_times: 0,
        category: contract.category.as_ref().map(|category| category.value),
        line_of_business: contract.line_of_business.as_ref().map(|line| line.value),
        subscription_udf: settings.subscription_udf.value.clone(),
        subscription: contract.subscription_id.clone(),
    });
    out.changes.push(Change {
        key: key.clone(),
        write,
        rule: contract.placement_rule.clone(),
        reason: wording::new_subscription(contract),
        company_id: contract.company_id,
        contract_label: contract_label(contract, None),
    });
    ContractTarget {
        parent: Id::Planned(key),
        existing_id: None,
        start: contract.start_date,
        end: contract.end_date,
    }
}

/// The end-date edits a renewal or a cancelled subscription wants, and the contract's end
/// after them.
fn wanted_end_dates(
    rules: &RuleSet,
    contract: &DesiredContract,
    existing: &Contract,
    out: &mut Diff,
) -> (Vec<WantedEdit>, NaiveDate) {
    let mut end = existing.end_date;
    let mut wanted: Vec<WantedEdit> = Vec::new();
    if contract.last_billing_date > existing.end_date {
        if rules.contract.renewal.value == Renewal::Extend {
            let renewed = covering_end_date(
                existing.start_date,
                contract.term_months.value,
                contract.last_billing_date,
            );
            wanted.push(end_date_edit(existing, renewed, &rules.contract.renewal.origin));
            end = renewed;
        } else {
            out.warnings.push(Warning::contract_ends_before_bill(existing, contract));
        }
    }
    let cancelled = &rules.policies.cancelled_subscription;
    if contract.stopped_appearing
        && cancelled.value == CancelledSubscription::EndContract
        && existing.end_date > contract.last_billing_date
    {
        wanted.push(end_date_edit(existing, contract.last_billing_date, &cancelled.origin));
        end = contract.last_billing_date;
    }
    (wanted, end)
}

/// Moving an existing contract's end date to `new`: written whatever `hand_edit` says.
fn end_date_edit(existing: &Contract, new: NaiveDate, origin: &RuleOrigin) -> WantedEdit {
    let edit = ContractEdit::EndDate(Edit { old: Some(existing.end_date), new });
    WantedEdit { edit, rule: origin.clone(), always: true }
}

/// The fields cmat owns whose Autotask value differs from the rules': a hand edit is
/// overwritten or reported, by `hand_edit`.
fn wanted_owned_fields(
    contract: &DesiredContract,
    existing: &Contract,
    name: String,
) -> Vec<WantedEdit> {
    let owned = |edit, rule: &RuleOrigin| WantedEdit { edit, rule: rule.clone(), always: false };
    let mut wanted = Vec::new();
    if existing.contract_name != name {
        let edit = Edit { old: Some(existing.contract_name.clone()), new: name };
        wanted.push(owned(ContractEdit::Name(edit), &contract.origin));
    }
    let sla = &contract.service_level_agreement;
    if existing.service_level_agreement_id != Some(sla.value) {
        let edit = Edit { old: existing.service_level_agreement_id, new: sla.value };
        wanted.push(owned(ContractEdit::ServiceLevelAgreement(edit), &sla.origin));
    }
    let category = contract.category.as_ref();
    if let Some(category) = category.filter(|c| existing.contract_category != Some(c.value)) {
        let edit = Edit { old: existing.contract_category, new: category.value };
        wanted.push(owned(ContractEdit::Category(edit), &category.origin));
    }
    wanted
}

/// The wanted edits as one contract update (or drift warnings, by `hand_edit`).
fn edit_contract(
    rules: &RuleSet,
    contract: &DesiredContract,
    existing: &Contract,
    wanted: Vec<WantedEdit>,
    out: &mut Diff,
) {
    let overwrite = rules.policies.hand_edit.value == HandEdit::Overwrite;
    let mut edits = ContractEdits::default();
    let mut rule = None;
    let mut reasons = Vec::new();
    for WantedEdit { edit, rule: origin, always } in wanted {
        let field = edit.field();
        if !always && !overwrite {
            let (old, new) = edit.shown();
            out.warnings.push(Warning::contract_hand_edited(existing.id, field, &old, &new));
            continue;
        }
        reasons.push(match &edit {
            ContractEdit::EndDate(Edit { old: Some(old), new }) => {
                wording::end_date_moved(contract, new < old)
            }
            ContractEdit::EndDate(_) => wording::end_date_moved(contract, false),
            _ => wording::field_edited(field),
        });
        rule.get_or_insert(origin);
        edit.set_on(&mut edits);
    }
    if edits == ContractEdits::default() {
        out.unchanged += 1;
        return;
    }
    out.changes.push(Change {
        key: NaturalKey::Subscription(contract.subscription_id.clone()),
        write: Write::UpdateContract { id: existing.id, edits },
        rule: rule.unwrap_or_else(|| contract.origin.clone()),
        reason: reasons.join("; "),
        company_id: contract.company_id,
        contract_label: contract_label(contract, Some(existing.id)),
    });
}

/// One field of an existing contract the rules want changed.
enum ContractEdit {
    EndDate(Edit<NaiveDate>),
    Name(Edit<String>),
    ServiceLevelAgreement(Edit<i64>),
    Category(Edit<i64>),
}

impl ContractEdit {
    /// The Autotask field the edit writes.
    fn field(&self) -> &'static str {
        match self {
            ContractEdit::EndDate(_) => "endDate",
            ContractEdit::Name(_) => "contractName",
            ContractEdit::ServiceLevelAgreement(_) => "serviceLevelAgreementID",
            ContractEdit::Category(_) => "contractCategory",
        }
    }

    /// The old and new values as a drift warning shows them: Autotask's as JSON (`null` when
    /// it has none), the rules' as they are.
    fn shown(&self) -> (String, String) {
        let json = |value: serde_json::Value| value.to_string();
        match self {
            ContractEdit::EndDate(edit) => {
                (edit.old.map(|old| old.to_string()).unwrap_or_default(), edit.new.to_string())
            }
            ContractEdit::Name(edit) => {
                (json(serde_json::json!(edit.old)), json(serde_json::json!(edit.new)))
            }
            ContractEdit::ServiceLevelAgreement(edit) | ContractEdit::Category(edit) => {
                (json(serde_json::json!(edit.old)), edit.new.to_string())
            }
        }
    }

    /// Puts the edit in its field of the contract's update.
    fn set_on(self, edits: &mut ContractEdits) {
        match self {
            ContractEdit::EndDate(edit) => edits.end_date = Some(edit),
            ContractEdit::Name(edit) => edits.name = Some(edit),
            ContractEdit::ServiceLevelAgreement(edit) => {
                edits.service_level_agreement_id = Some(edit)
            }
            ContractEdit::Category(edit) => edits.category = Some(edit),
        }
    }
}

/// The Service a contract already bills a product on under the other sku spelling, with or
/// without its term (`CFQ7…` and `CFQ7…/Annual`): turning `service_per_term` on or off must not
/// add a second contract service for the same licences. Its own sku's Service comes first.
fn held_on_another_term(
    index: &SnapshotIndex<'_>,
    contract_id: Option<i64>,
    service: &DesiredContractService,
) -> Option<i64> {
    let contract_id = contract_id?;
    let own = index.services_by_sku.get(&service.product_key);
    if own.is_some_and(|id| index.contract_services.contains_key(&(contract_id, *id))) {
        return None;
    }
    let base = match service.product_key.rsplit_once('/') {
        Some((base, _)) if service.per_term => base,
        _ => service.product_key.as_str(),
    };
    let prefix = format!("{base}/");
    index
        .services_by_sku
        .iter()
        .filter(|(sku, _)| *sku == base || sku.starts_with(&prefix))
        .map(|(_, id)| *id)
        .find(|id| index.contract_services.contains_key(&(contract_id, *id)))
}

/// The Autotask Service behind a product: explicit rule, then the one the contract already
/// bills it on, then sku, then one planned create.
fn resolve_service(
    sx: &ServiceDiff,
    planned_services: &mut BTreeSet<String>,
    out: &mut Diff,
) -> Option<Id<NaturalKey>> {
    let (service, index) = (sx.service, &sx.context.index);
    if let Some(id) = existing_service(index, sx.target.existing_id, service) {
        return Some(Id::Existing(id));
    }
    let Some(create) = &sx.context.rules.products.create else {
        out.warnings.push(Warning::service_not_found(sx.contract, service));
        return None;
    };
    let key = NaturalKey::Service { sku: service.product_key.clone() };
    if planned_services.insert(service.product_key.clone()) {
        out.changes.push(Change {
            key: key.clone(),
            write: Write::CreateService(new_service(sx, create)),
            rule: create.origin.clone(),
            reason: wording::no_service_with_sku(&service.product_key),
            company_id: 0,
            contract_label: String::new(),
        });
    }
    Some(Id::Planned(key))
}

/// The existing Service behind a product: the rule's, the one the contract already bills it
/// on under another term, or the one with its sku.
fn existing_service(
    index: &SnapshotIndex<'_>,
    contract_id: Option<i64>,
    service: &DesiredContractService,
) -> Option<i64> {
    service
        .service_id
        .or_else(|| held_on_another_term(index, contract_id, service))
        .or_else(|| index.services_by_sku.get(&service.product_key).copied())
}

/// The Service the rules' `create` makes for a product no Service has the sku of.
fn new_service(sx: &ServiceDiff, create: &crate::rules::ServiceCreateRule) -> NewService {
    let (contract, service) = (sx.contract, sx.service);
    let term = service.payment_frequency.trim();
    let mut name = create.name.render(|field| match field {
        TemplateField::Product => Some(service.product_name.clone()),
        TemplateField::ItemCode | TemplateField::ProductId => Some(service.product_key.clone()),
        TemplateField::Organization => Some(contract.organization_name.clone()),
        TemplateField::Service => Some(contract.service_name.clone()),
        TemplateField::Term => Some(term.to_string()),
        _ => None,
    });
    // Two Services of one product must not look alike in Autotask's lists.
    if service.per_term && !create.name.uses(TemplateField::Term) {
        name = format!("{name} ({term})");
    }
    let scale = service.scale;
    NewService {
        name: truncate(&name, SERVICE_NAME_MAX),
        sku: service.product_key.clone(),
        billing_code_id: sx.context.rules.settings.service_billing_code.value,
        period_type: sx.context.values.service_period_type,
        unit_price: scaled(service.unit_price, scale),
        unit_cost: scaled(service.unit_cost, scale),
        is_active: true,
    }
}

/// What Autotask did not show, said once per plan. An API user without permission to see
/// costs reads every cost as null (and its cost writes are ignored): an unknown cost is never
/// compared, so it never becomes a cost-only write or a correcting charge. A price that cannot
/// be read in the bill's currency is not compared either.
#[derive(Default)]
struct Unknowns {
    /// Records without a cost (`ContractCharges/7`).
    records: BTreeSet<String>,
    /// Contract services billing in the customer's currency.
    foreign_currency: BTreeSet<i64>,
    /// Contract services without an adjusted price.
    prices: BTreeSet<i64>,
}

impl Unknowns {
    fn warn(self, warnings: &mut Vec<Warning>) {
        if let Some(first) = self.records.first() {
            warnings.push(Warning::costs_not_visible(self.records.len(), first));
        }
        if let Some(first) = self.prices.first() {
            warnings.push(Warning::no_adjusted_price(self.prices.len(), *first));
        }
        if let Some(first) = self.foreign_currency.first() {
            warnings.push(Warning::foreign_currency(self.foreign_currency.len(), *first));
        }
    }
}

/// One desired contract service being diffed, with what its decisions read.
struct ServiceDiff<'c, 'a> {
    context: &'c Context<'a>,
    contract: &'c DesiredContract,
    service: &'c DesiredContractService,
    target: &'c ContractTarget,
}

/// What one contract service's unit count does on this run, and why (as data).
struct UnitDecision {
    /// The adjustment's date.
    effective: NaiveDate,
    /// The units Autotask holds on that date.
    current_units: i64,
    unit_change: i64,
    /// The day a deferred decrease takes effect, when the decrease rule moved it.
    deferred_to: Option<NaiveDate>,
}

/// What one contract service's price and cost do on this run.
struct PriceDecision {
    price: Decimal,
    cost: Decimal,
    /// "unit price a → b" and the like, for the change's reason.
    repriced: Vec<String>,
    price_moves: bool,
}

/// The contract service a desired service sits on in the snapshot: (contract, service, record).
type OnContract<'a> = Option<(i64, i64, &'a ContractService)>;

/// A desired contract service against Autotask's: one adjustment carrying units, price and
/// cost when any of them moves, else counted unchanged.
fn diff_contract_service(
    sx: &ServiceDiff,
    planned_services: &mut BTreeSet<String>,
    unknowns: &mut Unknowns,
    out: &mut Diff,
) {
    let (service, target, index) = (sx.service, sx.target, &sx.context.index);
    // Nothing to remove from a contract or a service that does not exist yet.
    if service.units == 0
        && (target.existing_id.is_none()
            || existing_service(index, target.existing_id, service).is_none())
    {
        return;
    }
    let Some(service_ref) = resolve_service(sx, planned_services, out) else {
        return;
    };
    let on_contract = contract_service_on(index, target.existing_id, &service_ref);
    let periods = match unit_periods(index, on_contract, service) {
        Ok(periods) => periods,
        Err(warning) => {
            out.warnings.push(warning);
            return;
        }
    };
    let units = unit_decision(sx, on_contract.is_some(), periods, out);
    let prices = price_decision(sx, on_contract, periods, &units, unknowns, out);
    if units.unit_change == 0 && !prices.price_moves {
        if on_contract.is_some() {
            out.unchanged += 1;
        }
        return;
    }
    out.changes.push(adjustment(sx, service_ref, on_contract, &units, prices));
}

/// The contract service an existing contract already has for an existing Service.
fn contract_service_on<'a>(
    index: &SnapshotIndex<'a>,
    contract_id: Option<i64>,
    service_ref: &Id<NaturalKey>,
) -> OnContract<'a> {
    match (contract_id, service_ref) {
        (Some(contract_id), Id::Existing(service_id)) => index
            .contract_services
            .get(&(contract_id, *service_id))
            .map(|contract_service| (contract_id, *service_id, *contract_service)),
        _ => None,
    }
}

/// The unit periods Autotask holds for a contract service (none for a new one). Autotask
/// keeps them to the contract's end: none read means it ended before the units window, and
/// its units are unknown here (a renewal carries them on). A count written blind could double
/// them: the renewal goes first, and the next run, reading the renewed periods, adjusts.
fn unit_periods<'i, 'a>(
    index: &'i SnapshotIndex<'a>,
    on_contract: OnContract,
    service: &DesiredContractService,
) -> Result<&'i [&'a ContractServiceUnit], Warning> {
    let Some((contract_id, service_id, held)) = on_contract else {
        return Ok(&[]);
    };
    match index.units.get(&(contract_id, service_id)) {
        Some(periods) => Ok(periods.as_slice()),
        None => Err(Warning::units_unknown(contract_id, held.id, service)),
    }
}

/// The change the decisions make: one adjustment per contract service and bill carries units,
/// price and cost together, dated on the Billing Date: invoiced periods keep their price, and
/// cmat never sends two adjustments for one day (Autotask refuses the second). See
/// ARCHITECTURE.md, "Prices".
fn adjustment(
    sx: &ServiceDiff,
    service_ref: Id<NaturalKey>,
    on_contract: OnContract,
    units: &UnitDecision,
    prices: PriceDecision,
) -> Change {
    let (contract, service) = (sx.contract, sx.service);
    let new_product = on_contract.is_none();
    let held = on_contract.map(|(_, _, held)| held);
    let reason = service_reasons(service, units, new_product, prices.repriced).join("; ");
    Change {
        key: NaturalKey::Product {
            subscription: contract.subscription_id.clone(),
            item: service.product_key.clone(),
        },
        write: Write::AdjustContractService(Adjustment {
            contract: sx.target.parent.clone(),
            service: service_ref,
            effective_date: units.effective,
            unit_change: units.unit_change,
            units_before: units.current_units,
            adjusted_unit_price: scaled(prices.price, service.scale),
            adjusted_unit_cost: scaled(prices.cost, service.scale),
            price_before: held
                .and_then(|held| held.adjusted_price.filter(|_| !held.foreign_currency)),
            cost_before: held.and_then(|held| held.unit_cost),
        }),
        rule: service_rule(sx.context.rules, contract, service, units, new_product),
        reason,
        company_id: contract.company_id,
        contract_label: contract_label(contract, sx.target.existing_id),
    }
}

/// The unit change of one contract service: the bill's count against the periods Autotask
/// holds, moved by the decrease rule, floored by later periods, held by `removed_product`.
fn unit_decision(
    sx: &ServiceDiff,
    on_contract: bool,
    periods: &[&ContractServiceUnit],
    out: &mut Diff,
) -> UnitDecision {
    let (contract, service, target) = (sx.contract, sx.service, sx.target);
    let billing_date = service.effective_date.clamp(target.start, target.end.max(target.start));
    let (effective, current_units) = match on_contract {
        true => adjustment_day(periods, billing_date, target.end),
        false => (billing_date, 0),
    };
    let mut units = UnitDecision {
        effective,
        current_units,
        unit_change: service.units - current_units,
        deferred_to: None,
    };
    if units.unit_change < 0 && service.decrease.value != DecreaseTiming::BillingDate {
        time_decrease(sx, periods, billing_date, &mut units, out);
    }
    if units.unit_change < 0 {
        units.unit_change = floored_by_later_periods(
            contract,
            service,
            periods,
            units.effective,
            units.unit_change,
            out,
        );
    }
    if units.unit_change != 0
        && !service.on_current_bill
        && service.removed_product.value == RemovedProduct::Report
    {
        out.warnings.push(Warning::removed_product_kept(contract, service, units.current_units));
        units.unit_change = 0;
    }
    units
}

/// A decrease moved by its rule (`decrease`): after the contract's end it waits for a later
/// bill, ahead of the Billing Date it is dated on the day it takes effect.
fn time_decrease(
    sx: &ServiceDiff,
    periods: &[&ContractServiceUnit],
    billing_date: NaiveDate,
    units: &mut UnitDecision,
    out: &mut Diff,
) {
    let (contract, service, target) = (sx.contract, sx.service, sx.target);
    let takes_effect = decrease_date(contract, service, billing_date, target.start);
    if takes_effect > target.end {
        out.warnings.push(Warning::decrease_deferred(
            contract,
            service,
            units,
            takes_effect,
            target,
        ));
        units.unit_change = 0;
    } else if takes_effect > units.effective {
        // A change already dated there (an earlier run's) counts from that day.
        let (later, units_then) = adjustment_day(periods, takes_effect, target.end);
        if service.units == units_then {
            // Already written there by an earlier run: a price change, if any, is dated
            // on the Billing Date, never on a day ahead where nothing else changes (such an
            // adjustment changes neither units nor price: no later read can tell the day
            // is taken).
            units.unit_change = 0;
        } else {
            (units.effective, units.current_units) = (later, units_then);
            units.unit_change = service.units - units.current_units;
            units.deferred_to = Some(takes_effect);
        }
    } else {
        // On its Billing Date by the rule (a term's first bill): the rule is still the cause.
        units.deferred_to = Some(takes_effect);
    }
}

/// The price and cost one contract service's adjustment carries, by `hand_edit`; records
/// what cannot be known (foreign currency, no price or cost read) in `unknowns`.
fn price_decision(
    sx: &ServiceDiff,
    on_contract: OnContract,
    periods: &[&ContractServiceUnit],
    units: &UnitDecision,
    unknowns: &mut Unknowns,
    out: &mut Diff,
) -> PriceDecision {
    let service = sx.service;
    let mut decision = PriceDecision::wanted(service);
    let Some((_, _, held)) = on_contract else {
        return decision;
    };
    if !service.on_current_bill {
        // A product leaving the bill keeps the price and cost Autotask holds.
        decision.price =
            held.adjusted_price.filter(|_| !held.foreign_currency).unwrap_or(service.unit_price);
        decision.cost = held.unit_cost.unwrap_or(service.unit_cost);
        return decision;
    }
    let held_price = comparable_price(held, unknowns);
    if held.unit_cost.is_none() {
        unknowns.records.insert(format!("ContractServices/{}", held.id));
    }
    let overwrite = sx.context.rules.policies.hand_edit.value == HandEdit::Overwrite;
    // The contract service's price is the latest write's, which a write dated ahead (a
    // deferred decrease carrying its bill's price) makes another day's. Where the unit
    // periods already hold the bill's price on the adjustment's day, a price-only
    // adjustment there would change nothing a read can see, and a later write on that day
    // would be refused as a duplicate: it is not planned.
    let held_on_the_day = units.unit_change == 0
        && !held.foreign_currency
        && price_carried(periods, units.effective) == Some(service.unit_price);
    match held_price {
        Some(held_price) if held_price != service.unit_price && !held_on_the_day => {
            decision.set_price(service, held.id, held_price, overwrite, out)
        }
        _ => {}
    }
    decision.set_cost(service, held.unit_cost, overwrite);
    decision
}

/// The price Autotask holds for a contract service, where it can be compared with the bill's;
/// what cannot is recorded in `unknowns`.
fn comparable_price(held: &ContractService, unknowns: &mut Unknowns) -> Option<Decimal> {
    if held.foreign_currency {
        unknowns.foreign_currency.insert(held.id);
        return None;
    }
    if held.adjusted_price.is_none() {
        unknowns.prices.insert(held.id);
    }
    held.adjusted_price
}

impl PriceDecision {
    /// The bill's price and cost, nothing repriced yet.
    fn wanted(service: &DesiredContractService) -> Self {
        PriceDecision {
            price: service.unit_price,
            cost: service.unit_cost,
            repriced: Vec::new(),
            price_moves: false,
        }
    }

    /// A held price other than the bill's: moved, or kept with a warning, by `hand_edit`.
    fn set_price(
        &mut self,
        service: &DesiredContractService,
        contract_service_id: i64,
        held: Decimal,
        overwrite: bool,
        out: &mut Diff,
    ) {
        if overwrite {
            self.price_moves = true;
            let repriced = wording::repriced("unit price", held, service.unit_price, service.scale);
            self.repriced.push(repriced);
        } else {
            out.warnings.push(Warning::price_hand_edited(contract_service_id, service, held));
            self.price = held;
        }
    }

    /// The cost rides with a price or unit change, never alone: Autotask documents no field
    /// that reads back a contract service's adjusted cost (`unitCost` may stay the Service's),
    /// so a cost-only write could repeat on every run without converging.
    fn set_cost(
        &mut self,
        service: &DesiredContractService,
        held: Option<Decimal>,
        overwrite: bool,
    ) {
        match held {
            Some(held) if held != service.unit_cost && overwrite => self
                .repriced
                .push(wording::repriced("unit cost", held, service.unit_cost, service.scale)),
            Some(held) if held != service.unit_cost => self.cost = held,
            _ => {}
        }
    }
}

/// The reasons a contract service's adjustment gives, units first, then price and cost.
fn service_reasons(
    service: &DesiredContractService,
    units: &UnitDecision,
    new_product: bool,
    mut repriced: Vec<String>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if units.unit_change != 0 {
        reasons = wording::unit_reasons(service, units, new_product);
    }
    if let Some(dated) = service.dated_price_rule.as_ref().filter(|_| !repriced.is_empty()) {
        repriced.push(wording::priced_by_dated_rule(dated));
    }
    reasons.extend(repriced);
    reasons
}

/// The rule behind a contract service's change: the price's when only the price moves; for
/// units, the timing, included/minimum or `for` price rule that shaped them, else the
/// service rule.
fn service_rule(
    rules: &RuleSet,
    contract: &DesiredContract,
    service: &DesiredContractService,
    units: &UnitDecision,
    new_product: bool,
) -> RuleOrigin {
    let scoped_price = service.price_rule != rules.prices.unit_price.origin;
    if units.unit_change == 0 {
        service.price_rule.clone()
    } else if units.deferred_to.is_some() {
        service.decrease.origin.clone()
    } else if let Some(units_rule) = &service.units_rule {
        units_rule.clone()
    } else if new_product && scoped_price {
        service.price_rule.clone()
    } else if service.on_current_bill {
        contract.origin.clone()
    } else {
        service.removed_product.origin.clone()
    }
}

/// A decrease no lower than the unit periods from `effective` on allow. Adjustments are
/// relative: one dated before a later-dated one (an earlier run's deferred decrease, which a
/// restatement taking a month's lines away has made moot) lowers that one's period as well, and
/// Autotask refuses units below zero on any day. The count goes as low as the fewest units held
/// from that day on, and the rest is said; the later period's own day brings it to the bill.
fn floored_by_later_periods(
    contract: &DesiredContract,
    service: &DesiredContractService,
    periods: &[&ContractServiceUnit],
    effective: NaiveDate,
    unit_change: i64,
    out: &mut Diff,
) -> i64 {
    let Some(fewest) =
        periods.iter().filter(|unit| unit.end_date >= effective).map(|u| u.units).min()
    else {
        return unit_change;
    };
    if unit_change >= -fewest {
        return unit_change;
    }
    out.warnings.push(Warning::decrease_floored(
        contract,
        service,
        effective,
        -unit_change,
        fewest,
    ));
    -fewest
}

/// When a lower licence count on the bill of `billing_date` takes effect under its rule.
/// Terms count from `term_start`: the contract's start date in Autotask when it exists (an
/// adopted contract, a customer onboarded mid-term), else the start cmat creates it with, so
/// the date never depends on how much history was imported.
fn decrease_date(
    contract: &DesiredContract,
    service: &DesiredContractService,
    billing_date: NaiveDate,
    term_start: NaiveDate,
) -> NaiveDate {
    let term_months = contract.term_months.value;
    let after_months = |months: u32| {
        billing_date.checked_add_months(chrono::Months::new(months)).unwrap_or(NaiveDate::MAX)
    };
    match service.decrease.value {
        DecreaseTiming::BillingDate => billing_date,
        DecreaseTiming::NextPeriod => after_months(period_months(&service.payment_frequency)),
        // Terms run from the contract's start, as Cloudmore's bills do not carry the term's
        // own dates. A bill in the first month of a term is the renewal's bill (Cloudmore
        // bills monthly, whatever the Payment Frequency): the decrease takes effect on it; any
        // later bill waits for the next term's first day. An Annual line's first period is
        // the whole term, so it cannot be the measure: its seats would drop mid-term.
        DecreaseTiming::TermEnd => {
            let end = covering_end_date(term_start, term_months, billing_date);
            let next_term = end.succ_opt().unwrap_or(end);
            let this_term = next_term
                .checked_sub_months(chrono::Months::new(term_months.max(1)))
                .unwrap_or(term_start);
            let renewal_period_ends =
                this_term.checked_add_months(chrono::Months::new(1)).unwrap_or(NaiveDate::MAX);
            if billing_date < renewal_period_ends {
                billing_date
            } else {
                next_term
            }
        }
    }
}

/// The months one billing period lasts, by the bill's Payment Frequency (monthly if unknown).
fn period_months(payment_frequency: &str) -> u32 {
    let frequency: String = payment_frequency
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    match frequency.as_str() {
        "quarterly" => 3,
        "semiannual" | "semiannually" | "halfyearly" => 6,
        "annual" | "annually" | "yearly" => 12,
        "triennial" | "threeyears" => 36,
        _ => 1,
    }
}

/// A charge's total price, and its total cost where Autotask shows it.
fn charge_total(charge: &ContractCharge) -> (Decimal, Option<Decimal>) {
    (
        charge.unit_quantity * charge.unit_price,
        charge.unit_cost.map(|cost| charge.unit_quantity * cost),
    )
}

/// One desired charge being diffed, with what its writes share.
struct ChargeDiff<'c, 'a> {
    context: &'c Context<'a>,
    contract: &'c DesiredContract,
    charge: &'c DesiredCharge,
    target: &'c ContractTarget,
    /// The charge's name, shortened to Autotask's length.
    name: String,
    /// The prefix of its correcting charges' names.
    correction_base: String,
    /// A charge priced by a `for` rule names it; otherwise the consumption block does.
    rule: RuleOrigin,
    label: String,
}

impl<'c, 'a> ChargeDiff<'c, 'a> {
    fn new(
        context: &'c Context<'a>,
        contract: &'c DesiredContract,
        charge: &'c DesiredCharge,
        target: &'c ContractTarget,
    ) -> Self {
        let rule = if charge.price_rule == context.rules.prices.unit_price.origin {
            charge.name_rule.clone()
        } else {
            charge.price_rule.clone()
        };
        ChargeDiff {
            context,
            contract,
            charge,
            target,
            name: truncate(&charge.name, CHARGE_NAME_MAX),
            correction_base: truncate(&charge.correction_name, CHARGE_NAME_MAX.saturating_sub(4)),
            rule,
            label: contract_label(contract, target.existing_id),
        }
    }

    /// The period's charge key, a correction's when `correction` is given.
    fn key(&self, correction: Option<String>) -> NaturalKey {
        NaturalKey::Charge {
            subscription: self.contract.subscription_id.clone(),
            date: self.charge.date,
            group: self.charge.group.clone(),
            correction,
        }
    }

    /// A charge of this period to create, under `name`.
    fn new_charge(&self, name: &str, price: Decimal, cost: Option<Decimal>) -> NewCharge {
        let (contract, charge, scale) = (self.contract, self.charge, self.charge.scale);
        NewCharge {
            name: name.to_string(),
            description: wording::charge_description(contract, charge),
            date_purchased: charge.date,
            charge_type: self.context.values.charge_type,
            unit_quantity: scaled(Decimal::ONE, scale),
            unit_price: scaled(price, scale),
            unit_cost: cost.map(|cost| scaled(cost, scale)),
            billing_code_id: self.context.rules.settings.product_billing_code.value,
            is_billable_to_company: true,
        }
    }

    /// A change of this charge's contract.
    fn change(
        &self,
        key: NaturalKey,
        write: Write<NaturalKey>,
        rule: RuleOrigin,
        reason: String,
    ) -> Change {
        Change {
            key,
            write,
            rule,
            reason,
            company_id: self.contract.company_id,
            contract_label: self.label.clone(),
        }
    }

    /// The contract's existing charges of this period.
    fn existing(&self) -> impl Iterator<Item = &ContractCharge> + '_ {
        self.target
            .existing_id
            .and_then(|id| self.context.index.charges_by_contract.get(&id))
            .into_iter()
            .flatten()
            .copied()
            .filter(|existing| existing.date_purchased == self.charge.date)
    }
}

/// A period's desired charge against the contract's charges of that day (its own name or its
/// corrections'): created, left alone, its open charge updated, or its billed ones corrected.
fn diff_charge(
    context: &Context,
    contract: &DesiredContract,
    charge: &DesiredCharge,
    target: &ContractTarget,
    unknowns: &mut Unknowns,
    out: &mut Diff,
) {
    let cx = ChargeDiff::new(context, contract, charge, target);
    let ours: Vec<&ContractCharge> = cx
        .existing()
        .filter(|existing| {
            existing.name == cx.name || existing.name.starts_with(&cx.correction_base)
        })
        .collect();
    if ours.is_empty() {
        charge_new_period(&cx, out);
        return;
    }
    let (billed_price, billed_cost) = billed_totals(&ours, unknowns);
    let price_gap = charge.unit_price - billed_price;
    let cost_gap = billed_cost.map(|billed| charge.unit_cost - billed);
    if price_gap.is_zero() && cost_gap.is_none_or(|gap| gap.is_zero()) {
        out.unchanged += 1;
        return;
    }
    // The newest unbilled charge of the period absorbs the difference; billed ones are final.
    if let Some(open) = ours.iter().filter(|existing| !existing.is_billed).max_by_key(|c| c.id) {
        update_open_charge(&cx, open, billed_price, price_gap, cost_gap, out);
    } else {
        correct_billed_charges(&cx, &ours, billed_price, price_gap, cost_gap, out);
    }
}

/// What a period's charges bill in all: the price, and the cost unless one charge's cost is
/// hidden (then no cost is compared for the period, and the charge is noted in `unknowns`).
fn billed_totals(ours: &[&ContractCharge], unknowns: &mut Unknowns) -> (Decimal, Option<Decimal>) {
    let mut billed_price = Decimal::ZERO;
    let mut billed_cost = Some(Decimal::ZERO);
    for existing in ours {
        let (price, cost) = charge_total(existing);
        billed_price += price;
        billed_cost = billed_cost.zip(cost).map(|(sum, cost)| sum + cost);
        if cost.is_none() {
            unknowns.records.insert(format!("ContractCharges/{}", existing.id));
        }
    }
    (billed_price, billed_cost)
}

/// A period without a charge of its own: created, unless charges under another grouping of
/// its consumption already bill it.
fn charge_new_period(cx: &ChargeDiff, out: &mut Diff) {
    let (contract, charge) = (cx.contract, cx.charge);
    // Charges of the period made under another grouping (one per subscription, or one per
    // meter category) already bill it: a new charge would bill the period twice.
    let claimed = |existing: &ContractCharge| {
        contract.charges.values().any(|sibling| {
            sibling.date == charge.date
                && (existing.name == truncate(&sibling.name, CHARGE_NAME_MAX)
                    || existing.name.starts_with(&truncate(
                        &sibling.correction_name,
                        CHARGE_NAME_MAX.saturating_sub(4),
                    )))
        })
    };
    let other_grouping: Vec<&ContractCharge> = cx
        .existing()
        .filter(|existing| existing.name.starts_with(&charge.period_name) && !claimed(existing))
        .collect();
    if !other_grouping.is_empty() {
        regrouped_period(cx, &other_grouping, out);
        return;
    }
    let reason = wording::new_period(contract, charge);
    let write = Write::CreateCharge {
        contract: cx.target.parent.clone(),
        charge: cx.new_charge(&cx.name, charge.unit_price, Some(charge.unit_cost)),
    };
    out.changes.push(cx.change(cx.key(None), write, cx.rule.clone(), reason));
}

/// A period charged under another grouping: said once per period (by its first charge), and
/// only while the period's charges and the bill disagree; a period billed in full is done.
fn regrouped_period(cx: &ChargeDiff, other_grouping: &[&ContractCharge], out: &mut Diff) {
    let (contract, charge) = (cx.contract, cx.charge);
    let siblings: Vec<&DesiredCharge> =
        contract.charges.values().filter(|sibling| sibling.date == charge.date).collect();
    let wanted: Decimal = siblings.iter().map(|sibling| sibling.unit_price).sum();
    let billed: Decimal = other_grouping.iter().map(|existing| charge_total(existing).0).sum();
    let first_of_period = siblings.first().is_some_and(|first| first.group == charge.group);
    if billed != wanted && first_of_period {
        out.warnings.push(Warning::charge_grouping_changed(
            contract,
            charge,
            other_grouping,
            billed,
            wanted,
        ));
    } else if billed == wanted {
        out.unchanged += 1;
    }
}

/// A restated period whose newest charge is not billed yet: that charge takes the difference.
fn update_open_charge(
    cx: &ChargeDiff,
    open: &ContractCharge,
    billed_price: Decimal,
    price_gap: Decimal,
    cost_gap: Option<Decimal>,
    out: &mut Diff,
) {
    let (charge, scale) = (cx.charge, cx.charge.scale);
    let quantity = if open.unit_quantity.is_zero() { Decimal::ONE } else { open.unit_quantity };
    let (open_price, open_cost) = charge_total(open);
    let new_price = charge.round((open_price + price_gap) / quantity);
    let mut unit_price = None;
    let mut unit_cost = None;
    if new_price != open.unit_price {
        unit_price =
            Some(Edit { old: Some(scaled(open.unit_price, scale)), new: scaled(new_price, scale) });
    }
    if let (Some(open_cost), Some(cost_gap), Some(held)) = (open_cost, cost_gap, open.unit_cost) {
        let new_cost = charge.round((open_cost + cost_gap) / quantity);
        if new_cost != held {
            unit_cost = Some(Edit { old: Some(scaled(held, scale)), new: scaled(new_cost, scale) });
        }
    }
    if unit_price.is_none() && unit_cost.is_none() {
        out.unchanged += 1;
        return;
    }
    let write = Write::UpdateCharge {
        id: open.id,
        contract: cx.target.parent.clone(),
        edits: crate::write::ChargeEdits { unit_price, unit_cost },
    };
    let reason = wording::restated(charge, billed_price);
    out.changes.push(cx.change(cx.key(None), write, cx.rule.clone(), reason));
}

/// A restated period whose charges are all billed: a correcting charge, or a warning, by
/// `billed_charge_mismatch`.
fn correct_billed_charges(
    cx: &ChargeDiff,
    ours: &[&ContractCharge],
    billed_price: Decimal,
    price_gap: Decimal,
    cost_gap: Option<Decimal>,
    out: &mut Diff,
) {
    let charge = cx.charge;
    let mismatch = wording::billed_mismatch(cx.contract, charge, billed_price);
    if charge.billed_charge_mismatch.value == BilledChargeMismatch::Report {
        out.warnings.push(Warning::billed_charge_mismatch(charge, &mismatch));
        return;
    }
    // A new correction needs a name no charge of the period has yet: it is its natural key.
    let base = &cx.correction_base;
    let taken: BTreeSet<&str> = ours.iter().map(|existing| existing.name.as_str()).collect();
    let correction_name = (1..)
        .map(|n| wording::correction_name(base, n))
        .find(|candidate| !taken.contains(candidate.as_str()))
        .unwrap_or_else(|| base.clone());
    let write = Write::CreateCharge {
        contract: cx.target.parent.clone(),
        charge: cx.new_charge(&correction_name, price_gap, cost_gap),
    };
    let reason = wording::correcting_charge(&mismatch, price_gap, charge.scale);
    let rule = charge.billed_charge_mismatch.origin.clone();
    out.changes.push(cx.change(cx.key(Some(correction_name)), write, rule, reason));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::billing::BillLine;
    use crate::desired::desired_state;
    use crate::plan::{Digests, Plan, PlanParent};
    use crate::snapshot::*;
    use crate::testing::{default_rules, line};
    use serde_json::json;

    fn company_snapshot() -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.companies.insert(
            100,
            Company { id: 100, company_name: "Contoso".into(), is_active: true, currency_id: None },
        );
        snapshot
    }

    fn plan(rules: &RuleSet, lines: &[BillLine], snapshot: &Snapshot) -> Plan {
        let desired = desired_state(rules, lines);
        let digests =
            Digests { snapshot: String::new(), inputs: String::new(), mappings: String::new() };
        let values = crate::picklists::resolve(rules, &crate::testing::reference_picklists())
            .expect("the reference tenant has every default label");
        Plan::new(diff(rules, &values, &desired, snapshot), digests, chrono::DateTime::UNIX_EPOCH)
    }

    fn converge(rules: &RuleSet, lines: &[BillLine], snapshot: &mut Snapshot) -> Plan {
        let first = plan(rules, lines, snapshot);
        crate::testing::play(&first, snapshot);
        let second = plan(rules, lines, snapshot);
        assert!(second.changes.is_empty(), "not converged: {:#?}", second.changes);
        first
    }

    fn october() -> Vec<BillLine> {
        vec![
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5"),
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "B", "3", "7"),
            line("2026-10-01", "Contoso", "Azure Plan", "AZ", "M1", "1.5", "0.3333"),
            line("2026-10-01", "Contoso", "Azure Plan", "AZ", "M2", "2", "10.125"),
        ]
    }

    /// The default rules and Autotask after the October bill was applied.
    fn october_applied() -> (RuleSet, Snapshot) {
        let rules = default_rules();
        let mut snapshot = company_snapshot();
        converge(&rules, &october(), &mut snapshot);
        (rules, snapshot)
    }

    fn summary(plan: &Plan) -> Vec<(String, String, String)> {
        plan.changes
            .iter()
            .map(|c| {
                (
                    c.action().as_str().to_string(),
                    c.entity().as_str().to_string(),
                    c.key.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn onboarding_creates_services_contracts_units_and_one_charge() {
        let rules = default_rules();
        let mut snapshot = company_snapshot();
        let first = converge(&rules, &october(), &mut snapshot);
        let keys = summary(&first);
        assert_eq!(
            keys,
            vec![
                ("create".into(), "Services".into(), "sku:A".into()),
                ("create".into(), "Services".into(), "sku:B".into()),
                ("create".into(), "Contracts".into(), "subscription:AZ".into()),
                ("create".into(), "Contracts".into(), "subscription:S1".into()),
                (
                    "adjust".into(),
                    "ContractServiceAdjustments".into(),
                    "subscription:S1/item:A".into()
                ),
                (
                    "adjust".into(),
                    "ContractServiceAdjustments".into(),
                    "subscription:S1/item:B".into()
                ),
                (
                    "create".into(),
                    "ContractCharges".into(),
                    "subscription:AZ/charge:2026-10-01".into()
                ),
            ]
        );
        let charge = &first.changes[6];
        assert_eq!(charge.fields()["unitPrice"], json!("20.7500"));
        assert_eq!(charge.fields()["unitQuantity"], json!("1.0000"));
        assert_eq!(charge.parent(), Some(PlanParent::Planned { reference: "c3".into() }));
        assert_eq!(first.changes[4].fields()["serviceID"], json!({"ref": "c1"}));
        assert_eq!(snapshot.services.len(), 2, "one Service per sku");
    }

    #[test]
    fn monthly_churn_adjusts_units_prices_and_removed_products() {
        let (rules, mut snapshot) = october_applied();
        let mut lines = october();
        lines.extend([
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "12", "5.5"),
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "C", "2", "9"),
        ]);
        let second = converge(&rules, &lines, &mut snapshot);
        let keys: Vec<String> = second.changes.iter().map(|c| c.key.to_string()).collect();
        let reasons: Vec<_> = second
            .changes
            .iter()
            .zip(&keys)
            .map(|(c, k)| (k.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("sku:C", "no Autotask Service has sku C"),
                (
                    "subscription:S1/item:A",
                    "licence count 10 → 12; unit price 5.0000 → 5.5000; unit cost 4.0000 → 4.4000"
                ),
                ("subscription:S1/item:B", "product removed from the 2026-11-01 bill: 3 → 0"),
                ("subscription:S1/item:C", "new product C (Product C): 2 units"),
            ]
        );
        let removal =
            second.changes.iter().find(|c| c.key.to_string().ends_with("item:B")).expect("removal");
        assert_eq!(removal.fields()["unitChange"], json!(-3));
        assert_eq!(removal.fields()["effectiveDate"], json!("2026-11-01"));
    }

    #[test]
    fn a_price_change_alone_is_an_adjustment_of_no_units_dated_on_the_billing_date() {
        let (rules, mut snapshot) = october_applied();
        let mut lines = october();
        lines.extend([
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "6"),
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "B", "3", "7"),
        ]);
        let second = converge(&rules, &lines, &mut snapshot);
        assert_eq!(second.changes.len(), 1, "{:#?}", second.changes);
        let change = &second.changes[0];
        assert_eq!(
            (change.action(), change.entity()),
            (Action::Adjust, Entity::ContractServiceAdjustments)
        );
        assert_eq!(change.fields()["unitChange"], json!(0));
        assert_eq!(change.fields()["effectiveDate"], json!("2026-11-01"));
        assert_eq!(change.fields()["adjustedUnitPrice"], json!("6.0000"));
        assert_eq!(change.fields()["adjustedUnitCost"], json!("4.8000"));
        assert!(!change.fields().contains_key("unitPrice"), "never the catalogue price");
        assert_eq!(change.reason, "unit price 5.0000 → 6.0000; unit cost 4.0000 → 4.8000");
    }

    #[test]
    fn a_licence_change_on_an_annual_term_says_so() {
        let (rules, mut snapshot) = october_applied();
        let mut lines = october();
        let mut annual = line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "8", "5");
        annual.payment_frequency = "Annual".into();
        lines.extend([annual, line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "B", "3", "7")]);
        let second = converge(&rules, &lines, &mut snapshot);
        assert_eq!(second.changes[0].reason, "licence count 10 → 8; Payment Frequency Annual");
    }

    #[test]
    fn a_contract_service_cost_alone_is_never_a_write() {
        let (rules, mut snapshot) = october_applied();
        // Autotask reads back a cost the adjustment did not set (the Service's, say).
        for service in snapshot.contract_services.values_mut() {
            service.unit_cost = Some(Decimal::new(1, 0));
        }
        let plan = plan(&rules, &october(), &snapshot);
        assert!(
            plan.changes.iter().all(|c| c.entity() != Entity::ContractServiceAdjustments),
            "{:#?}",
            plan.changes
        );
    }

    #[test]
    fn hidden_costs_never_turn_into_writes() {
        let (rules, mut snapshot) = october_applied();
        // The API user loses cost permission: every cost now reads null.
        for service in snapshot.contract_services.values_mut() {
            service.unit_cost = None;
        }
        for charge in snapshot.charges.values_mut() {
            charge.unit_cost = None;
            charge.is_billed = true;
        }
        // The same bill with other costs: nothing to write, said once.
        let recosted: Vec<BillLine> = october()
            .into_iter()
            .map(|mut line| {
                line.unit_cost_price += Decimal::ONE;
                line.total_cost += line.quantity;
                line
            })
            .collect();
        let same = plan(&rules, &recosted, &snapshot);
        assert!(same.changes.is_empty(), "{:#?}", same.changes);
        let codes: Vec<&str> = same.warnings.iter().map(|w| w.code.as_str()).collect();
        assert_eq!(codes, vec!["costs_not_visible"]);
        assert!(same.warnings[0].message.contains("3 record(s)"), "{}", same.warnings[0].message);
        // A real price change on a billed period with hidden costs corrects the price only.
        let mut restated = october();
        restated[3] = line("2026-10-01", "Contoso", "Azure Plan", "AZ", "M2", "2", "11.125");
        let corrected = plan(&rules, &restated, &snapshot);
        assert_eq!(corrected.changes.len(), 1, "{:#?}", corrected.changes);
        assert_eq!(corrected.changes[0].fields()["unitPrice"], json!("2.0000"));
        assert!(!corrected.changes[0].fields().contains_key("unitCost"));
    }

    #[test]
    fn duplicate_contracts_for_a_subscription_are_left_alone_and_reported() {
        let (rules, mut snapshot) = october_applied();
        let original = snapshot
            .contracts
            .values()
            .find(|c| c.subscription_id.as_deref() == Some("S1"))
            .cloned()
            .expect("contract");
        snapshot.contracts.insert(77, Contract { id: 77, ..original.clone() });
        let mut lines = october();
        lines.push(line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "40", "5"));
        let left = plan(&rules, &lines, &snapshot);
        assert!(
            left.changes.iter().all(|c| c.key.subscription() != Some("S1")),
            "{:#?}",
            left.changes
        );
        let warning =
            left.warnings.iter().find(|w| w.code == "duplicate_contracts").expect("warned");
        assert!(
            warning
                .message
                .starts_with(&format!("contracts 77, {} all carry subscription S1", original.id))
                || warning.message.starts_with(&format!(
                    "contracts {}, 77 all carry subscription S1",
                    original.id
                )),
            "{}",
            warning.message
        );
    }

    #[test]
    fn a_link_to_the_tenants_own_company_is_not_followed() {
        let rules = default_rules();
        let mut snapshot = company_snapshot();
        snapshot.companies.insert(
            0,
            Company { id: 0, company_name: "MSP".into(), is_active: true, currency_id: None },
        );
        let mut lines = october();
        for line in &mut lines {
            line.autotask_company_id = Some(0);
        }
        let own = plan(&rules, &lines, &snapshot);
        assert!(own.changes.iter().all(|c| c.entity() == Entity::Services), "{:#?}", own.changes);
        assert!(own.warnings.iter().any(|w| w.code == "own_company"), "{:#?}", own.warnings);
    }

    #[test]
    fn a_contract_billing_in_another_currency_is_not_repriced() {
        let (rules, mut snapshot) = october_applied();
        for service in snapshot.contract_services.values_mut() {
            service.foreign_currency = true;
            service.adjusted_price = Some(Decimal::new(1, 0));
        }
        let foreign = plan(&rules, &october(), &snapshot);
        assert!(foreign.changes.is_empty(), "{:#?}", foreign.changes);
        assert!(
            foreign.warnings.iter().any(|w| w.code == "foreign_currency"),
            "{:#?}",
            foreign.warnings
        );
    }

    fn azure(date: &str, price: &str) -> BillLine {
        line(date, "Contoso", "Azure Plan", "AZ", "M1", "1", price)
    }

    #[test]
    fn a_restated_bill_updates_an_unbilled_charge() {
        let rules = default_rules();
        let mut snapshot = company_snapshot();
        converge(&rules, &[azure("2026-11-01", "100"), azure("2026-11-01", "20")], &mut snapshot);
        let restated = converge(
            &rules,
            &[azure("2026-11-01", "100"), azure("2026-11-01", "25")],
            &mut snapshot,
        );
        assert_eq!(
            summary(&restated),
            vec![(
                "update".into(),
                "ContractCharges".into(),
                "subscription:AZ/charge:2026-11-01".into()
            )]
        );
        assert_eq!(restated.changes[0].fields()["unitPrice"], json!("125.0000"));
        assert_eq!(
            restated.changes[0].reason,
            "bill of 2026-11-01 restated: total 120.0000 → 125.0000"
        );
    }

    #[test]
    fn a_restated_bill_corrects_a_billed_charge_so_the_period_adds_up() {
        let rules = default_rules();
        let mut snapshot = company_snapshot();
        converge(&rules, &[azure("2026-11-01", "120")], &mut snapshot);
        for charge in snapshot.charges.values_mut() {
            charge.is_billed = true;
        }
        let restated = converge(&rules, &[azure("2026-11-01", "110")], &mut snapshot);
        let correction = &restated.changes[0];
        assert_eq!(correction.action(), Action::Create);
        assert_eq!(correction.fields()["name"], json!("Azure consumption 2026-11 correction"));
        assert_eq!(correction.fields()["unitPrice"], json!("-10.0000"));
        assert_eq!(correction.fields()["datePurchased"], json!("2026-11-01"));
        // A second restatement after the correction was billed adds a second, distinct correction.
        for charge in snapshot.charges.values_mut() {
            charge.is_billed = true;
        }
        let again = converge(&rules, &[azure("2026-11-01", "112")], &mut snapshot);
        assert_eq!(
            again.changes[0].fields()["name"],
            json!("Azure consumption 2026-11 correction 2")
        );
        assert_eq!(again.changes[0].fields()["unitPrice"], json!("2.0000"));
        let total: Decimal =
            snapshot.charges.values().map(|c| c.unit_quantity * c.unit_price).sum();
        assert_eq!(total, Decimal::new(112, 0));
    }

    #[test]
    fn billed_mismatch_and_hand_edits_can_be_reported_instead() {
        let mut rules = default_rules();
        rules.policies.billed_charge_mismatch.value = BilledChargeMismatch::Report;
        rules.policies.hand_edit.value = HandEdit::Report;
        let mut snapshot = company_snapshot();
        let lines = october();
        converge(&rules, &lines, &mut snapshot);
        for charge in snapshot.charges.values_mut() {
            charge.is_billed = true;
            charge.unit_price += Decimal::ONE;
        }
        for contract in snapshot.contracts.values_mut() {
            contract.contract_name = "Renamed by hand".into();
        }
        let report = plan(&rules, &lines, &snapshot);
        assert!(report.changes.is_empty(), "{:#?}", report.changes);
        let codes: Vec<_> = report.warnings.iter().map(|w| w.code.as_str()).collect();
        assert_eq!(codes, vec!["drift", "drift", "billed_charge_mismatch"]);
    }

    #[test]
    fn reported_hand_edits_show_autotask_s_value_as_json_and_the_rules_value() {
        let mut rules = default_rules();
        rules.policies.hand_edit.value = HandEdit::Report;
        let mut snapshot = company_snapshot();
        converge(&rules, &october(), &mut snapshot);
        let contract = snapshot
            .contracts
            .values_mut()
            .find(|c| c.subscription_id.as_deref() == Some("S1"))
            .expect("S1");
        contract.contract_name = "Renamed by hand".into();
        let sla = contract.service_level_agreement_id.expect("cmat sets the SLA");
        contract.service_level_agreement_id = None;
        let id = contract.id;
        let report = plan(&rules, &october(), &snapshot);
        assert!(report.changes.is_empty(), "{:#?}", report.changes);
        let messages: Vec<&str> = report.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                format!("contract {id} contractName is \"Renamed by hand\" in Autotask, the rules say \"Microsoft 365 - Contoso\"; left as it is (policy hand_edit = report)"),
                format!("contract {id} serviceLevelAgreementID is null in Autotask, the rules say {sla}; left as it is (policy hand_edit = report)"),
            ]
        );
        assert!(report.warnings.iter().all(|w| w.source == format!("Contracts/{id}")));
    }

    #[test]
    fn hand_edits_are_overwritten_by_default() {
        let (rules, mut snapshot) = october_applied();
        let contract = snapshot
            .contracts
            .values_mut()
            .find(|c| c.subscription_id.as_deref() == Some("S1"))
            .expect("S1");
        contract.contract_name = "Renamed by hand".into();
        let id = contract.id;
        let fix = converge(&rules, &october(), &mut snapshot);
        assert_eq!(fix.changes.len(), 1);
        assert_eq!(fix.changes[0].id(), Some(id));
        assert_eq!(
            fix.changes[0].before().map(|b| b["contractName"].clone()),
            Some(json!("Renamed by hand"))
        );
    }

    #[test]
    fn an_existing_contract_is_found_by_its_subscription_udf_not_its_name() {
        let rules = default_rules();
        let mut snapshot = company_snapshot();
        snapshot.contracts.insert(
            4410,
            Contract {
                id: 4410,
                company_id: 100,
                contract_name: "Microsoft 365 - Contoso".into(),
                contract_type: 7,
                status: 1,
                start_date: "2026-01-01".parse().expect("date"),
                end_date: "2026-12-31".parse().expect("date"),
                service_level_agreement_id: Some(1),
                contract_category: None,
                subscription_id: Some("S1".into()),
            },
        );
        let lines = vec![line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5")];
        let first = converge(&rules, &lines, &mut snapshot);
        assert!(
            first.changes.iter().all(|c| c.entity() != Entity::Contracts),
            "{:#?}",
            first.changes
        );
        assert_eq!(snapshot.contracts.len(), 1);
    }

    #[test]
    fn a_bill_after_the_contract_end_renews_the_contract_before_adjusting() {
        let rules = default_rules();
        let mut snapshot = company_snapshot();
        converge(
            &rules,
            &[line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5")],
            &mut snapshot,
        );
        let lines = vec![
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5"),
            line("2027-10-01", "Contoso", "Microsoft CSP", "S1", "A", "11", "5"),
        ];
        let renewal = converge(&rules, &lines, &mut snapshot);
        assert_eq!(renewal.changes[0].fields()["endDate"], json!("2028-09-30"));
        assert_eq!(renewal.changes[1].fields()["effectiveDate"], json!("2027-10-01"));
    }

    #[test]
    fn a_correction_that_landed_a_day_late_counts_for_its_bill() {
        let rules = default_rules();
        let mut snapshot = company_snapshot();
        let october = vec![line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5")];
        converge(&rules, &october, &mut snapshot);
        // The restated bill's adjustment went in on 2026-10-02 (the 1st was taken).
        let restated = vec![line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "12", "5")];
        let plan = plan(&rules, &restated, &snapshot);
        let adjustment = plan
            .changes
            .iter()
            .find(|c| c.entity() == Entity::ContractServiceAdjustments)
            .expect("adjust");
        assert_eq!(adjustment.fields()["unitChange"], json!(2));
        let mut moved = plan.clone();
        moved.changes.retain(|c| c.entity() == Entity::ContractServiceAdjustments);
        if let Write::AdjustContractService(adjustment) = &mut moved.changes[0].write {
            adjustment.effective_date = "2026-10-02".parse().expect("date");
        }
        crate::testing::play(&moved, &mut snapshot);
        let again = self::plan(&rules, &restated, &snapshot);
        assert!(again.changes.is_empty(), "{:#?}", again.changes);
    }

    #[test]
    fn restated_counts_day_after_day_each_take_the_next_free_day() {
        let rules = default_rules();
        let mut snapshot = company_snapshot();
        let bill = |count: &str| {
            vec![line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", count, "5")]
        };
        converge(&rules, &bill("10"), &mut snapshot);
        let mut days = Vec::new();
        for count in ["12", "11", "15"] {
            let restated = converge(&rules, &bill(count), &mut snapshot);
            assert_eq!(restated.changes.len(), 1, "{:#?}", restated.changes);
            days.push(restated.changes[0].fields()["effectiveDate"].clone());
        }
        assert_eq!(days, vec![json!("2026-10-02"), json!("2026-10-03"), json!("2026-10-04")]);
    }

    /// A `for` rule at `line` of mappings/prices.cmat.
    fn scoped(
        scope: Vec<crate::rules::ScopeTerm>,
        line: u32,
        set: impl FnOnce(RuleOrigin) -> crate::rules::ScopedSettings,
    ) -> crate::rules::ScopedRule {
        let origin = RuleOrigin { file: "mappings/prices.cmat".into(), line };
        crate::rules::ScopedRule {
            specificity: crate::rules::Specificity::of(&scope),
            scope,
            set: set(origin.clone()),
            origin,
        }
    }

    fn ruled_at<T>(value: T, origin: &RuleOrigin) -> crate::rules::Ruled<T> {
        crate::rules::Ruled { value, origin: origin.clone() }
    }

    fn adjustments(plan: &Plan) -> Vec<(String, NaiveDate, i64)> {
        plan.changes
            .iter()
            .filter_map(|change| match &change.write {
                Write::AdjustContractService(adjustment) => Some((
                    change.key.to_string(),
                    adjustment.effective_date,
                    adjustment.unit_change,
                )),
                _ => None,
            })
            .collect()
    }

    fn with_decrease(timing: DecreaseTiming) -> RuleSet {
        let mut rules = default_rules();
        rules.scoped.push(scoped(
            vec![crate::rules::ScopeTerm::Service("Microsoft CSP".into())],
            1,
            |origin| crate::rules::ScopedSettings {
                decrease: Some(ruled_at(timing, &origin)),
                ..Default::default()
            },
        ));
        rules
    }

    fn october_and(lines: &[BillLine]) -> Vec<BillLine> {
        october().into_iter().chain(lines.iter().cloned()).collect()
    }

    #[test]
    fn a_decrease_at_the_next_period_is_dated_there_and_converges() {
        let rules = with_decrease(DecreaseTiming::NextPeriod);
        let mut snapshot = company_snapshot();
        converge(&rules, &october(), &mut snapshot);
        let november = october_and(&[
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "8", "5"),
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "B", "4", "7"),
        ]);
        let plan = converge(&rules, &november, &mut snapshot);
        // The increase on the Billing Date, the decrease from the next monthly period.
        assert_eq!(
            adjustments(&plan),
            [
                ("subscription:S1/item:A".to_string(), "2026-12-01".parse().expect("date"), -2),
                ("subscription:S1/item:B".to_string(), "2026-11-01".parse().expect("date"), 1),
            ]
        );
        let a = plan.changes.iter().find(|c| c.key.to_string().ends_with("item:A")).expect("A");
        assert_eq!(a.rule, "mappings/prices.cmat:1");
        assert!(
            a.reason.contains(
                "the decrease takes effect 2026-12-01, at the start of the next billing period"
            ),
            "{}",
            a.reason
        );
        // December's bill says the same count: nothing more to do.
        let december = october_and(&[
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "8", "5"),
            line("2026-12-01", "Contoso", "Microsoft CSP", "S1", "A", "8", "5"),
            line("2026-12-01", "Contoso", "Microsoft CSP", "S1", "B", "4", "7"),
        ]);
        assert!(plan_changes_of(&rules, &december, &snapshot).is_empty());
    }

    fn plan_changes_of(rules: &RuleSet, lines: &[BillLine], snapshot: &Snapshot) -> Vec<String> {
        plan(rules, lines, snapshot).changes.iter().map(|c| c.key.to_string()).collect()
    }

    #[test]
    fn a_decrease_at_the_term_end_waits_for_the_first_bill_of_the_next_term() {
        let rules = with_decrease(DecreaseTiming::TermEnd);
        let mut snapshot = company_snapshot();
        converge(&rules, &october(), &mut snapshot);
        let november =
            october_and(&[line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "8", "5")]);
        let plan = converge(&rules, &november, &mut snapshot);
        // A is not decreased (deferred); B left the bill: its removal waits too.
        assert!(adjustments(&plan).is_empty(), "{:?}", adjustments(&plan));
        let deferred: Vec<&str> = plan
            .warnings
            .iter()
            .filter(|w| w.code == "decrease_deferred")
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(deferred.len(), 2, "{deferred:?}");
        assert!(
            deferred[0].contains("licence count 10 → 8 takes effect 2027-10-01"),
            "{deferred:?}"
        );
        // The bill that opens the next term brings the decrease, dated on it.
        let renewal =
            october_and(&[line("2027-10-01", "Contoso", "Microsoft CSP", "S1", "A", "8", "5")]);
        let plan = converge(&rules, &renewal, &mut snapshot);
        let changes = adjustments(&plan);
        assert!(
            changes.contains(&(
                "subscription:S1/item:A".into(),
                "2027-10-01".parse().expect("date"),
                -2
            )),
            "{changes:?}"
        );
    }

    #[test]
    fn rules_only_the_data_makes_meet_are_an_ambiguity_and_their_lines_are_left_out() {
        let mut rules = default_rules();
        for (line, term, markup) in [
            (1, crate::rules::ScopeTerm::Organization("Contoso".into()), "0.10"),
            (5, crate::rules::ScopeTerm::CustomerNumber("C1".into()), "0.20"),
        ] {
            rules.scoped.push(scoped(vec![term], line, |origin| crate::rules::ScopedSettings {
                unit_price: Some(ruled_at(
                    crate::rules::PriceSource::CostPlusMarkup(markup.parse().expect("markup")),
                    &origin,
                )),
                ..Default::default()
            }));
        }
        let plan = plan(&rules, &october(), &company_snapshot());
        assert!(plan.changes.is_empty(), "{:?}", summary(&plan));
        let ambiguous: Vec<&str> = plan
            .warnings
            .iter()
            .filter(|w| w.code == "ambiguous_rules")
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(ambiguous.len(), 2, "{ambiguous:?}");
        assert!(ambiguous[0].contains("the rules at mappings/prices.cmat:1 and mappings/prices.cmat:5 are equally specific and set `unit_price` differently"), "{ambiguous:?}");
    }

    #[test]
    fn zero_lines_are_skipped_and_a_named_service_is_used_as_it_is() {
        let mut rules = default_rules();
        rules.scoped.push(scoped(
            vec![crate::rules::ScopeTerm::Service("Microsoft CSP".into())],
            1,
            |origin| crate::rules::ScopedSettings {
                skip_zero_amount: Some(ruled_at(true, &origin)),
                service: Some(ruled_at(812, &origin)),
                ..Default::default()
            },
        ));
        let lines = vec![
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5"),
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "TRIAL", "25", "0"),
        ];
        let plan = plan(&rules, &lines, &company_snapshot());
        assert!(!plan.changes.iter().any(|c| c.entity() == Entity::Services), "no Service created");
        let keys: Vec<String> = plan.changes.iter().map(|c| c.key.to_string()).collect();
        assert_eq!(keys, ["subscription:S1", "subscription:S1/item:A"]);
        let Write::AdjustContractService(adjustment) = &plan.changes[1].write else {
            panic!("an adjustment");
        };
        assert_eq!(adjustment.service, Id::Existing(812));
        let skipped: Vec<&str> = plan
            .warnings
            .iter()
            .filter(|w| w.code == "skipped_by_rule")
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(skipped, ["organization \"Contoso\": 1 line(s) not billed, skipped by the rule at mappings/prices.cmat:1 (0 EUR in total sales)"]);
    }

    #[test]
    fn a_product_skipped_after_it_was_billed_is_left_and_said() {
        let (mut rules, snapshot) = october_applied();
        rules.scoped.push(scoped(
            vec![crate::rules::ScopeTerm::ItemCode("B".into())],
            9,
            |origin| crate::rules::ScopedSettings {
                skip: Some(ruled_at(true, &origin)),
                ..Default::default()
            },
        ));
        let plan = plan(&rules, &october(), &snapshot);
        assert!(plan.changes.is_empty(), "{:?}", summary(&plan));
        let said: Vec<&str> = plan
            .warnings
            .iter()
            .filter(|w| w.code == "skipped_but_billed")
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(said.len(), 1, "{:?}", plan.warnings);
        assert!(said[0].starts_with("product B of subscription S1 is skipped by the rule at mappings/prices.cmat:9, but contract #"), "{said:?}");
        assert!(said[0].contains("still bills 3 unit(s)"), "{said:?}");
    }

    #[test]
    fn a_period_charged_under_another_grouping_is_not_charged_twice() {
        let (mut rules, mut snapshot) = october_applied();
        rules.consumption.split.value = crate::rules::ConsumptionSplit::MeterCategory;
        // October is billed in full as one charge: nothing to do, nothing to say.
        let unchanged = plan(&rules, &october(), &snapshot);
        assert!(unchanged.changes.is_empty(), "{:?}", summary(&unchanged));
        assert!(unchanged.warnings.is_empty(), "{:?}", unchanged.warnings);
        // October restated: the old charge is not corrected per category (that would bill the
        // period twice); said once for the period.
        let mut restated = october();
        restated[3].total_sales += Decimal::ONE;
        let restated_plan = plan(&rules, &restated, &snapshot);
        assert!(restated_plan.changes.is_empty(), "{:?}", summary(&restated_plan));
        let warned: Vec<&str> = restated_plan
            .warnings
            .iter()
            .filter(|w| w.code == "charge_grouping_changed")
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains("is charged 20.7500 as \"Azure consumption 2026-10\""),
            "{warned:?}"
        );
        // A new period is charged per meter category, and converges.
        let november = october_and(&[
            line("2026-11-01", "Contoso", "Azure Plan", "AZ", "M1", "1", "3"),
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5"),
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "B", "3", "7"),
        ]);
        let plan = converge(&rules, &november, &mut snapshot);
        let keys: Vec<String> = plan.changes.iter().map(|c| c.key.to_string()).collect();
        assert_eq!(keys, ["subscription:AZ/charge:2026-11-01/group:Product M1"]);
    }

    #[test]
    fn a_monthly_period_boundary_is_not_a_taken_day() {
        // Autotask starts a unit period every month; on 2026-11-01 the count did not change,
        // so November's change goes on its Billing Date.
        let unit = |id: i64, start: &str, end: &str, units: i64| ContractServiceUnit {
            id,
            contract_id: 1,
            contract_service_id: 2,
            service_id: 3,
            start_date: start.parse().expect("date"),
            end_date: end.parse().expect("date"),
            units,
            price: None,
            cost: None,
        };
        let october = unit(1, "2026-10-01", "2026-10-31", 10);
        let november = unit(2, "2026-11-01", "2026-11-30", 10);
        let periods = vec![&october, &november];
        let end: NaiveDate = "2027-09-30".parse().expect("date");
        assert_eq!(
            adjustment_day(&periods, "2026-11-01".parse().expect("date"), end),
            ("2026-11-01".parse().expect("date"), 10)
        );
        // The October start is the adjustment that added the service (0 → 10): taken.
        assert_eq!(
            adjustment_day(&periods, "2026-10-01".parse().expect("date"), end),
            ("2026-10-02".parse().expect("date"), 10)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A bill line from small generated parts: organization, service, subscription, item,
        /// date, quantity and price.
        fn arbitrary_line() -> impl Strategy<Value = BillLine> {
            (0..3usize, 0..4usize, 0..3usize, 0..4usize, 0..3usize, 0..40i64, 1..5_000i64).prop_map(
                |(org, service, sub, item, month, quantity, cents)| {
                    let service =
                        ["Microsoft CSP", "Microsoft NCE", "Azure Plan", "Microsoft Azure"]
                            [service];
                    let organization = ["Contoso", "Fabrikam", "Northwind"][org];
                    // A subscription belongs to one organization and one kind of service.
                    let subscription = format!(
                        "{organization}-{}-{sub}",
                        if service.contains("Azure") { "az" } else { "lic" }
                    );
                    let date = format!("2026-{:02}-01", 9 + month);
                    let price = Decimal::new(cents, 2).to_string();
                    line(
                        &date,
                        organization,
                        service,
                        &subscription,
                        &format!("I{item}"),
                        &quantity.to_string(),
                        &price,
                    )
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Applying a plan's changes and planning again gives an empty plan, for any bills,
            /// and again when later bills (churn, restatements) arrive on top.
            #[test]
            fn a_played_plan_leaves_nothing_to_do(
                first in proptest::collection::vec(arbitrary_line(), 1..25),
                later in proptest::collection::vec(arbitrary_line(), 0..25),
            ) {
                let rules = default_rules();
                let mut snapshot = company_snapshot();
                let plan1 = plan(&rules, &first, &snapshot);
                crate::testing::play(&plan1, &mut snapshot);
                let again = plan(&rules, &first, &snapshot);
                prop_assert!(again.changes.is_empty(), "{:#?}", again.changes);

                let mut all = first.clone();
                all.extend(later);
                let plan2 = plan(&rules, &all, &snapshot);
                crate::testing::play(&plan2, &mut snapshot);
                let after = plan(&rules, &all, &snapshot);
                prop_assert!(after.changes.is_empty(), "{:#?}", after.changes);
                let subscriptions: BTreeSet<_> = snapshot.contracts.values().map(|c| c.subscription_id.clone()).collect();
                prop_assert_eq!(subscriptions.len(), snapshot.contracts.len(), "one contract per subscription");
                let skus: BTreeSet<_> = snapshot.services.values().map(|s| s.sku.clone()).collect();
                prop_assert_eq!(skus.len(), snapshot.services.len(), "one Service per sku");
            }
        }
    }

    /// The price forms of a real price book (an uplift on the list price, a markup per unit, a
    /// price point, a cap, an absolute floor) and a distributor's rebate on the cost: the
    /// desired prices and costs are the book's, and a plan of them converges.
    #[test]
    fn price_forms_and_a_cost_rebate_price_the_lines_and_converge() {
        use crate::rules::{CostSource, MarginFloor, PricePoint, PriceSource, ScopeTerm};
        let mut rules = default_rules();
        let d = |text: &str| text.parse::<Decimal>().expect("decimal");
        rules.scoped.push(scoped(vec![ScopeTerm::ItemCode("A".into())], 1, |origin| {
            crate::rules::ScopedSettings {
                unit_price: Some(ruled_at(PriceSource::SalesPlusUplift(d("0.05")), &origin)),
                price_point: Some(ruled_at(PricePoint::Ending(d("0.99")), &origin)),
                ..Default::default()
            }
        }));
        rules.scoped.push(scoped(vec![ScopeTerm::ItemCode("B".into())], 5, |origin| {
            crate::rules::ScopedSettings {
                unit_price: Some(ruled_at(PriceSource::CostPlusAmount(d("1.50")), &origin)),
                price_point: Some(ruled_at(PricePoint::Whole, &origin)),
                max_price: Some(ruled_at(d("7.00"), &origin)),
                margin_floor: Some(ruled_at(MarginFloor::Amount(d("2.00")), &origin)),
                ..Default::default()
            }
        }));
        rules.scoped.push(scoped(vec![ScopeTerm::Service("Microsoft CSP".into())], 10, |origin| {
            crate::rules::ScopedSettings {
                unit_cost: Some(ruled_at(CostSource::CostPercent(d("-0.03")), &origin)),
                ..Default::default()
            }
        }));
        let desired = desired_state(&rules, &october());
        let services = &desired.contracts["S1"].services;
        // A: 5 + 5 % = 5.25, up to 5.99; cost 4 less 3 %.
        assert_eq!((services["A"].unit_price, services["A"].unit_cost), (d("5.99"), d("3.88")));
        // B: cost 5.60 + 1.50 = 7.10, up to 8, capped at 7; cost 5.60 less 3 %.
        assert_eq!((services["B"].unit_price, services["B"].unit_cost), (d("7.00"), d("5.432")));
        // The floor sees the rebated cost: 7.00 < 5.432 + 2.00.
        let floors: Vec<&str> = desired
            .warnings
            .iter()
            .filter(|w| w.code == crate::desired::WarningCode::BelowMarginFloor)
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(floors.len(), 1, "{floors:?}");
        assert!(floors[0].contains("under the floor of 2 per unit (mappings/prices.cmat:5)"));
        // Azure is out of every rule's scope: its charge is the defaults'.
        assert_eq!(
            desired.contracts["AZ"].charges.values().next().map(|c| c.unit_cost),
            Some(d("16.6000"))
        );
        let mut snapshot = company_snapshot();
        converge(&rules, &october(), &mut snapshot);
    }

    /// A price change written ahead (`from`) takes over on the bills dated from then, and the
    /// plan names the dated rule; `priority` settles two groups' rules the data makes meet; a
    /// broker's rebate is the cost written. Each month converges.
    #[test]
    fn dated_rules_priorities_and_brokers_price_each_bill_and_converge() {
        use crate::rules::{CostSource, PriceSource, ScopeTerm};
        let d = |text: &str| text.parse::<Decimal>().expect("decimal");
        let mut rules = default_rules();
        let price = |value: &'static str| {
            move |origin: RuleOrigin| crate::rules::ScopedSettings {
                unit_price: Some(ruled_at(PriceSource::Fixed(value.parse().expect("p")), &origin)),
                ..Default::default()
            }
        };
        rules.scoped.push(scoped(vec![ScopeTerm::ItemCode("A".into())], 1, price("6")));
        let dated = vec![
            ScopeTerm::ItemCode("A".into()),
            ScopeTerm::From("2026-11-01".parse().expect("date")),
        ];
        rules.scoped.push(scoped(dated, 5, price("7")));
        rules.scoped.push(scoped(vec![ScopeTerm::OrganizationGroup("G1".into())], 10, price("8")));
        let mut preferred = scoped(vec![ScopeTerm::OrganizationGroup("G2".into())], 15, price("9"));
        preferred.specificity = preferred.specificity.with_priority(1);
        rules.scoped.push(preferred);
        rules.scoped.push(scoped(vec![ScopeTerm::Broker("Broker".into())], 20, |origin| {
            crate::rules::ScopedSettings {
                unit_cost: Some(ruled_at(CostSource::CostPercent(d("-0.1")), &origin)),
                ..Default::default()
            }
        }));
        let month = |date: &str| {
            let mut b = line(date, "Contoso", "Microsoft CSP", "S1", "B", "3", "7");
            b.organization_groups = "G1; G2".into();
            vec![line(date, "Contoso", "Microsoft CSP", "S1", "A", "10", "5"), b]
        };
        let mut snapshot = company_snapshot();
        converge(&rules, &month("2026-10-01"), &mut snapshot);
        let october = &desired_state(&rules, &month("2026-10-01")).contracts["S1"].services;
        assert_eq!(october["A"].unit_price, d("6"));
        // B: the group with priority 1 wins the tie; the broker's 10 % off the cost 5.60.
        assert_eq!((october["B"].unit_price, october["B"].unit_cost), (d("9"), d("5.04")));
        let mut bills = month("2026-10-01");
        bills.extend(month("2026-11-01"));
        let november = converge(&rules, &bills, &mut snapshot);
        let reasons: Vec<String> = november
            .changes
            .iter()
            .filter(|change| change.key.to_string().ends_with("item:A"))
            .map(|change| change.reason.clone())
            .collect();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].contains("unit price 6.0000 → 7.0000")
                && reasons[0].contains(
                    "priced by the dated rule at mappings/prices.cmat:5 (from 2026-11-01)"
                ),
            "{reasons:?}"
        );
    }

    /// Seat-count tiers: a count crossing a band moves the price with the units, in one
    /// adjustment on the bill's date, and each month converges.
    #[test]
    fn a_count_crossing_a_tier_moves_the_price_and_converges() {
        use crate::rules::{PriceSource, ScopeTerm, Tiers};
        let d = |text: &str| text.parse::<Decimal>().expect("decimal");
        let mut rules = default_rules();
        rules.scoped.push(scoped(vec![ScopeTerm::ItemCode("A".into())], 1, |origin| {
            crate::rules::ScopedSettings {
                tiers: Some(ruled_at(
                    Tiers {
                        bands: vec![
                            (1, PriceSource::Fixed(d("6"))),
                            (10, PriceSource::Fixed(d("5"))),
                        ],
                        graduated: false,
                    },
                    &origin,
                )),
                ..Default::default()
            }
        }));
        let bill = |date: &str, count: &str| {
            vec![line(date, "Contoso", "Microsoft CSP", "S1", "A", count, "5")]
        };
        let mut snapshot = company_snapshot();
        converge(&rules, &bill("2026-10-01", "10"), &mut snapshot);
        let october = desired_state(&rules, &bill("2026-10-01", "10"));
        assert_eq!(october.contracts["S1"].services["A"].unit_price, d("5"));
        let mut bills = bill("2026-10-01", "10");
        bills.extend(bill("2026-11-01", "8"));
        let november = converge(&rules, &bills, &mut snapshot);
        let reasons: Vec<&str> = november.changes.iter().map(|c| c.reason.as_str()).collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("licence count 10 → 8")
                    && r.contains("unit price 5.0000 → 6.0000")),
            "{reasons:?}"
        );
    }

    /// A per-seat add-on: a second Service on the product's contract at its own price and
    /// cost, whose units follow the licence count with the product's decrease timing; it is
    /// its own change in the plan, and each month converges.
    #[test]
    fn a_per_seat_add_on_follows_the_licence_count_and_converges() {
        use crate::rules::{AddOn, DecreaseTiming, ScopeTerm};
        let d = |text: &str| text.parse::<Decimal>().expect("decimal");
        let mut rules = default_rules();
        rules.scoped.push(scoped(vec![ScopeTerm::ItemCode("A".into())], 1, |origin| {
            crate::rules::ScopedSettings {
                add_on: Some(ruled_at(
                    AddOn { service: 7010, price: d("2.50"), cost: d("0.50") },
                    &origin,
                )),
                decrease: Some(ruled_at(DecreaseTiming::NextPeriod, &origin)),
                ..Default::default()
            }
        }));
        let mut snapshot = company_snapshot();
        snapshot.services.insert(
            7010,
            crate::snapshot::Service {
                id: 7010,
                name: "Managed support per seat".into(),
                sku: None,
                billing_code_id: 29682801,
                period_type: 2,
                unit_price: d("3"),
                unit_cost: None,
                is_active: true,
            },
        );
        let bill = |date: &str, count: &str| {
            vec![line(date, "Contoso", "Microsoft CSP", "S1", "A", count, "5")]
        };
        let october = converge(&rules, &bill("2026-10-01", "10"), &mut snapshot);
        let add_on: Vec<&crate::plan::PlanChange> =
            october.changes.iter().filter(|c| c.key.to_string().ends_with("A+7010")).collect();
        assert_eq!(add_on.len(), 1, "{:?}", summary(&october));
        assert!(add_on[0].reason.contains("10 units"), "{}", add_on[0].reason);
        let desired = desired_state(&rules, &bill("2026-10-01", "10"));
        let service = &desired.contracts["S1"].services["A+7010"];
        assert_eq!(
            (service.units, service.unit_price, service.unit_cost, service.service_id),
            (10, d("2.50"), d("0.50"), Some(7010))
        );
        // Down to 8 seats: the product and its add-on both wait for the next period.
        let mut bills = bill("2026-10-01", "10");
        bills.extend(bill("2026-11-15", "8"));
        let november = converge(&rules, &bills, &mut snapshot);
        let dated: Vec<(NaiveDate, i64)> =
            adjustments(&november).into_iter().map(|(_, date, change)| (date, change)).collect();
        assert_eq!(dated.len(), 2, "{dated:?}");
        assert_eq!(dated[0], dated[1], "the add-on moves with its product");
        assert!(dated[0].0 > "2026-11-15".parse::<NaiveDate>().expect("date") && dated[0].1 == -2);
    }
}
