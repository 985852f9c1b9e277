//! What cmat knows of Autotask: the records `pull autotask` reads, as domain types.
//! The store persists them, the engine diffs against them, apply updates them from what it
//! wrote. Field names follow Autotask's (camelCase in the API, snake_case here).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Autotask as the last pull read it: what the diff compares the desired state with. Every
/// table is by Autotask id.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// The companies bills are linked to.
    pub companies: BTreeMap<i64, Company>,
    /// The contracts, cmat's and others' (adopt looks at those).
    pub contracts: BTreeMap<i64, Contract>,
    /// The catalogue's Services, found by sku.
    pub services: BTreeMap<i64, Service>,
    /// The Services on each contract, with their prices.
    pub contract_services: BTreeMap<i64, ContractService>,
    /// The contract services' unit periods in the units window.
    pub contract_service_units: BTreeMap<i64, ContractServiceUnit>,
    /// The contract charges (consumption).
    pub charges: BTreeMap<i64, ContractCharge>,
    /// The billing codes, checked against the ones the rules name.
    pub billing_codes: BTreeMap<i64, BillingCode>,
    /// The tenant's picklists for the fields cmat writes, from `entityInformation/fields`.
    pub picklists: Picklists,
    /// The tenant's currencies, by id; empty when Autotask has none to say (one currency).
    pub currencies: BTreeMap<i64, Currency>,
    /// When the snapshot was last read from Autotask; None if never.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Records Autotask sent with a nullable field null that cmat needs (a charge's
    /// unitPrice, a unit period's contractServiceID, a billing code's name or use type), by
    /// `Entity/id`. Kept out of the tables above; the diff writes nothing that depends on them.
    pub incomplete: BTreeMap<String, IncompleteRecord>,
}

/// A record kept out of the snapshot because a field cmat needs was null (Datto's metadata
/// marks it nullable, and live tenants do send it so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncompleteRecord {
    /// `ContractCharges`, `ContractServiceUnits`, `BillingCodes`.
    pub entity: String,
    /// The record's Autotask id.
    pub id: i64,
    /// The field that was null.
    pub field: String,
    /// The contract it belongs to, when it says (charges and unit periods): nothing is
    /// written for that contract while the record is incomplete.
    pub contract_id: Option<i64>,
}

impl IncompleteRecord {
    /// `ContractCharges/77`: the key in [`Snapshot::incomplete`].
    pub fn key(&self) -> String {
        format!("{}/{}", self.entity, self.id)
    }
}

/// An Autotask company: where a subscription's contract goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Company {
    /// Its Autotask id, which the rules link organizations to.
    pub id: i64,
    /// Its name, for messages.
    pub company_name: String,
    /// Whether it is active in Autotask.
    pub is_active: bool,
    /// The company's currency (Currencies id), with the multi-currency module; None without.
    pub currency_id: Option<i64>,
}

/// A currency of the tenant (multi-currency module): the company's prices are in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Currency {
    /// Its Autotask id, as a company names it.
    pub id: i64,
    /// The ISO code (`EUR`), compared with a bill's Currency Code.
    pub name: String,
    /// Whether it is the tenant's own (internal) currency, the one catalogue prices are in.
    pub is_internal: bool,
}

/// An Autotask contract: one per subscription, found by its "Subscription ID" UDF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    /// Its Autotask id.
    pub id: i64,
    /// The company it belongs to.
    pub company_id: i64,
    /// Its name, compared with the rules' template.
    pub contract_name: String,
    /// The tenant's number for its type.
    pub contract_type: i64,
    /// The tenant's number for its status.
    pub status: i64,
    /// Its first day: no adjustment is dated before it.
    pub start_date: NaiveDate,
    /// Its last day: no adjustment is dated after it, and a bill after it renews it.
    pub end_date: NaiveDate,
    /// Its SLA, compared with the rules'.
    pub service_level_agreement_id: Option<i64>,
    /// Its contractCategory, compared with the rules'.
    pub contract_category: Option<i64>,
    /// Value of the "Subscription ID" user-defined field (the UDF named in the settings).
    pub subscription_id: Option<String>,
}

