//! `cmat pull autotask` through the binary, against the in-process simulator.

mod common;

use cmat::sim::{Seed, SimOptions, Simulator};
use cmat::store::{Access, Store};
use common::TestWorkspace;

fn env(secret: &str) -> [(&'static str, &str); 3] {
    [
        ("CMAT_AUTOTASK_USERNAME", "demo@example.com"),
        ("CMAT_AUTOTASK_SECRET", secret),
        ("CMAT_AUTOTASK_INTEGRATION_CODE", "DEMOCODE"),
    ]
}

/// The elapsed time is the one thing that changes between runs.
fn stable(text: &str) -> String {
    match (text.find("refreshed in "), text.find(" s:")) {
        (Some(start), Some(end)) if start < end => {
            format!("{}[ELAPSED]{}", &text[..start + "refreshed in ".len()], &text[end..])
        }
        _ => text.to_string(),
    }
}

#[test]
fn pull_autotask_stores_the_snapshot_and_a_failed_pull_keeps_it() {
    let sim = Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default()).unwrap();
    let ws = TestWorkspace::new();
    ws.write("cmat.toml", &format!("[autotask]\nbase_url = \"{}\"\n", sim.base_url()));

    let run = ws.cmat_with_env(&["pull", "autotask"], &env("demo-secret"));
    assert_eq!(run.status, 0, "{}", run.stderr);
    insta::assert_snapshot!("pull_summary", stable(&run.stdout));
    let store = Store::open(&ws.path().join(".cmat/state.db"), Access::Read).unwrap();
    let snapshot = store.load_snapshot().unwrap();
    assert_eq!(snapshot.companies.len(), 8);
    assert_eq!(snapshot.billing_codes.len(), 8);
    assert!(snapshot.refreshed_at.is_some());
    drop(store);

    let run = ws.cmat_with_env(&["pull", "autotask"], &env("not-the-secret"));
    assert_eq!(run.status, 1);
    insta::assert_snapshot!("pull_bad_credentials", run.stderr);
    assert!(!run.stderr.contains("not-the-secret") && !run.stderr.contains("DEMOCODE"));
    let store = Store::open(&ws.path().join(".cmat/state.db"), Access::Read).unwrap();
    assert_eq!(store.load_snapshot().unwrap(), snapshot, "the old snapshot is kept");
}

#[test]
fn pull_autotask_without_credentials_says_which_variable() {
    let ws = TestWorkspace::new();
    let run = ws.cmat(&["pull", "autotask"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("CMAT_AUTOTASK_USERNAME"), "{}", run.stderr);
}
