//! `cmat pull autotask` through the binary, against the in-process simulator.

use crate::harness::TestWorkspace;
use cmat::store::{Access, Store};
use cmat_sim::{Seed, SimOptions, Simulator};

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

#[test]
fn a_second_pull_reads_only_what_changed_and_full_reads_everything() {
    let mut seed = Seed::bundled();
    let company = seed.records["Companies"][0]["id"].clone();
    let contracts = (0..1200).map(|i| {
        serde_json::json!({"id": 70_000 + i, "companyID": company,
            "contractName": format!("Microsoft 365 - {i}"), "contractType": 7, "status": 1,
            "startDate": "2026-11-01T00:00:00", "endDate": "2027-10-31T00:00:00",
            "timeReportingRequiresStartAndStopTimes": 1,
            "lastModifiedDateTime": if i == 0 { "2026-10-01T09:00:00.000Z" } else { "2026-10-01T08:00:00.000Z" },
            "userDefinedFields": [{"name": "Subscription ID", "value": format!("sub-{i}")}]})
    });
    seed.records.entry("Contracts".into()).or_default().extend(contracts);
    let sim = Simulator::start("127.0.0.1:0", seed, SimOptions::default()).unwrap();
    let ws = TestWorkspace::new();
    ws.write("cmat.toml", &format!("[autotask]\nbase_url = \"{}\"\n", sim.base_url()));
    let pull = |args: &[&str]| {
        let run = ws.cmat_with_env(args, &env("demo-secret"));
        assert_eq!(run.status, 0, "{}", run.stderr);
        stable(&run.stdout)
    };

    let first = pull(&["pull", "autotask"]);
    assert!(!first.contains("changed since"), "{first}");
    let marks =
        Store::open(&ws.path().join(".cmat/state.db"), Access::Read).unwrap().pull_marks().unwrap();
    assert_eq!(marks.entities["Contracts"].fields, ["lastModifiedDateTime"]);

    insta::assert_snapshot!("pull_changes_only", pull(&["pull", "autotask"]));
    let full = pull(&["pull", "autotask", "--full"]);
    assert!(!full.contains("changed since") && full.contains("1200"), "{full}");

    let run = ws.cmat_with_env(&["pull", "cloudmore", "--full"], &env("demo-secret"));
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("`--full` applies to `pull autotask`"), "{}", run.stderr);
}
