//! HTTP to Cloudmore: the OAuth token, requests with their `-v` line, the report task and its
//! polling. The waits between polls go through the Autotask client's [`Clock`], so tests check
//! the waits without sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lines::Organization;
use super::{CloudmoreError, Period};
use crate::autotask::client::{Clock, SystemClock};
use crate::workspace::{check_url, CloudmoreConfig, CloudmoreCredentials, Secret};

/// Cloudmore's OAuth client for resource-owner (password) grants.
const OAUTH_CLIENT_ID: &str = "ro.customer.client";
/// A token is renewed this long before Cloudmore says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// How much of an error body an error message quotes.
const MAX_BODY_IN_ERROR: usize = 300;
/// The report endpoint, under `/api/resellers/{resellerId}/`.
pub(super) const REPORT_PATH: &str = "billing/reports/MonthlyBillingPerOrganizationAsync";
/// The wait for the report task when cmat.toml does not set `report_wait_seconds`.
pub const DEFAULT_REPORT_WAIT: Duration = Duration::from_secs(900);

/// Timing knobs; tests shorten them and record the waits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// First wait between task polls; doubles up to `max_poll_interval`.
    pub poll_interval: Duration,
    pub max_poll_interval: Duration,
    /// How long a report task may run before the pull gives up (`report_wait_seconds`).
    pub task_timeout: Duration,
    pub request_timeout: Duration,
    /// Where the waits between polls go.
    pub clock: Arc<dyn Clock>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            poll_interval: Duration::from_millis(500),
            max_poll_interval: Duration::from_secs(10),
            task_timeout: DEFAULT_REPORT_WAIT,
            request_timeout: Duration::from_secs(120),
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportRequest {
    start_date: String,
    end_date: String,
}

/// An answer with a 2xx status: its status, `Location` header and body.
pub(super) struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

struct Token {
    value: Secret,
    renew_at: Instant,
}

pub struct CloudmoreClient {
    http: reqwest::blocking::Client,
    /// Without a trailing slash.
    base_url: String,
    reseller_id: String,
    credentials: CloudmoreCredentials,
    pub(super) options: ClientOptions,
    token: Option<Token>,
    pub(super) requests: u32,
}

impl std::fmt::Debug for CloudmoreClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudmoreClient")
            .field("base_url", &self.base_url)
            .field("reseller_id", &self.reseller_id)
            .finish_non_exhaustive()
    }
}

fn transport(request: &str) -> impl FnOnce(reqwest::Error) -> CloudmoreError + '_ {
    move |source| CloudmoreError::Transport {
        request: request.to_string(),
        source: source.without_url(),
    }
}

impl CloudmoreClient {
    pub fn new(
        config: &CloudmoreConfig,
        credentials: CloudmoreCredentials,
        mut options: ClientOptions,
    ) -> Result<Self, CloudmoreError> {
        let base_url =
            config.base_url.as_deref().ok_or(CloudmoreError::MissingSetting("base_url"))?;
        check_url(base_url).map_err(CloudmoreError::BadUrl)?;
        let reseller_id = config
            .reseller_id
            .clone()
            .filter(|r| !r.trim().is_empty())
            .ok_or(CloudmoreError::MissingSetting("reseller_id"))?;
        if let Some(seconds) = config.report_wait_seconds {
            options.task_timeout = Duration::from_secs(seconds);
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(options.request_timeout)
            .user_agent(concat!("cmat/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the bearer token elsewhere: Cloudmore's API does not use them.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| CloudmoreError::Transport {
                request: "building the HTTP client".into(),
                source,
            })?;
        Ok(CloudmoreClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            reseller_id,
            credentials,
            options,
            token: None,
            requests: 0,
        })
    }

