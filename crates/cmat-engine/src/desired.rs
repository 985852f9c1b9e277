//! Desired state: what Autotask should hold according to the imported bills and the rules.
//!
//! A pure function of (rules, bill lines): no snapshot, no network, no clock. The diff compares
//! its output with the Autotask snapshot.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Months, NaiveDate};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::billing::{BillLine, LineSource};
pub use crate::rules::resolutions::Resolutions;
use crate::rules::scoped::{meter_category, Ambiguity};
use crate::rules::{
    BillingKind, ConsumptionSplit, ContractStart, DecreaseTiming, Resolved, Rounding, RuleOrigin,
    RuleSet, Ruled, TemplateField,
};

mod wording;

/// Everything the bills ask for, keyed by subscription id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    /// One contract per billed subscription: what the diff compares with Autotask's.
    pub contracts: BTreeMap<String, DesiredContract>,
    /// Lines left out and why, sorted: the diff passes them on to the plan.
    pub warnings: Vec<Warning>,
    /// Products a `skip` rule leaves out, by subscription and product key, with the rule: the
    /// diff says when Autotask still bills them.
    pub skipped: BTreeMap<(String, String), RuleOrigin>,
}

/// The contract one subscription's bills ask for: its fields, and its licence services or
/// consumption charges.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredContract {
    /// Cloudmore's Subscription ID: the contract's natural key (the subscription UDF).
    pub subscription_id: String,
    /// Licence (contract services) or consumption (charges), by the `service` rule.
    pub kind: BillingKind,
    /// The Autotask company billed: a company rule's, else AutotaskCompanyID.
    pub company_id: i64,
    /// For messages and name templates: the current bill's Organization Name.
    pub organization_name: String,
    /// The current bill's Service Name, for reasons and charge descriptions.
    pub service_name: String,
    /// The current bill's Currency Code (`EUR`).
    pub currency_code: String,
    /// The contract's name by its template (shortened to Autotask's length by the diff).
    pub name: String,
    /// The earliest bill imported: where a new contract's start counts from.
    pub first_billing_date: NaiveDate,
    /// The subscription's current bill.
    pub last_billing_date: NaiveDate,
    /// startDate for a new contract, by `contract.start`.
    pub start_date: NaiveDate,
    /// endDate for a new contract: start plus whole terms, covering the current bill.
    pub end_date: NaiveDate,
    /// The months of one commitment term (a `for` rule's, else the `contract` block's).
    pub term_months: Ruled<u32>,
    /// Licence products by product key (Item Code or Product ID), including those that
    /// left the current bill (units 0).
    pub services: BTreeMap<String, DesiredContractService>,
    /// Consumption: one charge per Billing Date, and meter category when split by it.
    pub charges: BTreeMap<(NaiveDate, Option<String>), DesiredCharge>,
    /// The subscription is absent from its organization's latest bill.
    pub stopped_appearing: bool,
    /// The first line's place, for warnings about the contract.
    pub source: LineSource,
    /// The `service` rule that bills the subscription: the rule of contract edits.
    pub origin: RuleOrigin,
    /// Contracts.contractCategory, when a rule sets one.
    pub category: Option<Ruled<i64>>,
    /// Contracts.organizationalLevelAssociationID of a new contract, when a rule sets one.
    pub line_of_business: Option<Ruled<i64>>,
    /// Contracts.serviceLevelAgreementID.
    pub service_level_agreement: Ruled<i64>,
    /// The rule a new contract is named after in the plan: a `for` rule that set its company
    /// or name, else the `service` rule.
    pub placement_rule: RuleOrigin,
}

/// What one licence product should be on its contract: units, price and cost in force from
/// the current bill, and the rules that decided them (for the plan's reasons).
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredContractService {
    /// Item Code or Product ID (with its term when Services are per term): the Service's sku.
    pub product_key: String,
    /// For reasons and a created Service's name.
    pub product_name: String,
    /// The units to bill: the count after included and minimum quantities.
    pub units: i64,
    /// The price per unit the rules give, at the rules' scale.
    pub unit_price: Decimal,
    /// The cost per unit the rules give, at the rules' scale.
    pub unit_cost: Decimal,
    /// Billing Date of the bill the units come from (the subscription's current bill).
    pub effective_date: NaiveDate,
    /// False for a product billed earlier but absent from the current bill.
    pub on_current_bill: bool,
    /// The bill's Payment Frequency (`Monthly`, `Annual`…), empty when the export has none:
    /// a decrease on an annual term is worth a second look, so the plan says it.
    pub payment_frequency: String,
    /// The product's first line, for warnings about it.
    pub source: LineSource,
    /// The licence count on the bill, before included and minimum quantities.
    pub licence_count: i64,
    /// The included- or minimum-quantity rule that made `units` differ from the count.
    pub units_rule: Option<RuleOrigin>,
    /// The Autotask Service a rule names for the product; `None`: found by sku or created.
    pub service_id: Option<i64>,
    /// The rule that names `service_id`.
    pub service_rule: Option<RuleOrigin>,
    /// A Service created for this product is named for its term as well.
    pub per_term: bool,
    /// Decimal places of the price and cost.
    pub scale: u32,
    /// The rule the price comes from.
    pub price_rule: RuleOrigin,
    /// A dated rule (`from`, `until`) that shapes the price or cost, as the plan names it:
    /// `mappings/p.cmat:12 (from 2026-12-01)`.
    pub dated_price_rule: Option<String>,
    /// When a lower count takes effect, and by which rule.
    pub decrease: Ruled<DecreaseTiming>,
    /// What a product that left the bill does to its units, and by which rule.
    pub removed_product: Ruled<crate::rules::RemovedProduct>,
}

