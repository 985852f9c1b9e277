//! The billing review (`cmat report`): the page a billing admin reads before invoicing.
//!
//! `build` is pure: from one period's bill lines, the period before it (aggregated), every
//! period's totals, the Autotask snapshot, the plan's warnings and the period's failed writes
//! it makes a [`Review`]; `render` turns a review into HTML, CSV or JSON. The CLI
//! (`cli/report.rs`) only reads the store and writes the result.
//!
//! Money is `Decimal` throughout (JSON: decimal strings); an amount nobody can know (a cost
//! Autotask hides, the price of a contract in another currency) is `None`, never 0.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::store::ReviewLine;
use cmat_engine::desired::WarningCode;
use cmat_engine::rules::{BillingKind, RuleSet};
use cmat_engine::snapshot::Snapshot;

mod charts;
pub mod load;
pub mod render;

pub use render::{render, render_to, Format, RenderError};

/// A calendar month, the unit of review (`2026-11`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

impl Period {
    pub fn of(date: NaiveDate) -> Period {
        Period { year: date.year(), month: date.month() }
    }

    /// `YYYY-MM`, or None.
    pub fn parse(text: &str) -> Option<Period> {
        let (year, month) = text.trim().split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let period = Period { year: year.parse().ok()?, month: month.parse().ok()? };
        NaiveDate::from_ymd_opt(period.year, period.month, 1).map(|_| period)
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    pub fn next(self) -> Period {
        if self.month == 12 {
            Period { year: self.year + 1, month: 1 }
        } else {
            Period { year: self.year, month: self.month + 1 }
        }
    }

    pub fn contains(self, date: NaiveDate) -> bool {
        Period::of(date) == self
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

/// Everything the page, the CSV and the JSON show. Field order is the JSON's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub period: Period,
    pub previous_period: Option<Period>,
    /// The Billing Dates of the period's bills.
    pub billing_dates: Vec<NaiveDate>,
    /// The currencies the bills are in (amounts are never converted).
    pub currencies: Vec<String>,
    pub totals: Totals,
    pub exceptions: Vec<Exception>,
    pub companies: Vec<CompanyReview>,
    pub azure: Vec<AzureTrend>,
    /// Every imported period's totals, oldest first (the month-over-month chart).
    pub history: Vec<PeriodTotal>,
    /// What the review could not check, and why.
    pub notes: Vec<String>,
}

/// Revenue, cost and margin of a group of lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Figures {
    pub revenue: Decimal,
    pub cost: Decimal,
    pub margin: Decimal,
    /// margin / revenue, in percent to two places; None without revenue.
    pub margin_percent: Option<Decimal>,
}

impl Figures {
    pub fn new(revenue: Decimal, cost: Decimal) -> Figures {
        let margin = revenue - cost;
        let margin_percent = (!revenue.is_zero()).then(|| {
            let mut percent = (margin * Decimal::ONE_HUNDRED / revenue)
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
            percent.rescale(2);
            percent
        });
        Figures { revenue, cost, margin, margin_percent }
    }
}

/// Against the previous period: a row that is new, gone, or whose revenue went up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    New,
    Removed,
    Up,
    Down,
    Unchanged,
    /// No previous period imported: nothing to compare with.
    None,
}

impl Change {
    fn between(previous: Option<Decimal>, now: Option<Decimal>, has_previous_period: bool) -> Self {
        match (previous, now) {
            _ if !has_previous_period => Change::None,
            (None, Some(_)) => Change::New,
            (Some(_), None) => Change::Removed,
            (Some(before), Some(now)) if now > before => Change::Up,
            (Some(before), Some(now)) if now < before => Change::Down,
            _ => Change::Unchanged,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Removed => "removed",
            Change::Up => "up",
            Change::Down => "down",
            Change::Unchanged => "unchanged",
            Change::None => "",
        }
    }
}

/// The bills' totals beside what Autotask holds for the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Every line of the period's bills: equal to the bills to the cent.
    pub bills: Figures,
    pub lines: u64,
    /// Sales no rule takes to Autotask: unlinked organizations, unmapped services, manual
    /// lines, licence counts refused (fractional or negative).
    pub left_out: Decimal,
    /// `bills.revenue − left_out`: what Autotask should invoice.
    pub to_autotask: Decimal,
    /// Σ units in force on the Billing Date × the contract's adjusted price, over the
    /// period's licence subscriptions; None when a price is unknown.
    pub autotask_contract_services: Option<Decimal>,
    /// Σ quantity × price of the charges dated in the period on its consumption contracts.
    pub autotask_charges: Decimal,
    pub autotask_total: Option<Decimal>,
    /// `autotask_total − to_autotask`: 0 when Autotask holds exactly the bills.
    pub difference: Option<Decimal>,
    /// The part of `difference` the price book makes on purpose (markups, uplifts, tiers,
    /// add-ons): Σ what the rules put in Autotask − the bill, over the subscriptions billed.
    pub price_book_difference: Decimal,
    /// `difference − price_book_difference`: what the rules do not explain (0 after an apply).
    pub unexplained_difference: Option<Decimal>,
}

