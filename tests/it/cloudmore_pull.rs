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

// ---------------------------------------------------------------------------------------------
// The documented answer against `import` of the same report, and the failures SPEC names.

/// The bundled Autotask seed, with a Cloudmore holding the lines of the CSV export `bill`
/// (its columns as camelCase fields, its AutotaskCompanyID as the organizations' custom
/// property): the same report through the API and as a file.
fn seed_from_export(bill: &str) -> Seed {
    let mut reader = csv::Reader::from_path(harness::fixture(bill)).expect("fixture");
    let columns: Vec<String> =
        reader.headers().expect("header").iter().map(str::to_string).collect();
    let header: Vec<String> = columns.iter().map(|c| camel_case(c)).collect();
    let link = columns.iter().position(|c| c == "AutotaskCompanyID").expect("link column");
    let mut lines = Vec::new();
    let mut organizations: Vec<serde_json::Value> = Vec::new();
    for record in reader.records() {
        let record = record.expect("record");
        let mut line = serde_json::Map::new();
        for (index, (name, value)) in header.iter().zip(record.iter()).enumerate() {
            if !value.is_empty() && index != link {
                line.insert(name.clone(), value.into());
            }
        }
        let field = |name: &str| header.iter().position(|h| h == name).map(|i| &record[i]);
        let id = format!("org-{}", field("customerNumber").unwrap_or_default());
        line.insert("organizationId".into(), id.clone().into());
        if !organizations.iter().any(|o| o["id"] == id.as_str()) {
            organizations.push(serde_json::json!({
                "id": id,
                "name": field("organizationName"),
                "customerNumber": field("customerNumber"),
                "customProperties": [{"name": "AutotaskCompanyID", "value": &record[link]}],
            }));
        }
        lines.push(serde_json::Value::Object(line));
    }
    let mut seed = Seed::bundled();
    let cloudmore = seed.cloudmore.as_mut().expect("the bundled seed has a Cloudmore");
    cloudmore.billing_lines = lines;
    cloudmore.organizations = organizations;
    seed
}

/// "Billing Date" → "billingDate", "Subscription ID" → "subscriptionId".
fn camel_case(column: &str) -> String {
    let mut out = String::new();
    for (index, word) in column.split(' ').enumerate() {
        let word = if word == "ID" { "Id" } else { word };
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            if index == 0 {
                out.extend(first.to_lowercase());
            } else {
                out.extend(first.to_uppercase());
            }
            out.push_str(chars.as_str());
        }
    }
    out
}

/// A workspace against a simulator holding both Autotask and the Cloudmore of `seed`.
struct Tenant {
    sim: harness::SimWorkspace,
    cloudmore: cmat_sim::CloudmoreSeed,
}

impl Tenant {
    fn new(seed: Seed, wait_seconds: Option<u64>) -> Tenant {
        let cloudmore = seed.cloudmore.clone().expect("a Cloudmore seed");
        let sim = harness::SimWorkspace::start_seeded(seed, SimOptions::default());
        let config = sim.ws.read("cmat.toml");
        sim.ws.write(
            "cmat.toml",
            &format!(
                "{config}\n[cloudmore]\nbase_url = \"{}\"\nreseller_id = \"{}\"\n{}",
                sim.sim.cloudmore_base_url(),
                cloudmore.reseller_id,
                wait_seconds.map(|s| format!("report_wait_seconds = {s}\n")).unwrap_or_default()
            ),
        );
        Tenant { sim, cloudmore }
    }

