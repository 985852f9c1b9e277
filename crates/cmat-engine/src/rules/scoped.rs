//! Scoped rules: the price book. A `for …` rule of the mapping language sets some things
//! (a price, a company, a decrease timing…) for the bill lines its scope matches; for one line
//! the most specific matching rule wins for each thing it sets, and the unscoped blocks
//! (`prices`, `contract`, `policy`…) are the defaults under every scope.
//!
//! Specificity is the set of dimensions a scope names, compared by the most precise dimension
//! first ([`Dimension`] is in ascending order): a rule naming a subscription beats any rule that
//! does not; among the rest an organization beats an organization group, which beats a
//! product, and so on. Two matching rules naming the same dimensions that set one thing to
//! different values are ambiguous: `cmat check` refuses the ones it can see (same scope), and a
//! plan reports the ones only data reveals (an organization matched by both its name and its
//! customer number) and leaves the lines out rather than choose.

use std::borrow::Cow;
use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{
    AddOn, CostSource, MarginFloor, PricePoint, PriceSource, RuleOrigin, RuleSet, Ruled, Template,
    Tiers,
};
use crate::billing::BillLine;

/// What a scope term looks at, in ascending order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    /// `from "2026-12-01"`: bills dated on or after.
    From,
    /// `until "2026-12-31"`: bills dated on or before.
    Until,
    /// `currency`: the line's Currency Code.
    Currency,
    /// `term`: the Payment Frequency.
    Term,
    /// `broker`: the distributor.
    Broker,
    /// `service`: the Cloudmore service.
    Service,
    /// `meter_category`: an Azure line's meter category.
    MeterCategory,
    /// `product`: a Product Name pattern.
    ProductName,
    /// `item_code` or `product_id`: one product exactly.
    Product,
    /// `organization_group`: one of the organization's groups.
    OrganizationGroup,
    /// `organization` or `customer_number`: one customer.
    Organization,
    /// `subscription`: one subscription, the most precise of all.
    Subscription,
}

impl Dimension {
    /// How the dimension is named in a message ("the organization").
    pub fn describe(self) -> &'static str {
        match self {
            Dimension::From => "the first Billing Date (`from`)",
            Dimension::Until => "the last Billing Date (`until`)",
            Dimension::Currency => "the currency",
            Dimension::Term => "the term (Payment Frequency)",
            Dimension::Broker => "the broker (distributor)",
            Dimension::Service => "the service",
            Dimension::MeterCategory => "the meter category",
            Dimension::ProductName => "the product name",
            Dimension::Product => "the product (Item Code or Product ID)",
            Dimension::OrganizationGroup => "the organization group",
            Dimension::Organization => "the organization (name or Customer Number)",
            Dimension::Subscription => "the subscription",
        }
    }
}

/// One condition of a scope: `organization "Contoso Ltd"`, `product "Microsoft 365 E*"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeTerm {
    /// Service Name (`Microsoft CSP`, `Azure Plan`).
    Service(String),
    /// Broker Name: the distributor the line was bought through.
    Broker(String),
    /// Organization Name, exactly.
    Organization(String),
    /// Customer Number: the organization by a key that survives a rename.
    CustomerNumber(String),
    /// One of the organization's groups (the export lists them separated by `;`).
    OrganizationGroup(String),
    /// Item Code, exactly.
    ItemCode(String),
    /// Product ID, exactly.
    ProductId(String),
    /// Product Name, with `*` matching any text; case is ignored.
    ProductName(String),
    /// An Azure line's meter category: its Product Name up to the first " - ".
    MeterCategory(String),
    /// Subscription ID, exactly.
    Subscription(String),
    /// Payment Frequency (`Monthly`, `Annual`); case is ignored.
    Term(String),
    /// Currency Code; case is ignored.
    Currency(String),
    /// In force for bills dated on or after this day.
    From(NaiveDate),
    /// In force for bills dated on or before this day.
    Until(NaiveDate),
}

impl ScopeTerm {
    /// The keywords of the language, with the term each builds.
    pub const KEYWORDS: [&'static str; 14] = [
        "service",
        "broker",
        "organization",
        "customer_number",
        "organization_group",
        "item_code",
        "product_id",
        "product",
        "meter_category",
        "subscription",
        "term",
        "currency",
        "from",
        "until",
    ];

    /// The term a keyword builds with its value; `None` for an unknown keyword or a date
    /// that does not parse, which the compiler reports.
    pub fn from_keyword(keyword: &str, value: String) -> Option<ScopeTerm> {
        Some(match keyword {
            "service" => ScopeTerm::Service(value),
            "broker" => ScopeTerm::Broker(value),
            "organization" => ScopeTerm::Organization(value),
            "customer_number" => ScopeTerm::CustomerNumber(value),
            "organization_group" => ScopeTerm::OrganizationGroup(value),
            "item_code" => ScopeTerm::ItemCode(value),
            "product_id" => ScopeTerm::ProductId(value),
            "product" => ScopeTerm::ProductName(value),
            "meter_category" => ScopeTerm::MeterCategory(value),
            "subscription" => ScopeTerm::Subscription(value),
            "term" => ScopeTerm::Term(value),
            "currency" => ScopeTerm::Currency(value),
            "from" => ScopeTerm::From(value.parse().ok()?),
            "until" => ScopeTerm::Until(value.parse().ok()?),
            _ => return None,
        })
    }

