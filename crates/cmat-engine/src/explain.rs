//! `cmat explain SUBSCRIPTION_ID`: which rules matched a subscription's bill lines, most
//! specific first, which of their settings were used or overridden, and what the rules produced
//! (company, contract, Services, prices, units, charges). A pure function of the rules and the
//! lines, like the plan: it says why a line is billed as it is without asking Autotask.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::billing::BillLine;
use crate::desired::{desired_state, DesiredContract, Resolutions, Warning};
use crate::rules::{
    ConsumptionSplit, DecreaseTiming, MarginPolicy, PriceSource, Resolved, RuleOrigin, RuleSet,
    Ruled, ScopedRule, ScopedSettings,
};

/// Everything `explain` shows; serialized as its `--format json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The Cloudmore subscription asked about.
    pub subscription: String,
    /// Its organization, as the bill names it, so the reader knows whose lines these are.
    pub organization: String,
    /// Its Cloudmore service (Microsoft CSP, …), which `for service` rules match.
    pub service: String,
    /// How many imported bill lines carry the subscription.
    pub lines: usize,
    /// The bills those lines are on, oldest first.
    pub billing_dates: Vec<String>,
    /// Scoped rules that matched at least one line, most specific first.
    pub rules: Vec<MatchedRule>,
    /// The defaults (unscoped blocks) that were used, where no scoped rule set the thing.
    pub defaults: Vec<SettingUse>,
    /// What the rules turn the lines into, as a plan would.
    pub produced: Produced,
    /// The warnings a plan would show for these lines.
    pub warnings: Vec<ExplainedWarning>,
}

/// A `for` rule that matched some of the lines, with the fate of each thing it sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchedRule {
    /// Where the rule is written (`FILE:LINE`), so the reader can go and change it.
    pub rule: String,
    /// Its scope as written, with its priority when it has one.
    pub scope: String,
    /// How many of the subscription's lines it matched.
    pub lines: usize,
    /// What it sets, in the language's words, and whether each setting was used.
    pub settings: Vec<SettingUse>,
}

/// One setting of a rule and whether it decided anything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingUse {
    /// The setting's name in the mapping language (`unit_price`, `decrease`, …).
    pub setting: &'static str,
    /// Its value as the language writes it.
    pub value: String,
    /// Where it is set (`FILE:LINE`).
    pub rule: String,
    /// `used`, or `overridden by FILE:LINE` when a more specific rule set it for every line.
    pub outcome: String,
}

/// What the rules produce for the subscription: the Autotask side of the explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Produced {
    /// The Autotask company the lines go to; `None` when no contract came of them.
    pub company: Option<Produce>,
    /// The contract the lines land in, with its kind.
    pub contract: Option<Produce>,
    /// A licence contract's Services, one per product.
    pub services: Vec<ProducedService>,
    /// A consumption contract's charges, one per date (and group).
    pub charges: Vec<ProducedCharge>,
    /// Lines a `skip` rule left out, so they are not mistaken for lost ones.
    pub skipped_lines: usize,
}

/// A value the rules produced and the rule that produced it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Produce {
    /// The value, as shown.
    pub value: String,
    /// Where the deciding rule is written (`FILE:LINE`).
    pub rule: String,
}

/// A contract Service the rules produce for one product of the subscription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProducedService {
    /// The product's key (its sku), which finds the Autotask Service.
    pub product: String,
    /// The product's name on the bill.
    pub name: String,
    /// The licences on the bill, before included or minimum units.
    pub licence_count: i64,
    /// The units the contract Service gets.
    pub units: i64,
    /// The rule that made `units` differ from the licence count, if any.
    pub units_rule: Option<String>,
    /// The unit price, at the rule's scale.
    pub unit_price: String,
    /// The unit cost, at the rule's scale.
    pub unit_cost: String,
    /// Where the deciding price rule is written.
    pub price_rule: String,
    /// "Service 812 (rule FILE:LINE)" or "by sku KEY".
    pub autotask_service: String,
    /// When a decrease takes effect, with the rule that says so.
    pub decrease: String,
    /// False for a product billed earlier but absent from the current bill.
    pub on_current_bill: bool,
}

