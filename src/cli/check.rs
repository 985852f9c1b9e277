use super::{CommandResult, Context};

pub fn run(_context: &Context) -> CommandResult {
    Err("cmat check is not built yet".into())
}