    /// The keyword the term is written with, for labels and messages.
    pub fn keyword(&self) -> &'static str {
        match self {
            ScopeTerm::Service(_) => "service",
            ScopeTerm::Broker(_) => "broker",
            ScopeTerm::Organization(_) => "organization",
            ScopeTerm::CustomerNumber(_) => "customer_number",
            ScopeTerm::OrganizationGroup(_) => "organization_group",
            ScopeTerm::ItemCode(_) => "item_code",
            ScopeTerm::ProductId(_) => "product_id",
            ScopeTerm::ProductName(_) => "product",
            ScopeTerm::MeterCategory(_) => "meter_category",
            ScopeTerm::Subscription(_) => "subscription",
            ScopeTerm::Term(_) => "term",
            ScopeTerm::Currency(_) => "currency",
            ScopeTerm::From(_) => "from",
            ScopeTerm::Until(_) => "until",
        }
    }

    /// The value as written (a date as ISO), for labels and messages.
    pub fn value(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            ScopeTerm::Service(value)
            | ScopeTerm::Broker(value)
            | ScopeTerm::Organization(value)
            | ScopeTerm::CustomerNumber(value)
            | ScopeTerm::OrganizationGroup(value)
            | ScopeTerm::ItemCode(value)
            | ScopeTerm::ProductId(value)
            | ScopeTerm::ProductName(value)
            | ScopeTerm::MeterCategory(value)
            | ScopeTerm::Subscription(value)
            | ScopeTerm::Term(value)
            | ScopeTerm::Currency(value) => value,
            ScopeTerm::From(date) | ScopeTerm::Until(date) => return Cow::Owned(date.to_string()),
        })
    }

    /// The value as matching compares it: case is ignored for product patterns, meter
    /// categories, terms and currencies, kept for names, numbers and ids.
    pub fn comparable_value(&self) -> String {
        match self {
            ScopeTerm::ProductName(value)
            | ScopeTerm::MeterCategory(value)
            | ScopeTerm::Term(value)
            | ScopeTerm::Currency(value) => value.to_ascii_lowercase(),
            other => other.value().to_string(),
        }
    }

    /// What the term looks at, which decides how specific its rule is.
    pub fn dimension(&self) -> Dimension {
        match self {
            ScopeTerm::Service(_) => Dimension::Service,
            ScopeTerm::Broker(_) => Dimension::Broker,
            ScopeTerm::Organization(_) | ScopeTerm::CustomerNumber(_) => Dimension::Organization,
            ScopeTerm::OrganizationGroup(_) => Dimension::OrganizationGroup,
            ScopeTerm::ItemCode(_) | ScopeTerm::ProductId(_) => Dimension::Product,
            ScopeTerm::ProductName(_) => Dimension::ProductName,
            ScopeTerm::MeterCategory(_) => Dimension::MeterCategory,
            ScopeTerm::Subscription(_) => Dimension::Subscription,
            ScopeTerm::Term(_) => Dimension::Term,
            ScopeTerm::Currency(_) => Dimension::Currency,
            ScopeTerm::From(_) => Dimension::From,
            ScopeTerm::Until(_) => Dimension::Until,
        }
    }

    /// Whether the line meets the condition.
    pub fn matches(&self, line: &LineFacts<'_>) -> bool {
        match self {
            ScopeTerm::Service(value) => line.service == value,
            ScopeTerm::Broker(value) => line.broker.trim() == value,
            ScopeTerm::Organization(value) => line.organization == value,
            ScopeTerm::CustomerNumber(value) => line.customer_number.trim() == value,
            ScopeTerm::OrganizationGroup(value) => {
                line.organization_groups.split(';').any(|group| group.trim() == value)
            }
            ScopeTerm::ItemCode(value) => line.item_code == value,
            ScopeTerm::ProductId(value) => line.product_id == value,
            ScopeTerm::ProductName(pattern) => matches_pattern(pattern, line.product_name),
            ScopeTerm::MeterCategory(value) => line.meter_category.eq_ignore_ascii_case(value),
            ScopeTerm::Subscription(value) => line.subscription == value,
            ScopeTerm::Term(value) => line.term.trim().eq_ignore_ascii_case(value),
            ScopeTerm::Currency(value) => line.currency.trim().eq_ignore_ascii_case(value),
            ScopeTerm::From(date) => line.billing_date >= *date,
            ScopeTerm::Until(date) => line.billing_date <= *date,
        }
    }
}

impl fmt::Display for ScopeTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.keyword(), self.value())
    }
}

