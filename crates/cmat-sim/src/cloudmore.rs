//! The Cloudmore endpoints cmat reads, under `/cloudmore/`, as Cloudmore documents them (not
//! as cmat's client happens to expect): the password-grant token, the reseller's organizations
//! (the list without custom properties, the detail with them), and the reseller-wide
//! asynchronous billing report (`POST …/billing/reports/MonthlyBillingPerOrganizationAsync` with
//! `{startDate, endDate}` answers 202 `{"taskId"}`; `GET …/MonthlyBillingPerOrganizationAsync/{taskId}`
//! answers 202 `{"status": "Processing"}` while it runs, then `{"status": "Successful",
//! "result": REPORT}` or `{"status": "Failed", "message"}`). The report is nested as the General
//! Billing Report is: organizations → services → items (one per subscription) → products (one
//! per billing line), camelCase, amounts as JSON numbers. Any other path is a 404.
//!
//! `POST /cloudmore/_sim/report` (feature `faults`) sets how the next tasks behave, for tests:
//! `polls` (answers before the end), `fail`, and named variants of what Cloudmore documents:
//! `"case": "pascal"`, `"amounts": "strings"`, `"wrap": false` (the report without the task
//! around it), `"shape": "flat"` (a bare list of lines, the shape of cmat's first client), a
//! `"pending"` word other than `Processing` (e.g. `Running`), `"error": 500` (every poll fails
//! so), `"malformed": true` (a product whose quantity is not a number), `"revoke": true` (the
//! token is revoked once the task starts: the first poll answers 401).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::seed::CloudmoreSeed;
use crate::server::{parse_form, Incoming, Shared};

#[derive(Debug, Default)]
pub struct CloudmoreState {
    tokens: BTreeSet<String>,
    next: u64,
    tasks: BTreeMap<String, Task>,
    /// How the next report tasks behave (`POST /cloudmore/_sim/report`).
    behaviour: TaskBehaviour,
}

/// How a report task answers: the documented behaviour by default, variants for tests.
#[derive(Debug, Clone)]
struct TaskBehaviour {
    /// Polls answered "still processing" before the end.
    polls: u32,
    fail: bool,
    pascal_case: bool,
    amounts_as_strings: bool,
    /// The report inside the finished task's `result` (else the answer is the report).
    wrap: bool,
    /// A bare list of flat lines instead of the nested report.
    flat: bool,
    /// The word a running task's status says.
    pending: String,
    /// A status every poll answers (a 500: Cloudmore failing).
    error: Option<u16>,
    malformed: bool,
    /// Revoke every token once the task has started.
    revoke: bool,
}

impl Default for TaskBehaviour {
    fn default() -> Self {
        TaskBehaviour {
            polls: 1,
            fail: false,
            pascal_case: false,
            amounts_as_strings: false,
            wrap: true,
            flat: false,
            pending: "Processing".into(),
            error: None,
            malformed: false,
            revoke: false,
        }
    }
}

impl TaskBehaviour {
    #[cfg(feature = "faults")]
    fn from_json(body: &Value) -> TaskBehaviour {
        let flag =
            |key: &str, default: bool| body.get(key).and_then(Value::as_bool).unwrap_or(default);
        let word = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_ascii_lowercase);
        TaskBehaviour {
            polls: body.get("polls").and_then(Value::as_u64).unwrap_or(1) as u32,
            fail: flag("fail", false),
            pascal_case: word("case").as_deref() == Some("pascal"),
            amounts_as_strings: word("amounts").as_deref() == Some("strings"),
            wrap: flag("wrap", true),
            flat: word("shape").as_deref() == Some("flat"),
            pending: body
                .get("pending")
                .and_then(Value::as_str)
                .unwrap_or("Processing")
                .to_string(),
            error: body.get("error").and_then(Value::as_u64).map(|s| s as u16),
            malformed: flag("malformed", false),
            revoke: flag("revoke", false),
        }
    }
}

#[derive(Debug, Clone)]
struct Task {
    id: String,
    start: String,
    end: String,
    polls: u32,
    behaviour: TaskBehaviour,
}

