//! `cmat doctor`: a read-only preflight against the tenant (see `autotask::doctor`).

use super::Exit;

use super::monitor::OutputFormat;
use super::{session, CommandResult, Context};
use crate::autotask::doctor::{evaluate, gather, render, Check, LastSync, Outcome};
use crate::store::meta_keys::LAST_SYNC_REQUESTS;
use crate::store::{Access, Store};
use crate::workspace::AutotaskCredentials;

pub fn run(context: &Context, format: OutputFormat) -> CommandResult {
    let report = |checks: &[Check]| report(checks, format);
    let (rules, _) = session::load_rules(context)?;
    let credentials = match AutotaskCredentials::from_env() {
        Ok(credentials) => credentials,
        Err(err) => return Ok(report(&[connection_problem(err.to_string())])),
    };
    let username = credentials.username.clone();
    let client = match session::connect_autotask_with(context, credentials) {
        Ok(client) => client,
        Err(err) => return Ok(report(&[connection_problem(err.to_string())])),
    };
    let facts = match gather(&client, &rules, &username) {
        Ok(facts) => facts,
        Err(err) => return Ok(report(&[connection_problem(err.to_string())])),
    };
    Ok(report(&evaluate(&rules, &facts, last_sync(context))))
}

fn connection_problem(message: String) -> Check {
    Check {
        name: "credentials and zone".into(),
        outcome: Outcome::Problem {
            message,
            fix: "set CMAT_AUTOTASK_USERNAME, CMAT_AUTOTASK_SECRET and CMAT_AUTOTASK_INTEGRATION_CODE to the API user's (Admin > Resources > API user), and check `[autotask] base_url` in cmat.toml or remove it to look the zone up".into(),
        },
    }
}

fn report(checks: &[Check], format: OutputFormat) -> Exit {
    match format {
        OutputFormat::Text => print!("{}", render(checks)),
        OutputFormat::Json => print!("{}", super::monitor::doctor_json(checks)),
    }
    if checks.iter().any(Check::is_problem) {
        Exit::Problem
    } else {
        Exit::Success
    }
}

/// The requests of the last sync, when a sync has recorded them.
fn last_sync(context: &Context) -> Option<LastSync> {
    let path = context.workspace.state_db();
    let store = path.exists().then(|| Store::open(&path, Access::Read).ok()).flatten()?;
    let requests = store.get_meta(LAST_SYNC_REQUESTS).ok()??.parse().ok()?;
    Some(LastSync { requests })
}
