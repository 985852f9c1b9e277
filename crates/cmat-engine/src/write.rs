//! The writes a plan asks for, typed: what the engine decided, with decimals, dates, ids and
//! natural keys as values, never as JSON to be decoded again. The saved-plan JSON (SPEC,
//! `format_version` 1) is one rendering of these ([`crate::plan`]); the Autotask request is
//! another (the `cmat` crate's adapter).

use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What a write does to its record, as the plan's `action` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new record.
    Create,
    /// Fields of an existing record changed.
    Update,
    /// A ContractServiceAdjustment: units, price and cost of a contract service from a date.
    Adjust,
    /// A record removed (only an unbilled charge, by `cmat revert`).
    Delete,
}

impl Action {
    /// The plan's spelling (`create`, `update`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Adjust => "adjust",
            Action::Delete => "delete",
        }
    }

    /// The action a saved plan names; `None` for a word cmat never writes.
    pub fn from_name(name: &str) -> Option<Action> {
        [Action::Create, Action::Update, Action::Adjust, Action::Delete]
            .into_iter()
            .find(|action| action.as_str() == name)
    }
}

/// Entity names as in Autotask's API paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Entity {
    /// The catalogue's Services (products), which contract services point at.
    Services,
    /// Contracts, one per subscription.
    Contracts,
    /// A Service on a contract (created by an adjustment, never written directly).
    ContractServices,
    /// Dated changes of a contract service's units, price and cost.
    ContractServiceAdjustments,
    /// Consumption charges on a contract.
    ContractCharges,
}

impl Entity {
    /// The name in Autotask's API paths and in the plan's `entity`.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Services => "Services",
            Entity::Contracts => "Contracts",
            Entity::ContractServices => "ContractServices",
            Entity::ContractServiceAdjustments => "ContractServiceAdjustments",
            Entity::ContractCharges => "ContractCharges",
        }
    }

    /// The entity a saved plan names; `None` for one cmat never writes.
    pub fn from_name(name: &str) -> Option<Entity> {
        [
            Entity::Services,
            Entity::Contracts,
            Entity::ContractServices,
            Entity::ContractServiceAdjustments,
            Entity::ContractCharges,
        ]
        .into_iter()
        .find(|entity| entity.as_str() == name)
    }

    /// Writes go in this order so that parents exist before their children.
    pub fn phase(self) -> u8 {
        match self {
            Entity::Services => 0,
            Entity::Contracts => 1,
            Entity::ContractServices => 2,
            Entity::ContractServiceAdjustments => 3,
            Entity::ContractCharges => 4,
        }
    }
}

/// How cmat finds a record again without its id: after a crash, or in a later plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NaturalKey {
    /// An Autotask Service, by its sku.
    Service {
        /// The Service's sku (the product's key).
        sku: String,
    },
    /// A contract, by its "Subscription ID" UDF.
    Subscription(String),
    /// A product (Item Code) on a subscription's contract.
    Product {
        /// The subscription whose contract it is on.
        subscription: String,
        /// The product's key.
        item: String,
    },
    /// A consumption charge of a subscription for a Billing Date (and meter category, when a
    /// rule splits charges by it); a correction by its name.
    Charge {
        /// The subscription whose contract holds the charge.
        subscription: String,
        /// The Billing Date the charge bills.
        date: NaiveDate,
        /// The meter category, when charges are split by it.
        group: Option<String>,
        /// A correcting charge's name; `None` for the period's own charge.
        correction: Option<String>,
    },
}

impl NaturalKey {
    /// The subscription the key belongs to; `None` for a Service, which is shared.
    pub fn subscription(&self) -> Option<&str> {
        match self {
            NaturalKey::Service { .. } => None,
            NaturalKey::Subscription(subscription)
            | NaturalKey::Product { subscription, .. }
            | NaturalKey::Charge { subscription, .. } => Some(subscription),
        }
    }

    /// The part after the contract, shown beside a change in the text plan.
    pub fn item_label(&self) -> String {
        match self {
            NaturalKey::Service { .. } | NaturalKey::Subscription(_) => String::new(),
            NaturalKey::Product { item, .. } => format!("item:{item}"),
            NaturalKey::Charge { date, group: None, correction: None, .. } => {
                format!("charge:{date}")
            }
            NaturalKey::Charge { date, group: Some(group), correction: None, .. } => {
                format!("charge:{date}/group:{group}")
            }
            NaturalKey::Charge { correction: Some(name), .. } => format!("correction:{name}"),
        }
    }
}

