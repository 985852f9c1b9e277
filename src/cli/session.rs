//! What plan, apply and sync share: opening the workspace's rules, bills and snapshot, and
//! computing a plan from them.

use super::{CommandError, Context};
use crate::autotask::{AutotaskClient, ClientOptions, PacingMemory};
use crate::store::{Access, Store};
use crate::workspace::AutotaskCredentials;
use cmat_engine::rules::RuleSet;

pub use crate::workflow::Loaded;

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
    Ok(Loaded::from_store(store, rules, mapping_sources)?)
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
    let memory = PacingMemory { path: context.workspace.autotask_pacing() };
    let options = ClientOptions { pacing_memory: Some(memory), ..ClientOptions::default() };
    Ok(AutotaskClient::connect(&config.autotask, credentials, options)?)
}
