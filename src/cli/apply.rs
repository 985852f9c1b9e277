use clap::Args;

use super::{CommandResult, Context};

#[derive(Debug, Args)]
pub struct ApplyArgs {}

pub fn run(_context: &Context, _args: ApplyArgs) -> CommandResult {
    Err("cmat apply is not built yet".into())
}
