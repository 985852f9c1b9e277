use super::Exit;
use std::path::PathBuf;

use clap::Args;

use super::apply::{execute, Applied};
use super::{session, CommandError, CommandResult, Context};
use crate::autotask::pull::{Focus, PullReport};
use crate::autotask::AutotaskClient;
use crate::store::{Access, Store};
use crate::workflow::pull::Reading;
use crate::workflow::sync::{self as workflow, Bills, SyncDigests};
use crate::workflow::Loaded;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 nothing to do, 2 changes were written (or, with --dry-run, would be; or, under [apply] require_approval, were saved for approval), 1 error.\n\n\
After writing, sync plans again from what it re-read: a change still planned is a `not_converged` warning\n\
naming it (`cmat report` lists it), and the next sync plans it again even without a new bill.\n\n\
Run it daily from cron:\n  15 6 * * *  . /etc/cmat/acme.env && cmat -w /srv/acme sync --auto-approve >> /var/log/cmat-acme.log 2>&1\n\
or from a systemd timer (OnCalendar=*-*-* 06:15:00) whose service runs `cmat -w /srv/acme sync --auto-approve`\n\
with the CMAT_* variables in an EnvironmentFile readable only by its user."
)]
pub struct SyncArgs {
    /// Write without asking (required when not on a terminal, as under cron)
    #[arg(long)]
    pub auto_approve: bool,
    /// Pull and plan, but write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Read every Autotask record, not only those changed since the last pull (nor only the
    /// contract services and units of the contracts whose bills changed since the last sync)
    #[arg(long)]
    pub full_pull: bool,
    /// Import these Cloudmore billing reports (.xlsx or CSV) first, instead of pulling from the Cloudmore API
    #[arg(long = "import", value_name = "FILE")]
    pub imports: Vec<PathBuf>,
    /// Write the billing review (HTML) of the period the run touched to FILE, also when it fails
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Post a short summary (changes written, warnings, failure) to this Teams or Slack incoming
    /// webhook when a change was written or the sync failed; https only (http to loopback); a
    /// webhook that fails never fails the sync
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
}

/// The daily job: bring in new bills, and only when a new or restated bill has arrived or the
/// rules changed since the last successful sync, refresh the snapshot and apply. A day with
/// nothing new costs no Autotask request.
pub fn run(context: &Context, args: SyncArgs) -> CommandResult {
    if let Some(url) = &args.notify {
        super::report::check_webhook(url)?;
    }
    let after = super::report::AfterSync {
        report: args.report.as_deref(),
        notify: args.notify.as_deref(),
        started: chrono::Utc::now(),
    };
    let outcome = sync(context, &args);
    super::report::after_sync(context, &after, &outcome);
    outcome
}

/// The daily job's steps: new bills in, nothing to do when nothing changed, Autotask read,
/// the plan written (or saved for approval), its own convergence checked, the run recorded
/// ([`crate::workflow::sync`]).
fn sync(context: &Context, args: &SyncArgs) -> CommandResult {
    let mut store = session::open_store(context, Access::Write)?;
    let config = context.workspace.config()?;
    bring_in_bills(context, args, &mut store, &config)?;
    let (rules, sources) = session::load_rules(context)?;
    let digests = SyncDigests::of(&store, &sources)?;
    if nothing_new(&store, &digests)? {
        return Ok(Exit::Success);
    }
    let Some(subscriptions) = bills_ready(&store, &config)? else {
        return Ok(Exit::Success);
    };
    let client = session::connect_autotask(context)?;
    let focus = Focus::since_last_sync(&store, &digests.mappings, &subscriptions)?;
    let reading = Reading::of(&rules);
    let pull = super::pull_autotask::pull_into;
    let pulled = pull(context, &mut store, &client, &reading, args.full_pull, focus)?;
    // The rules whose digest was compared above are the ones applied, and recorded below.
    let mut loaded = session::load_with(&store, (rules, sources))?;
    if args.dry_run {
        let plan = loaded.plan()?;
        println!("{}", plan.to_text(&loaded.company_names(), context.stdout_is_terminal));
        return Ok(super::plan::exit_code(&plan, true));
    }
    let Some(applied) = apply(context, &config, args, &mut store, &mut loaded, &client, &pulled)?
    else {
        return Ok(Exit::Changes);
    };
    let unsettled = match applied {
        Applied::Written => workflow::not_converged(&loaded)?,
        Applied::NothingToDo => Vec::new(),
    };
    warn_not_converged(&unsettled);
    workflow::record_run(&mut store, &digests, &subscriptions, &unsettled, client.requests_sent())?;
    Ok(match applied {
        Applied::NothingToDo => Exit::Success,
        Applied::Written => Exit::Changes,
    })
}

