//! The client against a small in-process Cloudmore stand-in (tiny_http on a loopback port).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::autotask::client::RecordingClock;
use crate::store::Access;
use crate::store::Store;
use crate::workspace::{CloudmoreConfig, CloudmoreCredentials, Secret};
use chrono::NaiveDate;
use client::{task_state, Answer, TaskState};
use lines::field_decimal;
use report::{read_report, Fields};
use std::time::Duration;

const BASIC: &str = "Basic cm8uY3VzdG9tZXIuY2xpZW50OmNsaWVudC1zM2NyZXQ=";

#[derive(Default)]
struct Seen {
    requests: Vec<String>,
    token_requests: u32,
    token_bodies: Vec<String>,
    polls: HashMap<String, u32>,
    report_bodies: Vec<String>,
    /// Each request's `Accept` and `Content-Type` headers.
    headers: Vec<(String, String)>,
}

struct FakeCloudmore {
    base: String,
    seen: Arc<Mutex<Seen>>,
}

/// A product (billing line) as the documented report nests it: the line's own columns only.
fn product_json(item: &str, quantity: &str, total: &str) -> String {
    format!(
        r#"{{"billingDate":"2026-11-01T00:00:00","productName":"Microsoft 365 Business Premium",
            "itemCode":"{item}","quantity":{quantity},"unitCostPrice":18.5400,"unitSalesPrice":"20.6000",
            "totalCost":{total},"totalSales":"{total}","currencyCode":"EUR","productId":"{item}:0001",
            "organizationCurrencyCode":"EUR"}}"#
    )
}

/// An organization → service → item (subscription) → products, as Cloudmore documents it.
fn organization_json(id: &str, name: &str, number: &str, products: &[String]) -> String {
    format!(
        r#"{{"organizationId":"{id}","organizationName":"{name}","customerNumber":"{number}",
            "services":[{{"serviceName":"Microsoft NCE","brokerName":"Microsoft",
              "items":[{{"subscriptionId":"sub-{name}","subscriptionName":"M365","paymentFrequency":"Monthly",
                "products":[{}]}}]}}]}}"#,
        products.join(",")
    )
}

/// How the fake's report task behaves.
#[derive(Clone, Copy)]
struct Behaviour {
    /// The Contoso line's quantity, as JSON text (a number, or a string to test strings).
    quantity: &'static str,
    /// Polls answered 202 before the report.
    polls: u32,
    fail: bool,
    /// The task id in a Location header (else in the body).
    location: bool,
    /// Woodgrove's AutotaskCompanyID, in its detail.
    woodgrove_link: &'static str,
}

const NORMAL: Behaviour =
    Behaviour { quantity: "25", polls: 2, fail: false, location: true, woodgrove_link: "\"\"" };

