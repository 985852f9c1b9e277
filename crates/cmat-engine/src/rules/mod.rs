//! Compiled mapping rules: what `mapping` produces from `mappings/*.cmat` and what the
//! engine (`desired`) consumes. Nothing here knows about pest or syntax; every rule keeps
//! the [`RuleOrigin`] of the text it came from so a plan can name "mappings/x.cmat:12".

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};

pub mod resolutions;
pub mod scoped;

pub use scoped::{
    ConsumptionSplit, DecreaseTiming, LineFacts, MarginPolicy, Resolved, ScopeTerm, ScopedRule,
    ScopedSettings, Specificity,
};

/// Where a rule was written: the mapping file (relative to the workspace) and the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RuleOrigin {
    /// The mapping file, relative to the workspace (`mappings/prices.cmat`).
    pub file: String,
    /// The 1-based line the rule starts on.
    pub line: u32,
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A value together with the rule that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruled<T> {
    /// What the rule says.
    pub value: T,
    /// Where it says it, so plans and errors can name the line.
    pub origin: RuleOrigin,
}

/// The whole, checked rule set of a workspace (all files of `mappings/` together).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    /// The tenant's ids and names cmat writes with (`settings` block).
    pub settings: Settings,
    /// Cloudmore "Service Name" → how it is billed. Services not listed are reported as unmapped.
    pub services: BTreeMap<String, Ruled<BillingKind>>,
    /// How an organization finds its Autotask company (`companies` block).
    pub companies: CompanyLinks,
    /// How contracts are named, dated and renewed (`contract` block).
    pub contract: ContractRule,
    /// How a product finds, or creates, its Autotask Service (`products` block).
    pub products: ProductRule,
    /// The default price, cost, rounding and margin (`prices` block).
    pub prices: PriceRule,
    /// How consumption lines become charges (`consumption` block).
    pub consumption: ConsumptionRule,
    /// What cmat does about removals, cancellations, hand edits and decreases (`policies`).
    pub policies: Policies,
    /// The `for …` rules, in file order: the price book over the defaults above.
    pub scoped: Vec<ScopedRule>,
}

/// The `settings` block: the tenant's ids and names every write needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Autotask BillingCodes id of use type "Recurring Contract Service"; used to create Services.
    pub service_billing_code: Ruled<i64>,
    /// Autotask BillingCodes id (Material Cost Code) for consumption charges.
    pub product_billing_code: Ruled<i64>,
    /// Contracts.serviceLevelAgreementID picklist value.
    pub service_level_agreement: Ruled<i64>,
    /// Name of the Contracts user-defined field holding the subscription id ("Subscription ID").
    pub subscription_udf: Ruled<String>,
    /// Contracts.contractType for new contracts ("Recurring Service").
    pub contract_type: Ruled<PicklistChoice>,
    /// Contracts.status for new contracts ("Active").
    pub contract_status: Ruled<PicklistChoice>,
    /// IANA name; only "UTC" is supported today (dates are calendar dates, never shifted).
    pub timezone: Ruled<String>,
}

/// How a Cloudmore service is billed in Autotask: it decides the contract's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BillingKind {
    /// A contract per subscription, a contract service per Item Code, units = licence count.
    Licence,
    /// A contract per subscription, one consolidated contract charge per billing period.
    Consumption,
}

/// The `companies` block: how a bill's organization finds its Autotask company.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyLinks {
    /// Name of the bill column carrying the Autotask company id ("AutotaskCompanyID"), if used.
    pub column: Option<Ruled<String>>,
    /// Explicit Cloudmore "Organization Name" → Autotask company id; wins over the column.
    pub explicit: BTreeMap<String, Ruled<i64>>,
}

/// A text with `{field}` placeholders, checked against [`TemplateField`] at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The text and the placeholders, in order.
    pub parts: Vec<TemplatePart>,
    /// Where the template is written.
    pub origin: RuleOrigin,
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text kept as written.
    Text(String),
    /// A `{field}` placeholder, filled from the bill line.
    Field(TemplateField),
}