/// Whether nothing is new since the last sync ([`workflow::nothing_new`]), said when so.
fn nothing_new(store: &Store, digests: &SyncDigests) -> Result<bool, CommandError> {
    if !workflow::nothing_new(store, digests)? {
        return Ok(false);
    }
    let when = workflow::last_sync_at(store)?.unwrap_or_else(|| "an earlier run".into());
    println!(
        "No new or restated bill since the last sync ({when}) and no change to the rules; \
         nothing to do (Autotask was not contacted)."
    );
    Ok(true)
}

/// Writes the plan, or under `[apply] require_approval` saves it for approval (`None`: saved,
/// nothing else to do this run). What the pull has just read is not read again before
/// writing (`workflow::apply::prepare`).
fn apply(
    context: &Context,
    config: &crate::workspace::Config,
    args: &SyncArgs,
    store: &mut Store,
    loaded: &mut Loaded,
    client: &AutotaskClient,
    pulled: &PullReport,
) -> Result<Option<Applied>, CommandError> {
    if config.apply.require_approval {
        return match save_plan_for_approval(context, loaded)? {
            Some(_) => Ok(None),
            None => Ok(Some(Applied::NothingToDo)),
        };
    }
    let pulled = Some(&pulled.children_read);
    execute(context, store, loaded, client, None, pulled, args.auto_approve).map(Some)
}

/// `--import` files, else the Cloudmore pull when the workspace is connected to Cloudmore.
fn bring_in_bills(
    context: &Context,
    args: &SyncArgs,
    store: &mut Store,
    config: &crate::workspace::Config,
) -> Result<(), CommandError> {
    let options = super::import::options(context);
    for file in &args.imports {
        let name = file.display().to_string();
        let summary = crate::import::import_file_with(store, file, &name, &options)?;
        print!("{}", super::import::render_summary(&name, &summary));
    }
    if args.imports.is_empty() && config.cloudmore.base_url.is_some() {
        super::pull_cloudmore::pull_into(context, store, config)?;
    }
    Ok(())
}

/// A bill pulled before Microsoft's NCE data landed is half a month: said before Autotask is
/// contacted, and with `[sync] wait_for_nce_data` nothing is written until it is whole
/// (`None`). Otherwise the subscriptions' digests ([`Bills::subscriptions`]).
fn bills_ready(
    store: &Store,
    config: &crate::workspace::Config,
) -> Result<Option<std::collections::BTreeMap<String, String>>, CommandError> {
    let bills = Bills::of(store)?;
    for warning in &bills.incomplete {
        eprintln!("warning: {warning}");
    }
    if bills.must_wait(&config.sync) {
        println!(
            "Waiting for Cloudmore's NCE data ([sync] wait_for_nce_data = true): nothing was sent to Autotask; the next sync tries again."
        );
        return Ok(None);
    }
    Ok(Some(bills.subscriptions))
}

/// Four eyes: a plan with changes is saved for approval and nothing is written (the exit
/// code to end with); an empty plan goes on as a run that wrote nothing (`None`).
fn save_plan_for_approval(
    context: &Context,
    loaded: &Loaded,
) -> Result<Option<Exit>, CommandError> {
    let plan = loaded.plan()?;
    println!("{}", plan.to_text(&loaded.company_names(), context.stdout_is_terminal));
    if !plan.has_changes() {
        return Ok(None);
    }
    super::approve::save_for_approval(context, "sync", plan)?;
    Ok(Some(Exit::Changes))
}

/// Says what did not settle: the next sync would send it again.
fn warn_not_converged(unsettled: &[crate::store::NotConverged]) {
    for change in unsettled {
        eprintln!(
            "warning: not_converged: {} {} {} is still planned after this sync wrote it: {} (rule at {}); the next sync would send it again, so look at it before then (`cmat plan`, `cmat explain`)",
            change.action, change.entity, change.key, change.reason, change.rule
        );
    }
}
