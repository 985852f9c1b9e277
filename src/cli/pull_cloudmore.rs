use super::Exit;

use chrono::{Datelike, Utc};

use super::{CommandError, CommandResult, Context};
use crate::cloudmore::{ClientOptions, CloudmoreClient};
use crate::store::{Access, Store};
use crate::workspace::{CloudmoreCredentials, Config};

/// Loads the billing reports of the previous and the current month (UTC) from the Cloudmore
/// API, as one import. The previous month is included because Cloudmore restates a bill after
/// its month has ended (usage corrections), and a restatement must replace the stored bill.
pub fn run(context: &Context) -> CommandResult {
    let config = context.workspace.config()?;
    let mut store = Store::open(&context.workspace.state_db(), Access::Write)?;
    pull_into(context, &mut store, &config)?;
    Ok(Exit::Success)
}

/// Shared by `pull cloudmore` and `sync`.
pub fn pull_into(
    _context: &Context,
    store: &mut Store,
    config: &Config,
) -> Result<(), CommandError> {
    let credentials = CloudmoreCredentials::from_env()?;
    let mut client =
        CloudmoreClient::new(&config.cloudmore, credentials, ClientOptions::default())?;
    let today = Utc::now().date_naive();
    let current = (today.year(), today.month());
    let previous =
        if today.month() == 1 { (today.year() - 1, 12) } else { (today.year(), today.month() - 1) };
    let source_name =
        format!("cloudmore {:04}-{:02}..{:04}-{:02}", previous.0, previous.1, current.0, current.1);
    let summary = client.pull_into(store, &[previous, current], &source_name)?;
    print!("{}", super::import::render_summary(&source_name, &summary));
    Ok(())
}