/// The saved plan's spelling (`subscription:S/item:A`); users' scripts read it.
impl fmt::Display for NaturalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NaturalKey::Service { sku } => write!(f, "sku:{sku}"),
            NaturalKey::Subscription(subscription) => write!(f, "subscription:{subscription}"),
            NaturalKey::Product { subscription, item } => {
                write!(f, "subscription:{subscription}/item:{item}")
            }
            NaturalKey::Charge { subscription, date, group, correction } => {
                write!(f, "subscription:{subscription}/charge:{date}")?;
                if let Some(group) = group {
                    write!(f, "/group:{group}")?;
                }
                match correction {
                    Some(name) => write!(f, "/correction:{name}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::str::FromStr for NaturalKey {
    type Err = String;

    fn from_str(text: &str) -> Result<NaturalKey, String> {
        let unknown = || format!("key {text:?} is not a natural key cmat writes");
        if let Some(sku) = text.strip_prefix("sku:") {
            return Ok(NaturalKey::Service { sku: sku.to_string() });
        }
        let rest = text.strip_prefix("subscription:").ok_or_else(unknown)?;
        if let Some((subscription, item)) = rest.split_once("/item:") {
            return Ok(NaturalKey::Product {
                subscription: subscription.to_string(),
                item: item.to_string(),
            });
        }
        if let Some((subscription, charge)) = rest.split_once("/charge:") {
            let (charge, correction) = match charge.split_once("/correction:") {
                Some((charge, name)) => (charge, Some(name.to_string())),
                None => (charge, None),
            };
            let (date, group) = match charge.split_once("/group:") {
                Some((date, group)) => (date, Some(group.to_string())),
                None => (charge, None),
            };
            let date = date.parse().map_err(|_| unknown())?;
            return Ok(NaturalKey::Charge {
                subscription: subscription.to_string(),
                date,
                group,
                correction,
            });
        }
        Ok(NaturalKey::Subscription(rest.to_string()))
    }
}

/// A plan's name for a record created by an earlier change of the same plan ("c3").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ref(pub String);

/// A record a write points at: one Autotask holds, or one the same plan creates. `P` is how a
/// planned record is named: its natural key in the diff, a [`Ref`] in a plan, its new id once
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id<P> {
    /// A record Autotask holds, by its id.
    Existing(i64),
    /// A record an earlier change of the same plan creates.
    Planned(P),
}

impl<P> Id<P> {
    /// The same id with a planned record named another way (keys → refs → ids).
    pub fn map<Q, E>(&self, f: &mut impl FnMut(&P) -> Result<Q, E>) -> Result<Id<Q>, E> {
        Ok(match self {
            Id::Existing(id) => Id::Existing(*id),
            Id::Planned(planned) => Id::Planned(f(planned)?),
        })
    }
}

impl Id<i64> {
    /// Once every planned record was created, an id is an id.
    pub fn id(&self) -> i64 {
        match self {
            Id::Existing(id) | Id::Planned(id) => *id,
        }
    }
}

/// One field an update changes: what Autotask held (None where it held nothing), and the new
/// value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit<T> {
    /// What Autotask held: the plan shows it, and `cmat revert` puts it back.
    pub old: Option<T>,
    /// What cmat writes.
    pub new: T,
}

/// A Service cmat creates for a product no Service has the sku of (when a rule allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewService {
    /// The Service's name, from the rules' template.
    pub name: String,
    /// The product's key, by which cmat finds the Service again.
    pub sku: String,
    /// The BillingCodes id (use type "Recurring Contract Service") Autotask requires.
    pub billing_code_id: i64,
    /// The tenant's number for the period type; `None` sends none.
    pub period_type: Option<i64>,
    /// The catalogue price (contracts carry their own).
    pub unit_price: Decimal,
    /// The catalogue cost.
    pub unit_cost: Decimal,
    /// Whether the Service is active (new ones are).
    pub is_active: bool,
}

/// A contract cmat creates for a subscription that has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContract {
    /// The Autotask company the rules link the organization to.
    pub company_id: i64,
    /// The contract's name, from the rules' template.
    pub name: String,
    /// The tenant's number for the contract type (Recurring Service).
    pub contract_type: i64,
    /// The tenant's number for the contract status.
    pub status: i64,
    /// The tenant's number for the contract period type; `None` for a tenant without it.
    pub period_type: Option<i64>,
    /// The contract's first day.
    pub start_date: NaiveDate,
    /// Its last day: the start plus the term.
    pub end_date: NaiveDate,
    /// The SLA the rules name.
    pub service_level_agreement_id: i64,
    /// A field Autotask requires on a new contract (0: no).
    pub time_reporting_requires_start_and_stop_times: i64,
    /// The contractCategory the rules name, if any.
    pub category: Option<i64>,
    /// organizationalLevelAssociationID: the line of business, when the rules set one.
    pub line_of_business: Option<i64>,
    /// The UDF carrying the subscription id (its natural key), by name.
    pub subscription_udf: String,
    /// The subscription id the UDF gets.
    pub subscription: String,
}