/// One consumption charge a period's lines ask for: the natural key is contract, date and
/// name, so names are decided here and never change for a period.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredCharge {
    /// The Billing Date: the charge's datePurchased.
    pub date: NaiveDate,
    /// The charge's name by the `consumption` template.
    pub name: String,
    /// The stem of a correcting charge's name, for a restated period already billed.
    pub correction_name: String,
    /// The period's total price (the charge is one unit of it).
    pub unit_price: Decimal,
    /// The period's total cost.
    pub unit_cost: Decimal,
    /// How many bill lines the charge sums, for its description.
    pub line_count: usize,
    /// The period's first line, for warnings about it.
    pub source: LineSource,
    /// The meter category when charges are split by it; `None` for one charge per period.
    pub group: Option<String>,
    /// The period's charge name without a meter category: the stem every grouping's charge
    /// names of this period start with.
    pub period_name: String,
    /// Decimal places of the price and cost.
    pub scale: u32,
    /// How a corrected unit price is rounded to `scale`.
    pub rounding: Rounding,
    /// The rule the price comes from.
    pub price_rule: RuleOrigin,
    /// The rule the charge is named by.
    pub name_rule: RuleOrigin,
    /// What a billed charge the bill no longer agrees with becomes, and by which rule.
    pub billed_charge_mismatch: Ruled<crate::rules::BilledChargeMismatch>,
}

impl DesiredCharge {
    /// An amount at the charge's scale, rounded by its rule (a restated charge's new price).
    pub fn round(&self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.scale, self.rounding.strategy())
    }
}

/// Something a user must see and can act on. Never a silent drop.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    /// What kind of problem: the plan and the report group and count by it.
    pub code: WarningCode,
    /// What happened and what to do, in words.
    pub message: String,
    /// Where to look: a bill line (`bill.csv:12`) or an Autotask record (`Contracts/7`).
    pub source: String,
}

/// The kinds of [`Warning`]: stable names in the plan's JSON ([`WarningCode::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WarningCode {
    /// An organization without a company: its lines are left out.
    UnlinkedOrganization,
    /// A Service Name no `service` rule bills: its lines are left out.
    UnmappedService,
    /// A subscription absent from its organization's latest bill.
    SubscriptionStoppedAppearing,
    /// Lines of one subscription that cannot be one contract (companies, kinds, prices).
    ConflictingLines,
    /// A licence count that is not a whole number: the product is left out.
    FractionalLicenceQuantity,
    /// A negative (or too large) licence count: the product is left out.
    NegativeLicenceQuantity,
    /// Amounts in another currency than the organization's or company's: never converted.
    CurrencyMismatch,
    /// A company the snapshot does not have: the subscription is left out.
    UnknownCompany,
    /// Several contracts carry one subscription: nothing is written for it.
    DuplicateContracts,
    /// The contract belongs to another company than the bill's: used as it is.
    CompanyMismatch,
    /// Autotask shows no costs to the API user: costs are not compared.
    CostsNotVisible,
    /// Prices in the customer's currency that cannot be compared.
    ForeignCurrency,
    /// A subscription linked to company 0, the tenant's own: left out.
    OwnCompany,
    /// Autotask differs from the rules in a way cmat leaves as it is, or had to adapt to.
    Drift,
    /// A billed charge the bill no longer agrees with, by policy reported.
    BilledChargeMismatch,
    /// No Service has the product's sku and none is created: the product is left out.
    ServiceNotFound,
    /// A bill after the contract's end, or units unknown because the contract ended.
    ContractEndsBeforeBill,
    /// A manual billing line (no Subscription ID) that no rule routes.
    ManualLineNotBilled,
    /// Lines a `skip` rule leaves out of Autotask.
    SkippedByRule,
    /// A price under its margin floor, policy warn.
    BelowMarginFloor,
    /// A price under its margin floor, policy refuse: `apply` refuses the plan.
    MarginFloorRefused,
    /// Two equally specific rules set one thing differently for these lines.
    AmbiguousRules,
    /// A lower licence count that takes effect after the contract's end, written later.
    DecreaseDeferred,
    /// A period already charged under another consumption grouping.
    ChargeGroupingChanged,
    /// A product a `skip` rule leaves out that Autotask still bills.
    SkippedButBilled,
    /// Autotask sent a record of the contract with a field cmat needs null: nothing is
    /// written for the contract until it is complete.
    IncompleteRecord,
}

impl WarningCode {
    /// The code as plans, explain and the report spell it (`unmapped_service`).
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::UnlinkedOrganization => "unlinked_organization",
            WarningCode::UnmappedService => "unmapped_service",
            WarningCode::SubscriptionStoppedAppearing => "subscription_stopped_appearing",
            WarningCode::ConflictingLines => "conflicting_lines",
            WarningCode::FractionalLicenceQuantity => "fractional_licence_quantity",
            WarningCode::NegativeLicenceQuantity => "negative_licence_quantity",
            WarningCode::CurrencyMismatch => "currency_mismatch",
            WarningCode::UnknownCompany => "unknown_company",
            WarningCode::DuplicateContracts => "duplicate_contracts",
            WarningCode::CostsNotVisible => "costs_not_visible",
            WarningCode::ForeignCurrency => "foreign_currency",
            WarningCode::OwnCompany => "own_company",
            WarningCode::CompanyMismatch => "company_mismatch",
            WarningCode::Drift => "drift",
            WarningCode::ManualLineNotBilled => "manual_line_not_billed",
            WarningCode::BilledChargeMismatch => "billed_charge_mismatch",
            WarningCode::ServiceNotFound => "service_not_found",
            WarningCode::ContractEndsBeforeBill => "contract_ends_before_bill",
            WarningCode::SkippedByRule => "skipped_by_rule",
            WarningCode::BelowMarginFloor => "below_margin_floor",
            WarningCode::MarginFloorRefused => "margin_floor_refused",
            WarningCode::AmbiguousRules => "ambiguous_rules",
            WarningCode::DecreaseDeferred => "decrease_deferred",
            WarningCode::ChargeGroupingChanged => "charge_grouping_changed",
            WarningCode::SkippedButBilled => "skipped_but_billed",
            WarningCode::IncompleteRecord => "incomplete_record",
        }
    }
}

impl Warning {
    /// A warning of `code`; `source` names where to look (`bill.csv:12`, `Contracts/7`).
    pub fn new(code: WarningCode, message: impl Into<String>, source: impl Into<String>) -> Self {
        Warning { code, message: message.into(), source: source.into() }
    }
}

/// A line with the index of its resolution.
type ResolvedLine<'a> = (&'a BillLine, usize);