/// A Service of the Autotask catalogue: what a contract service bills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// Its Autotask id.
    pub id: i64,
    /// Its name, for messages.
    pub name: String,
    /// Its sku, which a product's key is matched against.
    pub sku: Option<String>,
    /// Its BillingCodes id.
    pub billing_code_id: i64,
    /// The tenant's number for its billing period.
    pub period_type: i64,
    /// Its catalogue price (not what a contract bills).
    pub unit_price: Decimal,
    /// Its catalogue cost; None when the API user may not see costs.
    pub unit_cost: Option<Decimal>,
    /// Whether it is active: of two Services with one sku, the active one is used.
    pub is_active: bool,
}

/// A Service on a contract. Its price is the contract's *adjusted* price, which queries
/// return as `internalCurrencyAdjustedPrice`; `unitPrice` is the Service's catalogue price,
/// read-only here and never what the contract bills (API-NOTES, ContractServices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractService {
    /// Its Autotask id.
    pub id: i64,
    /// The contract it is on.
    pub contract_id: i64,
    /// The catalogue Service it bills.
    pub service_id: i64,
    /// None when Autotask sent none: unknown, never taken as 0.
    pub adjusted_price: Option<Decimal>,
    /// None when the API user may not see costs: unknown, never taken as 0.
    pub unit_cost: Option<Decimal>,
    /// The contract bills in the customer's currency (multi-currency on) and the adjusted price
    /// could not be turned into it (no catalogue ratio): it cannot be compared with a bill.
    /// A convertible price is converted on reading and this stays false.
    pub foreign_currency: bool,
    /// The text invoices show for it, if set.
    pub invoice_description: Option<String>,
}

/// One billing period of a contract service; the units in force on a date are those of the
/// period containing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractServiceUnit {
    /// Its Autotask id.
    pub id: i64,
    /// The contract.
    pub contract_id: i64,
    /// The contract service it is a period of.
    pub contract_service_id: i64,
    /// The catalogue Service.
    pub service_id: i64,
    /// The period's first day.
    pub start_date: NaiveDate,
    /// The period's last day.
    pub end_date: NaiveDate,
    /// The units in force through the period.
    pub units: i64,
    /// The price in force through the period, when Autotask sent it.
    pub price: Option<Decimal>,
    /// The cost in force through the period, when Autotask sent it.
    pub cost: Option<Decimal>,
}

/// The dates whose unit periods a pull reads: the periods overlapping `from..=to`. The engine
/// reads units on a current bill's Billing Date (`diff::SnapshotIndex::units_on`) and, for a
/// decrease the rules defer (`next_period`, `term_end`), on the day it takes effect, up to
/// `reach` months later; every date cmat writes must be read back, or the next plan proposes
/// the same write again (Autotask refuses it as a duplicate). So the window spans the current
/// bills' Billing Dates with a month's margin on each side, and the rules' reach after the
/// latest ([`UnitsWindow::around`]); a 12-month contract has 12 periods per service, of which
/// this keeps one or two when every decrease is dated on its Billing Date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitsWindow {
    /// The first day read.
    pub from: NaiveDate,
    /// The last day read.
    pub to: NaiveDate,
}

impl UnitsWindow {
    /// From a month before the earliest Billing Date to a month plus `reach_months` after the
    /// latest ([`crate::rules::RuleSet::units_reach_months`]); None without any bill (then
    /// every period is read).
    pub fn around(
        billing_dates: impl IntoIterator<Item = NaiveDate>,
        reach_months: u32,
    ) -> Option<UnitsWindow> {
        let mut dates = billing_dates.into_iter();
        let first = dates.next()?;
        let (earliest, latest) = dates.fold((first, first), |(lo, hi), d| (lo.min(d), hi.max(d)));
        let month = chrono::Months::new(1);
        let ahead = chrono::Months::new(reach_months.saturating_add(1));
        Some(UnitsWindow {
            from: earliest.checked_sub_months(month).unwrap_or(earliest),
            to: latest.checked_add_months(ahead).unwrap_or(NaiveDate::MAX),
        })
    }

    /// Whether a unit period overlaps the window.
    pub fn holds(&self, unit: &ContractServiceUnit) -> bool {
        unit.end_date >= self.from && unit.start_date <= self.to
    }
}