    fn cmat(&self, args: &[&str]) -> harness::Run {
        let mut env = self.sim.env();
        env.push(("CMAT_CLOUDMORE_USERNAME", self.cloudmore.username.clone()));
        env.push(("CMAT_CLOUDMORE_PASSWORD", self.cloudmore.password.clone()));
        env.push(("CMAT_CLOUDMORE_CLIENT_SECRET", self.cloudmore.client_secret.clone()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.sim.ws.cmat_with_env(args, &env)
    }

    fn tasks(&self, behaviour: serde_json::Value) {
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/_sim/report", self.sim.sim.cloudmore_base_url()))
            .json(&behaviour)
            .send()
            .expect("sim control");
        assert!(answer.status().is_success());
    }

    /// The finished answers kept under `.cmat/cloudmore/`.
    fn kept(&self) -> Vec<(String, String)> {
        let dir = self.sim.ws.path().join(".cmat/cloudmore");
        let mut kept: Vec<(String, String)> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                        (e.file_name().to_string_lossy().into_owned(), text)
                    })
                    .collect()
            })
            .unwrap_or_default();
        kept.sort();
        kept
    }

    /// `status` and the plan as JSON, with what names the source (file or pull) taken out.
    fn outcome(&self, source: &str) -> (String, String) {
        let status = self.cmat(&["status"]);
        assert_eq!(status.status, 0, "{}", status.stderr);
        let plan = self.cmat(&["plan", "--format", "json"]);
        assert!(plan.status == 0 || plan.status == 2, "{}", plan.stderr);
        // The snapshot's time differs between two tenants; all else must not.
        let status: String = status
            .stdout
            .lines()
            .filter(|line| !line.starts_with("Autotask snapshot: refreshed"))
            .map(|line| format!("{line}\n"))
            .collect();
        let plan: String = plan
            .stdout
            .lines()
            .filter(|line| !line.trim_start().starts_with("\"created_at\""))
            // A warning's source is a row of the file, or the line's place in the answer.
            .map(|line| match line.trim_start().starts_with("\"source\"") {
                true => "      \"source\": LINE\n".to_string(),
                false => format!("{line}\n"),
            })
            .collect();
        (status.replace(source, "SOURCE"), plan.replace(source, "SOURCE"))
    }
}

const NOVEMBER: &str = "bill-2026-11-01.csv";

#[test]
fn pull_cloudmore_stores_what_import_of_the_same_report_stores_in_every_documented_form() {
    let imported = Tenant::new(seed_from_export(NOVEMBER), None);
    imported.sim.import(NOVEMBER);
    imported.sim.pull();
    let expected = imported.outcome(NOVEMBER);

    for variant in [
        serde_json::json!({}),
        serde_json::json!({"amounts": "strings"}),
        serde_json::json!({"case": "pascal", "wrap": false, "polls": 2}),
        serde_json::json!({"shape": "flat"}),
    ] {
        let pulled = Tenant::new(seed_from_export(NOVEMBER), None);
        pulled.tasks(variant.clone());
        let run = pulled.cmat(&["pull", "cloudmore", "--since", "2026-11"]);
        assert_eq!(run.status, 0, "{variant}: {}", run.stderr);
        let source = run
            .stdout
            .lines()
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        pulled.sim.pull();
        let (status, plan) = pulled.outcome(&source);
        assert_eq!(status, expected.0, "{variant}");
        assert_eq!(plan, expected.1, "{variant}");
        assert!(plan.contains("\"create"), "the plan has work to do: {plan}");
    }
}

/// A failed pull stores nothing: `status` shows no bill.
fn assert_nothing_stored(tenant: &Tenant) {
    let status = tenant.cmat(&["status"]);
    assert!(!status.stdout.contains("Contoso"), "{}", status.stdout);
}

/// The error line, with the reseller id as a placeholder.
fn error_of(tenant: &Tenant, run: &harness::Run) -> String {
    assert_eq!(run.status, 1, "{}", run.stdout);
    run.stderr.replace(&tenant.cloudmore.reseller_id, "{resellerId}")
}

