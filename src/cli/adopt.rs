//! `cmat adopt`: the proposal file and its summary; `cmat adopt --apply FILE`: the accepted
//! links, shown and written as any plan is (`cmat apply`'s confirmation, journal and audit).
//! The steps are [`crate::workflow::adopt`].

use std::path::{Path, PathBuf};

use clap::Args;

use super::apply::{self as apply_cli};
use super::{session, CommandError, CommandResult, Context, Exit};
use crate::autotask::AutotaskClient;
use crate::store::{Access, Store};
use crate::workflow::adopt as workflow;
use crate::workflow::apply::SavedPlan;
use cmat_engine::adopt::{AcceptedRow, Proposal, Verdict};

#[derive(Debug, Args)]
#[command(
    after_help = "For a tenant that already bills its subscriptions from contracts cmat did not create (no \
\"Subscription ID\" set). Run after `cmat import` and `cmat pull autotask`; reads no Autotask itself.\n\n\
The file has one row per subscription and candidate contract, best first: a candidate bills at least one \
of the subscription's products (a contract service on the Service whose sku is the Item Code, or the \
Service a rule names); a name alone is never a candidate. `strong`: every product of the current bill is on \
the contract with the bill's units; `partial`: some are, or the units differ. A contract billing the \
products of several subscriptions (one contract per customer) is a `shared_contract` row and is never \
proposed.\n\nPut yes in the accept column of the rows to link, then `cmat adopt --apply FILE`: the contracts \
are re-read from Autotask, every accepted row is checked (one contract per subscription and one subscription \
per contract, the organization's company, no \"Subscription ID\" set meanwhile) and the \"Subscription ID\" \
updates are written as a plan, journaled and audited with the row that asked for each (`adopt.csv:7`). A \
refused row names its line and nothing is written; rows already linked are skipped.\n\n\
Exit codes: 0 success (or nothing to write), 1 error or a refused file."
)]
pub struct AdoptArgs {
    /// Where to write the proposal (CSV; default: adopt.csv in the workspace)
    #[arg(long, value_name = "FILE", conflicts_with = "apply")]
    pub out: Option<PathBuf>,
    /// Link the rows accepted in a reviewed proposal file
    #[arg(long, value_name = "FILE")]
    pub apply: Option<PathBuf>,
    /// With --apply: write without asking (required when standard input is not a terminal)
    #[arg(long, requires = "apply")]
    pub auto_approve: bool,
}

pub fn run(context: &Context, args: AdoptArgs) -> CommandResult {
    match &args.apply {
        Some(file) => apply(context, file, args.auto_approve),
        None => {
            let out = args.out.unwrap_or_else(|| context.workspace.root.join("adopt.csv"));
            propose(context, &out)
        }
    }
}

fn propose(context: &Context, out: &Path) -> CommandResult {
    let store = session::open_store(context, Access::Read)?;
    let loaded = session::load(context, &store)?;
    let proposal = workflow::propose(&loaded)?;
    // A reviewed file holds a person's decisions, and another file is not ours to replace:
    // only an earlier proposal with nothing accepted is overwritten.
    if out.exists() {
        let refusal = match workflow::read_file(out) {
            Ok(rows) if rows.is_empty() => None,
            Ok(rows) => Some(format!("holds {} accepted row(s)", rows.len())),
            Err(_) => Some("exists and is not a `cmat adopt` proposal".to_string()),
        };
        if let Some(why) = refusal {
            return Err(format!(
                "{}: {why}; not overwritten (hint: apply a reviewed file with `cmat adopt --apply FILE`, or write the new proposal elsewhere with --out)",
                out.display()
            )
            .into());
        }
    }
    super::plan::write_atomically(out, cmat_engine::adopt::to_csv(&proposal).as_bytes())?;
    print!("{}", summary(&proposal, out));
    Ok(Exit::Success)
}

/// What the file holds, in a few lines.
pub fn summary(proposal: &Proposal, out: &Path) -> String {
    let mut text = format!(
        "{} subscription(s) on the bills without a contract carrying their \"Subscription ID\":\n  {} with one strong candidate\n  {} ambiguous (several candidates, or none strong: a person decides)\n  {} with none (the next plan creates their contracts)\n",
        proposal.subscriptions.len(),
        proposal.count(Verdict::OneStrong),
        proposal.count(Verdict::Ambiguous),
        proposal.count(Verdict::NoCandidate),
    );
    if !proposal.shared.is_empty() {
        text.push_str(&format!(
            "{} contract(s) bill several subscriptions' products; nothing is proposed for them:\n",
            proposal.shared.len()
        ));
        for shared in &proposal.shared {
            text.push_str(&format!(
                "  #{} {} ({}): {}\n",
                shared.contract_id,
                shared.contract_name,
                shared.organization_name,
                shared.covers.join(", ")
            ));
        }
    }
    text.push_str(&format!(
        "Written to {}. Put yes in the accept column of the rows to link, then run `cmat adopt --apply {}`.\n",
        out.display(),
        out.display()
    ));
    text
}

fn apply(context: &Context, file: &Path, auto_approve: bool) -> CommandResult {
    // A malformed file is refused before anything is opened or contacted.
    let rows = workflow::read_file(file)?;
    if rows.is_empty() {
        println!("{}: no row is accepted; nothing to write.", file.display());
        return Ok(Exit::Success);
    }
    let mut store = session::open_store(context, Access::Write)?;
    let mut loaded = session::load(context, &store)?;
    let client = session::connect_autotask(context)?;
    apply_rows(context, &mut store, &mut loaded, &client, file, &rows, auto_approve)?;
    Ok(Exit::Success)
}

/// The accepted rows planned, shown and written as any plan (`cmat apply`'s confirmation,
/// journal and audit); rows linked already are said and skipped. Shared with `cmat demo --adopt`.
pub fn apply_rows(
    context: &Context,
    store: &mut Store,
    loaded: &mut session::Loaded,
    client: &AutotaskClient,
    file: &Path,
    rows: &[AcceptedRow],
    auto_approve: bool,
) -> Result<(), CommandError> {
    let connection = crate::autotask::ApplyConnection::new(
        client,
        loaded.rules.settings.subscription_udf.value.clone(),
    );
    let name = file.display().to_string();
    let adoption = workflow::plan(store, loaded, &connection, &name, rows)?;
    for link in &adoption.already_linked {
        println!(
            "{name}:{}: contract #{} already carries subscription {}; nothing to write",
            link.line, link.contract_id, link.subscription_id
        );
    }
    if !adoption.plan.has_changes() {
        println!("Nothing to write: every accepted row is linked already.");
        return Ok(());
    }
    if context.workspace.config()?.apply.require_approval {
        // Four eyes: the accepted links are a plan like any other, saved for a second person.
        super::approve::save_for_approval(context, "adopt", adoption.plan)?;
        return Ok(());
    }
    let saved = SavedPlan {
        plan: adoption.plan,
        path: file.to_path_buf(),
        approval: cmat_engine::plan::ApprovalStatus::Unapproved,
    };
    apply_cli::execute(context, store, loaded, client, Some(saved), None, auto_approve)?;
    Ok(())
}
