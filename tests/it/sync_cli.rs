//! `cmat sync` and `cmat init` against an in-process cmat-sim, through the real binary.

use crate::harness::{Run, TestWorkspace};
use cmat_sim::{Seed, SimHandle, SimOptions, Simulator};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

struct Tenant {
    sim: SimHandle,
    workspace: TestWorkspace,
}

impl Tenant {
    fn new() -> Tenant {
        let sim = Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default())
            .expect("simulator");
        let workspace = TestWorkspace::new();
        workspace.write("cmat.toml", &format!("[autotask]\nbase_url = \"{}\"\n", sim.base_url()));
        workspace
            .write("mappings/microsoft.cmat", &cmat_mapping::default_rules(29682801, 29682802, 1));
        Tenant { sim, workspace }
    }

    fn credentials(&self) -> Vec<(&'static str, String)> {
        let credentials = self.sim.credentials();
        vec![
            ("CMAT_AUTOTASK_USERNAME", credentials.username.clone()),
            ("CMAT_AUTOTASK_SECRET", credentials.secret.clone()),
            ("CMAT_AUTOTASK_INTEGRATION_CODE", credentials.integration_code.clone()),
        ]
    }

    fn cmat(&self, args: &[&str]) -> Run {
        let env = self.credentials();
        let env: Vec<(&str, &str)> =
            env.iter().map(|(name, value)| (*name, value.as_str())).collect();
        self.workspace.cmat_with_env(args, &env)
    }

    fn writes(&self) -> u64 {
        self.sim.counters().writes
    }
}

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

#[test]
fn sync_applies_a_new_bill_once_and_is_a_no_op_until_the_next() {
    let tenant = Tenant::new();
    let october = fixture("bill-2026-10-01.csv");

    let dry = tenant.cmat(&["sync", "--dry-run", "--import", &october]);
    assert_eq!(dry.status, 2, "dry run with changes exits 2: {}", dry.stderr);
    assert_eq!(tenant.writes(), 0, "a dry run writes nothing");
    assert!(dry.stdout.contains("Plan: 18 to create, 0 to update, 7 to adjust"), "{}", dry.stdout);

    let first = tenant.cmat(&["sync", "--auto-approve"]);
    assert_eq!(first.status, 2, "changes written exit 2: {}", first.stderr);
    let written = tenant.writes();
    assert_eq!(written, 25, "one write per planned change");

    let requests = tenant.sim.counters().total;
    let second = tenant.cmat(&["sync", "--auto-approve"]);
    assert_eq!(second.status, 0, "{}", second.stderr);
    assert!(
        second.stdout.contains("No new or restated bill since the last sync"),
        "{}",
        second.stdout
    );
    assert_eq!(tenant.sim.counters().total, requests, "a day with nothing new costs no request");

    let november =
        tenant.cmat(&["sync", "--auto-approve", "--import", &fixture("bill-2026-11-01.csv")]);
    assert_eq!(november.status, 2, "{}", november.stderr);
    assert_eq!(tenant.writes(), written + 8);
    let plan = tenant.cmat(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status, 0, "converged after sync: {}", plan.stdout);

    // Edited rules are applied by the next sync even without a new bill (here: nothing
    // differs, so it reads Autotask, plans and writes nothing), and only by that one.
    let rules = tenant.workspace.read("mappings/microsoft.cmat");
    tenant.workspace.write("mappings/microsoft.cmat", &format!("{rules}\n# reviewed\n"));
    let requests = tenant.sim.counters().total;
    let edited = tenant.cmat(&["sync", "--auto-approve"]);
    assert_eq!(edited.status, 0, "{}{}", edited.stdout, edited.stderr);
    assert!(!edited.stdout.contains("No new or restated bill"), "{}", edited.stdout);
    assert!(tenant.sim.counters().total > requests);
    assert_eq!(tenant.writes(), written + 8);
    let again = tenant.cmat(&["sync", "--auto-approve"]);
    assert!(
        again.stdout.contains("nothing to do (Autotask was not contacted)"),
        "{}",
        again.stdout
    );
}

#[test]
fn sync_refuses_to_write_without_a_terminal_or_auto_approve() {
    let tenant = Tenant::new();
    let run = tenant.cmat(&["sync", "--import", &fixture("bill-2026-10-01.csv")]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("standard input is not a terminal"), "{}", run.stderr);
    assert_eq!(tenant.writes(), 0);
}

#[test]
fn init_finds_missing_ids_in_autotask_and_lists_candidates_when_several() {
    let tenant = Tenant::new();
    let target = tenant.workspace.path().join("new");
    let target = target.to_str().expect("utf-8 path");
    let url = tenant.sim.base_url();
    // The bundled tenant has two recurring-service billing codes: without a terminal cmat
    // lists them instead of guessing.
    let ambiguous = tenant.cmat(&["init", target, "--autotask-url", &url]);
    assert_eq!(ambiguous.status, 1);
    assert!(
        ambiguous.stderr.contains("several candidates for --service-billing-code: 29682801"),
        "{}",
        ambiguous.stderr
    );
    assert!(!tenant.workspace.path().join("new/cmat.toml").exists(), "nothing written");

    let run = tenant.cmat(&[
        "init",
        target,
        "--autotask-url",
        &url,
        "--service-billing-code",
        "29682801",
        "--product-billing-code",
        "29682802",
        "--sla",
        "1",
    ]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let config = tenant.workspace.read("new/cmat.toml");
    assert!(config.contains(&format!("base_url = \"{url}\"")), "{config}");
    let rules = tenant.workspace.read("new/mappings/microsoft.cmat");
    assert_eq!(rules, cmat_mapping::default_rules(29682801, 29682802, 1));
}
