use clap::Args;

use super::{CommandResult, Context};

#[derive(Debug, Args)]
pub struct PlanArgs {}

pub fn run(_context: &Context, _args: PlanArgs) -> CommandResult {
    Err("cmat plan is not built yet".into())
}
