use clap::Args;

use super::{CommandResult, Context};

#[derive(Debug, Args)]
pub struct SyncArgs {}

pub fn run(_context: &Context, _args: SyncArgs) -> CommandResult {
    Err("cmat sync is not built yet".into())
}
