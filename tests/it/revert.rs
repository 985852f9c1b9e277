//! `cmat revert RUN_ID` (issue 29, item 1) through the binary against the simulator: a month
//! applied, reverted, the revert applied; Autotask's units and prices from the revert's dates on
//! are what they were before the run, its unbilled charges are gone, a re-plan of the revert is
//! empty; a run whose records a later run changed is refused for those records; a revert is
//! itself reverted.

use std::collections::BTreeMap;

use crate::harness::{AutotaskState, SimWorkspace};
use serde_json::Value;

const OCTOBER: &str = "bill-2026-10-01.csv";
const NOVEMBER: &str = "bill-2026-11-01.csv";

/// `cmat apply` (a plan file, or a new plan) and the run id it prints.
fn apply(sw: &SimWorkspace, args: &[&str]) -> String {
    let run = sw.ok(args);
    run.stdout
        .lines()
        .find_map(|line| line.strip_prefix("Audit trail: cmat audit --run "))
        .unwrap_or_else(|| panic!("apply names its run:\n{}", run.stdout))
        .trim()
        .to_string()
}

/// October onboarded (run 1), November applied over it (run 2); the state between the two.
fn two_months() -> (SimWorkspace, String, String, AutotaskState) {
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    sw.pull();
    let october = apply(&sw, &["apply", "--auto-approve"]);
    let before = sw.state();
    sw.import(NOVEMBER);
    let november = apply(&sw, &["apply", "--auto-approve"]);
    (sw, october, november, before)
}

fn revert_json(sw: &SimWorkspace, run_id: &str, out: &str) -> Value {
    sw.ok(&["revert", run_id, "--out", out]);
    serde_json::from_str(&sw.ws.read(out)).expect("the revert plan is JSON")
}

/// Units in force on `date` among periods keyed by their start date.
fn units_on(units: &BTreeMap<String, i64>, date: &str) -> i64 {
    units.range(..=date.to_string()).next_back().map(|(_, units)| *units).unwrap_or(0)
}

fn changes(plan: &Value) -> &Vec<Value> {
    plan["changes"].as_array().expect("changes")
}

/// The latest effective date of the plan's adjustments: from there on every service is back.
fn latest_adjustment(plan: &Value) -> String {
    changes(plan)
        .iter()
        .filter(|change| change["action"] == "adjust")
        .filter_map(|change| change["fields"]["effectiveDate"].as_str())
        .max()
        .expect("the revert adjusts units")
        .to_string()
}

/// Every contract service of `before` holds, in `after`, the same adjusted price and, on every
/// period from `from` on, the units `before` had in force then; services `before` lacked hold 0.
fn assert_back(before: &AutotaskState, after: &AutotaskState, from: &str) {
    for (key, now) in &after.contract_services {
        let was = before.contract_services.get(key);
        if let Some(was) = was {
            assert_eq!(now.adjusted_price, was.adjusted_price, "{key:?}: price back");
        }
        for date in now.units.keys().filter(|date| date.as_str() >= from) {
            let expected = was.map_or(0, |was| units_on(&was.units, date));
            assert_eq!(units_on(&now.units, date), expected, "{key:?}: units on {date}");
        }
    }
}

#[test]
fn a_reverted_month_leaves_units_prices_and_charges_as_before_the_run() {
    let (sw, _october, november, before) = two_months();
    let after_november = sw.state();
    let created: Vec<_> = after_november
        .charges
        .keys()
        .filter(|key| !before.charges.contains_key(*key))
        .cloned()
        .collect();
    assert!(!created.is_empty(), "November creates charges to revert");
    let plan = revert_json(&sw, &november, "revert.json");
    assert!(
        changes(&plan).iter().all(|change| change["rule"] == format!("revert:{november}")),
        "every change names the run it reverts"
    );
    let text = sw.ok(&["revert", &november]).stdout;
    {
        let _stable = crate::harness::stable_snapshots();
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"\d{8}T\d{6}Z-\d+-\d+", "[RUN]");
        // Ids follow the order Autotask took the month's writes in, three at a time.
        settings.add_filter(r"#\d+", "#[ID]");
        settings.add_filter(r"serviceID = \d+", "serviceID = [ID]");
        settings.bind(|| insta::assert_snapshot!("revert_of_november", text));
    }
    let writes = sw.writes();
    let revert = apply(&sw, &["apply", "revert.json", "--auto-approve"]);
    assert_eq!(
        sw.writes() - writes,
        changes(&plan).len() as u64,
        "one write per change: no adjustment refused as a second one on a day"
    );
    let after = sw.state();
    after.assert_no_duplicates("after the revert");
    assert_back(&before, &after, &latest_adjustment(&plan));
    for key in &created {
        assert!(!after.charges.contains_key(key), "the run's unbilled charge {key:?} is gone");
    }
    assert_eq!(after.charges, before.charges, "the charges are October's again");
    let again = sw.cmat(&["revert", &november, "--detailed-exitcode", "--format", "json"]);
    assert_eq!(again.status, 0, "a re-plan of the applied revert is empty:\n{}", again.stdout);
    let audit = sw.ok(&["audit", "--run", &revert]).stdout;
    assert!(audit.contains(&format!("revert:{november}")), "the audit rows name the run:\n{audit}");
    assert!(audit.contains(",delete,ContractCharges,"), "the deletes are audited:\n{audit}");
}

