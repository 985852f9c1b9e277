//! `cmat revert RUN_ID`: the plan that undoes what one apply run wrote (issue 29), shown or
//! saved like any plan; `cmat apply FILE` writes it.

use clap::Args;

use super::{session, CommandResult, Context};
use crate::store::Access;
use crate::workflow::revert::run_writes;

#[derive(Debug, Args)]
#[command(
    after_help = "Computed from the journal and audit trail of that run and the Autotask snapshot (run \
`cmat pull autotask` first for a fresh one); writes nothing. Save it with --out and write it with \
`cmat apply FILE`: it is stale-checked, journaled and audited like any plan, and its audit rows carry \
the rule `revert:RUN_ID`.\n\n\
What it does: each contract service the run adjusted gets a compensating adjustment on the first \
free day from the run's own (Autotask deletes no adjustment and keeps one per service and day), back \
to the units, price and cost before the run; the plan says on which days the run's units stayed in \
force, which an invoice of those days bills. Charges the run created are deleted while unbilled, \
offset by a charge of the opposite quantity once billed. Contracts it created are ended (Autotask \
deletes none), contracts it updated get their old values back. A record a later run wrote to is left \
and named with that run (revert that one first). A revert can itself be reverted.\n\n\
After an applied revert, `cmat plan` wants the bills' changes again: the bills did not change. \
Import a corrected bill or change the rules first, or the next apply writes the run again.\n\n\
Exit codes: 0 the plan was made (with --detailed-exitcode: nothing to change), 2 with \
--detailed-exitcode when there are changes, 1 on error (an unknown run id among them)."
)]
pub struct RevertArgs {
    /// The run to undo, as `cmat audit` lists it (the run_id column)
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    #[command(flatten)]
    pub output: super::plan::PlanOutput,
}

pub fn run(context: &Context, args: RevertArgs) -> CommandResult {
    let store = session::open_store(context, Access::Read)?;
    let loaded = session::load(context, &store)?;
    if loaded.snapshot.refreshed_at.is_none() {
        return Err("no Autotask snapshot yet: run `cmat pull autotask` first (a revert is planned against what Autotask holds)".into());
    }
    let writes = run_writes(&store, &loaded.snapshot)?;
    let mut plan = cmat_engine::revert::revert_plan(
        &args.run_id,
        &writes,
        &loaded.snapshot,
        loaded.digests(),
        chrono::Utc::now(),
    )?;
    plan.created_by = super::approve::author();
    args.output.save_and_show(context, &plan, &loaded.company_names())
}
