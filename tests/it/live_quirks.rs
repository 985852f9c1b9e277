//! Autotask as it really is (SPEC; issue 25), through the `cmat` binary against cmat-sim
//! extended with the live shapes: an incomplete record, a tenant reading zone-less dates in
//! its own time, an hourly lockout with `Retry-After`, thread-threshold refusals carrying only
//! Autotask's code or a plain-text body, a multi-currency tenant, required fields and lines of
//! business, a create answered without its id, a contract starting after the bill.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{AutotaskState, SimWorkspace};
use cmat_sim::{Fault, RefusalBody, Seed, SimOptions, Throttling, WriteFailure};

const OCTOBER: &str = "bill-2026-10-01.csv";
const NOVEMBER: &str = "bill-2026-11-01.csv";
/// The Microsoft 365 subscription of Contoso in the bundled bills.
const CONTOSO_M365: &str = "4b76e46b-4ad0-4914-b5f6-bd4924bafd8e";

/// `plan --detailed-exitcode` exits 0: nothing left to write.
fn assert_converged(sw: &SimWorkspace, scenario: &str) {
    let plan = sw.plan_detailed();
    assert_eq!(
        plan.status, 0,
        "{scenario}: the plan still has changes:\n{}\n{}",
        plan.stdout, plan.stderr
    );
}

/// October applied onto the seed's tenant, undisturbed: the state every disturbed run must
/// end in.
fn october_baseline(seed: Seed) -> AutotaskState {
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    sw.import(OCTOBER);
    sw.pull();
    let run = sw.apply();
    assert_eq!(run.status, 0, "undisturbed October apply: {}", run.stderr);
    sw.state()
}

/// Paths of the writes the simulator received since `from` in its log.
fn writes_since(sw: &SimWorkspace, from: usize) -> Vec<String> {
    sw.sim.request_log()[from..]
        .iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/query"))
        .map(|r| r.path.clone())
        .collect()
}

/// Item 1: a charge whose unit price a live tenant holds as null is kept out of the pull with
/// a warning naming it, its contract gets no write, the other contracts go on, and `doctor`
/// lists it.
#[test]
fn an_incomplete_charge_never_stops_a_pull_and_holds_only_its_contract() {
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    sw.pull();
    assert_eq!(sw.apply().status, 0);
    let charge = sw.sim.records("ContractCharges").into_iter().next().expect("a charge");
    let (id, contract) = (charge["id"].as_i64().unwrap(), charge["contractID"].as_i64().unwrap());
    assert!(sw.sim.blank_field("ContractCharges", id, "unitPrice"));

    let pull = sw.cmat(&["pull", "autotask"]);
    assert_eq!(pull.status, 0, "one incomplete record never stops a pull:\n{}", pull.stderr);
    assert!(
        pull.stderr.contains(&format!("ContractCharges {id} with `unitPrice` null"))
            && pull.stderr.contains(&format!("contract {contract} is left as it is")),
        "{}",
        pull.stderr
    );
    sw.import(NOVEMBER);
    let plan = sw.cmat(&["plan"]);
    assert!(
        plan.stdout.contains("incomplete_record") || plan.stderr.contains("incomplete_record"),
        "the plan says why the contract is held:\n{}\n{}",
        plan.stdout,
        plan.stderr
    );
    let logged = sw.sim.request_log().len();
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let writes = writes_since(&sw, logged);
    assert!(!writes.is_empty(), "the other contracts follow their bills");
    assert!(
        writes.iter().all(|path| !path.contains(&format!("Contracts/{contract}"))),
        "nothing written for the held contract: {writes:?}"
    );
    let doctor = sw.cmat(&["doctor"]);
    assert!(
        doctor
            .stdout
            .contains(&format!("ContractCharges {id} (`unitPrice` null, contract {contract})")),
        "{}",
        doctor.stdout
    );
}

