//! The Cloudmore endpoints cmat reads, under `/cloudmore/`, as Cloudmore documents them: the
//! password-grant token, the reseller's organizations (the list without custom properties, the
//! detail with them), and the reseller-wide asynchronous billing report
//! (`POST …/billing/reports/MonthlyBillingPerOrganizationAsync` with `{startDate, endDate}`,
//! then `GET …/MonthlyBillingPerOrganizationAsync/{taskId}`: 202 while it runs, then the lines).
//! Any other path (the per-organization reports and `/tasks/{id}` of earlier cmat versions) is a
//! 404. `POST /cloudmore/_sim/report {"polls": N, "fail": bool}` sets how the next tasks behave
//! (tests: a task that takes several polls, a task that fails; feature `faults`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::server::{parse_form, Incoming, Shared};

#[derive(Debug, Default)]
pub struct CloudmoreState {
    tokens: BTreeSet<String>,
    next: u64,
    tasks: BTreeMap<String, Task>,
    /// How the next report tasks behave (`POST /cloudmore/_sim/report`).
    behaviour: TaskBehaviour,
}

#[derive(Debug, Clone, Copy)]
struct TaskBehaviour {
    /// Polls answered 202 before the report.
    polls: u32,
    fail: bool,
}

impl Default for TaskBehaviour {
    fn default() -> Self {
        TaskBehaviour { polls: 1, fail: false }
    }
}

#[derive(Debug, Clone)]
struct Task {
    start: String,
    end: String,
    polls: u32,
    behaviour: TaskBehaviour,
}

/// A line as the report answers it: amounts as JSON numbers (as a .NET API sends decimals)
/// when their text survives that, else as they are in the seed.
fn report_line(line: &Value) -> Value {
    let mut line = line.clone();
    if let Some(object) = line.as_object_mut() {
        for key in ["quantity", "unitCostPrice", "unitSalesPrice", "totalCost", "totalSales"] {
            let Some(Value::String(text)) = object.get(key) else { continue };
            if let Ok(Value::Number(number)) = serde_json::from_str::<Value>(text) {
                let same = |a: &str, b: &str| match (
                    a.parse::<rust_decimal::Decimal>(),
                    b.parse::<rust_decimal::Decimal>(),
                ) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => false,
                };
                if same(&number.to_string(), text) {
                    object.insert(key.to_string(), Value::Number(number));
                }
            }
        }
    }
    line
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
        if method != "POST" {
            return (405, json!({"error": "method_not_allowed"}));
        }
        let expected = format!(
            "Basic {}",
            base64(format!("ro.customer.client:{}", cm.client_secret).as_bytes())
        );
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
        return (
            200,
            json!({"access_token": token, "expires_in": 86400, "token_type": "Bearer", "scope": "api"}),
        );
    }

    #[cfg(feature = "faults")]
    if let ["_sim", "report"] = segments.as_slice() {
        *route = format!("{method} cloudmore/_sim/report");
        let body: Value =
            serde_json::from_str(rq.body.as_deref().unwrap_or("")).unwrap_or(Value::Null);
        let mut c = shared.control();
        c.cloudmore.behaviour = TaskBehaviour {
            polls: body.get("polls").and_then(Value::as_u64).unwrap_or(1) as u32,
            fail: body.get("fail").and_then(Value::as_bool).unwrap_or(false),
        };
        return (200, json!({"ok": true}));
    }

    let authorised = rq
        .header("Authorization")
        .and_then(|h| h.trim().strip_prefix("Bearer "))
        .is_some_and(|t| shared.control().cloudmore.tokens.contains(t.trim()));
    match segments.as_slice() {
        ["api", "resellers", r, rest @ ..] => {
            let pattern: Vec<&str> =
                rest.iter().enumerate().map(|(i, s)| if i % 2 == 1 { "{id}" } else { s }).collect();
            *route = match rest {
                ["billing", "reports", name, task @ ..] => format!(
                    "{method} cloudmore/api/resellers/{{id}}/billing/reports/{name}{}",
                    if task.is_empty() { "" } else { "/{taskId}" }
                ),
                _ => format!("{method} cloudmore/api/resellers/{{id}}/{}", pattern.join("/")),
            };
            if !authorised {
                return (401, json!({"message": "Unauthorized"}));
            }
            if !r.eq_ignore_ascii_case(&cm.reseller_id) {
                return (404, json!({"message": format!("Reseller {r} not found")}));
            }
            let report = |s: &str| s.eq_ignore_ascii_case("MonthlyBillingPerOrganizationAsync");
            match (method, rest) {
                // The list, as Cloudmore's: without custom properties (they are in the detail).
                ("GET", ["organizations"]) => {
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
                    (200, Value::Array(list))
                }
                ("GET", ["organizations", id]) => {
                    match cm
                        .organizations
                        .iter()
                        .find(|o| text_of(o.get("id")).eq_ignore_ascii_case(id))
                    {
                        Some(o) => (200, o.clone()),
                        None => (404, json!({"message": format!("Organization {id} not found")})),
                    }
                }
                ("POST", ["billing", "reports", name]) if report(name) => {
                    let body: Value = serde_json::from_str(rq.body.as_deref().unwrap_or(""))
                        .unwrap_or(Value::Null);
                    let date = |key: &str| {
                        body.get(key)
                            .and_then(Value::as_str)
                            .and_then(|t| t.get(..10))
                            .filter(|t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok())
                            .map(str::to_string)
                    };
                    let (Some(start), Some(end)) = (date("startDate"), date("endDate")) else {
                        return (
                            400,
                            json!({"message": "startDate and endDate (YYYY-MM-DD) are required"}),
                        );
                    };
                    let mut c = shared.control();
                    c.cloudmore.next += 1;
                    let id = format!("task-{}", c.cloudmore.next);
                    let behaviour = c.cloudmore.behaviour;
                    c.cloudmore.tasks.insert(id.clone(), Task { start, end, polls: 0, behaviour });
                    // The id in the body (the simulator's answers carry no headers).
                    (202, json!({"taskId": id}))
                }
                ("GET", ["billing", "reports", name, id]) if report(name) => {
                    let mut c = shared.control();
                    let Some(task) = c.cloudmore.tasks.get_mut(*id) else {
                        return (404, json!({"message": "Task not found"}));
                    };
                    task.polls += 1;
                    if task.polls <= task.behaviour.polls {
                        return (202, json!({"taskId": id, "status": "Running"}));
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
                    let lines: Vec<Value> = cm
                        .billing_lines
                        .iter()
                        .filter(|l| {
                            let date = text_of(l.get("billingDate"));
                            let date = date.get(..10).unwrap_or("");
                            date >= task.start.as_str() && date <= task.end.as_str()
                        })
                        .map(report_line)
                        .collect();
                    (200, Value::Array(lines))
                }
                _ => (404, json!({"message": "Not found"})),
            }
        }
        _ => {
            *route = format!("{method} cloudmore/?");
            (404, json!({"message": "Not found"}))
        }
    }
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
