//! `cmat plan` and `cmat apply` through the binary against the in-process simulator: the
//! confirmation rule, plan files (exactly their writes; stale ones refused), the JSON plan's
//! shape, and the audit trail.

use std::collections::BTreeMap;

use crate::harness::SimWorkspace;
use serde_json::{json, Value};

const OCTOBER: &str = "bill-2026-10-01.csv";
const NOVEMBER: &str = "bill-2026-11-01.csv";

/// A simulator and workspace with the October bill imported and Autotask pulled.
fn october() -> SimWorkspace {
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    sw.pull();
    sw
}

/// `plan --out plan.json`, read back.
fn plan_file(sw: &SimWorkspace) -> Value {
    sw.ok(&["plan", "--out", "plan.json"]);
    serde_json::from_str(&sw.ws.read("plan.json")).expect("plan.json is JSON")
}

#[test]
fn apply_without_auto_approve_refuses_when_stdin_is_not_a_terminal() {
    let sw = october();
    // The test runner gives the child no terminal: its standard input is closed.
    let run = sw.cmat(&["apply"]);
    assert_eq!(run.status, 1, "{}", run.stdout);
    assert_eq!(sw.writes(), 0, "nothing is written");
    insta::assert_snapshot!("apply_refuses_without_a_terminal", run.stderr);
}

#[test]
fn apply_plan_file_writes_exactly_the_plan() {
    let sw = october();
    let plan = plan_file(&sw);
    let changes = plan["changes"].as_array().expect("changes");
    assert!(!changes.is_empty());
    let log_before = sw.sim.request_log().len();
    let run = sw.cmat(&["apply", "plan.json", "--auto-approve"]);
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(sw.writes(), changes.len() as u64, "one write per planned change");
    // And one of each: the writes by entity are the changes by entity.
    let mut planned: BTreeMap<String, usize> = BTreeMap::new();
    for change in changes {
        let entity = change["entity"].as_str().expect("entity");
        let path = match entity {
            "Services" | "Contracts" => entity,
            "ContractServices" => "Services (child)",
            "ContractServiceAdjustments" => "ServiceAdjustments",
            "ContractCharges" => "Charges",
            other => panic!("unexpected entity {other}"),
        };
        *planned.entry(path.to_string()).or_default() += 1;
    }
    let mut written: BTreeMap<String, usize> = BTreeMap::new();
    for request in &sw.sim.request_log()[log_before..] {
        if request.method == "GET" || request.route.contains("/query") {
            continue;
        }
        assert_eq!(request.status, 200, "{request:?}");
        let path = match request.route.rsplit_once('/') {
            Some((_, "Services")) => "Services (child)".to_string(),
            Some((_, last)) => last.to_string(),
            None => request.route.split(' ').nth(1).unwrap_or_default().to_string(),
        };
        *written.entry(path).or_default() += 1;
    }
    assert_eq!(written, planned);
    let plan = sw.plan_detailed();
    assert_eq!(plan.status, 0, "converged: {}", plan.stdout);
}

/// The contract id of a subscription in the simulator.
fn contract_of(sw: &SimWorkspace, subscription: &str) -> i64 {
    sw.sim
        .records("Contracts")
        .into_iter()
        .find(|contract| {
            contract["userDefinedFields"]
                .as_array()
                .is_some_and(|udfs| udfs.iter().any(|udf| udf["value"] == json!(subscription)))
        })
        .and_then(|contract| contract["id"].as_i64())
        .expect("the subscription's contract")
}

