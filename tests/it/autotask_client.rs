//! The Autotask client against the in-process simulator (and, for answers the simulator never
//! gives, a throwaway tiny_http server).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cmat::autotask::pull::{pull_snapshot, PullOptions, Pulled};
use cmat::autotask::{
    discover_ids, AutotaskClient, AutotaskError, ClientOptions, Condition, Filter, PullError,
    RecordingClock, Rejection,
};
use cmat::autotask::{EntityRead, FullReason, Previous};
use cmat::workspace::{AutotaskConfig, AutotaskCredentials, Secret};
use cmat_sim::{Fault, Seed, SimHandle, SimOptions, Simulator, Throttling, WriteFailure};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const SECRET: &str = "demo-secret";
const CODE: &str = "DEMOCODE";

fn credentials(secret: &str) -> AutotaskCredentials {
    AutotaskCredentials {
        username: "demo@example.com".into(),
        secret: Secret::new(secret.into()),
        integration_code: Secret::new(CODE.into()),
    }
}

fn fast() -> ClientOptions {
    ClientOptions {
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        threshold_backoff_base: Duration::from_millis(5),
        threshold_backoff_max: Duration::from_millis(40),
        retry_budget: Duration::from_millis(300),
        slowdown_max: Duration::from_millis(1),
        request_timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    }
}

fn config(base: &str) -> AutotaskConfig {
    AutotaskConfig { base_url: Some(base.to_string()), ..AutotaskConfig::default() }
}

fn start(records: BTreeMap<String, Vec<Value>>, options: SimOptions) -> SimHandle {
    let seed = Seed { records, ..Seed::default() };
    Simulator::start("127.0.0.1:0", seed, options).expect("simulator starts")
}

fn connect(sim: &SimHandle) -> AutotaskClient {
    AutotaskClient::connect(&config(&sim.base_url()), credentials(SECRET), fast())
        .expect("connects")
}

fn no_secrets(text: &str) {
    assert!(!text.contains(SECRET), "secret leaked: {text}");
    assert!(!text.contains(CODE), "integration code leaked: {text}");
}

/// A tenant with `n` of each big entity.
fn tenant(companies: usize, contracts: usize, charges: usize) -> BTreeMap<String, Vec<Value>> {
    let mut records = BTreeMap::new();
    records.insert(
        "Companies".to_string(),
        (0..companies)
            .map(|i| {
                json!({"id": 1000 + i, "companyName": format!("Company {i}"), "companyType": 1,
                   "ownerResourceID": 29682885, "phone": "+1 555 0100", "isActive": i % 7 != 0})
            })
            .collect(),
    );
    records.insert(
        "BillingCodes".to_string(),
        vec![
            json!({"id": 29682801, "name": "Recurring", "useType": 5, "billingCodeType": 1, "isActive": true}),
            json!({"id": 29682802, "name": "Azure", "useType": 4, "billingCodeType": 1, "isActive": true}),
        ],
    );
    records.insert(
        "Contracts".to_string(),
        (0..contracts)
            .map(|i| {
                json!({"id": 5000 + i, "companyID": 1000 + (i % companies.max(1)),
                   "contractName": format!("Microsoft 365 - {i}"), "contractType": 7, "status": 1,
                   "startDate": "2026-11-01T00:00:00", "endDate": "2027-10-31T00:00:00",
                   "timeReportingRequiresStartAndStopTimes": 1, "serviceLevelAgreementID": 1,
                   "userDefinedFields": [{"name": "Subscription ID", "value": format!("sub-{i}")}]})
            })
            .collect(),
    );
    records.insert(
        "ContractCharges".to_string(),
        (0..charges)
            .map(|i| {
                json!({"id": 9000 + i, "contractID": 5000 + (i % contracts.max(1)),
                   "name": format!("Azure {i}"), "datePurchased": "2026-11-01T00:00:00",
                   "chargeType": 1, "unitQuantity": 1, "unitPrice": 145.452, "unitCost": "126.48",
                   "billingCodeID": 29682802, "isBilled": false})
            })
            .collect(),
    );
    records
}

