//! Desired state: what Autotask should hold according to the imported bills and the rules.
//!
//! A pure function of (rules, bill lines): no snapshot, no network, no clock. The diff compares
//! its output with the Autotask snapshot.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Months, NaiveDate};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::billing::{BillLine, LineSource};
use crate::rules::{BillingKind, ContractStart, PriceSource, RuleOrigin, RuleSet, TemplateField};

/// Everything the bills ask for, keyed by subscription id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    pub contracts: BTreeMap<String, DesiredContract>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredContract {
    pub subscription_id: String,
    pub kind: BillingKind,
    pub company_id: i64,
    pub organization_name: String,
    pub service_name: String,
    /// The current bill's Currency Code (`EUR`).
    pub currency_code: String,
    pub name: String,
    pub first_billing_date: NaiveDate,
    /// The subscription's current bill.
    pub last_billing_date: NaiveDate,
    pub start_date: NaiveDate,
    /// endDate for a new contract: start plus whole terms, covering the current bill.
    pub end_date: NaiveDate,
    /// Licence products by product key (Item Code or Product ID), including those that
    /// left the current bill (units 0).
    pub services: BTreeMap<String, DesiredContractService>,
    /// Consumption: one charge per Billing Date.
    pub charges: BTreeMap<NaiveDate, DesiredCharge>,
    /// The subscription is absent from its organization's latest bill.
    pub stopped_appearing: bool,
    pub source: LineSource,
    pub origin: RuleOrigin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredContractService {
    pub product_key: String,
    pub product_name: String,
    pub units: i64,
    pub unit_price: Decimal,
    pub unit_cost: Decimal,
    /// Billing Date of the bill the units come from (the subscription's current bill).
    pub effective_date: NaiveDate,
    /// False for a product billed earlier but absent from the current bill.
    pub on_current_bill: bool,
    /// The bill's Payment Frequency (`Monthly`, `Annual`…), empty when the export has none:
    /// a decrease on an annual term is worth a second look, so the plan says it.
    pub payment_frequency: String,
    pub source: LineSource,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredCharge {
    pub date: NaiveDate,
    pub name: String,
    pub correction_name: String,
    pub unit_price: Decimal,
    pub unit_cost: Decimal,
    pub line_count: usize,
    pub source: LineSource,
}

/// Something a user must see and can act on. Never a silent drop.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub code: WarningCode,
    pub message: String,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WarningCode {
    UnlinkedOrganization,
    UnmappedService,
    SubscriptionStoppedAppearing,
    ConflictingLines,
    FractionalLicenceQuantity,
    NegativeLicenceQuantity,
    CurrencyMismatch,
    UnknownCompany,
    DuplicateContracts,
    CompanyMismatch,
    CostsNotVisible,
    ForeignCurrency,
    OwnCompany,
    Drift,
    BilledChargeMismatch,
    ServiceNotFound,
    ContractEndsBeforeBill,
    /// A manual billing line (no Subscription ID) that no rule routes.
    ManualLineNotBilled,
}

impl WarningCode {
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
        }
    }
}

impl Warning {
    pub fn new(code: WarningCode, message: impl Into<String>, source: impl Into<String>) -> Self {
        Warning { code, message: message.into(), source: source.into() }
    }
}