/// A consumption charge the rules produce.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProducedCharge {
    /// The charge's date in Autotask.
    pub date: String,
    /// The meter category it sums, when charges are split by category.
    pub group: Option<String>,
    /// The charge's name, from the `charge_name` template.
    pub name: String,
    /// The price, at the rule's scale.
    pub unit_price: String,
    /// The cost, at the rule's scale.
    pub unit_cost: String,
    /// How many bill lines it sums.
    pub lines: usize,
    /// Where the deciding price rule is written.
    pub price_rule: String,
}

/// A plan warning about the subscription's lines, as explain shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainedWarning {
    /// The warning's code, the same as in the plan.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
    /// The line or rule it is about.
    pub source: String,
}

/// Explains one subscription; `None` when no line carries it.
pub fn explain(rules: &RuleSet, lines: &[BillLine], subscription: &str) -> Option<Explanation> {
    let own: Vec<BillLine> =
        lines.iter().filter(|line| line.subscription_id == subscription).cloned().collect();
    let first = own.first()?;
    let mut resolutions = Resolutions::new(rules);
    let (used, matched_lines) = rule_uses(rules, &own, &mut resolutions);
    let matched_rules = matched_rules(rules, &used, &matched_lines);
    let defaults = defaults(rules, &used);
    // What the rules produce for these lines: the same evaluation a plan makes.
    let state = desired_state(rules, &own);
    let warnings = state.warnings.iter().map(explained).collect();
    let contract = state.contracts.get(subscription);
    let produced = produced(rules, &mut resolutions, &own, first, contract);
    let billing_dates: BTreeSet<String> =
        own.iter().map(|line| line.billing_date.to_string()).collect();
    Some(Explanation {
        subscription: subscription.to_string(),
        organization: first.organization_name.clone(),
        service: first.service_name.clone(),
        lines: own.len(),
        billing_dates: billing_dates.into_iter().collect(),
        rules: matched_rules,
        defaults,
        produced,
        warnings,
    })
}

/// The rules that won each setting on some line, by setting.
type Used = BTreeMap<&'static str, BTreeSet<RuleOrigin>>;

/// Which rule won each setting on the lines, and how many lines each scoped rule (by its
/// position) matched.
fn rule_uses(
    rules: &RuleSet,
    own: &[BillLine],
    resolutions: &mut Resolutions,
) -> (Used, BTreeMap<usize, usize>) {
    let mut used = Used::new();
    let mut matched_lines: BTreeMap<usize, usize> = BTreeMap::new();
    for line in own {
        let Ok(index) = resolutions.of(line) else { continue };
        let resolved = resolutions.get(index);
        for rule in &resolved.matched {
            let position = rules.scoped.iter().position(|candidate| std::ptr::eq(candidate, *rule));
            if let Some(position) = position {
                *matched_lines.entry(position).or_default() += 1;
            }
        }
        for (setting, origin) in winners(rules, line, resolved) {
            used.entry(setting).or_default().insert(origin);
        }
    }
    (used, matched_lines)
}

/// The scoped rules that matched, most specific first, with what became of each setting.
fn matched_rules(
    rules: &RuleSet,
    used: &Used,
    matched_lines: &BTreeMap<usize, usize>,
) -> Vec<MatchedRule> {
    let outcome = |setting: &'static str, origin: &RuleOrigin| -> String {
        let winners = used.get(setting);
        if winners.is_some_and(|winners| winners.contains(origin)) {
            "used".to_string()
        } else {
            let by: Vec<String> = winners
                .map(|winners| winners.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            format!("overridden by {}", by.join(", "))
        }
    };
    let mut matched: Vec<(usize, &ScopedRule)> =
        matched_lines.keys().map(|&position| (position, &rules.scoped[position])).collect();
    matched.sort_by(|(a_position, a), (b_position, b)| {
        b.specificity.cmp(&a.specificity).then(a_position.cmp(b_position))
    });
    matched
        .iter()
        .map(|(position, rule)| MatchedRule {
            rule: rule.origin.to_string(),
            scope: match rule.specificity.priority {
                0 => rule.scope_label(),
                priority => format!("{} (priority {priority})", rule.scope_label()),
            },
            lines: matched_lines.get(position).copied().unwrap_or(0),
            settings: scoped_settings(&rule.set)
                .into_iter()
                .map(|(setting, value, origin)| SettingUse {
                    setting,
                    outcome: outcome(setting, origin),
                    value,
                    rule: origin.to_string(),
                })
                .collect(),
        })
        .collect()
}