/// `*` matches any text (also none), everything else itself, ignoring ASCII case. Runs once
/// per line and pattern rule, so it allocates nothing.
pub fn matches_pattern(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let mut pieces = pattern.split(|byte| *byte == b'*');
    let first = pieces.next().unwrap_or_default();
    if !starts_with_ignoring_case(text, first) {
        return false;
    }
    let mut rest = &text[first.len()..];
    let pieces: Vec<&[u8]> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match find_ignoring_case(rest, piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest[rest.len() - last.len()..].eq_ignore_ascii_case(last)
}

fn starts_with_ignoring_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn find_ignoring_case(text: &[u8], piece: &[u8]) -> Option<usize> {
    if piece.is_empty() {
        return Some(0);
    }
    (0..=text.len().checked_sub(piece.len())?)
        .find(|&at| text[at..at + piece.len()].eq_ignore_ascii_case(piece))
}

/// An Azure line's meter category: "Virtual Machines - Dv3/DSv3 Series, D2 v3" →
/// "Virtual Machines" (Azure names meters "Category - Subcategory, Meter").
pub fn meter_category(product_name: &str) -> &str {
    product_name.split(" - ").next().unwrap_or(product_name).trim()
}

/// The fields of a bill line a scope can look at.
#[derive(Debug, Clone, Copy)]
pub struct LineFacts<'a> {
    /// Service Name.
    pub service: &'a str,
    /// Broker Name.
    pub broker: &'a str,
    /// Organization Name.
    pub organization: &'a str,
    /// Customer Number.
    pub customer_number: &'a str,
    /// Organization Groups, `;`-separated.
    pub organization_groups: &'a str,
    /// Item Code.
    pub item_code: &'a str,
    /// Product ID.
    pub product_id: &'a str,
    /// Product Name.
    pub product_name: &'a str,
    /// The meter category, computed once from the Product Name.
    pub meter_category: &'a str,
    /// Subscription ID.
    pub subscription: &'a str,
    /// Payment Frequency.
    pub term: &'a str,
    /// Currency Code.
    pub currency: &'a str,
    /// The bill's Billing Date, for rules in force from or until a date.
    pub billing_date: NaiveDate,
}

impl<'a> LineFacts<'a> {
    /// The facts of a bill line, borrowed: built for every line, so it copies nothing.
    pub fn of(line: &'a BillLine) -> Self {
        LineFacts {
            service: &line.service_name,
            broker: &line.broker_name,
            organization: &line.organization_name,
            customer_number: &line.customer_number,
            organization_groups: &line.organization_groups,
            item_code: &line.item_code,
            product_id: &line.product_id,
            product_name: &line.product_name,
            meter_category: meter_category(&line.product_name),
            subscription: &line.subscription_id,
            term: &line.payment_frequency,
            currency: &line.currency_code,
            billing_date: line.billing_date,
        }
    }
}

/// How much more precise one scope is than another: one bit per dimension it names, the most
/// precise dimension highest, so that comparing the numbers compares the scopes. Between equal
/// scopes, a rule's `priority` decides, then the later `from` date (a price change written
/// ahead takes over from the one before without an `until` on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Specificity {
    /// One bit per [`Dimension`] the scope names, the most precise highest.
    pub bits: u16,
    /// `priority = N`: 0 unless a rule says.
    pub priority: i32,
    /// The rule's `from` date, if any.
    pub from: Option<NaiveDate>,
}

impl Specificity {
    /// The specificity of a scope, before any `priority`.
    pub fn of(terms: &[ScopeTerm]) -> Self {
        Specificity {
            bits: terms.iter().fold(0, |bits, term| bits | 1 << term.dimension() as u16),
            priority: 0,
            from: terms.iter().find_map(|term| match term {
                ScopeTerm::From(date) => Some(*date),
                _ => None,
            }),
        }
    }

    /// The same scope under `priority = N`.
    pub fn with_priority(self, priority: i32) -> Self {
        Specificity { priority, ..self }
    }
}

/// When a lower licence count takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecreaseTiming {
    /// On the Billing Date of the bill that shows it (Cloudmore's own behaviour).
    BillingDate,
    /// On the first day of the next billing period (by the line's Payment Frequency).
    NextPeriod,
    /// The day after the subscription's term ends (NCE: seats drop only at renewal).
    TermEnd,
}

impl DecreaseTiming {
    /// When the decrease takes effect, in a plan's words.
    pub fn describe(self) -> &'static str {
        match self {
            DecreaseTiming::BillingDate => "on the Billing Date",
            DecreaseTiming::NextPeriod => "at the start of the next billing period",
            DecreaseTiming::TermEnd => "at the end of the subscription's term",
        }
    }
}

/// How a consumption subscription's lines of one period become charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumptionSplit {
    /// One charge per subscription and period (Cloudmore's own behaviour).
    Subscription,
    /// One charge per meter category and period.
    MeterCategory,
}

/// What a price under its margin floor does to a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarginPolicy {
    /// Shown as a warning; the plan applies.
    Warn,
    /// `apply` refuses the plan, naming each line, until the rule or the price changes.
    Refuse,
}

