use clap::Args;

use super::{CommandResult, Context};

#[derive(Debug, Args)]
pub struct InitArgs {}

pub fn run(_context: &Context, _args: InitArgs) -> CommandResult {
    Err("cmat init is not built yet".into())
}
