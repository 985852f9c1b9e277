//! `cmat pull cloudmore` against the Cloudmore endpoints of an in-process cmat-sim, which
//! follows Cloudmore's documented flow (one reseller-wide asynchronous report) and refuses the
//! endpoints earlier cmat versions called.

use crate::harness;

use crate::harness::TestWorkspace;
use cmat_sim::{Seed, SimHandle, SimOptions, Simulator};

struct Setup {
    sim: SimHandle,
    workspace: TestWorkspace,
    seed: serde_json::Value,
}

fn setup() -> Setup {
    let sim =
        Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default()).expect("simulator");
    let seed: serde_json::Value =
        serde_json::from_str(cmat_sim::seed::BUNDLED_SEED).expect("bundled seed is JSON");
    let workspace = TestWorkspace::new();
    workspace.write(
        "cmat.toml",
        &format!(
            "[cloudmore]\nbase_url = \"{}\"\nreseller_id = \"{}\"\n",
            sim.cloudmore_base_url(),
            seed["cloudmore"]["resellerId"].as_str().expect("reseller")
        ),
    );
    Setup { sim, workspace, seed }
}

impl Setup {
    fn text(&self, key: &str) -> String {
        self.seed["cloudmore"][key].as_str().expect("seed field").to_string()
    }

    fn pull(&self, extra: &[&str]) -> harness::Run {
        let (username, password, secret) =
            (self.text("username"), self.text("password"), self.text("clientSecret"));
        let env = [
            ("CMAT_CLOUDMORE_USERNAME", username.as_str()),
            ("CMAT_CLOUDMORE_PASSWORD", password.as_str()),
            ("CMAT_CLOUDMORE_CLIENT_SECRET", secret.as_str()),
        ];
        let mut args = vec!["pull", "cloudmore"];
        args.extend_from_slice(extra);
        self.workspace.cmat_with_env(&args, &env)
    }

    /// How the simulator's next report tasks behave.
    fn tasks(&self, behaviour: serde_json::Value) {
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/_sim/report", self.sim.cloudmore_base_url()))
            .json(&behaviour)
            .send()
            .expect("sim control");
        assert!(answer.status().is_success());
    }

    fn log(&self) -> String {
        reqwest::blocking::get(format!("{}/_sim/log", self.sim.root_url()))
            .and_then(|r| r.text())
            .unwrap_or_default()
    }
}

#[test]
fn pull_cloudmore_imports_the_reseller_report_and_is_idempotent() {
    let setup = setup();
    // A task that takes several polls.
    setup.tasks(serde_json::json!({"polls": 3}));
    let first = setup.pull(&["--since", "2026-10"]);
    assert_eq!(first.status, 0, "{}", first.stderr);
    let lines = setup.seed["cloudmore"]["billingLines"].as_array().expect("lines").len();
    assert!(first.stdout.contains(&format!("{lines} lines")), "{}", first.stdout);
    let (password, secret) = (setup.text("password"), setup.text("clientSecret"));
    assert!(!first.stdout.contains(&password) && !first.stderr.contains(&password));
    assert!(!first.stdout.contains(&secret) && !first.stderr.contains(&secret));
    let log = setup.log();
    assert_eq!(log.matches("\"route\":\"POST cloudmore/api/resellers/{id}/billing/reports/MonthlyBillingPerOrganizationAsync\"").count(), 1, "one task for the whole reseller: {log}");

    let second = setup.pull(&["--since", "2026-10"]);
    assert_eq!(second.status, 0, "{}", second.stderr);
    assert!(second.stdout.contains("0 new bills, 0 restated"), "{}", second.stdout);
}

#[test]
fn a_failed_report_task_is_an_error_naming_the_request_and_imports_nothing() {
    let setup = setup();
    setup.tasks(serde_json::json!({"polls": 1, "fail": true}));
    let run = setup.pull(&["--since", "2026-10"]);
    assert_eq!(run.status, 1);
    let reseller = setup.text("resellerId");
    insta::assert_snapshot!(run.stderr.replace(&reseller, "{resellerId}"), @r#"error: POST /api/resellers/{resellerId}/billing/reports/MonthlyBillingPerOrganizationAsync (task task-2): the billing report task failed: status "Failed": The report could not be generated"#);
    let status = setup.workspace.cmat(&["status"]);
    assert!(!status.stdout.contains("Contoso"), "{}", status.stdout);
}

#[test]
fn since_must_be_a_month() {
    let setup = setup();
    let run = setup.pull(&["--since", "2026-1"]);
    assert_eq!(run.status, 1);
    insta::assert_snapshot!(run.stderr, @r#"error: --since "2026-1": expected a month as YYYY-MM (e.g. 2026-10)"#);
}
