use super::Exit;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{session, CommandResult, Context};
use crate::store::Access;
use cmat_engine::plan::Plan;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub output: PlanOutput,
}

/// How a plan is saved and shown: `plan` and `revert` take the same options.
#[derive(Debug, Args)]
pub struct PlanOutput {
    /// Also save the plan as JSON, for `cmat apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How to show the plan on standard output
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Exit 0 when there is nothing to change, 2 when there is, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For people: grouped by company and contract, totals at the end
    Text,
    /// For scripts and `cmat apply` (format_version 1)
    Json,
    /// One row per changed field
    Csv,
}

pub fn run(context: &Context, args: PlanArgs) -> CommandResult {
    let store = session::open_store(context, Access::Read)?;
    let loaded = session::load(context, &store)?;
    let mut plan = loaded.plan()?;
    plan.created_by = super::approve::author();
    let exit = args.output.save_and_show(context, &plan, &loaded.company_names())?;
    if loaded.snapshot.refreshed_at.is_none() {
        eprintln!("note: the Autotask snapshot is empty: run `cmat pull autotask` so the plan sees what exists");
    }
    Ok(exit)
}

impl PlanOutput {
    /// Saves the plan when `--out` asks (never half-written), prints it in the chosen format,
    /// and gives the exit code `--detailed-exitcode` asks for.
    pub fn save_and_show(
        &self,
        context: &Context,
        plan: &Plan,
        company_names: &std::collections::BTreeMap<i64, String>,
    ) -> Result<Exit, super::CommandError> {
        if let Some(path) = &self.out {
            write_atomically(path, plan.to_json().as_bytes())?;
        }
        print!("{}", render(plan, self.format, company_names, context.stdout_is_terminal));
        Ok(exit_code(plan, self.detailed_exitcode))
    }
}

pub fn render(
    plan: &Plan,
    format: PlanFormat,
    company_names: &std::collections::BTreeMap<i64, String>,
    colour: bool,
) -> String {
    match format {
        PlanFormat::Text => plan.to_text(company_names, colour),
        PlanFormat::Json => plan.to_json(),
        PlanFormat::Csv => plan.to_csv(),
    }
}

pub fn exit_code(plan: &Plan, detailed: bool) -> Exit {
    if detailed && plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Success
    }
}

/// [`crate::workspace::write_atomically`], its failure worded for the user: never a
/// half-written plan.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), super::CommandError> {
    crate::workspace::write_atomically(path, bytes)
        .map_err(|err| format!("{}: cannot write: {err}", path.display()))?;
    Ok(())
}