/// Serves the Cloudmore endpoints cmat uses, as documented: the reseller-wide async report.
fn start(behaviour: Behaviour) -> FakeCloudmore {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", server.server_addr().to_ip().expect("ip"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let url = request.url().to_string();
            let method = request.method().to_string();
            let authorization = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.to_string())
                .unwrap_or_default();
            let header = |name: &'static str| {
                request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv(name))
                    .map(|h| h.value.to_string())
                    .unwrap_or_default()
            };
            let (accept, content_type) = (header("Accept"), header("Content-Type"));
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let mut seen = state.lock().unwrap();
            seen.headers.push((accept, content_type));
            seen.requests.push(format!("{method} {url}"));
            let bearer_ok = authorization == "Bearer tok-1";
            let report = "/api/resellers/r1/billing/reports/MonthlyBillingPerOrganizationAsync";
            let mut location = None;
            let (status, answer) = match (method.as_str(), url.as_str()) {
                ("POST", "/connect/token") => {
                    seen.token_requests += 1;
                    seen.token_bodies.push(body.clone());
                    if authorization == BASIC {
                        (
                            200,
                            r#"{"access_token":"tok-1","expires_in":3600,"token_type":"Bearer"}"#
                                .to_string(),
                        )
                    } else {
                        (401, r#"{"error":"invalid_client"}"#.to_string())
                    }
                }
                _ if !bearer_ok => (401, String::new()),
                // The list has no custom properties for Woodgrove: its detail is asked.
                ("GET", "/api/resellers/r1/organizations") => (
                    200,
                    r#"[{"id":"o1","name":"Contoso Ltd","customerNumber":"CM-1",
                         "customProperties":[{"name":"AutotaskCompanyID","value":"29683501"}]},
                        {"id":"o2","name":"Woodgrove Bank","customerNumber":"CM-2"},
                        {"id":"o3","name":"Not On The Report","customerNumber":"CM-3"}]"#
                        .to_string(),
                ),
                ("GET", "/api/resellers/r1/organizations/o2") => (
                    200,
                    format!(
                        r#"{{"id":"o2","name":"Woodgrove Bank","customerNumber":"CM-2",
                            "customProperties":[{{"name":"AutotaskCompanyID","value":{}}}]}}"#,
                        behaviour.woodgrove_link
                    ),
                ),
                ("POST", path) if path == report => {
                    seen.report_bodies.push(body.clone());
                    if behaviour.location {
                        location = Some(format!("{base_url}{report}/t-1", base_url = ""));
                        (202, String::new())
                    } else {
                        (202, r#"{"taskId":"t-1"}"#.to_string())
                    }
                }
                ("GET", path) if path == format!("{report}/t-1") => {
                    let polls = seen.polls.entry("t-1".into()).or_default();
                    *polls += 1;
                    if *polls <= behaviour.polls {
                        (202, r#"{"status":"Processing","message":"Processing"}"#.to_string())
                    } else if behaviour.fail {
                        (
                            200,
                            r#"{"status":"Failed","message":"Report generation failed"}"#
                                .to_string(),
                        )
                    } else {
                        let report = format!(
                            r#"{{"startDate":"2026-11-01","endDate":"2026-11-30","organizations":[{},{}]}}"#,
                            organization_json(
                                "o1",
                                "Contoso Ltd",
                                "CM-1",
                                &[
                                    product_json("CFQ7TTC0LCHC", behaviour.quantity, "515.0000"),
                                    product_json("CFQ7TTC0LH16", "\"10\"", "40.0000"),
                                ]
                            ),
                            organization_json(
                                "o2",
                                "Woodgrove Bank",
                                "CM-2",
                                &[product_json("CFQ7TTC0LH18", "15", "84.0000")]
                            ),
                        );
                        (
                            200,
                            format!(
                                r#"{{"taskId":"t-1","status":"Successful","result":{report}}}"#
                            ),
                        )
                    }
                }
                _ => (404, "no such endpoint".to_string()),
            };
            drop(seen);
            let mut response = tiny_http::Response::from_string(answer).with_status_code(status);
            if let Some(location) = location {
                response = response.with_header(
                    tiny_http::Header::from_bytes(&b"Location"[..], location.as_bytes()).unwrap(),
                );
            }
            let _ = request.respond(response);
        }
    });
    FakeCloudmore { base, seen }
}

fn client(base: &str, client_secret: &str) -> CloudmoreClient {
    CloudmoreClient::new(
        &CloudmoreConfig {
            base_url: Some(base.to_string()),
            reseller_id: Some("r1".into()),
            report_wait_seconds: None,
        },
        CloudmoreCredentials {
            username: "api@reseller.example".into(),
            password: Secret::new("pa55word".into()),
            client_secret: Secret::new(client_secret.into()),
        },
        ClientOptions {
            poll_interval: Duration::from_millis(5),
            max_poll_interval: Duration::from_millis(20),
            task_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            clock: RecordingClock::new(),
        },
    )
    .expect("client")
}

fn november() -> Period {
    Period {
        start: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        end: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    }
}

fn pull(fake: &FakeCloudmore, store: &mut Store) -> Result<PullOutcome, CloudmoreError> {
    client(&fake.base, "client-s3cret").pull_into(store, november(), "cloudmore", None)
}

