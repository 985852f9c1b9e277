//! Autotask as it really is, through the binary against `cmat-sim`: the contract's adjusted
//! price, hidden costs, duplicate contracts left by someone else, and picklist labels.

use crate::harness::{fixture, SimWorkspace};
use cmat_sim::{Seed, SimOptions};
use serde_json::{json, Value};

const OCTOBER: &str = "bill-2026-10-01.csv";
const CONTOSO_PREMIUM: &str = "4b76e46b-4ad0-4914-b5f6-bd4924bafd8e";
const FABRIKAM_AZURE: &str = "b275c4b1-5258-4492-bad6-f43b34c3a0ac";

/// The October bill with each `(from, to)` replaced once, written into the workspace.
fn bill_like_october(sw: &SimWorkspace, name: &str, edits: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(fixture(OCTOBER)).expect("fixture");
    for (from, to) in edits {
        assert!(text.contains(from), "{from} is in the October bill");
        text = text.replacen(from, to, 1);
    }
    sw.ws.write(name, &text);
    sw.ok(&["import", name]);
}

/// October imported, pulled, applied and converged.
fn onboarded(sw: &SimWorkspace) {
    sw.import(OCTOBER);
    sw.pull();
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert_converged(sw);
}

fn assert_converged(sw: &SimWorkspace) {
    sw.pull();
    let plan = sw.plan_detailed();
    assert_eq!(plan.status, 0, "converged:\n{}", plan.stdout);
    let writes = sw.writes();
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(sw.writes(), writes, "apply sends no write once converged");
}

fn plan_json(sw: &SimWorkspace) -> Value {
    let run = sw.ok(&["plan", "--format", "json"]);
    serde_json::from_str(&run.stdout).expect("the plan is JSON")
}

fn contract_ids_of(sw: &SimWorkspace, subscription: &str) -> Vec<i64> {
    sw.sim
        .records("Contracts")
        .into_iter()
        .filter(|contract| {
            contract["userDefinedFields"]
                .as_array()
                .is_some_and(|udfs| udfs.iter().any(|udf| udf["value"] == json!(subscription)))
        })
        .filter_map(|contract| contract["id"].as_i64())
        .collect()
}

#[test]
fn a_price_change_lands_in_the_adjusted_price_and_converges() {
    let sw = SimWorkspace::start();
    onboarded(&sw);
    // November: Exchange Online costs 4.40 instead of 4.00, same ten licences.
    let mut edits: Vec<(String, String)> = vec![(
        "CFQ7TTC0LH16,10,3.6000,4.0000,36.0000,40.0000".into(),
        "CFQ7TTC0LH16,10,3.6000,4.4000,36.0000,44.0000".into(),
    )];
    let october = std::fs::read_to_string(fixture(OCTOBER)).expect("fixture");
    for _ in october.matches("\n2026-10-01,").collect::<Vec<_>>() {
        edits.push(("\n2026-10-01,".into(), "\n2026-11-01,".into()));
    }
    let edits: Vec<(&str, &str)> = edits.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    bill_like_october(&sw, "bill-2026-11-01.csv", &edits);

    let plan = plan_json(&sw);
    let changes = plan["changes"].as_array().expect("changes");
    let repriced: Vec<&Value> =
        changes.iter().filter(|c| c["key"].as_str().unwrap().ends_with("CFQ7TTC0LH16")).collect();
    assert_eq!(repriced.len(), 1, "{changes:#?}");
    let change = repriced[0];
    assert_eq!(change["entity"], "ContractServiceAdjustments");
    assert_eq!(change["fields"]["unitChange"], 0);
    assert_eq!(change["fields"]["effectiveDate"], "2026-11-01");
    assert_eq!(change["fields"]["adjustedUnitPrice"], "4.4000");
    assert_eq!(change["fields"]["adjustedUnitCost"], "3.6000");
    assert!(change["fields"].get("unitPrice").is_none(), "never the read-only catalogue price");

    let run = sw.apply();
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let service = sw
        .sim
        .records("ContractServices")
        .into_iter()
        .find(|cs| {
            let contract = cs["contractID"].as_i64();
            contract_ids_of(&sw, "30bd2e42-38d9-4b15-a391-18f2ef00d40f")
                .iter()
                .any(|id| Some(*id) == contract)
        })
        .expect("Exchange Online on its contract");
    assert_eq!(service["internalCurrencyAdjustedPrice"], json!(4.4));
    assert_converged(&sw);
}