/// Something to look at before invoicing, most costly first within its kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exception {
    /// `unlinked_organization`, `unmapped_service`, `manual_line_not_billed`, `under_cost`,
    /// `subscription_stopped_appearing`, `autotask_differs`, `failed_write`, `unknown_write`,
    /// `adopted_contract`, `not_converged` (the last sync's own re-plan was not empty),
    /// `charge_corrected`, `bill_restated`, or a plan warning's code (`drift`,
    /// `duplicate_contracts`, …).
    pub kind: ExceptionKind,
    pub organization: String,
    pub subscription: String,
    pub message: String,
    /// The money at stake (left out, lost under cost, the difference), when there is one.
    pub amount: Option<Decimal>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompanyReview {
    pub organization: String,
    pub customer_number: String,
    pub autotask_company_id: Option<i64>,
    /// The company's name in Autotask, when the snapshot holds it.
    pub autotask_company: Option<String>,
    pub figures: Figures,
    pub previous_revenue: Option<Decimal>,
    pub change: Change,
    pub subscriptions: Vec<SubscriptionReview>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionReview {
    pub subscription_id: String,
    pub subscription_name: String,
    pub service: String,
    /// `licence`, `consumption`, or why it does not reach Autotask (`unmapped`, `unlinked`,
    /// `manual`).
    pub billing: &'static str,
    pub billing_date: Option<NaiveDate>,
    pub figures: Figures,
    pub previous_revenue: Option<Decimal>,
    pub change: Change,
    /// What Autotask holds for it in the period; None when unknown or not applicable.
    pub autotask_revenue: Option<Decimal>,
    /// `matches` (what the rules put there), `scheduled` (the rules' timing: a deferred
    /// decrease; the plan changes nothing), `differs`, `missing` (no contract), `duplicate`,
    /// `unknown` (a hidden price), or `` when the subscription does not reach Autotask.
    pub autotask_status: &'static str,
    pub products: Vec<ProductReview>,
    /// What the engine's desired state puts in Autotask for it in the period (units × the price
    /// book's price, charges at the rules' price); None when it does not reach Autotask.
    pub intended_revenue: Option<Decimal>,
    /// `intended_revenue − revenue`: the price book's own difference (expected).
    pub price_book_difference: Option<Decimal>,
    /// `autotask_revenue − intended_revenue`: what the rules do not explain.
    pub unexplained_difference: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductReview {
    pub item_code: String,
    pub product_name: String,
    pub units: Decimal,
    /// The lines' unit price; None when the product's lines disagree.
    pub unit_price: Option<Decimal>,
    pub unit_cost: Option<Decimal>,
    pub figures: Figures,
    pub previous_units: Option<Decimal>,
    pub previous_revenue: Option<Decimal>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AzureTrend {
    pub organization: String,
    pub subscription_id: String,
    pub subscription_name: String,
    /// One point per imported period, oldest first; absent periods have no point.
    pub points: Vec<PeriodTotal>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodTotal {
    pub period: Period,
    pub figures: Figures,
}

/// A write of the period's runs that failed, was skipped, or whose outcome is unknown; or a
/// contract one adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteProblem {
    pub run_id: String,
    /// What happened to the write (an approval of a run's plan is shown as a note).
    pub kind: WriteKind,
    pub action: String,
    pub entity: String,
    pub key: String,
    pub message: String,
}

/// What a [`WriteProblem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A write that failed or was skipped (`failed_write`).
    Failed,
    /// A write whose outcome is unknown (`unknown_write`).
    Unknown,
    /// A contract `cmat adopt --apply` linked (`adopted_contract`).
    Adopted,
    /// The last sync's own re-plan was not empty (`not_converged`).
    NotConverged,
    /// The approval of a run's plan: a note, not an exception.
    Approval,
}

/// An exception's kind, typed; written as its code (`autotask_differs`, a warning's code…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionKind {
    /// One of the engine's warnings, as the desired state or the plan raised it, or as the
    /// review computes it with amounts (unlinked organization, unmapped service…).
    Warning(WarningCode),
    UnderCost,
    AutotaskDiffers,
    FailedWrite,
    UnknownWrite,
    AdoptedContract,
    NotConverged,
    ChargeCorrected,
    BillRestated,
}

impl ExceptionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionKind::Warning(code) => code.as_str(),
            ExceptionKind::UnderCost => "under_cost",
            ExceptionKind::AutotaskDiffers => "autotask_differs",
            ExceptionKind::FailedWrite => "failed_write",
            ExceptionKind::UnknownWrite => "unknown_write",
            ExceptionKind::AdoptedContract => "adopted_contract",
            ExceptionKind::NotConverged => "not_converged",
            ExceptionKind::ChargeCorrected => "charge_corrected",
            ExceptionKind::BillRestated => "bill_restated",
        }
    }

    /// The order the review lists kinds in: what needs acting on first.
    fn rank(self) -> u8 {
        use WarningCode as W;
        match self {
            ExceptionKind::FailedWrite
            | ExceptionKind::UnknownWrite
            | ExceptionKind::NotConverged => 0,
            ExceptionKind::Warning(
                W::UnlinkedOrganization | W::UnmappedService | W::ManualLineNotBilled,
            ) => 1,
            ExceptionKind::AutotaskDiffers => 2,
            ExceptionKind::UnderCost => 3,
            ExceptionKind::Warning(W::DuplicateContracts | W::Drift) => 4,
            ExceptionKind::Warning(W::SubscriptionStoppedAppearing) => 5,
            ExceptionKind::ChargeCorrected
            | ExceptionKind::BillRestated
            | ExceptionKind::Warning(W::BilledChargeMismatch) => 6,
            _ => 7,
        }
    }
}

impl Serialize for ExceptionKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A plan warning, as the review needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNote {
    pub code: WarningCode,
    pub message: String,
    pub source: String,
}

/// Revenue and cost per period.
pub type PeriodAmounts = BTreeMap<Period, (Decimal, Decimal)>;

/// Per period (from the store): the totals, and per consumption subscription its totals.
#[derive(Debug, Clone, Default)]
pub struct HistoryInput {
    pub by_period: PeriodAmounts,
    /// (subscription id) → (organization, subscription name, per period (sales, cost)).
    pub consumption: BTreeMap<String, (String, String, PeriodAmounts)>,
}

impl HistoryInput {
    pub fn from_store(history: &crate::store::History) -> HistoryInput {
        let mut input = HistoryInput::default();
        for (date, (sales, cost)) in &history.by_date {
            let entry = input.by_period.entry(Period::of(*date)).or_default();
            entry.0 += sales;
            entry.1 += cost;
        }
        for ((date, subscription), (organization, name, sales, cost)) in &history.subscriptions {
            let entry = input
                .consumption
                .entry(subscription.clone())
                .or_insert_with(|| (organization.clone(), name.clone(), BTreeMap::new()));
            entry.0.clone_from(organization);
            let point = entry.2.entry(Period::of(*date)).or_default();
            point.0 += sales;
            point.1 += cost;
        }
        input
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregation of bill lines (streamed: the previous period is never held as lines).

/// Why a line does or does not reach Autotask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Licence,
    Consumption,
    Unmapped,
    Unlinked,
    Manual,
}

/// The line's Autotask company where the engine cannot resolve the line's rules (two equally
/// specific rules disagree) or a rule skips it: the organization's `for` company rule, an
/// explicit link, then the AutotaskCompanyID column.
fn organization_company(rules: &RuleSet, line: &ReviewLine<'_>) -> Option<i64> {
    rules
        .company_rule_for(line.organization_name, line.stored.customer_number)
        .or_else(|| rules.companies.explicit.get(line.organization_name))
        .map(|rule| rule.value)
        .or(line.stored.autotask_company_id.filter(|_| rules.companies.column.is_some()))
}

/// The line's facts as the engine's scopes read them.
fn facts<'a>(line: &ReviewLine<'a>) -> cmat_engine::rules::LineFacts<'a> {
    let stored = &line.stored;
    cmat_engine::rules::LineFacts {
        service: stored.service_name,
        broker: stored.broker_name,
        organization: line.organization_name,
        customer_number: stored.customer_number,
        organization_groups: stored.organization_groups,
        item_code: stored.item_code,
        product_id: stored.product_id,
        product_name: stored.product_name,
        meter_category: cmat_engine::rules::scoped::meter_category(stored.product_name),
        subscription: stored.subscription_id,
        term: stored.payment_frequency,
        currency: stored.currency_code,
        billing_date: line.billing_date,
    }
}

impl Route {
    /// The engine's route of the line ([`cmat_engine::desired::route_of`]) and its company.
    /// Lines a rule skips or whose rules are ambiguous are shown under their service's kind
    /// (the plan's warnings say why they are left out).
    fn of(rules: &RuleSet, line: &ReviewLine<'_>) -> (Route, Option<i64>) {
        use cmat_engine::desired::LineRoute;
        let zero = line.stored.total_sales.is_zero() && line.stored.total_cost.is_zero();
        let kind = |kind| match kind {
            BillingKind::Licence => Route::Licence,
            BillingKind::Consumption => Route::Consumption,
        };
        match cmat_engine::desired::route_of(
            rules,
            &facts(line),
            line.stored.autotask_company_id,
            zero,
        ) {
            LineRoute::Manual => (Route::Manual, organization_company(rules, line)),
            LineRoute::Unmapped => (Route::Unmapped, organization_company(rules, line)),
            LineRoute::Unlinked => (Route::Unlinked, None),
            LineRoute::Billed { kind: billed, company_id } => (kind(billed), Some(company_id)),
            LineRoute::Skipped | LineRoute::Ambiguous => {
                let company = organization_company(rules, line);
                let service = rules.services.get(line.stored.service_name).map(|rule| rule.value);
                match (company, service) {
                    (Some(_), Some(billed)) => (kind(billed), company),
                    _ => (Route::Unlinked, company),
                }
            }
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Route::Licence => "licence",
            Route::Consumption => "consumption",
            Route::Unmapped => "unmapped",
            Route::Unlinked => "unlinked",
            Route::Manual => "manual",
        }
    }