/// Evaluates the rules over every current bill line.
pub fn desired_state(rules: &RuleSet, lines: &[BillLine]) -> DesiredState {
    let mut warnings = Vec::new();
    let latest_bill_of_organization = latest_bill_dates(lines);

    // Group lines: unmapped services and unlinked organizations are reported once each.
    let mut unmapped: BTreeMap<&str, Vec<&BillLine>> = BTreeMap::new();
    let mut unlinked: BTreeMap<&str, Vec<&BillLine>> = BTreeMap::new();
    let mut by_subscription: BTreeMap<&str, Vec<&BillLine>> = BTreeMap::new();
    let mut manual: BTreeMap<&str, Vec<&BillLine>> = BTreeMap::new();
    for line in lines {
        if line.subscription_id.is_empty() {
            // A manual billing line (a discount or fee attached to a service): no contract to
            // put it on, and no rule routes one yet. Shown with its amount, never dropped quietly.
            manual.entry(&line.organization_name).or_default().push(line);
        } else if !rules.services.contains_key(&line.service_name) {
            unmapped.entry(&line.service_name).or_default().push(line);
        } else if company_of(rules, line).is_none() {
            unlinked.entry(&line.organization_name).or_default().push(line);
        } else {
            by_subscription.entry(&line.subscription_id).or_default().push(line);
        }
    }
    for (service, lines) in unmapped {
        warnings.push(Warning::new(
            WarningCode::UnmappedService,
            format!(
                "service \"{service}\" is not billed by any rule: {} line(s) left out (add `service \"{service}\" = licence` or `= consumption` to the mappings)",
                lines.len()
            ),
            sources_label(&lines),
        ));
    }
    for (organization, lines) in unlinked {
        warnings.push(Warning::new(
            WarningCode::UnlinkedOrganization,
            format!(
                "organization \"{organization}\" has no AutotaskCompanyID and no company rule: {} line(s) left out (set the custom property in Cloudmore or add `company \"{organization}\" = ID`)",
                lines.len()
            ),
            sources_label(&lines),
        ));
    }

    for (organization, lines) in manual {
        let products: BTreeSet<&str> = lines.iter().map(|l| l.product_name.as_str()).collect();
        warnings.push(Warning::new(
            WarningCode::ManualLineNotBilled,
            format!(
                "organization \"{organization}\": {} manual billing line(s) without a Subscription ID ({}), {} in total sales, not billed: no rule routes them",
                lines.len(),
                products.into_iter().collect::<Vec<_>>().join(", "),
                amounts_label(&lines)
            ),
            sources_label(&lines),
        ));
    }

    let mut contracts = BTreeMap::new();
    for (subscription_id, lines) in by_subscription {
        if let Some(contract) = desired_contract(
            rules,
            subscription_id,
            &lines,
            &latest_bill_of_organization,
            &mut warnings,
        ) {
            contracts.insert(subscription_id.to_string(), contract);
        }
    }
    warnings.sort();
    DesiredState { contracts, warnings }
}

fn latest_bill_dates(lines: &[BillLine]) -> BTreeMap<&str, NaiveDate> {
    let mut latest: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for line in lines {
        let entry = latest.entry(&line.organization_name).or_insert(line.billing_date);
        *entry = (*entry).max(line.billing_date);
    }
    latest
}

/// An explicit rule wins over the organization's AutotaskCompanyID column.
fn company_of(rules: &RuleSet, line: &BillLine) -> Option<i64> {
    if let Some(explicit) = rules.companies.explicit.get(&line.organization_name) {
        return Some(explicit.value);
    }
    rules.companies.column.as_ref().and(line.autotask_company_id)
}

/// "-12.50 EUR" (per currency, when the lines have several).
fn amounts_label(lines: &[&BillLine]) -> String {
    let mut totals: BTreeMap<&str, Decimal> = BTreeMap::new();
    for line in lines {
        *totals.entry(&line.currency_code).or_default() += line.total_sales;
    }
    totals.iter().map(|(c, t)| format!("{t} {c}")).collect::<Vec<_>>().join(" + ")
}

/// Every line's place, for a warning that must name them all (a handful at most).
fn all_sources(lines: &[&BillLine]) -> String {
    lines.iter().map(|l| l.source.to_string()).collect::<Vec<_>>().join(", ")
}

fn sources_label(lines: &[&BillLine]) -> String {
    match lines {
        [] => String::new(),
        [only] => only.source.to_string(),
        [first, rest @ ..] => format!("{} (+{} more)", first.source, rest.len()),
    }
}

