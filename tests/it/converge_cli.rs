//! Issue 23's three defects through the binary against the simulator: a decrease written a
//! year ahead is read back (the next plan is empty, apply sends nothing), a `term_end` decrease
//! on a contract that began before cmat waits for that contract's term, and two products on one
//! named Service are one contract service (summed when they agree, left out when they do not).
//! Then what the convergence property test found beyond them: a restatement emptying a month
//! never takes a later-dated unit period below zero, and a restated price after a price-only
//! adjustment goes to a free day.

use cmat_sim::{Seed, SimOptions};
use serde_json::{json, Value};

use crate::harness::SimWorkspace;

const CONTOSO: i64 = 29683501;

/// One bill line: (Billing Date, subscription, product, item code, quantity, unit cost, unit
/// price, Payment Frequency).
type Row<'a> = (&'a str, &'a str, &'a str, &'a str, i64, &'a str, &'a str, &'a str);

/// A Cloudmore billing report of these lines, every one Contoso's.
fn bill(rows: &[Row<'_>]) -> String {
    let header = std::fs::read_to_string(crate::harness::fixture("bill-2026-10-01.csv"))
        .expect("the bundled bill")
        .lines()
        .next()
        .expect("a header")
        .to_string();
    let mut text = header + "\n";
    for (date, subscription, product, item, quantity, cost, price, term) in rows {
        let cost: rust_decimal::Decimal = cost.parse().expect("cost");
        let price: rust_decimal::Decimal = price.parse().expect("price");
        let (total_cost, total_sales) = (
            cost * rust_decimal::Decimal::from(*quantity),
            price * rust_decimal::Decimal::from(*quantity),
        );
        text.push_str(&format!(
            "{date},Microsoft NCE,Microsoft,Contoso Ltd,CM-100231,{product},{item},{quantity},{cost},{price},{total_cost},{total_sales},{},0,EUR,{item}:0001,{term},,{subscription},{product} (Contoso Ltd),{product},EUR,Managed Services,,{CONTOSO}\n",
            total_sales - total_cost
        ));
    }
    text
}

fn import(sw: &SimWorkspace, name: &str, rows: &[Row<'_>]) {
    sw.ws.write(name, &bill(rows));
    sw.ok(&["import", name]);
}

fn plan_json(sw: &SimWorkspace) -> Value {
    sw.ok(&["plan", "--format", "json", "--out", "plan.json"]);
    serde_json::from_str(&sw.ws.read("plan.json")).expect("plan JSON")
}

/// Pulls, applies, and checks the daily run after it writes nothing.
fn apply_and_converge(sw: &SimWorkspace, what: &str) {
    sw.pull();
    let run = sw.apply();
    assert_eq!(run.status, 0, "apply {what}:\n{}\n{}", run.stdout, run.stderr);
    sw.pull();
    let plan = sw.plan_detailed();
    assert_eq!(plan.status, 0, "converged after {what}:\n{}", plan.stdout);
    let writes = sw.writes();
    let again = sw.apply();
    assert_eq!(again.status, 0, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(sw.writes(), writes, "a converged apply sends no write ({what})");
    sw.state().assert_no_duplicates(what);
}

fn adjustments_of(sw: &SimWorkspace, subscription: &str) -> Vec<(String, i64)> {
    let state = sw.state();
    let mut all: Vec<(String, i64)> = state
        .contract_services
        .iter()
        .filter(|((sub, _), _)| sub == subscription)
        .flat_map(|(_, view)| view.adjustments.clone())
        .collect();
    all.sort();
    all
}

#[test]
fn a_next_period_decrease_a_year_ahead_is_read_back_and_never_sent_twice() {
    let sw = SimWorkspace::start();
    sw.ws.write(
        "mappings/annual.cmat",
        "for term \"Annual\" {\n    decrease = next_period\n    term_months = 36\n}\n",
    );
    sw.ok(&["check"]);
    let line = |date: &'static str, quantity: i64| -> Row<'static> {
        (
            date,
            "SUB-ANNUAL",
            "Microsoft 365 E3",
            "CFQ7TTC0LFLX",
            quantity,
            "30.00",
            "33.00",
            "Annual",
        )
    };
    import(&sw, "bill-2026-10-01.csv", &[line("2026-10-01", 10)]);
    apply_and_converge(&sw, "October");
    import(&sw, "bill-2026-11-01.csv", &[line("2026-11-01", 8)]);
    let plan = plan_json(&sw);
    let changes = plan["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["fields"]["effectiveDate"], "2027-11-01", "{:#}", changes[0]);
    apply_and_converge(&sw, "November");
    assert_eq!(
        adjustments_of(&sw, "SUB-ANNUAL"),
        vec![("2026-10-01".to_string(), 10), ("2027-11-01".to_string(), -2)]
    );
    // The next month's bill, same count: the decrease is already there.
    import(&sw, "bill-2026-12-01.csv", &[line("2026-12-01", 8)]);
    apply_and_converge(&sw, "December");
    assert_eq!(adjustments_of(&sw, "SUB-ANNUAL").len(), 2);
}

/// A contract another tool made on 2025-11-01 for a year, with 10 seats since then.
fn adopted_contract_seed() -> Seed {
    let mut seed = Seed::bundled();
    seed.records.insert(
        "Services".into(),
        vec![json!({"id": 7001, "name": "Microsoft 365 Business Standard", "sku": "CFQ7TTC0LDPB",
                    "billingCodeID": 29682801, "periodType": 2, "unitPrice": 11.0, "unitCost": 10.0,
                    "isActive": true})],
    );
    seed.records.insert(
        "Contracts".into(),
        vec![json!({"id": 7100, "companyID": CONTOSO, "contractName": "Microsoft 365 - Contoso Ltd",
                    "contractType": 7, "status": 1, "startDate": "2025-11-01", "endDate": "2026-10-31",
                    "timeReportingRequiresStartAndStopTimes": 0, "serviceLevelAgreementID": 1,
                    "userDefinedFields": [{"name": "Subscription ID", "value": "SUB-ADOPTED"}]})],
    );
    seed.records.insert(
        "ContractServiceAdjustments".into(),
        vec![json!({"contractID": 7100, "serviceID": 7001, "effectiveDate": "2025-11-01",
                    "unitChange": 10, "adjustedUnitPrice": 11.0, "adjustedUnitCost": 10.0})],
    );
    seed
}

#[test]
fn a_term_end_decrease_waits_for_the_term_of_a_contract_that_began_before_cmat() {
    let sw = SimWorkspace::start_seeded(adopted_contract_seed(), SimOptions::default());
    sw.ws.write(
        "mappings/nce.cmat",
        "for subscription \"SUB-ADOPTED\" {\n    decrease = term_end\n}\n",
    );
    sw.ok(&["check"]);
    let line = |date: &'static str| -> Row<'static> {
        (
            date,
            "SUB-ADOPTED",
            "Microsoft 365 Business Standard",
            "CFQ7TTC0LDPB",
            8,
            "10.00",
            "11.00",
            "Monthly",
        )
    };
    // Only the last month of its term was imported: the seats stay until the term ends.
    import(&sw, "bill-2026-10-01.csv", &[line("2026-10-01")]);
    sw.pull();
    let plan = plan_json(&sw);
    assert!(plan["changes"].as_array().expect("changes").is_empty(), "{:#}", plan["changes"]);
    let deferred: Vec<&str> = plan["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter(|w| w["code"] == "decrease_deferred")
        .filter_map(|w| w["message"].as_str())
        .collect();
    assert_eq!(deferred.len(), 1, "{:#}", plan["warnings"]);
    assert!(deferred[0].contains("takes effect 2026-11-01"), "{}", deferred[0]);
    assert!(
        deferred[0].contains("mappings/nce.cmat:2"),
        "the decrease rule is cited: {}",
        deferred[0]
    );
    apply_and_converge(&sw, "the term's last month");
    assert_eq!(adjustments_of(&sw, "SUB-ADOPTED"), vec![("2025-11-01".to_string(), 10)]);

    // The renewal's bill: the contract runs another year and the seats drop on its first day.
    import(&sw, "bill-2026-11-01.csv", &[line("2026-11-01")]);
    sw.pull();
    let plan = plan_json(&sw);
    let decrease = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["entity"] == "ContractServiceAdjustments")
        .cloned()
        .expect("the decrease");
    assert_eq!(decrease["fields"]["effectiveDate"], "2026-11-01", "{decrease:#}");
    assert_eq!(decrease["rule"], "mappings/nce.cmat:2", "the decrease rule is cited: {decrease:#}");
    apply_and_converge(&sw, "the renewal");
    assert_eq!(
        adjustments_of(&sw, "SUB-ADOPTED"),
        vec![("2025-11-01".to_string(), 10), ("2026-11-01".to_string(), -2)]
    );
    assert_eq!(sw.state().contracts["SUB-ADOPTED"].end_date, "2027-10-31");
}

fn shared_service_workspace() -> SimWorkspace {
    let mut seed = Seed::bundled();
    seed.records.insert(
        "Services".into(),
        vec![json!({"id": 7002, "name": "Microsoft 365 (all plans)", "sku": "M365-ALL",
                    "billingCodeID": 29682801, "periodType": 2, "unitPrice": 20.0, "unitCost": 18.0,
                    "isActive": true})],
    );
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    sw.ws.write(
        "mappings/shared.cmat",
        "for customer_number \"CM-100231\" {\n    service = 7002\n}\n",
    );
    sw.ok(&["check"]);
    sw
}

#[test]
fn two_products_on_one_service_agreeing_on_price_are_one_contract_service() {
    let sw = shared_service_workspace();
    import(
        &sw,
        "bill-2026-10-01.csv",
        &[
            (
                "2026-10-01",
                "SUB-TWO",
                "Microsoft 365 E3",
                "CFQ7TTC0LFLX",
                5,
                "18.00",
                "20.00",
                "Monthly",
            ),
            (
                "2026-10-01",
                "SUB-TWO",
                "Microsoft 365 E3 (add-on)",
                "CFQ7TTC0LFLZ",
                3,
                "18.00",
                "20.00",
                "Monthly",
            ),
        ],
    );
    apply_and_converge(&sw, "October");
    assert_eq!(adjustments_of(&sw, "SUB-TWO"), vec![("2026-10-01".to_string(), 8)]);
    import(
        &sw,
        "bill-2026-11-01.csv",
        &[
            (
                "2026-11-01",
                "SUB-TWO",
                "Microsoft 365 E3",
                "CFQ7TTC0LFLX",
                6,
                "18.00",
                "20.00",
                "Monthly",
            ),
            (
                "2026-11-01",
                "SUB-TWO",
                "Microsoft 365 E3 (add-on)",
                "CFQ7TTC0LFLZ",
                1,
                "18.00",
                "20.00",
                "Monthly",
            ),
        ],
    );
    apply_and_converge(&sw, "November");
    assert_eq!(
        adjustments_of(&sw, "SUB-TWO"),
        vec![("2026-10-01".to_string(), 8), ("2026-11-01".to_string(), -1)]
    );
}

#[test]
fn two_products_on_one_service_at_different_prices_are_left_out_and_named() {
    let sw = shared_service_workspace();
    import(
        &sw,
        "bill-2026-10-01.csv",
        &[
            (
                "2026-10-01",
                "SUB-TWO",
                "Microsoft 365 E3",
                "CFQ7TTC0LFLX",
                5,
                "18.00",
                "20.00",
                "Monthly",
            ),
            (
                "2026-10-01",
                "SUB-TWO",
                "Microsoft 365 E5",
                "CFQ7TTC0LFM0",
                3,
                "30.00",
                "33.00",
                "Monthly",
            ),
        ],
    );
    sw.pull();
    let plan = plan_json(&sw);
    let adjustments = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["entity"] == "ContractServiceAdjustments")
        .count();
    assert_eq!(adjustments, 0, "{:#}", plan["changes"]);
    let conflict: Vec<&str> = plan["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["message"].as_str())
        .filter(|m| m.contains("Service 7002"))
        .collect();
    assert_eq!(conflict.len(), 1, "{:#}", plan["warnings"]);
    for needed in ["CFQ7TTC0LFLX", "CFQ7TTC0LFM0", "mappings/shared.cmat:2"] {
        assert!(conflict[0].contains(needed), "{needed} in {}", conflict[0]);
    }
    apply_and_converge(&sw, "October");
}

/// A contract another tool made for 2024 (ended since), with 5 seats: its last unit period ends
/// before the units window, so the engine cannot see the seats a renewal carries on.
fn lapsed_contract_seed() -> Seed {
    let mut seed = Seed::bundled();
    seed.records.insert(
        "Services".into(),
        vec![json!({"id": 7003, "name": "Microsoft 365 Business Premium", "sku": "CFQ7TTC0LCHC",
                    "billingCodeID": 29682801, "periodType": 2, "unitPrice": 20.6, "unitCost": 18.54,
                    "isActive": true})],
    );
    seed.records.insert(
        "Contracts".into(),
        vec![json!({"id": 7200, "companyID": CONTOSO, "contractName": "Microsoft 365 - Contoso Ltd",
                    "contractType": 7, "status": 1, "startDate": "2024-01-01", "endDate": "2024-12-31",
                    "timeReportingRequiresStartAndStopTimes": 0, "serviceLevelAgreementID": 1,
                    "userDefinedFields": [{"name": "Subscription ID", "value": "SUB-LAPSED"}]})],
    );
    seed.records.insert(
        "ContractServiceAdjustments".into(),
        vec![json!({"contractID": 7200, "serviceID": 7003, "effectiveDate": "2024-01-01",
                    "unitChange": 5, "adjustedUnitPrice": 20.6, "adjustedUnitCost": 18.54})],
    );
    seed
}

/// `sync` re-plans what it wrote; a change still planned is a warning naming it, the review
/// lists it among the exceptions, and the next sync plans it again even without a new bill
/// (never silently left, never the same write sent blind). The case: a contract that lapsed
/// before the bills' window is renewed first (its units cannot be read before), then adjusted.
#[test]
fn sync_says_when_its_own_writes_did_not_settle_and_the_next_sync_finishes() {
    let sw = SimWorkspace::start_seeded(lapsed_contract_seed(), SimOptions::default());
    let line: Row<'static> = (
        "2026-10-01",
        "SUB-LAPSED",
        "Microsoft 365 Business Premium",
        "CFQ7TTC0LCHC",
        7,
        "18.54",
        "20.60",
        "Monthly",
    );
    sw.ws.write("bill-2026-10-01.csv", &bill(&[line]));
    let run = sw.cmat(&["sync", "--import", "bill-2026-10-01.csv", "--auto-approve"]);
    assert_eq!(run.status, 2, "written:\n{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("warning: not_converged: adjust ContractServiceAdjustments"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("licence count 5 → 7"), "the change is named: {}", run.stderr);
    // The seats the lapsed contract carries on were never doubled by a blind write.
    assert_eq!(adjustments_of(&sw, "SUB-LAPSED"), vec![("2024-01-01".to_string(), 5)]);
    let review = sw.ok(&["report", "--format", "json"]);
    let review: Value = serde_json::from_str(&review.stdout).expect("review JSON");
    let kinds: Vec<&str> = review["exceptions"]
        .as_array()
        .expect("exceptions")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"not_converged"), "{kinds:?}");

    // No new bill, but the last sync did not settle: this one finishes, then all is quiet.
    let run = sw.cmat(&["sync", "--auto-approve"]);
    assert_eq!(run.status, 2, "written:\n{}\n{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("not_converged"), "{}", run.stderr);
    assert_eq!(
        adjustments_of(&sw, "SUB-LAPSED"),
        vec![("2024-01-01".to_string(), 5), ("2026-10-01".to_string(), 2)]
    );
    let run = sw.cmat(&["sync", "--auto-approve"]);
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("nothing to do"), "{}", run.stdout);
}

/// A restatement that takes a subscription's every line off a month makes an older bill its
/// current one again: its deferred decrease, dated before the decrease a later bill wrote, may
/// not take that later unit period below zero (Autotask refuses it, and every apply after would
/// fail on it). The convergence test's seed `02ea485a…`, through the binary.
#[test]
fn a_restatement_emptying_a_month_never_takes_a_later_unit_period_below_zero() {
    let sw = SimWorkspace::start();
    sw.ws.write(
        "mappings/monthly.cmat",
        "for term \"Monthly\" {\n    decrease = next_period\n    term_months = 2\n}\n",
    );
    sw.ok(&["check"]);
    let premium = |date: &'static str, quantity: i64| -> Row<'static> {
        (
            date,
            "SUB-M",
            "Microsoft 365 Business Premium",
            "CFQ7TTC0LCHC",
            quantity,
            "18.54",
            "20.60",
            "Monthly",
        )
    };
    let e3 = |date: &'static str, subscription: &'static str| -> Row<'static> {
        (date, subscription, "Microsoft 365 E3", "CFQ7TTC0LFLX", 1, "30.00", "33.00", "Monthly")
    };
    import(&sw, "bill-2026-10-01.csv", &[premium("2026-10-01", 3), e3("2026-10-01", "SUB-M")]);
    apply_and_converge(&sw, "October");
    // Business Premium leaves the bill: its decrease falls after the contract's end.
    import(&sw, "bill-2026-11-01.csv", &[e3("2026-11-01", "SUB-M")]);
    apply_and_converge(&sw, "November");
    // Renewed; 3 → 1 from the next period.
    import(&sw, "bill-2026-12-01.csv", &[premium("2026-12-01", 1), e3("2026-12-01", "SUB-M")]);
    apply_and_converge(&sw, "December");
    let premium_adjustments = |sw: &SimWorkspace| {
        sw.state().contract_services[&("SUB-M".to_string(), "CFQ7TTC0LCHC".to_string())]
            .adjustments
            .clone()
    };
    assert_eq!(premium_adjustments(&sw), vec![("2026-10-01".into(), 3), ("2027-01-01".into(), -2)]);
    // December restated: SUB-M is not on it at all, so November's bill is its current one again.
    import(&sw, "bill-2026-12-01.csv", &[e3("2026-12-01", "SUB-OTHER")]);
    apply_and_converge(&sw, "December restated");
    // As low as the later period allows (it holds 1): 2 in December, none from January.
    assert_eq!(
        premium_adjustments(&sw),
        vec![("2026-10-01".into(), 3), ("2026-12-01".into(), -1), ("2027-01-01".into(), -2)]
    );
    let run = sw.plan_detailed();
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("would take a later-dated unit period below zero"), "{said}");
}

/// A price-only adjustment, then its bill restated at another price: the second price goes to a
/// day no adjustment has taken (Autotask keeps one per contract service and day).
#[test]
fn a_restated_price_after_a_price_only_adjustment_is_never_refused_as_a_duplicate() {
    let sw = SimWorkspace::start();
    let line = |date: &'static str, price: &'static str| -> Row<'static> {
        (date, "SUB-P", "Microsoft 365 E3", "CFQ7TTC0LFLX", 5, "30.00", price, "Monthly")
    };
    import(&sw, "bill-2026-10-01.csv", &[line("2026-10-01", "33.00")]);
    apply_and_converge(&sw, "October");
    import(&sw, "bill-2026-11-01.csv", &[line("2026-11-01", "35.00")]);
    apply_and_converge(&sw, "November");
    import(&sw, "bill-2026-11-01.csv", &[line("2026-11-01", "36.00")]);
    apply_and_converge(&sw, "November restated");
    let state = sw.state();
    let view = &state.contract_services[&("SUB-P".to_string(), "CFQ7TTC0LFLX".to_string())];
    assert_eq!(view.adjusted_price, "36", "{view:?}");
}