    fn reaches_autotask(self) -> bool {
        matches!(self, Route::Licence | Route::Consumption)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Seen {
    #[default]
    Nothing,
    One(Decimal),
    Mixed,
}

impl Seen {
    fn add(&mut self, value: Decimal) {
        *self = match *self {
            Seen::Nothing => Seen::One(value),
            Seen::One(seen) if seen == value => Seen::One(seen),
            _ => Seen::Mixed,
        }
    }

    fn value(self) -> Option<Decimal> {
        match self {
            Seen::One(value) => Some(value),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct ProductSum {
    units: Decimal,
    sales: Decimal,
    cost: Decimal,
    unit_price: Seen,
    unit_cost: Seen,
    /// Lines priced under their cost.
    under_cost: Vec<String>,
}

#[derive(Debug, Clone)]
struct SubscriptionSum {
    name: String,
    service: String,
    route: Route,
    billing_date: NaiveDate,
    sales: Decimal,
    cost: Decimal,
    first_source: String,
    products: Products,
}

/// A subscription's products by item code, then product name: a line finds its product by
/// borrowed keys (no key is built per line), and iteration is in (item code, product name)
/// order. An item code nearly always has one name: a sorted `Vec` of names costs one small
/// allocation per product, where an inner map would cost a whole tree node.
#[derive(Debug, Clone, Default)]
struct Products(BTreeMap<String, Vec<(String, ProductSum)>>);

impl Products {
    /// The product's sum, created at its first line (always `Some`).
    fn entry(&mut self, item_code: &str, product_name: &str) -> Option<&mut ProductSum> {
        let names = sum_of(&mut self.0, item_code, || Vec::with_capacity(1))?;
        let at = match names.binary_search_by(|(name, _)| name.as_str().cmp(product_name)) {
            Ok(at) => at,
            Err(at) => {
                names.insert(at, (product_name.to_owned(), ProductSum::default()));
                at
            }
        };
        names.get_mut(at).map(|(_, product)| product)
    }

    fn get(&self, item_code: &str, product_name: &str) -> Option<&ProductSum> {
        let names = self.0.get(item_code)?;
        let at = names.binary_search_by(|(name, _)| name.as_str().cmp(product_name)).ok()?;
        names.get(at).map(|(_, product)| product)
    }

    fn iter(&self) -> impl Iterator<Item = ((&str, &str), &ProductSum)> {
        self.0.iter().flat_map(|(item, names)| {
            names.iter().map(move |(name, product)| ((item.as_str(), name.as_str()), product))
        })
    }

    fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
}

#[derive(Debug, Clone)]
struct OrganizationSum {
    name: String,
    customer_number: String,
    company_id: Option<i64>,
    sales: Decimal,
    cost: Decimal,
    subscriptions: Keyed<SubscriptionSum>,
}

/// `map[key]`, created with `new` when the key is first seen: the key is copied then only,
/// not at every line (always `Some`; the borrow checker cannot yet express it without an
/// `Option`).
fn sum_of<'m, V>(
    map: &'m mut BTreeMap<String, V>,
    key: &str,
    new: impl FnOnce() -> V,
) -> Option<&'m mut V> {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), new());
    }
    map.get_mut(key)
}

/// Sums by key, read in key order. A store's lines come bill by bill, so nearly every line
/// has the key of the line before: that one is found by one comparison, not a search of the
/// map (a large tenant's period is 248,000 lines over 2,000 organizations).
#[derive(Debug, Clone)]
struct Keyed<V> {
    index: BTreeMap<String, usize>,
    values: Vec<V>,
    /// The key and the entry the last [`Keyed::entry`] found (`usize::MAX`: none yet).
    last_key: String,
    last: usize,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed {
            index: BTreeMap::new(),
            values: Vec::new(),
            last_key: String::new(),
            last: usize::MAX,
        }
    }
}

impl<V> Keyed<V> {
    /// `self[key]`, created with `new` when the key is first seen (the key is copied then
    /// only; always `Some`).
    fn entry(&mut self, key: &str, new: impl FnOnce() -> V) -> Option<&mut V> {
        if self.last == usize::MAX || self.last_key != key {
            self.last = match self.index.get(key) {
                Some(&at) => at,
                None => {
                    self.values.push(new());
                    self.index.insert(key.to_owned(), self.values.len() - 1);
                    self.values.len() - 1
                }
            };
            self.last_key.clear();
            self.last_key.push_str(key);
        }
        self.values.get_mut(self.last)
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.index.get(key).and_then(|&at| self.values.get(at))
    }

    fn keys(&self) -> impl Iterator<Item = &String> {
        self.index.keys()
    }

    /// In key order.
    fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.index.iter().filter_map(|(key, &at)| self.values.get(at).map(|value| (key, value)))
    }

    /// In key order.
    fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, value)| value)
    }
}

/// One period's lines, summed per organization, subscription and product.
#[derive(Debug, Clone, Default)]
pub struct PeriodSums {
    organizations: Keyed<OrganizationSum>,
    billing_dates: BTreeSet<NaiveDate>,
    currencies: BTreeSet<String>,
    lines: u64,
    /// The organization key of the line being added (a buffer reused from line to line).
    key: String,
}

impl PeriodSums {
    pub fn add(&mut self, rules: &RuleSet, line: &ReviewLine<'_>) {
        self.lines += 1;
        self.billing_dates.insert(line.billing_date);
        if !self.currencies.contains(line.stored.currency_code) {
            self.currencies.insert(line.stored.currency_code.to_owned());
        }
        let (route, company_id) = Route::of(rules, line);
        write_organization_key(&mut self.key, line);
        let Some(organization) = self.organizations.entry(&self.key, || OrganizationSum {
            name: line.organization_name.to_owned(),
            customer_number: line.stored.customer_number.to_owned(),
            company_id,
            sales: Decimal::ZERO,
            cost: Decimal::ZERO,
            subscriptions: Keyed::default(),
        }) else {
            return;
        };
        organization.sales += line.stored.total_sales;
        organization.cost += line.stored.total_cost;
        let Some(subscription) =
            organization.subscriptions.entry(line.stored.subscription_id, || SubscriptionSum {
                name: line.stored.subscription_name.to_owned(),
                service: line.stored.service_name.to_owned(),
                route,
                billing_date: line.billing_date,
                sales: Decimal::ZERO,
                cost: Decimal::ZERO,
                first_source: line.source(),
                products: Products::default(),
            })
        else {
            return;
        };
        subscription.add(line);
    }
}

/// The line's organization key, as `cmat_engine::billing::organization_key` makes it, written
/// into a buffer reused from line to line.
fn write_organization_key(key: &mut String, line: &ReviewLine<'_>) {
    key.clear();
    let number = line.stored.customer_number.trim();
    if number.is_empty() {
        key.push_str("name:");
        key.push_str(line.organization_name);
    } else {
        key.push_str("number:");
        key.push_str(number);
    }
}

