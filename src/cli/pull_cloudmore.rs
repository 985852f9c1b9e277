use super::{CommandResult, Context};

pub fn run(_context: &Context) -> CommandResult {
    Err("cmat pull_cloudmore is not built yet".into())
}