fn desired_contract(
    rules: &RuleSet,
    subscription_id: &str,
    lines: &[&BillLine],
    latest_bill_of_organization: &BTreeMap<&str, NaiveDate>,
    warnings: &mut Vec<Warning>,
) -> Option<DesiredContract> {
    let first = lines[0];
    let service_rule = rules.services.get(&first.service_name)?;
    let kind = service_rule.value;
    let company_id = company_of(rules, first)?;

    // One subscription, one company, one kind: anything else is ambiguous, so it is left out.
    if let Some(other) = lines.iter().find(|line| company_of(rules, line) != Some(company_id)) {
        warnings.push(Warning::new(
            WarningCode::ConflictingLines,
            format!(
                "subscription {subscription_id} is billed to two Autotask companies ({company_id} at {}, {:?} at {}); left out",
                first.source,
                company_of(rules, other),
                other.source
            ),
            other.source.to_string(),
        ));
        return None;
    }
    if let Some(other) = lines
        .iter()
        .find(|line| rules.services.get(&line.service_name).map(|rule| rule.value) != Some(kind))
    {
        warnings.push(Warning::new(
            WarningCode::ConflictingLines,
            format!(
                "subscription {subscription_id} mixes licence and consumption services (\"{}\" and \"{}\"); left out",
                first.service_name, other.service_name
            ),
            other.source.to_string(),
        ));
        return None;
    }
    let currencies: BTreeSet<&str> = lines.iter().map(|line| line.currency_code.as_str()).collect();
    if currencies.len() > 1 {
        warnings.push(Warning::new(
            WarningCode::CurrencyMismatch,
            format!(
                "subscription {subscription_id} is billed in several currencies ({}); amounts are taken as they are",
                currencies.into_iter().collect::<Vec<_>>().join(", ")
            ),
            first.source.to_string(),
        ));
    }
    // The organization is invoiced in its own currency (the export's "Organization Currency
    // Code"): a line in another one is shown, never converted.
    if let Some(line) = lines.iter().find(|line| {
        !line.organization_currency_code.is_empty()
            && !line.organization_currency_code.eq_ignore_ascii_case(&line.currency_code)
    }) {
        warnings.push(Warning::new(
            WarningCode::CurrencyMismatch,
            format!(
                "subscription {subscription_id} is billed in {} but organization \"{}\" is invoiced in {}; amounts are taken as they are, never converted",
                line.currency_code, line.organization_name, line.organization_currency_code
            ),
            line.source.to_string(),
        ));
    }

    let first_billing_date = lines.iter().map(|line| line.billing_date).min()?;
    let last_billing_date = lines.iter().map(|line| line.billing_date).max()?;
    let current: Vec<&BillLine> =
        lines.iter().copied().filter(|line| line.billing_date == last_billing_date).collect();
    let latest_line = current[0];
    let start_date = match rules.contract.start.value {
        ContractStart::FirstBillingDate => first_billing_date,
        ContractStart::FirstBillingMonth => {
            first_billing_date.with_day(1).unwrap_or(first_billing_date)
        }
    };
    let end_date =
        covering_end_date(start_date, rules.contract.term_months.value, last_billing_date);

    let name_template = rules.contract.name.get(&kind)?;
    let name = name_template.render(|field| template_value(field, latest_line, last_billing_date));

    let mut contract = DesiredContract {
        subscription_id: subscription_id.to_string(),
        kind,
        company_id,
        organization_name: latest_line.organization_name.clone(),
        service_name: latest_line.service_name.clone(),
        currency_code: latest_line.currency_code.clone(),
        name,
        first_billing_date,
        last_billing_date,
        start_date,
        end_date,
        services: BTreeMap::new(),
        charges: BTreeMap::new(),
        stopped_appearing: latest_bill_of_organization
            .get(latest_line.organization_name.as_str())
            .is_some_and(|latest| *latest > last_billing_date),
        source: first.source.clone(),
        origin: service_rule.origin.clone(),
    };
    match kind {
        BillingKind::Licence => {
            contract.services = desired_services(rules, subscription_id, lines, &current, warnings)
        }
        BillingKind::Consumption => contract.charges = desired_charges(rules, lines),
    }
    Some(contract)
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
    })
}

fn product_key<'a>(rules: &RuleSet, line: &'a BillLine) -> &'a str {
    match rules.products.match_by.value {
        crate::rules::ProductKey::ItemCode => &line.item_code,
        crate::rules::ProductKey::ProductId => &line.product_id,
    }
}

fn unit_price(rules: &RuleSet, sales: Decimal, cost: Decimal) -> Decimal {
    let price = match rules.prices.unit_price.value {
        PriceSource::SalesPrice => sales,
        PriceSource::CostPlusMarkup(markup) => cost * (Decimal::ONE + markup),
    };
    rules.prices.round(price)
}