/// Columns the report carries on the organization, the service and the item (subscription);
/// the rest are the product's (the billing line's). The General Billing Report's hierarchy:
/// Organization → Service → Subscription → Billing Line.
const ORGANIZATION_FIELDS: &[&str] = &[
    "organizationId",
    "organizationName",
    "customerNumber",
    "organizationCurrencyCode",
    "organizationGroups",
];
const SERVICE_FIELDS: &[&str] = &["serviceName", "brokerName"];
const ITEM_FIELDS: &[&str] = &["subscriptionId", "subscriptionName", "paymentFrequency"];
const AMOUNTS: &[&str] = &[
    "quantity",
    "unitCostPrice",
    "unitSalesPrice",
    "totalCost",
    "totalSales",
    "marginAmount",
    "marginPercentage",
];

type Object = serde_json::Map<String, Value>;

/// Marks a decimal to be written as a JSON number with its exact text (serde_json's own
/// numbers would turn `18.5400` into `18.54`; a .NET API writes a decimal's scale).
const DECIMAL_MARK: &str = "\u{1}decimal:";

/// A line's amounts as JSON numbers (as a .NET API sends decimals), each with the exact text
/// of the seed, when that text is a JSON number; else as they are in the seed.
fn amounts_as_numbers(line: &mut Object) {
    for key in AMOUNTS {
        let Some(Value::String(text)) = line.get(*key) else { continue };
        if let Ok(Value::Number(_)) = serde_json::from_str::<Value>(text) {
            let marked = format!("{DECIMAL_MARK}{text}");
            line.insert((*key).to_string(), Value::String(marked));
        }
    }
}

/// The answer's JSON text, marked decimals written as numbers.
pub(crate) fn serialize(body: &Value) -> String {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mark =
        format!("\"{}", serde_json::to_string(DECIMAL_MARK).unwrap_or_default().trim_matches('"'));
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&mark) {
        out.push_str(&rest[..at]);
        let number = &rest[at + mark.len()..];
        let end = number.find('"').unwrap_or(number.len());
        out.push_str(&number[..end]);
        rest = number.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Groups objects by the values of `fields` (in first-seen order): each group's head holds
/// those fields, its members the rest.
fn group(members: Vec<Object>, fields: &[&str]) -> Vec<(Object, Vec<Object>)> {
    let mut groups: Vec<(Object, Vec<Object>)> = Vec::new();
    for mut member in members {
        let mut head = Object::new();
        for field in fields {
            if let Some(value) = member.remove(*field) {
                head.insert((*field).to_string(), value);
            }
        }
        match groups.iter_mut().find(|(h, _)| *h == head) {
            Some((_, rest)) => rest.push(member),
            None => groups.push((head, vec![member])),
        }
    }
    groups
}

/// Groups `members` under `fields`, each group's members as `list`, nested by `inner`.
fn nest(
    members: Vec<Object>,
    fields: &[&str],
    list: &str,
    inner: impl Fn(Vec<Object>) -> Vec<Value>,
) -> Vec<Value> {
    group(members, fields)
        .into_iter()
        .map(|(mut head, rest)| {
            head.insert(list.to_string(), Value::Array(inner(rest)));
            Value::Object(head)
        })
        .collect()
}

/// The report of `lines` in the documented shape (or a named variant of it).
fn report_answer(lines: Vec<Object>, task: &Task) -> Value {
    let behaviour = &task.behaviour;
    let mut lines = lines;
    if !behaviour.amounts_as_strings {
        lines.iter_mut().for_each(amounts_as_numbers);
    }
    if behaviour.malformed {
        if let Some(first) = lines.first_mut() {
            first.insert("quantity".into(), Value::Bool(true));
        }
    }
    if behaviour.flat {
        return Value::Array(lines.into_iter().map(Value::Object).collect());
    }
    let organizations = nest(lines, ORGANIZATION_FIELDS, "services", |services| {
        nest(services, SERVICE_FIELDS, "items", |items| {
            nest(items, ITEM_FIELDS, "products", |products| {
                products.into_iter().map(Value::Object).collect()
            })
        })
    });
    let report =
        json!({"startDate": task.start, "endDate": task.end, "organizations": organizations});
    let report = if behaviour.pascal_case { pascal_case(report) } else { report };
    if behaviour.wrap {
        json!({"taskId": task.id, "status": "Successful", "result": report})
    } else {
        report
    }
}

/// Every key with its first letter upper-cased (`organizationName` → `OrganizationName`).
fn pascal_case(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .map(|(key, value)| {
                    let mut chars = key.chars();
                    let key = match chars.next() {
                        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                        None => key,
                    };
                    (key, pascal_case(value))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(pascal_case).collect()),
        other => other,
    }
}

/// Standard base64 (RFC 4648, padded): only what the Basic header needs, hand-rolled rather
/// than adding a crate for twenty lines.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

pub(super) fn handle(shared: &Shared, rq: &Incoming, route: &mut String) -> (u16, Value) {
    let Some(cm) = shared.seed.cloudmore.as_ref() else {
        return (404, json!({"error": "this simulator has no Cloudmore seed"}));
    };
    let path = rq.path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).skip(1).collect();
    let method = rq.method.as_str();

    if let ["connect", "token"] = segments.as_slice() {
        *route = format!("{method} cloudmore/connect/token");
        return token(shared, cm, rq);
    }

    #[cfg(feature = "faults")]
    if let ["_sim", "report"] = segments.as_slice() {
        *route = format!("{method} cloudmore/_sim/report");
        return set_behaviour(shared, rq);
    }

    match segments.as_slice() {
        ["api", "resellers", reseller, rest @ ..] => {
            *route = reseller_route(method, rest);
            reseller_api(shared, cm, rq, reseller, rest)
        }
        _ => {
            *route = format!("{method} cloudmore/?");
            (404, json!({"message": "Not found"}))
        }
    }
}