impl SubscriptionSum {
    /// Adds a line of the subscription to it and to its product.
    fn add(&mut self, line: &ReviewLine<'_>) {
        self.billing_date = self.billing_date.max(line.billing_date);
        self.sales += line.stored.total_sales;
        self.cost += line.stored.total_cost;
        let Some(product) = self.products.entry(line.stored.item_code, line.stored.product_name)
        else {
            return;
        };
        product.units += line.stored.quantity;
        product.sales += line.stored.total_sales;
        product.cost += line.stored.total_cost;
        product.unit_price.add(line.stored.unit_sales_price);
        product.unit_cost.add(line.stored.unit_cost_price);
        if line.stored.unit_sales_price < line.stored.unit_cost_price {
            product.under_cost.push(line.source());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building the review.

/// What a review is built from; the CLI reads it from the store.
pub struct ReviewInput<'a> {
    pub period: Period,
    pub rules: &'a RuleSet,
    /// The period's lines, summed.
    pub current: &'a PeriodSums,
    /// The period before it (the latest imported period before `period`), summed.
    pub previous: Option<(Period, &'a PeriodSums)>,
    pub snapshot: &'a Snapshot,
    /// The desired state's warnings over the period's lines (refused licence counts…).
    pub desired_warnings: &'a [PlanNote],
    /// The plan's warnings (drift, duplicate contracts…); None when not computed, with why.
    pub plan_warnings: Result<&'a [PlanNote], String>,
    pub history: &'a HistoryInput,
    /// Per subscription, what the engine's desired state puts in Autotask for the period
    /// ([`intended_amounts`]): what Autotask is compared with.
    pub intended: &'a BTreeMap<String, Decimal>,
    /// The subscriptions the plan would change (the latest period's review only).
    pub planned: Option<&'a BTreeSet<String>>,
    pub restated: &'a [crate::store::BillRevision],
    pub writes: &'a [WriteProblem],
}

/// Per subscription, what the engine's desired state puts in Autotask for `period`: Σ units ×
/// the price book's price over its contract services, and its charges dated in the period at
/// the rules' price (one unit each, rounded as the plan writes them). The plan compares
/// Autotask with the same desired state, so the review and the plan agree on what differs.
pub fn intended_amounts(
    desired: &cmat_engine::desired::DesiredState,
    period: Period,
) -> BTreeMap<String, Decimal> {
    desired
        .contracts
        .iter()
        .map(|(id, contract)| {
            let services: Decimal = contract
                .services
                .values()
                .map(|service| Decimal::from(service.units) * service.unit_price)
                .sum();
            let charges: Decimal = contract
                .charges
                .values()
                .filter(|charge| period.contains(charge.date))
                .map(|charge| charge.round(charge.unit_price))
                .sum();
            (id.clone(), services + charges)
        })
        .collect()
}

/// Warning codes the review shows from its own figures (with amounts) rather than the plan's.
const OWN_CODES: [WarningCode; 4] = [
    WarningCode::UnlinkedOrganization,
    WarningCode::UnmappedService,
    WarningCode::ManualLineNotBilled,
    WarningCode::SubscriptionStoppedAppearing,
];

/// Plan warnings that are noise on a review (said once in the notes instead).
const NOTE_CODES: [WarningCode; 2] = [WarningCode::CostsNotVisible, WarningCode::ForeignCurrency];

/// The review of a period: computed from what [`load`] read (pure), rendered by [`render`].
pub fn build(input: &ReviewInput<'_>) -> Review {
    let autotask = AutotaskIndex::new(input.snapshot, input.period);
    let mut found = Found::default();
    let companies = company_reviews(input, &autotask, &mut found);
    left_out_exceptions(input, &mut found.exceptions);
    warning_exceptions(input, &mut found);
    // Left out because refused: their sales are not in Autotask either.
    found.left_out += refused_sales(input);
    write_exceptions(input, &mut found);
    found.exceptions.extend(input.restated.iter().map(Exception::bill_restated));
    found.exceptions.extend(autotask.corrections(input));
    sort_exceptions(&mut found.exceptions);
    let totals = totals(input, &mut found);
    let previous_period = input.previous.map(|(period, _)| period);
    Review {
        period: input.period,
        previous_period,
        billing_dates: input.current.billing_dates.iter().copied().collect(),
        currencies: input.current.currencies.iter().cloned().collect(),
        totals,
        exceptions: found.exceptions,
        companies,
        azure: azure_trends(input),
        history: history(input),
        notes: found.notes,
    }
}

/// What the compute steps gather on the way: exceptions, notes, and the running totals.
#[derive(Default)]
struct Found {
    exceptions: Vec<Exception>,
    notes: Vec<String>,
    /// Sales no rule takes to Autotask.
    left_out: Decimal,
    held: HeldTotals,
}

/// Per organization → subscription → product, the current period's rows first, then what
/// the previous period had and this one lacks (removed); largest first.
fn company_reviews(
    input: &ReviewInput<'_>,
    autotask: &AutotaskIndex<'_>,
    found: &mut Found,
) -> Vec<CompanyReview> {
    let previous = input.previous.map(|(_, sums)| sums);
    let mut keys: BTreeSet<&String> = input.current.organizations.keys().collect();
    if let Some(previous) = previous {
        keys.extend(previous.organizations.keys());
    }
    let mut companies: Vec<CompanyReview> = keys
        .into_iter()
        .filter_map(|key| {
            let now = input.current.organizations.get(key);
            let before = previous.and_then(|p| p.organizations.get(key));
            company_review(input, autotask, now, before, found)
        })
        .collect();
    companies.sort_by(|a, b| {
        b.figures.revenue.cmp(&a.figures.revenue).then_with(|| a.organization.cmp(&b.organization))
    });
    companies
}

/// One organization's row and its subscriptions' (None when it has neither period).
fn company_review(
    input: &ReviewInput<'_>,
    autotask: &AutotaskIndex<'_>,
    now: Option<&OrganizationSum>,
    before: Option<&OrganizationSum>,
    found: &mut Found,
) -> Option<CompanyReview> {
    let any = now.or(before)?;
    let has_previous = input.previous.is_some();
    let mut ids: BTreeSet<&String> = BTreeSet::new();
    ids.extend(now.into_iter().flat_map(|o| o.subscriptions.keys()));
    ids.extend(before.into_iter().flat_map(|o| o.subscriptions.keys()));
    let mut subscriptions: Vec<SubscriptionReview> = ids
        .into_iter()
        .filter_map(|id| {
            let current = now.and_then(|o| o.subscriptions.get(id));
            let earlier = before.and_then(|o| o.subscriptions.get(id));
            let organization_billed = now.is_some();
            let pair = Pair { id, current, earlier, organization: &any.name, organization_billed };
            subscription_review(input, autotask, &pair, found)
        })
        .collect();
    // Largest first: the admin reads down from what matters most.
    subscriptions.sort_by(|a, b| {
        b.figures
            .revenue
            .cmp(&a.figures.revenue)
            .then_with(|| a.subscription_id.cmp(&b.subscription_id))
    });
    let company_id = now.and_then(|o| o.company_id).or(before.and_then(|o| o.company_id));
    Some(CompanyReview {
        organization: any.name.clone(),
        customer_number: any.customer_number.clone(),
        autotask_company_id: company_id,
        autotask_company: company_id
            .and_then(|id| input.snapshot.companies.get(&id))
            .map(|c| c.company_name.clone()),
        figures: now.map(|o| Figures::new(o.sales, o.cost)).unwrap_or_default(),
        previous_revenue: before.map(|o| o.sales),
        change: Change::between(before.map(|o| o.sales), now.map(|o| o.sales), has_previous),
        subscriptions,
    })
}

/// A subscription in this period and the one before.
struct Pair<'a> {
    id: &'a str,
    current: Option<&'a SubscriptionSum>,
    earlier: Option<&'a SubscriptionSum>,
    organization: &'a str,
    /// The organization has a bill in this period.
    organization_billed: bool,
}

/// One subscription's row, with its exceptions (Autotask differs, under cost, stopped).
fn subscription_review(
    input: &ReviewInput<'_>,
    autotask: &AutotaskIndex<'_>,
    pair: &Pair<'_>,
    found: &mut Found,
) -> Option<SubscriptionReview> {
    let (id, current, earlier) = (pair.id, pair.current, pair.earlier);
    let sum = current.or(earlier)?;
    let has_previous = input.previous.is_some();
    let compared = match current {
        Some(current) if current.route.reaches_autotask() => {
            compare(input, autotask, pair.organization, id, current, &mut found.held)
        }
        _ => Compared::default(),
    };
    found.exceptions.extend(compared.exception.clone());
    if let Some(current) = current {
        if !current.route.reaches_autotask() {
            found.left_out += current.sales;
        }
        for ((item, name), product) in current.products.iter() {
            if product.sales < product.cost || !product.under_cost.is_empty() {
                let at = (pair.organization, id, current);
                found.exceptions.push(Exception::under_cost(at, item, name, product));
            }
        }
    } else if let Some(earlier) = earlier.filter(|e| e.route.reaches_autotask()) {
        found.exceptions.push(Exception::stopped_appearing(input, pair, earlier));
    }
    let revenue_now = current.map(|s| s.sales);
    let revenue_before = earlier.map(|s| s.sales);
    Some(SubscriptionReview {
        subscription_id: id.to_owned(),
        subscription_name: sum.name.clone(),
        service: sum.service.clone(),
        billing: sum.route.as_str(),
        billing_date: current.map(|s| s.billing_date),
        figures: current.map(|s| Figures::new(s.sales, s.cost)).unwrap_or_default(),
        previous_revenue: revenue_before,
        change: Change::between(revenue_before, revenue_now, has_previous),
        autotask_revenue: compared.revenue,
        autotask_status: compared.status,
        products: product_rows(current, earlier, has_previous),
        intended_revenue: compared.intended,
        price_book_difference: compared.intended.zip(revenue_now).map(|(i, r)| i - r),
        unexplained_difference: compared.revenue.zip(compared.intended).map(|(a, i)| a - i),
    })
}

/// Money left out of Autotask, one exception per organization and reason.
fn left_out_exceptions(input: &ReviewInput<'_>, exceptions: &mut Vec<Exception>) {
    for organization in input.current.organizations.values() {
        let mut by_route: BTreeMap<WarningCode, LeftOut<'_>> = BTreeMap::new();
        for sub in organization.subscriptions.values() {
            let code = match sub.route {
                Route::Unmapped => WarningCode::UnmappedService,
                Route::Unlinked => WarningCode::UnlinkedOrganization,
                Route::Manual => WarningCode::ManualLineNotBilled,
                _ => continue,
            };
            let entry = by_route.entry(code).or_insert_with(|| LeftOut {
                amount: Decimal::ZERO,
                products: 0,
                services: BTreeSet::new(),
                source: sub.first_source.as_str(),
            });
            entry.amount += sub.sales;
            entry.products += sub.products.len();
            entry.services.insert(sub.service.as_str());
        }
        for (code, left) in by_route {
            exceptions.push(Exception::left_out(code, &organization.name, &left));
        }
    }
}

/// An organization's sales one reason keeps out of Autotask.
struct LeftOut<'a> {
    amount: Decimal,
    products: usize,
    services: BTreeSet<&'a str>,
    source: &'a str,
}

/// The desired state's refusals (a licence count that is fractional or negative…) and the
/// plan's warnings (drift, duplicate contracts…), each once; noise goes to the notes.
fn warning_exceptions(input: &ReviewInput<'_>, found: &mut Found) {
    for warning in input.desired_warnings {
        if !OWN_CODES.contains(&warning.code) {
            found.exceptions.push(Exception::warning(warning));
        }
    }
    let warnings = match &input.plan_warnings {
        Ok(warnings) => warnings,
        Err(why) => {
            found.notes.push(why.clone());
            return;
        }
    };
    let desired: BTreeSet<(WarningCode, &str)> =
        input.desired_warnings.iter().map(|w| (w.code, w.message.as_str())).collect();
    for warning in warnings.iter() {
        if OWN_CODES.contains(&warning.code)
            || desired.contains(&(warning.code, warning.message.as_str()))
        {
            continue;
        }
        if NOTE_CODES.contains(&warning.code) {
            found.notes.push(warning.message.clone());
            continue;
        }
        found.exceptions.push(Exception::warning(warning));
    }
}

/// The period's writes that failed or are unknown, adoptions, non-convergence; approvals are
/// notes.
fn write_exceptions(input: &ReviewInput<'_>, found: &mut Found) {
    for write in input.writes {
        let kind = match write.kind {
            WriteKind::Approval => {
                found.notes.push(format!(
                    "run {}: its plan {} was {}",
                    write.run_id, write.key, write.message
                ));
                continue;
            }
            WriteKind::Failed => ExceptionKind::FailedWrite,
            WriteKind::Unknown => ExceptionKind::UnknownWrite,
            WriteKind::Adopted => ExceptionKind::AdoptedContract,
            WriteKind::NotConverged => ExceptionKind::NotConverged,
        };
        found.exceptions.push(Exception::write(kind, write));
    }
}

/// Most important kinds first, then the largest amounts.
fn sort_exceptions(exceptions: &mut [Exception]) {
    exceptions.sort_by(|a, b| {
        a.kind
            .rank()
            .cmp(&b.kind.rank())
            .then_with(|| {
                let size = |e: &Exception| e.amount.map(|a| a.abs()).unwrap_or_default();
                size(b).cmp(&size(a))
            })
            .then_with(|| a.organization.cmp(&b.organization))
            .then_with(|| a.subscription.cmp(&b.subscription))
            .then_with(|| a.message.cmp(&b.message))
    });
}

/// The bills' totals beside what Autotask holds (a note when a price is unknown).
fn totals(input: &ReviewInput<'_>, found: &mut Found) -> Totals {
    let bills = Figures::new(
        input.current.organizations.values().map(|o| o.sales).sum(),
        input.current.organizations.values().map(|o| o.cost).sum(),
    );
    let left_out = found.left_out;
    let to_autotask = bills.revenue - left_out;
    let HeldTotals { contract_services, charges, price_book } = found.held;
    let autotask_total = contract_services.map(|value| value + charges);
    if contract_services.is_none() {
        found.notes.push("Autotask's price of some contract services is unknown (a contract billed in another currency, or none sent): the Autotask total cannot be computed".into());
    }
    Totals {
        bills,
        lines: input.current.lines,
        left_out,
        to_autotask,
        autotask_contract_services: contract_services,
        autotask_charges: charges,
        autotask_total,
        difference: autotask_total.map(|total| total - to_autotask),
        price_book_difference: price_book,
        unexplained_difference: autotask_total.map(|total| total - to_autotask - price_book),
    }
}

/// Every imported period's totals.
fn history(input: &ReviewInput<'_>) -> Vec<PeriodTotal> {
    input
        .history
        .by_period
        .iter()
        .map(|(period, (sales, cost))| PeriodTotal {
            period: *period,
            figures: Figures::new(*sales, *cost),
        })
        .collect()
}

/// Azure consumption per subscription billed in this period or the one before, largest first.
fn azure_trends(input: &ReviewInput<'_>) -> Vec<AzureTrend> {
    let previous_period = input.previous.map(|(period, _)| period);
    let has_previous = input.previous.is_some();
    let mut azure: Vec<AzureTrend> = input
        .history
        .consumption
        .iter()
        .filter(|(_, (_, _, points))| {
            points.contains_key(&input.period)
                || previous_period.is_some_and(|p| points.contains_key(&p))
        })
        .map(|(id, (organization, name, points))| {
            let now = points.get(&input.period).map(|p| p.0);
            let before = previous_period.and_then(|p| points.get(&p)).map(|p| p.0);
            AzureTrend {
                organization: organization.clone(),
                subscription_id: id.clone(),
                subscription_name: name.clone(),
                points: points
                    .iter()
                    .filter(|(period, _)| **period <= input.period)
                    .map(|(period, (sales, cost))| PeriodTotal {
                        period: *period,
                        figures: Figures::new(*sales, *cost),
                    })
                    .collect(),
                change: Change::between(before, now, has_previous),
            }
        })
        .collect();
    azure.sort_by(|a, b| {
        let latest = |t: &AzureTrend| {
            t.points
                .iter()
                .find(|p| p.period == input.period)
                .map(|p| p.figures.revenue)
                .unwrap_or_default()
        };
        latest(b).cmp(&latest(a)).then_with(|| a.subscription_id.cmp(&b.subscription_id))
    });
    azure
}

/// What Autotask holds over the period's billed subscriptions, summed as they are compared.
#[derive(Debug, Clone, Copy)]
struct HeldTotals {
    /// None once one contract service's price is unknown.
    contract_services: Option<Decimal>,
    charges: Decimal,
    /// Σ what the rules put in Autotask − the bill.
    price_book: Decimal,
}

impl HeldTotals {
    /// Adds what Autotask holds for one subscription.
    fn hold(&mut self, contract_services: Option<Decimal>, charges: Decimal) {
        self.contract_services =
            self.contract_services.zip(contract_services).map(|(total, v)| total + v);
        self.charges += charges;
    }
}

impl Default for HeldTotals {
    fn default() -> Self {
        HeldTotals {
            contract_services: Some(Decimal::ZERO),
            charges: Decimal::ZERO,
            price_book: Decimal::ZERO,
        }
    }
}

/// One billed subscription: what Autotask holds, against what the rules put there.
#[derive(Debug, Default)]
struct Compared {
    revenue: Option<Decimal>,
    status: &'static str,
    intended: Option<Decimal>,
    exception: Option<Exception>,
}

/// Compares what Autotask holds for a subscription with what the engine's desired state puts
/// there (the plan's comparison), not with the bill: a price book's markup or add-on is no
/// exception; a difference the rules do not explain, or no contract at all, is.
fn compare(
    input: &ReviewInput<'_>,
    autotask: &AutotaskIndex<'_>,
    organization: &str,
    id: &str,
    current: &SubscriptionSum,
    totals: &mut HeldTotals,
) -> Compared {
    let intended = input.intended.get(id).copied();
    if let Some(intended) = intended {
        totals.price_book += intended - current.sales;
    }
    // Without a desired contract (a rule skips it, its rules are ambiguous) the bill is all
    // there is to compare with; the plan's warnings say why.
    let expected = intended.unwrap_or(current.sales);
    match autotask.held(id, current) {
        Held::Amount { contract_services, charges } => {
            totals.hold(contract_services, charges);
            let amount = contract_services.map(|value| value + charges);
            let scheduled = intended.is_some() && scheduled(input, id, amount, expected);
            let intended = if scheduled { amount.or(intended) } else { intended };
            if let (true, Some(held)) = (scheduled, amount) {
                // What the rules put there for the period is what Autotask holds.
                totals.price_book += held - expected;
            }
            let status = held_status(amount, expected, scheduled);
            let exception = amount.filter(|_| status == "differs").map(|amount| {
                Exception::autotask_differs(input, organization, id, current, amount, intended)
            });
            Compared { revenue: amount, status, intended, exception }
        }
        Held::Missing => Compared {
            revenue: Some(Decimal::ZERO),
            status: "missing",
            intended,
            exception: Some(Exception::no_contract(organization, id, current, expected)),
        },
        Held::Duplicate => {
            Compared { revenue: None, status: "duplicate", intended, exception: None }
        }
    }
}

/// How what Autotask holds (`None`: a price cmat cannot see) stands against what the rules put
/// there: `matches`, `scheduled` (the rules' own timing), `differs` or `unknown`.
fn held_status(amount: Option<Decimal>, expected: Decimal, scheduled: bool) -> &'static str {
    match amount {
        Some(amount) if amount == expected => "matches",
        Some(_) if scheduled => "scheduled",
        Some(_) => "differs",
        None => "unknown",
    }
}

