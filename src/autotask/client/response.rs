//! Turning what came back into a result: the one place a status and body become a value or an
//! [`AutotaskError`] (with the [`Rejection`] kind read from Autotask's text).

use std::time::Duration;

use crate::json_kind::kind;
use reqwest::blocking::Response;
use reqwest::StatusCode;
use serde_json::Value;

use super::super::error::{is_lockout_text, AutotaskError, Rejection, THREAD_THRESHOLD_CODE};
use super::MAX_BODY;

pub(super) enum Outcome {
    /// No HTTP answer at all. `connect`: the connection was never made (nothing was sent).
    NotSent {
        connect: bool,
        message: String,
    },
    /// A status line came, the body did not.
    BodyLost {
        status: StatusCode,
        message: String,
    },
    Answer {
        status: StatusCode,
        body: Vec<u8>,
        retry_after: Option<Duration>,
    },
}

pub(super) fn read_response(response: Response) -> Outcome {
    use std::io::Read;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    let mut body = Vec::new();
    match response.take(MAX_BODY as u64).read_to_end(&mut body) {
        Ok(_) => Outcome::Answer { status, body, retry_after },
        Err(err) => Outcome::BodyLost {
            status,
            message: format!("the connection broke while reading the answer: {err}"),
        },
    }
}

/// The one place that turns a status and body into a result.
pub(super) fn interpret(
    request: &str,
    status: StatusCode,
    text: &str,
) -> Result<Value, AutotaskError> {
    let parsed: Result<Value, _> = serde_json::from_str(text);
    if status.is_success() {
        return success(request, status, text, parsed);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(AutotaskError::Unauthorized { request: request.to_string() });
    }
    Err(api_error(request, status, failure_messages(status, text, &parsed)))
}

/// A 2xx answer: a JSON object, unless it carries `errors` (Autotask answers some refusals
/// with 200).
fn success(
    request: &str,
    status: StatusCode,
    text: &str,
    parsed: serde_json::Result<Value>,
) -> Result<Value, AutotaskError> {
    let bad =
        |message: String| AutotaskError::BadResponse { request: request.to_string(), message };
    let value = parsed.map_err(|err| bad(not_json(text, &err)))?;
    if !value.is_object() {
        return Err(bad(format!("expected a JSON object, found {}", kind(&value))));
    }
    let messages = error_messages(&value);
    if !messages.is_empty() {
        return Err(api_error(request, status, messages));
    }
    Ok(value)
}

/// What a failed answer says: its `errors`, or what the body is when it has none; a redirect
/// says it was not followed.
fn failure_messages(
    status: StatusCode,
    text: &str,
    parsed: &serde_json::Result<Value>,
) -> Vec<String> {
    let mut messages = match parsed {
        Ok(value) => error_messages(value),
        Err(_) => Vec::new(),
    };
    if messages.is_empty() {
        messages.push(match parsed {
            Ok(_) if text.trim().is_empty() => "(no message)".to_string(),
            Ok(_) => format!("(no `errors` in the answer: {})", excerpt(text)),
            Err(err) => not_json(text, err),
        });
    }
    if status.is_redirection() {
        messages.push("Autotask redirected; redirects are not followed (check base_url)".into());
    }
    messages
}

/// Autotask refused the request: its messages, and the kind of refusal they show.
fn api_error(request: &str, status: StatusCode, messages: Vec<String>) -> AutotaskError {
    AutotaskError::Api {
        request: request.to_string(),
        status: status.as_u16(),
        kind: Rejection::classify(&messages),
        messages,
    }
}

/// A refusal that says nothing was processed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Too many requests in flight on the endpoint: wait a little and send it again.
    ThreadThreshold,
    /// The tenant's hourly threshold is used up: every request is refused for a while.
    HourlyLockout,
}