    /// The secrets this client holds, for scrubbing anything kept on disk.
    pub(super) fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![
            self.credentials.password.expose().to_string(),
            self.credentials.client_secret.expose().to_string(),
        ];
        if let Some(token) = &self.token {
            secrets.push(token.value.expose().to_string());
        }
        secrets.retain(|s| !s.is_empty());
        secrets
    }

    /// A valid access token, asking for one only when there is none or it is about to expire.
    fn token(&mut self) -> Result<Secret, CloudmoreError> {
        if let Some(token) = &self.token {
            if Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        let request = "POST /connect/token".to_string();
        let url = format!("{}/connect/token", self.base_url);
        let started = Instant::now();
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .basic_auth(OAUTH_CLIENT_ID, Some(self.credentials.client_secret.expose()))
            .form(&[
                ("grant_type", "password"),
                ("username", self.credentials.username.as_str()),
                ("password", self.credentials.password.expose()),
                ("scope", "api"),
            ])
            .send()
            .map_err(transport(&request))?;
        crate::logging::answered(&reqwest::Method::POST, &url, response.status(), started);
        let answer: TokenAnswer = decode(&request, response)?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(300));
        let value = Secret::new(answer.access_token);
        self.token = Some(Token {
            value: value.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        });
        Ok(value)
    }

    pub(super) fn reseller_path(&self, rest: &str) -> String {
        format!("/api/resellers/{}/{rest}", self.reseller_id)
    }

    /// A request with the bearer token; a 401 (token expired or revoked) gets one fresh token
    /// and one retry. Only idempotent reads and the report request (which only starts a task)
    /// come through here. Any status but 2xx is an error naming the request.
    fn exchange(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<&ReportRequest>,
    ) -> Result<Answer, CloudmoreError> {
        let url = format!("{}{path}", self.base_url);
        let request = format!("{method} {path}");
        let mut token_renewed = false;
        loop {
            let token = self.token()?;
            let mut builder = self
                .http
                .request(method.clone(), &url)
                .header(reqwest::header::ACCEPT, "application/json")
                .bearer_auth(token.expose());
            if let Some(body) = body {
                // Sets Content-Type: application/json.
                builder = builder.json(body);
            }
            let started = Instant::now();
            self.requests += 1;
            let response = builder.send().map_err(transport(&request))?;
            crate::logging::answered(&method, &url, response.status(), started);
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && !token_renewed {
                token_renewed = true;
                self.token = None;
                continue;
            }
            let status = response.status();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response.text().map_err(transport(&request))?;
            if !status.is_success() {
                return Err(CloudmoreError::Status {
                    request,
                    status: status.as_u16(),
                    body: shorten(body.trim()),
                });
            }
            return Ok(Answer { status: status.as_u16(), location, body });
        }
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
    ) -> Result<T, CloudmoreError> {
        let answer = self.exchange(reqwest::Method::GET, path, None)?;
        serde_json::from_str(&answer.body).map_err(|err| CloudmoreError::Answer {
            request: format!("GET {path}"),
            message: err.to_string(),
        })
    }

    pub fn organizations(&mut self) -> Result<Vec<Organization>, CloudmoreError> {
        let path = self.reseller_path("organizations");
        self.get_json(&path)
    }

    pub fn organization(&mut self, id: &str) -> Result<Organization, CloudmoreError> {
        let path = self.reseller_path(&format!("organizations/{id}"));
        self.get_json(&path)
    }

    /// Starts the reseller-wide report for `period`; returns the task id.
    pub fn start_report(&mut self, period: Period) -> Result<String, CloudmoreError> {
        let path = self.reseller_path(REPORT_PATH);
        let body = ReportRequest {
            start_date: period.start.format("%Y-%m-%d").to_string(),
            end_date: period.end.format("%Y-%m-%d").to_string(),
        };
        let answer = self.exchange(reqwest::Method::POST, &path, Some(&body))?;
        task_id(&answer).ok_or_else(|| CloudmoreError::Answer {
            request: format!("POST {path}"),
            message: format!(
                "{} without a task id (neither a Location header ending in …/{REPORT_PATH}/{{taskId}} \
                 nor a taskId in the body)",
                answer.status
            ),
        })
    }

    /// Polls the task with back-off until it is `Successful` (its answer, as text), `Failed`,
    /// or `report_wait_seconds` have passed.
    pub fn poll(&mut self, task: &str) -> Result<String, CloudmoreError> {
        let path = self.reseller_path(&format!("{REPORT_PATH}/{task}"));
        let request = format!("GET {path}");
        let limit = self.options.task_timeout;
        let started = Instant::now();
        let mut waited = Duration::ZERO;
        let mut wait = self.options.poll_interval;
        loop {
            let answer = self.exchange(reqwest::Method::GET, &path, None)?;
            match task_state(&answer)
                .map_err(|message| CloudmoreError::Answer { request: request.clone(), message })?
            {
                TaskState::Processing => {}
                TaskState::Failed(message) => {
                    return Err(CloudmoreError::TaskFailed {
                        request: format!("POST {} (task {task})", self.reseller_path(REPORT_PATH)),
                        message,
                    })
                }
                TaskState::Successful => return Ok(answer.body),
            }
            // The clock's waits, and the real time the requests took, both count.
            if (waited + wait).max(started.elapsed() + wait) > limit {
                return Err(CloudmoreError::TaskTimeout { request, seconds: limit.as_secs() });
            }
            self.options.clock.sleep(wait);
            waited += wait;
            wait = (wait * 2).min(self.options.max_poll_interval);
        }
    }
}

