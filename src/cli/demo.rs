use super::Exit;
use std::path::{Path, PathBuf};

use clap::Args;

use super::apply::execute;
use super::{session, CommandError, CommandResult, Context};
use crate::store::{Access, AuditFilter, Store};
use crate::workspace::Workspace;
use cmat_sim::{Seed, SimOptions, Simulator};

/// The bundled fixtures: two monthly bills and a restatement (see fixtures/).
const BILLS: [(&str, &str, &str); 3] = [
    (
        "bill-2026-10-01.csv",
        include_str!("../../fixtures/bill-2026-10-01.csv"),
        "the October bill: a new tenant is onboarded",
    ),
    (
        "bill-2026-11-01.csv",
        include_str!("../../fixtures/bill-2026-11-01.csv"),
        "the November bill: licence counts up and down, a product removed, a new one, new Azure meters",
    ),
    (
        "bill-2026-11-01-restated.csv",
        include_str!("../../fixtures/bill-2026-11-01-restated.csv"),
        "November's Azure charges are invoiced, then Cloudmore restates the November bill",
    ),
];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo workspace (default: a new folder under the system's temp dir)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Onboard a tenant that already bills from contracts made by hand: `cmat adopt`, its
    /// review, `adopt --apply`, then the first plan (fixtures/adopt/)
    #[arg(long)]
    pub adopt: bool,
}

/// init → import → pull → plan → apply, three bills in a row, against an in-process cmat-sim.
pub fn run(context: &Context, args: DemoArgs) -> CommandResult {
    let root = args
        .dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cmat-demo-{}", std::process::id())));
    if root.join(crate::workspace::CONFIG_FILE).exists() {
        return Err(format!(
            "{}: already holds a workspace; pass --dir with a new folder",
            root.display()
        )
        .into());
    }
    if args.adopt {
        return super::demo_adopt::run(context, &root);
    }
    let simulator = Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default())?;
    println!(
        "cmat demo: the whole flow on bundled fixtures, against a local Autotask simulator.\n"
    );
    println!("simulator  cmat-sim on {}", simulator.base_url());
    write_workspace(&root, &simulator.base_url())?;
    let demo = demo_context(context, &root);
    let mut store = session::open_store(&demo, Access::Write)?;
    sync_the_bills(&demo, &simulator, &mut store)?;
    plan_nothing_left(&demo, &store)?;
    let audit_rows = write_audit(&root, &store)?;
    let counters = simulator.counters();
    println!(
        "\nDone. The simulator answered {} request(s); {audit_rows} audit row(s) are in {}",
        counters.total,
        root.join("audit.csv").display()
    );
    write_review(&demo, &store, &root)?;
    println!("Look around: cmat -w {} status", root.display());
    Ok(Exit::Success)
}

/// `cmat init` by hand: cmat.toml pointing at the simulator and the default rules.
pub(super) fn write_workspace(root: &Path, base_url: &str) -> Result<(), CommandError> {
    std::fs::create_dir_all(root.join(crate::workspace::MAPPINGS_DIR))?;
    std::fs::write(
        root.join(crate::workspace::CONFIG_FILE),
        format!("# cmat demo workspace\n[autotask]\nbase_url = \"{base_url}\"\n"),
    )?;
    std::fs::write(
        root.join(crate::workspace::MAPPINGS_DIR).join("microsoft.cmat"),
        cmat_mapping::default_rules(29682801, 29682802, 1),
    )?;
    std::fs::write(root.join(".gitignore"), ".cmat/\n")?;
    println!(
        "workspace  {} (cmat.toml, mappings/microsoft.cmat: the default rules)",
        root.display()
    );
    Ok(())
}

/// The demo workspace as its commands see it: nothing prompts (no one answers), output as the
/// caller's terminal allows.
pub(super) fn demo_context(context: &Context, root: &Path) -> Context {
    Context {
        workspace: Workspace::new(root.to_path_buf()),
        stdout_is_terminal: context.stdout_is_terminal,
        stdin_is_terminal: false,
    }
}