/// Everything a scoped rule may set; `None` leaves it to a less specific rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScopedSettings {
    /// The Autotask company of the lines (an explicit link).
    pub company: Option<Ruled<i64>>,
    /// `unit_price = …`: how the price is made from the bill.
    pub unit_price: Option<Ruled<PriceSource>>,
    /// A price per band of the licence count; a form of `unit_price` (a rule sets one of them).
    pub tiers: Option<Ruled<Tiers>>,
    /// A second Service per seat on the same contract (support sold with each licence).
    pub add_on: Option<Ruled<AddOn>>,
    /// The MSP's own cost (a distributor rebate): margins and the cost written follow it.
    pub unit_cost: Option<Ruled<CostSource>>,
    /// Prices rounded up to a price point (.99, .95, whole units).
    pub price_point: Option<Ruled<PricePoint>>,
    /// The highest unit price.
    pub max_price: Option<Ruled<Decimal>>,
    /// Decimal places kept.
    pub scale: Option<Ruled<u32>>,
    /// How prices are rounded to the scale.
    pub rounding: Option<Ruled<super::Rounding>>,
    /// The lowest margin: a fraction of the price, or an amount per unit.
    pub margin_floor: Option<Ruled<MarginFloor>>,
    /// Whether a price under the floor warns or refuses the plan.
    pub margin_policy: Option<Ruled<MarginPolicy>>,
    /// The name of the lines' contract.
    pub contract_name: Option<Template>,
    /// The contractCategory picklist value of new contracts.
    pub contract_category: Option<Ruled<i64>>,
    /// The line of business (organizationalLevelAssociationID) of new contracts.
    pub line_of_business: Option<Ruled<i64>>,
    /// The serviceLevelAgreementID of new contracts.
    pub service_level_agreement: Option<Ruled<i64>>,
    /// The Autotask Service the products go on.
    pub service: Option<Ruled<i64>>,
    /// One Autotask Service per product and term (annual and monthly apart).
    pub service_per_term: Option<Ruled<bool>>,
    /// `skip = true`: the lines are not billed (and the plan says how many).
    pub skip: Option<Ruled<bool>>,
    /// Lines whose Total Sales and Total Cost are both zero are not billed.
    pub skip_zero_amount: Option<Ruled<bool>>,
    /// The first N licences are free.
    pub included_units: Option<Ruled<u32>>,
    /// At least N licences are billed.
    pub minimum_units: Option<Ruled<u32>>,
    /// One charge per subscription or per meter category.
    pub consumption_split: Option<Ruled<ConsumptionSplit>>,
    /// When a lower licence count takes effect.
    pub decrease: Option<Ruled<DecreaseTiming>>,
    /// The months of one commitment term (1-year and 3-year NCE terms side by side).
    pub term_months: Option<Ruled<u32>>,
    /// The name of the consumption charges.
    pub charge_name: Option<Template>,
    /// What a product gone from the bill does.
    pub removed_product: Option<Ruled<super::RemovedProduct>>,
    /// What a billed charge that differs from the bill does.
    pub billed_charge_mismatch: Option<Ruled<super::BilledChargeMismatch>>,
}

/// One `for … { … }` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedRule {
    /// The conditions a line must all meet.
    pub scope: Vec<ScopeTerm>,
    /// The scope's, and the rule's `priority`.
    pub specificity: Specificity,
    /// What the rule sets for the lines it matches.
    pub set: ScopedSettings,
    /// Where the `for` is written.
    pub origin: RuleOrigin,
}

impl ScopedRule {
    /// Whether every term of the scope holds for the line.
    pub fn matches(&self, line: &LineFacts<'_>) -> bool {
        self.scope.iter().all(|term| term.matches(line))
    }

    /// `from 2026-12-01 until 2026-12-31`, when the rule is dated: how a plan names it.
    pub fn dates_label(&self) -> Option<String> {
        let dates: Vec<String> = self
            .scope
            .iter()
            .filter_map(|term| match term {
                ScopeTerm::From(date) => Some(format!("from {date}")),
                ScopeTerm::Until(date) => Some(format!("until {date}")),
                _ => None,
            })
            .collect();
        (!dates.is_empty()).then(|| dates.join(" "))
    }

    /// `for organization "Contoso Ltd", item_code "CFQ7…"`, as written.
    pub fn scope_label(&self) -> String {
        let terms: Vec<String> = self.scope.iter().map(ToString::to_string).collect();
        format!("for {}", terms.join(", "))
    }
}

/// Two equally specific rules matching one line that set one thing differently.
#[derive(Debug, Clone, PartialEq)]
pub struct Ambiguity {
    /// The setting they disagree on, as the language names it.
    pub setting: &'static str,
    /// The first of the two rules, in file order.
    pub first: RuleOrigin,
    /// The other.
    pub second: RuleOrigin,
}

