//! Turning what came back into a result: the one place a status and body become a value or an
//! [`AutotaskError`] (with the [`Rejection`] kind read from Autotask's text).

use std::time::Duration;

use crate::json_kind::kind;
use reqwest::blocking::Response;
use reqwest::StatusCode;
use serde_json::Value;

use super::super::error::{AutotaskError, Rejection};
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
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
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
        let value = parsed.map_err(|err| AutotaskError::BadResponse {
            request: request.to_string(),
            message: not_json(text, &err),
        })?;
        if !value.is_object() {
            return Err(AutotaskError::BadResponse {
                request: request.to_string(),
                message: format!("expected a JSON object, found {}", kind(&value)),
            });
        }
        let messages = error_messages(&value);
        if !messages.is_empty() {
            return Err(AutotaskError::Api {
                request: request.to_string(),
                status: status.as_u16(),
                kind: Rejection::classify(&messages),
                messages,
            });
        }
        return Ok(value);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(AutotaskError::Unauthorized { request: request.to_string() });
    }
    let mut messages = match &parsed {
        Ok(value) => error_messages(value),
        Err(_) => Vec::new(),
    };
    if messages.is_empty() {
        messages.push(match &parsed {
            Ok(_) if text.trim().is_empty() => "(no message)".to_string(),
            Ok(_) => format!("(no `errors` in the answer: {})", excerpt(text)),
            Err(err) => not_json(text, err),
        });
    }
    if status.is_redirection() {
        messages.push("Autotask redirected; redirects are not followed (check base_url)".into());
    }
    Err(AutotaskError::Api {
        request: request.to_string(),
        status: status.as_u16(),
        kind: Rejection::classify(&messages),
        messages,
    })
}

/// A refusal for the thread threshold that is not a 429: any failure status whose `errors`
/// name the thread threshold (live tenants send it as a 500, too).
pub(super) fn is_thread_threshold(status: StatusCode, text: &str) -> bool {
    if status.is_success() || !text.to_ascii_lowercase().contains("thread threshold") {
        return false;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => Rejection::classify(&error_messages(&value)) == Rejection::ThreadThreshold,
        Err(_) => false,
    }
}

/// Autotask's `errors` (strings, or objects with a `message`), plus a lone `message`.
pub(super) fn error_messages(value: &Value) -> Vec<String> {
    let mut messages = Vec::new();
    let field = |name: &str| {
        value
            .as_object()
            .and_then(|map| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
    };
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