#[test]
fn a_run_whose_records_a_later_run_changed_is_refused_for_them_naming_that_run() {
    let (sw, october, november, _before) = two_months();
    let plan = revert_json(&sw, &october, "revert-october.json");
    let refused: Vec<&Value> = plan["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter(|warning| warning["code"] == "revert_refused")
        .collect();
    assert!(!refused.is_empty(), "November changed October's records:\n{plan:#}");
    for warning in &refused {
        let message = warning["message"].as_str().unwrap_or_default();
        assert!(message.contains(&november), "the refusal names the later run: {message}");
        let source = &warning["source"];
        assert!(
            changes(&plan).iter().all(|change| &change["key"] != source),
            "nothing is planned for refused record {source}"
        );
    }
}

#[test]
fn a_revert_is_itself_reverted() {
    let (sw, _october, november, _before) = two_months();
    let after_november = sw.state();
    revert_json(&sw, &november, "revert.json");
    let revert = apply(&sw, &["apply", "revert.json", "--auto-approve"]);
    let plan = revert_json(&sw, &revert, "again.json");
    assert!(!changes(&plan).is_empty(), "undoing the revert writes again");
    apply(&sw, &["apply", "again.json", "--auto-approve"]);
    let after = sw.state();
    after.assert_no_duplicates("after reverting the revert");
    assert_back(&after_november, &after, &latest_adjustment(&plan));
    let charges = |state: &AutotaskState| state.charges.keys().cloned().collect::<Vec<_>>();
    assert_eq!(charges(&after), charges(&after_november), "the deleted charges are back");
}

#[test]
fn a_billed_charge_is_offset_and_an_unknown_run_is_refused() {
    let (sw, _october, november, _before) = two_months();
    let charge = sw
        .sim
        .records("ContractCharges")
        .into_iter()
        .find(|charge| charge["datePurchased"].as_str().is_some_and(|d| d.starts_with("2026-11")))
        .expect("November charged Azure");
    let id = charge["id"].as_i64().expect("id");
    assert!(sw.sim.set_billed(id), "the simulator invoices the charge");
    sw.pull();
    let plan = revert_json(&sw, &november, "revert.json");
    let deletes = changes(&plan).iter().filter(|change| change["action"] == "delete");
    assert!(deletes.clone().all(|change| change["id"] != id), "a billed charge is never deleted");
    let offset = changes(&plan)
        .iter()
        .find(|change| change["action"] == "create" && change["entity"] == "ContractCharges")
        .expect("an offsetting charge");
    let name = format!("{} reversal", charge["name"].as_str().unwrap_or_default());
    assert_eq!(offset["fields"]["name"], name.as_str());
    apply(&sw, &["apply", "revert.json", "--auto-approve"]);
    let state = sw.state();
    let billed = state.charges.iter().find(|(key, view)| key.2 != name && view.is_billed);
    let reversal = state.charges.iter().find(|(key, _)| key.2 == name);
    let (Some((_, billed)), Some((_, reversal))) = (billed, reversal) else {
        panic!("the billed charge and its reversal: {:#?}", state.charges)
    };
    let total = |view: &crate::harness::ChargeView| {
        view.unit_quantity.parse::<rust_decimal::Decimal>().expect("quantity")
            * view.unit_price.parse::<rust_decimal::Decimal>().expect("price")
    };
    assert_eq!(total(billed) + total(reversal), rust_decimal::Decimal::ZERO, "they cancel out");
    let again = sw.cmat(&["revert", &november, "--detailed-exitcode"]);
    assert_eq!(again.status, 0, "a re-plan is empty:\n{}", again.stdout);

    let unknown = sw.cmat(&["revert", "20990101T000000Z-1-1"]);
    assert_eq!(unknown.status, 1);
    assert!(
        unknown.stderr.contains("run 20990101T000000Z-1-1 wrote nothing"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn a_restatement_is_reverted_to_the_month_it_restated() {
    let (sw, _october, _november, _before) = two_months();
    let november = sw.state();
    sw.import("bill-2026-11-01-restated.csv");
    let restated = apply(&sw, &["apply", "--auto-approve"]);
    let plan = revert_json(&sw, &restated, "revert.json");
    assert!(
        changes(&plan)
            .iter()
            .any(|change| change["action"] == "update" && change["entity"] == "ContractCharges"),
        "the restatement repriced an unbilled charge:\n{plan:#}"
    );
    apply(&sw, &["apply", "revert.json", "--auto-approve"]);
    let after = sw.state();
    assert_eq!(after.charges, november.charges, "the charges are November's again");
    if changes(&plan).iter().any(|change| change["action"] == "adjust") {
        assert_back(&november, &after, &latest_adjustment(&plan));
    }
    let again = sw.cmat(&["revert", &restated, "--detailed-exitcode"]);
    assert_eq!(again.status, 0, "a re-plan is empty:\n{}", again.stdout);
}