/// Bill fields a template may name. `{organization}` is Organization Name, and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TemplateField {
    /// `{organization}`: Organization Name.
    Organization,
    /// `{customer_number}`: Customer Number.
    CustomerNumber,
    /// `{service}`: Service Name.
    Service,
    /// `{subscription}`: Subscription ID.
    Subscription,
    /// `{subscription_name}`: Subscription Name.
    SubscriptionName,
    /// `{product}`: Product Name.
    Product,
    /// `{item_code}`: Item Code.
    ItemCode,
    /// `{product_id}`: Product ID.
    ProductId,
    /// The bill's Billing Date, ISO `YYYY-MM-DD`.
    BillingDate,
    /// The billing period as `YYYY-MM` (from Billing Date).
    Period,
    /// Only in correction names: the period being corrected, ISO date.
    CorrectedDate,
    /// Payment Frequency (`Monthly`, `Annual`).
    Term,
    /// An Azure charge's meter category (when charges are split by it).
    MeterCategory,
}

impl TemplateField {
    /// Every field with the name templates write it by: the one list both ways look up.
    pub const ALL: [(TemplateField, &'static str); 13] = [
        (TemplateField::Organization, "organization"),
        (TemplateField::CustomerNumber, "customer_number"),
        (TemplateField::Service, "service"),
        (TemplateField::Subscription, "subscription"),
        (TemplateField::SubscriptionName, "subscription_name"),
        (TemplateField::Product, "product"),
        (TemplateField::ItemCode, "item_code"),
        (TemplateField::ProductId, "product_id"),
        (TemplateField::BillingDate, "billing_date"),
        (TemplateField::Period, "period"),
        (TemplateField::CorrectedDate, "corrected_date"),
        (TemplateField::Term, "term"),
        (TemplateField::MeterCategory, "meter_category"),
    ];

    /// The name a template writes the field by, for messages and `cmat explain`.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(f, _)| *f == self).map(|(_, n)| *n).unwrap_or("?")
    }

    /// The field a template names; `None` for a name the compiler must refuse.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }
}

impl Template {
    /// Whether the template names `field`: Services per term must name `{term}` to tell
    /// them apart, and a charge name with `{meter_category}` is not suffixed with it.
    pub fn uses(&self, field: TemplateField) -> bool {
        self.parts.contains(&TemplatePart::Field(field))
    }

    /// Renders with a lookup for each field; fields the lookup cannot fill render empty.
    pub fn render(&self, lookup: impl Fn(TemplateField) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(text) => out.push_str(text),
                TemplatePart::Field(field) => out.push_str(&lookup(*field).unwrap_or_default()),
            }
        }
        out
    }
}

/// The `contract` block: how new contracts are named, dated, renewed and categorized.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractRule {
    /// Contract name per billing kind, e.g. "Microsoft 365 - {organization}".
    pub name: BTreeMap<BillingKind, Template>,
    /// startDate of a new contract: the first Billing Date seen for the subscription.
    pub start: Ruled<ContractStart>,
    /// endDate of a new contract: start plus this many months.
    pub term_months: Ruled<u32>,
    /// When a bill falls after endDate: extend by whole terms, or leave (adjustments are clamped).
    pub renewal: Ruled<Renewal>,
    /// Contracts.contractCategory picklist value, if any.
    pub category: Option<Ruled<i64>>,
    /// Contracts.organizationalLevelAssociationID (the line of business) of new contracts,
    /// for a tenant that requires one; None sends none.
    pub line_of_business: Option<Ruled<i64>>,
    /// Contracts.contractPeriodType of new contracts: the billing period of their services,
    /// which Autotask does not let change later. Monthly unless a rule says otherwise.
    pub period: Ruled<PeriodType>,
}

/// The day a new contract starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractStart {
    /// The first Billing Date of the subscription.
    FirstBillingDate,
    /// The first day of the month of the first Billing Date.
    FirstBillingMonth,
}

/// What happens when a bill falls after a contract's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Extend endDate by whole terms so that every bill falls inside the contract.
    Extend,
    /// Never touch endDate; unit changes are clamped to it.
    Keep,
}

/// The `products` block: how a product finds, or creates, its Autotask Service.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductRule {
    /// Which bill column identifies the Autotask Service by its sku.
    pub match_by: Ruled<ProductKey>,
    /// Explicit key (Item Code or Product ID) → existing Autotask Service id; wins over sku.
    pub explicit: BTreeMap<String, Ruled<i64>>,
    /// How to create a Service when none has the sku; None means "report, do not create".
    pub create: Option<ServiceCreateRule>,
    /// One Service per product and term (`create { per_term = true }`): the sku gets the
    /// Payment Frequency (`CFQ7TTC0LH18/Annual`), so annual and monthly commitments are apart.
    pub per_term: Option<Ruled<bool>>,
}