/// Autotask differs from what the rules put there on the Billing Date and the plan changes
/// nothing for it: the rules schedule what Autotask holds (a decrease deferred to the next
/// period or the term's end), so that is what they put there for the period.
fn scheduled(input: &ReviewInput<'_>, id: &str, held: Option<Decimal>, expected: Decimal) -> bool {
    held.is_some_and(|held| held != expected) && input.planned.is_some_and(|p| !p.contains(id))
}

impl Exception {
    /// Autotask holds for a subscription what neither the rules nor the bill explain.
    fn autotask_differs(
        input: &ReviewInput<'_>,
        organization: &str,
        id: &str,
        current: &SubscriptionSum,
        held: Decimal,
        intended: Option<Decimal>,
    ) -> Exception {
        let rules = match intended {
            Some(intended) if intended != current.sales => {
                format!(
                    "the rules put {} there, the bill says {}",
                    intended.normalize(),
                    current.sales.normalize()
                )
            }
            _ => format!("the bill says {}", current.sales.normalize()),
        };
        Exception {
            kind: ExceptionKind::AutotaskDiffers,
            organization: organization.to_owned(),
            subscription: id.to_owned(),
            message: format!(
                "Autotask holds {} for {} in {}, {rules}",
                held.normalize(),
                label(id, &current.name),
                input.period,
            ),
            amount: Some(held - intended.unwrap_or(current.sales)),
            source: current.first_source.clone(),
        }
    }

