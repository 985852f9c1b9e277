//! `cmat doctor` through the binary against `cmat-sim`: a good tenant passes with no write,
//! a tenant with set-up problems fails naming each with its fix.

use crate::harness::SimWorkspace;
use cmat_sim::{Seed, SimOptions};
use serde_json::Value;

fn doctor(sw: &SimWorkspace) -> (i32, String) {
    let run = sw.cmat(&["doctor"]);
    (run.status, run.stdout)
}

#[test]
fn a_good_tenant_passes_and_nothing_is_written() {
    let _stable = crate::harness::stable_snapshots();
    let sw = SimWorkspace::start();
    let (status, report) = doctor(&sw);
    assert_eq!(status, 0, "{report}");
    assert_eq!(sw.writes(), 0);
    assert!(
        sw.sim.request_log().iter().all(|r| r.method == "GET" || r.route.contains("/query")),
        "reads only"
    );
    insta::assert_snapshot!("doctor_good_tenant", report);
}

#[test]
fn a_missing_field_an_inactive_billing_code_and_an_inactive_sla_fail_with_fixes() {
    let _stable = crate::harness::stable_snapshots();
    let mut seed = Seed::bundled();
    seed.contract_udfs.clear();
    for code in seed.records.get_mut("BillingCodes").expect("billing codes") {
        if code["id"] == 29682801 {
            code["isActive"] = Value::Bool(false);
        }
    }
    for sla in &mut seed.slas {
        sla.is_active = false;
    }
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    let (status, report) = doctor(&sw);
    assert_eq!(status, 1, "{report}");
    assert_eq!(sw.writes(), 0);
    insta::assert_snapshot!("doctor_problems", report);
}

#[test]
fn refused_credentials_are_one_problem_with_a_fix() {
    let _stable = crate::harness::stable_snapshots();
    let sw = SimWorkspace::start();
    let run = sw.ws.cmat_with_env(
        &["doctor"],
        &[
            ("CMAT_AUTOTASK_USERNAME", "nobody@example.com"),
            ("CMAT_AUTOTASK_SECRET", "wrong-secret-value"),
            ("CMAT_AUTOTASK_INTEGRATION_CODE", "WRONGCODE"),
        ],
    );
    assert_eq!(run.status, 1);
    assert!(
        !run.stdout.contains("wrong-secret-value") && !run.stderr.contains("wrong-secret-value")
    );
    insta::assert_snapshot!("doctor_refused", run.stdout);
}