/// Item 2: on a tenant ten hours ahead of UTC that reads a zone-less date in its own time, a
/// pull reads the same unit periods as on a UTC tenant, the one starting on the window's last
/// day included: the filters say UTC.
#[test]
fn a_tenant_reading_dates_in_its_own_time_gets_every_unit_period_of_the_window() {
    let counts = |offset: i32| {
        let seed = Seed { tenant_utc_offset_minutes: offset, ..Seed::bundled() };
        let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
        sw.import(OCTOBER);
        sw.pull();
        assert_eq!(sw.apply().status, 0);
        sw.import(NOVEMBER);
        let pull = sw.pull();
        let line = pull.stdout.lines().find(|l| l.trim_start().starts_with("ContractServiceUnits"));
        let count = line.and_then(|l| l.split_whitespace().nth(1)).map(str::to_string);
        assert_converged_after_apply(&sw, offset);
        count.unwrap_or_else(|| panic!("no unit count in:\n{}", pull.stdout))
    };
    let utc = counts(0);
    assert_eq!(counts(600), utc, "ten hours ahead of UTC");
    assert_eq!(counts(-300), utc, "five hours behind UTC");
}

fn assert_converged_after_apply(sw: &SimWorkspace, offset: i32) {
    let run = sw.apply();
    assert_eq!(run.status, 0, "offset {offset}: {}", run.stderr);
    assert_converged(sw, &format!("tenant at UTC{offset:+} minutes"));
}