/// The bill column a product is known by, and its Autotask Service's sku matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductKey {
    /// "Item Code" (the default).
    ItemCode,
    /// "Product ID", for a tenant whose skus are Cloudmore's product ids.
    ProductId,
}

/// `products { create { … } }`: cmat may create the Service a product lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCreateRule {
    /// The new Service's name.
    pub name: Template,
    /// Services.periodType picklist value (monthly in the defaults).
    pub period_type: Ruled<PeriodType>,
    /// Where the `create` block is written.
    pub origin: RuleOrigin,
}

/// A billing period, as Autotask's period-type picklists name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodType {
    /// Billed every month.
    Monthly,
    /// Billed every three months.
    Quarterly,
    /// Billed every six months.
    SemiAnnual,
    /// Billed once a year.
    Yearly,
}

impl PeriodType {
    /// The picklist label Autotask shows for this period. The number behind it is the
    /// tenant's (live tenants show Monthly = 2, Yearly = 5), read from
    /// `entityInformation/fields` by `crate::picklists`, never written down here.
    pub fn label(self) -> &'static str {
        match self {
            PeriodType::Monthly => "Monthly",
            PeriodType::Quarterly => "Quarterly",
            PeriodType::SemiAnnual => "Semi-Annual",
            PeriodType::Yearly => "Yearly",
        }
    }
}

/// A picklist entry as the rules name it: by its label (`"Recurring Service"`, `monthly`),
/// resolved against the tenant's picklist, or by the number the user chose from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PicklistChoice {
    /// The entry's label, looked up in the tenant's picklist.
    Label(String),
    /// The entry's number, as the user chose it.
    Value(i64),
}

impl fmt::Display for PicklistChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PicklistChoice::Label(label) => write!(f, "\"{label}\""),
            PicklistChoice::Value(value) => write!(f, "{value}"),
        }
    }
}

/// The `prices` block: the defaults every line gets unless a `for` rule sets otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceRule {
    /// How a unit price is made from the bill.
    pub unit_price: Ruled<PriceSource>,
    /// How the cost cmat writes is made from the bill.
    pub unit_cost: Ruled<CostSource>,
    /// Decimal places kept (Autotask stores 4).
    pub scale: Ruled<u32>,
    /// How prices are rounded to the scale.
    pub rounding: Ruled<Rounding>,
    /// The lowest margin a price may have: a fraction of the price, or an amount per unit.
    pub margin_floor: Option<Ruled<MarginFloor>>,
    /// Prices rounded up to end in .99, .95 or a whole unit, when a line says so.
    pub price_point: Option<Ruled<PricePoint>>,
    /// The highest unit price, whatever the formula gives.
    pub max_price: Option<Ruled<Decimal>>,
    /// What a price under the floor does: a warning (the default) or a refused plan.
    pub margin_policy: Ruled<MarginPolicy>,
    /// Whether a `margin_policy` line sets it; else it is `warn` by default, and its origin is
    /// the `prices` block's line, which a message must not cite as the policy's.
    pub margin_policy_written: bool,
}

/// How a unit price is made from the bill line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// Cloudmore's Unit Sales Price (or Σ Total Sales for consumption).
    SalesPrice,
    /// Cloudmore's cost times (1 + markup), markup as a fraction (0.15 = 15 %).
    CostPlusMarkup(Decimal),
    /// Cloudmore's sales price times (1 − discount), discount as a fraction.
    SalesLessDiscount(Decimal),
    /// A fixed unit price, whatever the bill says.
    Fixed(Decimal),
    /// Cloudmore's sales price times (1 + uplift): a list price uplift (`sales_price + 5%`).
    SalesPlusUplift(Decimal),
    /// Cloudmore's cost plus an amount per unit (`cost + 1.50`).
    CostPlusAmount(Decimal),
}

/// Seat-count tiers (`tier "1-9" = 22.00`, `tier "10-49" = 21.00`, `tier "50+" = …`): a price
/// per band of a licence product's count on the bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers {
    /// Each band's first count (the first is 1; the last band is open) and its price, in order.
    pub bands: Vec<(u32, PriceSource)>,
    /// `tiers = graduated`: each band's units at its own price (the unit price is their
    /// average); otherwise the whole count takes the price of the band it falls in.
    pub graduated: bool,
}

