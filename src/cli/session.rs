//! What plan, apply and sync share: opening the workspace's rules, bills and snapshot, and
//! computing a plan from them.

use chrono::Utc;

use super::{CommandError, Context};
use crate::autotask::{AutotaskClient, ClientOptions};
use crate::store::{Access, Store};
use crate::workspace::AutotaskCredentials;
use cmat_engine::billing::BillLine;
use cmat_engine::plan::{Plan, PlanInputs};
use cmat_engine::rules::RuleSet;
use cmat_engine::snapshot::Snapshot;

/// Everything a plan is computed from, loaded once.
pub struct Loaded {
    pub rules: RuleSet,
    pub mapping_sources: Vec<(String, String)>,
    pub lines: Vec<BillLine>,
    pub snapshot: Snapshot,
    pub inputs_digest: String,
}

impl Loaded {
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
    pub fn plan(&self) -> Result<Plan, CommandError> {
        if self.snapshot.picklists.is_empty() && self.snapshot.refreshed_at.is_none() {
            return Err("no Autotask snapshot yet: run `cmat pull autotask` first (a plan is made against what Autotask holds, its picklists included)".into());
        }
        cmat_engine::plan::compute(&self.inputs(), Utc::now()).map_err(|errors| -> CommandError {
            let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
            format!(
                "the mapping rules name {} picklist value(s) this Autotask tenant does not have:\n{}",
                errors.len(),
                shown.join("\n")
            )
            .into()
        })
    }

    pub fn digests(&self) -> cmat_engine::plan::Digests {
        cmat_engine::plan::digests(&self.inputs())
    }

    /// The unit periods a pull reads for these bills (see [`cmat_engine::snapshot::UnitsWindow`]).
    pub fn units_window(&self) -> Option<cmat_engine::snapshot::UnitsWindow> {
        cmat_engine::snapshot::UnitsWindow::around(self.lines.iter().map(|l| l.billing_date))
    }

    pub fn company_names(&self) -> std::collections::BTreeMap<i64, String> {
        self.snapshot
            .companies
            .values()
            .map(|company| (company.id, company.company_name.clone()))
            .collect()
    }
}

/// Checked rules; mapping errors are returned as one error carrying the full rendering.
pub fn load_rules(context: &Context) -> Result<(RuleSet, Vec<(String, String)>), CommandError> {
    let root = &context.workspace.root;
    let rules = cmat_mapping::load_rules(root).map_err(|diagnostics| -> CommandError {
        format!("the mapping rules have {} error(s):\n{diagnostics}", diagnostics.len()).into()
    })?;
    let sources = cmat_mapping::mapping_sources(root)?;
    Ok((rules, sources))
}

pub fn open_store(context: &Context, access: Access) -> Result<Store, CommandError> {
    let path = context.workspace.state_db();
    if access == Access::Read && !path.exists() {
        return Err(format!(
            "{}: no state database yet (hint: run `cmat import FILE.csv` and `cmat pull autotask` first)",
            path.display()
        )
        .into());
    }
    Ok(Store::open(&path, access)?)
}

pub fn load(context: &Context, store: &Store) -> Result<Loaded, CommandError> {
    // Not needed to plan, but a broken cmat.toml is better found now than at the next apply.
    context.workspace.config()?;
    load_with(store, load_rules(context)?)
}

/// [`load`] with rules already read (sync reads them first, to decide whether to run at all).
pub fn load_with(
    store: &Store,
    (rules, mapping_sources): (RuleSet, Vec<(String, String)>),
) -> Result<Loaded, CommandError> {
    Ok(Loaded {
        rules,
        mapping_sources,
        lines: store.bill_lines()?,
        snapshot: store.load_snapshot()?,
        inputs_digest: store.inputs_digest()?,
    })
}

/// A client for the workspace's Autotask, with credentials from the environment.
pub fn connect_autotask(context: &Context) -> Result<AutotaskClient, CommandError> {
    connect_autotask_with(context, AutotaskCredentials::from_env()?)
}

pub fn connect_autotask_with(
    context: &Context,
    credentials: AutotaskCredentials,
) -> Result<AutotaskClient, CommandError> {
    let config = context.workspace.config()?;
    Ok(AutotaskClient::connect(&config.autotask, credentials, ClientOptions::default())?)
}