/// The defaults (no scoped rule) that won a setting on some line.
fn defaults(rules: &RuleSet, used: &Used) -> Vec<SettingUse> {
    let scoped_origins: BTreeSet<RuleOrigin> = rules
        .scoped
        .iter()
        .flat_map(|rule| scoped_settings(&rule.set).into_iter().map(|(_, _, o)| o.clone()))
        .collect();
    used.iter()
        .flat_map(|(setting, origins)| {
            origins
                .iter()
                .filter(|origin| !scoped_origins.contains(*origin))
                .map(move |origin| (*setting, origin))
        })
        .map(|(setting, origin)| SettingUse {
            setting,
            value: default_value(rules, setting),
            rule: origin.to_string(),
            outcome: "used".to_string(),
        })
        .collect()
}

/// What the rules produce for the subscription: company, contract, services, charges.
fn produced(
    rules: &RuleSet,
    resolutions: &mut Resolutions,
    own: &[BillLine],
    first: &BillLine,
    contract: Option<&DesiredContract>,
) -> Produced {
    let company = contract.map(|contract| {
        let rule = resolutions
            .of(first)
            .ok()
            .and_then(|index| resolutions.get(index).company.map(|rule| rule.origin.to_string()))
            .or_else(|| {
                rules.companies.explicit.get(&first.organization_name).map(|r| r.origin.to_string())
            })
            .or_else(|| rules.companies.column.as_ref().map(|column| column.origin.to_string()))
            .unwrap_or_default();
        Produce { value: contract.company_id.to_string(), rule }
    });
    Produced {
        company,
        contract: contract.map(|contract| Produce {
            value: format!("\"{}\" ({:?})", contract.name, contract.kind),
            rule: contract.origin.to_string(),
        }),
        services: contract.map(produced_services).unwrap_or_default(),
        charges: contract.map(produced_charges).unwrap_or_default(),
        skipped_lines: own
            .iter()
            .filter(|line| {
                resolutions
                    .of(line)
                    .ok()
                    .is_some_and(|index| resolutions.get(index).skipped_by(line).is_some())
            })
            .count(),
    }
}

/// A licence contract's services as explained.
fn produced_services(contract: &DesiredContract) -> Vec<ProducedService> {
    contract
        .services
        .values()
        .map(|service| ProducedService {
            product: service.product_key.clone(),
            name: service.product_name.clone(),
            licence_count: service.licence_count,
            units: service.units,
            units_rule: service.units_rule.as_ref().map(ToString::to_string),
            unit_price: amount(service.unit_price, service.scale),
            unit_cost: amount(service.unit_cost, service.scale),
            price_rule: service.price_rule.to_string(),
            autotask_service: match service.service_id {
                Some(id) => format!("Service {id} (named by a rule)"),
                None => format!("found by sku {}, or created", service.product_key),
            },
            decrease: format!(
                "{} ({})",
                decrease_word(service.decrease.value),
                service.decrease.origin
            ),
            on_current_bill: service.on_current_bill,
        })
        .collect()
}

/// A consumption contract's charges as explained.
fn produced_charges(contract: &DesiredContract) -> Vec<ProducedCharge> {
    contract
        .charges
        .values()
        .map(|charge| ProducedCharge {
            date: charge.date.to_string(),
            group: charge.group.clone(),
            name: charge.name.clone(),
            unit_price: amount(charge.unit_price, charge.scale),
            unit_cost: amount(charge.unit_cost, charge.scale),
            lines: charge.line_count,
            price_rule: charge.price_rule.to_string(),
        })
        .collect()
}