/// The rules in force for one line: for each thing, the most specific rule that sets it, or
/// the default from the unscoped blocks. References into the [`RuleSet`].
#[derive(Debug, Clone)]
pub struct Resolved<'r> {
    /// The scoped rules that matched, most specific first (for `cmat explain`).
    pub matched: Vec<&'r ScopedRule>,
    /// An explicit company; `None` leaves it to the top-level link or the column.
    pub company: Option<&'r Ruled<i64>>,
    /// The price formula in force (unless `tiers` price the line).
    pub unit_price: &'r Ruled<PriceSource>,
    /// Seat-count tiers, when the most specific rule pricing the line states them.
    pub tiers: Option<&'r Ruled<Tiers>>,
    /// A per-seat add-on Service, if a rule sells one with the product.
    pub add_on: Option<&'r Ruled<AddOn>>,
    /// The cost formula in force.
    pub unit_cost: &'r Ruled<CostSource>,
    /// The price point prices are rounded up to, if any.
    pub price_point: Option<&'r Ruled<PricePoint>>,
    /// The price cap, if any.
    pub max_price: Option<&'r Ruled<Decimal>>,
    /// The decimal places kept.
    pub scale: &'r Ruled<u32>,
    /// How amounts are rounded to the scale.
    pub rounding: &'r Ruled<super::Rounding>,
    /// The margin floor prices are checked against, if any.
    pub margin_floor: Option<&'r Ruled<MarginFloor>>,
    /// What a price under the floor does.
    pub margin_policy: &'r Ruled<MarginPolicy>,
    /// A contract name for the lines' kind; `None` takes the `contract` block's.
    pub contract_name: Option<&'r Template>,
    /// The contractCategory of a new contract, if any.
    pub contract_category: Option<&'r Ruled<i64>>,
    /// The line of business of a new contract, if any.
    pub line_of_business: Option<&'r Ruled<i64>>,
    /// The SLA of a new contract.
    pub service_level_agreement: &'r Ruled<i64>,
    /// The Autotask Service a rule names for the product; `None` finds it by sku.
    pub service: Option<&'r Ruled<i64>>,
    /// Whether the product gets one Service per term.
    pub service_per_term: Option<&'r Ruled<bool>>,
    /// A rule that leaves the line unbilled.
    pub skip: Option<&'r Ruled<bool>>,
    /// Whether zero-amount lines are left unbilled.
    pub skip_zero_amount: Option<&'r Ruled<bool>>,
    /// Free licences taken off the count.
    pub included_units: Option<&'r Ruled<u32>>,
    /// The fewest licences billed.
    pub minimum_units: Option<&'r Ruled<u32>>,
    /// How consumption lines are split into charges.
    pub consumption_split: &'r Ruled<ConsumptionSplit>,
    /// When a lower licence count takes effect.
    pub decrease: &'r Ruled<DecreaseTiming>,
    /// The months of a contract's term.
    pub term_months: &'r Ruled<u32>,
    /// The name of the consumption charges.
    pub charge_name: &'r Template,
    /// What a product gone from the bill does.
    pub removed_product: &'r Ruled<super::RemovedProduct>,
    /// What a billed charge that differs from the bill does.
    pub billed_charge_mismatch: &'r Ruled<super::BilledChargeMismatch>,
}

impl Resolved<'_> {
    /// `amount` at the scale and rounding in force.
    pub fn round(&self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.scale.value, self.rounding.value.strategy())
    }

    /// The unit price from a line's unit sales price and unit cost: the formula, rounded up
    /// to the price point, capped at `max_price`, rounded to the scale.
    pub fn unit_price(&self, sales: Decimal, cost: Decimal, count: i64) -> Decimal {
        let price = match self.tiers {
            Some(tiers) => tiers.value.apply(sales, cost, count),
            None => self.unit_price.value.apply(sales, cost, Decimal::ONE),
        };
        self.finish_price(price)
    }

    /// The rule a licence product's price comes from: its tiers', else its `unit_price`'s.
    pub fn price_origin(&self) -> &RuleOrigin {
        self.tiers.map(|tiers| &tiers.origin).unwrap_or(&self.unit_price.origin)
    }

    /// A price the formula gave, rounded up to the price point, then capped (the cap is a
    /// promise to the customer: it wins over the point), then rounded to the scale.
    pub fn finish_price(&self, price: Decimal) -> Decimal {
        let pointed = match self.price_point {
            Some(point) => point.value.round_up(price),
            None => price,
        };
        let capped = match self.max_price {
            Some(cap) => pointed.min(cap.value),
            None => pointed,
        };
        self.round(capped)
    }

    /// The MSP's cost of a line's unit (or, for consumption, total with quantity 1), rounded.
    pub fn unit_cost(&self, cost: Decimal, quantity: Decimal) -> Decimal {
        self.unit_cost.value.apply(cost, quantity)
    }

    /// Whether the line is not billed at all, and by which rule.
    pub fn skipped_by(&self, line: &BillLine) -> Option<&RuleOrigin> {
        self.skip_rule(line.total_sales.is_zero() && line.total_cost.is_zero())
    }

    /// [`Resolved::skipped_by`] for a line whose totals are both zero, or not.
    pub fn skip_rule(&self, zero_amount: bool) -> Option<&RuleOrigin> {
        if let Some(skip) = self.skip.filter(|skip| skip.value) {
            return Some(&skip.origin);
        }
        self.skip_zero_amount.filter(|skip| skip.value && zero_amount).map(|skip| &skip.origin)
    }

    /// A price under cost plus the margin floor, as a message; `None` when it is above.
    pub fn margin_shortfall(&self, price: Decimal, cost: Decimal) -> Option<String> {
        let floor = self.margin_floor?;
        if cost <= Decimal::ZERO {
            return None;
        }
        let lowest = match floor.value {
            MarginFloor::Percent(fraction) => {
                cost / (Decimal::ONE - fraction.min(Decimal::new(9999, 4)))
            }
            MarginFloor::Amount(amount) => cost + amount,
        };
        if price >= lowest {
            return None;
        }
        let margin = if price.is_zero() {
            "no price".to_string()
        } else {
            format!("a margin of {}%", ((price - cost) / price * Decimal::ONE_HUNDRED).round_dp(2))
        };
        let floor_text = match floor.value {
            MarginFloor::Percent(fraction) => {
                format!("{}%", (fraction * Decimal::ONE_HUNDRED).normalize())
            }
            MarginFloor::Amount(amount) => format!("{} per unit", amount.normalize()),
        };
        Some(format!(
            "price {} for cost {} is {margin}, under the floor of {floor_text} ({})",
            price.normalize(),
            cost.normalize(),
            floor.origin
        ))
    }
}