/// Evaluates the rules over every current bill line.
pub fn desired_state(rules: &RuleSet, lines: &[BillLine]) -> DesiredState {
    let latest_bill_of_organization = latest_bill_dates(lines);
    let mut resolutions = Resolutions::new(rules);
    let mut sorted = sort_lines(rules, lines, &mut resolutions);
    let mut warnings = left_out(&mut sorted);
    let mut contracts = BTreeMap::new();
    for (subscription_id, lines) in sorted.by_subscription {
        if let Some(contract) = desired_contract(
            &resolutions,
            subscription_id,
            &lines,
            &latest_bill_of_organization,
            &mut warnings,
        ) {
            contracts.insert(subscription_id.to_string(), contract);
        }
    }
    warnings.sort();
    DesiredState { contracts, warnings, skipped: sorted.skipped_products }
}

/// The bill's lines by what becomes of them: billed by subscription, or left out and why.
/// Unmapped services and unlinked organizations are reported once each.
#[derive(Default)]
struct SortedLines<'a> {
    unmapped: BTreeMap<&'a str, Vec<&'a BillLine>>,
    unlinked: BTreeMap<&'a str, Vec<&'a BillLine>>,
    by_subscription: BTreeMap<&'a str, Vec<ResolvedLine<'a>>>,
    manual: BTreeMap<&'a str, Vec<&'a BillLine>>,
    skipped: BTreeMap<(&'a str, RuleOrigin), Vec<&'a BillLine>>,
    skipped_products: BTreeMap<(String, String), RuleOrigin>,
    ambiguous: BTreeMap<&'a str, (Ambiguity, Vec<&'a BillLine>)>,
}

/// Every line to its place in [`SortedLines`]; a billed line with the index of its resolution.
fn sort_lines<'a>(
    rules: &RuleSet,
    lines: &'a [BillLine],
    resolutions: &mut Resolutions,
) -> SortedLines<'a> {
    let mut sorted = SortedLines::default();
    for line in lines {
        if line.subscription_id.is_empty() {
            // A manual billing line (a discount or fee attached to a service): no contract to
            // put it on, and no rule routes one yet. Shown with its amount, never dropped quietly.
            sorted.manual.entry(&line.organization_name).or_default().push(line);
            continue;
        }
        if !rules.services.contains_key(&line.service_name) {
            sorted.unmapped.entry(&line.service_name).or_default().push(line);
            continue;
        }
        let index = match resolutions.of(line) {
            Ok(index) => index,
            Err(ambiguity) => {
                sorted
                    .ambiguous
                    .entry(&line.subscription_id)
                    .or_insert_with(|| (ambiguity, Vec::new()))
                    .1
                    .push(line);
                continue;
            }
        };
        let resolved = resolutions.get(index);
        if let Some(rule) = resolved.skipped_by(line) {
            sorted
                .skipped_products
                .entry((line.subscription_id.clone(), product_key(rules, line, resolved)))
                .or_insert_with(|| rule.clone());
            sorted.skipped.entry((&line.organization_name, rule.clone())).or_default().push(line);
        } else if company_of(rules, line, resolved).is_none() {
            sorted.unlinked.entry(&line.organization_name).or_default().push(line);
        } else {
            sorted.by_subscription.entry(&line.subscription_id).or_default().push((line, index));
        }
    }
    sorted
}

/// The warnings for the lines left out (taken from `sorted`, which keeps what is billed).
fn left_out(sorted: &mut SortedLines) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for (service, lines) in std::mem::take(&mut sorted.unmapped) {
        warnings.push(Warning::unmapped_service(service, &lines));
    }
    for (organization, lines) in std::mem::take(&mut sorted.unlinked) {
        warnings.push(Warning::unlinked_organization(organization, &lines));
    }
    for ((organization, rule), lines) in std::mem::take(&mut sorted.skipped) {
        warnings.push(Warning::skipped_by_rule(organization, &rule, &lines));
    }
    for (subscription, (ambiguity, lines)) in std::mem::take(&mut sorted.ambiguous) {
        warnings.push(Warning::ambiguous_rules(subscription, &ambiguity, &lines));
    }
    for (organization, lines) in std::mem::take(&mut sorted.manual) {
        // Manual billing lines (no Subscription ID), said once per organization.
        warnings.push(Warning::manual_lines_not_billed(organization, &lines));
    }
    warnings
}

/// Each organization's latest Billing Date: a subscription absent from it stopped appearing.
fn latest_bill_dates(lines: &[BillLine]) -> BTreeMap<&str, NaiveDate> {
    let mut latest: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for line in lines {
        let entry = latest.entry(&line.organization_name).or_insert(line.billing_date);
        *entry = (*entry).max(line.billing_date);
    }
    latest
}

/// A company rule (scoped, then top-level) wins over the organization's AutotaskCompanyID
/// column.
pub fn company_of(rules: &RuleSet, line: &BillLine, resolved: &Resolved<'_>) -> Option<i64> {
    company_for(rules, &line.organization_name, line.autotask_company_id, resolved)
}

/// [`company_of`] from a line's parts (views that hold stored lines, not [`BillLine`]s).
pub fn company_for(
    rules: &RuleSet,
    organization_name: &str,
    autotask_company_id: Option<i64>,
    resolved: &Resolved<'_>,
) -> Option<i64> {
    if let Some(rule) = resolved.company {
        return Some(rule.value);
    }
    if let Some(explicit) = rules.companies.explicit.get(organization_name) {
        return Some(explicit.value);
    }
    rules.companies.column.as_ref().and(autotask_company_id)
}

/// Where one bill line goes, as [`desired_state`] routes it: the same lookups for views that
/// read lines one at a time (the billing review), so the page and the plan never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRoute {
    /// No Subscription ID: a manual billing line.
    Manual,
    /// Its Service Name has no `service` rule.
    Unmapped,
    /// Two equally specific rules set one thing differently for it: left out.
    Ambiguous,
    /// A `skip` or `skip_zero_amount` rule leaves it out.
    Skipped,
    /// No company: no rule and no AutotaskCompanyID.
    Unlinked,
    /// Billed, to this company.
    Billed {
        /// Licence or consumption, by the `service` rule.
        kind: BillingKind,
        /// The company billed.
        company_id: i64,
    },
}