/// Item 3: a tenant over its hourly threshold refuses everything (with `Retry-After`): apply
/// stops at once, says it is the hour's budget and when to run again, sends nothing more, and
/// a rerun once the hour has rolled ends in the undisturbed state, nothing written twice.
#[test]
fn an_hourly_lockout_stops_apply_cleanly_and_says_when_to_run_again() {
    let baseline = october_baseline(Seed::bundled());
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    sw.pull();
    let plan = sw.cmat(&["plan"]);
    assert_eq!(plan.status, 0, "{}", plan.stderr);
    // The re-read and a few writes pass, then the tenant is locked out for 40 minutes.
    let logged = sw.sim.request_log().len();
    sw.sim.inject(Fault::HourlyLockout { seconds: 2400, retry_after: true, after: 14 });
    let run = sw.apply();
    assert_eq!(run.status, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("hourly request threshold is used up")
            && run.stderr.contains("run again after")
            && run.stderr.contains("40 minute(s)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("thread threshold"), "{}", run.stderr);
    let log = sw.sim.request_log();
    // Only the requests already in flight when the first refusal came (three per endpoint at
    // most) meet the lockout: nothing is sent after it, not even apply's closing re-read.
    let refused: Vec<&str> =
        log[logged..].iter().filter(|r| r.status == 429).map(|r| r.route.as_str()).collect();
    assert!(!refused.is_empty(), "the lockout was met");
    let first = log[logged..].iter().position(|r| r.status == 429).expect("refused") + logged;
    assert!(
        log.len() - first <= 3 && refused.len() <= 3,
        "a lockout is not hammered: {refused:?}\n{}",
        run.stderr
    );
    assert!(sw.sim.counters().writes_committed > 0, "some writes landed before the lockout");
    sw.sim.inject(Fault::Clear);
    let rerun = sw.apply();
    assert_eq!(rerun.status, 0, "{}\n{}", rerun.stdout, rerun.stderr);
    let state = sw.state();
    state.assert_no_duplicates("after the lockout");
    assert_eq!(state, baseline, "the state of an undisturbed run");
    assert_converged(&sw, "after the lockout");
}

/// Item 4: a burst of five thread-threshold refusals on a write (in each shape live tenants
/// send: the text, only Autotask's code `Itgenatr005`, a plain-text body; as 500s, on a
/// tenant freeing its slots 25 ms late) ends with the apply succeeding on its own, every
/// write done once.
#[test]
fn a_burst_of_five_refusals_on_a_write_ends_with_the_apply_succeeding_on_its_own() {
    let seed = |body: RefusalBody| Seed {
        throttling: Throttling {
            slot_release_delay: Duration::from_millis(25),
            refusal_status: 500,
            refusal_body: body,
        },
        ..Seed::bundled()
    };
    let baseline = october_baseline(seed(RefusalBody::Errors));
    let writes = {
        let sw = SimWorkspace::start();
        sw.import(OCTOBER);
        sw.pull();
        let before = sw.writes();
        assert_eq!(sw.apply().status, 0);
        sw.writes() - before
    };
    let scenarios = [
        (RefusalBody::Errors, 1),
        (RefusalBody::CodeOnly, writes / 2),
        (RefusalBody::PlainText, writes),
    ];
    for (body, nth) in scenarios {
        let scenario = format!("{body:?} refusals on write {nth} of {writes}");
        let sw = SimWorkspace::start_seeded(seed(body), SimOptions::default());
        sw.import(OCTOBER);
        sw.pull();
        let before = sw.sim.counters();
        // A refused write's retry is the next write the simulator counts: five in a row.
        for k in 0..5 {
            sw.sim.inject(Fault::FailWrite {
                nth: nth as u32 + k,
                mode: WriteFailure::ThreadThreshold,
            });
        }
        let run = sw.apply();
        assert_eq!(run.status, 0, "{scenario}:\n{}\n{}", run.stdout, run.stderr);
        let after = sw.sim.counters();
        assert!(after.throttled - before.throttled >= 5, "{scenario}: {after:?}");
        let state = sw.state();
        state.assert_no_duplicates(&scenario);
        assert_eq!(state, baseline, "{scenario}: the state of an undisturbed run");
        assert_converged(&sw, &scenario);
    }
}

/// The bundled tenant with the multi-currency module on: the customers bill in EUR, the
/// tenant's internal currency is USD, 40 to the euro (the live sync's factor).
fn multi_currency_seed() -> Seed {
    let mut seed = Seed::bundled();
    seed.records.insert(
        "Currencies".into(),
        vec![
            json!({"id": 1, "name": "USD", "description": "US Dollar", "exchangeRate": 1, "isActive": true, "isInternalCurrency": true}),
            json!({"id": 2, "name": "EUR", "description": "Euro", "exchangeRate": 40, "isActive": true, "isInternalCurrency": false}),
        ],
    );
    for company in seed.records.get_mut("Companies").expect("companies") {
        if company["id"] != json!(0) {
            company["currencyID"] = json!(2);
        }
    }
    seed
}

/// Item 5: on a multi-currency tenant the contract prices read in the customer's currency
/// (the internal figures are 40 times them), are compared with the bills, follow a price
/// change in the right currency, and nothing is marked "foreign currency".
#[test]
fn a_multi_currency_tenant_has_its_prices_compared_and_written_in_the_customers_currency() {
    let sw = SimWorkspace::start_seeded(multi_currency_seed(), SimOptions::default());
    sw.import(OCTOBER);
    sw.pull();
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}", run.stderr);
    sw.pull();
    assert_converged(&sw, "multi-currency October");
    let services = sw.sim.records("ContractServices");
    let held = services
        .iter()
        .find(|cs| cs["internalCurrencyAdjustedPrice"] == json!(824))
        .unwrap_or_else(|| panic!("20.60 EUR held as 824 USD internally: {services:#?}"));
    assert_ne!(held["unitPrice"], held["internalCurrencyUnitPrice"], "two currencies");

    // The licence's price moves on the next bill: cmat follows it, in euros.
    let november = std::fs::read_to_string(crate::harness::fixture(NOVEMBER)).expect("fixture");
    let repriced = november.replace(
        "CFQ7TTC0LCHC,28,18.5400,20.6000,519.1200,576.8000,57.6800",
        "CFQ7TTC0LCHC,28,18.5400,21.1000,519.1200,590.8000,71.6800",
    );
    assert_ne!(repriced, november, "the fixture line is there");
    sw.ws.write(NOVEMBER, &repriced);
    sw.ok(&["import", NOVEMBER]);
    let plan = sw.cmat(&["plan"]);
    let text = format!("{}\n{}", plan.stdout, plan.stderr);
    assert!(text.contains("20.6000 → 21.1000"), "{text}");
    assert!(!text.contains("foreign_currency") && !text.contains("currency_mismatch"), "{text}");
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(
        sw.sim
            .records("ContractServices")
            .iter()
            .any(|cs| cs["internalCurrencyAdjustedPrice"] == json!(844)),
        "21.10 EUR written, 844 USD held internally"
    );
    assert_converged(&sw, "multi-currency November");
}

/// Item 6: a tenant requiring a line of business and a UDF on contracts, and an API user
/// associated with one of its two lines of business: `doctor` names each gap and warns of
/// the restricted user, writing nothing.
#[test]
fn doctor_names_required_fields_cmat_does_not_send_and_a_restricted_api_user() {
    let mut seed = Seed::bundled();
    seed.required_fields
        .insert("Contracts".into(), vec!["organizationalLevelAssociationID".into()]);
    seed.required_contract_udfs = vec!["Customer Ref".into()];
    seed.contract_udfs.push("Customer Ref".into());
    let username = seed.credentials.username.clone();
    let records = BTreeMap::from([
        (
            "OrganizationalLevelAssociations",
            vec![json!({"id": 1, "isActive": true}), json!({"id": 2, "isActive": true})],
        ),
        ("Resources", vec![json!({"id": 30, "userName": username, "isActive": true})]),
        (
            "OrganizationalResources",
            vec![json!({"id": 1, "resourceID": 30, "organizationalLevelAssociationID": 1})],
        ),
    ]);
    for (entity, list) in records {
        seed.records.insert(entity.to_string(), list);
    }
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    let before = sw.writes();
    let doctor = sw.cmat(&["doctor"]);
    assert_eq!(doctor.status, 1, "problems found:\n{}", doctor.stdout);
    let text = &doctor.stdout;
    assert!(text.contains("required fields on Contracts"), "{text}");
    assert!(
        text.contains("`organizationalLevelAssociationID`, user-defined field \"Customer Ref\""),
        "{text}"
    );
    assert!(text.contains("line_of_business"), "{text}");
    assert!(text.contains("associated with 1 of the tenant's 2 lines of business"), "{text}");
    assert!(text.contains("ok       required fields on Services"), "{text}");
    assert_eq!(sw.writes(), before, "doctor writes nothing");
}

/// Item 7: a subscription whose contract starts after the bill's Billing Date gets its
/// adjustments dated on the contract's start, never before (Autotask refuses those).
#[test]
fn an_adjustment_is_never_dated_before_its_contracts_start() {
    let mut seed = Seed::bundled();
    seed.records.insert(
        "Contracts".into(),
        vec![
            json!({"id": 29684001, "companyID": 29683501, "contractName": "Microsoft 365 - Contoso",
            "contractType": 7, "status": 1, "contractPeriodType": 2,
            "startDate": "2026-10-15", "endDate": "2027-10-14", "serviceLevelAgreementID": 1,
            "timeReportingRequiresStartAndStopTimes": 0,
            "userDefinedFields": [{"name": "Subscription ID", "value": CONTOSO_M365}]}),
        ],
    );
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    sw.import(OCTOBER);
    sw.pull();
    let run = sw.apply();
    assert_eq!(run.status, 0, "no adjustment refused:\n{}\n{}", run.stdout, run.stderr);
    let units = sw.sim.records("ContractServiceUnits");
    let on_contract: Vec<&Value> =
        units.iter().filter(|u| u["contractID"] == json!(29684001)).collect();
    assert!(!on_contract.is_empty(), "the contract got its services");
    assert!(
        on_contract.iter().all(|u| u["startDate"].as_str().unwrap_or("") >= "2026-10-15"),
        "{on_contract:#?}"
    );
    assert_converged(&sw, "a contract starting after the bill");
}

/// Item 7: a create answered 200 without an `itemId` is an unknown outcome, never "done":
/// apply says so and fails, and the rerun re-reads, finds the record, and writes nothing twice.
#[test]
fn a_create_answered_without_its_id_is_unknown_and_resolved_by_re_reading() {
    let baseline = october_baseline(Seed::bundled());
    let sw = SimWorkspace::start();
    sw.import(OCTOBER);
    sw.pull();
    // The first adjustment: after the services and contracts (a few writes in).
    sw.sim.inject(Fault::FailWrite { nth: 8, mode: WriteFailure::CommitNullItemId });
    let run = sw.apply();
    assert_eq!(run.status, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("null `itemId`") && run.stderr.contains("outcome unknown"),
        "{}",
        run.stderr
    );
    let rerun = sw.apply();
    assert_eq!(rerun.status, 0, "{}\n{}", rerun.stdout, rerun.stderr);
    let state = sw.state();
    state.assert_no_duplicates("a create without its id");
    assert_eq!(state, baseline);
    assert_converged(&sw, "a create without its id");
}

/// Item 6: a tenant requiring a line of business on contracts refuses cmat's contracts until
/// the rules set one; `line_of_business` in the contract block (and per scope in a `for`
/// rule) puts it on every new contract, and the apply goes through.
#[test]
fn a_required_line_of_business_is_set_by_the_rules_per_scope() {
    let mut seed = Seed::bundled();
    seed.required_fields
        .insert("Contracts".into(), vec!["organizationalLevelAssociationID".into()]);
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    sw.import(OCTOBER);
    sw.pull();
    let refused = sw.apply();
    assert_eq!(refused.status, 1, "Autotask refuses contracts without one:\n{}", refused.stderr);
    assert!(
        refused.stderr.contains("organizationalLevelAssociationID is required"),
        "{}",
        refused.stderr
    );

    let rules = sw.ws.read("mappings/microsoft.cmat").replacen(
        "    period = monthly",
        "    line_of_business = 1\n    period = monthly",
        1,
    );
    sw.ws.write(
        "mappings/microsoft.cmat",
        &format!("{rules}\nfor organization \"Fabrikam Inc\" {{\n    line_of_business = 2\n}}\n"),
    );
    let doctor = sw.cmat(&["doctor"]);
    assert!(doctor.stdout.contains("ok       required fields on Contracts"), "{}", doctor.stdout);
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let contracts = sw.sim.records("Contracts");
    assert!(!contracts.is_empty());
    for contract in &contracts {
        let fabrikam = contract["companyID"] == json!(29683502);
        assert_eq!(
            contract["organizationalLevelAssociationID"],
            json!(if fabrikam { 2 } else { 1 }),
            "{contract:#?}"
        );
    }
    assert_converged(&sw, "lines of business by rule");
}

/// Item 1: the service billing code comes without its name: the pull goes on, nothing that
/// uses it is written (no Service, no licence on one), the Azure charges, on their own code,
/// still are; `doctor` lists it.
#[test]
fn an_incomplete_billing_code_holds_only_the_writes_that_use_it() {
    let mut seed = Seed::bundled();
    for code in seed.records.get_mut("BillingCodes").expect("codes") {
        if code["id"] == json!(29682801) {
            code["name"] = Value::Null;
        }
    }
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    sw.import(OCTOBER);
    let pull = sw.pull();
    assert!(pull.stderr.contains("BillingCodes 29682801 with `name` null"), "{}", pull.stderr);
    let run = sw.apply();
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(sw.sim.records("Services").is_empty(), "no Service on the incomplete code");
    assert!(sw.sim.records("ContractServices").is_empty(), "nothing planned on such a Service");
    assert!(!sw.sim.records("ContractCharges").is_empty(), "the charges use another code");
    let doctor = sw.cmat(&["doctor"]);
    assert!(doctor.stdout.contains("BillingCodes 29682801 (`name` null)"), "{}", doctor.stdout);
}