impl PriceSource {
    /// The price of `quantity` units whose unit sales price and cost are given (for
    /// consumption, the line's totals with a quantity of one).
    pub fn apply(self, sales: Decimal, cost: Decimal, quantity: Decimal) -> Decimal {
        match self {
            PriceSource::SalesPrice => sales,
            PriceSource::CostPlusMarkup(markup) => cost * (Decimal::ONE + markup),
            PriceSource::SalesLessDiscount(discount) => sales * (Decimal::ONE - discount),
            PriceSource::Fixed(price) => price * quantity,
            PriceSource::SalesPlusUplift(uplift) => sales * (Decimal::ONE + uplift),
            PriceSource::CostPlusAmount(amount) => cost + amount * quantity,
        }
    }
}

/// The value of the most specific matching rule that sets one thing; two equally specific
/// ones that differ are an [`Ambiguity`].
fn pick<'r, T: PartialEq + 'r>(
    matched: &[&'r ScopedRule],
    setting: &'static str,
    get: impl Fn(&'r ScopedSettings) -> Option<&'r T>,
    same: impl Fn(&T, &T) -> bool,
    origin: impl Fn(&T) -> &RuleOrigin,
) -> Result<Option<&'r T>, Ambiguity> {
    let mut found: Option<(&'r T, Specificity)> = None;
    for rule in matched {
        let Some(value) = get(&rule.set) else { continue };
        match found {
            None => found = Some((value, rule.specificity)),
            Some((first, specificity)) if specificity == rule.specificity => {
                if !same(first, value) {
                    return Err(Ambiguity {
                        setting,
                        first: origin(first).clone(),
                        second: origin(value).clone(),
                    });
                }
            }
            Some(_) => break,
        }
    }
    Ok(found.map(|(value, _)| value))
}
/// Tiers are a form of the price: they hold when the most specific rule that prices the line
/// (by `unit_price` or tiers) states them.
fn tiers_in_force<'r>(matched: &[&'r ScopedRule]) -> Result<Option<&'r Ruled<Tiers>>, Ambiguity> {
    let tiers = ruled(matched, "tiers", |s| s.tiers.as_ref())?;
    let first = matched.iter().find(|r| r.set.unit_price.is_some() || r.set.tiers.is_some());
    Ok(tiers.filter(|_| first.is_some_and(|rule| rule.set.tiers.is_some())))
}

