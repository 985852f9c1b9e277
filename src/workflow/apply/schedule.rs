//! The order apply sends a plan's writes in: parents before children, each contract's writes
//! waiting only for that contract's earlier writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex};

use crate::locks;
use cmat_engine::plan::PlanChange;
use cmat_engine::write::{Entity, NaturalKey};

/// The order of a plan's writes: the Services first, all of them (a contract service of any
/// contract may need one's id); then a write to a contract waits only for the writes of
/// earlier phases to the same contract (its contract before its contract services, those
/// before their adjustments, adjustments before the contract's charges), not for every write
/// of the earlier phase to every contract, which let the writes in flight drain at each
/// phase's end.
pub(super) struct Schedule {
    pub(super) state: Mutex<ScheduleState>,
    /// Signalled when a write is done (its dependents may be ready).
    changed: Condvar,
}

pub(super) struct ScheduleState {
    /// Writes whose earlier writes are all done, by phase then plan order.
    pub(super) ready: BTreeSet<(u8, usize)>,
    /// How many earlier writes of its contract each write still waits for.
    waiting_for: Vec<usize>,
    /// The writes that wait for each one.
    dependents: Vec<Vec<usize>>,
    phases: Vec<u8>,
    /// Services not yet done, and the contracts' first writes, held until they are.
    services_left: usize,
    after_services: Vec<usize>,
    /// Writes not yet handed out.
    left: usize,
}

impl Schedule {
    pub(super) fn of(changes: &[PlanChange]) -> Schedule {
        let mut state = ScheduleState {
            ready: BTreeSet::new(),
            waiting_for: vec![0; changes.len()],
            dependents: vec![Vec::new(); changes.len()],
            phases: changes.iter().map(|change| change.entity().phase()).collect(),
            services_left: 0,
            after_services: Vec::new(),
            left: changes.len(),
        };
        for writes_by_phase in state.by_contract(changes).values() {
            state.chain(writes_by_phase);
        }
        Schedule { state: Mutex::new(state), changed: Condvar::new() }
    }

    /// The next write to send, waiting while those left wait for writes in flight; `None`
    /// once every write has been handed out.
    pub(super) fn next(&self) -> Option<usize> {
        let mut state = locks::lock(&self.state);
        loop {
            if let Some((_, index)) = state.ready.pop_first() {
                state.left -= 1;
                return Some(index);
            }
            if state.left == 0 {
                return None;
            }
            state = locks::wait(&self.changed, state);
        }
    }

    /// `index` was sent (or skipped): the writes waiting for it may go.
    pub(super) fn done(&self, index: usize) {
        let mut state = locks::lock(&self.state);
        let state = &mut *state;
        if state.phases[index] == Entity::Services.phase() {
            state.services_left -= 1;
            if state.services_left == 0 {
                for first in std::mem::take(&mut state.after_services) {
                    state.ready.insert((state.phases[first], first));
                }
            }
        }
        for &dependent in &state.dependents[index] {
            state.waiting_for[dependent] -= 1;
            if state.waiting_for[dependent] == 0 {
                state.ready.insert((state.phases[dependent], dependent));
            }
        }
        self.changed.notify_all();
    }
}

impl ScheduleState {
    /// Each contract's writes, by phase then plan order; the Services (and any write of no
    /// contract) are ready at once and counted.
    fn by_contract<'c>(
        &mut self,
        changes: &'c [PlanChange],
    ) -> BTreeMap<&'c str, BTreeMap<u8, Vec<usize>>> {
        let mut by_contract: BTreeMap<&str, BTreeMap<u8, Vec<usize>>> = BTreeMap::new();
        for (index, change) in changes.iter().enumerate() {
            let phase = self.phases[index];
            let service = phase == Entity::Services.phase();
            match contract_of(&change.key).filter(|_| !service) {
                Some(contract) => {
                    by_contract.entry(contract).or_default().entry(phase).or_default().push(index)
                }
                None => {
                    self.ready.insert((phase, index));
                    self.services_left += usize::from(service);
                }
            }
        }
        by_contract
    }

    /// One contract's writes: each phase waits for the phase before it; the first phase
    /// waits for the Services (ready now when there are none).
    fn chain(&mut self, writes_by_phase: &BTreeMap<u8, Vec<usize>>) {
        let mut earlier: Option<&Vec<usize>> = None;
        for writes in writes_by_phase.values() {
            for &index in writes {
                match earlier {
                    Some(earlier) => {
                        self.waiting_for[index] = earlier.len();
                        for &before in earlier {
                            self.dependents[before].push(index);
                        }
                    }
                    None if self.services_left == 0 => {
                        self.ready.insert((self.phases[index], index));
                    }
                    None => self.after_services.push(index),
                }
            }
            earlier = Some(writes);
        }
    }
}

/// Marks a write done when dropped, even if sending it panicked, so no writer waits forever.
pub(super) struct Done<'a>(pub(super) &'a Schedule, pub(super) usize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.done(self.1);
    }
}

/// The contract (by its subscription) a write belongs to; `None` for a Service.
pub(super) fn contract_of(key: &NaturalKey) -> Option<&str> {
    match key {
        NaturalKey::Service { .. } => None,
        NaturalKey::Subscription(subscription)
        | NaturalKey::Product { subscription, .. }
        | NaturalKey::Charge { subscription, .. } => Some(subscription),
    }
}