/// A plan warning in explain's words (the same code, message and source).
fn explained(warning: &Warning) -> ExplainedWarning {
    ExplainedWarning {
        code: warning.code.as_str(),
        message: warning.message.clone(),
        source: warning.source.clone(),
    }
}

/// An amount at the rule's scale, as the plan writes it (`9.0000`).
fn amount(value: Decimal, scale: u32) -> String {
    let mut value = value;
    value.rescale(scale);
    value.to_string()
}

/// The rule behind each thing in force for a line (scoped or default).
fn winners(
    rules: &RuleSet,
    line: &BillLine,
    resolved: &Resolved<'_>,
) -> Vec<(&'static str, RuleOrigin)> {
    let mut out = always_in_force(resolved);
    out.extend(optional_winners(resolved));
    out.extend(overriding_winners(rules, resolved));
    if resolved.company.is_none() {
        if let Some(rule) = rules.companies.explicit.get(&line.organization_name) {
            out.push(("company", rule.origin.clone()));
        }
    }
    out
}

/// The settings every line has (a default if no rule set them), with their winning rule.
fn always_in_force(resolved: &Resolved<'_>) -> Vec<(&'static str, RuleOrigin)> {
    let mut out = vec![
        ("unit_price", resolved.unit_price.origin.clone()),
        ("scale", resolved.scale.origin.clone()),
        ("rounding", resolved.rounding.origin.clone()),
        ("margin_policy", resolved.margin_policy.origin.clone()),
        ("service_level_agreement", resolved.service_level_agreement.origin.clone()),
        ("consumption_split", resolved.consumption_split.origin.clone()),
        ("decrease", resolved.decrease.origin.clone()),
    ];
    // Tiers are a form of the price: a rule's tiers and its `unit_price` compete as one.
    if resolved.matched.iter().any(|rule| rule.set.tiers.is_some()) {
        out[0].1 = resolved.price_origin().clone();
        out.push(("tiers", resolved.price_origin().clone()));
    }
    out
}

/// The settings that have no default: named only when some rule set them.
fn optional_winners(resolved: &Resolved<'_>) -> Vec<(&'static str, RuleOrigin)> {
    let optional: [(&'static str, Option<&RuleOrigin>); 14] = [
        ("company", resolved.company.map(|r| &r.origin)),
        ("add_on_service", resolved.add_on.map(|r| &r.origin)),
        ("margin_floor", resolved.margin_floor.map(|r| &r.origin)),
        ("price_point", resolved.price_point.map(|r| &r.origin)),
        ("max_price", resolved.max_price.map(|r| &r.origin)),
        ("contract_name", resolved.contract_name.map(|t| &t.origin)),
        ("contract_category", resolved.contract_category.map(|r| &r.origin)),
        ("line_of_business", resolved.line_of_business.map(|r| &r.origin)),
        ("service", resolved.service.map(|r| &r.origin)),
        ("service_per_term", resolved.service_per_term.map(|r| &r.origin)),
        ("skip", resolved.skip.map(|r| &r.origin)),
        ("skip_zero_amount", resolved.skip_zero_amount.map(|r| &r.origin)),
        ("included_units", resolved.included_units.map(|r| &r.origin)),
        ("minimum_units", resolved.minimum_units.map(|r| &r.origin)),
    ];
    optional.into_iter().filter_map(|(name, origin)| Some((name, origin?.clone()))).collect()
}

/// Settings a `for` rule may override: named only when one does, so a default stays quiet.
fn overriding_winners(rules: &RuleSet, resolved: &Resolved<'_>) -> Vec<(&'static str, RuleOrigin)> {
    let overridden: [(&'static str, &RuleOrigin, &RuleOrigin); 5] = [
        ("unit_cost", &resolved.unit_cost.origin, &rules.prices.unit_cost.origin),
        ("term_months", &resolved.term_months.origin, &rules.contract.term_months.origin),
        ("charge_name", &resolved.charge_name.origin, &rules.consumption.charge_name.origin),
        (
            "removed_product",
            &resolved.removed_product.origin,
            &rules.policies.removed_product.origin,
        ),
        (
            "billed_charge_mismatch",
            &resolved.billed_charge_mismatch.origin,
            &rules.policies.billed_charge_mismatch.origin,
        ),
    ];
    overridden
        .into_iter()
        .filter(|(_, origin, default)| origin != default)
        .map(|(name, origin, _)| (name, origin.clone()))
        .collect()
}

/// One setting a scoped rule sets: its name, its value as the language writes it, its rule.
type SettingText<'a> = (&'static str, String, &'a RuleOrigin);

/// What a scoped rule sets, as the language writes it, in the order the explanation lists it.
fn scoped_settings(set: &ScopedSettings) -> Vec<SettingText<'_>> {
    let mut out = Vec::new();
    price_settings(set, &mut out);
    contract_settings(set, &mut out);
    line_settings(set, &mut out);
    out
}

/// Adds a setting the rule sets; nothing when it leaves it alone.
fn push_setting<'a, T>(
    out: &mut Vec<SettingText<'a>>,
    name: &'static str,
    rule: &'a Option<Ruled<T>>,
    show: impl Fn(&T) -> String,
) {
    if let Some(rule) = rule {
        out.push((name, show(&rule.value), &rule.origin));
    }
}

