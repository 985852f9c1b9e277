//! The sync workflow's decisions and records: whether anything is new since the last
//! successful sync, whether the bills are whole, what did not converge, and what a run leaves
//! for the next one. `cli::sync` runs the steps in order and says what happens.

use std::collections::BTreeMap;

use crate::store::meta_keys::{
    LAST_SYNC_AT, LAST_SYNC_INPUTS_DIGEST, LAST_SYNC_MAPPINGS_DIGEST, LAST_SYNC_NOT_CONVERGED,
    LAST_SYNC_REQUESTS,
};
use crate::store::{NotConverged, Store, StoreError};
use crate::workspace::SyncConfig;

use super::{Loaded, PlanningError};

/// The digests of what a sync applies: the bills and the rules.
pub struct SyncDigests {
    /// The imported bills' digest (`Store::inputs_digest`).
    pub inputs: String,
    /// The mapping rules' digest.
    pub mappings: String,
}

impl SyncDigests {
    /// The digests of the bills the store holds and of these mapping sources.
    pub fn of(store: &Store, mapping_sources: &[(String, String)]) -> Result<Self, StoreError> {
        Ok(SyncDigests {
            inputs: store.inputs_digest()?,
            mappings: cmat_engine::plan::mappings_digest(mapping_sources),
        })
    }
}

/// The same bills and rules as the last sync, nothing of unknown outcome, and the last sync
/// settled: Autotask need not be contacted.
pub fn nothing_new(store: &Store, digests: &SyncDigests) -> Result<bool, StoreError> {
    Ok(store.get_meta(LAST_SYNC_INPUTS_DIGEST)?.as_deref() == Some(digests.inputs.as_str())
        && store.get_meta(LAST_SYNC_MAPPINGS_DIGEST)?.as_deref() == Some(digests.mappings.as_str())
        && store.journal_unresolved()?.is_empty()
        && settled(store)?)
}

/// When the last sync ran (RFC 3339), if one did.
pub fn last_sync_at(store: &Store) -> Result<Option<String>, StoreError> {
    store.get_meta(LAST_SYNC_AT)
}

/// Whether the last sync's own re-plan was empty: a change it left (a renewal written before
/// the units it made readable) is planned again by the next sync, bills or not.
fn settled(store: &Store) -> Result<bool, StoreError> {
    let left: Vec<NotConverged> = store
        .get_meta(LAST_SYNC_NOT_CONVERGED)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    Ok(left.is_empty())
}

/// The bills as a sync sees them before contacting Autotask.
pub struct Bills {
    /// A bill pulled before Microsoft's NCE data landed is half a month: one warning each.
    pub incomplete: Vec<String>,
    /// Each subscription's digest: what changed since the last successful sync is the only
    /// contracts whose contract services and unit periods the pull reads
    /// (`autotask::pull::Focus`).
    pub subscriptions: BTreeMap<String, String>,
}

impl Bills {
    /// The store's bills, judged.
    pub fn of(store: &Store) -> Result<Bills, StoreError> {
        let lines = store.bill_lines()?;
        Ok(Bills {
            incomplete: cmat_engine::billing::nce_readiness(&lines),
            subscriptions: crate::store::subscription_digests(&lines),
        })
    }

    /// With `[sync] wait_for_nce_data`, nothing is written until the bills are whole.
    pub fn must_wait(&self, config: &SyncConfig) -> bool {
        !self.incomplete.is_empty() && config.wait_for_nce_data
    }
}

/// The plan again, from the snapshot apply re-read after writing: after a clean apply it is
/// empty unless a write did not settle what it was meant to (the engine's model of Autotask
/// and Autotask disagree). Said, never silently written again every day.
pub fn not_converged(loaded: &Loaded) -> Result<Vec<NotConverged>, PlanningError> {
    let plan = loaded.plan()?;
    Ok(plan
        .changes
        .iter()
        .map(|change| NotConverged {
            action: change.action().as_str().to_string(),
            entity: change.entity().as_str().to_string(),
            key: change.key.to_string(),
            reason: change.reason.clone(),
            rule: change.rule.to_string(),
        })
        .collect())
}

/// Records the run: what it applied (bills, rules, the subscriptions' digests), what did not
/// converge, its requests and time.
pub fn record_run(
    store: &mut Store,
    digests: &SyncDigests,
    subscriptions: &BTreeMap<String, String>,
    unsettled: &[NotConverged],
    requests_sent: u64,
) -> Result<(), StoreError> {
    store.set_meta(
        LAST_SYNC_NOT_CONVERGED,
        &serde_json::to_string(unsettled).unwrap_or_else(|_| "[]".into()),
    )?;
    store.set_meta(LAST_SYNC_INPUTS_DIGEST, &digests.inputs)?;
    store.set_meta(LAST_SYNC_MAPPINGS_DIGEST, &digests.mappings)?;
    store.replace_synced_subscriptions(subscriptions)?;
    store.set_meta(LAST_SYNC_REQUESTS, &requests_sent.to_string())?;
    store.set_meta(
        LAST_SYNC_AT,
        &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )?;
    Ok(())
}