#[test]
fn pull_reads_in_pages_of_500_and_nothing_per_record() {
    let (companies, contracts, charges) = (2345, 1001, 500);
    let sim = start(tenant(companies, contracts, charges), SimOptions::default());
    let client = connect(&sim);
    let before = sim.counters();
    let Pulled { snapshot, report, .. } =
        pull_snapshot(&client, &PullOptions::default(), None, &|_| {}).expect("pull");
    assert_eq!(snapshot.companies.len(), companies);
    assert_eq!(snapshot.contracts.len(), contracts);
    assert_eq!(snapshot.charges.len(), charges);
    assert_eq!(snapshot.billing_codes.len(), 2);
    assert_eq!(snapshot.contracts[&5007].subscription_id.as_deref(), Some("sub-7"));
    assert_eq!(snapshot.charges[&9000].unit_price, "145.452".parse::<Decimal>().unwrap());

    let after = sim.counters();
    let used = |entity: &str| {
        after.by_endpoint.get(entity).copied().unwrap_or(0)
            - before.by_endpoint.get(entity).copied().unwrap_or(0)
    };
    let pages = |n: usize| n.div_ceil(500).max(1) as u64;
    // Entities whose picklists cmat sends are asked once more, for entityInformation/fields.
    assert_eq!(used("Companies"), pages(companies)); // 5
    assert_eq!(used("Contracts"), pages(contracts) + 1); // 3
    assert_eq!(used("ContractCharges"), pages(charges) + 1); // 1
    assert_eq!(used("BillingCodes"), 1 + 1);
    assert_eq!(used("Services"), 1 + 1);
    assert_eq!(used("ContractServices"), 1);
    assert_eq!(used("ContractServiceUnits"), 1);
    // Queries only: no GET of single records (field metadata and the threshold are no records).
    assert!(
        after.by_route.keys().all(|route| !route.starts_with("GET ")
            || route.contains("ThresholdInformation")
            || route.ends_with("/entityInformation/fields")),
        "{:?}",
        after.by_route
    );
    assert_eq!(report.requests, 13 + 4 + 1); // the pages, four picklists, the currencies
    assert_eq!(after.throttled, 0);
    println!(
        "pull of {} records: {} requests",
        companies + contracts + charges + 2,
        report.requests
    );
}

#[test]
fn at_most_three_requests_in_flight_per_endpoint_under_parallel_load() {
    let sim = start(
        tenant(1200, 10, 10),
        SimOptions { latency: Duration::from_millis(40), ..SimOptions::default() },
    );
    let client = connect(&sim);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let client = &client;
            scope.spawn(move || {
                for i in 0..3 {
                    let filter = Filter::new(Condition::eq("id", 1000 + t * 10 + i)).unwrap();
                    let found = client.query("Companies", &filter).expect("query");
                    assert_eq!(found.len(), 1);
                }
            });
        }
    });
    let counters = sim.counters();
    assert_eq!(counters.throttled, 0, "no 429 may be provoked");
    assert!(counters.peak_in_flight["Companies"] <= 3, "{counters:?}");
    assert_eq!(client.peak_in_flight(), 3, "the cap was reached, not avoided");
}