/// The route of one line ([`LineRoute`]); `zero_amount` is Total Sales and Total Cost both 0.
pub fn route_of(
    rules: &RuleSet,
    facts: &crate::rules::LineFacts<'_>,
    autotask_company_id: Option<i64>,
    zero_amount: bool,
) -> LineRoute {
    if facts.subscription.is_empty() {
        return LineRoute::Manual;
    }
    let Some(kind) = rules.services.get(facts.service).map(|rule| rule.value) else {
        return LineRoute::Unmapped;
    };
    let Ok(resolved) = rules.resolve(facts) else {
        return LineRoute::Ambiguous;
    };
    if resolved.skip_rule(zero_amount).is_some() {
        return LineRoute::Skipped;
    }
    match company_for(rules, facts.organization, autotask_company_id, &resolved) {
        Some(company_id) => LineRoute::Billed { kind, company_id },
        None => LineRoute::Unlinked,
    }
}

/// The contract a subscription's lines ask for, with its licence services or consumption
/// charges; None (said in `warnings` where it is the lines' doing) when it is left out.
fn desired_contract(
    resolutions: &Resolutions<'_>,
    subscription_id: &str,
    lines: &[ResolvedLine],
    latest_bill_of_organization: &BTreeMap<&str, NaiveDate>,
    warnings: &mut Vec<Warning>,
) -> Option<DesiredContract> {
    let (service_rule, company_id) = match route_subscription(resolutions, subscription_id, lines) {
        Ok(route) => route,
        Err(warning) => {
            warnings.extend(warning);
            return None;
        }
    };
    currency_warnings(subscription_id, lines, warnings);
    let mut contract = contract_fields(resolutions, subscription_id, lines, service_rule)?;
    contract.company_id = company_id;
    contract.stopped_appearing = latest_bill_of_organization
        .get(contract.organization_name.as_str())
        .is_some_and(|latest| *latest > contract.last_billing_date);
    match contract.kind {
        BillingKind::Licence => {
            let current: Vec<ResolvedLine> = lines
                .iter()
                .copied()
                .filter(|(line, _)| line.billing_date == contract.last_billing_date)
                .collect();
            contract.services =
                desired_services(resolutions, subscription_id, lines, &current, warnings)
        }
        BillingKind::Consumption => {
            contract.charges = desired_charges(resolutions, subscription_id, lines, warnings)
        }
    }
    Some(contract)
}

/// The `service` rule and company a subscription's lines go to: one subscription, one company,
/// one kind. Anything else is ambiguous and left out, with its warning (none when the lines
/// have no rule or no company at all: [`sort_lines`] has said so).
fn route_subscription<'r>(
    resolutions: &Resolutions<'r>,
    subscription_id: &str,
    lines: &[ResolvedLine],
) -> Result<(&'r Ruled<BillingKind>, i64), Option<Warning>> {
    let rules = resolutions.rules();
    let (first, first_index) = lines[0];
    let service_rule = rules.services.get(&first.service_name).ok_or(None)?;
    let company_id = company_of(rules, first, resolutions.get(first_index)).ok_or(None)?;
    match conflicting_lines(resolutions, subscription_id, lines, company_id, service_rule.value) {
        Some(warning) => Err(Some(warning)),
        None => Ok((service_rule, company_id)),
    }
}

/// A contract's own fields, from the first line of its current bill (contract-wide settings
/// come from there) and the dates of all its bills; company and appearance are the caller's.
fn contract_fields(
    resolutions: &Resolutions<'_>,
    subscription_id: &str,
    lines: &[ResolvedLine],
    service_rule: &Ruled<BillingKind>,
) -> Option<DesiredContract> {
    let rules = resolutions.rules();
    let kind = service_rule.value;
    let first_billing_date = lines.iter().map(|(line, _)| line.billing_date).min()?;
    let last_billing_date = lines.iter().map(|(line, _)| line.billing_date).max()?;
    let (latest_line, latest_index) =
        lines.iter().copied().find(|(line, _)| line.billing_date == last_billing_date)?;
    let resolved = resolutions.get(latest_index);
    let start_date = contract_start(rules, first_billing_date);
    let term_months = resolved.term_months.clone();
    let name_template = resolved.contract_name.or_else(|| rules.contract.name.get(&kind))?;
    Some(DesiredContract {
        subscription_id: subscription_id.to_string(),
        kind,
        company_id: 0,
        organization_name: latest_line.organization_name.clone(),
        service_name: latest_line.service_name.clone(),
        currency_code: latest_line.currency_code.clone(),
        name: name_template.render(|field| template_value(field, latest_line, last_billing_date)),
        first_billing_date,
        last_billing_date,
        start_date,
        end_date: covering_end_date(start_date, term_months.value, last_billing_date),
        term_months,
        services: BTreeMap::new(),
        charges: BTreeMap::new(),
        stopped_appearing: false,
        source: lines[0].0.source.clone(),
        origin: service_rule.origin.clone(),
        category: resolved.contract_category.cloned(),
        line_of_business: resolved.line_of_business.cloned(),
        service_level_agreement: resolved.service_level_agreement.clone(),
        placement_rule: placement_rule(resolved, &service_rule.origin),
    })
}

/// A new contract's start: the first Billing Date, or the first of its month, by the rules.
fn contract_start(rules: &RuleSet, first_billing_date: NaiveDate) -> NaiveDate {
    match rules.contract.start.value {
        ContractStart::FirstBillingDate => first_billing_date,
        ContractStart::FirstBillingMonth => {
            first_billing_date.with_day(1).unwrap_or(first_billing_date)
        }
    }
}

/// The rule a new contract is named after: a `for` rule that set its company or name, else
/// the `service` rule.
fn placement_rule(resolved: &Resolved<'_>, service_rule: &RuleOrigin) -> RuleOrigin {
    [
        resolved.company.map(|rule| &rule.origin),
        resolved.contract_name.map(|template| &template.origin),
    ]
    .into_iter()
    .flatten()
    .next()
    .cloned()
    .unwrap_or_else(|| service_rule.clone())
}

