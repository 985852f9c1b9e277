//! The records a plan touches: what apply re-reads from Autotask before writing (to spot a
//! stale plan) and after (to refresh the snapshot). Read from the typed writes.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::Plan;
use crate::snapshot::{Snapshot, UnitsWindow};
use crate::table::{kept, with_map, Table};
use crate::write::{Id, Write};

/// What apply reads of Autotask around a plan: the records it writes to, and where a create
/// it may have left unanswered would be found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Every contract of these companies is read (that is how a landed create is found).
    pub company_ids: BTreeSet<i64>,
    /// Contracts read by id, with their contract services, unit periods and charges.
    pub contract_ids: BTreeSet<i64>,
    /// Services read by sku (the ones a plan creates).
    pub skus: BTreeSet<String>,
    /// Unit periods outside this window are neither read nor compared (as in the pull).
    pub units_window: Option<UnitsWindow>,
}

impl Scope {
    /// Nothing to read: apply sends no request for it.
    pub fn is_empty(&self) -> bool {
        self.company_ids.is_empty() && self.contract_ids.is_empty() && self.skus.is_empty()
    }

    /// The records a plan writes to: the contracts it writes under, the companies it creates a
    /// contract under (a create an earlier run left without an answer is found there by its
    /// subscription) and the skus it creates.
    pub fn written_by(plan: &Plan) -> Scope {
        let mut scope = Scope::default();
        for change in &plan.changes {
            match &change.write {
                Write::CreateService(service) => {
                    scope.skus.insert(service.sku.clone());
                }
                Write::CreateContract(contract) => {
                    scope.company_ids.insert(contract.company_id);
                }
                Write::UpdateContract { id, .. } => {
                    scope.contract_ids.insert(*id);
                }
                write => {
                    if let Some(Id::Existing(id)) = write.parent() {
                        scope.contract_ids.insert(*id);
                    }
                }
            }
        }
        scope
    }

    /// The part of a snapshot this scope covers; compared with a fresh read to spot staleness.
    /// Its contracts first: the records under them are cut by them.
    pub fn restrict(&self, snapshot: &Snapshot) -> Snapshot {
        let mut part = Snapshot {
            contracts: kept(&snapshot.contracts, |c| {
                self.contract_ids.contains(&c.id) || self.company_ids.contains(&c.company_id)
            }),
            ..Snapshot::default()
        };
        for table in Table::ALL {
            self.restrict_table(table, snapshot, &mut part);
        }
        part.incomplete = (snapshot.incomplete.iter())
            .filter(|(_, r)| r.contract_id.is_some_and(|id| part.contracts.contains_key(&id)))
            .map(|(key, r)| (key.clone(), r.clone()))
            .collect();
        part
    }

    /// Copies into `part` the records of `table` this scope covers, `part.contracts` already
    /// cut.
    fn restrict_table(&self, table: Table, snapshot: &Snapshot, part: &mut Snapshot) {
        let under = |contracts: &BTreeMap<i64, _>, id: i64| contracts.contains_key(&id);
        match table {
            Table::Contracts => {}
            Table::Services => {
                part.services = kept(&snapshot.services, |s| {
                    s.sku.as_ref().is_some_and(|sku| self.skus.contains(sku))
                })
            }
            Table::ContractServices => {
                part.contract_services =
                    kept(&snapshot.contract_services, |s| under(&part.contracts, s.contract_id))
            }
            Table::ContractServiceUnits => {
                part.contract_service_units = kept(&snapshot.contract_service_units, |u| {
                    under(&part.contracts, u.contract_id)
                        && self.units_window.is_none_or(|w| w.holds(u))
                })
            }
            Table::ContractCharges => {
                part.charges = kept(&snapshot.charges, |c| under(&part.contracts, c.contract_id))
            }
            // Apply neither writes nor re-reads these.
            Table::Companies | Table::BillingCodes => {}
        }
    }

    /// What Autotask holds now against what the snapshot says, over this scope: the
    /// differences, for the "stale plan" message.
    pub fn differences(&self, snapshot: &Snapshot, fresh: &Snapshot) -> Vec<String> {
        let known = self.restrict(snapshot);
        let fresh = self.restrict(fresh);
        let mut differences = Vec::new();
        for table in Table::ALL {
            with_map!([&known] [&fresh] table, |known, fresh| {
                compare(table.label(), known, fresh, &mut differences)
            });
        }
        differences
    }
}

/// The records new, changed or gone between `known` and `fresh`, in that order of ids.
fn compare<T: PartialEq>(
    kind: &str,
    known: &BTreeMap<i64, T>,
    fresh: &BTreeMap<i64, T>,
    out: &mut Vec<String>,
) {
    for (id, record) in fresh {
        match known.get(id) {
            None => out.push(format!("{kind} {id} is new in Autotask")),
            Some(old) if old != record => out.push(format!("{kind} {id} changed in Autotask")),
            _ => {}
        }
    }
    for id in known.keys().filter(|id| !fresh.contains_key(id)) {
        out.push(format!("{kind} {id} is gone from Autotask"));
    }
}
