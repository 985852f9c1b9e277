use clap::Args;

use super::{CommandResult, Context};

#[derive(Debug, Args)]
pub struct AuditArgs {}

pub fn run(_context: &Context, _args: AuditArgs) -> CommandResult {
    Err("cmat audit is not built yet".into())
}