impl Tiers {
    /// The unit price for `count` licences whose unit sales price and cost are given, before
    /// the price point, cap and rounding.
    pub fn apply(&self, sales: Decimal, cost: Decimal, count: i64) -> Decimal {
        let band_price = |source: &PriceSource| source.apply(sales, cost, Decimal::ONE);
        let in_band = |count: i64| {
            self.bands
                .iter()
                .rev()
                .find(|(first, _)| i64::from(*first) <= count)
                .or(self.bands.first())
        };
        if !self.graduated || count <= 1 {
            return in_band(count).map(|(_, source)| band_price(source)).unwrap_or(sales);
        }
        let mut total = Decimal::ZERO;
        for (index, (first, source)) in self.bands.iter().enumerate() {
            let next = self.bands.get(index + 1).map(|(next, _)| i64::from(*next));
            let units = next.unwrap_or(i64::MAX).min(count + 1) - i64::from(*first);
            if units <= 0 {
                break;
            }
            total += band_price(source) * Decimal::from(units);
        }
        total / Decimal::from(count)
    }

    /// `1-9: 22, 10-49: 21, 50+: cost + 8%`, for messages and `cmat explain`.
    pub fn bands_label(&self, word: impl Fn(PriceSource) -> String) -> String {
        let bands: Vec<String> = self
            .bands
            .iter()
            .enumerate()
            .map(|(index, (first, source))| match self.bands.get(index + 1) {
                Some((next, _)) => format!("{first}-{}: {}", next - 1, word(*source)),
                None => format!("{first}+: {}", word(*source)),
            })
            .collect();
        let kind = if self.graduated { "graduated" } else { "volume" };
        format!("{} ({kind})", bands.join(", "))
    }
}

/// A per-seat add-on (`add_on_service = 7010`, `add_on_price = 5.00`, `add_on_cost = 1.20`):
/// a second Autotask Service on the product's contract, its units following the licence count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOn {
    /// The Autotask Service id (an existing Service: cmat never creates one for an add-on).
    pub service: i64,
    /// The add-on's unit price.
    pub price: Decimal,
    /// The add-on's unit cost.
    pub cost: Decimal,
}

/// The cost cmat writes to Autotask and measures margins against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostSource {
    /// Cloudmore's Unit Cost Price (or Σ Total Cost for consumption).
    CostPrice,
    /// The cost times (1 + fraction): `cost - 3%` is a distributor's rebate (−0.03).
    CostPercent(Decimal),
    /// The cost plus an amount per unit (negative for a rebate per seat).
    CostAmount(Decimal),
}

impl CostSource {
    /// The cost of `quantity` units whose cost (per unit, or the line's total) is given.
    pub fn apply(self, cost: Decimal, quantity: Decimal) -> Decimal {
        match self {
            CostSource::CostPrice => cost,
            CostSource::CostPercent(fraction) => cost * (Decimal::ONE + fraction),
            CostSource::CostAmount(amount) => (cost + amount * quantity).max(Decimal::ZERO),
        }
    }
}

/// The lowest margin a price may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarginFloor {
    /// A fraction of the price (0.10 = 10 %).
    Percent(Decimal),
    /// An amount per unit above cost (`margin_floor = 1.00`).
    Amount(Decimal),
}

/// What a price is rounded up to (`price_point = 0.99`, `price_point = whole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PricePoint {
    /// The smallest price at or above the computed one whose fraction is this (0.99, 0.95).
    Ending(Decimal),
    /// The next whole unit (at or above).
    Whole,
}

impl PricePoint {
    /// `price` rounded up to the point; a price already on it is kept.
    pub fn round_up(self, price: Decimal) -> Decimal {
        match self {
            PricePoint::Whole => price.ceil(),
            PricePoint::Ending(ending) => (price - ending).ceil() + ending,
        }
    }
}

/// How prices are rounded to the scale (`rounding = half_up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Halves away from zero (the default).
    HalfUp,
    /// Halves to the even digit (banker's rounding).
    HalfEven,
    /// Toward zero.
    Down,
    /// Away from zero.
    Up,
}

impl Rounding {
    /// The rust_decimal strategy that rounds this way.
    pub fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::Down => RoundingStrategy::ToZero,
            Rounding::Up => RoundingStrategy::AwayFromZero,
        }
    }
}

impl PriceRule {
    /// `amount` at the default scale and rounding.
    pub fn round(&self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.scale.value, self.rounding.value.strategy())
    }
}

