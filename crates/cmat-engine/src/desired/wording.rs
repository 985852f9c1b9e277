//! The desired state's words: one named constructor per warning about the bill's lines, so
//! `desired.rs` reads as decisions and a text is changed in one place. The texts are what
//! plans, explain and the report show: keep them byte-identical unless a change is meant.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{DesiredContractService, Warning, WarningCode};
use crate::billing::BillLine;
use crate::rules::scoped::Ambiguity;
use crate::rules::{MarginPolicy, RuleOrigin};

/// Lines left out before any contract is built.
impl Warning {
    /// A Service Name no `service` rule bills.
    pub(super) fn unmapped_service(service: &str, lines: &[&BillLine]) -> Warning {
        Warning::new(
            WarningCode::UnmappedService,
            format!(
                "service \"{service}\" is not billed by any rule: {} line(s) left out (add `service \"{service}\" = licence` or `= consumption` to the mappings)",
                lines.len()
            ),
            sources_label(lines),
        )
    }

    /// An organization with no company column value and no company rule.
    pub(super) fn unlinked_organization(organization: &str, lines: &[&BillLine]) -> Warning {
        Warning::new(
            WarningCode::UnlinkedOrganization,
            format!(
                "organization \"{organization}\" has no AutotaskCompanyID and no company rule: {} line(s) left out (set the custom property in Cloudmore or add `company \"{organization}\" = ID`)",
                lines.len()
            ),
            sources_label(lines),
        )
    }

    /// Lines a `skip` rule leaves out, with their amount.
    pub(super) fn skipped_by_rule(
        organization: &str,
        rule: &RuleOrigin,
        lines: &[&BillLine],
    ) -> Warning {
        Warning::new(
            WarningCode::SkippedByRule,
            format!(
                "organization \"{organization}\": {} line(s) not billed, skipped by the rule at {rule} ({} in total sales)",
                lines.len(),
                amounts_label(lines)
            ),
            sources_label(lines),
        )
    }

    /// Lines two equally specific rules disagree on.
    pub(super) fn ambiguous_rules(
        subscription: &str,
        ambiguity: &Ambiguity,
        lines: &[&BillLine],
    ) -> Warning {
        Warning::new(
            WarningCode::AmbiguousRules,
            format!(
                "subscription {subscription}: the rules at {} and {} are equally specific and set `{}` differently for these lines; {} line(s) left out (make one rule more specific)",
                ambiguity.first,
                ambiguity.second,
                ambiguity.setting,
                lines.len()
            ),
            sources_label(lines),
        )
    }

    /// An organization's manual billing lines (no Subscription ID), with their amount.
    pub(super) fn manual_lines_not_billed(organization: &str, lines: &[&BillLine]) -> Warning {
        let products: BTreeSet<&str> = lines.iter().map(|l| l.product_name.as_str()).collect();
        Warning::new(
            WarningCode::ManualLineNotBilled,
            format!(
                "organization \"{organization}\": {} manual billing line(s) without a Subscription ID ({}), {} in total sales, not billed: no rule routes them",
                lines.len(),
                products.into_iter().collect::<Vec<_>>().join(", "),
                amounts_label(lines)
            ),
            sources_label(lines),
        )
    }
}

/// A subscription whose lines cannot be one contract, or need a second look.
impl Warning {
    /// One subscription billed to two companies (`other_company` as routed, maybe none).
    pub(super) fn billed_to_two_companies(
        subscription_id: &str,
        company_id: i64,
        first: &BillLine,
        other_company: Option<i64>,
        other: &BillLine,
    ) -> Warning {
        Warning::new(
            WarningCode::ConflictingLines,
            format!(
                "subscription {subscription_id} is billed to two Autotask companies ({company_id} at {}, {:?} at {}); left out",
                first.source, other_company, other.source
            ),
            other.source.to_string(),
        )
    }

    /// One subscription on a licence and a consumption service.
    pub(super) fn mixed_kinds(
        subscription_id: &str,
        first: &BillLine,
        other: &BillLine,
    ) -> Warning {
        Warning::new(
            WarningCode::ConflictingLines,
            format!(
                "subscription {subscription_id} mixes licence and consumption services (\"{}\" and \"{}\"); left out",
                first.service_name, other.service_name
            ),
            other.source.to_string(),
        )
    }

    /// One subscription billed in several currencies.
    pub(super) fn several_currencies(
        subscription_id: &str,
        currencies: BTreeSet<&str>,
        first: &BillLine,
    ) -> Warning {
        Warning::new(
            WarningCode::CurrencyMismatch,
            format!(
                "subscription {subscription_id} is billed in several currencies ({}); amounts are taken as they are",
                currencies.into_iter().collect::<Vec<_>>().join(", ")
            ),
            first.source.to_string(),
        )
    }