/// A client of the simulator, with the credentials it accepts.
pub(super) fn connect_simulator(
    demo: &Context,
    simulator: &cmat_sim::SimHandle,
) -> Result<crate::autotask::AutotaskClient, CommandError> {
    let credentials = simulator.credentials();
    session::connect_autotask_with(
        demo,
        crate::workspace::AutotaskCredentials {
            username: credentials.username.clone(),
            secret: crate::workspace::Secret::new(credentials.secret.clone()),
            integration_code: crate::workspace::Secret::new(credentials.integration_code.clone()),
        },
    )
}

/// `cmat import NAME` (the bill written into the workspace first), then `cmat pull autotask`,
/// printed as a user would see them.
pub(super) fn import_and_pull(
    demo: &Context,
    store: &mut Store,
    client: &crate::autotask::AutotaskClient,
    reading: &super::pull_autotask::Reading,
    name: &str,
    contents: &str,
) -> Result<(), CommandError> {
    let path = demo.workspace.root.join(name);
    std::fs::write(&path, contents)?;
    println!("\n$ cmat import {name}");
    let summary = crate::import::import_file(store, &path, name)?;
    print!("{}", super::import::render_summary(name, &summary));
    println!("\n$ cmat pull autotask");
    super::pull_autotask::pull_into(demo, store, client, reading, false, None)?;
    Ok(())
}

/// The three bills in turn: import, pull, apply (the third after an invoice run).
fn sync_the_bills(
    demo: &Context,
    simulator: &cmat_sim::SimHandle,
    store: &mut Store,
) -> Result<(), CommandError> {
    let client = connect_simulator(demo, simulator)?;
    let (rules, _) = session::load_rules(demo)?;
    let reading = super::pull_autotask::Reading::of(&rules);
    for (step, (name, contents, story)) in BILLS.iter().enumerate() {
        println!("\n━━ {}. {story} ━━", step + 1);
        if step == 2 {
            let billed = bill_every_charge(simulator);
            println!("(the simulator marks {billed} charge(s) as invoiced, as an Autotask invoice run would)");
        }
        import_and_pull(demo, store, &client, &reading, name, contents)?;
        println!("\n$ cmat apply --auto-approve");
        let mut loaded = session::load(demo, store)?;
        execute(demo, store, &mut loaded, &client, None, None, true)?;
    }
    Ok(())
}

/// Run it again: the plan must be empty, or the demo failed.
fn plan_nothing_left(demo: &Context, store: &Store) -> Result<(), CommandError> {
    println!("\n━━ 4. Run it again: nothing left to do ━━");
    final_plan(demo, store)
}

/// `cmat plan` once the demo is done: it must be empty, or the demo failed.
pub(super) fn final_plan(demo: &Context, store: &Store) -> Result<(), CommandError> {
    println!("\n$ cmat plan");
    let loaded = session::load(demo, store)?;
    let plan = loaded.plan()?;
    println!("{}", plan.to_text(&loaded.company_names(), demo.stdout_is_terminal));
    if plan.has_changes() {
        return Err("the demo did not converge: the last plan still has changes".into());
    }
    Ok(())
}

/// The audit trail as `audit.csv`; its number of rows.
fn write_audit(root: &Path, store: &Store) -> Result<usize, CommandError> {
    let rows = store.audit_chain(&AuditFilter::default())?;
    let mut bytes = Vec::new();
    crate::audit::write_csv(&rows, &mut bytes)?;
    std::fs::write(root.join("audit.csv"), bytes)?;
    Ok(rows.len())
}

/// The billing review as `review.html`.
fn write_review(demo: &Context, store: &Store, root: &Path) -> Result<(), CommandError> {
    let review = super::report::review(demo, store, None)?;
    let review_path = root.join("review.html");
    let page = crate::report::render(
        &review,
        crate::report::Format::Html,
        &chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    )?;
    super::report::write_file(&review_path, &page)?;
    println!(
        "\n━━ 5. The billing review ━━\n\n$ cmat report --out review.html\nThe {} review ({} exception(s) to look at before invoicing) is in {}",
        review.period,
        review.exceptions.len(),
        review_path.display()
    );
    Ok(())
}

/// What an invoice run does to charges: they become billed, and can no longer change.
fn bill_every_charge(simulator: &cmat_sim::SimHandle) -> usize {
    simulator
        .records("ContractCharges")
        .iter()
        .filter_map(|charge| charge.get("id").and_then(serde_json::Value::as_i64))
        .filter(|id| simulator.set_billed(*id))
        .count()
}
