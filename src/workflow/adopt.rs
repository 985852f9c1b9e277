//! `cmat adopt`: the proposal from what the store holds, and `--apply`: the accepted rows of a
//! reviewed file checked against the bills and against Autotask as it is now (the chosen
//! contracts and their companies' contracts re-read first), then a plan of "Subscription ID"
//! updates that the normal apply writes (stale-checked, journaled, audited). No printing.

use std::path::Path;

use chrono::Utc;

use super::apply::{refresh_scope, WorkflowError};
use super::{Loaded, PlanningError};
use crate::autotask::adapter::AutotaskReader;
use crate::store::Store;
use cmat_engine::adopt::{self, AcceptedRow, Link, Proposal, RowError};
use cmat_engine::plan::Plan;
use cmat_engine::scope::Scope;

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("{path}: cannot read")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Every refused row, each `FILE:LINE: why`; nothing was written.
    #[error("refusing {file}: {} row(s) cannot be applied; nothing was written:\n  {}", .errors.len(), .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Refused { file: String, errors: Vec<RowError> },
    #[error(transparent)]
    Planning(#[from] PlanningError),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

impl From<crate::store::StoreError> for AdoptError {
    fn from(err: crate::store::StoreError) -> Self {
        AdoptError::Workflow(err.into())
    }
}

impl From<crate::autotask::adapter::WriteFailure> for AdoptError {
    fn from(err: crate::autotask::adapter::WriteFailure) -> Self {
        AdoptError::Workflow(err.into())
    }
}

/// The proposal of the bills and snapshot loaded (no network: run `pull autotask` first).
pub fn propose(loaded: &Loaded) -> Result<Proposal, AdoptError> {
    if loaded.snapshot.refreshed_at.is_none() {
        return Err(PlanningError::NoSnapshot.into());
    }
    let values = cmat_engine::picklists::resolve(&loaded.rules, &loaded.snapshot.picklists)
        .map_err(PlanningError::Picklists)?;
    let desired = cmat_engine::desired::desired_state(&loaded.rules, &loaded.lines);
    Ok(adopt::propose(&desired, &loaded.snapshot, values.contract_type))
}

/// The accepted rows of an adoption file, named as the user gave it.
pub fn read_file(path: &Path) -> Result<Vec<AcceptedRow>, AdoptError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| AdoptError::Read { path: file.clone(), source })?;
    adopt::read_accepted(&file, &text).map_err(|errors| AdoptError::Refused { file, errors })
}

/// What the accepted rows come to.
pub struct Adoption {
    /// The UDF updates still to write, as a plan whose rules name the rows.
    pub plan: Plan,
    /// Rows whose contract already carries their subscription (an earlier `--apply`).
    pub already_linked: Vec<Link>,
}

/// Checks the rows against the bills and the snapshot, then against Autotask re-read now (a
/// contract may have got a "Subscription ID" since the file was made), and plans the links.
pub fn plan(
    store: &mut Store,
    loaded: &mut Loaded,
    reader: &dyn AutotaskReader,
    file: &str,
    rows: &[AcceptedRow],
) -> Result<Adoption, AdoptError> {
    if loaded.snapshot.refreshed_at.is_none() {
        return Err(PlanningError::NoSnapshot.into());
    }
    let desired = cmat_engine::desired::desired_state(&loaded.rules, &loaded.lines);
    let refused = |errors| AdoptError::Refused { file: file.to_string(), errors };
    // Unknown ids and duplicates are refused before anything is read from Autotask.
    let links = adopt::check_links(file, rows, &desired, &loaded.snapshot).map_err(refused)?;
    let scope = Scope {
        contract_ids: links.iter().map(|link| link.contract_id).collect(),
        company_ids: links.iter().map(|link| link.company_id).collect(),
        skus: Default::default(),
        units_window: loaded.units_window(),
    };
    if !scope.is_empty() {
        let fresh = reader.read_scope(&scope)?;
        if !scope.differences(&loaded.snapshot, &fresh).is_empty() {
            refresh_scope(store, &scope, &fresh)?;
            loaded.snapshot = store.load_snapshot()?;
        }
    }
    let links = adopt::check_links(file, rows, &desired, &loaded.snapshot).map_err(refused)?;
    let udf = &loaded.rules.settings.subscription_udf.value;
    let diff = adopt::link_changes(file, &links, udf, &loaded.snapshot);
    let plan = Plan::new(diff, loaded.digests(), Utc::now());
    Ok(Adoption { plan, already_linked: links.into_iter().filter(|l| l.already_linked).collect() })
}