fn desired_services(
    rules: &RuleSet,
    subscription_id: &str,
    lines: &[&BillLine],
    current: &[&BillLine],
    warnings: &mut Vec<Warning>,
) -> BTreeMap<String, DesiredContractService> {
    let effective_date = current[0].billing_date;
    let mut by_product: BTreeMap<&str, Vec<&BillLine>> = BTreeMap::new();
    for line in current {
        by_product.entry(product_key(rules, line)).or_default().push(line);
    }
    let mut services = BTreeMap::new();
    for (key, product_lines) in by_product {
        let first = product_lines[0];
        let quantity: Decimal = product_lines.iter().map(|line| line.quantity).sum();
        if quantity.fract() != Decimal::ZERO {
            warnings.push(Warning::new(
                WarningCode::FractionalLicenceQuantity,
                format!(
                    "subscription {subscription_id}, product {key}: the lines {} net to a licence count of {quantity}, not a whole number; left out ({} in total sales)",
                    all_sources(&product_lines),
                    amounts_label(&product_lines)
                ),
                first.source.to_string(),
            ));
            continue;
        }
        let units = match quantity.to_i64() {
            Some(units) if units >= 0 => units,
            _ => {
                warnings.push(Warning::new(
                    WarningCode::NegativeLicenceQuantity,
                    format!(
                        "subscription {subscription_id}, product {key}: the lines {} net to a licence count of {quantity}, negative or too large; left out ({} in total sales)",
                        all_sources(&product_lines),
                        amounts_label(&product_lines)
                    ),
                    first.source.to_string(),
                ));
                continue;
            }
        };
        if product_lines.iter().any(|line| line.unit_sales_price != first.unit_sales_price) {
            warnings.push(Warning::new(
                WarningCode::ConflictingLines,
                format!(
                    "subscription {subscription_id}, product {key}: lines on the {effective_date} bill have different unit prices; the first one ({}) is used",
                    first.unit_sales_price
                ),
                first.source.to_string(),
            ));
        }
        services.insert(
            key.to_string(),
            DesiredContractService {
                product_key: key.to_string(),
                product_name: first.product_name.clone(),
                units,
                unit_price: unit_price(rules, first.unit_sales_price, first.unit_cost_price),
                unit_cost: rules.prices.round(first.unit_cost_price),
                effective_date,
                on_current_bill: true,
                payment_frequency: first.payment_frequency.clone(),
                source: first.source.clone(),
            },
        );
    }
    // Products billed earlier but absent from the current bill go to 0 units.
    let mut earlier: Vec<&BillLine> =
        lines.iter().copied().filter(|line| line.billing_date < effective_date).collect();
    earlier.sort_by(|a, b| b.billing_date.cmp(&a.billing_date).then(a.source.cmp(&b.source)));
    for line in earlier {
        let key = product_key(rules, line);
        if services.contains_key(key) {
            continue;
        }
        services.insert(
            key.to_string(),
            DesiredContractService {
                product_key: key.to_string(),
                product_name: line.product_name.clone(),
                units: 0,
                unit_price: unit_price(rules, line.unit_sales_price, line.unit_cost_price),
                unit_cost: rules.prices.round(line.unit_cost_price),
                effective_date,
                on_current_bill: false,
                payment_frequency: line.payment_frequency.clone(),
                source: line.source.clone(),
            },
        );
    }
    services
}

/// One charge per Billing Date: Σ Total Sales and Σ Total Cost of every meter line.
fn desired_charges(rules: &RuleSet, lines: &[&BillLine]) -> BTreeMap<NaiveDate, DesiredCharge> {
    let mut by_date: BTreeMap<NaiveDate, Vec<&BillLine>> = BTreeMap::new();
    for line in lines {
        by_date.entry(line.billing_date).or_default().push(line);
    }
    by_date
        .into_iter()
        .map(|(date, lines)| {
            let sales: Decimal = lines.iter().map(|line| line.total_sales).sum();
            let cost: Decimal = lines.iter().map(|line| line.total_cost).sum();
            let first = lines[0];
            let render = |template: &crate::rules::Template| {
                template.render(|field| template_value(field, first, date))
            };
            let charge = DesiredCharge {
                date,
                name: render(&rules.consumption.charge_name),
                correction_name: render(&rules.consumption.correction_name),
                unit_price: unit_price(rules, sales, cost),
                unit_cost: rules.prices.round(cost),
                line_count: lines.len(),
                source: first.source.clone(),
            };
            (date, charge)
        })
        .collect()
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
        let october = &charges[&"2026-10-01".parse().expect("date")];
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
