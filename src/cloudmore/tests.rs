//! The client against a small in-process Cloudmore stand-in (tiny_http on a loopback port).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::store::Access;

const BASIC: &str = "Basic cm8uY3VzdG9tZXIuY2xpZW50OmNsaWVudC1zM2NyZXQ=";

#[derive(Default)]
struct Seen {
    requests: Vec<String>,
    token_requests: u32,
    token_bodies: Vec<String>,
    polls: HashMap<String, u32>,
}

struct FakeCloudmore {
    base: String,
    seen: Arc<Mutex<Seen>>,
}

fn line_json(org: &str, item: &str, quantity: &str, total: &str) -> String {
    format!(
        r#"{{"billingDate":"2026-11-01","serviceName":"Microsoft NCE","brokerName":"Microsoft",
            "organizationName":"{org}","customerNumber":"CM-1","productName":"Microsoft 365 Business Premium",
            "itemCode":"{item}","quantity":"{quantity}","unitCostPrice":"18.5400","unitSalesPrice":"20.6000",
            "totalCost":"{total}","totalSales":"{total}","currencyCode":"EUR","productId":"{item}:0001",
            "subscriptionId":"sub-{org}","subscriptionName":"M365"}}"#
    )
}

/// Serves the Cloudmore endpoints cmat uses; `quantity` is the Contoso line's (a string, so a
/// test can send a malformed one).
fn start(quantity: &'static str) -> FakeCloudmore {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", server.server_addr().to_ip().expect("ip"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = Arc::clone(&seen);
    let result_base = base.clone();
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
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let mut seen = state.lock().unwrap();
            seen.requests.push(format!("{method} {url}"));
            let bearer_ok = authorization == "Bearer tok-1";
            let (status, answer) = match (method.as_str(), url.as_str()) {
                ("POST", "/connect/token") => {
                    seen.token_requests += 1;
                    seen.token_bodies.push(body.clone());
                    if authorization == BASIC {
                        (200, r#"{"access_token":"tok-1","expires_in":3600,"token_type":"Bearer"}"#.to_string())
                    } else {
                        (401, r#"{"error":"invalid_client"}"#.to_string())
                    }
                }
                _ if !bearer_ok => (401, String::new()),
                ("GET", "/api/resellers/r1/organizations") => (
                    200,
                    r#"[{"id":"o1","name":"Contoso Ltd","customerNumber":"CM-1",
                         "customProperties":[{"name":"AutotaskCompanyID","value":"29683501"}]},
                        {"id":"o2","name":"Woodgrove Bank","customerNumber":"CM-2","customProperties":[]}]"#
                        .to_string(),
                ),
                ("POST", path) if path.ends_with("/billing/reports") => {
                    let org = path.split('/').nth(5).unwrap_or("").to_string();
                    let request: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let task = format!("t-{org}-{}-{}", request["year"], request["month"]);
                    (200, format!(r#"{{"taskId":"{task}"}}"#))
                }
                ("GET", path) if path.starts_with("/api/resellers/r1/tasks/") => {
                    let task = path.rsplit('/').next().unwrap_or("").to_string();
                    let polls = seen.polls.entry(task.clone()).or_default();
                    *polls += 1;
                    if *polls == 1 {
                        (200, r#"{"status":"Running"}"#.to_string())
                    } else {
                        (200, format!(r#"{{"status":"Completed","resultUrl":"{result_base}/results/{task}"}}"#))
                    }
                }
                ("GET", path) if path.starts_with("/results/t-o1-2026-11") => (
                    200,
                    format!(r#"{{"lines":[{},{}]}}"#,
                        line_json("Contoso Ltd", "CFQ7TTC0LCHC", quantity, "515.0000"),
                        line_json("Contoso Ltd", "CFQ7TTC0LH16", "10", "40.0000")),
                ),
                ("GET", path) if path.starts_with("/results/t-o2-2026-11") => (
                    200,
                    format!(r#"{{"lines":[{}]}}"#, line_json("Woodgrove Bank", "CFQ7TTC0LH18", "15", "84.0000")),
                ),
                ("GET", path) if path.starts_with("/results/") => (200, r#"{"lines":[]}"#.to_string()),
                _ => (404, "no such endpoint".to_string()),
            };
            drop(seen);
            let _ =
                request.respond(tiny_http::Response::from_string(answer).with_status_code(status));
        }
    });
    FakeCloudmore { base, seen }
}

fn client(base: &str, client_secret: &str) -> CloudmoreClient {
    CloudmoreClient::new(
        &CloudmoreConfig { base_url: Some(base.to_string()), reseller_id: Some("r1".into()) },
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
        },
    )
    .expect("client")
}

#[test]
fn pulls_every_organization_through_the_import_path() {
    let fake = start("25");
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let mut client = client(&fake.base, "client-s3cret");
    let summary =
        client.pull_into(&mut store, &[(2026, 10), (2026, 11)], "cloudmore").expect("pull");
    assert_eq!(summary.lines, 3);
    assert_eq!(summary.new_bills.len(), 2);

    let lines = store.bill_lines().unwrap();
    assert_eq!(lines[0].organization_name, "Contoso Ltd");
    assert_eq!(lines[0].autotask_company_id, Some(29683501));
    assert_eq!(lines[0].quantity.to_string(), "25");
    assert_eq!(lines[0].total_sales.to_string(), "515.0000");
    assert_eq!(lines[0].source.to_string(), "cloudmore:1");
    assert_eq!(lines[2].organization_name, "Woodgrove Bank");
    assert_eq!(lines[2].autotask_company_id, None);

    // The same pull again changes nothing.
    let again = client.pull_into(&mut store, &[(2026, 11)], "cloudmore").unwrap();
    assert_eq!(again.unchanged_bills.len(), 2);

    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.token_requests, 1, "the token is reused");
    assert_eq!(
        seen.token_bodies[0],
        "grant_type=password&username=api%40reseller.example&password=pa55word&scope=api"
    );
    // Each task was seen Running once, then Completed.
    assert_eq!(seen.polls["t-o1-2026-10"], 2, "{:?}", seen.polls);
    assert_eq!(seen.polls["t-o2-2026-10"], 2, "{:?}", seen.polls);
}

#[test]
fn a_malformed_line_imports_nothing() {
    let fake = start("2.5e1");
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let err = client(&fake.base, "client-s3cret")
        .pull_into(&mut store, &[(2026, 11)], "cloudmore 2026-11")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cloudmore 2026-11: 1 malformed line, nothing imported\n\
         cloudmore:2026-11/o1:1: quantity \"2.5e1\" is not a decimal number (scientific notation is not accepted)"
    );
    assert!(store.bills().unwrap().is_empty());
}

#[test]
fn a_refused_login_names_the_request_and_never_the_secret() {
    let fake = start("25");
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Access::Write).unwrap();
    let mut client = client(&fake.base, "wrong-secret");
    let err = client.pull_into(&mut store, &[(2026, 11)], "cloudmore").unwrap_err();
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
fn the_token_never_goes_to_another_host() {
    assert!(same_origin("http://127.0.0.1:8080/results/x", "http://127.0.0.1:8080"));
    assert!(!same_origin("http://127.0.0.1:8081/results/x", "http://127.0.0.1:8080"));
    assert!(!same_origin("https://evil.example/x", "https://api.cloudmore.com"));
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
