use super::{CommandResult, Context};

pub fn run(_context: &Context) -> CommandResult {
    Err("cmat pull_autotask is not built yet".into())
}