#[test]
fn one_reseller_report_polled_until_ready_through_the_import_path() {
    let fake = start(NORMAL);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let mut client = client(&fake.base, "client-s3cret");
    let outcome = client.pull_into(&mut store, november(), "cloudmore", None).expect("pull");
    assert_eq!(outcome.summary.lines, 3);
    assert_eq!(outcome.summary.new_bills.len(), 2);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);

    let lines = store.bill_lines().unwrap();
    assert_eq!(lines[0].organization_name, "Contoso Ltd");
    assert_eq!(lines[0].autotask_company_id, Some(29683501));
    // A JSON number and a JSON string, both exact.
    assert_eq!(lines[0].quantity.to_string(), "25");
    assert_eq!(lines[0].unit_cost_price.to_string(), "18.5400");
    assert_eq!(lines[0].total_cost.to_string(), "515.0000");
    assert_eq!(lines[0].payment_frequency, "Monthly");
    assert_eq!(lines[0].organization_currency_code, "EUR");
    assert_eq!(lines[1].quantity.to_string(), "10");
    // Woodgrove inherits its organization from its group; its link is empty in its detail.
    assert_eq!(lines[2].organization_name, "Woodgrove Bank");
    assert_eq!(lines[2].autotask_company_id, None);

    // The same pull again changes nothing.
    let again = client.pull_into(&mut store, november(), "cloudmore", None).unwrap();
    assert_eq!(again.summary.unchanged_bills.len(), 2);

    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.token_requests, 1, "the token is reused");
    assert_eq!(
        seen.token_bodies[0],
        "grant_type=password&username=api%40reseller.example&password=pa55word&scope=api"
    );
    assert_eq!(seen.report_bodies[0], r#"{"startDate":"2026-11-01","endDate":"2026-11-30"}"#);
    // JSON asked for everywhere; the report request's body declared as JSON, the token's as a form.
    assert!(
        seen.headers.iter().all(|(accept, _)| accept == "application/json"),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.headers[0].1, "application/x-www-form-urlencoded");
    assert_eq!(seen.headers[1].1, "application/json");
    let first_pull: Vec<&str> = seen.requests.iter().take(7).map(String::as_str).collect();
    assert_eq!(
        first_pull,
        [
            "POST /connect/token",
            "POST /api/resellers/r1/billing/reports/MonthlyBillingPerOrganizationAsync",
            "GET /api/resellers/r1/organizations",
            "GET /api/resellers/r1/billing/reports/MonthlyBillingPerOrganizationAsync/t-1",
            "GET /api/resellers/r1/billing/reports/MonthlyBillingPerOrganizationAsync/t-1",
            "GET /api/resellers/r1/billing/reports/MonthlyBillingPerOrganizationAsync/t-1",
            // Only the organization on the report whose list entry lacks custom properties.
            "GET /api/resellers/r1/organizations/o2",
        ]
    );
}

#[test]
fn the_task_id_may_come_in_the_body() {
    let fake = start(Behaviour { location: false, polls: 0, ..NORMAL });
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    assert_eq!(pull(&fake, &mut store).unwrap().summary.lines, 3);
}

