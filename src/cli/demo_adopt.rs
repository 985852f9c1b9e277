//! `cmat demo --adopt`: onboarding an MSP that already bills from contracts made by hand
//! (`fixtures/adopt/`): import, pull, `cmat adopt`, a person's acceptance, `adopt --apply`,
//! then the first plan, which adjusts the adopted contracts and creates only what is missing.

use std::path::Path;

use super::session;
use super::{CommandResult, Context, Exit};
use crate::store::Access;
use cmat_sim::{Seed, SimOptions, Simulator};

const SEED: &str = include_str!("../../fixtures/adopt/autotask-seed.json");
const BILL: &str = include_str!("../../fixtures/adopt/bill-2026-11-01.csv");

pub fn run(context: &Context, root: &Path) -> CommandResult {
    let simulator = Simulator::start("127.0.0.1:0", Seed::from_json(SEED)?, SimOptions::default())?;
    println!("cmat demo --adopt: a tenant that already bills 12 subscriptions from contracts made by hand.\n");
    println!("simulator  cmat-sim on {} (fixtures/adopt/autotask-seed.json)", simulator.base_url());
    super::demo::write_workspace(root, &simulator.base_url())?;
    let demo = super::demo::demo_context(context, root);
    let client = super::demo::connect_simulator(&demo, &simulator)?;
    let mut store = session::open_store(&demo, Access::Write)?;
    let (rules, _) = session::load_rules(&demo)?;
    let reading = super::pull_autotask::Reading::of(&rules);
    let bill = "bill-2026-11-01.csv";
    super::demo::import_and_pull(&demo, &mut store, &client, &reading, bill, BILL)?;

    println!("\n━━ 1. cmat proposes, with its evidence ━━\n\n$ cmat adopt");
    let mut loaded = session::load(&demo, &store)?;
    let proposal = crate::workflow::adopt::propose(&loaded)?;
    let file = root.join("adopt.csv");
    let text = cmat_engine::adopt::to_csv(&proposal);
    print!("{}", super::adopt::summary(&proposal, &file));

    println!(
        "\n━━ 2. A person reviews adopt.csv and accepts each subscription's first candidate ━━"
    );
    std::fs::write(&file, first_candidates_accepted(&text)?)?;
    println!("\n$ cmat adopt --apply adopt.csv --auto-approve");
    let rows = crate::workflow::adopt::read_file(&file)?;
    // Named as a person would type it, so the audit trail's rule reads `adopt.csv:7`.
    let name = Path::new("adopt.csv");
    super::adopt::apply_rows(&demo, &mut store, &mut loaded, &client, name, &rows, true)?;

    println!("\n━━ 3. The normal flow takes over ━━\n\n$ cmat apply --auto-approve");
    let mut loaded = session::load(&demo, &store)?;
    super::apply::execute(&demo, &mut store, &mut loaded, &client, None, None, true)?;
    super::demo::final_plan(&demo, &store)?;
    println!("Look around: cmat -w {} audit; the proposal is {}", root.display(), file.display());
    Ok(Exit::Success)
}

/// The proposal with `yes` in the accept column of each subscription's first candidate row.
fn first_candidates_accepted(text: &str) -> Result<String, csv::Error> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut seen = std::collections::BTreeSet::new();
    let mut lines = std::collections::BTreeSet::new();
    for record in reader.records() {
        let record = record?;
        if record.get(1) == Some("candidate")
            && seen.insert(record.get(2).unwrap_or_default().to_string())
        {
            lines.insert(record.position().map(|p| p.line()).unwrap_or(0));
        }
    }
    let mut out = String::new();
    for (index, line) in text.lines().enumerate() {
        if lines.contains(&(index as u64 + 1)) {
            out.push_str("yes");
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}