/// The `consumption` block: how consumption lines become contract charges.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumptionRule {
    /// Name of the one charge per subscription and Billing Date.
    pub charge_name: Template,
    /// Name of a correcting charge for an already billed period (may use {corrected_date}).
    pub correction_name: Template,
    /// ContractCharges.chargeType of the charges ("Operational" in the defaults).
    pub charge_type: Ruled<PicklistChoice>,
    /// One charge per subscription and period (the default) or per meter category.
    pub split: Ruled<ConsumptionSplit>,
}

/// The `policies` block: what cmat does when the bill and Autotask part ways.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    /// A product gone from the bill.
    pub removed_product: Ruled<RemovedProduct>,
    /// A subscription gone from the bills.
    pub cancelled_subscription: Ruled<CancelledSubscription>,
    /// A field cmat owns that someone changed in Autotask.
    pub hand_edit: Ruled<HandEdit>,
    /// A billed charge that differs from the bill.
    pub billed_charge_mismatch: Ruled<BilledChargeMismatch>,
    /// When a lower licence count takes effect (the Billing Date unless a rule says otherwise).
    pub decrease: Ruled<DecreaseTiming>,
    /// Lines whose Total Sales and Total Cost are both zero are not billed.
    pub skip_zero_amount: Option<Ruled<bool>>,
}

/// What a product gone from the bill does to its contract service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovedProduct {
    /// Units go to 0, effective on the Billing Date of the bill that no longer has the product.
    ZeroUnits,
    /// Leave units as they are and report.
    Report,
}

/// What a subscription gone from the bills does to its contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelledSubscription {
    /// Leave the contract as it is and report (the default).
    Report,
    /// Set the contract's endDate to the last Billing Date seen.
    EndContract,
}

/// What cmat does about a field it owns that someone changed in Autotask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandEdit {
    /// Fields cmat owns are set back to what the bill says.
    Overwrite,
    /// Differences are reported as drift warnings and left alone.
    Report,
}

/// What cmat does about a billed charge that differs from the bill (Autotask changes no
/// billed charge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BilledChargeMismatch {
    /// Add a correcting charge for the difference, dated like the original.
    Correct,
    /// Report only.
    Report,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers(graduated: bool) -> Tiers {
        let fixed = |price: i64| PriceSource::Fixed(Decimal::from(price));
        Tiers { bands: vec![(1, fixed(22)), (10, fixed(21)), (50, fixed(19))], graduated }
    }

    #[test]
    fn the_whole_count_takes_its_bands_price_or_each_band_its_own() {
        let (sales, cost) = (Decimal::ONE, Decimal::ONE);
        assert_eq!(tiers(false).apply(sales, cost, 9), Decimal::from(22));
        assert_eq!(tiers(false).apply(sales, cost, 10), Decimal::from(21));
        assert_eq!(tiers(false).apply(sales, cost, 75), Decimal::from(19));
        assert_eq!(tiers(false).apply(sales, cost, 0), Decimal::from(22));
        // 9 at 22, 16 at 21: 534 / 25.
        assert_eq!(tiers(true).apply(sales, cost, 25), Decimal::new(2136, 2));
    }

    proptest::proptest! {
        /// Graduated: the count's total is the sum of each band's units at its price, so the
        /// unit price lies between the band prices and equals the first band's inside it.
        #[test]
        fn a_graduated_price_is_the_bands_total_over_the_count(count in 1i64..200) {
            let price = tiers(true).apply(Decimal::ONE, Decimal::ONE, count);
            let total = price * Decimal::from(count);
            let expected: i64 = (1..=count).map(|unit| match unit {
                1..=9 => 22,
                10..=49 => 21,
                _ => 19,
            }).sum();
            proptest::prop_assert_eq!(total.round_dp(10), Decimal::from(expected));
            proptest::prop_assert!(price <= Decimal::from(22) && price >= Decimal::from(19));
        }

        #[test]
        fn a_price_point_rounds_up_to_the_nearest_ending(cents in 0i64..100_000, ending in 0i64..100) {
            let price = Decimal::new(cents, 2);
            let ending = Decimal::new(ending, 2);
            let pointed = PricePoint::Ending(ending).round_up(price);
            proptest::prop_assert!(pointed >= price && pointed - price < Decimal::ONE);
            proptest::prop_assert_eq!(pointed - pointed.trunc(), ending);
        }
    }
}
