use super::{CommandResult, Context};

pub fn run(_context: &Context) -> CommandResult {
    Err("cmat status is not built yet".into())
}