#[test]
fn bad_credentials_name_the_variables_and_never_the_secret() {
    let sim = start(BTreeMap::new(), SimOptions::default());
    let err = AutotaskClient::connect(&config(&sim.base_url()), credentials("wrong"), fast())
        .unwrap_err();
    assert!(matches!(err, AutotaskError::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("GET ThresholdInformation"), "{text}");
    assert!(text.contains("CMAT_AUTOTASK_SECRET"), "{text}");
    assert!(!text.contains("wrong"));
    no_secrets(&format!("{text} {err:?}"));
    no_secrets(&format!("{:?}", connect(&sim)));
}

#[test]
fn reads_are_retried_on_429() {
    let sim = start(tenant(3, 1, 1), SimOptions::default());
    let client = connect(&sim);
    sim.inject(Fault::Burst429 { count: 2 });
    let found = client.query("Companies", &Filter::all()).expect("query");
    assert_eq!(found.len(), 3);
    assert_eq!(sim.counters().throttled, 2);
}

/// Live back-off after a thread-threshold refusal (100 ms doubling to 10 s, jitter in the
/// upper half, at least `Retry-After`), checked on the recorded waits: the slot frees within
/// milliseconds, so the first waits are short, and a burst is outlasted within the time budget
/// (2 minutes per request), not a count of tries.
#[test]
fn thread_threshold_back_off_starts_short_doubles_and_is_bounded_by_time_not_tries() {
    let sim = start(tenant(3, 0, 0), SimOptions::default());
    let clock = RecordingClock::new();
    let options = ClientOptions { clock: clock.clone(), ..ClientOptions::default() };
    let client =
        AutotaskClient::connect(&config(&sim.base_url()), credentials(SECRET), options).unwrap();
    // Twelve refusals in a row: twice what a count of 6 tries allowed, well within the time.
    sim.inject(Fault::Burst429 { count: 12 });
    assert_eq!(client.query("Companies", &Filter::all()).expect("query").len(), 3);
    let waits = clock.waits();
    assert_eq!(waits.len(), 12, "{waits:?}");
    for (refusal, wait) in waits.iter().enumerate() {
        let cap = Duration::from_millis(100 << refusal).min(Duration::from_secs(10));
        assert!(*wait >= cap / 2 && *wait <= cap, "refusal {}: {wait:?}", refusal + 1);
    }
    let total: Duration = waits.iter().sum();
    assert!(total <= Duration::from_secs(120), "{total:?}");

    // Refused for ever: gives up once the next wait would pass the budget, typed.
    sim.inject(Fault::Burst429 { count: 1000 });
    let before = clock.waits().len();
    let err = client.query("Companies", &Filter::all()).unwrap_err();
    let waited: Duration = clock.waits()[before..].iter().sum();
    match &err {
        AutotaskError::ThreadThreshold { attempts, waited: reported, .. } => {
            assert_eq!(*reported, waited);
            assert!(*attempts > 6, "{attempts}");
        }
        other => panic!("{other:?}"),
    }
    assert!(waited <= Duration::from_secs(120) && waited > Duration::from_secs(100), "{waited:?}");
    assert!(err.to_string().ends_with("the request was not processed"), "{err}");
}

#[test]
fn a_create_is_retried_on_429_but_never_resent_when_its_outcome_is_unknown() {
    let sim = start(tenant(1, 0, 0), SimOptions::default());
    let client = connect(&sim);
    let body = json!({"companyName": "New Co", "companyType": 1,
        "ownerResourceID": 29682885, "phone": "+1 555 0199"});

    sim.inject(Fault::FailWrite { nth: 1, mode: WriteFailure::TooMany429 });
    let id = client.create("Companies", &body).expect("created after a 429");
    assert!(id.is_some());
    let c = sim.counters();
    assert_eq!((c.writes, c.writes_committed), (2, 1));

    sim.inject(Fault::FailWrite { nth: 1, mode: WriteFailure::CommitThenDrop });
    let err = client.create("Companies", &body).unwrap_err();
    assert!(matches!(err, AutotaskError::OutcomeUnknown { .. }), "{err:?}");
    assert!(err.to_string().starts_with("POST Companies: "), "{err}");
    let c = sim.counters();
    assert_eq!((c.writes, c.writes_committed), (3, 2), "sent exactly once");
    no_secrets(&format!("{err} {err:?}"));

    // A 500 is Autotask refusing: quoted, not retried.
    let err = client.create("Companies", &json!({"companyName": "No phone"})).unwrap_err();
    assert!(matches!(err, AutotaskError::Api { status: 500, .. }), "{err:?}");
    assert!(err.to_string().contains("is required"), "{err}");
    assert_eq!(sim.counters().writes, 4);
}

/// A tenant whose thread-threshold refusals come as HTTP 500 with the text, and whose slots
/// free `release_ms` after each answer (the live shapes of API-NOTES).
fn live_threshold_seed(records: BTreeMap<String, Vec<Value>>, release_ms: u64) -> Seed {
    Seed {
        records,
        throttling: Throttling {
            slot_release_delay: Duration::from_millis(release_ms),
            refusal_status: 500,
            ..Throttling::default()
        },
        ..Seed::default()
    }
}

#[test]
fn a_thread_threshold_refusal_sent_as_500_is_retried_for_reads_and_creates_and_typed() {
    let sim = Simulator::start(
        "127.0.0.1:0",
        live_threshold_seed(tenant(3, 1, 1), 0),
        SimOptions::default(),
    )
    .expect("simulator starts");
    let client = connect(&sim);
    sim.inject(Fault::ThreadThresholdBurst { count: 2 });
    let found = client.query("Companies", &Filter::all()).expect("query after two refusals");
    assert_eq!(found.len(), 3);
    assert_eq!(sim.counters().throttled, 2);
    assert!(sim.request_log().iter().any(|r| r.status == 500), "refused with a 500");

    // A create refused so was not processed: sent again, and it lands exactly once.
    let before = sim.counters();
    sim.inject(Fault::FailWrite { nth: 1, mode: WriteFailure::ThreadThreshold });
    sim.inject(Fault::FailWrite { nth: 2, mode: WriteFailure::ThreadThreshold });
    let body = json!({"companyName": "New Co", "companyType": 1,
        "ownerResourceID": 29682885, "phone": "+1 555 0199"});
    let id = client.create("Companies", &body).expect("created after two refusals");
    let after = sim.counters();
    assert_eq!(
        (after.writes - before.writes, after.writes_committed - before.writes_committed),
        (3, 1)
    );
    let named: Vec<_> =
        sim.records("Companies").into_iter().filter(|c| c["companyName"] == "New Co").collect();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0]["id"].as_i64(), id);

    // Refused on every attempt: a typed error, never a generic 500.
    sim.inject(Fault::ThreadThresholdBurst { count: 100 });
    let err = client.query("Companies", &Filter::all()).unwrap_err();
    assert!(matches!(err, AutotaskError::ThreadThreshold { status: 500, .. }), "{err:?}");
    assert_eq!(err.rejection(), Some(Rejection::ThreadThreshold));
    assert!(
        err.to_string().starts_with("POST Companies/query: Autotask's thread threshold was still exceeded (HTTP 500) after "),
        "{err}"
    );
}

