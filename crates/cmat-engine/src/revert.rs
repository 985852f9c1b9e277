//! `cmat revert RUN_ID`: the plan that undoes what one apply run wrote, as far as Autotask
//! allows. Pure: a function of the writes the journal and the audit trail kept (every run's,
//! in the order they were sent) and the current snapshot.
//!
//! Autotask keeps every ContractServiceAdjustment (no delete) and one per service and day, so
//! units and prices go back by a compensating adjustment on the first free day from the run's
//! own; the days in between keep the run's units, and the plan says so. Charges go while
//! unbilled; a billed one gets an offsetting charge. Contracts are never deleted: one the run
//! created is ended. A record a later run wrote to is refused, naming that run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::diff::{adjustment_day, units_in_force, Change, Diff};
use crate::plan::{Digests, Plan, PlanWarning};
use crate::rules::RuleOrigin;
use crate::snapshot::{ContractCharge, ContractServiceUnit, Snapshot};
use crate::write::{Adjustment, ContractEdits, Edit, Id, NaturalKey, NewCharge, Write};

/// One write an apply run made and Autotask took, with ids resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunWrite {
    /// The apply run that sent it, as `cmat audit` lists runs.
    pub run_id: String,
    /// The run this write's run reverted (its rule was `revert:RUN`), if it was a revert.
    pub reverting: Option<String>,
    /// What the write was for (bill side), so the revert's changes carry the same key.
    pub key: NaturalKey,
    /// What it did in Autotask.
    pub written: Written,
}

/// What a journaled write did, as far as a revert needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// A ContractServiceAdjustment: undone by a compensating one, never deleted.
    Adjusted {
        /// The contract's Autotask id.
        contract: i64,
        /// The Service's Autotask id.
        service: i64,
        /// The day the adjustment took effect: Autotask allows one per service and day.
        effective_date: NaiveDate,
        /// The units it added (negative: removed).
        unit_change: i64,
        /// The price it set, the fallback when no earlier price is known.
        adjusted_unit_price: Decimal,
        /// The cost it set, the fallback when no earlier cost is known.
        adjusted_unit_cost: Decimal,
        /// The contract's price and cost before it (the audit trail's old values).
        price_before: Option<Decimal>,
        /// The cost before it, from the audit trail.
        cost_before: Option<Decimal>,
    },
    /// A charge the run created: deleted while unbilled, else offset.
    ChargeCreated {
        /// The contract it is on.
        contract: i64,
        /// The charge's Autotask id.
        id: i64,
    },
    /// A charge the run repriced: its old values back while unbilled.
    ChargeUpdated {
        /// The contract it is on.
        contract: i64,
        /// The charge's Autotask id.
        id: i64,
        /// The price edit the run made, with the old price to go back to.
        unit_price: Option<Edit<Decimal>>,
        /// The cost edit the run made, with the old cost to go back to.
        unit_cost: Option<Edit<Decimal>>,
    },
    /// A charge the run deleted (a revert did): created again from what it was.
    ChargeDeleted {
        /// The contract it was on.
        contract: i64,
        /// The charge as it was, to create it again.
        charge: NewCharge,
    },
    /// A contract the run created: ended, since Autotask deletes no contract.
    ContractCreated {
        /// The contract's Autotask id.
        id: i64,
    },
    /// A contract the run edited: its old values back.
    ContractUpdated {
        /// The contract's Autotask id.
        id: i64,
        /// The edits the run made, each with its old value.
        edits: ContractEdits,
    },
    /// A Service the run created: left in the catalogue, and the plan says so.
    ServiceCreated {
        /// The Service's Autotask id.
        id: i64,
    },
}

/// The records a write touches, to tell whether a later run changed one the revert would.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Record {
    ContractService(i64, i64),
    Charge(i64),
    Contract(i64),
    Service(i64),
}

impl Written {
    fn record(&self) -> Record {
        match self {
            Written::Adjusted { contract, service, .. } => {
                Record::ContractService(*contract, *service)
            }
            Written::ChargeCreated { id, .. } | Written::ChargeUpdated { id, .. } => {
                Record::Charge(*id)
            }
            // A deleted charge has no id left; what comes back is found by contract, name
            // and date, so any later write under the contract is one to respect.
            Written::ChargeDeleted { contract, .. } => Record::Contract(*contract),
            Written::ContractCreated { id } | Written::ContractUpdated { id, .. } => {
                Record::Contract(*id)
            }
            Written::ServiceCreated { id } => Record::Service(*id),
        }
    }