/// `POST /cloudmore/_sim/report`: how the next report tasks behave.
#[cfg(feature = "faults")]
fn set_behaviour(shared: &Shared, rq: &Incoming) -> (u16, Value) {
    let body: Value = serde_json::from_str(rq.body.as_deref().unwrap_or("")).unwrap_or(Value::Null);
    let mut c = shared.control();
    c.cloudmore.behaviour = TaskBehaviour::from_json(&body);
    (200, json!({"ok": true}))
}

/// The route a reseller request is counted under: ids as `{id}`, a report's task as
/// `{taskId}`.
fn reseller_route(method: &str, rest: &[&str]) -> String {
    match rest {
        ["billing", "reports", name, task @ ..] => format!(
            "{method} cloudmore/api/resellers/{{id}}/billing/reports/{name}{}",
            if task.is_empty() { "" } else { "/{taskId}" }
        ),
        _ => {
            let pattern: Vec<&str> =
                rest.iter().enumerate().map(|(i, s)| if i % 2 == 1 { "{id}" } else { s }).collect();
            format!("{method} cloudmore/api/resellers/{{id}}/{}", pattern.join("/"))
        }
    }
}

/// `…/api/resellers/{id}/…`: a bearer token and the seed's reseller first, then the
/// organizations and the billing report task.
fn reseller_api(
    shared: &Shared,
    cm: &CloudmoreSeed,
    rq: &Incoming,
    reseller: &str,
    rest: &[&str],
) -> (u16, Value) {
    let authorised = rq
        .header("Authorization")
        .and_then(|h| h.trim().strip_prefix("Bearer "))
        .is_some_and(|t| shared.control().cloudmore.tokens.contains(t.trim()));
    if !authorised {
        return (401, json!({"message": "Unauthorized"}));
    }
    if !reseller.eq_ignore_ascii_case(&cm.reseller_id) {
        return (404, json!({"message": format!("Reseller {reseller} not found")}));
    }
    let report = |s: &str| s.eq_ignore_ascii_case("MonthlyBillingPerOrganizationAsync");
    match (rq.method.as_str(), rest) {
        ("GET", ["organizations"]) => (200, organization_list(cm)),
        ("GET", ["organizations", id]) => {
            match cm.organizations.iter().find(|o| text_of(o.get("id")).eq_ignore_ascii_case(id)) {
                Some(o) => (200, o.clone()),
                None => (404, json!({"message": format!("Organization {id} not found")})),
            }
        }
        ("POST", ["billing", "reports", name]) if report(name) => start_task(shared, rq),
        ("GET", ["billing", "reports", name, id]) if report(name) => poll(shared, cm, id),
        _ => (404, json!({"message": "Not found"})),
    }
}