#[test]
fn refusals_are_typed_by_what_autotask_refused() {
    let sim = start(tenant(1, 1, 1), SimOptions::default());
    let client = connect(&sim);
    let kind = |err: AutotaskError| match err {
        AutotaskError::Api { kind, status: 500, .. } => kind,
        other => panic!("not a refusal: {other:?}"),
    };
    let long = "x".repeat(500);
    let err = client
        .create(
            "Companies",
            &json!({"companyName": long, "companyType": 1,
        "ownerResourceID": 29682885, "phone": "+1"}),
        )
        .unwrap_err();
    assert_eq!(kind(err), Rejection::StringTooLong);
    let err = client.create("Companies", &json!({"companyName": "X"})).unwrap_err();
    assert_eq!(kind(err), Rejection::Other);
    assert!(sim.set_billed(9000));
    let err = client.delete("Contracts/5000/Charges/9000").unwrap_err();
    assert_eq!(kind(err), Rejection::BilledCharge);
    let err = client
        .update("Contracts/5000/Charges", &json!({"id": 9000, "isBilled": false}))
        .unwrap_err();
    assert_eq!(kind(err), Rejection::ReadOnlyField);
}

/// Slots that free a little after the answer (30 ms here): a client that waits at least that
/// long before reusing a slot is never refused (its slot frees after the server's, always).
#[test]
fn pacing_the_slots_avoids_refusals_from_a_slot_freed_late() {
    let run = |client_delay_ms: u64| {
        let sim = Simulator::start(
            "127.0.0.1:0",
            live_threshold_seed(tenant(1200, 10, 10), 30),
            SimOptions { latency: Duration::from_millis(5), ..SimOptions::default() },
        )
        .expect("simulator starts");
        let options =
            ClientOptions { slot_release_delay: Duration::from_millis(client_delay_ms), ..fast() };
        let client =
            AutotaskClient::connect(&config(&sim.base_url()), credentials(SECRET), options)
                .expect("connects");
        std::thread::scope(|scope| {
            for t in 0..6 {
                let client = &client;
                scope.spawn(move || {
                    for i in 0..5 {
                        let filter = Filter::new(Condition::eq("id", 1000 + t * 10 + i)).unwrap();
                        let found = client.query("Companies", &filter).expect("query");
                        assert_eq!(found.len(), 1);
                    }
                });
            }
        });
        sim.counters()
    };
    let paced = run(50);
    assert_eq!(paced.throttled, 0, "{paced:?}");
    assert!(paced.peak_in_flight["Companies"] <= 3, "{paced:?}");
    // Unpaced, the same load meets refusals (how many depends on timing: see the `pacing`
    // benchmark, which counts them).
}

#[test]
fn update_and_delete_go_to_collection_and_child_urls() {
    let sim = start(tenant(2, 1, 1), SimOptions::default());
    let client = connect(&sim);
    client.update("Contracts", &json!({"id": 5000, "contractName": "Renamed"})).expect("patch");
    let contract = client.get("Contracts/5000").unwrap().unwrap();
    assert_eq!(contract["contractName"], "Renamed");
    client.delete("Contracts/5000/Charges/9000").expect("delete");
    assert!(client.query("ContractCharges", &Filter::all()).unwrap().is_empty());
    assert!(client.get("Contracts/77").unwrap().is_none());
    let err = client.update("Contracts", &json!({"contractName": "x"})).unwrap_err();
    assert!(err.to_string().contains("`id`"), "{err}");
}

#[test]
fn stops_before_taking_more_than_its_share_of_the_hour() {
    let sim = start(tenant(3, 0, 0), SimOptions::default());
    sim.inject(Fault::UseThreshold { count: 4990 });
    let client = connect(&sim);
    let mut sent = 0;
    let err = loop {
        match client.query("Companies", &Filter::all()) {
            Ok(_) => sent += 1,
            Err(err) => break err,
        }
        assert!(sent < 100, "never stopped");
    };
    let AutotaskError::HourlyBudget { used, limit, share } = &err else { panic!("{err:?}") };
    assert_eq!((*limit, *share), (10_000, Decimal::new(5, 1)));
    assert!(*used <= 5000 && sent <= 10, "{used} {sent}");
    let threshold = client.threshold().unwrap();
    assert!(threshold.used <= 5000, "{threshold:?}");
    let text = err.to_string();
    assert!(text.contains("50 %") && text.contains("max_hourly_share"), "{text}");

    // Already past the share: refuses at connect, before any other request.
    sim.inject(Fault::UseThreshold { count: 100 });
    let err =
        AutotaskClient::connect(&config(&sim.base_url()), credentials(SECRET), fast()).unwrap_err();
    assert!(matches!(err, AutotaskError::HourlyBudget { .. }), "{err:?}");
}

