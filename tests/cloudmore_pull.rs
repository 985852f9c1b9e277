//! `cmat pull cloudmore` against the Cloudmore endpoints of an in-process cmat-sim.

mod common;

use cmat::sim::{Seed, SimOptions, Simulator};
use common::TestWorkspace;

#[test]
fn pull_cloudmore_imports_the_billing_reports_and_is_idempotent() {
    let sim =
        Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default()).expect("simulator");
    let seed: serde_json::Value =
        serde_json::from_str(cmat::sim::seed::BUNDLED_SEED).expect("bundled seed is JSON");
    let cloudmore = &seed["cloudmore"];
    let text = |key: &str| cloudmore[key].as_str().expect("seed field").to_string();
    let workspace = TestWorkspace::new();
    workspace.write(
        "cmat.toml",
        &format!(
            "[cloudmore]\nbase_url = \"{}\"\nreseller_id = \"{}\"\n",
            sim.cloudmore_base_url(),
            text("resellerId")
        ),
    );
    let (username, password, secret) = (text("username"), text("password"), text("clientSecret"));
    let env = [
        ("CMAT_CLOUDMORE_USERNAME", username.as_str()),
        ("CMAT_CLOUDMORE_PASSWORD", password.as_str()),
        ("CMAT_CLOUDMORE_CLIENT_SECRET", secret.as_str()),
    ];
    let first = workspace.cmat_with_env(&["pull", "cloudmore"], &env);
    assert_eq!(first.status, 0, "{}", first.stderr);
    let lines = cloudmore["billingLines"].as_array().expect("lines").len();
    assert!(first.stdout.contains(&format!("{lines} lines")), "{}", first.stdout);
    assert!(!first.stdout.contains(&password) && !first.stderr.contains(&password));
    assert!(!first.stdout.contains(&secret) && !first.stderr.contains(&secret));

    let second = workspace.cmat_with_env(&["pull", "cloudmore"], &env);
    assert_eq!(second.status, 0, "{}", second.stderr);
    assert!(second.stdout.contains("0 new bills, 0 restated"), "{}", second.stdout);
}
