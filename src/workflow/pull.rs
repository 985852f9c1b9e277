//! The pull workflows: what a pull of Autotask reads for the bills and rules at hand, and a
//! pull of Cloudmore's report into the store. `cli::pull_autotask`, `cli::pull_cloudmore`,
//! `sync` and `demo` run them and print what they did.

use std::path::Path;

use crate::autotask::pull::{Focus, PullReport};
use crate::autotask::read::DEFAULT_SUBSCRIPTION_UDF;
use crate::autotask::{pull_into_store, AutotaskClient, PullError, PullOptions, PullProgress};
use crate::cloudmore::{ClientOptions, CloudmoreClient, CloudmoreError, Period, PullOutcome};
use crate::store::Store;
use crate::workspace::{CloudmoreConfig, CloudmoreCredentials};
use cmat_engine::rules::RuleSet;
use cmat_engine::snapshot::UnitsWindow;

/// What the rules decide about a pull: the UDF contracts are found by, and how far after the
/// bills' dates their writes reach ([`RuleSet::units_reach_months`]; None reads every later
/// unit period).
pub struct Reading {
    /// The Contracts UDF holding the subscription id.
    pub subscription_udf: String,
    /// Months after a bill's date the rules may write units; None: unknown.
    pub reach_months: Option<u32>,
}

impl Reading {
    /// What these rules need read.
    pub fn of(rules: &RuleSet) -> Reading {
        Reading {
            subscription_udf: rules.settings.subscription_udf.value.clone(),
            reach_months: Some(rules.units_reach_months()),
        }
    }

    /// Without valid rules: the default rules' UDF name, and every unit period from the bills
    /// on (no reach is known). Pulling needs no rules.
    pub fn without_rules() -> Reading {
        Reading { subscription_udf: DEFAULT_SUBSCRIPTION_UDF.to_string(), reach_months: None }
    }
}

/// Refreshes the stored snapshot: by changes since the last pull unless `full`; contract
/// services and unit periods of the `focus`'s subscriptions only, when given. Only the unit
/// periods around the current bills' Billing Dates and as far after them as the rules date a
/// write (the ones the engine reads).
pub fn pull_autotask(
    store: &mut Store,
    client: &AutotaskClient,
    reading: &Reading,
    full: bool,
    focus: Option<Focus>,
    progress: &(dyn Fn(PullProgress) + Sync),
) -> Result<PullReport, PullError> {
    let billing_dates = store.bills()?.into_iter().map(|b| b.key.billing_date);
    // Unknown: the longest term the language accepts (`term_months` up to 1200).
    let reach = reading.reach_months.unwrap_or(1200);
    let options = PullOptions {
        subscription_udf: reading.subscription_udf.clone(),
        units_window: UnitsWindow::around(billing_dates, reach),
        full,
        focus,
        ..PullOptions::default()
    };
    pull_into_store(client, store, &options, progress)
}

/// Pulls Cloudmore's report of `period` into the store as one import, named after the months
/// it covers (the name is returned with the outcome). Cloudmore's answer is kept at `keep` as
/// it came, for a bug report when cmat cannot read it.
pub fn pull_cloudmore(
    store: &mut Store,
    config: &CloudmoreConfig,
    credentials: CloudmoreCredentials,
    period: Period,
    keep: &Path,
) -> Result<(String, PullOutcome), CloudmoreError> {
    let mut client = CloudmoreClient::new(config, credentials, ClientOptions::default())?;
    let source_name =
        format!("cloudmore {}..{}", period.start.format("%Y-%m"), period.end.format("%Y-%m"));
    let outcome = client.pull_into(store, period, &source_name, Some(keep))?;
    Ok((source_name, outcome))
}