/// The fields cmat owns on an existing contract; None where nothing changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContractEdits {
    /// A new name (the template or the bill changed).
    pub name: Option<Edit<String>>,
    /// A new end: a renewal, or a cancelled subscription's contract ended.
    pub end_date: Option<Edit<NaiveDate>>,
    /// A new SLA.
    pub service_level_agreement_id: Option<Edit<i64>>,
    /// A new contractCategory.
    pub category: Option<Edit<i64>>,
    /// The "Subscription ID" set on a contract cmat did not create: only `cmat adopt --apply`
    /// plans it, for a link a person accepted.
    pub subscription: Option<UdfEdit>,
}

/// The fields cmat changes on an existing charge (a restated bill, or a revert); None where
/// nothing changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargeEdits {
    /// The charge's price per unit, restated.
    pub unit_price: Option<Edit<Decimal>>,
    /// The charge's cost per unit, restated.
    pub unit_cost: Option<Edit<Decimal>>,
}

/// A user-defined field an update sets, by name (Autotask sends UDFs as `{name, value}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdfEdit {
    /// The UDF's name in the tenant ("Subscription ID").
    pub name: String,
    /// Its old and new value.
    pub edit: Edit<String>,
}

/// Units, price and cost of one contract service from a date: Autotask's
/// ContractServiceAdjustment (it adds the service to the contract when it is not there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment<P> {
    /// The contract the service is on.
    pub contract: Id<P>,
    /// The Service (catalogue record) adjusted on it.
    pub service: Id<P>,
    /// The day the units, price and cost take effect (one adjustment per service and day).
    pub effective_date: NaiveDate,
    /// Relative: the units in force from `effective_date` are `units_before + unit_change`.
    pub unit_change: i64,
    /// The units in force before `effective_date`, as the snapshot read them.
    pub units_before: i64,
    /// The contract service's price from `effective_date`.
    pub adjusted_unit_price: Decimal,
    /// The contract service's cost from `effective_date`.
    pub adjusted_unit_cost: Decimal,
    /// The contract's adjusted price and cost before this adjustment, where Autotask showed
    /// them: kept in the plan's `before` and so in the audit trail, because Autotask keeps one
    /// price per contract service and `cmat revert` has nowhere else to read the old one.
    pub price_before: Option<Decimal>,
    /// The cost before this adjustment, kept for the same reason.
    pub cost_before: Option<Decimal>,
}

/// A contract charge cmat creates: a consumption period, a correction, or a revert's offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCharge {
    /// The charge's name, by which cmat finds it again (with contract and date).
    pub name: String,
    /// What the invoice shows under the name.
    pub description: String,
    /// The day it bills (the Billing Date).
    pub date_purchased: NaiveDate,
    /// The tenant's number for the charge type.
    pub charge_type: i64,
    /// The quantity (1 for a consumption period; negative for an offset).
    pub unit_quantity: Decimal,
    /// The price of one unit.
    pub unit_price: Decimal,
    /// None where the cost is unknown (hidden costs are never written as zero).
    pub unit_cost: Option<Decimal>,
    /// The BillingCodes id (Material Cost Code) the charge is booked to.
    pub billing_code_id: i64,
    /// Whether the customer is billed for it (cmat's charges are).
    pub is_billable_to_company: bool,
}

/// Every kind of write the diff plans. Action and entity follow from the variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write<P> {
    /// A Service for a product none has the sku of.
    CreateService(NewService),
    /// A contract for a subscription.
    CreateContract(NewContract),
    /// Fields cmat owns changed on an existing contract.
    UpdateContract {
        /// The contract's Autotask id.
        id: i64,
        /// The fields that change, each with its old value.
        edits: ContractEdits,
    },
    /// Units, price and cost of a contract service from a date.
    AdjustContractService(Adjustment<P>),
    /// A charge on a contract.
    CreateCharge {
        /// The contract it goes on.
        contract: Id<P>,
        /// The charge.
        charge: NewCharge,
    },
    /// An unbilled charge repriced.
    UpdateCharge {
        /// The charge's Autotask id.
        id: i64,
        /// The contract it is on (the API path names it).
        contract: Id<P>,
        /// The new price and cost, with the old.
        edits: ChargeEdits,
    },
    /// An unbilled charge removed (`cmat revert` of the run that created it). The charge as
    /// Autotask held it rides along: the plan and the audit trail show what went, and a revert
    /// of the revert can create it again.
    DeleteCharge {
        /// The charge's Autotask id.
        id: i64,
        /// The contract it is on (the API path names it).
        contract: Id<P>,
        /// The charge as it was.
        charge: NewCharge,
    },
}