#[test]
fn a_failed_task_names_the_request() {
    let fake = start(Behaviour { fail: true, ..NORMAL });
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let err = pull(&fake, &mut store).unwrap_err();
    insta::assert_snapshot!(crate::cli::render_error(&err), @r#"error: POST /api/resellers/r1/billing/reports/MonthlyBillingPerOrganizationAsync (task t-1): the billing report task failed: status "Failed": Report generation failed"#);
    assert!(store.bills().unwrap().is_empty());
}

#[test]
fn a_task_past_its_deadline_is_an_error() {
    let fake = start(Behaviour { polls: 1000, ..NORMAL });
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let mut client = client(&fake.base, "client-s3cret");
    let clock = RecordingClock::new();
    client.options.clock = clock.clone();
    client.options.task_timeout = Duration::from_millis(60);
    let err = client.pull_into(&mut store, november(), "cloudmore", None).unwrap_err();
    assert!(matches!(err, CloudmoreError::TaskTimeout { .. }), "{err}");
    // Back-off doubling up to its cap, stopping before the next wait would pass the limit;
    // through the clock, so the test did not wait.
    let ms = |n| Duration::from_millis(n);
    assert_eq!(clock.waits(), [ms(5), ms(10), ms(20), ms(20)]);
    assert!(store.bills().unwrap().is_empty());
}

#[test]
fn a_malformed_link_is_a_warning_for_that_organization() {
    let fake = start(Behaviour { woodgrove_link: "\"WG-17\"", ..NORMAL });
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let outcome = pull(&fake, &mut store).unwrap();
    assert_eq!(outcome.summary.lines, 3);
    insta::assert_snapshot!(outcome.warnings.join("\n"), @r#"organization "Woodgrove Bank" (id o2): AutotaskCompanyID "WG-17" is not an Autotask company id; its lines are imported without a company link"#);
    let lines = store.bill_lines().unwrap();
    assert_eq!(lines[0].autotask_company_id, Some(29683501), "the others keep theirs");
}

#[test]
fn a_malformed_line_imports_nothing() {
    let fake = start(Behaviour { quantity: "\"2.5x\"", ..NORMAL });
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let err = pull(&fake, &mut store).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @r#"
    cloudmore: 1 malformed line in GET /api/resellers/r1/billing/reports/MonthlyBillingPerOrganizationAsync/t-1, nothing imported
    $.result.organizations[0].services[0].items[0].products[0]: quantity "2.5x" is not a decimal number
    "#);
    assert!(store.bills().unwrap().is_empty());
}

#[test]
fn an_unknown_shape_names_the_field_and_the_request() {
    let fake = start(Behaviour { quantity: "true", ..NORMAL });
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let err = pull(&fake, &mut store).unwrap_err().to_string();
    assert!(
        err.contains("field \"quantity\" is true, expected a number or a decimal string"),
        "{err}"
    );
    assert!(err.contains("MonthlyBillingPerOrganizationAsync/t-1"), "{err}");
    let err = read_report(r#"{"status": "Successful", "rows": 3}"#).unwrap_err().to_string();
    assert_eq!(
        err,
        "at $: an object with no list of organizations or lines under it (fields: rows, status)"
    );
}

#[test]
fn amounts_are_exact_whatever_their_json_form() {
    let line = |amount: &str| -> Fields {
        serde_json::from_str::<Fields>(&format!(r#"{{"quantity":{amount}}}"#)).unwrap()
    };
    let read = |amount: &str| field_decimal(&line(amount), "quantity").map(|d| d.to_string());
    assert_eq!(read("0.1").unwrap(), "0.1");
    assert_eq!(read("12345678901234.123456789012").unwrap(), "12345678901234.123456789012");
    assert_eq!(read("\"20.6000\"").unwrap(), "20.6000");
    assert_eq!(read("-3").unwrap(), "-3");
    assert_eq!(read("1.5E-3").unwrap(), "0.0015");
    assert!(read("null").is_err());
    assert!(read("\"1,5\"").is_err());
}

#[test]
fn a_refused_login_names_the_request_and_never_the_secret() {
    let fake = start(NORMAL);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let mut client = client(&fake.base, "wrong-secret");
    let err = client.pull_into(&mut store, november(), "cloudmore", None).unwrap_err();
    let text = crate::cli::render_error(&err);
    assert_eq!(
        text,
        "error: POST /connect/token: Cloudmore answered 401: {\"error\":\"invalid_client\"}"
    );
    let debug = format!("{client:?}");
    for secret in ["wrong-secret", "pa55word", "tok-1"] {
        assert!(!text.contains(secret) && !debug.contains(secret));
    }
}

#[test]
fn settings_are_required_and_http_only_to_loopback() {
    let credentials = || CloudmoreCredentials {
        username: "u".into(),
        password: Secret::new("p".into()),
        client_secret: Secret::new("s".into()),
    };
    let config = |base: Option<&str>, reseller: Option<&str>| CloudmoreConfig {
        base_url: base.map(str::to_string),
        reseller_id: reseller.map(str::to_string),
        report_wait_seconds: None,
    };
    let err = |c: CloudmoreConfig| {
        CloudmoreClient::new(&c, credentials(), ClientOptions::default()).unwrap_err().to_string()
    };
    assert_eq!(err(config(None, Some("r"))), "cmat.toml: [cloudmore] base_url is not set");
    assert_eq!(
        err(config(Some("https://api.cloudmore.com"), None)),
        "cmat.toml: [cloudmore] reseller_id is not set"
    );
    assert!(err(config(Some("http://api.cloudmore.com"), Some("r"))).contains("refused"));
}

fn answer(status: u16, body: &str) -> Answer {
    Answer { status, location: None, body: body.to_string() }
}

#[test]
fn task_states_are_cloudmores_words_in_status_or_message_any_case() {
    let state = |status, body| task_state(&answer(status, body));
    assert_eq!(state(200, r#"{"status":"Processing"}"#), Ok(TaskState::Processing));
    assert_eq!(state(202, r#"{"status":"PROCESSING"}"#), Ok(TaskState::Processing));
    assert_eq!(state(200, r#"{"message":"processing"}"#), Ok(TaskState::Processing));
    assert_eq!(state(202, ""), Ok(TaskState::Processing));
    assert_eq!(state(202, r#"{"taskId":"t"}"#), Ok(TaskState::Processing));
    assert_eq!(state(200, r#"{"Status":"successful","Result":{}}"#), Ok(TaskState::Successful));
    assert_eq!(state(200, r#"{"message":"Successful"}"#), Ok(TaskState::Successful));
    // No state: the answer is the report.
    assert_eq!(state(200, r#"{"organizations":[]}"#), Ok(TaskState::Successful));
    assert_eq!(state(200, "[]"), Ok(TaskState::Successful));
    assert_eq!(
        state(200, r#"{"status":"Failed","message":"Timeout in report generation"}"#),
        Ok(TaskState::Failed(r#"status "Failed": Timeout in report generation"#.into()))
    );
    assert_eq!(
        state(200, r#"{"message":"failed"}"#),
        Ok(TaskState::Failed(r#"message "failed""#.into()))
    );
    assert_eq!(
        state(202, r#"{"status":"Running"}"#),
        Err(r#"the task's status "Running" is not a state Cloudmore documents (Processing, Successful, Failed)"#.into())
    );
    assert_eq!(
        state(200, r#"{"status":3}"#),
        Err("the task's status 3 is not a state Cloudmore documents (Processing, Successful, Failed)".into())
    );
}

/// The documented nesting, with fields at several levels and in PascalCase, reads as lines
/// carrying their ancestors' fields, each named by its JSON path.
#[test]
fn the_walker_carries_ancestors_down_to_each_line() {
    let report = r#"{"Status":"Successful","Result":{"StartDate":"2026-11-01","Organizations":[
        {"Id":"o1","Name":"Contoso Ltd","CustomerNumber":"CM-1","CustomProperties":[{"name":"AutotaskCompanyID","value":"7"}],
         "Services":[{"Name":"Microsoft NCE","Items":[
            {"SubscriptionId":"s1","BillingDate":"2026-11-01","Products":[{"ProductName":"A","Quantity":1},{"ProductName":"B","Quantity":"2"}]},
            {"SubscriptionId":"s2","Products":[]}]}]},
        {"Id":"o2","Name":"Woodgrove","Services":[]}]}}"#;
    let lines = read_report(report).unwrap();
    let paths: Vec<&str> = lines.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$.Result.Organizations[0].Services[0].Items[0].Products[0]",
            "$.Result.Organizations[0].Services[0].Items[0].Products[1]"
        ]
    );
    let text = |line: usize, key: &str| lines[line].fields.get(key).map(|v| v.get().to_string());
    assert_eq!(text(0, "organizationname").as_deref(), Some(r#""Contoso Ltd""#));
    assert_eq!(text(0, "organizationid").as_deref(), Some(r#""o1""#));
    assert_eq!(text(0, "customernumber").as_deref(), Some(r#""CM-1""#));
    assert_eq!(text(0, "servicename").as_deref(), Some(r#""Microsoft NCE""#));
    assert_eq!(text(1, "subscriptionid").as_deref(), Some(r#""s1""#));
    assert_eq!(text(1, "billingdate").as_deref(), Some(r#""2026-11-01""#));
    assert_eq!(text(1, "quantity").as_deref(), Some(r#""2""#));
    assert_eq!(text(0, "quantity").as_deref(), Some("1"));
    // A flat list of lines reads too.
    let flat = read_report(r#"[{"billingDate":"2026-11-01","quantity":1}]"#).unwrap();
    assert_eq!(flat[0].path, "$[0]");
}

#[test]
fn an_unreadable_report_names_its_json_path() {
    let err = |body: &str| read_report(body).unwrap_err().to_string();
    assert_eq!(
        err(r#"{"result":{"organizations":[{"services":[{"items":[7]}]}]}}"#),
        "at $.result.organizations[0].services[0].items[0]: a number 7, expected an object"
    );
    assert_eq!(err(r#""done""#), r#"at $: text "done", expected the report (an object or a list)"#);
    assert!(err("{").starts_with("at $: not JSON"));
}

proptest::proptest! {
    /// Wherever a report puts a field (the organization, the service, the item or the product),
    /// the line reads the same: the walker has no list of keys at fixed depths.
    #[test]
    fn a_field_reads_the_same_at_any_level(levels in proptest::collection::vec(0usize..4, 6)) {
        let fields = [
            ("customerNumber", "\"CM-1\""), ("serviceName", "\"NCE\""), ("billingDate", "\"2026-11-01\""),
            ("subscriptionId", "\"s1\""), ("currencyCode", "\"EUR\""), ("totalSales", "12.50"),
        ];
        let mut at: [Vec<String>; 4] = Default::default();
        for ((name, value), level) in fields.iter().zip(&levels) {
            at[*level].push(format!("\"{name}\":{value}"));
        }
        let join = |level: usize, rest: &str| {
            let mut parts = at[level].clone();
            if !rest.is_empty() {
                parts.push(rest.to_string());
            }
            format!("{{{}}}", parts.join(","))
        };
        let product = join(3, "");
        let item = join(2, &format!("\"products\":[{product}]"));
        let service = join(1, &format!("\"items\":[{item}]"));
        let organization = join(0, &format!("\"services\":[{service}]"));
        let report = format!("{{\"organizations\":[{organization}]}}");
        let lines = read_report(&report).unwrap();
        proptest::prop_assert_eq!(lines.len(), 1);
        for (name, value) in fields {
            let got = lines[0].fields.get(&name.to_ascii_lowercase()).map(|v| v.get().to_string());
            proptest::prop_assert_eq!(got.as_deref(), Some(value));
        }
    }
}

#[test]
fn report_wait_seconds_bounds_the_wait_and_defaults_to_900() {
    let config = |wait| CloudmoreConfig {
        base_url: Some("https://api.cloudmore.com".into()),
        reseller_id: Some("r1".into()),
        report_wait_seconds: wait,
    };
    let credentials = || CloudmoreCredentials {
        username: "u".into(),
        password: Secret::new("p".into()),
        client_secret: Secret::new("s".into()),
    };
    let timeout = |wait| {
        CloudmoreClient::new(&config(wait), credentials(), ClientOptions::default())
            .unwrap()
            .options
            .task_timeout
    };
    assert_eq!(timeout(None), Duration::from_secs(900));
    assert_eq!(timeout(Some(30)), Duration::from_secs(30));
    let parsed = crate::workspace::Config::parse(
        std::path::Path::new("cmat.toml"),
        "[cloudmore]\nreport_wait_seconds = 120\n",
    )
    .unwrap();
    assert_eq!(parsed.cloudmore.report_wait_seconds, Some(120));
}

/// The kept answer never holds a secret, should Cloudmore ever echo one, and is never half a
/// file.
#[test]
fn the_kept_answer_is_scrubbed_of_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloudmore").join("2026-11-01..2026-11-30.json");
    keep_answer(
        &path,
        r#"{"echo":"pa55word","token":"tok-1","n":1}"#,
        &["pa55word".into(), "tok-1".into()],
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), r#"{"echo":"***","token":"***","n":1}"#);
    assert!(!path.with_extension("json.partial").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