/// The company and the pricing settings (price, cost, add-on, rounding, margin).
fn price_settings<'a>(set: &'a ScopedSettings, out: &mut Vec<SettingText<'a>>) {
    push_setting(out, "company", &set.company, ToString::to_string);
    push_setting(out, "unit_price", &set.unit_price, |price| price_word(*price));
    push_setting(out, "tiers", &set.tiers, |tiers| tiers.bands_label(price_word));
    push_setting(out, "unit_cost", &set.unit_cost, |cost| cost_word(*cost));
    push_setting(out, "add_on_service", &set.add_on, |add_on| {
        format!(
            "{} at {} a seat (cost {})",
            add_on.service,
            add_on.price.normalize(),
            add_on.cost.normalize()
        )
    });
    push_setting(out, "price_point", &set.price_point, |point| point_word(*point));
    push_setting(out, "max_price", &set.max_price, |cap| cap.normalize().to_string());
    push_setting(out, "scale", &set.scale, ToString::to_string);
    push_setting(out, "rounding", &set.rounding, |rounding| rounding_word(*rounding).into());
    push_setting(out, "margin_floor", &set.margin_floor, |floor| floor_word(*floor));
    push_setting(out, "margin_policy", &set.margin_policy, |policy| margin_word(*policy).into());
}

/// The settings that shape the contract and its Services.
fn contract_settings<'a>(set: &'a ScopedSettings, out: &mut Vec<SettingText<'a>>) {
    if let Some(template) = &set.contract_name {
        out.push(("contract_name", template_text(template), &template.origin));
    }
    push_setting(out, "contract_category", &set.contract_category, ToString::to_string);
    push_setting(out, "line_of_business", &set.line_of_business, ToString::to_string);
    let agreement = &set.service_level_agreement;
    push_setting(out, "service_level_agreement", agreement, ToString::to_string);
    push_setting(out, "service", &set.service, ToString::to_string);
    push_setting(out, "service_per_term", &set.service_per_term, ToString::to_string);
}

/// The settings that decide how lines are counted, skipped, split and corrected.
fn line_settings<'a>(set: &'a ScopedSettings, out: &mut Vec<SettingText<'a>>) {
    push_setting(out, "skip", &set.skip, ToString::to_string);
    push_setting(out, "skip_zero_amount", &set.skip_zero_amount, ToString::to_string);
    push_setting(out, "included_units", &set.included_units, ToString::to_string);
    push_setting(out, "minimum_units", &set.minimum_units, ToString::to_string);
    push_setting(out, "consumption_split", &set.consumption_split, |split| {
        split_word(*split).into()
    });
    push_setting(out, "decrease", &set.decrease, |timing| decrease_word(*timing).into());
    push_setting(out, "term_months", &set.term_months, ToString::to_string);
    if let Some(template) = &set.charge_name {
        out.push(("charge_name", template_text(template), &template.origin));
    }
    push_setting(out, "removed_product", &set.removed_product, |p| removed_word(*p).into());
    let mismatch = &set.billed_charge_mismatch;
    push_setting(out, "billed_charge_mismatch", mismatch, |p| mismatch_word(*p).into());
}