impl<P> Write<P> {
    /// What the write does, for the plan's `action`.
    pub fn action(&self) -> Action {
        match self {
            Write::CreateService(_) | Write::CreateContract(_) | Write::CreateCharge { .. } => {
                Action::Create
            }
            Write::UpdateContract { .. } | Write::UpdateCharge { .. } => Action::Update,
            Write::AdjustContractService(_) => Action::Adjust,
            Write::DeleteCharge { .. } => Action::Delete,
        }
    }

    /// The Autotask entity it writes, for the plan's `entity` and the request's path.
    pub fn entity(&self) -> Entity {
        match self {
            Write::CreateService(_) => Entity::Services,
            Write::CreateContract(_) | Write::UpdateContract { .. } => Entity::Contracts,
            Write::AdjustContractService(_) => Entity::ContractServiceAdjustments,
            Write::CreateCharge { .. }
            | Write::UpdateCharge { .. }
            | Write::DeleteCharge { .. } => Entity::ContractCharges,
        }
    }

    /// The existing record an update changes.
    pub fn id(&self) -> Option<i64> {
        match self {
            Write::UpdateContract { id, .. }
            | Write::UpdateCharge { id, .. }
            | Write::DeleteCharge { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The contract a child record hangs under.
    pub fn parent(&self) -> Option<&Id<P>> {
        match self {
            Write::AdjustContractService(adjustment) => Some(&adjustment.contract),
            Write::CreateCharge { contract, .. }
            | Write::UpdateCharge { contract, .. }
            | Write::DeleteCharge { contract, .. } => Some(contract),
            _ => None,
        }
    }

    /// The same write with its planned records named another way (keys → refs → ids).
    pub fn map_refs<Q, E>(&self, mut f: impl FnMut(&P) -> Result<Q, E>) -> Result<Write<Q>, E> {
        Ok(match self {
            Write::CreateService(service) => Write::CreateService(service.clone()),
            Write::CreateContract(contract) => Write::CreateContract(contract.clone()),
            Write::UpdateContract { id, edits } => {
                Write::UpdateContract { id: *id, edits: edits.clone() }
            }
            Write::AdjustContractService(a) => Write::AdjustContractService(Adjustment {
                contract: a.contract.map(&mut f)?,
                service: a.service.map(&mut f)?,
                effective_date: a.effective_date,
                unit_change: a.unit_change,
                units_before: a.units_before,
                adjusted_unit_price: a.adjusted_unit_price,
                adjusted_unit_cost: a.adjusted_unit_cost,
                price_before: a.price_before,
                cost_before: a.cost_before,
            }),
            Write::CreateCharge { contract, charge } => {
                Write::CreateCharge { contract: contract.map(&mut f)?, charge: charge.clone() }
            }
            Write::UpdateCharge { id, contract, edits } => Write::UpdateCharge {
                id: *id,
                contract: contract.map(&mut f)?,
                edits: edits.clone(),
            },
            Write::DeleteCharge { id, contract, charge } => Write::DeleteCharge {
                id: *id,
                contract: contract.map(&mut f)?,
                charge: charge.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_keys_read_back_as_written() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
        for key in [
            NaturalKey::Service { sku: "CFQ7TTC0LH18".into() },
            NaturalKey::Subscription("6f1c".into()),
            NaturalKey::Product { subscription: "6f1c".into(), item: "A".into() },
            NaturalKey::Charge { subscription: "AZ".into(), date, group: None, correction: None },
            NaturalKey::Charge {
                subscription: "AZ".into(),
                date,
                group: None,
                correction: Some("Azure consumption 2026-11 correction 2".into()),
            },
            NaturalKey::Charge {
                subscription: "AZ".into(),
                date,
                group: Some("Virtual Machines".into()),
                correction: Some("Azure consumption 2026-11 correction (Virtual Machines)".into()),
            },
        ] {
            assert_eq!(key.to_string().parse::<NaturalKey>(), Ok(key.clone()), "{key}");
        }
        assert!("period:2026-11-01".parse::<NaturalKey>().is_err());
        assert!("subscription:A/charge:someday".parse::<NaturalKey>().is_err());
    }
}