    /// A product sold under its cost (`at`: organization, subscription, its sums).
    fn under_cost(
        at: (&str, &str, &SubscriptionSum),
        item: &str,
        name: &str,
        product: &ProductSum,
    ) -> Exception {
        let (organization, id, current) = at;
        let lines = if product.under_cost.is_empty() {
            current.first_source.clone()
        } else {
            product.under_cost.join(", ")
        };
        Exception {
            kind: ExceptionKind::UnderCost,
            organization: organization.to_owned(),
            subscription: id.to_owned(),
            message: format!(
                "{name} ({item}) is sold under its cost: revenue {}, cost {} (lines {lines})",
                product.sales.normalize(),
                product.cost.normalize(),
            ),
            amount: Some((product.sales - product.cost).min(Decimal::ZERO)),
            source: product
                .under_cost
                .first()
                .cloned()
                .unwrap_or_else(|| current.first_source.clone()),
        }
    }

    /// A subscription billed in the previous period and not in this one.
    fn stopped_appearing(
        input: &ReviewInput<'_>,
        pair: &Pair<'_>,
        earlier: &SubscriptionSum,
    ) -> Exception {
        let bill = if pair.organization_billed {
            format!("the organization's {} bill", input.period)
        } else {
            format!("any {} bill (the organization has none)", input.period)
        };
        Exception {
            kind: ExceptionKind::Warning(WarningCode::SubscriptionStoppedAppearing),
            organization: pair.organization.to_owned(),
            subscription: pair.id.to_owned(),
            message: format!(
                "{} was billed {} on {} but is not on {bill}; its Autotask contract is left as it is",
                label(pair.id, &earlier.name),
                earlier.sales.normalize(),
                earlier.billing_date,
            ),
            amount: Some(earlier.sales),
            source: earlier.first_source.clone(),
        }
    }

