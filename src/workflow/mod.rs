//! Workflows: the steps a command runs in order (read, check, plan, write, refresh), without
//! the command line's parsing, prompts and rendering. The `cli` module calls these.

use chrono::Utc;

use crate::store::{Store, StoreError};
use cmat_engine::billing::BillLine;
use cmat_engine::picklists::PicklistError;
use cmat_engine::plan::{Plan, PlanInputs};
use cmat_engine::rules::RuleSet;
use cmat_engine::snapshot::Snapshot;

pub mod adopt;
pub mod apply;
pub mod pull;
pub mod revert;
pub mod sync;

/// Everything a plan is computed from, loaded once.
pub struct Loaded {
    pub rules: RuleSet,
    pub mapping_sources: Vec<(String, String)>,
    pub lines: Vec<BillLine>,
    pub snapshot: Snapshot,
    pub inputs_digest: String,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanningError {
    #[error("no Autotask snapshot yet: run `cmat pull autotask` first (a plan is made against what Autotask holds, its picklists included)")]
    NoSnapshot,
    #[error("the mapping rules name {} picklist value(s) this Autotask tenant does not have:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Picklists(Vec<PicklistError>),
}

impl Loaded {
    /// The rules with the bills and snapshot the store holds now.
    pub fn from_store(
        store: &Store,
        rules: RuleSet,
        mapping_sources: Vec<(String, String)>,
    ) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            rules,
            mapping_sources,
            lines: store.bill_lines()?,
            snapshot: store.load_snapshot()?,
            inputs_digest: store.inputs_digest()?,
        })
    }

    fn inputs(&self) -> PlanInputs<'_> {
        PlanInputs {
            rules: &self.rules,
            lines: &self.lines,
            snapshot: &self.snapshot,
            mapping_sources: &self.mapping_sources,
            inputs_digest: self.inputs_digest.clone(),
        }
    }

    /// The plan, or one error listing every rule whose picklist label the tenant lacks.
    pub fn plan(&self) -> Result<Plan, PlanningError> {
        if self.snapshot.picklists.is_empty() && self.snapshot.refreshed_at.is_none() {
            return Err(PlanningError::NoSnapshot);
        }
        cmat_engine::plan::compute(&self.inputs(), Utc::now()).map_err(PlanningError::Picklists)
    }

    pub fn digests(&self) -> cmat_engine::plan::Digests {
        cmat_engine::plan::digests(&self.inputs())
    }

    /// The unit periods a pull reads for these bills (see [`cmat_engine::snapshot::UnitsWindow`]).
    pub fn units_window(&self) -> Option<cmat_engine::snapshot::UnitsWindow> {
        cmat_engine::snapshot::UnitsWindow::around(
            self.lines.iter().map(|l| l.billing_date),
            self.rules.units_reach_months(),
        )
    }

    pub fn company_names(&self) -> std::collections::BTreeMap<i64, String> {
        self.snapshot
            .companies
            .values()
            .map(|company| (company.id, company.company_name.clone()))
            .collect()
    }
}