/// [`pick`] for a [`Ruled`] setting.
fn ruled<'r, T: PartialEq + 'r>(
    matched: &[&'r ScopedRule],
    setting: &'static str,
    get: impl Fn(&'r ScopedSettings) -> Option<&'r Ruled<T>>,
) -> Result<Option<&'r Ruled<T>>, Ambiguity> {
    pick(matched, setting, get, |a, b| a.value == b.value, |r| &r.origin)
}

/// [`pick`] for a name template: two templates agree when their parts do.
fn template<'r>(
    matched: &[&'r ScopedRule],
    setting: &'static str,
    get: impl Fn(&'r ScopedSettings) -> Option<&'r Template>,
) -> Result<Option<&'r Template>, Ambiguity> {
    pick(matched, setting, get, |a, b| a.parts == b.parts, |t| &t.origin)
}

impl RuleSet {
    /// How many months after a Billing Date cmat may date a write under these rules: 0 when
    /// every decrease is dated on its Billing Date; else the longest billing period a
    /// `next_period` decrease waits for (36 months, triennial) or the longest term a
    /// `term_end` one waits for, whichever is longer. The units window reaches that far
    /// ([`crate::snapshot::UnitsWindow::around`]) so that what was written is read back.
    pub fn units_reach_months(&self) -> u32 {
        let deferred = std::iter::once(self.policies.decrease.value)
            .chain(
                self.scoped.iter().filter_map(|rule| rule.set.decrease.as_ref().map(|d| d.value)),
            )
            .any(|timing| timing != DecreaseTiming::BillingDate);
        if !deferred {
            return 0;
        }
        let longest_term = std::iter::once(self.contract.term_months.value)
            .chain(
                self.scoped
                    .iter()
                    .filter_map(|rule| rule.set.term_months.as_ref().map(|t| t.value)),
            )
            .max()
            .unwrap_or(12);
        longest_term.max(36)
    }

    /// The Autotask company a `for` rule links an organization to, for views that know the
    /// organization but not a whole line (the billing review): the most specific rule that sets
    /// a company and whose organization terms match; its other terms are taken to hold.
    pub fn company_rule_for(
        &self,
        organization: &str,
        customer_number: &str,
    ) -> Option<&Ruled<i64>> {
        self.scoped
            .iter()
            .filter(|rule| {
                rule.set.company.is_some()
                    && rule.scope.iter().all(|term| match term {
                        ScopeTerm::Organization(name) => name == organization,
                        ScopeTerm::CustomerNumber(number) => number == customer_number.trim(),
                        _ => true,
                    })
            })
            .max_by_key(|rule| rule.specificity)
            .and_then(|rule| rule.set.company.as_ref())
    }

    /// The rules in force for one line, or the first ambiguity found.
    pub fn resolve(&self, line: &LineFacts<'_>) -> Result<Resolved<'_>, Ambiguity> {
        let mut matched: Vec<&ScopedRule> =
            self.scoped.iter().filter(|rule| rule.matches(line)).collect();
        // Most specific first; in file order among equals (the order ambiguity is told in).
        matched.sort_by_key(|rule| std::cmp::Reverse(rule.specificity));
        self.resolve_matched(matched)
    }

    /// [`RuleSet::resolve`] once the matching rules are known, most specific first: the
    /// defaults, each overridden by the most specific matching rule that sets it.
    pub fn resolve_matched<'r>(
        &'r self,
        matched: Vec<&'r ScopedRule>,
    ) -> Result<Resolved<'r>, Ambiguity> {
        let mut resolved = self.defaults();
        // In this order, so that the first ambiguity told is the same whatever the caller.
        resolved.override_prices(&matched)?;
        resolved.override_contract(&matched)?;
        resolved.override_lines(&matched)?;
        resolved.matched = matched;
        Ok(resolved)
    }

    /// What the unscoped blocks say: the resolution of a line no `for` rule matches.
    fn defaults(&self) -> Resolved<'_> {
        let prices = &self.prices;
        Resolved {
            matched: Vec::new(),
            company: None,
            unit_price: &prices.unit_price,
            tiers: None,
            add_on: None,
            unit_cost: &prices.unit_cost,
            price_point: prices.price_point.as_ref(),
            max_price: prices.max_price.as_ref(),
            scale: &prices.scale,
            rounding: &prices.rounding,
            margin_floor: prices.margin_floor.as_ref(),
            margin_policy: &prices.margin_policy,
            contract_name: None,
            contract_category: self.contract.category.as_ref(),
            line_of_business: self.contract.line_of_business.as_ref(),
            service_level_agreement: &self.settings.service_level_agreement,
            service: None,
            service_per_term: self.products.per_term.as_ref(),
            skip: None,
            skip_zero_amount: self.policies.skip_zero_amount.as_ref(),
            included_units: None,
            minimum_units: None,
            consumption_split: &self.consumption.split,
            decrease: &self.policies.decrease,
            term_months: &self.contract.term_months,
            charge_name: &self.consumption.charge_name,
            removed_product: &self.policies.removed_product,
            billed_charge_mismatch: &self.policies.billed_charge_mismatch,
        }
    }
}