    /// An organization's sales left out of Autotask for one reason (`code`).
    fn left_out(code: WarningCode, organization: &str, left: &LeftOut<'_>) -> Exception {
        let services: Vec<&str> = left.services.iter().copied().collect();
        let products = left.products;
        let message = match code {
            WarningCode::UnmappedService => format!(
                "service {} is billed by no rule: {products} product(s) left out of Autotask (add `service \"…\" = licence` or `= consumption` to the mappings)",
                quoted(&services),
            ),
            WarningCode::UnlinkedOrganization => format!(
                "organization \"{organization}\" has no AutotaskCompanyID and no company rule: {products} product(s) of {} left out of Autotask (set the custom property in Cloudmore or add a `company` rule)",
                quoted(&services)
            ),
            _ => format!(
                "{products} manual billing line(s) without a Subscription ID are not billed: no rule routes them"
            ),
        };
        Exception {
            kind: ExceptionKind::Warning(code),
            organization: organization.to_owned(),
            subscription: String::new(),
            message,
            amount: Some(left.amount),
            source: left.source.to_string(),
        }
    }

    /// A warning of the desired state or the plan, as it said it.
    fn warning(warning: &PlanNote) -> Exception {
        Exception {
            kind: ExceptionKind::Warning(warning.code),
            organization: String::new(),
            subscription: String::new(),
            message: warning.message.clone(),
            amount: None,
            source: warning.source.clone(),
        }
    }

    /// A write of the period's runs to look at (failed, unknown, an adoption…).
    fn write(kind: ExceptionKind, write: &WriteProblem) -> Exception {
        Exception {
            kind,
            organization: String::new(),
            subscription: String::new(),
            message: format!(
                "{} {} ({}) in run {}: {}",
                write.action, write.entity, write.key, write.run_id, write.message
            ),
            amount: None,
            source: format!("cmat audit --run {}", write.run_id),
        }
    }

    /// A bill Cloudmore restated (a later export of the same Billing Date).
    fn bill_restated(bill: &crate::store::BillRevision) -> Exception {
        Exception {
            kind: ExceptionKind::BillRestated,
            organization: bill.organization_name.clone(),
            subscription: String::new(),
            message: format!(
                "the {} bill of \"{}\" was restated by Cloudmore (revision {}, imported {} from {})",
                bill.billing_date,
                bill.organization_name,
                bill.revision,
                bill.imported_at.format("%Y-%m-%d %H:%M UTC"),
                bill.source_file
            ),
            amount: None,
            source: bill.source_file.clone(),
        }
    }

    /// No contract carries a billed subscription: what the rules put there is not invoiced.
    fn no_contract(
        organization: &str,
        id: &str,
        current: &SubscriptionSum,
        expected: Decimal,
    ) -> Exception {
        Exception {
            kind: ExceptionKind::AutotaskDiffers,
            organization: organization.to_owned(),
            subscription: id.to_owned(),
            message: format!(
                "no Autotask contract carries subscription {id} yet: {} is not invoiced (run `cmat apply`)",
                expected.normalize()
            ),
            amount: Some(-expected),
            source: current.first_source.clone(),
        }
    }
}

fn label(id: &str, name: &str) -> String {
    if name.is_empty() {
        format!("subscription {id}")
    } else {
        format!("subscription {id} ({name})")
    }
}

fn quoted(items: &[&str]) -> String {
    items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
}

/// Sales of licence products the desired state refuses (fractional or negative counts).
fn refused_sales(input: &ReviewInput<'_>) -> Decimal {
    let mut total = Decimal::ZERO;
    for organization in input.current.organizations.values() {
        for sub in organization.subscriptions.values().filter(|s| s.route == Route::Licence) {
            let mut by_item: HashMap<&str, (Decimal, Decimal)> = HashMap::new();
            for ((item, _), product) in sub.products.iter() {
                let entry = by_item.entry(item).or_default();
                entry.0 += product.units;
                entry.1 += product.sales;
            }
            for (units, sales) in by_item.values() {
                if !units.fract().is_zero() || units.is_sign_negative() && !units.is_zero() {
                    total += sales;
                }
            }
        }
    }
    total
}

fn product_rows(
    current: Option<&SubscriptionSum>,
    earlier: Option<&SubscriptionSum>,
    has_previous: bool,
) -> Vec<ProductReview> {
    let mut keys: BTreeSet<(&str, &str)> = BTreeSet::new();
    if let Some(current) = current {
        keys.extend(current.products.iter().map(|(key, _)| key));
    }
    if let Some(earlier) = earlier {
        keys.extend(earlier.products.iter().map(|(key, _)| key));
    }
    let mut rows: Vec<ProductReview> = keys
        .into_iter()
        .map(|(item, name)| {
            let now = current.and_then(|s| s.products.get(item, name));
            let before = earlier.and_then(|s| s.products.get(item, name));
            let any = now.or(before);
            ProductReview {
                item_code: item.to_owned(),
                product_name: name.to_owned(),
                units: now.map(|p| p.units).unwrap_or_default(),
                unit_price: any.and_then(|p| p.unit_price.value()),
                unit_cost: any.and_then(|p| p.unit_cost.value()),
                figures: now.map(|p| Figures::new(p.sales, p.cost)).unwrap_or_default(),
                previous_units: before.map(|p| p.units),
                previous_revenue: before.map(|p| p.sales),
                change: Change::between(
                    before.map(|p| p.sales),
                    now.map(|p| p.sales),
                    has_previous,
                ),
            }
        })
        .collect();
    // Largest first, as everywhere on the review (ties, and removed products, by key).
    rows.sort_by_key(|row| std::cmp::Reverse(row.figures.revenue));
    rows
}

// ---------------------------------------------------------------------------------------------
// What Autotask holds for the period.