/// Lines of one subscription billed to two companies, or mixing licence and consumption.
fn conflicting_lines(
    resolutions: &Resolutions<'_>,
    subscription_id: &str,
    lines: &[ResolvedLine],
    company_id: i64,
    kind: BillingKind,
) -> Option<Warning> {
    let rules = resolutions.rules();
    let (first, _) = lines[0];
    let company = |(line, index): &ResolvedLine| company_of(rules, line, resolutions.get(*index));
    if let Some(other) = lines.iter().find(|line| company(line) != Some(company_id)) {
        let other_company = company(other);
        return Some(Warning::billed_to_two_companies(
            subscription_id,
            company_id,
            first,
            other_company,
            other.0,
        ));
    }
    let (other, _) = lines.iter().find(|(line, _)| {
        rules.services.get(&line.service_name).map(|rule| rule.value) != Some(kind)
    })?;
    Some(Warning::mixed_kinds(subscription_id, first, other))
}

/// A subscription billed in several currencies, or in another than its organization's.
fn currency_warnings(subscription_id: &str, lines: &[ResolvedLine], warnings: &mut Vec<Warning>) {
    let (first, _) = lines[0];
    let currencies: BTreeSet<&str> =
        lines.iter().map(|(line, _)| line.currency_code.as_str()).collect();
    if currencies.len() > 1 {
        warnings.push(Warning::several_currencies(subscription_id, currencies, first));
    }
    // The organization is invoiced in its own currency (the export's "Organization Currency
    // Code"): a line in another one is shown, never converted.
    if let Some((line, _)) = lines.iter().find(|(line, _)| {
        !line.organization_currency_code.is_empty()
            && !line.organization_currency_code.eq_ignore_ascii_case(&line.currency_code)
    }) {
        warnings.push(Warning::organization_currency_mismatch(subscription_id, line));
    }
}

/// The end of the first whole term (counted from `start`) that ends after `covered`.
pub fn covering_end_date(start: NaiveDate, term_months: u32, covered: NaiveDate) -> NaiveDate {
    let term = term_months.max(1);
    let mut terms = 1u32;
    loop {
        let end = start
            .checked_add_months(Months::new(term * terms))
            .and_then(|date| date.pred_opt())
            .unwrap_or(NaiveDate::MAX);
        if end >= covered || end == NaiveDate::MAX || terms > 1200 {
            return end;
        }
        terms += 1;
    }
}

/// A name template's field, read from a bill line (dates from `billing_date`): what every
/// contract, charge and Service name is made of.
pub fn template_value(
    field: TemplateField,
    line: &BillLine,
    billing_date: NaiveDate,
) -> Option<String> {
    Some(match field {
        TemplateField::Organization => line.organization_name.clone(),
        TemplateField::CustomerNumber => line.customer_number.clone(),
        TemplateField::Service => line.service_name.clone(),
        TemplateField::Subscription => line.subscription_id.clone(),
        TemplateField::SubscriptionName => line.subscription_name.clone(),
        TemplateField::Product => line.product_name.clone(),
        TemplateField::ItemCode => line.item_code.clone(),
        TemplateField::ProductId => line.product_id.clone(),
        TemplateField::BillingDate | TemplateField::CorrectedDate => billing_date.to_string(),
        TemplateField::Period => billing_date.format("%Y-%m").to_string(),
        TemplateField::Term => line.payment_frequency.trim().to_string(),
        TemplateField::MeterCategory => meter_category(&line.product_name).to_string(),
    })
}

/// The column the rules find Services by: Item Code or Product ID.
fn base_product_key<'l>(rules: &RuleSet, line: &'l BillLine) -> &'l str {
    match rules.products.match_by.value {
        crate::rules::ProductKey::ItemCode => &line.item_code,
        crate::rules::ProductKey::ProductId => &line.product_id,
    }
}

/// The product's key: [`base_product_key`], and its term when Services are per term.
fn product_key(rules: &RuleSet, line: &BillLine, resolved: &Resolved<'_>) -> String {
    let key = base_product_key(rules, line);
    let term = line.payment_frequency.trim();
    match resolved.service_per_term {
        Some(per_term) if per_term.value && !term.is_empty() => format!("{key}/{term}"),
        _ => key.to_string(),
    }
}

/// The units billed for a licence count: the included ones are free, then the minimum.
fn billed_units(count: i64, resolved: &Resolved<'_>) -> (i64, Option<RuleOrigin>) {
    let mut units = count;
    let mut rule = None;
    if let Some(included) = resolved.included_units.filter(|rule| rule.value > 0) {
        units = (units - i64::from(included.value)).max(0);
        rule = Some(included.origin.clone());
    }
    if let Some(minimum) = resolved.minimum_units.filter(|rule| i64::from(rule.value) > units) {
        units = i64::from(minimum.value);
        rule = Some(minimum.origin.clone());
    }
    (units, rule.filter(|_| units != count))
}

/// A price under its floor is a warning, or a refusal to apply, by the rule's policy.
fn check_margin(
    rules: &RuleSet,
    resolved: &Resolved<'_>,
    what: String,
    price: Decimal,
    cost: Decimal,
    source: &LineSource,
    warnings: &mut Vec<Warning>,
) {
    let Some(shortfall) = resolved.margin_shortfall(price, cost) else { return };
    let policy = &resolved.margin_policy;
    // The policy's own line, or that none sets it (the `prices` block's line is no policy's).
    let by_default =
        policy.origin == rules.prices.margin_policy.origin && !rules.prices.margin_policy_written;
    let rule = Some(&policy.origin).filter(|_| !by_default);
    let source = source.to_string();
    warnings.push(Warning::margin_floor(policy.value, rule, &what, &shortfall, source));
}

/// A product's licence count on its current bill: its lines' quantities netted; `None`, with a
/// warning, when that is not a whole number of licences or is negative.
fn licence_count(
    subscription_id: &str,
    key: &str,
    bill_lines: &[&BillLine],
    warnings: &mut Vec<Warning>,
) -> Option<i64> {
    if bill_lines.is_empty() {
        return None;
    }
    let quantity: Decimal = bill_lines.iter().map(|line| line.quantity).sum();
    if quantity.fract() != Decimal::ZERO {
        let warning = Warning::fractional_licence_count(subscription_id, key, bill_lines, quantity);
        warnings.push(warning);
        return None;
    }
    match quantity.to_i64() {
        Some(units) if units >= 0 => Some(units),
        _ => {
            let warning =
                Warning::negative_licence_count(subscription_id, key, bill_lines, quantity);
            warnings.push(warning);
            None
        }
    }
}