/// A default's value, for the settings no scoped rule set.
fn default_value(rules: &RuleSet, setting: &str) -> String {
    default_price_value(rules, setting)
        .or_else(|| default_other_value(rules, setting))
        .unwrap_or_default()
}

/// The value of a pricing default (the `prices` block); `None` for other settings.
fn default_price_value(rules: &RuleSet, setting: &str) -> Option<String> {
    let prices = &rules.prices;
    let value = match setting {
        "unit_price" => price_word(prices.unit_price.value),
        "unit_cost" => cost_word(prices.unit_cost.value),
        "price_point" => {
            prices.price_point.as_ref().map(|p| point_word(p.value)).unwrap_or_default()
        }
        "max_price" => (prices.max_price.as_ref())
            .map(|cap| cap.value.normalize().to_string())
            .unwrap_or_default(),
        "scale" => prices.scale.value.to_string(),
        "rounding" => rounding_word(prices.rounding.value).into(),
        "margin_floor" => {
            prices.margin_floor.as_ref().map(|f| floor_word(f.value)).unwrap_or_default()
        }
        "margin_policy" => margin_word(prices.margin_policy.value).into(),
        _ => return None,
    };
    Some(value)
}

/// The value of a contract, consumption, product or policy default; `None` for others.
fn default_other_value(rules: &RuleSet, setting: &str) -> Option<String> {
    let shown = |value: Option<String>| value.unwrap_or_default();
    let value = match setting {
        "service_level_agreement" => rules.settings.service_level_agreement.value.to_string(),
        "contract_category" => shown(rules.contract.category.as_ref().map(|c| c.value.to_string())),
        "line_of_business" => {
            shown(rules.contract.line_of_business.as_ref().map(|c| c.value.to_string()))
        }
        "consumption_split" => split_word(rules.consumption.split.value).into(),
        "decrease" => decrease_word(rules.policies.decrease.value).into(),
        "service_per_term" => shown(rules.products.per_term.as_ref().map(|r| r.value.to_string())),
        "skip_zero_amount" => {
            shown(rules.policies.skip_zero_amount.as_ref().map(|r| r.value.to_string()))
        }
        "company" => "explicit link".into(),
        "term_months" => rules.contract.term_months.value.to_string(),
        "charge_name" => template_text(&rules.consumption.charge_name),
        "removed_product" => removed_word(rules.policies.removed_product.value).into(),
        "billed_charge_mismatch" => {
            mismatch_word(rules.policies.billed_charge_mismatch.value).into()
        }
        _ => return None,
    };
    Some(value)
}

fn margin_word(policy: MarginPolicy) -> &'static str {
    match policy {
        MarginPolicy::Warn => "warn",
        MarginPolicy::Refuse => "refuse",
    }
}

fn split_word(split: ConsumptionSplit) -> &'static str {
    match split {
        ConsumptionSplit::Subscription => "subscription",
        ConsumptionSplit::MeterCategory => "meter_category",
    }
}

fn removed_word(policy: crate::rules::RemovedProduct) -> &'static str {
    match policy {
        crate::rules::RemovedProduct::ZeroUnits => "zero_units",
        crate::rules::RemovedProduct::Report => "report",
    }
}

fn mismatch_word(policy: crate::rules::BilledChargeMismatch) -> &'static str {
    match policy {
        crate::rules::BilledChargeMismatch::Correct => "correct",
        crate::rules::BilledChargeMismatch::Report => "report",
    }
}

fn template_text(template: &crate::rules::Template) -> String {
    let mut text = String::from("\"");
    for part in &template.parts {
        match part {
            crate::rules::TemplatePart::Text(piece) => text.push_str(piece),
            crate::rules::TemplatePart::Field(field) => {
                let _ = write!(text, "{{{}}}", field.name());
            }
        }
    }
    text.push('"');
    text
}

