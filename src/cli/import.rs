use clap::Args;

use super::{CommandResult, Context};

#[derive(Debug, Args)]
pub struct ImportArgs {}

pub fn run(_context: &Context, _args: ImportArgs) -> CommandResult {
    Err("cmat import is not built yet".into())
}