#[test]
fn hidden_costs_converge_on_a_restated_billed_month_without_a_cost_write() {
    let mut seed = Seed::bundled();
    seed.hide_costs = true;
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    onboarded(&sw);
    let plan = plan_json(&sw);
    let warnings: Vec<&str> =
        plan["warnings"].as_array().unwrap().iter().filter_map(|w| w["code"].as_str()).collect();
    assert!(warnings.contains(&"costs_not_visible"), "said once: {warnings:?}");
    assert_eq!(warnings.iter().filter(|code| **code == "costs_not_visible").count(), 1);

    // October is invoiced, then Cloudmore restates its Azure costs (not its prices).
    for charge in sw.sim.records("ContractCharges") {
        assert!(sw.sim.set_billed(charge["id"].as_i64().unwrap()));
    }
    bill_like_october(
        &sw,
        "bill-2026-10-01-recosted.csv",
        &[("0.0960,0.103680,71.4966,77.2163", "0.0990,0.103680,73.7266,77.2163")],
    );
    sw.pull();
    let plan = sw.plan_detailed();
    assert_eq!(plan.status, 0, "an unknown cost is never a write:\n{}", plan.stdout);

    // A restated price on the billed month is corrected, price only.
    bill_like_october(
        &sw,
        "bill-2026-10-01-restated.csv",
        &[("0.0960,0.103680,71.4966,77.2163", "0.0960,0.113680,71.4966,84.6639")],
    );
    let plan = plan_json(&sw);
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["action"], "create");
    assert_eq!(changes[0]["fields"]["unitPrice"], "7.4476");
    assert!(changes[0]["fields"].get("unitCost").is_none(), "{:#?}", changes[0]);
    let text = sw.ok(&["plan"]).stdout;
    let apart = text.split("Restatements of periods already invoiced:").nth(1).expect("set apart");
    assert!(apart.contains("Azure consumption 2026-10 correction"), "{text}");
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert_converged(&sw);
}

#[test]
fn duplicate_contracts_already_there_are_reported_and_never_written() {
    let mut seed = Seed::bundled();
    let contract = |id: i64| {
        json!({"id": id, "companyID": 29683501, "contractName": "Microsoft 365 (other tool)",
               "contractType": 7, "status": 1, "startDate": "2026-01-01", "endDate": "9999-12-31",
               "timeReportingRequiresStartAndStopTimes": 0,
               "userDefinedFields": [{"name": "Subscription ID", "value": CONTOSO_PREMIUM}]})
    };
    seed.records.insert("Contracts".into(), vec![contract(700), contract(701)]);
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    sw.import(OCTOBER);
    sw.pull();
    let plan = plan_json(&sw);
    let warning = plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "duplicate_contracts")
        .expect("warned");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("contracts 700, 701 all carry subscription {CONTOSO_PREMIUM}")),
        "{warning}"
    );
    let key = format!("subscription:{CONTOSO_PREMIUM}");
    assert!(plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| !c["key"].as_str().unwrap().starts_with(&key)));
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(contract_ids_of(&sw, CONTOSO_PREMIUM), vec![700, 701], "never a third");
    assert!(
        sw.sim
            .request_log()
            .iter()
            .all(|r| !r.route.contains("Contracts/700/") && !r.route.contains("Contracts/701/")),
        "nothing written under either"
    );
    assert!(!contract_ids_of(&sw, FABRIKAM_AZURE).is_empty(), "the rest is written");
}

#[test]
fn a_picklist_label_the_tenant_lacks_is_a_located_plan_error() {
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    sw.pull();
    let rules = sw.ws.read("mappings/microsoft.cmat");
    sw.ws.write(
        "mappings/microsoft.cmat",
        &rules.replace("contract_status = \"Active\"", "contract_status = \"Enabled\""),
    );
    let run = sw.cmat(&["plan"]);
    assert_eq!(run.status, 1);
    insta::assert_snapshot!("picklist_label_missing", run.stderr);
    // `check` knows the tenant's lists once a pull has read them.
    let run = sw.cmat(&["check"]);
    assert_eq!(run.status, 1, "{}", run.stdout);
    insta::assert_snapshot!("check_picklist_label_missing", run.stderr);
    let run = sw.apply();
    assert_eq!(run.status, 1);
    assert_eq!(sw.writes(), 0, "nothing is sent");
}

#[test]
fn a_bill_in_another_currency_than_the_companys_is_a_warning() {
    let mut seed = Seed::bundled();
    seed.records.insert(
        "Currencies".into(),
        vec![
            json!({"id": 1, "name": "EUR", "isInternalCurrency": true, "isActive": true}),
            json!({"id": 2, "name": "USD", "isInternalCurrency": false, "isActive": true}),
        ],
    );
    for company in seed.records.get_mut("Companies").expect("companies") {
        company["currencyID"] = json!(if company["id"] == 29683501 { 2 } else { 1 });
    }
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    sw.import(OCTOBER);
    sw.pull();
    let plan = plan_json(&sw);
    let mismatches: Vec<&str> = plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "currency_mismatch")
        .filter_map(|w| w["message"].as_str())
        .collect();
    assert!(!mismatches.is_empty(), "{plan:#}");
    assert!(
        mismatches.iter().all(|m| m.contains(
            "of \"Contoso Ltd\" is billed in EUR but Autotask company 29683501 bills in USD"
        )),
        "{mismatches:#?}"
    );
}

#[test]
fn plan_before_any_pull_says_to_pull_and_apply_reads_the_picklists_itself() {
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    let run = sw.cmat(&["plan"]);
    assert_eq!(run.status, 1);
    insta::assert_snapshot!("plan_before_any_pull", run.stderr);
    // apply re-reads Autotask anyway: it fetches the picklists it needs and converges.
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(sw.writes() > 0);
    assert_converged(&sw);
}
