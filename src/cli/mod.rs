//! The `cmat` command line: argument parsing and dispatch only. Every command lives in its
//! own file and calls into the library; nothing here decides billing.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::workspace::Workspace;

mod adopt;
mod apply;
mod approve;
mod audit;
mod check;
mod completions;
mod demo;
mod demo_adopt;
mod doctor;
mod explain;
mod fmt;
mod import;
mod init;
mod monitor;
mod plan;
mod pull_autotask;
mod pull_cloudmore;
mod report;
mod revert;
mod session;
mod status;
mod sync;

/// Any error a command can end with; rendered once, with its chain of causes.
pub type CommandError = Box<dyn std::error::Error + Send + Sync + 'static>;
pub type CommandResult = Result<Exit, CommandError>;

/// How a command ends, as SPEC.md numbers it; turned into the process's exit code once, here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (or nothing to do).
    Success,
    /// 1: an error, a refused input, or a problem found (`check`, `fmt --check`, `doctor`).
    Problem,
    /// 2: `plan --detailed-exitcode` and `sync`: there are changes (written, or to write).
    Changes,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(match exit {
            Exit::Success => 0,
            Exit::Problem => 1,
            Exit::Changes => 2,
        })
    }
}

/// `cmat --version`: the package version and the commit it was built from (`build.rs`).
pub const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CMAT_GIT_COMMIT"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "cmat",
    version = VERSION,
    about = "Reconciles Cloudmore billing into Datto Autotask PSA",
    long_about = "Reconciles Cloudmore billing into Datto Autotask PSA: one Recurring Service contract per \
subscription, contract services whose units follow the licence counts, one consolidated charge per \
Azure billing period. Plans first, writes only the differences, records every write.\n\n\
Credentials come from the environment only: CMAT_AUTOTASK_USERNAME, CMAT_AUTOTASK_SECRET, \
CMAT_AUTOTASK_INTEGRATION_CODE, CMAT_CLOUDMORE_USERNAME, CMAT_CLOUDMORE_PASSWORD, CMAT_CLOUDMORE_CLIENT_SECRET."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The workspace folder (cmat.toml, mappings/, .cmat/state.db)
    #[arg(short = 'w', long = "workspace", global = true, default_value = ".", value_name = "DIR")]
    pub workspace: PathBuf,
    /// One line per Autotask or Cloudmore request on standard error (method, path, status,
    /// milliseconds, retry reason), never a secret; CMAT_LOG=debug gives more
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a workspace with the default rules
    Init(init::InitArgs),
    /// Parse and check every mapping file
    Check,
    /// Rewrite mapping files in canonical form
    Fmt(fmt::FmtArgs),
    /// Load a Cloudmore General Billing Report (.xlsx or CSV) into the state database
    Import(import::ImportArgs),
    /// Refresh data from Autotask or Cloudmore
    Pull(PullArgs),
    /// Show what is loaded in the state database
    Status(FormatArgs),
    /// Show what apply would write, and why (a dry run)
    Plan(plan::PlanArgs),
    /// Write a plan's changes to Autotask
    Apply(apply::ApplyArgs),
    /// The daily job: pull, plan, and apply when a new bill has arrived or the rules changed
    Sync(sync::SyncArgs),
    /// Export the audit trail as CSV, or check its hash chain (--verify)
    Audit(audit::AuditArgs),
    /// Record a person's approval in a saved plan (name, time, the plan's digest)
    Approve(approve::ApproveArgs),
    /// The billing review of a period: exceptions first, margins, changes, Azure trends, and
    /// the bills' totals beside what Autotask holds (HTML page, CSV or JSON)
    Report(report::ReportArgs),
    /// Check the Autotask tenant before the first apply (read-only): credentials, the
    /// "Subscription ID" field, billing codes, SLA, picklist values, cost visibility, budget,
    /// incomplete records, required fields and UDFs, lines of business
    #[command(
        after_help = "Sends only reads. Exit codes: 0 cmat can run against this tenant, 1 a problem was found (each listed with how to fix it)."
    )]
    Doctor(FormatArgs),
    /// Which rules matched a subscription's bill lines, in order, and what each produced
    Explain(explain::ExplainArgs),
    /// Run the whole flow on bundled fixtures against a local Autotask simulator
    Demo(demo::DemoArgs),
    /// Propose links from subscriptions to the existing contracts that already bill them (a CSV
    /// to review), or write the accepted ones with --apply
    Adopt(adopt::AdoptArgs),
    /// Print shell completions (bash, zsh, fish, powershell) to standard output
    Completions(completions::CompletionsArgs),
    /// A plan that undoes what one apply run wrote, as far as Autotask allows (apply it with
    /// `cmat apply FILE`)
    Revert(revert::RevertArgs),
}

