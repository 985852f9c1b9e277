use clap::Args;

use super::{CommandResult, Context};

#[derive(Debug, Args)]
pub struct FmtArgs {}

pub fn run(_context: &Context, _args: FmtArgs) -> CommandResult {
    Err("cmat fmt is not built yet".into())
}