/// A licence subscription's contract services: the current bill's products, each with its
/// add-on, then the products earlier bills had at 0 units; merged where they share a Service.
fn desired_services(
    resolutions: &Resolutions<'_>,
    subscription_id: &str,
    lines: &[ResolvedLine],
    current: &[ResolvedLine],
    warnings: &mut Vec<Warning>,
) -> BTreeMap<String, DesiredContractService> {
    let rules = resolutions.rules();
    let mut by_product: BTreeMap<String, Vec<ResolvedLine>> = BTreeMap::new();
    for &(line, index) in current {
        by_product
            .entry(product_key(rules, line, resolutions.get(index)))
            .or_default()
            .push((line, index));
    }
    let mut services = BTreeMap::new();
    for (key, product_lines) in by_product {
        let resolved = resolutions.get(product_lines[0].1);
        let Some(service) =
            current_service(rules, resolved, subscription_id, &key, &product_lines, warnings)
        else {
            continue;
        };
        if let Some((add_on_key, add_on)) = add_on_service(resolved, &service) {
            services.insert(add_on_key, add_on);
        }
        services.insert(key, service);
    }
    add_earlier_products(resolutions, lines, current[0].0.billing_date, &mut services);
    merge_shared_services(subscription_id, services, warnings)
}

/// One product of the current bill: its lines' licence count, the units billed for it, its
/// price (by the whole count when tiered) checked against its margin floor.
fn current_service(
    rules: &RuleSet,
    resolved: &Resolved<'_>,
    subscription_id: &str,
    key: &str,
    product_lines: &[ResolvedLine],
    warnings: &mut Vec<Warning>,
) -> Option<DesiredContractService> {
    let (first, _) = product_lines[0];
    let effective_date = first.billing_date;
    let bill_lines: Vec<&BillLine> = product_lines.iter().map(|(line, _)| *line).collect();
    let count = licence_count(subscription_id, key, &bill_lines, warnings)?;
    if bill_lines.iter().any(|line| line.unit_sales_price != first.unit_sales_price) {
        warnings.push(Warning::different_unit_prices(subscription_id, key, first));
    }
    let (units, units_rule) = billed_units(count, resolved);
    let mut service = desired_service(rules, resolved, key, first, units, effective_date, true);
    if resolved.tiers.is_some() {
        // The band is the product's whole count on the bill, over all its lines.
        service.unit_price =
            resolved.unit_price(first.unit_sales_price, first.unit_cost_price, count);
    }
    if units > 0 {
        check_margin(
            rules,
            resolved,
            wording::product_subject(subscription_id, key),
            service.unit_price,
            service.unit_cost,
            &first.source,
            warnings,
        );
    }
    Some(DesiredContractService { licence_count: count, units_rule, ..service })
}

/// Products billed earlier but absent from the current bill (of `effective_date`) go to 0
/// units, the latest line of each giving its price.
fn add_earlier_products(
    resolutions: &Resolutions<'_>,
    lines: &[ResolvedLine],
    effective_date: NaiveDate,
    services: &mut BTreeMap<String, DesiredContractService>,
) {
    let rules = resolutions.rules();
    let mut earlier: Vec<ResolvedLine> =
        lines.iter().copied().filter(|(line, _)| line.billing_date < effective_date).collect();
    earlier.sort_by(|(a, _), (b, _)| {
        b.billing_date.cmp(&a.billing_date).then(a.source.cmp(&b.source))
    });
    for (line, index) in earlier {
        let resolved = resolutions.get(index);
        let key = product_key(rules, line, resolved);
        if services.contains_key(&key) {
            continue;
        }
        let service = desired_service(rules, resolved, &key, line, 0, effective_date, false);
        if let Some((add_on_key, add_on)) = add_on_service(resolved, &service) {
            services.entry(add_on_key).or_insert(add_on);
        }
        services.insert(key, service);
    }
}

/// Products a rule puts on one Autotask Service are one contract service in the contract
/// (Autotask keeps one per contract and Service, and one adjustment per day): their units
/// are summed when they agree on price, cost and decrease timing. When they do not, no
/// single count is right: all of them are left out with a warning naming the products and
/// the rule, rather than two adjustments that flip the service between them every run.
fn merge_shared_services(
    subscription_id: &str,
    services: BTreeMap<String, DesiredContractService>,
    warnings: &mut Vec<Warning>,
) -> BTreeMap<String, DesiredContractService> {
    let mut by_service: BTreeMap<i64, Vec<DesiredContractService>> = BTreeMap::new();
    let mut merged = BTreeMap::new();
    for (key, service) in services {
        match service.service_id {
            Some(id) => by_service.entry(id).or_default().push(service),
            None => {
                merged.insert(key, service);
            }
        }
    }
    for (service_id, group) in by_service {
        if let Some(sum) = merge_group(subscription_id, service_id, group, warnings) {
            merged.insert(sum.product_key.clone(), sum);
        }
    }
    merged
}

/// The products on one Service as one contract service, under the first one's key; None,
/// with a warning, when those on the bill differ in price, cost or decrease timing.
fn merge_group(
    subscription_id: &str,
    service_id: i64,
    group: Vec<DesiredContractService>,
    warnings: &mut Vec<Warning>,
) -> Option<DesiredContractService> {
    // A product that left the bill has no price of its own: it agrees with any.
    let priced: Vec<&DesiredContractService> = group.iter().filter(|s| s.on_current_bill).collect();
    let disagree = priced.windows(2).any(|pair| {
        pair[0].unit_price != pair[1].unit_price
            || pair[0].unit_cost != pair[1].unit_cost
            || pair[0].decrease.value != pair[1].decrease.value
    });
    if disagree {
        warnings.push(Warning::shared_service_differs(subscription_id, service_id, &group));
        return None;
    }
    let names: Vec<String> = group.iter().map(|s| s.product_name.clone()).collect();
    let mut group = group.into_iter();
    let mut sum = group.next()?;
    for other in group {
        sum.units += other.units;
        sum.licence_count += other.licence_count;
        if other.on_current_bill && !sum.on_current_bill {
            sum.unit_price = other.unit_price;
            sum.unit_cost = other.unit_cost;
            sum.on_current_bill = true;
            sum.payment_frequency = other.payment_frequency;
        }
        sum.units_rule = sum.units_rule.or(other.units_rule);
    }
    sum.product_name = names.join(" + ");
    Some(sum)
}