/// `--format text|json` of `status` and `doctor`.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Text for people, or one JSON object for monitoring
    #[arg(long, value_enum, default_value_t = monitor::OutputFormat::Text)]
    pub format: monitor::OutputFormat,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[arg(value_enum)]
    pub source: PullSource,
    /// Read every Autotask record, not only those changed since the last pull (`autotask` only;
    /// a pull reads everything by itself every 7 days, and contract services and units on
    /// every run: only `sync` narrows those to the contracts whose bills changed)
    #[arg(long)]
    pub full: bool,
    /// Request Cloudmore's bills from this month on (`cloudmore` only; default: the current
    /// month, so that invoiced periods are not re-priced from today's price list)
    #[arg(long, value_name = "YYYY-MM")]
    pub since: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PullSource {
    /// Refresh the Autotask snapshot (companies, contracts, services, units, charges, billing codes)
    Autotask,
    /// Load the billing reports from the Cloudmore API (the reseller's asynchronous report,
    /// waited for up to [cloudmore] report_wait_seconds; the answer kept in .cmat/cloudmore/)
    Cloudmore,
}

/// What every command gets besides its own arguments.
pub struct Context {
    pub workspace: Workspace,
    /// Standard output is a terminal: colour and progress bars are allowed.
    pub stdout_is_terminal: bool,
    pub stdin_is_terminal: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::install(cli.global.verbose);
    let context = Context {
        workspace: Workspace::new(cli.global.workspace.clone()),
        stdout_is_terminal: std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none(),
        stdin_is_terminal: std::io::stdin().is_terminal(),
    };
    let result = match cli.command {
        Command::Init(args) => init::run(&context, args),
        Command::Check => check::run(&context),
        Command::Fmt(args) => fmt::run(&context, args),
        Command::Import(args) => import::run(&context, args),
        Command::Pull(PullArgs { source: PullSource::Autotask, full, since: None }) => {
            pull_autotask::run(&context, full)
        }
        Command::Pull(PullArgs { source: PullSource::Autotask, since: Some(_), .. }) => {
            Err("`--since` applies to `pull cloudmore`".into())
        }
        Command::Pull(PullArgs { source: PullSource::Cloudmore, full: false, since }) => {
            pull_cloudmore::run(&context, since.as_deref())
        }
        Command::Pull(PullArgs { source: PullSource::Cloudmore, full: true, .. }) => {
            Err("`--full` applies to `pull autotask`; `pull cloudmore` always reads whole reports"
                .into())
        }
        Command::Status(args) => status::run(&context, args.format),
        Command::Plan(args) => plan::run(&context, args),
        Command::Apply(args) => apply::run(&context, args),
        Command::Sync(args) => sync::run(&context, args),
        Command::Audit(args) => audit::run(&context, args),
        Command::Approve(args) => approve::run(&context, args),
        Command::Report(args) => report::run(&context, args),
        Command::Doctor(args) => doctor::run(&context, args.format),
        Command::Explain(args) => explain::run(&context, args),
        Command::Demo(args) => demo::run(&context, args),
        Command::Adopt(args) => adopt::run(&context, args),
        Command::Completions(args) => completions::run(args),
        Command::Revert(args) => revert::run(&context, args),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("{}", render_error(err.as_ref()));
            Exit::Problem.into()
        }
    }
}

/// `error: top-level message` followed by each cause on its own line.
pub fn render_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("error: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    text
}