enum Held {
    Amount { contract_services: Option<Decimal>, charges: Decimal },
    Missing,
    Duplicate,
}

struct AutotaskIndex<'a> {
    snapshot: &'a Snapshot,
    period: Period,
    contracts: HashMap<&'a str, Vec<i64>>,
    contract_services: HashMap<i64, Vec<i64>>,
    units: HashMap<i64, Vec<&'a cmat_engine::snapshot::ContractServiceUnit>>,
    charges: HashMap<i64, Vec<&'a cmat_engine::snapshot::ContractCharge>>,
}

impl<'a> AutotaskIndex<'a> {
    fn new(snapshot: &'a Snapshot, period: Period) -> Self {
        let mut contracts: HashMap<&str, Vec<i64>> = HashMap::new();
        for contract in snapshot.contracts.values() {
            if let Some(subscription) = contract.subscription_id.as_deref() {
                contracts.entry(subscription).or_default().push(contract.id);
            }
        }
        let mut contract_services: HashMap<i64, Vec<i64>> = HashMap::new();
        for service in snapshot.contract_services.values() {
            contract_services.entry(service.contract_id).or_default().push(service.id);
        }
        let mut units: HashMap<i64, Vec<_>> = HashMap::new();
        for unit in snapshot.contract_service_units.values() {
            units.entry(unit.contract_service_id).or_default().push(unit);
        }
        // In start order, as the engine's `units_in_force` reads them.
        for periods in units.values_mut() {
            periods.sort_by_key(|unit| (unit.start_date, unit.id));
        }
        let mut charges: HashMap<i64, Vec<_>> = HashMap::new();
        for charge in snapshot.charges.values() {
            if period.contains(charge.date_purchased) {
                charges.entry(charge.contract_id).or_default().push(charge);
            }
        }
        AutotaskIndex { snapshot, period, contracts, contract_services, units, charges }
    }

    fn held(&self, subscription: &str, bill: &SubscriptionSum) -> Held {
        let contract = match self.contracts.get(subscription).map(Vec::as_slice) {
            None | Some([]) => return Held::Missing,
            Some([one]) => *one,
            Some(_) => return Held::Duplicate,
        };
        let mut contract_services = Some(Decimal::ZERO);
        if bill.route == Route::Licence {
            for id in self.contract_services.get(&contract).into_iter().flatten() {
                // The engine's own lookup: the page and the plan read units alike (a renewed
                // contract's last period runs on).
                let units = cmat_engine::snapshot::units_in_force(
                    self.units.get(id).map(Vec::as_slice).unwrap_or(&[]),
                    bill.billing_date,
                );
                if units == 0 {
                    continue;
                }
                let price = self
                    .snapshot
                    .contract_services
                    .get(id)
                    .and_then(|cs| cs.adjusted_price.filter(|_| !cs.foreign_currency));
                contract_services = match (contract_services, price) {
                    (Some(total), Some(price)) => Some(total + Decimal::from(units) * price),
                    _ => None,
                };
            }
        }
        let charges = self
            .charges
            .get(&contract)
            .into_iter()
            .flatten()
            .map(|c| c.unit_quantity * c.unit_price)
            .sum();
        Held::Amount { contract_services, charges }
    }

    /// Consumption contracts of the period holding more than one charge dated in it: a
    /// correction was added after the first charge was invoiced.
    fn corrections(&self, input: &ReviewInput<'_>) -> Vec<Exception> {
        let mut found = Vec::new();
        for organization in input.current.organizations.values() {
            for (id, sub) in organization.subscriptions.iter() {
                if sub.route != Route::Consumption {
                    continue;
                }
                let Some([contract]) = self.contracts.get(id.as_str()).map(Vec::as_slice) else {
                    continue;
                };
                let charges = self.charges.get(contract).map(Vec::as_slice).unwrap_or(&[]);
                if charges.len() < 2 {
                    continue;
                }
                let mut sorted: Vec<_> = charges.to_vec();
                sorted.sort_by_key(|c| c.id);
                let listed: Vec<String> = sorted
                    .iter()
                    .map(|c| {
                        format!(
                            "\"{}\" {}{}",
                            c.name,
                            (c.unit_quantity * c.unit_price).normalize(),
                            if c.is_billed { " (invoiced)" } else { "" }
                        )
                    })
                    .collect();
                let corrections: Decimal =
                    sorted[1..].iter().map(|c| c.unit_quantity * c.unit_price).sum();
                found.push(Exception {
                    kind: ExceptionKind::ChargeCorrected,
                    organization: organization.name.clone(),
                    subscription: id.clone(),
                    message: format!(
                        "{} has {} charges dated in {}: {}",
                        label(id, &sub.name),
                        sorted.len(),
                        self.period,
                        listed.join(", ")
                    ),
                    amount: Some(corrections),
                    source: format!("Contracts/{contract}"),
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_step() {
        assert_eq!(Period::parse("2026-11").map(|p| p.to_string()).as_deref(), Some("2026-11"));
        assert_eq!(
            Period::parse("2026-12").map(|p| p.next().to_string()).as_deref(),
            Some("2027-01")
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-00"] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
    }

    /// The review routes a line as the plan does: a company rule scoped to one product of an
    /// organization does not take the organization's other products with it.
    #[test]
    fn a_line_goes_to_the_company_the_plan_puts_it_under() {
        let text = format!(
            "{}\nfor organization \"Contoso Ltd\", product \"Microsoft 365 E5\" {{\n    company = 777\n}}\n",
            cmat_mapping::default_rules(29682801, 29682802, 1)
        );
        let rules = cmat_mapping::compile_sources(&[("mappings/m.cmat".to_string(), text)])
            .expect("rules")
            .rules;
        let bill_line = |product: &str| cmat_engine::billing::BillLine {
            billing_date: "2026-10-01".parse().expect("date"),
            service_name: "Microsoft NCE".into(),
            organization_name: "Contoso Ltd".into(),
            product_name: product.into(),
            item_code: product.into(),
            subscription_id: "S1".into(),
            total_sales: Decimal::ONE,
            autotask_company_id: Some(29683501),
            ..Default::default()
        };
        for (product, company) in [("Microsoft 365 E5", 777), ("Exchange Online", 29683501)] {
            let line = bill_line(product);
            let review_line = ReviewLine {
                organization_name: &line.organization_name,
                billing_date: line.billing_date,
                file: "bill.csv",
                stored: crate::store::StoredLine::of(&line),
            };
            assert_eq!(
                Route::of(&rules, &review_line),
                (Route::Licence, Some(company)),
                "{product}"
            );
            let desired = cmat_engine::desired::desired_state(&rules, std::slice::from_ref(&line));
            let planned: Vec<i64> = desired.contracts.values().map(|c| c.company_id).collect();
            assert_eq!(planned, vec![company], "{product}");
        }
    }

    #[test]
    fn margins_are_exact_and_unknown_without_revenue() {
        let figures = Figures::new(Decimal::new(5150, 1), Decimal::new(4635, 1));
        assert_eq!(figures.margin.to_string(), "51.5");
        assert_eq!(figures.margin_percent.map(|p| p.to_string()).as_deref(), Some("10.00"));
        assert_eq!(Figures::new(Decimal::ZERO, Decimal::ONE).margin_percent, None);
    }
}
