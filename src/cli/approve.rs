//! `cmat approve PLAN_FILE --by NAME`: a person's approval, written into the saved plan and
//! bound to its digest (issue 29's four-eyes rule; `[apply] require_approval`).

use std::path::PathBuf;

use clap::Args;

use super::{CommandError, CommandResult, Context, Exit};
use crate::workflow::apply::{read_plan, same_person};
use cmat_engine::plan::ApprovalStatus;

#[derive(Debug, Args)]
#[command(
    after_help = "The approval (name, time, the plan's digest) is written into the plan file. Any change to \
the file afterwards voids it. With `[apply] require_approval = true` in cmat.toml, `apply` and `sync` write \
only an approved plan; with `require_distinct_approver = true` the approver must not be the plan's author \
(CMAT_USER when the plan was made). Exit codes: 0 approved, 1 refused or error (the file is left as it was)."
)]
pub struct ApproveArgs {
    /// A plan saved by `cmat plan --out FILE` (or by `sync` under require_approval)
    #[arg(value_name = "PLAN_FILE")]
    pub plan_file: PathBuf,
    /// Who approves it, as the audit trail and the review will name them
    #[arg(long, value_name = "NAME")]
    pub by: String,
}

pub fn run(context: &Context, args: ApproveArgs) -> CommandResult {
    let by = args.by.trim();
    if by.is_empty() {
        return Err("--by needs the approver's name".into());
    }
    let config = context.workspace.config()?;
    let saved = read_plan(&args.plan_file)?;
    let path = args.plan_file.display().to_string();
    let mut plan = saved.plan;
    if config.apply.require_distinct_approver {
        match plan.created_by.as_deref() {
            None => {
                return Err(format!(
                    "{path}: the plan does not name its author, and [apply] require_distinct_approver = true; the plan was not approved\nhint: make the plan with CMAT_USER set to its author's name"
                )
                .into())
            }
            Some(author) if same_person(Some(author), by) => {
                return Err(format!(
                    "{path}: {by} made this plan and [apply] require_distinct_approver = true: someone else must approve it; the plan was not approved"
                )
                .into())
            }
            Some(_) => {}
        }
    }
    if let ApprovalStatus::Approved(earlier) = &saved.approval {
        eprintln!("note: replacing the approval of {} at {}", earlier.by, earlier.at.to_rfc3339());
    }
    plan.approve(by, chrono::Utc::now());
    super::plan::write_atomically(&args.plan_file, plan.to_json().as_bytes())?;
    let digest = plan.digest();
    println!(
        "{path}: approved by {by} ({} change(s), plan {digest}).\nApply it with: cmat apply {path}",
        plan.changes.len()
    );
    Ok(Exit::Success)
}

/// The plan's author: `CMAT_USER`, when set (no other source, so that a plan's bytes do not
/// depend on the login that made it unless asked).
pub fn author() -> Option<String> {
    std::env::var("CMAT_USER").ok().map(|name| name.trim().to_string()).filter(|n| !n.is_empty())
}

/// Four eyes under `[apply] require_approval`: a plan a command would have written (`sync`,
/// `adopt --apply`) is saved as `.cmat/plans/<command>-<UTC time>.json` with its author, and
/// the person is told how to have it approved and apply it. Nothing is written to Autotask.
pub fn save_for_approval(
    context: &Context,
    command: &str,
    mut plan: cmat_engine::plan::Plan,
) -> Result<(), CommandError> {
    plan.created_by = author();
    let folder = context.workspace.state_dir().join("plans");
    std::fs::create_dir_all(&folder)
        .map_err(|err| format!("{}: cannot create: {err}", folder.display()))?;
    let path = folder.join(format!("{command}-{}.json", plan.created_at.format("%Y%m%dT%H%M%SZ")));
    super::plan::write_atomically(&path, plan.to_json().as_bytes())?;
    println!(
        "[apply] require_approval = true: nothing was written. The plan is saved in {path}.\n\
         Have it approved, then apply it:\n  cmat approve {path} --by NAME\n  cmat apply {path}",
        path = path.display()
    );
    Ok(())
}
