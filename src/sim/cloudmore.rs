//! The Cloudmore endpoints cmat reads, under `/cloudmore/`: the password-grant token, the
//! reseller's organizations, and the asynchronous billing report (request, poll, fetch).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::server::{parse_form, Incoming, Shared};

#[derive(Debug, Default)]
pub struct CloudmoreState {
    tokens: BTreeSet<String>,
    next: u64,
    tasks: BTreeMap<String, Task>,
}

#[derive(Debug, Clone)]
struct Task {
    organization: String,
    year: i64,
    month: i64,
    polls: u32,
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

    let authorised = rq
        .header("Authorization")
        .and_then(|h| h.trim().strip_prefix("Bearer "))
        .is_some_and(|t| shared.control().cloudmore.tokens.contains(t.trim()));
    match segments.as_slice() {
        ["api", "resellers", r, rest @ ..] => {
            let pattern: Vec<&str> =
                rest.iter().enumerate().map(|(i, s)| if i % 2 == 1 { "{id}" } else { s }).collect();
            *route = format!("{method} cloudmore/api/resellers/{{id}}/{}", pattern.join("/"));
            if !authorised {
                return (401, json!({"message": "Unauthorized"}));
            }
            if !r.eq_ignore_ascii_case(&cm.reseller_id) {
                return (404, json!({"message": format!("Reseller {r} not found")}));
            }
            let org_exists = |id: &str| {
                cm.organizations.iter().any(|o| text_of(o.get("id")).eq_ignore_ascii_case(id))
            };
            match (method, rest) {
                ("GET", ["organizations"]) => (200, Value::Array(cm.organizations.clone())),
                ("POST", ["organizations", org, "billing", "reports"]) => {
                    if !org_exists(org) {
                        return (404, json!({"message": format!("Organization {org} not found")}));
                    }
                    let body: Value = serde_json::from_str(rq.body.as_deref().unwrap_or(""))
                        .unwrap_or(Value::Null);
                    let year = body
                        .get("year")
                        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
                    let month = body
                        .get("month")
                        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
                    let (Some(year), Some(month)) = (year, month.filter(|m| (1..=12).contains(m)))
                    else {
                        return (400, json!({"message": "year and month are required"}));
                    };
                    let mut c = shared.control();
                    c.cloudmore.next += 1;
                    let id = format!("task-{}", c.cloudmore.next);
                    c.cloudmore.tasks.insert(
                        id.clone(),
                        Task { organization: org.to_string(), year, month, polls: 0 },
                    );
                    (202, json!({"taskId": id}))
                }
                ("GET", ["tasks", id]) => {
                    let mut c = shared.control();
                    let Some(task) = c.cloudmore.tasks.get_mut(*id) else {
                        return (404, json!({"message": "Task not found"}));
                    };
                    task.polls += 1;
                    if task.polls == 1 {
                        (200, json!({"id": id, "status": "Running"}))
                    } else {
                        let url = format!(
                            "/cloudmore/api/resellers/{}/billing/reports/{id}",
                            cm.reseller_id
                        );
                        (200, json!({"id": id, "status": "Completed", "resultUrl": url}))
                    }
                }
                ("GET", ["billing", "reports", id]) => {
                    let task = shared.control().cloudmore.tasks.get(*id).cloned();
                    let Some(task) = task.filter(|t| t.polls >= 2) else {
                        return (404, json!({"message": "Report not found or not ready"}));
                    };
                    let prefix = format!("{:04}-{:02}", task.year, task.month);
                    let lines: Vec<Value> = cm
                        .billing_lines
                        .iter()
                        .filter(|l| {
                            text_of(l.get("organizationId"))
                                .eq_ignore_ascii_case(&task.organization)
                        })
                        .filter(|l| text_of(l.get("billingDate")).starts_with(&prefix))
                        .cloned()
                        .collect();
                    (200, json!({"lines": lines}))
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