#[test]
fn the_zone_is_looked_up_from_the_user_name() {
    let sim = start(tenant(2, 0, 0), SimOptions::default());
    for lookup in [sim.zone_lookup_url(), sim.base_url()] {
        let config = AutotaskConfig { zone_lookup_url: Some(lookup), ..AutotaskConfig::default() };
        let client = AutotaskClient::connect(&config, credentials(SECRET), fast()).unwrap();
        assert_eq!(client.base_url(), sim.base_url());
        assert_eq!(client.query("Companies", &Filter::all()).unwrap().len(), 2);
    }
    let config = AutotaskConfig {
        zone_lookup_url: Some(sim.zone_lookup_url()),
        ..AutotaskConfig::default()
    };
    let mut stranger = credentials(SECRET);
    stranger.username = "nobody@example.com".into();
    let err = AutotaskClient::connect(&config, stranger, fast()).unwrap_err();
    assert!(matches!(err, AutotaskError::Zone { .. }), "{err:?}");
    assert!(err.to_string().contains("CMAT_AUTOTASK_USERNAME"), "{err}");
}

#[test]
fn discover_finds_billing_codes_by_use_type_label_slas_and_the_udf() {
    let sim = Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default()).unwrap();
    let client = connect(&sim);
    let found = discover_ids(&client).unwrap();
    let ids = |codes: &[cmat::autotask::BillingCodeChoice]| {
        codes.iter().map(|c| c.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(&found.service_billing_codes), vec![29682801, 29682808]);
    assert_eq!(ids(&found.product_billing_codes), vec![29682802, 29682804]);
    let slas: Vec<_> = found.slas.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(slas, vec!["Standard", "Premium"]);
    assert!(found.has_subscription_udf);
}

// ----- answers the simulator never gives: a throwaway server -----

/// Serves `handler(method, url, zone_lookups_so_far)` on loopback until the test ends.
fn hostile(handler: fn(&str, &str, &str, usize) -> (u16, String)) -> String {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("listen"));
    let base = format!("http://{}/", server.server_addr());
    let root = base.clone();
    let zone_calls = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let url = request.url().to_string();
            if url.contains("zoneInformation") {
                zone_calls.fetch_add(1, Ordering::SeqCst);
            }
            let (status, body) =
                handler(request.method().as_str(), &url, &root, zone_calls.load(Ordering::SeqCst));
            let response = tiny_http::Response::from_string(body).with_status_code(status);
            let _ = request.respond(response);
        }
    });
    base
}

const THRESHOLD: &str = r#"{"externalRequestThreshold":10000,"requestThresholdTimeframe":60,"currentTimeframeRequestCount":1}"#;