    /// The contract a write hangs under (or is).
    fn contract(&self) -> Option<i64> {
        match self {
            Written::Adjusted { contract, .. }
            | Written::ChargeCreated { contract, .. }
            | Written::ChargeUpdated { contract, .. }
            | Written::ChargeDeleted { contract, .. } => Some(*contract),
            Written::ContractCreated { id } | Written::ContractUpdated { id, .. } => Some(*id),
            Written::ServiceCreated { .. } => None,
        }
    }
}

/// Why no revert plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevertError {
    /// The run id names no run with writes: a typo, or a run that failed before writing.
    #[error("run {0} wrote nothing to Autotask (or is not a run of this workspace); nothing to revert\nhint: cmat audit lists the runs and what each wrote")]
    NothingWritten(String),
}

/// The warning code of a write not reverted because a later run wrote to its record.
pub const REFUSED: &str = "revert_refused";
/// The warning code of what a revert leaves as it is (Autotask cannot undo it), and says so.
pub const LEFT: &str = "revert_left";

/// The plan undoing run `run_id`; `writes` are every run's, in the order they were sent.
pub fn revert_plan(
    run_id: &str,
    writes: &[RunWrite],
    snapshot: &Snapshot,
    digests: Digests,
    created_at: DateTime<Utc>,
) -> Result<Plan, RevertError> {
    let first = writes
        .iter()
        .position(|write| write.run_id == run_id)
        .ok_or_else(|| RevertError::NothingWritten(run_id.to_string()))?;
    let ours: Vec<&RunWrite> = writes.iter().filter(|write| write.run_id == run_id).collect();
    let later = later_runs(run_id, &writes[first..]);
    let mut revert = Reverting { run_id, snapshot, changes: Vec::new(), notes: Vec::new() };
    revert.units(&ours, writes, &created_contracts(&ours), &later.records);
    for write in &ours {
        revert.undo(write, writes, &later);
    }
    Ok(revert.into_plan(digests, created_at))
}

/// The contracts the run created: their services are ended with them, not adjusted.
fn created_contracts(ours: &[&RunWrite]) -> BTreeSet<i64> {
    ours.iter()
        .filter_map(|write| match write.written {
            Written::ContractCreated { id } => Some(id),
            _ => None,
        })
        .collect()
}

/// A contract service as the snapshot holds it.
struct Held<'a> {
    /// Its unit periods, oldest first.
    periods: Vec<&'a ContractServiceUnit>,
    price: Option<Decimal>,
    cost: Option<Decimal>,
}

/// What a compensating adjustment goes back to.
struct Goal {
    units: i64,
    price: Decimal,
    cost: Decimal,
}

impl Goal {
    /// The units in force the day before the run's first adjustment, and the price and cost
    /// before the run (as the audit trail kept them, else as held now); `None` for a write
    /// that adjusted nothing.
    fn of(written: &Written, held: &Held<'_>, since: NaiveDate) -> Option<Goal> {
        let Written::Adjusted {
            adjusted_unit_price,
            adjusted_unit_cost,
            price_before,
            cost_before,
            ..
        } = *written
        else {
            return None;
        };
        Some(Goal {
            units: since.pred_opt().map(|day| units_in_force(&held.periods, day)).unwrap_or(0),
            price: price_before.or(held.price).unwrap_or(adjusted_unit_price),
            cost: cost_before.or(held.cost).unwrap_or(adjusted_unit_cost),
        })
    }
}

/// Why a compensating adjustment moves what it moves, and the days it cannot undo.
fn compensation_reason(
    (units, wanted_units): (i64, i64),
    (held_price, wanted_price): (Option<Decimal>, Decimal),
    since: NaiveDate,
    day: NaiveDate,
) -> String {
    let mut moves = Vec::new();
    if units != wanted_units {
        moves.push(format!("units {units} → {wanted_units}"));
    }
    if held_price != Some(wanted_price) {
        let held = held_price.map_or("(unknown)".to_string(), |p| p.to_string());
        moves.push(format!("unit price {held} → {wanted_price}"));
    }
    let mut reason = format!("{} from {day}", moves.join(", "));
    let last = day.pred_opt().unwrap_or(day);
    reason.push_str(&format!(
        "; the run's units and price stayed in force {since} to {last} ({} day(s)): an invoice covering those days bills them (Autotask deletes no adjustment)",
        (last - since).num_days() + 1
    ));
    reason
}