    /// A line in another currency than its organization is invoiced in.
    pub(super) fn organization_currency_mismatch(
        subscription_id: &str,
        line: &BillLine,
    ) -> Warning {
        Warning::new(
            WarningCode::CurrencyMismatch,
            format!(
                "subscription {subscription_id} is billed in {} but organization \"{}\" is invoiced in {}; amounts are taken as they are, never converted",
                line.currency_code, line.organization_name, line.organization_currency_code
            ),
            line.source.to_string(),
        )
    }
}

/// A product or charge of a subscription.
impl Warning {
    /// A product's lines netting to a licence count that is not a whole number.
    pub(super) fn fractional_licence_count(
        subscription_id: &str,
        key: &str,
        bill_lines: &[&BillLine],
        quantity: Decimal,
    ) -> Warning {
        Warning::new(
            WarningCode::FractionalLicenceQuantity,
            format!(
                "subscription {subscription_id}, product {key}: the lines {} net to a licence count of {quantity}, not a whole number; left out ({} in total sales)",
                all_sources(bill_lines),
                amounts_label(bill_lines)
            ),
            source_of(bill_lines),
        )
    }

    /// A product's lines netting to a negative (or too large) licence count.
    pub(super) fn negative_licence_count(
        subscription_id: &str,
        key: &str,
        bill_lines: &[&BillLine],
        quantity: Decimal,
    ) -> Warning {
        Warning::new(
            WarningCode::NegativeLicenceQuantity,
            format!(
                "subscription {subscription_id}, product {key}: the lines {} net to a licence count of {quantity}, negative or too large; left out ({} in total sales)",
                all_sources(bill_lines),
                amounts_label(bill_lines)
            ),
            source_of(bill_lines),
        )
    }

    /// A product's lines on one bill at different unit prices: the first line's is used.
    pub(super) fn different_unit_prices(
        subscription_id: &str,
        key: &str,
        first: &BillLine,
    ) -> Warning {
        Warning::new(
            WarningCode::ConflictingLines,
            format!(
                "subscription {subscription_id}, product {key}: lines on the {} bill have different unit prices; the first one ({}) is used",
                first.billing_date, first.unit_sales_price
            ),
            first.source.to_string(),
        )
    }

    /// Products a rule puts on one Service that differ in price, cost or decrease timing.
    pub(super) fn shared_service_differs(
        subscription_id: &str,
        service_id: i64,
        group: &[DesiredContractService],
    ) -> Warning {
        let products: Vec<String> =
            group.iter().map(|s| format!("{} ({})", s.product_key, s.product_name)).collect();
        let first = group.first();
        let rule = first
            .and_then(|s| s.service_rule.as_ref())
            .map(ToString::to_string)
            .unwrap_or_default();
        Warning::new(
            WarningCode::ConflictingLines,
            format!(
                "subscription {subscription_id}: products {} go to Service {service_id} (rule at {rule}) but differ in price, cost or decrease timing; one contract service cannot hold both, left out until the rule gives each its own Service",
                products.join(" and ")
            ),
            first.map(|s| s.source.to_string()).unwrap_or_default(),
        )
    }

    /// A price under its margin floor (`what` names the product or charge); `policy_rule` is
    /// the rule that sets the policy, None when no rule does (warn by default).
    pub(super) fn margin_floor(
        policy: MarginPolicy,
        policy_rule: Option<&RuleOrigin>,
        what: &str,
        shortfall: &str,
        source: String,
    ) -> Warning {
        let (code, outcome) = match policy {
            MarginPolicy::Warn => (WarningCode::BelowMarginFloor, "billed as it is"),
            MarginPolicy::Refuse => (
                WarningCode::MarginFloorRefused,
                "apply refuses this plan until the rule or the price changes",
            ),
        };
        let policy = match policy_rule {
            None => "margin_policy warn by default: no rule sets it".to_string(),
            Some(origin) => format!("margin_policy at {origin}"),
        };
        Warning::new(code, format!("{what}: {shortfall}; {outcome} ({policy})"), source)
    }
}

/// A product as a margin warning names it.
pub(super) fn product_subject(subscription_id: &str, key: &str) -> String {
    format!("subscription {subscription_id}, product {key}")
}

/// A period's charge (of a meter category, when split by it) as a margin warning names it.
pub(super) fn charge_subject(
    subscription_id: &str,
    date: NaiveDate,
    group: Option<&str>,
) -> String {
    match group {
        Some(category) => format!("subscription {subscription_id}, {date} {category}"),
        None => format!("subscription {subscription_id}, {date} consumption"),
    }
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

/// The first line's place.
fn source_of(lines: &[&BillLine]) -> String {
    lines.first().map(|line| line.source.to_string()).unwrap_or_default()
}

/// The first line's place, and how many more there are.
fn sources_label(lines: &[&BillLine]) -> String {
    match lines {
        [] => String::new(),
        [only] => only.source.to_string(),
        [first, rest @ ..] => format!("{} (+{} more)", first.source, rest.len()),
    }
}