/// Tells a thread-threshold refusal from an hourly lockout, on any failure status: the text
/// "thread threshold" or Autotask's code `Itgenatr005` anywhere in the body (JSON `errors`, a
/// code field, or a plain-text body: live tenants send all three), the hourly threshold's
/// wording, or else a bare 429, which Autotask documents for the thread threshold.
pub(super) fn refusal(status: StatusCode, text: &str) -> Option<Refusal> {
    if status.is_success() {
        return None;
    }
    let lowered = text.to_ascii_lowercase();
    if lowered.contains("thread threshold") || lowered.contains(THREAD_THRESHOLD_CODE) {
        Some(Refusal::ThreadThreshold)
    } else if is_lockout_text(&lowered) {
        Some(Refusal::HourlyLockout)
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        Some(Refusal::ThreadThreshold)
    } else {
        None
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub(super) fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// An object's member by name, whatever its case (Autotask's casing varies between answers).
pub(super) fn member<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    value.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// Autotask's `errors` (strings, or objects with a `message`), plus a lone `message`.
pub(super) fn error_messages(value: &Value) -> Vec<String> {
    let mut messages = Vec::new();
    let field = |name: &str| member(value, name);
    if let Some(Value::Array(errors)) = field("errors") {
        for error in errors {
            match error {
                Value::String(s) => messages.push(s.clone()),
                Value::Object(map) => {
                    let text = map
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("message"))
                        .and_then(|(_, v)| v.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| error.to_string());
                    messages.push(text);
                }
                Value::Null => {}
                other => messages.push(other.to_string()),
            }
        }
    }
    if messages.is_empty() {
        if let Some(Value::String(message)) = field("message") {
            messages.push(message.clone());
        }
    }
    messages
}

pub(super) fn not_json(text: &str, err: &serde_json::Error) -> String {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        "the answer was empty, not JSON".into()
    } else if trimmed.starts_with('<') {
        format!("the answer is an HTML page, not JSON: {}", excerpt(text))
    } else if err.is_eof() {
        format!("the JSON answer is cut off ({err})")
    } else {
        format!("the answer is not valid JSON ({err}): {}", excerpt(text))
    }
}

/// The start of a server's text, on one line, for an error message.
pub(super) fn excerpt(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let one_line = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 120 {
        format!("{}…", one_line.chars().take(120).collect::<String>())
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_by_code_text_and_status() {
        let cases = [
            (
                500,
                r#"{"errors":["API thread threshold of 3 threads has been exceeded"]}"#,
                Some(Refusal::ThreadThreshold),
            ),
            (500, r#"{"errors":[{"code":"Itgenatr005"}]}"#, Some(Refusal::ThreadThreshold)),
            (503, r#"{"errorCode":"ITGENATR005"}"#, Some(Refusal::ThreadThreshold)),
            (
                500,
                "API thread threshold of 3 threads has been exceeded",
                Some(Refusal::ThreadThreshold),
            ),
            (429, "", Some(Refusal::ThreadThreshold)),
            (
                429,
                r#"{"errors":["The request threshold of 10000 requests per 60 minutes has been exceeded; try again later."]}"#,
                Some(Refusal::HourlyLockout),
            ),
            (503, "Hourly request threshold exceeded", Some(Refusal::HourlyLockout)),
            (500, r#"{"errors":["contractName is required."]}"#, None),
            (200, "thread threshold", None),
        ];
        for (status, text, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(refusal(status, text), expected, "{status} {text}");
        }
        assert_eq!(retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn status_mapping_quotes_autotask_and_names_the_request() {
        let err = interpret(
            "POST Contracts",
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"errors":["String value exceeds maximum length"],"errorId":7}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "POST Contracts: Autotask answered HTTP 500: String value exceeds maximum length"
        );
        let err = interpret("POST Contracts/query", StatusCode::UNAUTHORIZED, "").unwrap_err();
        assert!(err.to_string().contains("CMAT_AUTOTASK_SECRET"), "{err}");
        let err =
            interpret("POST Contracts/query", StatusCode::OK, r#"{"items":[],"errors":["bad"]}"#)
                .unwrap_err();
        assert!(matches!(err, AutotaskError::Api { status: 200, .. }));
        let err = interpret(
            "POST Contracts/query",
            StatusCode::OK,
            "<html><body>Service Unavailable</body></html>",
        )
        .unwrap_err();
        assert!(err.to_string().contains("HTML page"), "{err}");
        let err = interpret("GET X", StatusCode::OK, r#"{"items":[{"id":1"#).unwrap_err();
        assert!(err.to_string().contains("cut off"), "{err}");
        let err = interpret("GET X", StatusCode::OK, "[1]").unwrap_err();
        assert!(err.to_string().contains("JSON object"), "{err}");
        let err = interpret("GET X", StatusCode::NOT_FOUND, "<h1>nope</h1>").unwrap_err();
        assert!(matches!(err, AutotaskError::Api { status: 404, .. }));
    }
}
