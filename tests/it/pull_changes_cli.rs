//! Daily syncs whose pulls read by changes, through the binary: they must converge exactly as
//! full reads would, with apply's own writes and a new subscription in between.

use crate::harness::SimWorkspace;
use cmat::store::{Access, Store};
use cmat_engine::plan::{compute, PlanInputs};
use cmat_engine::snapshot::Snapshot;
use cmat_sim::{Seed, SimOptions};
use cmat_testkit::tenant::{
    bill_lines, companies, play, sim_seed_json, write_bill_csv, TenantSize,
};

/// 1,100 contracts (880 licence, 220 Azure): three pages, so contracts are read by changes.
const SIZE: TenantSize = TenantSize {
    organizations: 220,
    licence_subscriptions: 4,
    products_per_subscription: 1,
    azure_lines: 2,
};

/// The tenant as Autotask holds it after day 0's bills were applied.
fn converged_seed(day0: &[cmat_engine::billing::BillLine]) -> Seed {
    let text = cmat_mapping::default_rules(29682801, 29682802, 1);
    let rules = cmat_mapping::compile_sources(&[("mappings/microsoft.cmat".into(), text)])
        .expect("default rules")
        .rules;
    let mut snapshot = companies(SIZE);
    let inputs = PlanInputs {
        rules: &rules,
        lines: day0,
        snapshot: &snapshot,
        mapping_sources: &[],
        inputs_digest: String::new(),
    };
    let plan = compute(&inputs, chrono::Utc::now()).expect("the reference tenant has every label");
    play(&plan, &mut snapshot);
    Seed::from_json(&sim_seed_json(&snapshot, 10_000).to_string()).expect("seed")
}

fn stored_records(sw: &SimWorkspace) -> Snapshot {
    let store = Store::open(&sw.ws.path().join(".cmat/state.db"), Access::Read).expect("store");
    let mut snapshot = store.load_snapshot().expect("snapshot");
    snapshot.refreshed_at = None;
    snapshot
}

fn contracts_line(pull_output: &str) -> &str {
    pull_output.lines().find(|line| line.trim_start().starts_with("Contracts")).unwrap_or("")
}

#[test]
fn a_sync_by_changes_converges_and_leaves_what_a_full_read_would() {
    let day0 = bill_lines(SIZE, 0, 100);
    let mut day1 = bill_lines(SIZE, 1, 100);
    // A subscription Autotask has never seen: apply creates its contract.
    let mut new = day1.iter().find(|l| l.subscription_id.contains("-lic-")).cloned().unwrap();
    new.subscription_id = "00000-lic-new".into();
    new.source.row = day1.len() as u64 + 2;
    day1.push(new);
    let sw = SimWorkspace::start_seeded(converged_seed(&day0), SimOptions::default());
    for (name, lines) in [("day-0.csv", &day0), ("day-1.csv", &day1)] {
        let file = std::fs::File::create(sw.ws.path().join(name)).unwrap();
        write_bill_csv(std::io::BufWriter::new(file), lines).unwrap();
    }

    sw.ok(&["import", "day-0.csv"]);
    let first = sw.ok(&["pull", "autotask"]).stdout;
    assert!(!first.contains("changed since"), "a first pull reads in full:\n{first}");
    assert_eq!(sw.plan_detailed().status, 0, "the seed is day 0 applied");

    sw.ok(&["import", "day-1.csv"]);
    let second = sw.ok(&["pull", "autotask"]).stdout;
    assert!(contracts_line(&second).contains("changed since"), "{second}");
    let plan = sw.plan_detailed();
    assert_eq!(plan.status, 2, "day 1 moves licence counts:\n{}", plan.stdout);
    let writes = sw.writes();
    sw.ok(&["apply", "--auto-approve"]);
    assert!(sw.writes() > writes);

    // The next pull reads apply's writes (and the new contract) as changes; nothing is left.
    let third = sw.ok(&["pull", "autotask"]).stdout;
    assert!(contracts_line(&third).contains("changed since"), "{third}");
    assert!(contracts_line(&third).contains("1101"), "{third}");
    assert_eq!(sw.plan_detailed().status, 0, "converged after a pull by changes");
    let by_changes = stored_records(&sw);

    sw.ok(&["pull", "autotask", "--full"]);
    assert_eq!(stored_records(&sw), by_changes, "a full read finds exactly the same records");
    assert_eq!(sw.plan_detailed().status, 0);
}