#[test]
fn a_plan_file_is_stale_when_autotask_changed_behind_it() {
    let sw = october();
    sw.ok(&["apply", "--auto-approve"]);
    sw.import(NOVEMBER);
    plan_file(&sw);

    // Someone adds a licence in Autotask by hand, on a contract the plan adjusts.
    let contract = contract_of(&sw, "4b76e46b-4ad0-4914-b5f6-bd4924bafd8e");
    let service = sw
        .sim
        .records("ContractServices")
        .into_iter()
        .find(|cs| cs["contractID"] == json!(contract))
        .and_then(|cs| cs["serviceID"].as_i64())
        .expect("a contract service");
    let credentials = sw.sim.credentials();
    let response = reqwest::blocking::Client::new()
        .post(format!("{}v1.0/Contracts/{contract}/ServiceAdjustments", sw.sim.base_url()))
        .header("ApiIntegrationCode", &credentials.integration_code)
        .header("UserName", &credentials.username)
        .header("Secret", &credentials.secret)
        .header("Content-Type", "application/json")
        .body(
            json!({"contractID": contract, "serviceID": service,
                   "effectiveDate": "2026-11-15", "unitChange": 1})
            .to_string(),
        )
        .send()
        .expect("post an adjustment");
    assert_eq!(response.status(), 200);
    let writes = sw.writes();

    let run = sw.cmat(&["apply", "plan.json", "--auto-approve"]);
    assert_eq!(run.status, 1, "{}", run.stdout);
    assert!(run.stderr.contains("stale plan"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert_eq!(sw.writes(), writes, "nothing was written");
}

#[test]
fn a_plan_file_is_stale_when_a_new_bill_was_imported() {
    let sw = october();
    plan_file(&sw);
    sw.import(NOVEMBER);
    let run = sw.cmat(&["apply", "plan.json", "--auto-approve"]);
    assert_eq!(run.status, 1, "{}", run.stdout);
    assert!(run.stderr.contains("stale plan"), "{}", run.stderr);
    assert!(run.stderr.contains("imported bills"), "{}", run.stderr);
    assert_eq!(sw.writes(), 0, "nothing was written");
}

/// A JSON number anywhere in a change's amounts would be a float.
fn assert_no_float(value: &Value, path: &str) {
    match value {
        Value::Number(number) => {
            assert!(number.is_i64() || number.is_u64(), "{path} is a float: {number}")
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                assert_no_float(item, &format!("{path}[{i}]"));
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                assert_no_float(item, &format!("{path}.{key}"));
            }
        }
        _ => {}
    }
}

#[test]
fn the_json_plan_has_the_documented_shape() {
    let sw = october();
    let run = sw.ok(&["plan", "--format", "json"]);
    let plan: Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    assert_eq!(plan["format_version"], json!(1));
    assert!(plan["created_at"]
        .as_str()
        .is_some_and(|at| chrono::DateTime::parse_from_rfc3339(at).is_ok()));
    for digest in ["snapshot", "inputs", "mappings"] {
        let value = plan["digests"][digest].as_str().expect("a digest");
        let hex = value.strip_prefix("sha256:").expect("sha256: prefix");
        assert!(hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()), "{value}");
    }
    let changes = plan["changes"].as_array().expect("changes");
    let mut by_action: BTreeMap<&str, u64> = BTreeMap::new();
    for change in changes {
        let action = change["action"].as_str().expect("action");
        assert!(["create", "update", "adjust", "delete"].contains(&action), "{action}");
        *by_action.entry(action).or_default() += 1;
        for field in
            ["ref", "action", "entity", "id", "parent", "key", "fields", "before", "rule", "reason"]
        {
            assert!(change.get(field).is_some(), "{field} missing in {change}");
        }
        let rule = change["rule"].as_str().expect("rule");
        let line =
            rule.strip_prefix("mappings/microsoft.cmat:").unwrap_or_else(|| panic!("rule {rule}"));
        assert!(line.parse::<u32>().is_ok_and(|n| n > 0), "{rule}");
        if let Some(parent) = change["parent"].as_object() {
            assert!(
                parent.contains_key("ref")
                    || (parent.contains_key("entity") && parent.contains_key("id")),
                "{change}"
            );
        }
        assert_no_float(&change["fields"], &format!("{}.fields", change["ref"]));
        assert_no_float(&change["before"], &format!("{}.before", change["ref"]));
    }
    for action in ["create", "update", "adjust", "delete"] {
        assert_eq!(
            plan["summary"][action].as_u64(),
            Some(by_action.get(action).copied().unwrap_or(0)),
            "summary.{action}"
        );
    }
    assert_eq!(
        plan["summary"]["warnings"].as_u64(),
        Some(plan["warnings"].as_array().expect("warnings").len() as u64)
    );
    // Money is a string with four decimals, never a float.
    let charge =
        changes.iter().find(|c| c["entity"] == json!("ContractCharges")).expect("a charge");
    let price = charge["fields"]["unitPrice"].as_str().expect("a string");
    assert!(price.split_once('.').is_some_and(|(_, d)| d.len() == 4), "{price}");

    let _stable = crate::harness::stable_snapshots();
    insta::assert_json_snapshot!("october_plan_json", plan);
}

#[test]
fn the_text_plan_of_the_october_onboarding() {
    let sw = october();
    let run = sw.ok(&["plan"]);
    insta::assert_snapshot!("october_plan_text", run.stdout);
}

const AUDIT_COLUMNS: &str = "run_id,at,action,entity,autotask_id,key,field,old_value,new_value,rule,outcome,http_status,message,prev_digest,digest";

#[test]
fn the_audit_trail_has_one_row_per_field_written() {
    let sw = october();
    let plan = plan_file(&sw);
    sw.ok(&["apply", "plan.json", "--auto-approve"]);
    let run = sw.ok(&["audit"]);
    let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
    let header: Vec<String> = reader.headers().expect("header").iter().map(String::from).collect();
    assert_eq!(header.join(","), AUDIT_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
    let fields: usize = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["fields"].as_object().expect("fields").len())
        .sum();
    assert_eq!(rows.len(), fields, "one row per field written");
    let run_ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(run_ids.len(), 1, "one run");
    for row in &rows {
        assert_eq!(&row[10], "applied", "{row:?}");
        assert_eq!(&row[11], "200", "{row:?}");
        assert!(chrono::DateTime::parse_from_rfc3339(&row[1]).is_ok(), "{row:?}");
        assert!(row[9].starts_with("mappings/microsoft.cmat:"), "{row:?}");
    }
    // Each change's fields, by key and field name, are in the trail.
    let mut expected: Vec<(String, String)> = Vec::new();
    for change in plan["changes"].as_array().expect("changes") {
        for field in change["fields"].as_object().expect("fields").keys() {
            expected.push((change["key"].as_str().unwrap().to_string(), field.clone()));
        }
    }
    let mut found: Vec<(String, String)> =
        rows.iter().map(|r| (r[5].to_string(), r[6].to_string())).collect();
    expected.sort();
    found.sort();
    assert_eq!(found, expected);
}
