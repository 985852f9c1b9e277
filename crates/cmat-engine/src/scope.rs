//! The records a plan touches: what apply re-reads from Autotask before writing (to spot a
//! stale plan) and after (to refresh the snapshot). Read from the typed writes.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::Plan;
use crate::snapshot::{Snapshot, UnitsWindow};
use crate::write::{Id, Write};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Every contract of these companies is read (that is how a landed create is found).
    pub company_ids: BTreeSet<i64>,
    pub contract_ids: BTreeSet<i64>,
    pub skus: BTreeSet<String>,
    /// Unit periods outside this window are neither read nor compared (as in the pull).
    pub units_window: Option<UnitsWindow>,
}

impl Scope {
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
    pub fn restrict(&self, snapshot: &Snapshot) -> Snapshot {
        let contracts: BTreeMap<_, _> = snapshot
            .contracts
            .iter()
            .filter(|(id, c)| {
                self.contract_ids.contains(id) || self.company_ids.contains(&c.company_id)
            })
            .map(|(id, c)| (*id, c.clone()))
            .collect();
        let under = |contract_id: &i64| contracts.contains_key(contract_id);
        Snapshot {
            companies: BTreeMap::new(),
            services: snapshot
                .services
                .iter()
                .filter(|(_, s)| s.sku.as_ref().is_some_and(|sku| self.skus.contains(sku)))
                .map(|(id, s)| (*id, s.clone()))
                .collect(),
            contract_services: snapshot
                .contract_services
                .iter()
                .filter(|(_, s)| under(&s.contract_id))
                .map(|(id, s)| (*id, s.clone()))
                .collect(),
            contract_service_units: snapshot
                .contract_service_units
                .iter()
                .filter(|(_, u)| under(&u.contract_id))
                .filter(|(_, u)| self.units_window.is_none_or(|w| w.holds(u)))
                .map(|(id, u)| (*id, u.clone()))
                .collect(),
            charges: snapshot
                .charges
                .iter()
                .filter(|(_, c)| under(&c.contract_id))
                .map(|(id, c)| (*id, c.clone()))
                .collect(),
            billing_codes: BTreeMap::new(),
            picklists: Default::default(),
            currencies: BTreeMap::new(),
            refreshed_at: None,
            incomplete: snapshot
                .incomplete
                .iter()
                .filter(|(_, r)| r.contract_id.is_some_and(|id| under(&id)))
                .map(|(key, r)| (key.clone(), r.clone()))
                .collect(),
            contracts,
        }
    }

    /// What Autotask holds now against what the snapshot says, over this scope: the
    /// differences, for the "stale plan" message.
    pub fn differences(&self, snapshot: &Snapshot, fresh: &Snapshot) -> Vec<String> {
        let known = self.restrict(snapshot);
        let fresh = self.restrict(fresh);
        let mut differences = Vec::new();
        fn compare<T: PartialEq>(
            kind: &str,
            known: &BTreeMap<i64, T>,
            fresh: &BTreeMap<i64, T>,
            out: &mut Vec<String>,
        ) {
            for (id, record) in fresh {
                match known.get(id) {
                    None => out.push(format!("{kind} {id} is new in Autotask")),
                    Some(old) if old != record => {
                        out.push(format!("{kind} {id} changed in Autotask"))
                    }
                    _ => {}
                }
            }
            for id in known.keys().filter(|id| !fresh.contains_key(id)) {
                out.push(format!("{kind} {id} is gone from Autotask"));
            }
        }
        compare("contract", &known.contracts, &fresh.contracts, &mut differences);
        compare("service", &known.services, &fresh.services, &mut differences);
        compare(
            "contract service",
            &known.contract_services,
            &fresh.contract_services,
            &mut differences,
        );
        compare(
            "contract service units",
            &known.contract_service_units,
            &fresh.contract_service_units,
            &mut differences,
        );
        compare("charge", &known.charges, &fresh.charges, &mut differences);
        differences
    }
}