fn percent(fraction: Decimal) -> String {
    format!("{}%", (fraction * Decimal::ONE_HUNDRED).normalize())
}

fn price_word(price: PriceSource) -> String {
    match price {
        PriceSource::SalesPrice => "sales_price".into(),
        PriceSource::CostPlusMarkup(markup) => format!("cost + {}", percent(markup)),
        PriceSource::SalesLessDiscount(discount) => format!("sales_price - {}", percent(discount)),
        PriceSource::Fixed(price) => price.normalize().to_string(),
        PriceSource::SalesPlusUplift(uplift) => format!("sales_price + {}", percent(uplift)),
        PriceSource::CostPlusAmount(amount) => format!("cost + {}", amount.normalize()),
    }
}

fn cost_word(cost: crate::rules::CostSource) -> String {
    use crate::rules::CostSource;
    let signed = |value: Decimal, text: String| {
        if value.is_sign_negative() {
            format!("cost - {}", text.trim_start_matches('-'))
        } else {
            format!("cost + {text}")
        }
    };
    match cost {
        CostSource::CostPrice => "cost_price".into(),
        CostSource::CostPercent(fraction) => signed(fraction, percent(fraction)),
        CostSource::CostAmount(amount) => signed(amount, amount.normalize().to_string()),
    }
}

fn floor_word(floor: crate::rules::MarginFloor) -> String {
    match floor {
        crate::rules::MarginFloor::Percent(fraction) => percent(fraction),
        crate::rules::MarginFloor::Amount(amount) => format!("{} per unit", amount.normalize()),
    }
}

fn point_word(point: crate::rules::PricePoint) -> String {
    match point {
        crate::rules::PricePoint::Ending(ending) => ending.normalize().to_string(),
        crate::rules::PricePoint::Whole => "whole".into(),
    }
}

fn rounding_word(rounding: crate::rules::Rounding) -> &'static str {
    match rounding {
        crate::rules::Rounding::HalfUp => "half_up",
        crate::rules::Rounding::HalfEven => "half_even",
        crate::rules::Rounding::Down => "down",
        crate::rules::Rounding::Up => "up",
    }
}

fn decrease_word(timing: DecreaseTiming) -> &'static str {
    match timing {
        DecreaseTiming::BillingDate => "billing_date",
        DecreaseTiming::NextPeriod => "next_period",
        DecreaseTiming::TermEnd => "term_end",
    }
}

impl Explanation {
    /// The text people read: the subscription, the rules that matched, the defaults used,
    /// what they produce and the warnings, one section each.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Subscription {} ({}, organization \"{}\"): {} line(s) on the bills of {}",
            self.subscription,
            self.service,
            self.organization,
            self.lines,
            self.billing_dates.join(", ")
        );
        self.write_rules(&mut out);
        self.write_defaults(&mut out);
        self.produced.write(&mut out);
        self.write_warnings(&mut out);
        out
    }

    fn write_rules(&self, out: &mut String) {
        let _ = writeln!(out, "\nRules that matched, most specific first:");
        if self.rules.is_empty() {
            let _ = writeln!(out, "  (no `for` rule: the defaults below decide everything)");
        }
        for (number, rule) in self.rules.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {}. {}  {}  ({} line(s))",
                number + 1,
                rule.rule,
                rule.scope,
                rule.lines
            );
            for setting in &rule.settings {
                let _ = writeln!(
                    out,
                    "       {} = {}  {}",
                    setting.setting, setting.value, setting.outcome
                );
            }
        }
    }

    fn write_defaults(&self, out: &mut String) {
        let _ = writeln!(out, "\nDefaults used (unscoped blocks):");
        for setting in &self.defaults {
            let _ = writeln!(out, "  {} = {}  ({})", setting.setting, setting.value, setting.rule);
        }
    }

    fn write_warnings(&self, out: &mut String) {
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\nWarnings:");
            for warning in &self.warnings {
                let _ =
                    writeln!(out, "  ! {}: {} ({})", warning.code, warning.message, warning.source);
            }
        }
    }
}