#[test]
fn an_expired_token_is_renewed_once_and_every_request_has_its_verbose_line() {
    let tenant = Tenant::new(seed_from_export(NOVEMBER), None);
    tenant.tasks(serde_json::json!({"revoke": true}));
    let run = tenant.cmat(&["pull", "cloudmore", "--since", "2026-11", "-v"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let token_lines =
        lines.iter().filter(|l| l.contains("POST /cloudmore/connect/token 200")).count();
    assert_eq!(token_lines, 2, "{}", run.stderr);
    // The request after the task started met the revoked token, and was sent again.
    assert_eq!(lines.iter().filter(|l| l.contains(" 401 ")).count(), 1, "{}", run.stderr);
    for secret in [&tenant.cloudmore.password, &tenant.cloudmore.client_secret] {
        assert!(!run.stderr.contains(secret.as_str()) && !run.stdout.contains(secret.as_str()));
    }
    assert!(!run.stderr.contains("sim-access-token"), "{}", run.stderr);
}

#[test]
fn a_500_while_polling_is_an_error_naming_the_request_and_stores_nothing() {
    let tenant = Tenant::new(seed_from_export(NOVEMBER), None);
    tenant.tasks(serde_json::json!({"error": 500}));
    let run = tenant.cmat(&["pull", "cloudmore", "--since", "2026-11"]);
    insta::assert_snapshot!(error_of(&tenant, &run), @r#"error: GET /api/resellers/{resellerId}/billing/reports/MonthlyBillingPerOrganizationAsync/task-2: Cloudmore answered 500: {"message":"An error has occurred."}"#);
    assert_nothing_stored(&tenant);
}

#[test]
fn an_undocumented_task_state_is_an_error_quoting_it() {
    let tenant = Tenant::new(seed_from_export(NOVEMBER), None);
    tenant.tasks(serde_json::json!({"pending": "Running"}));
    let run = tenant.cmat(&["pull", "cloudmore", "--since", "2026-11"]);
    insta::assert_snapshot!(error_of(&tenant, &run), @r#"error: GET /api/resellers/{resellerId}/billing/reports/MonthlyBillingPerOrganizationAsync/task-2: unexpected answer: the task's status "Running" is not a state Cloudmore documents (Processing, Successful, Failed)"#);
    assert_nothing_stored(&tenant);
}

#[test]
fn a_task_that_never_finishes_stops_at_report_wait_seconds_and_stores_nothing() {
    let tenant = Tenant::new(seed_from_export(NOVEMBER), Some(1));
    tenant.tasks(serde_json::json!({"polls": 1_000_000}));
    let run = tenant.cmat(&["pull", "cloudmore", "--since", "2026-11"]);
    insta::assert_snapshot!(error_of(&tenant, &run), @r#"error: GET /api/resellers/{resellerId}/billing/reports/MonthlyBillingPerOrganizationAsync/task-2: the billing report task did not complete within 1 s ([cloudmore] report_wait_seconds in cmat.toml)"#);
    assert_nothing_stored(&tenant);
}

#[test]
fn a_malformed_report_names_its_json_path_stores_nothing_and_is_kept_without_secrets() {
    let tenant = Tenant::new(seed_from_export(NOVEMBER), None);
    tenant.tasks(serde_json::json!({"malformed": true}));
    let run = tenant.cmat(&["pull", "cloudmore", "--since", "2026-11"]);
    insta::assert_snapshot!(error_of(&tenant, &run), @r#"
    error: cloudmore 2026-11..2026-12: 1 malformed line in GET /api/resellers/{resellerId}/billing/reports/MonthlyBillingPerOrganizationAsync/task-2, nothing imported
    $.result.organizations[0].services[0].items[0].products[0]: field "quantity" is true, expected a number or a decimal string
    "#);
    assert_nothing_stored(&tenant);
    let kept = tenant.kept();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (name, text) = &kept[0];
    assert!(name.starts_with("2026-11-01..") && name.ends_with(".json"), "{name}");
    assert!(text.contains("\"organizations\"") && text.contains("\"quantity\":true"), "{text}");
    for secret in [&tenant.cloudmore.password, &tenant.cloudmore.client_secret] {
        assert!(!text.contains(secret.as_str()));
    }
}

/// The fixture of the documented answer is what the simulator answers for the November export
/// (so a real answer that differs from it is a difference from the simulator too), and its
/// decimals travel as exact JSON numbers.
#[test]
fn the_documented_fixture_is_the_simulators_answer_for_the_november_export() {
    let tenant = Tenant::new(seed_from_export(NOVEMBER), None);
    let run = tenant.cmat(&["pull", "cloudmore", "--since", "2026-11"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let kept = tenant.kept();
    let answer: serde_json::Value = serde_json::from_str(&kept[0].1).expect("kept answer");
    let fixture: serde_json::Value = serde_json::from_slice(
        &std::fs::read(harness::fixture("cloudmore/report-2026-11.json")).expect("fixture"),
    )
    .expect("fixture JSON");
    assert_eq!(answer["status"], "Successful");
    assert_eq!(answer["result"]["organizations"], fixture["result"]["organizations"]);
    assert!(kept[0].1.contains("\"unitCostPrice\":18.5400"), "exact decimals");
}