/// The first later run to write to each record, and under each contract.
struct LaterRuns {
    records: BTreeMap<Record, String>,
    under: BTreeMap<i64, String>,
}

/// The first later run to write to each record, and under each contract; a revert of this
/// very run does not count (re-planning a revert that was applied must find nothing to do,
/// not refuse).
fn later_runs(run_id: &str, writes: &[RunWrite]) -> LaterRuns {
    let mut later = LaterRuns { records: BTreeMap::new(), under: BTreeMap::new() };
    for write in writes {
        if write.run_id == run_id || write.reverting.as_deref() == Some(run_id) {
            continue;
        }
        later.records.entry(write.written.record()).or_insert_with(|| write.run_id.clone());
        if let Some(contract) = write.written.contract() {
            later.under.entry(contract).or_insert_with(|| write.run_id.clone());
        }
    }
    later
}

/// The revert being built: its changes and what it says it cannot do.
struct Reverting<'a> {
    run_id: &'a str,
    snapshot: &'a Snapshot,
    changes: Vec<Change>,
    notes: Vec<PlanWarning>,
}

impl Reverting<'_> {
    /// Undoes one write of the run, or says why not (a later run wrote to its record).
    /// Adjustments were compensated per contract service already (see `units`).
    fn undo(&mut self, write: &RunWrite, writes: &[RunWrite], later: &LaterRuns) {
        let refused_by = match &write.written {
            Written::ContractCreated { id } => later.under.get(id),
            other => later.records.get(&other.record()),
        };
        if let Some(by) = refused_by {
            if !matches!(write.written, Written::Adjusted { .. }) {
                self.refuse(&write.key, by);
            }
            return;
        }
        match &write.written {
            Written::Adjusted { .. } => {}
            Written::ChargeCreated { contract, id } => self.created_charge(write, *contract, *id),
            Written::ChargeUpdated { id, unit_price, unit_cost, contract } => {
                self.updated_charge(&write.key, *contract, *id, unit_price, unit_cost)
            }
            Written::ChargeDeleted { contract, charge } => {
                self.deleted_charge(&write.key, *contract, charge)
            }
            Written::ContractCreated { id } => self.created_contract(&write.key, *id, writes),
            Written::ContractUpdated { id, edits } => {
                self.updated_contract(&write.key, *id, edits)
            }
            Written::ServiceCreated { .. } => self.note(
                &write.key,
                "the Service the run created stays in the catalogue: Autotask deletes no Service, and one on no contract bills nothing".into(),
            ),
        }
    }

    /// The revert as a plan: its changes parents first, its notes as warnings.
    fn into_plan(self, digests: Digests, created_at: DateTime<Utc>) -> Plan {
        let Reverting { run_id, snapshot, mut changes, mut notes } = self;
        // Parents first, as the diff orders them; by key within, whatever ids Autotask gave.
        changes
            .sort_by_cached_key(|change| (change.write.entity().phase(), change.key.to_string()));
        notes.sort_by(|a, b| (&a.source, &a.message).cmp(&(&b.source, &b.message)));
        let diff = Diff { changes, unchanged: 0, warnings: Vec::new() };
        let mut plan = Plan::new(diff, digests, created_at);
        for change in &mut plan.changes {
            change.rule = format!("revert:{run_id}");
        }
        plan.restore_grouping(snapshot);
        plan.summary.warnings = notes.len() as u64;
        plan.warnings = notes;
        plan
    }

    fn push(&mut self, key: &NaturalKey, write: Write<NaturalKey>, reason: String) {
        self.changes.push(Change {
            key: key.clone(),
            write,
            rule: RuleOrigin { file: format!("revert:{}", self.run_id), line: 0 },
            reason: format!("revert of run {}: {reason}", self.run_id),
            company_id: 0,
            contract_label: String::new(),
        });
    }

    fn note(&mut self, key: &NaturalKey, message: String) {
        self.notes.push(PlanWarning { code: LEFT.into(), message, source: key.to_string() });
    }

    fn refuse(&mut self, key: &NaturalKey, by: &str) {
        self.notes.push(PlanWarning {
            code: REFUSED.into(),
            message: format!(
                "not reverted: run {by} wrote to this record after run {}; revert {by} first, or leave it",
                self.run_id
            ),
            source: key.to_string(),
        });
    }

    /// One compensating adjustment per contract service the run adjusted (a contract the run
    /// created is ended instead): back to the units in force the day before the run's first
    /// adjustment, and to the price and cost before it, on the first free day from that one.
    fn units(
        &mut self,
        ours: &[&RunWrite],
        writes: &[RunWrite],
        created: &BTreeSet<i64>,
        later: &BTreeMap<Record, String>,
    ) {
        let mut first: BTreeMap<(i64, i64), (&RunWrite, NaiveDate)> = BTreeMap::new();
        for write in ours {
            if let Written::Adjusted { contract, service, effective_date, .. } = write.written {
                let entry = first.entry((contract, service)).or_insert((write, effective_date));
                if effective_date < entry.1 {
                    *entry = (write, effective_date);
                }
            }
        }
        for ((contract, service), (write, since)) in first {
            if created.contains(&contract) {
                continue;
            }
            if let Some(by) = later.get(&Record::ContractService(contract, service)) {
                self.refuse(&write.key, by);
                continue;
            }
            // Days any run's adjustment took: a price-only one leaves no trace in the units.
            let taken: BTreeSet<NaiveDate> = writes
                .iter()
                .filter_map(|other| match other.written {
                    Written::Adjusted { contract: c, service: s, effective_date, .. }
                        if (c, s) == (contract, service) =>
                    {
                        Some(effective_date)
                    }
                    _ => None,
                })
                .collect();
            self.compensate(write, (contract, service), since, &taken);
        }
    }

    /// The compensating adjustment for one contract service: back to the units the day
    /// before `since` and to the price and cost before the run, on the first free day.
    fn compensate(
        &mut self,
        write: &RunWrite,
        (contract_id, service_id): (i64, i64),
        since: NaiveDate,
        taken: &BTreeSet<NaiveDate>,
    ) {
        let held = self.held(contract_id, service_id);
        let Some(goal) = Goal::of(&write.written, &held, since) else {
            return;
        };
        let Some(contract) = self.snapshot.contracts.get(&contract_id) else {
            return self.note(&write.key, format!("contract #{contract_id} is not in the snapshot (run `cmat pull autotask`): its units are left"));
        };
        let day = free_day(&held.periods, since, contract.end_date, taken);
        let units = day.pred_opt().map(|last| units_in_force(&held.periods, last)).unwrap_or(0);
        if units == goal.units && held.price == Some(goal.price) {
            return;
        }
        if day > contract.end_date || day < contract.start_date || taken.contains(&day) {
            return self.note(&write.key, format!(
                "units left at {units}: no free day for an adjustment between {since} and the contract's end {}",
                contract.end_date
            ));
        }
        let reason = compensation_reason((units, goal.units), (held.price, goal.price), since, day);
        let adjustment = Write::AdjustContractService(Adjustment {
            contract: Id::Existing(contract_id),
            service: Id::Existing(service_id),
            effective_date: day,
            unit_change: goal.units - units,
            units_before: units,
            adjusted_unit_price: goal.price,
            adjusted_unit_cost: goal.cost,
            price_before: held.price,
            cost_before: held.cost,
        });
        self.push(&write.key, adjustment, reason);
    }

    /// What the snapshot holds for a contract service: its unit periods, price and cost.
    fn held(&self, contract_id: i64, service_id: i64) -> Held<'_> {
        let service = self
            .snapshot
            .contract_services
            .values()
            .find(|cs| cs.contract_id == contract_id && cs.service_id == service_id);
        let mut periods: Vec<_> = self
            .snapshot
            .contract_service_units
            .values()
            .filter(|u| u.contract_id == contract_id && u.service_id == service_id)
            .collect();
        periods.sort_by_key(|u| u.start_date);
        Held {
            periods,
            price: service.and_then(|cs| cs.adjusted_price),
            cost: service.and_then(|cs| cs.unit_cost),
        }
    }

    /// A charge the run created: deleted while unbilled, else offset by a charge of the
    /// opposite quantity (the invoice that billed it stands; the next one carries the offset).
    fn created_charge(&mut self, write: &RunWrite, contract: i64, id: i64) {
        let Some(charge) = self.snapshot.charges.get(&id) else {
            return; // Gone already (a revert applied, or deleted by hand).
        };
        let Some(new) = new_charge(charge) else {
            return self
                .note(&write.key, format!("charge #{id} has no billing code in Autotask: left"));
        };
        if !charge.is_billed {
            let reason = format!(
                "the run's charge {} of {} is deleted (not billed yet)",
                charge.name, charge.date_purchased
            );
            return self.push(
                &write.key,
                Write::DeleteCharge { id, contract: Id::Existing(contract), charge: new },
                reason,
            );
        }
        let name = format!("{} reversal", charge.name);
        let offset_exists = self.snapshot.charges.values().any(|c| {
            c.contract_id == contract && c.name == name && c.date_purchased == charge.date_purchased
        });
        if offset_exists {
            return;
        }
        let key = match &write.key {
            NaturalKey::Charge { subscription, date, group, .. } => NaturalKey::Charge {
                subscription: subscription.clone(),
                date: *date,
                group: group.clone(),
                correction: Some(name.clone()),
            },
            other => other.clone(),
        };
        let reason = format!(
            "the run's charge {} is billed and cannot be deleted: offset by {} units, billed on the next invoice",
            charge.name,
            -charge.unit_quantity
        );
        let offset = NewCharge { name, unit_quantity: -new.unit_quantity, ..new };
        self.push(
            &key,
            Write::CreateCharge { contract: Id::Existing(contract), charge: offset },
            reason,
        );
    }

    /// A charge the run repriced: its old price and cost back while it is unbilled.
    fn updated_charge(
        &mut self,
        key: &NaturalKey,
        contract: i64,
        id: i64,
        unit_price: &Option<Edit<Decimal>>,
        unit_cost: &Option<Edit<Decimal>>,
    ) {
        let Some(charge) = self.snapshot.charges.get(&id) else {
            return self.note(key, format!("charge #{id} is no longer in Autotask: left"));
        };
        if charge.is_billed {
            return self.note(key, format!(
                "charge #{id} was billed since the run: its price is left (Autotask changes no billed charge); the next plan corrects it against the bill"
            ));
        }
        let back = |edit: &Option<Edit<Decimal>>, held: Option<Decimal>| match edit {
            Some(Edit { old: Some(old), .. }) if held != Some(*old) => {
                Some(Edit { old: held, new: *old })
            }
            _ => None,
        };
        let price = back(unit_price, Some(charge.unit_price));
        let cost = back(unit_cost, charge.unit_cost);
        if price.is_none() && cost.is_none() {
            return;
        }
        let write = Write::UpdateCharge {
            id,
            contract: Id::Existing(contract),
            edits: crate::write::ChargeEdits { unit_price: price, unit_cost: cost },
        };
        self.push(key, write, "the charge's price and cost as before the run".into());
    }

    /// A charge the run deleted (it was a revert): created again unless one like it is there.
    fn deleted_charge(&mut self, key: &NaturalKey, contract: i64, charge: &NewCharge) {
        let there = self.snapshot.charges.values().any(|c| {
            c.contract_id == contract
                && c.name == charge.name
                && c.date_purchased == charge.date_purchased
        });
        if there {
            return;
        }
        let write =
            Write::CreateCharge { contract: Id::Existing(contract), charge: charge.clone() };
        self.push(key, write, format!("the charge {} the run deleted, created again", charge.name));
    }

    /// A contract the run created: ended (Autotask deletes no contract) on the last day it
    /// must still cover: its start, or the latest adjustment any run dated on it.
    fn created_contract(&mut self, key: &NaturalKey, id: i64, writes: &[RunWrite]) {
        let Some(contract) = self.snapshot.contracts.get(&id) else {
            return self.note(key, format!("contract #{id} is not in the snapshot: left"));
        };
        let last_adjustment = writes
            .iter()
            .filter_map(|write| match write.written {
                Written::Adjusted { contract, effective_date, .. } if contract == id => {
                    Some(effective_date)
                }
                _ => None,
            })
            .max();
        let end = last_adjustment.unwrap_or(contract.start_date).max(contract.start_date);
        if contract.end_date <= end {
            return;
        }
        let edits = ContractEdits {
            end_date: Some(Edit { old: Some(contract.end_date), new: end }),
            ..ContractEdits::default()
        };
        let reason = format!(
            "the contract the run created ends on {end} (Autotask deletes no contract, nor ends one before its adjustments): its units stay in force {} to {end}",
            contract.start_date
        );
        self.push(key, Write::UpdateContract { id, edits }, reason);
    }

    /// A contract the run updated: each field back to what it held, where that is known.
    fn updated_contract(&mut self, key: &NaturalKey, id: i64, edits: &ContractEdits) {
        let Some(contract) = self.snapshot.contracts.get(&id) else {
            return self.note(key, format!("contract #{id} is not in the snapshot: left"));
        };
        fn back<T: Clone + PartialEq>(edit: &Option<Edit<T>>, held: Option<T>) -> Option<Edit<T>> {
            match edit {
                Some(Edit { old: Some(old), .. }) if held.as_ref() != Some(old) => {
                    Some(Edit { old: held, new: old.clone() })
                }
                _ => None,
            }
        }
        let back_edits = ContractEdits {
            name: back(&edits.name, Some(contract.contract_name.clone())),
            end_date: back(&edits.end_date, Some(contract.end_date)),
            service_level_agreement_id: back(
                &edits.service_level_agreement_id,
                contract.service_level_agreement_id,
            ),
            category: back(&edits.category, contract.contract_category),
            subscription: None,
        };
        if edits.subscription.is_some() {
            self.note(key, format!(
                "contract #{id}: the \"Subscription ID\" the run set (an adoption) is left; clear it in Autotask to unlink the contract"
            ));
        }
        if back_edits == ContractEdits::default() {
            return;
        }
        self.push(
            key,
            Write::UpdateContract { id, edits: back_edits },
            "the contract's fields as before the run".into(),
        );
    }
}