fn hostile_answers(method: &str, url: &str, root: &str, _: usize) -> (u16, String) {
    let page = |items: &str| format!(r#"{{"items":{items},"pageDetails":{{"nextPageUrl":null}}}}"#);
    let path = url.split("v1.0/").nth(1).unwrap_or("");
    match (method, path) {
        (_, p) if p.starts_with("zoneInformation") => (
            200,
            r#"{"zoneName":"x","url":"http://webservices5.example.com/atservicesrest/"}"#.into(),
        ),
        ("GET", "ThresholdInformation") => (200, THRESHOLD.into()),
        ("POST", "Companies/query") => (
            200,
            "<html><head><title>503</title></head><body>Maintenance</body></html>".into(),
        ),
        ("POST", "Contracts/query") => (200, r#"{"items":[{"id":1,"contractName":"#.into()),
        ("POST", "Services/query") => (200, r#"{"items":5}"#.into()),
        ("POST", "BillingCodes/query") => (200, r#"{"items":[],"errors":["Unknown field"]}"#.into()),
        ("POST", "ContractServices/query") => (
            200,
            page(r#"[{"id":31,"contractID":1,"serviceID":null,"unitPrice":null}]"#),
        ),
        ("POST", "ContractCharges/query") => (
            200,
            r#"{"items":[],"pageDetails":{"nextPageUrl":"https://attacker.example.com/v1.0/ContractCharges/query/next?paging=1"}}"#.into(),
        ),
        ("POST", "ContractServiceUnits/query") => (
            500,
            format!("<html><pre>UserName: demo@example.com\nSecret: {SECRET}\nApiIntegrationCode: {CODE}</pre></html>"),
        ),
        ("POST", "Companies") => (200, r#"{"itemId":"#.into()),
        ("POST", "Contracts") => (200, "{}".into()),
        _ => (404, format!("no route {method} {path} at {root}")),
    }
}

#[test]
fn hostile_answers_are_clear_errors_naming_the_request() {
    let base = hostile(hostile_answers);
    let client = AutotaskClient::connect(&config(&base), credentials(SECRET), fast()).unwrap();
    let query = |entity: &str| client.query(entity, &Filter::all()).unwrap_err();

    let err = query("Companies");
    assert!(matches!(err, AutotaskError::BadResponse { .. }));
    assert!(
        err.to_string().starts_with("POST Companies/query: ") && err.to_string().contains("HTML"),
        "{err}"
    );
    let err = query("Contracts");
    assert!(
        err.to_string().contains("POST Contracts/query") && err.to_string().contains("cut off"),
        "{err}"
    );
    let err = query("Services");
    assert!(err.to_string().contains("`items` should be a list"), "{err}");
    let err = query("BillingCodes");
    assert!(matches!(err, AutotaskError::Api { status: 200, .. }), "{err:?}");
    assert!(err.to_string().contains("Unknown field"), "{err}");
    let err = query("ContractCharges");
    assert!(err.to_string().contains("refusing to send the credentials"), "{err}");
    let err = query("ContractServiceUnits");
    assert!(matches!(err, AutotaskError::Api { status: 500, .. }), "{err:?}");
    no_secrets(&format!("{err} {err:?}"));

    // A record with a null where a value belongs: the pull names entity, id and field.
    let err = pull_snapshot(&client, &PullOptions::default(), None, &|_| {}).unwrap_err();
    assert!(matches!(err, PullError::Api(_)), "{err:?}");
    let values = client.query("ContractServices", &Filter::all()).unwrap();
    let err = cmat::autotask::records::contract_service(&values[0]).unwrap_err();
    assert_eq!(err.to_string(), "ContractServices 31: field `serviceID`: is null");

    // A create answered 200 with a body we cannot read happened, but its id is unknown.
    for path in ["Companies", "Contracts"] {
        let err = client.create(path, &json!({"x": 1})).unwrap_err();
        assert!(matches!(err, AutotaskError::OutcomeUnknown { .. }), "{err:?}");
    }

    // A zone that is not https (and not loopback) is refused.
    let zone = AutotaskConfig { zone_lookup_url: Some(base.clone()), ..AutotaskConfig::default() };
    let err = AutotaskClient::connect(&zone, credentials(SECRET), fast()).unwrap_err();
    assert!(matches!(err, AutotaskError::Zone { .. }), "{err:?}");
    assert!(err.to_string().contains("plain http:// is refused"), "{err}");

    // A configured non-https base is refused before any request.
    let err = AutotaskClient::connect(
        &config("http://autotask.example.com/atservicesrest/"),
        credentials(SECRET),
        fast(),
    )
    .unwrap_err();
    assert!(matches!(err, AutotaskError::Config(_)), "{err:?}");
}

/// Zone 1 answers 401 (the tenant moved); the second lookup names zone 2, which works.
fn moved_tenant(method: &str, url: &str, root: &str, zone_lookups: usize) -> (u16, String) {
    if url.contains("zoneInformation") {
        let zone = if zone_lookups <= 1 { "zone1" } else { "zone2" };
        return (200, format!(r#"{{"url":"{root}{zone}/"}}"#));
    }
    if url.starts_with("/zone1/") {
        return (401, String::new());
    }
    match (method, url.split("v1.0/").nth(1).unwrap_or("")) {
        ("GET", "ThresholdInformation") => (200, THRESHOLD.into()),
        ("POST", "Companies/query") => (
            200,
            r#"{"items":[{"id":1,"companyName":"A","isActive":true}],"pageDetails":{"nextPageUrl":null}}"#.into(),
        ),
        _ => (404, String::new()),
    }
}

#[test]
fn a_401_looks_the_zone_up_once_more() {
    let base = hostile(moved_tenant);
    let config =
        AutotaskConfig { zone_lookup_url: Some(base.clone()), ..AutotaskConfig::default() };
    let client = AutotaskClient::connect(&config, credentials(SECRET), fast()).unwrap();
    assert_eq!(client.base_url(), format!("{base}zone2/"));
    assert_eq!(client.query("Companies", &Filter::all()).unwrap().len(), 1);
}

#[test]
fn the_threshold_is_reread_every_so_often_and_usage_past_half_slows_down() {
    let sim = start(tenant(3, 0, 0), SimOptions::default());
    let clock = RecordingClock::new();
    let options = ClientOptions {
        threshold_every: 5,
        max_hourly_share: Some(Decimal::new(8, 1)),
        slowdown_max: Duration::from_secs(2),
        clock: clock.clone(),
        ..fast()
    };
    let client =
        AutotaskClient::connect(&config(&sim.base_url()), credentials(SECRET), options).unwrap();
    for _ in 0..12 {
        client.query("Companies", &Filter::all()).unwrap();
    }
    // One read at connect, then one after every 5 requests.
    assert_eq!(sim.counters().by_endpoint["ThresholdInformation"], 3);

    assert!(clock.waits().is_empty(), "no pause below half: {:?}", clock.waits());

    // 65 % used of an allowed 80 %: half of the maximum pause before each request.
    sim.inject(Fault::UseThreshold { count: 6500 });
    client.threshold().unwrap();
    client.query("Companies", &Filter::all()).unwrap();
    let waits = clock.waits();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(
        waits[0] >= Duration::from_secs(1) && waits[0] < Duration::from_millis(1100),
        "{waits:?}"
    );
}

/// Contracts and charges last changed on 1 October at 8:00, as a tenant's export would say,
/// the first of each at 9:00.
fn stamped_tenant(contracts: usize, charges: usize) -> BTreeMap<String, Vec<Value>> {
    let mut records = tenant(40, contracts, charges);
    for entity in ["Contracts", "ContractCharges"] {
        for (i, record) in records.get_mut(entity).into_iter().flatten().enumerate() {
            let stamp =
                json!(if i == 0 { "2026-10-01T09:00:00.000Z" } else { "2026-10-01T08:00:00.000Z" });
            record["lastModifiedDateTime"] = stamp.clone();
            if entity == "ContractCharges" {
                record["statusLastModifiedDate"] = stamp;
            }
        }
    }
    records
}

fn requests_to(sim: &SimHandle, entity: &str, before: &cmat_sim::Counters) -> u64 {
    sim.counters().by_endpoint.get(entity).copied().unwrap_or(0)
        - before.by_endpoint.get(entity).copied().unwrap_or(0)
}

fn read_of(pulled: &Pulled, entity: &str) -> EntityRead {
    pulled.report.reads.iter().find(|(e, _)| *e == entity).map(|(_, r)| r.clone()).unwrap()
}

fn pull_after(client: &AutotaskClient, previous: &Pulled, options: &PullOptions) -> Pulled {
    let previous = Previous { snapshot: &previous.snapshot, marks: &previous.marks };
    pull_snapshot(client, options, Some(previous), &|_| {}).expect("pull")
}

/// What a full read finds now, to compare a change read with.
fn full_records(client: &AutotaskClient) -> cmat_engine::snapshot::Snapshot {
    let options = PullOptions { full: true, ..PullOptions::default() };
    let mut snapshot = pull_snapshot(client, &options, None, &|_| {}).expect("pull").snapshot;
    snapshot.refreshed_at = None;
    snapshot
}

fn records_of(pulled: &Pulled) -> cmat_engine::snapshot::Snapshot {
    let mut snapshot = pulled.snapshot.clone();
    snapshot.refreshed_at = None;
    snapshot
}

#[test]
fn a_second_pull_reads_only_the_records_stamped_since_the_first() {
    let (contracts, charges) = (1600, 1200);
    let sim = start(stamped_tenant(contracts, charges), SimOptions::default());
    let client = connect(&sim);
    let first = pull_snapshot(&client, &PullOptions::default(), None, &|_| {}).expect("pull");
    assert_eq!(read_of(&first, "Contracts"), EntityRead::Full(FullReason::NoMark));
    let mark = &first.marks.entities["ContractCharges"];
    assert_eq!(mark.fields, ["lastModifiedDateTime", "statusLastModifiedDate"]);
    assert_eq!(mark.newest.to_rfc3339(), "2026-10-01T09:00:00+00:00");
    // Contract services carry no stamp; companies and billing codes are one page anyway.
    assert!(!first.marks.entities.contains_key("ContractServices"));

    // A contract renamed and a charge invoiced in Autotask since.
    client.update("Contracts", &json!({"id": 5007, "contractName": "Renamed"})).unwrap();
    assert!(sim.set_billed(9003));

    let before = sim.counters();
    let second = pull_after(&client, &first, &PullOptions::default());
    // Since 15 minutes before the newest stamp seen: the change and the 9:00 record again.
    let since = "2026-10-01T08:45:00Z".parse().unwrap();
    assert_eq!(read_of(&second, "Contracts"), EntityRead::Changes { changed: 2, since });
    assert_eq!(read_of(&second, "ContractCharges"), EntityRead::Changes { changed: 2, since });
    // One page of changes and one count, instead of ⌈1600/500⌉ = 4 pages; the picklists read
    // by the first pull are trusted for a day.
    assert_eq!(requests_to(&sim, "Contracts", &before), 2);
    assert_eq!(requests_to(&sim, "ContractCharges", &before), 2);
    assert_eq!(second.snapshot.picklists, first.snapshot.picklists);
    assert_eq!(second.marks.picklists_read_at, first.marks.picklists_read_at);
    assert_eq!(second.snapshot.contracts[&5007].contract_name, "Renamed");
    assert!(second.snapshot.charges[&9003].is_billed);
    assert_eq!(records_of(&second), full_records(&client));
    // The mark moved to the newest change, so a third pull reads only what is new again.
    assert!(second.marks.entities["Contracts"].newest > first.marks.entities["Contracts"].newest);
    let third = pull_after(&client, &second, &PullOptions::default());
    assert!(
        matches!(read_of(&third, "Contracts"), EntityRead::Changes { changed: 1, .. }),
        "the overlap re-reads the last change: {:?}",
        read_of(&third, "Contracts")
    );
}

#[test]
fn a_deleted_record_or_a_refused_filter_falls_back_to_a_full_read() {
    let sim = start(stamped_tenant(1600, 1200), SimOptions::default());
    let client = connect(&sim);
    let first = pull_snapshot(&client, &PullOptions::default(), None, &|_| {}).expect("pull");

    // An unbilled charge deleted in Autotask leaves no stamp: the count tells.
    client.delete("Contracts/5010/Charges/9010").unwrap();
    let second = pull_after(&client, &first, &PullOptions::default());
    assert_eq!(
        read_of(&second, "ContractCharges"),
        EntityRead::Full(FullReason::CountDiffers { autotask: 1199, snapshot: 1200 })
    );
    assert!(!second.snapshot.charges.contains_key(&9010));
    assert_eq!(records_of(&second), full_records(&client));

    // An Autotask without the stamp field answers the filter with a 500.
    let mut marks = second.marks.clone();
    marks.entities.get_mut("Contracts").unwrap().fields = vec!["lastModifiedStamp".into()];
    let previous = Previous { snapshot: &second.snapshot, marks: &marks };
    let third = pull_snapshot(&client, &PullOptions::default(), Some(previous), &|_| {}).unwrap();
    assert!(
        matches!(read_of(&third, "Contracts"), EntityRead::Full(FullReason::Refused(ref m)) if m.contains("lastModifiedStamp")),
        "{:?}",
        read_of(&third, "Contracts")
    );
    assert_eq!(records_of(&third), full_records(&client));
    // The full read found the real field again.
    assert_eq!(third.marks.entities["Contracts"].fields, ["lastModifiedDateTime"]);

    // A status stamp it cannot filter on: the change field alone still reads by changes, and
    // the next pulls no longer ask for the other.
    let mut marks = third.marks.clone();
    marks.entities.get_mut("Contracts").unwrap().fields.push("statusLastModifiedStamp".into());
    let previous = Previous { snapshot: &third.snapshot, marks: &marks };
    let fourth = pull_snapshot(&client, &PullOptions::default(), Some(previous), &|_| {}).unwrap();
    assert!(matches!(read_of(&fourth, "Contracts"), EntityRead::Changes { .. }));
    assert_eq!(fourth.marks.entities["Contracts"].fields, ["lastModifiedDateTime"]);
    assert_eq!(records_of(&fourth), full_records(&client));
}

#[test]
fn changes_are_not_trusted_when_asked_old_or_converted_differently() {
    let sim = start(stamped_tenant(1600, 10), SimOptions::default());
    let client = connect(&sim);
    let first = pull_snapshot(&client, &PullOptions::default(), None, &|_| {}).expect("pull");

    let full = PullOptions { full: true, ..PullOptions::default() };
    assert_eq!(
        read_of(&pull_after(&client, &first, &full), "Contracts"),
        EntityRead::Full(FullReason::Requested)
    );
    // Ten charges are one page: a full read is cheaper than changes and a count.
    assert_eq!(
        read_of(&pull_after(&client, &first, &PullOptions::default()), "ContractCharges"),
        EntityRead::Full(FullReason::Small)
    );
    // Another UDF holds the subscription id: the stored contracts say nothing about it.
    let other_udf =
        PullOptions { subscription_udf: "Azure Subscription".into(), ..PullOptions::default() };
    assert_eq!(
        read_of(&pull_after(&client, &first, &other_udf), "Contracts"),
        EntityRead::Full(FullReason::NoMark)
    );
    // A week after the last full read, everything is read again.
    let mut old = first;
    for mark in old.marks.entities.values_mut() {
        mark.full_read_at -= chrono::Duration::days(cmat::autotask::pull::FULL_READ_DAYS);
    }
    let due = pull_after(&client, &old, &PullOptions::default());
    assert_eq!(read_of(&due, "Contracts"), EntityRead::Full(FullReason::Due));
    assert!(
        due.marks.entities["Contracts"].full_read_at > old.marks.entities["Contracts"].full_read_at
    );
}