/// A charge on a contract: a consumption period, a correction, or one made by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractCharge {
    /// Its Autotask id.
    pub id: i64,
    /// The contract it is on.
    pub contract_id: i64,
    /// Its name, by which cmat finds its own charges (with contract and date).
    pub name: String,
    /// What invoices show under the name.
    pub description: Option<String>,
    /// The day it bills.
    pub date_purchased: NaiveDate,
    /// The tenant's number for its type.
    pub charge_type: i64,
    /// The quantity.
    pub unit_quantity: Decimal,
    /// The price of one unit.
    pub unit_price: Decimal,
    /// None when the API user may not see costs: unknown, never taken as 0.
    pub unit_cost: Option<Decimal>,
    /// The BillingCodes id it is booked to, if any.
    pub billing_code_id: Option<i64>,
    /// Whether an invoice billed it: Autotask then changes and deletes it no more.
    pub is_billed: bool,
}

/// An Autotask billing code, which Services and charges are booked to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillingCode {
    /// Its Autotask id, as the rules name it.
    pub id: i64,
    /// Its name, for messages.
    pub name: String,
    /// The tenant's number for its use type, checked against what the rules use it for.
    pub use_type: i64,
    /// Whether it is active: `cmat doctor` reports an inactive one the rules name.
    pub is_active: bool,
}

/// The tenant's picklists, by field (`Contracts.contractType`). Picklist numbers are the
/// tenant's own and differ from what labels suggest, so cmat keeps the list it read and looks
/// labels up in it (`crate::picklists`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Picklists {
    /// The entries of each field, by [`Picklists::key`].
    pub fields: BTreeMap<String, Vec<PicklistEntry>>,
}

/// One entry of a picklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PicklistEntry {
    /// The tenant's number, which cmat sends.
    pub value: i64,
    /// The label, which the rules name.
    pub label: String,
    /// Whether it may be chosen: an inactive one is an error naming the rule.
    pub is_active: bool,
}

impl Picklists {
    /// The key of `entity`'s `field`: `Contracts.contractType`.
    pub fn key(entity: &str, field: &str) -> String {
        format!("{entity}.{field}")
    }

    /// The entries of `entity`'s `field`; `None` when Autotask sent no picklist for it.
    pub fn get(&self, entity: &str, field: &str) -> Option<&[PicklistEntry]> {
        self.fields.get(&Self::key(entity, field)).map(Vec::as_slice)
    }

    /// Whether no picklist was read (no pull yet): then labels cannot be looked up.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Where the last `pull autotask` left each entity, so that the next one can read only the
/// records Autotask stamped as changed since (`autotask::pull`). Kept beside the snapshot it
/// describes and replaced with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullMarks {
    /// By entity name (`Contracts`); an entity without a mark is read in full.
    pub entities: BTreeMap<String, ChangeMark>,
    /// When the picklists were last read; they change by hand, rarely, so a pull reads them
    /// again once a day (and on `--full`), not on every steady day's pull.
    #[serde(default)]
    pub picklists_read_at: Option<DateTime<Utc>>,
    /// By entity name, the entities without a change stamp (contract services, unit periods):
    /// when they were last read in full. A `sync` reads only the records of the contracts
    /// whose subscriptions changed since the last successful sync (`autotask::pull::Focus`)
    /// while this is recent; an entity without one is read in full.
    #[serde(default)]
    pub full_reads: BTreeMap<String, FullRead>,
}

/// The last full read of an entity that carries no change stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullRead {
    /// When it was read.
    pub at: DateTime<Utc>,
    /// What else than Autotask decided which records were read (the units window): a focused
    /// read merges into the stored records only when it is the same.
    pub conversion: String,
}

/// Where the last pull left an entity that carries a change stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeMark {
    /// The fields Autotask stamps when a record changes (`lastModifiedDateTime`, …).
    pub fields: Vec<String>,
    /// The newest stamp seen in those fields.
    pub newest: DateTime<Utc>,
    /// When the entity was last read in full; changes alone are trusted only for a while.
    pub full_read_at: DateTime<Utc>,
    /// How the records were converted (the Contracts UDF read, for one): a different
    /// conversion cannot reuse the stored records.
    pub conversion: String,
}

/// Units in force on `date` among one contract service's periods (sorted by start date): the
/// period containing it, else the last one before it, else 0.
pub fn units_in_force(periods: &[&ContractServiceUnit], date: chrono::NaiveDate) -> i64 {
    periods
        .iter()
        .rev()
        .find(|unit| unit.start_date <= date && date <= unit.end_date)
        .or_else(|| periods.iter().rev().find(|unit| unit.start_date <= date))
        .map(|unit| unit.units)
        .unwrap_or(0)
}
