//! `cmat explain SUBSCRIPTION_ID`: which rules matched a subscription's bill lines, in order of
//! precedence, and what each produced. Reads the imported bills and the rules only: no
//! Autotask request, no write.

use std::io::Write;

use clap::{Args, ValueEnum};

use super::session;
use super::{CommandResult, Context, Exit};
use crate::store::Access;

#[derive(Debug, Args)]
#[command(
    after_help = "Shows the `for` rules that matched the subscription's lines, most specific first, each \
setting marked used or overridden (and by which rule), the defaults used where no rule set a thing, and \
what the rules produce: company, contract, each product's Service, units and price, each charge. Every \
rule is named by FILE:LINE.\n\nExit codes: 0 explained, 1 the subscription is in no imported bill, or an error."
)]
pub struct ExplainArgs {
    /// The Subscription ID as the bill carries it
    #[arg(value_name = "SUBSCRIPTION_ID")]
    pub subscription: String,
    #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
    pub format: ExplainFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExplainFormat {
    Text,
    Json,
}

pub fn run(context: &Context, args: ExplainArgs) -> CommandResult {
    let (rules, _) = session::load_rules(context)?;
    let store = session::open_store(context, Access::Read)?;
    let lines = store.bill_lines()?;
    let Some(explanation) = cmat_engine::explain::explain(&rules, &lines, args.subscription.trim())
    else {
        return Err(format!(
            "subscription {:?} is in no imported bill (hint: `cmat status` lists what is imported; copy the Subscription ID from the bill)",
            args.subscription
        )
        .into());
    };
    let text = match args.format {
        ExplainFormat::Text => explanation.to_text(),
        ExplainFormat::Json => format!("{}\n", serde_json::to_string_pretty(&explanation)?),
    };
    // `cmat explain … | head` closes the pipe early: that is not an error.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(Exit::Success),
    }
}