impl Produced {
    /// The "What they produce" section of the text.
    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "\nWhat they produce:");
        if let Some(company) = &self.company {
            let _ = writeln!(out, "  company   {}  ({})", company.value, company.rule);
        }
        if let Some(contract) = &self.contract {
            let _ = writeln!(out, "  contract  {}  ({})", contract.value, contract.rule);
        }
        for service in &self.services {
            service.write(out);
        }
        for charge in &self.charges {
            let _ = writeln!(
                out,
                "  charge    {} \"{}\": {} (cost {}), {} line(s), price rule {}",
                charge.date,
                charge.name,
                charge.unit_price,
                charge.unit_cost,
                charge.lines,
                charge.price_rule
            );
        }
        if self.skipped_lines > 0 {
            let _ = writeln!(out, "  skipped   {} line(s) by rule", self.skipped_lines);
        }
        if self.contract.is_none() && self.skipped_lines == 0 {
            let _ = writeln!(out, "  nothing: see the warnings");
        }
    }
}

impl ProducedService {
    /// One `product` line of the text.
    fn write(&self, out: &mut String) {
        let units = match &self.units_rule {
            Some(rule) => {
                format!("{} unit(s) ({} on the bill, rule {rule})", self.units, self.licence_count)
            }
            None => format!("{} unit(s)", self.units),
        };
        let _ = writeln!(
            out,
            "  product   {} \"{}\": {units} × {} (cost {}), price rule {}; {}; decrease {}{}",
            self.product,
            self.name,
            self.unit_price,
            self.unit_cost,
            self.price_rule,
            self.autotask_service,
            self.decrease,
            if self.on_current_bill { "" } else { "; not on the current bill" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{ScopeTerm, Specificity};
    use crate::testing::{default_rules, line};

    fn origin(line: u32) -> RuleOrigin {
        RuleOrigin { file: "mappings/prices.cmat".into(), line }
    }

    #[test]
    fn names_the_rules_that_matched_in_order_and_what_each_set() {
        let mut rules = default_rules();
        let scope = vec![ScopeTerm::Service("Microsoft CSP".into())];
        rules.scoped.push(ScopedRule {
            specificity: Specificity::of(&scope),
            scope,
            set: ScopedSettings {
                unit_price: Some(Ruled {
                    value: PriceSource::CostPlusMarkup("0.15".parse().expect("markup")),
                    origin: origin(2),
                }),
                ..Default::default()
            },
            origin: origin(1),
        });
        let scope =
            vec![ScopeTerm::Organization("Contoso".into()), ScopeTerm::ItemCode("A".into())];
        rules.scoped.push(ScopedRule {
            specificity: Specificity::of(&scope),
            scope,
            set: ScopedSettings {
                unit_price: Some(Ruled {
                    value: PriceSource::Fixed(Decimal::new(9, 0)),
                    origin: origin(5),
                }),
                included_units: Some(Ruled { value: 2, origin: origin(6) }),
                ..Default::default()
            },
            origin: origin(4),
        });
        let lines = vec![
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "A", "10", "5"),
            line("2026-11-01", "Contoso", "Microsoft CSP", "S1", "B", "3", "10"),
        ];
        let explanation = explain(&rules, &lines, "S1").expect("explained");
        let order: Vec<&str> = explanation.rules.iter().map(|rule| rule.rule.as_str()).collect();
        assert_eq!(order, ["mappings/prices.cmat:4", "mappings/prices.cmat:1"]);
        // The markup lost product A to the more specific fixed price, but priced product B.
        assert_eq!(explanation.rules[1].settings[0].outcome, "used");
        let a = &explanation.produced.services[0];
        assert_eq!((a.units, a.licence_count, a.unit_price.as_str()), (8, 10, "9.0000"));
        assert_eq!(a.price_rule, "mappings/prices.cmat:5");
        let b = &explanation.produced.services[1];
        // Cost is 80 % of 10 = 8; plus 15 % = 9.2.
        assert_eq!((b.units, b.unit_price.as_str()), (3, "9.2000"));
        assert!(explain(&rules, &lines, "nope").is_none());
    }
}
