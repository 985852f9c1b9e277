use clap::Args;

use super::{CommandResult, Context};

#[derive(Debug, Args)]
pub struct DemoArgs {}

pub fn run(_context: &Context, _args: DemoArgs) -> CommandResult {
    Err("cmat demo is not built yet".into())
}