impl<'r> Resolved<'r> {
    /// The company and the pricing settings the matching rules set.
    fn override_prices(&mut self, m: &[&'r ScopedRule]) -> Result<(), Ambiguity> {
        self.company = ruled(m, "company", |s| s.company.as_ref())?;
        self.unit_price =
            ruled(m, "unit_price", |s| s.unit_price.as_ref())?.unwrap_or(self.unit_price);
        self.tiers = tiers_in_force(m)?;
        self.add_on = ruled(m, "add_on_service", |s| s.add_on.as_ref())?;
        self.unit_cost = ruled(m, "unit_cost", |s| s.unit_cost.as_ref())?.unwrap_or(self.unit_cost);
        self.price_point =
            ruled(m, "price_point", |s| s.price_point.as_ref())?.or(self.price_point);
        self.max_price = ruled(m, "max_price", |s| s.max_price.as_ref())?.or(self.max_price);
        self.scale = ruled(m, "scale", |s| s.scale.as_ref())?.unwrap_or(self.scale);
        self.rounding = ruled(m, "rounding", |s| s.rounding.as_ref())?.unwrap_or(self.rounding);
        self.margin_floor =
            ruled(m, "margin_floor", |s| s.margin_floor.as_ref())?.or(self.margin_floor);
        self.margin_policy =
            ruled(m, "margin_policy", |s| s.margin_policy.as_ref())?.unwrap_or(self.margin_policy);
        Ok(())
    }

    /// The settings of the contract and its Services the matching rules set.
    fn override_contract(&mut self, m: &[&'r ScopedRule]) -> Result<(), Ambiguity> {
        self.contract_name = template(m, "contract_name", |s| s.contract_name.as_ref())?;
        self.contract_category = ruled(m, "contract_category", |s| s.contract_category.as_ref())?
            .or(self.contract_category);
        self.line_of_business = ruled(m, "line_of_business", |s| s.line_of_business.as_ref())?
            .or(self.line_of_business);
        self.service_level_agreement =
            ruled(m, "service_level_agreement", |s| s.service_level_agreement.as_ref())?
                .unwrap_or(self.service_level_agreement);
        self.service = ruled(m, "service", |s| s.service.as_ref())?;
        self.service_per_term = ruled(m, "service_per_term", |s| s.service_per_term.as_ref())?
            .or(self.service_per_term);
        Ok(())
    }

    /// The settings of how lines are counted, skipped, split and corrected the rules set.
    fn override_lines(&mut self, m: &[&'r ScopedRule]) -> Result<(), Ambiguity> {
        self.skip = ruled(m, "skip", |s| s.skip.as_ref())?;
        self.skip_zero_amount = ruled(m, "skip_zero_amount", |s| s.skip_zero_amount.as_ref())?
            .or(self.skip_zero_amount);
        self.included_units = ruled(m, "included_units", |s| s.included_units.as_ref())?;
        self.minimum_units = ruled(m, "minimum_units", |s| s.minimum_units.as_ref())?;
        self.consumption_split = ruled(m, "consumption_split", |s| s.consumption_split.as_ref())?
            .unwrap_or(self.consumption_split);
        self.decrease = ruled(m, "decrease", |s| s.decrease.as_ref())?.unwrap_or(self.decrease);
        self.term_months =
            ruled(m, "term_months", |s| s.term_months.as_ref())?.unwrap_or(self.term_months);
        self.charge_name =
            template(m, "charge_name", |s| s.charge_name.as_ref())?.unwrap_or(self.charge_name);
        self.removed_product = ruled(m, "removed_product", |s| s.removed_product.as_ref())?
            .unwrap_or(self.removed_product);
        self.billed_charge_mismatch =
            ruled(m, "billed_charge_mismatch", |s| s.billed_charge_mismatch.as_ref())?
                .unwrap_or(self.billed_charge_mismatch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_stars_and_ignore_case() {
        assert!(matches_pattern("Microsoft 365 E*", "microsoft 365 e3"));
        assert!(matches_pattern("*Exchange*", "Exchange Online (Plan 1)"));
        assert!(matches_pattern("*(Plan 1)", "Exchange Online (Plan 1)"));
        assert!(matches_pattern("Teams", "teams"));
        assert!(!matches_pattern("Teams", "Teams Phone"));
        assert!(!matches_pattern("*E5", "Microsoft 365 E3"));
        assert!(matches_pattern("a*a", "aa"));
        assert!(!matches_pattern("a*a", "a"));
    }

    /// Glob matching by backtracking over characters: slow, obviously right.
    fn reference(pattern: &[u8], text: &[u8]) -> bool {
        match (pattern.first(), text.first()) {
            (None, _) => text.is_empty(),
            (Some(b'*'), _) => {
                reference(&pattern[1..], text)
                    || (!text.is_empty() && reference(pattern, &text[1..]))
            }
            (Some(p), Some(t)) => p.eq_ignore_ascii_case(t) && reference(&pattern[1..], &text[1..]),
            (Some(_), None) => false,
        }
    }

    proptest::proptest! {
        #[test]
        fn patterns_match_as_a_plain_glob_would(pattern in "[aB*]{0,6}", text in "[AbB]{0,8}") {
            proptest::prop_assert_eq!(
                matches_pattern(&pattern, &text),
                reference(pattern.as_bytes(), text.as_bytes())
            );
        }
    }

    #[test]
    fn the_meter_category_is_the_product_name_before_its_first_dash() {
        assert_eq!(
            meter_category("Virtual Machines - Dv3/DSv3 Series, D2 v3/D2s v3"),
            "Virtual Machines"
        );
        assert_eq!(meter_category("Bandwidth"), "Bandwidth");
    }

    #[test]
    fn a_subscription_beats_any_mix_without_one_and_an_organization_beats_a_product() {
        let of = |terms: Vec<ScopeTerm>| Specificity::of(&terms);
        let subscription = of(vec![ScopeTerm::Subscription("S".into())]);
        let everything_else = of(vec![
            ScopeTerm::Organization("O".into()),
            ScopeTerm::OrganizationGroup("G".into()),
            ScopeTerm::ItemCode("I".into()),
            ScopeTerm::Service("X".into()),
            ScopeTerm::Currency("EUR".into()),
        ]);
        assert!(subscription > everything_else);
        assert!(
            of(vec![ScopeTerm::CustomerNumber("C".into())])
                > of(vec![ScopeTerm::ItemCode("I".into()), ScopeTerm::Term("Annual".into())])
        );
        assert_eq!(
            of(vec![ScopeTerm::CustomerNumber("C".into())]),
            of(vec![ScopeTerm::Organization("O".into())])
        );
    }
}