/// A product's contract service from one of its lines, before its count is known: price and
/// cost by its rules, the Service a rule names, and the rules the plan will cite.
fn desired_service(
    rules: &RuleSet,
    resolved: &Resolved<'_>,
    key: &str,
    line: &BillLine,
    units: i64,
    effective_date: NaiveDate,
    on_current_bill: bool,
) -> DesiredContractService {
    let base_key = base_product_key(rules, line);
    let named_service = resolved.service.or_else(|| rules.products.explicit.get(base_key));
    DesiredContractService {
        product_key: key.to_string(),
        product_name: line.product_name.clone(),
        units,
        unit_price: resolved.unit_price(
            line.unit_sales_price,
            line.unit_cost_price,
            line.quantity.round().to_i64().unwrap_or(0),
        ),
        unit_cost: resolved.round(resolved.unit_cost(line.unit_cost_price, Decimal::ONE)),
        effective_date,
        on_current_bill,
        payment_frequency: line.payment_frequency.clone(),
        source: line.source.clone(),
        licence_count: units,
        units_rule: None,
        service_id: named_service.map(|rule| rule.value),
        service_rule: named_service.map(|rule| rule.origin.clone()),
        per_term: key != base_key,
        scale: resolved.scale.value,
        price_rule: resolved.price_origin().clone(),
        dated_price_rule: dated_price_rule(resolved),
        decrease: resolved.decrease.clone(),
        removed_product: resolved.removed_product.clone(),
    }
}

/// A product's per-seat add-on: the rule's Service on the same contract, with the product's
/// units (and so its included and minimum seats) and decrease timing, at the rule's own price
/// and cost. Keyed `PRODUCT+SERVICE_ID`: its own line in the plan and the review.
fn add_on_service(
    resolved: &Resolved<'_>,
    product: &DesiredContractService,
) -> Option<(String, DesiredContractService)> {
    let rule = resolved.add_on?;
    let key = format!("{}+{}", product.product_key, rule.value.service);
    let service = DesiredContractService {
        product_key: key.clone(),
        product_name: format!("{} add-on (Service {})", product.product_name, rule.value.service),
        unit_price: resolved.round(rule.value.price),
        unit_cost: resolved.round(rule.value.cost),
        service_id: Some(rule.value.service),
        service_rule: Some(rule.origin.clone()),
        per_term: false,
        price_rule: rule.origin.clone(),
        dated_price_rule: None,
        ..product.clone()
    };
    Some((key, service))
}

/// The dated rule behind a line's price, cost, price point or cap, if one is: the plan names
/// it, since the same book priced the line differently before its date.
fn dated_price_rule(resolved: &Resolved<'_>) -> Option<String> {
    let origins = [
        Some(&resolved.unit_price.origin),
        Some(&resolved.unit_cost.origin),
        resolved.price_point.map(|rule| &rule.origin),
        resolved.max_price.map(|rule| &rule.origin),
        resolved.tiers.map(|rule| &rule.origin),
    ];
    resolved.matched.iter().find_map(|rule| {
        let dates = rule.dates_label()?;
        let set = &rule.set;
        let sets = [
            set.unit_price.as_ref().map(|r| &r.origin),
            set.unit_cost.as_ref().map(|r| &r.origin),
            set.price_point.as_ref().map(|r| &r.origin),
            set.max_price.as_ref().map(|r| &r.origin),
            set.tiers.as_ref().map(|r| &r.origin),
        ];
        let wins = sets.iter().zip(&origins).any(|(set, won)| set.is_some() && set == won);
        wins.then(|| format!("{} ({dates})", rule.origin))
    })
}

/// One charge per Billing Date (and meter category, when a rule splits them): the sum of the
/// lines' prices, each under its own rule, and Σ Total Cost.
fn desired_charges(
    resolutions: &Resolutions<'_>,
    subscription_id: &str,
    lines: &[ResolvedLine],
    warnings: &mut Vec<Warning>,
) -> BTreeMap<(NaiveDate, Option<String>), DesiredCharge> {
    let rules = resolutions.rules();
    charge_groups(resolutions, lines)
        .into_iter()
        .map(|((date, group), lines)| {
            let charge = desired_charge(resolutions, date, group.clone(), &lines);
            let what = wording::charge_subject(subscription_id, date, group.as_deref());
            let resolved = resolutions.get(lines[0].1);
            let (price, cost) = (charge.unit_price, charge.unit_cost);
            check_margin(rules, resolved, what, price, cost, &charge.source, warnings);
            ((date, group), charge)
        })
        .collect()
}

/// A subscription's lines by Billing Date, and by meter category when the subscription's
/// split (from its current bill's first line) says so.
fn charge_groups<'a>(
    resolutions: &Resolutions<'_>,
    lines: &[ResolvedLine<'a>],
) -> BTreeMap<(NaiveDate, Option<String>), Vec<ResolvedLine<'a>>> {
    let latest = lines.iter().max_by_key(|(line, _)| line.billing_date).map(|(_, index)| *index);
    let split = latest
        .map(|index| resolutions.get(index).consumption_split.value)
        .unwrap_or(ConsumptionSplit::Subscription);
    let mut by_group: BTreeMap<(NaiveDate, Option<String>), Vec<ResolvedLine>> = BTreeMap::new();
    for &(line, index) in lines {
        let group = match split {
            ConsumptionSplit::Subscription => None,
            ConsumptionSplit::MeterCategory => Some(meter_category(&line.product_name).to_string()),
        };
        by_group.entry((line.billing_date, group)).or_default().push((line, index));
    }
    by_group
}