/// The list, as Cloudmore's: without custom properties (they are in the detail).
fn organization_list(cm: &CloudmoreSeed) -> Value {
    let list = cm
        .organizations
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if let Some(object) = o.as_object_mut() {
                object.remove("customProperties");
            }
            o
        })
        .collect();
    Value::Array(list)
}

/// `POST /connect/token`: the password grant for `ro.customer.client`.
fn token(shared: &Shared, cm: &CloudmoreSeed, rq: &Incoming) -> (u16, Value) {
    if rq.method != "POST" {
        return (405, json!({"error": "method_not_allowed"}));
    }
    let expected =
        format!("Basic {}", base64(format!("ro.customer.client:{}", cm.client_secret).as_bytes()));
    if rq.header("Authorization").map(str::trim) != Some(expected.as_str()) {
        return (400, json!({"error": "invalid_client"}));
    }
    let form = parse_form(rq.body.as_deref().unwrap_or(""));
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "password" {
        return (400, json!({"error": "unsupported_grant_type"}));
    }
    if !field("scope").split(' ').any(|s| s == "api") {
        return (400, json!({"error": "invalid_scope"}));
    }
    if field("username") != cm.username || field("password") != cm.password {
        return (
            400,
            json!({"error": "invalid_grant", "error_description": "invalid_username_or_password"}),
        );
    }
    let mut c = shared.control();
    c.cloudmore.next += 1;
    let token = format!("sim-access-token-{}", c.cloudmore.next);
    c.cloudmore.tokens.insert(token.clone());
    (
        200,
        json!({"access_token": token, "expires_in": 86400, "token_type": "Bearer", "scope": "api"}),
    )
}

/// `POST …/MonthlyBillingPerOrganizationAsync` with `{startDate, endDate}`: a task, 202.
fn start_task(shared: &Shared, rq: &Incoming) -> (u16, Value) {
    let body: Value = serde_json::from_str(rq.body.as_deref().unwrap_or("")).unwrap_or(Value::Null);
    let date = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .and_then(|t| t.get(..10))
            .filter(|t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok())
            .map(str::to_string)
    };
    let (Some(start), Some(end)) = (date("startDate"), date("endDate")) else {
        return (400, json!({"message": "startDate and endDate (YYYY-MM-DD) are required"}));
    };
    let mut c = shared.control();
    c.cloudmore.next += 1;
    let id = format!("task-{}", c.cloudmore.next);
    let behaviour = c.cloudmore.behaviour.clone();
    if behaviour.revoke {
        c.cloudmore.tokens.clear();
    }
    let task = Task { id: id.clone(), start, end, polls: 0, behaviour };
    c.cloudmore.tasks.insert(id.clone(), task);
    // The id in the body (the simulator's answers carry no headers).
    (202, json!({"taskId": id}))
}

/// `GET …/MonthlyBillingPerOrganizationAsync/{taskId}`: the task's state, then its report.
fn poll(shared: &Shared, cm: &CloudmoreSeed, id: &str) -> (u16, Value) {
    let mut c = shared.control();
    let Some(task) = c.cloudmore.tasks.get_mut(id) else {
        return (404, json!({"message": "Task not found"}));
    };
    task.polls += 1;
    if let Some(status) = task.behaviour.error {
        return (status, json!({"message": "An error has occurred."}));
    }
    if task.polls <= task.behaviour.polls {
        let word = task.behaviour.pending.clone();
        return (202, json!({"taskId": id, "status": word}));
    }
    if task.behaviour.fail {
        return (
            200,
            json!({"taskId": id, "status": "Failed",
                   "message": "The report could not be generated"}),
        );
    }
    let task = task.clone();
    drop(c);
    let lines: Vec<Object> = cm
        .billing_lines
        .iter()
        .filter(|l| {
            let date = text_of(l.get("billingDate"));
            let date = date.get(..10).unwrap_or("");
            date >= task.start.as_str() && date <= task.end.as_str()
        })
        .filter_map(|l| l.as_object().cloned())
        .collect();
    (200, report_answer(lines, &task))
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