/// The task id a report request answered: the last segment of a `Location` that names the
/// report endpoint, else the body's `taskId` / `id`, or the body itself when it is a JSON string.
pub(super) fn task_id(answer: &Answer) -> Option<String> {
    if let Some(location) = &answer.location {
        let path = location.split(['?', '#']).next().unwrap_or("");
        let lower = path.to_ascii_lowercase();
        let marker = format!("{}/", REPORT_PATH.to_ascii_lowercase());
        if let Some(at) = lower.rfind(&marker) {
            let id = path[at + marker.len()..].trim_matches('/');
            if !id.is_empty() && !id.contains('/') {
                return Some(id.to_string());
            }
        }
    }
    match serde_json::from_str::<Value>(answer.body.trim()).ok()? {
        Value::String(id) if !id.trim().is_empty() => Some(id.trim().to_string()),
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("taskId") || k.eq_ignore_ascii_case("id"))
            .and_then(|(_, v)| match v {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
        _ => None,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum TaskState {
    Processing,
    /// With Cloudmore's message, when it says more than the state.
    Failed(String),
    /// The answer holds the report (or is it).
    Successful,
}

/// Cloudmore's documented task states, any case.
fn documented_state(word: &str) -> Option<TaskState> {
    match word.trim().to_ascii_lowercase().as_str() {
        "processing" => Some(TaskState::Processing),
        "successful" => Some(TaskState::Successful),
        "failed" => Some(TaskState::Failed(String::new())),
        _ => None,
    }
}

/// What a poll answered. The state is in `status` and/or `message` (Cloudmore's words:
/// `Processing`, `Successful`, `Failed`, any case); an answer naming no state is the report
/// itself when it came with 200, and still running when it came with 202 or empty. A `status`
/// cmat does not know is an error quoting it (`Err` holds the message).
pub(super) fn task_state(answer: &Answer) -> Result<TaskState, String> {
    let body = answer.body.trim();
    if body.is_empty() {
        return Ok(TaskState::Processing);
    }
    if !body.starts_with('{') {
        // A bare list is the report; anything else is for the report reader to name.
        return Ok(TaskState::Successful);
    }
    // Only the top level's fields: the report under them is read later, once.
    let object: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_str(body).map_err(|err| format!("the answer is not JSON: {err}"))?;
    let field = |name: &str| {
        object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.get().trim())
    };
    let text = |raw: Option<&str>| raw.and_then(|r| serde_json::from_str::<String>(r).ok());
    let (status, message) = (field("status"), text(field("message")));
    let state = text(status)
        .as_deref()
        .and_then(documented_state)
        .or_else(|| message.as_deref().and_then(documented_state));
    match state {
        Some(TaskState::Failed(_)) => {
            let said = message.filter(|m| documented_state(m).is_none()).unwrap_or_default();
            Ok(TaskState::Failed(match (text(status), said.is_empty()) {
                (Some(word), false) => format!("status {word:?}: {said}"),
                (Some(word), true) => format!("status {word:?}"),
                (None, _) => format!("message {:?}", text(field("message")).unwrap_or_default()),
            }))
        }
        Some(state) => Ok(state),
        None => match status {
            Some(raw) if raw != "null" => Err(format!(
                "the task's status {raw} is not a state Cloudmore documents \
                 (Processing, Successful, Failed)"
            )),
            _ if answer.status == 202 => Ok(TaskState::Processing),
            _ => Ok(TaskState::Successful),
        },
    }
}

pub(super) fn shorten(body: &str) -> String {
    let mut body = body.to_string();
    if body.len() > MAX_BODY_IN_ERROR {
        let cut = (0..=MAX_BODY_IN_ERROR).rev().find(|i| body.is_char_boundary(*i)).unwrap_or(0);
        body.truncate(cut);
        body.push('…');
    }
    body
}

/// Maps an answer to a value or to the error its status means, in one place.
fn decode<T: serde::de::DeserializeOwned>(
    request: &str,
    response: reqwest::blocking::Response,
) -> Result<T, CloudmoreError> {
    let status = response.status();
    let body = response.text().map_err(transport(request))?;
    if !status.is_success() {
        return Err(CloudmoreError::Status {
            request: request.to_string(),
            status: status.as_u16(),
            body: shorten(body.trim()),
        });
    }
    serde_json::from_str(&body).map_err(|err| CloudmoreError::Answer {
        request: request.to_string(),
        message: err.to_string(),
    })
}