/// The charge of one period (and meter category): each line priced under its own rule, the
/// charge-wide settings from its first line's.
fn desired_charge(
    resolutions: &Resolutions<'_>,
    date: NaiveDate,
    group: Option<String>,
    lines: &[ResolvedLine],
) -> DesiredCharge {
    let (first, first_index) = lines[0];
    let resolved = resolutions.get(first_index);
    let sales: Decimal = lines
        .iter()
        .map(|(line, index)| {
            let price = &resolutions.get(*index).unit_price.value;
            price.apply(line.total_sales, line.total_cost, line.quantity)
        })
        .sum();
    let cost: Decimal = lines
        .iter()
        .map(|(line, index)| resolutions.get(*index).unit_cost(line.total_cost, line.quantity))
        .sum();
    let correction_template = &resolutions.rules().consumption.correction_name;
    DesiredCharge {
        date,
        name: charge_name(resolved.charge_name, first, date, &group),
        correction_name: charge_name(correction_template, first, date, &group),
        unit_price: resolved.finish_price(sales),
        unit_cost: resolved.round(cost),
        line_count: lines.len(),
        source: first.source.clone(),
        period_name: resolved.charge_name.render(|field| match field {
            TemplateField::MeterCategory => None,
            field => template_value(field, first, date),
        }),
        group,
        scale: resolved.scale.value,
        rounding: resolved.rounding.value,
        price_rule: resolved.unit_price.origin.clone(),
        name_rule: resolved.charge_name.origin.clone(),
        billed_charge_mismatch: resolved.billed_charge_mismatch.clone(),
    }
}

/// A charge's name by its template; a meter category the template does not use is added in
/// brackets, so the period's charges never share a name.
fn charge_name(
    template: &crate::rules::Template,
    line: &BillLine,
    date: NaiveDate,
    group: &Option<String>,
) -> String {
    let name = template.render(|field| match field {
        TemplateField::MeterCategory => group.clone(),
        field => template_value(field, line, date),
    });
    match group {
        Some(category) if !template.uses(TemplateField::MeterCategory) => {
            format!("{name} ({category})")
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{default_rules, line};

    #[test]
    fn licence_units_come_from_the_latest_bill_and_removed_products_go_to_zero() {
        let lines = vec![
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5"),
            line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "B", "3", "7"),
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "8", "5"),
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "4", "5"),
        ];
        let state = desired_state(&default_rules(), &lines);
        let contract = &state.contracts["S1"];
        assert_eq!(contract.name, "Microsoft 365 - Contoso");
        assert_eq!(contract.start_date.to_string(), "2026-10-01");
        assert_eq!(contract.end_date.to_string(), "2027-09-30");
        assert_eq!(contract.services["A"].units, 12);
        assert_eq!(contract.services["A"].unit_price, Decimal::new(5, 0));
        assert_eq!(contract.services["B"].units, 0);
        assert!(!contract.services["B"].on_current_bill);
        assert_eq!(contract.services["B"].effective_date.to_string(), "2026-11-01");
        assert!(state.warnings.is_empty(), "{:?}", state.warnings);
    }

    #[test]
    fn consumption_lines_are_summed_per_billing_date() {
        let lines = vec![
            line("2026-10-01", "Fabrikam", "Azure Plan", "AZ", "M1", "1.5", "0.3333"),
            line("2026-10-01", "Fabrikam", "Azure Plan", "AZ", "M2", "2", "10.125"),
            line("2026-11-01", "Fabrikam", "Azure Plan", "AZ", "M1", "1", "3"),
        ];
        let state = desired_state(&default_rules(), &lines);
        let charges = &state.contracts["AZ"].charges;
        let october = &charges[&("2026-10-01".parse().expect("date"), None)];
        // 1.5 × 0.3333 = 0.49995 → 0.5000 half-up at 4 places; plus 20.25.
        assert_eq!(october.unit_price.to_string(), "20.7500");
        assert_eq!(october.name, "Azure consumption 2026-10");
        assert_eq!(october.line_count, 2);
        assert_eq!(charges.len(), 2);
    }

    #[test]
    fn unlinked_and_unmapped_lines_are_reported_not_dropped() {
        let lines = vec![
            line("2026-10-01", "Unlinked", "Microsoft CSP", "S1", "A", "1", "5"),
            line("2026-10-01", "Contoso", "Acronis", "S2", "A", "1", "5"),
        ];
        let state = desired_state(&default_rules(), &lines);
        assert!(state.contracts.is_empty());
        let codes: Vec<_> = state.warnings.iter().map(|w| w.code).collect();
        assert_eq!(codes, vec![WarningCode::UnlinkedOrganization, WarningCode::UnmappedService]);
        assert_eq!(state.warnings[0].source, "bill.csv:2");
    }

    #[test]
    fn a_subscription_missing_from_the_latest_bill_is_flagged() {
        let lines = vec![
            line("2026-10-01", "Contoso", "Microsoft CSP", "OLD", "A", "1", "5"),
            line("2026-11-01", "Contoso", "Microsoft CSP", "NEW", "A", "1", "5"),
        ];
        let state = desired_state(&default_rules(), &lines);
        assert!(state.contracts["OLD"].stopped_appearing);
        assert!(!state.contracts["NEW"].stopped_appearing);
    }

    #[test]
    fn a_line_not_in_the_organizations_currency_is_a_warning() {
        let rules = default_rules();
        let mut in_usd = line("2026-10-01", "Contoso", "Microsoft NCE", "sub-1", "A", "3", "10");
        in_usd.currency_code = "USD".into();
        in_usd.organization_currency_code = "EUR".into();
        let state = desired_state(&rules, &[in_usd]);
        let messages: Vec<&str> = state
            .warnings
            .iter()
            .filter(|w| w.code == WarningCode::CurrencyMismatch)
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(
            messages,
            ["subscription sub-1 is billed in USD but organization \"Contoso\" is invoiced in EUR; amounts are taken as they are, never converted"]
        );
    }

    #[test]
    fn fractional_licence_counts_are_refused() {
        let lines = vec![line("2026-10-01", "Contoso", "Microsoft CSP", "S1", "A", "1.5", "5")];
        let state = desired_state(&default_rules(), &lines);
        assert!(state.contracts["S1"].services.is_empty());
        assert_eq!(state.warnings[0].code, WarningCode::FractionalLicenceQuantity);
    }

    #[test]
    fn end_date_covers_the_current_bill_in_whole_terms() {
        let start: NaiveDate = "2025-01-15".parse().expect("date");
        assert_eq!(covering_end_date(start, 12, start).to_string(), "2026-01-14");
        let later: NaiveDate = "2026-03-01".parse().expect("date");
        assert_eq!(covering_end_date(start, 12, later).to_string(), "2027-01-14");
    }
}