/// The first day from `since` that no adjustment has taken: none whose units show in the
/// periods, and none journaled (a price-only adjustment leaves no trace in the units).
fn free_day(
    periods: &[&crate::snapshot::ContractServiceUnit],
    since: NaiveDate,
    end: NaiveDate,
    taken: &BTreeSet<NaiveDate>,
) -> NaiveDate {
    let mut day = since;
    loop {
        day = adjustment_day(periods, day, end).0;
        match day.succ_opt() {
            Some(next) if taken.contains(&day) && day < end => day = next,
            _ => return day,
        }
    }
}

/// A charge as Autotask holds it, as cmat would write it again.
fn new_charge(charge: &ContractCharge) -> Option<NewCharge> {
    Some(NewCharge {
        name: charge.name.clone(),
        description: charge.description.clone().unwrap_or_default(),
        date_purchased: charge.date_purchased,
        charge_type: charge.charge_type,
        unit_quantity: charge.unit_quantity,
        unit_price: charge.unit_price,
        unit_cost: charge.unit_cost,
        billing_code_id: charge.billing_code_id?,
        is_billable_to_company: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Contract, ContractService, ContractServiceUnit};
    use crate::testing::{play, play_checked};
    use proptest::prelude::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("date")
    }

    fn digests() -> Digests {
        Digests { snapshot: String::new(), inputs: String::new(), mappings: String::new() }
    }

    /// Contract 10 (October 2026 to September 2027) billing service 7: `units` at `price`.
    fn tenant(units: i64, price: Decimal) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.contracts.insert(
            10,
            Contract {
                id: 10,
                company_id: 1,
                contract_name: "Microsoft 365".into(),
                contract_type: 7,
                status: 1,
                start_date: day("2026-10-01"),
                end_date: day("2027-09-30"),
                service_level_agreement_id: None,
                contract_category: None,
                subscription_id: Some("S".into()),
            },
        );
        snapshot.contract_services.insert(
            20,
            ContractService {
                id: 20,
                contract_id: 10,
                service_id: 7,
                adjusted_price: Some(price),
                unit_cost: Some(Decimal::ONE),
                foreign_currency: false,
                invoice_description: None,
            },
        );
        snapshot.contract_service_units.insert(
            30,
            ContractServiceUnit {
                id: 30,
                contract_id: 10,
                contract_service_id: 20,
                service_id: 7,
                start_date: day("2026-10-01"),
                end_date: day("2027-09-30"),
                units,
                price: None,
                cost: None,
            },
        );
        snapshot
    }

    fn key() -> NaturalKey {
        NaturalKey::Product { subscription: "S".into(), item: "A".into() }
    }

    /// An adjustment of run `run_id`, played against `snapshot` as Autotask takes it.
    fn adjust(
        snapshot: &mut Snapshot,
        run_id: &str,
        date: NaiveDate,
        change: i64,
        price: Decimal,
    ) -> RunWrite {
        let held = snapshot.contract_services[&20].adjusted_price;
        let adjustment = Adjustment {
            contract: Id::Existing(10),
            service: Id::Existing(7),
            effective_date: date,
            unit_change: change,
            units_before: 0,
            adjusted_unit_price: price,
            adjusted_unit_cost: Decimal::ONE,
            price_before: held,
            cost_before: Some(Decimal::ONE),
        };
        let change = Change {
            key: key(),
            write: Write::AdjustContractService(adjustment),
            rule: RuleOrigin { file: "m.cmat".into(), line: 1 },
            reason: String::new(),
            company_id: 1,
            contract_label: String::new(),
        };
        let plan = Plan::new(
            Diff { changes: vec![change], ..Diff::default() },
            digests(),
            DateTime::UNIX_EPOCH,
        );
        let refused = play_checked(&plan, snapshot);
        assert!(refused.is_empty(), "{refused:?}");
        RunWrite {
            run_id: run_id.into(),
            reverting: None,
            key: key(),
            written: Written::Adjusted {
                contract: 10,
                service: 7,
                effective_date: date,
                unit_change: change_of(&plan),
                adjusted_unit_price: price,
                adjusted_unit_cost: Decimal::ONE,
                price_before: held,
                cost_before: Some(Decimal::ONE),
            },
        }
    }

    fn change_of(plan: &Plan) -> i64 {
        match &plan.changes[0].write {
            Write::AdjustContractService(adjustment) => adjustment.unit_change,
            _ => 0,
        }
    }

    /// The revert plan's writes, as the journal keeps them once applied.
    fn journaled(plan: &Plan, run_id: &str, reverting: &str) -> Vec<RunWrite> {
        plan.changes
            .iter()
            .filter_map(|change| match &change.write {
                Write::AdjustContractService(a) => Some(RunWrite {
                    run_id: run_id.into(),
                    reverting: Some(reverting.into()),
                    key: change.key.clone(),
                    written: Written::Adjusted {
                        contract: 10,
                        service: 7,
                        effective_date: a.effective_date,
                        unit_change: a.unit_change,
                        adjusted_unit_price: a.adjusted_unit_price,
                        adjusted_unit_cost: a.adjusted_unit_cost,
                        price_before: a.price_before,
                        cost_before: a.cost_before,
                    },
                }),
                _ => None,
            })
            .collect()
    }

    fn units_on(snapshot: &Snapshot, date: NaiveDate) -> i64 {
        let mut periods: Vec<_> = snapshot.contract_service_units.values().collect();
        periods.sort_by_key(|u| u.start_date);
        units_in_force(&periods, date)
    }

    proptest! {
        /// Whatever a run did to a service's units and price (on whichever day, even one an
        /// earlier run had taken), its revert played as Autotask would leaves, from the
        /// revert's date on, the units and price of before the run; and planning the revert
        /// again then finds nothing to do.
        #[test]
        fn a_played_revert_restores_units_and_price_and_converges(
            units in 0i64..40,
            change in -40i64..40,
            offset in 0u64..60,
            earlier in proptest::bool::ANY,
            cents in (1i64..10_000, 1i64..10_000),
        ) {
            let (before_price, run_price) = (Decimal::new(cents.0, 2), Decimal::new(cents.1, 2));
            let change = change.max(-units);
            let date = day("2026-10-02") + chrono::Days::new(offset);
            let mut snapshot = tenant(units, before_price);
            let mut writes = Vec::new();
            if earlier {
                // The day after, taken by an earlier run's adjustment that changed nothing
                // (no trace in the periods, only in the journal): the revert must skip it.
                let next = date.succ_opt().expect("a day");
                writes.push(adjust(&mut snapshot, "r0", next, 0, before_price));
            }
            writes.push(adjust(&mut snapshot, "r1", date, change, run_price));
            let plan = revert_plan("r1", &writes, &snapshot, digests(), DateTime::UNIX_EPOCH).expect("plan");
            let refused = play_checked(&plan, &mut snapshot);
            prop_assert!(refused.is_empty(), "Autotask would refuse: {:?}", refused);
            let reverted_from = plan.changes.iter().filter_map(|c| match &c.write {
                Write::AdjustContractService(a) => Some(a.effective_date),
                _ => None,
            }).max();
            if let Some(from) = reverted_from {
                prop_assert!(from > date, "the run's own day is taken");
                for days in 0..40 {
                    prop_assert_eq!(units_on(&snapshot, from + chrono::Days::new(days)), units);
                }
            } else {
                prop_assert!(change == 0 && run_price == before_price, "nothing to revert only when the run changed nothing");
            }
            prop_assert_eq!(snapshot.contract_services[&20].adjusted_price, Some(before_price));
            writes.extend(journaled(&plan, "r2", "r1"));
            let again = revert_plan("r1", &writes, &snapshot, digests(), DateTime::UNIX_EPOCH).expect("plan");
            prop_assert!(again.changes.is_empty(), "{:?}", again.changes);
            prop_assert!(again.warnings.is_empty(), "{:?}", again.warnings);
        }
    }

    #[test]
    fn a_record_a_later_run_changed_is_refused_naming_that_run() {
        let mut snapshot = tenant(10, Decimal::TEN);
        let first = adjust(&mut snapshot, "r1", day("2026-11-01"), 2, Decimal::TEN);
        let later = adjust(&mut snapshot, "r2", day("2026-12-01"), 3, Decimal::TEN);
        let plan = revert_plan("r1", &[first, later], &snapshot, digests(), DateTime::UNIX_EPOCH)
            .expect("plan");
        assert!(plan.changes.is_empty());
        assert_eq!(plan.warnings.len(), 1);
        assert_eq!(plan.warnings[0].code, REFUSED);
        assert!(plan.warnings[0].message.contains("run r2"), "{}", plan.warnings[0].message);
        assert_eq!(plan.warnings[0].source, key().to_string());
    }

    #[test]
    fn an_unknown_run_is_an_error() {
        let snapshot = tenant(1, Decimal::ONE);
        assert_eq!(
            revert_plan("nope", &[], &snapshot, digests(), DateTime::UNIX_EPOCH).err(),
            Some(RevertError::NothingWritten("nope".into()))
        );
    }

    #[test]
    fn an_unbilled_charge_is_deleted_and_a_billed_one_offset() {
        let mut snapshot = tenant(1, Decimal::ONE);
        for (id, billed) in [(40, false), (41, true)] {
            snapshot.charges.insert(
                id,
                ContractCharge {
                    id,
                    contract_id: 10,
                    name: format!("Azure consumption {id}"),
                    description: None,
                    date_purchased: day("2026-11-01"),
                    charge_type: 1,
                    unit_quantity: Decimal::ONE,
                    unit_price: Decimal::new(12345, 2),
                    unit_cost: None,
                    billing_code_id: Some(5),
                    is_billed: billed,
                },
            );
        }
        let charge = |id: i64| RunWrite {
            run_id: "r1".into(),
            reverting: None,
            key: NaturalKey::Charge {
                subscription: "S".into(),
                date: day("2026-11-01"),
                group: Some(id.to_string()),
                correction: None,
            },
            written: Written::ChargeCreated { contract: 10, id },
        };
        let writes = [charge(40), charge(41)];
        let plan =
            revert_plan("r1", &writes, &snapshot, digests(), DateTime::UNIX_EPOCH).expect("plan");
        let writes_of: Vec<&Write<crate::write::Ref>> =
            plan.changes.iter().map(|change| &change.write).collect();
        assert_eq!(writes_of.len(), 2, "{writes_of:?}");
        assert!(writes_of.iter().any(|write| matches!(write, Write::DeleteCharge { id: 40, .. })));
        assert!(writes_of.iter().any(|write| matches!(write, Write::CreateCharge { charge, .. }
            if charge.unit_quantity == -Decimal::ONE
                && charge.name == "Azure consumption 41 reversal")));
        play(&plan, &mut snapshot);
        assert!(!snapshot.charges.contains_key(&40));
        let again =
            revert_plan("r1", &writes, &snapshot, digests(), DateTime::UNIX_EPOCH).expect("plan");
        assert!(again.changes.is_empty(), "the offset is there, the unbilled charge gone");
    }
}
