//! The Cloudmore API client: the only module that speaks HTTP to Cloudmore.
//!
//! - OAuth2 password grant at `POST {base}/connect/token` (client `ro.customer.client` with the
//!   client secret as Basic auth); the token lives in memory only and is reused until a minute
//!   before it expires. Tokens, the password and the client secret never reach a log, an error
//!   message or the disk.
//! - Billing comes from ONE asynchronous report for the whole reseller and date range, as
//!   Cloudmore's billing-integration guide recommends:
//!   `POST /api/resellers/{resellerId}/billing/reports/MonthlyBillingPerOrganizationAsync` starts
//!   a task (its id in the `Location` header, or in the body), and
//!   `GET …/MonthlyBillingPerOrganizationAsync/{taskId}` is polled with back-off until it answers
//!   the report, up to a deadline. A failed task is an error naming the request.
//! - Organizations come from `GET …/organizations`; their custom properties (the
//!   AutotaskCompanyID link) from the list, or from `GET …/organizations/{id}` for an
//!   organization on the report whose list entry has none. A malformed link is a warning for that
//!   organization (its lines import unlinked), never a failed pull.
//! - Amounts are accepted as JSON numbers or strings and read from their text (serde_json's
//!   `RawValue`), never through a float. Every field of an unexpected shape is reported with the
//!   request it came from.
//! - Every answer line becomes a [`BillLine`] in one place ([`bill_line`]), and the lines go into
//!   the store through the same [`Import`](crate::store::Import) as a CSV export.
//!
//! Where Cloudmore's public documentation is silent (the request body of the report, the shape of
//! a task's state and of the report), cmat sends `{"startDate","endDate"}` (ISO dates, inclusive)
//! and accepts the shapes [`report_lines`] and `task_state` list.

use std::time::{Duration, Instant};

use std::collections::HashMap;

use crate::json_kind::kind;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::import::parse_exact_decimal;
use crate::store::{ImportSummary, Store, StoreError};
use crate::workspace::{check_url, CloudmoreConfig, CloudmoreCredentials, Secret};
use cmat_engine::billing::{BillLine, LineSource};

/// Cloudmore's OAuth client for resource-owner (password) grants.
const OAUTH_CLIENT_ID: &str = "ro.customer.client";
/// The name of the organization custom property that links it to an Autotask company.
const COMPANY_PROPERTY: &str = "AutotaskCompanyID";
/// A token is renewed this long before Cloudmore says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// How much of an error body an error message quotes.
const MAX_BODY_IN_ERROR: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum CloudmoreError {
    #[error("cmat.toml: [cloudmore] {0} is not set")]
    MissingSetting(&'static str),
    #[error("[cloudmore] base_url: {0}")]
    BadUrl(String),
    #[error("{request}: cannot reach Cloudmore")]
    Transport { request: String, source: reqwest::Error },
    #[error("{request}: Cloudmore answered {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status { request: String, status: u16, body: String },
    #[error("{request}: unexpected answer: {message}")]
    Answer { request: String, message: String },
    #[error("{request}: the billing report task failed{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    TaskFailed { request: String, message: String },
    #[error("{request}: the billing report task did not complete within {seconds} s")]
    TaskTimeout { request: String, seconds: u64 },
    #[error("{source_name}: {message}")]
    BadLines { source_name: String, message: String },
    #[error("cannot store the Cloudmore billing")]
    Store(#[from] StoreError),
}

/// Timing knobs; tests shorten them.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// First wait between task polls; doubles up to `max_poll_interval`.
    pub poll_interval: Duration,
    pub max_poll_interval: Duration,
    /// How long a report task may run before the pull gives up.
    pub task_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            poll_interval: Duration::from_millis(500),
            max_poll_interval: Duration::from_secs(10),
            task_timeout: Duration::from_secs(900),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// The report endpoint, under `/api/resellers/{resellerId}/`.
const REPORT_PATH: &str = "billing/reports/MonthlyBillingPerOrganizationAsync";

/// A billing period to request, by Billing Date, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start.format("%Y-%m-%d"), self.end.format("%Y-%m-%d"))
    }
}

/// An organization as `GET …/organizations` (or its detail) returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    #[serde(deserialize_with = "text_or_number")]
    pub id: String,
    pub name: String,
    #[serde(default, deserialize_with = "optional_text_or_number")]
    pub customer_number: Option<String>,
    /// Absent when the list does not carry them: then the detail is asked.
    #[serde(default)]
    pub custom_properties: Option<Value>,
}

fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected text, found {}", kind(&other)))),
    }
}

fn optional_text_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!("expected text, found {}", kind(&other)))),
    }
}

/// The AutotaskCompanyID property of an organization: `Ok(None)` when it has none (or it is
/// empty), `Err` (a warning's text) when its value or the properties' shape is unusable.
pub fn company_link(organization: &Organization) -> Result<Option<i64>, String> {
    let Some(properties) = &organization.custom_properties else {
        return Ok(None);
    };
    let value = match properties {
        Value::Null => None,
        // [{"name": "AutotaskCompanyID", "value": "…"}]
        Value::Array(items) => {
            let mut found = None;
            for item in items {
                let name = item.get("name").and_then(Value::as_str);
                let Some(name) = name else {
                    return Err("customProperties: an entry without a \"name\"".into());
                };
                if name.trim().eq_ignore_ascii_case(COMPANY_PROPERTY) {
                    found = item.get("value").cloned();
                }
            }
            found
        }
        // {"AutotaskCompanyID": "…"}
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(COMPANY_PROPERTY))
            .map(|(_, v)| v.clone()),
        other => {
            return Err(format!(
                "customProperties is {}, expected a list of {{name, value}}",
                kind(other)
            ))
        }
    };
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("{COMPANY_PROPERTY} is {}", kind(&other))),
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<i64>() {
        Ok(id) if id >= 0 => Ok(Some(id)),
        _ => Err(format!("{COMPANY_PROPERTY} {text:?} is not an Autotask company id")),
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
struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

struct Token {
    value: Secret,
    renew_at: Instant,
}

/// One line of the report, its fields by lower-cased name, each kept as the JSON text it came as.
type RawLine = HashMap<String, Box<RawValue>>;

/// What a pull did: the import, and what it could not link.
#[derive(Debug, Default)]
pub struct PullOutcome {
    pub summary: ImportSummary,
    /// One line per organization whose link is unusable (its lines imported unlinked).
    pub warnings: Vec<String>,
    /// The requests a pull sent besides the token: for `-v` and the tests.
    pub requests: u32,
}

pub struct CloudmoreClient {
    http: reqwest::blocking::Client,
    /// Without a trailing slash.
    base_url: String,
    reseller_id: String,
    credentials: CloudmoreCredentials,
    options: ClientOptions,
    token: Option<Token>,
    requests: u32,
}

impl std::fmt::Debug for CloudmoreClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudmoreClient")
            .field("base_url", &self.base_url)
            .field("reseller_id", &self.reseller_id)
            .finish_non_exhaustive()
    }
}

impl CloudmoreClient {
    pub fn new(
        config: &CloudmoreConfig,
        credentials: CloudmoreCredentials,
        options: ClientOptions,
    ) -> Result<Self, CloudmoreError> {
        let base_url =
            config.base_url.as_deref().ok_or(CloudmoreError::MissingSetting("base_url"))?;
        check_url(base_url).map_err(CloudmoreError::BadUrl)?;
        let reseller_id = config
            .reseller_id
            .clone()
            .filter(|r| !r.trim().is_empty())
            .ok_or(CloudmoreError::MissingSetting("reseller_id"))?;
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

    /// A valid access token, asking for one only when there is none or it is about to expire.
    fn token(&mut self) -> Result<Secret, CloudmoreError> {
        if let Some(token) = &self.token {
            if Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        let request = "POST /connect/token".to_string();
        let response = self
            .http
            .post(format!("{}/connect/token", self.base_url))
            .basic_auth(OAUTH_CLIENT_ID, Some(self.credentials.client_secret.expose()))
            .form(&[
                ("grant_type", "password"),
                ("username", self.credentials.username.as_str()),
                ("password", self.credentials.password.expose()),
                ("scope", "api"),
            ])
            .send()
            .map_err(|source| CloudmoreError::Transport {
                request: request.clone(),
                source: source.without_url(),
            })?;
        let answer: TokenAnswer = decode(&request, response)?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(300));
        let value = Secret::new(answer.access_token);
        self.token = Some(Token {
            value: value.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        });
        Ok(value)
    }

    fn reseller_path(&self, rest: &str) -> String {
        format!("/api/resellers/{}/{rest}", self.reseller_id)
    }

    /// A request with the bearer token; a 401 (token revoked early) gets one fresh token and
    /// one retry. Only idempotent reads and the report request (which only starts a task) come
    /// through here. Any status but 2xx is an error naming the request.
    fn exchange(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<&ReportRequest>,
    ) -> Result<Answer, CloudmoreError> {
        let url = format!("{}{path}", self.base_url);
        let request = format!("{method} {path}");
        // A 401 may be an expired token: fetched again once, then the answer stands.
        let mut token_renewed = false;
        loop {
            let token = self.token()?;
            let mut builder = self.http.request(method.clone(), &url).bearer_auth(token.expose());
            if let Some(body) = body {
                builder = builder.json(body);
            }
            let started = Instant::now();
            self.requests += 1;
            let response = builder.send().map_err(|source| CloudmoreError::Transport {
                request: request.clone(),
                source: source.without_url(),
            })?;
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
            let body = response.text().map_err(|source| CloudmoreError::Transport {
                request: request.clone(),
                source: source.without_url(),
            })?;
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

    /// Polls the task with back-off until it answers the report (its lines), fails, or the
    /// deadline passes.
    pub fn poll(&mut self, task: &str) -> Result<Vec<RawLine>, CloudmoreError> {
        let path = self.reseller_path(&format!("{REPORT_PATH}/{task}"));
        let request = format!("GET {path}");
        let deadline = Instant::now() + self.options.task_timeout;
        let mut wait = self.options.poll_interval;
        loop {
            let answer = self.exchange(reqwest::Method::GET, &path, None)?;
            match task_state(&request, &answer)? {
                TaskState::Pending => {}
                TaskState::Failed(message) => {
                    return Err(CloudmoreError::TaskFailed {
                        request: format!("POST {} (task {task})", self.reseller_path(REPORT_PATH)),
                        message,
                    })
                }
                TaskState::Done(lines) => return Ok(lines),
            }
            if Instant::now() + wait > deadline {
                return Err(CloudmoreError::TaskTimeout {
                    request,
                    seconds: self.options.task_timeout.as_secs(),
                });
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(self.options.max_poll_interval);
        }
    }

    /// Pulls the reseller's report for `period` into the store, as one import (all or nothing).
    /// `source_name` names it in the store and in messages.
    pub fn pull_into(
        &mut self,
        store: &mut Store,
        period: Period,
        source_name: &str,
    ) -> Result<PullOutcome, CloudmoreError> {
        // The task runs at Cloudmore while the organizations are read.
        let task = self.start_report(period)?;
        let mut organizations = self.organizations()?;
        let lines = self.poll(&task)?;
        let report_request =
            format!("GET {}", self.reseller_path(&format!("{REPORT_PATH}/{task}")));

        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut by_number: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, organization) in organizations.iter().enumerate() {
            by_id.insert(organization.id.to_ascii_lowercase(), index);
            if let Some(number) = organization.customer_number.as_deref().map(str::trim) {
                if !number.is_empty() {
                    by_number.entry(number.to_string()).or_default().push(index);
                }
            }
            by_name.entry(organization.name.trim().to_string()).or_default().push(index);
        }
        let unique = |found: Option<&Vec<usize>>| match found.map(Vec::as_slice) {
            Some([one]) => Some(*one),
            _ => None,
        };
        let file = format!("cloudmore:{period}");
        let mut problems = Vec::new();
        let mut parsed = Vec::with_capacity(lines.len());
        for (index, raw) in lines.iter().enumerate() {
            let source = LineSource { file: file.clone(), row: index as u64 + 1 };
            match bill_line(raw, source.clone()) {
                Ok(line) => {
                    let organization = field_text(raw, "organizationId")
                        .ok()
                        .flatten()
                        .and_then(|id| by_id.get(&id.to_ascii_lowercase()).copied())
                        .or_else(|| unique(by_number.get(line.customer_number.as_str())))
                        .or_else(|| unique(by_name.get(line.organization_name.as_str())));
                    parsed.push((line, organization));
                }
                Err(reason) => problems.push(format!("{source}: {reason}")),
            }
        }
        if !problems.is_empty() {
            let count = problems.len();
            problems.truncate(crate::import::MAX_LISTED_ROWS);
            return Err(CloudmoreError::BadLines {
                source_name: source_name.to_string(),
                message: format!(
                    "{count} malformed {} in {report_request}, nothing imported\n{}",
                    if count == 1 { "line" } else { "lines" },
                    problems.join("\n")
                ),
            });
        }

        // Custom properties from the detail, only for organizations on the report whose list
        // entry lacks them: one request each, at most once.
        let mut wanted: Vec<usize> = parsed.iter().filter_map(|(_, o)| *o).collect();
        wanted.sort_unstable();
        wanted.dedup();
        for index in wanted {
            if organizations[index].custom_properties.is_none() {
                let detail = self.organization(&organizations[index].id.clone())?;
                organizations[index].custom_properties =
                    Some(detail.custom_properties.unwrap_or(Value::Null));
            }
        }
        let mut warnings = Vec::new();
        let mut links: HashMap<usize, Option<i64>> = HashMap::new();
        let mut import = store.begin_import(source_name)?;
        for (mut line, organization) in parsed {
            if let Some(index) = organization {
                let link = *links.entry(index).or_insert_with(|| {
                    let organization = &organizations[index];
                    company_link(organization).unwrap_or_else(|why| {
                        warnings.push(format!(
                            "organization {:?} (id {}): {why}; its lines are imported without a company link",
                            organization.name, organization.id
                        ));
                        None
                    })
                });
                line.autotask_company_id = link;
            }
            import.add_line(&line)?;
        }
        let summary = import.finish()?;
        Ok(PullOutcome { summary, warnings, requests: self.requests })
    }
}

/// The task id a report request answered: the last segment of a `Location` that names the
/// report endpoint, else the body's `taskId` / `id`, or the body itself when it is a JSON string.
fn task_id(answer: &Answer) -> Option<String> {
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

enum TaskState {
    Pending,
    Failed(String),
    Done(Vec<RawLine>),
}

/// Task states Cloudmore's (.NET) task API may name, lower-cased; the documentation lists none.
const PENDING_STATES: &[&str] = &[
    "running",
    "pending",
    "inprogress",
    "in progress",
    "queued",
    "notstarted",
    "created",
    "waitingforactivation",
    "waitingtorun",
    "processing",
];
const FAILED_STATES: &[&str] = &["failed", "faulted", "error", "canceled", "cancelled"];
const DONE_STATES: &[&str] = &["completed", "succeeded", "success", "done", "rantocompletion"];

/// What a poll answered: 202 (or a pending status) is still running; a failed status is a
/// failure; otherwise the body is the report.
fn task_state(request: &str, answer: &Answer) -> Result<TaskState, CloudmoreError> {
    let body = answer.body.trim();
    if answer.status == 202 || body.is_empty() {
        return Ok(TaskState::Pending);
    }
    let unexpected =
        |message: String| CloudmoreError::Answer { request: request.to_string(), message };
    if body.starts_with('{') {
        let object: HashMap<String, Box<RawValue>> = serde_json::from_str(body)
            .map_err(|err| unexpected(format!("the report is not JSON: {err}")))?;
        let object = lower_keys(object);
        if let Some(status) = object.get("status") {
            let status: String = serde_json::from_str::<Value>(status.get())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .ok_or_else(|| unexpected(format!("field \"status\" is {}", status.get())))?;
            let normalized = status.trim().to_ascii_lowercase();
            let message = object
                .get("message")
                .or_else(|| object.get("error"))
                .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
                .unwrap_or_default();
            if PENDING_STATES.contains(&normalized.as_str()) {
                return Ok(TaskState::Pending);
            }
            if FAILED_STATES.contains(&normalized.as_str()) {
                return Ok(TaskState::Failed(if message.is_empty() {
                    format!("status {status:?}")
                } else {
                    format!("status {status:?}: {message}")
                }));
            }
            if !DONE_STATES.contains(&normalized.as_str()) {
                return Err(unexpected(format!(
                    "field \"status\" {status:?} is not a task state cmat knows"
                )));
            }
        }
        return report_lines(request, body).map(TaskState::Done);
    }
    report_lines(request, body).map(TaskState::Done)
}

/// The fields that may hold a report's lines, or an organization's lines within it.
const LINE_LISTS: &[&str] = &["lines", "billinglines", "items", "data", "result", "report"];

/// The report's lines. Accepted shapes (the documentation shows none): a list of lines; an
/// object holding that list under `lines`, `billingLines`, `items`, `data`, `result` or
/// `report`; and a list of organizations each holding its lines so (a line missing
/// `organizationId`, `organizationName` or `customerNumber` takes its organization's).
pub fn report_lines(request: &str, body: &str) -> Result<Vec<RawLine>, CloudmoreError> {
    let unexpected =
        |message: String| CloudmoreError::Answer { request: request.to_string(), message };
    let root: Box<RawValue> = serde_json::from_str(body)
        .map_err(|err| unexpected(format!("the report is not JSON: {err}")))?;
    let mut out = Vec::new();
    collect_lines(&root, &mut out, None, 0).map_err(unexpected)?;
    Ok(out)
}

fn collect_lines(
    value: &RawValue,
    out: &mut Vec<RawLine>,
    parent: Option<&RawLine>,
    depth: u8,
) -> Result<(), String> {
    if depth > 3 {
        return Err("the report nests lists deeper than cmat reads".into());
    }
    let text = value.get().trim_start();
    if text.starts_with('[') {
        let items: Vec<Box<RawValue>> =
            serde_json::from_str(value.get()).map_err(|e| e.to_string())?;
        for (index, item) in items.iter().enumerate() {
            if !item.get().trim_start().starts_with('{') {
                return Err(format!("item {} of the report is not an object", index + 1));
            }
            collect_lines(item, out, parent, depth + 1)?;
        }
        return Ok(());
    }
    if !text.starts_with('{') {
        return Err(format!("the report is {}, expected a list of lines", first_chars(text)));
    }
    let object: HashMap<String, Box<RawValue>> =
        serde_json::from_str(value.get()).map_err(|e| e.to_string())?;
    let mut object = lower_keys(object);
    if let Some(list) = LINE_LISTS.iter().find_map(|k| object.remove(*k)) {
        // A group (the whole report, or one organization): its own fields are inherited.
        return collect_lines(&list, out, Some(&object), depth + 1);
    }
    if !object.contains_key("billingdate") {
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        return Err(format!(
            "an object with neither \"billingDate\" nor a list of lines (fields: {})",
            keys.join(", ")
        ));
    }
    if let Some(parent) = parent {
        for key in ["organizationid", "organizationname", "customernumber"] {
            if let (false, Some(value)) = (object.contains_key(key), parent.get(key)) {
                object.insert(key.to_string(), value.clone());
            }
        }
    }
    out.push(object);
    Ok(())
}

fn lower_keys(object: HashMap<String, Box<RawValue>>) -> RawLine {
    object.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
}

fn first_chars(text: &str) -> String {
    let cut: String = text.chars().take(20).collect();
    format!("{cut:?}")
}

/// A text field: a JSON string (trimmed) or number; `Ok(None)` when absent or null.
fn field_text(line: &RawLine, name: &str) -> Result<Option<String>, String> {
    let Some(raw) = line.get(&name.to_ascii_lowercase()) else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Null) => Ok(None),
        Ok(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Ok(Value::Number(_)) => Ok(Some(raw.get().trim().to_string())),
        Ok(other) => Err(format!("field \"{name}\" is {}, expected text", kind(&other))),
        Err(err) => Err(format!("field \"{name}\": {err}")),
    }
}

/// An amount: a JSON number (read from its text: exact, exponent allowed) or a decimal string.
fn field_decimal(line: &RawLine, name: &str) -> Result<Decimal, String> {
    let Some(raw) = line.get(&name.to_ascii_lowercase()) else {
        return Err(format!("field \"{name}\" is missing"));
    };
    let text = raw.get().trim();
    if text.starts_with('"') {
        let value: String =
            serde_json::from_str(text).map_err(|e| format!("field \"{name}\": {e}"))?;
        return parse_exact_decimal(name, value.trim());
    }
    if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
        if text.contains(['e', 'E']) {
            return Decimal::from_scientific(text)
                .map_err(|e| format!("field \"{name}\" {text} cannot be kept exactly ({e})"));
        }
        return parse_exact_decimal(name, text);
    }
    Err(format!("field \"{name}\" is {}, expected a number or a decimal string", first_chars(text)))
}

/// The one mapping from a report line to cmat's billing line (the company link is set by the
/// caller, from the line's organization).
pub fn bill_line(line: &RawLine, source: LineSource) -> Result<BillLine, String> {
    let required = |name: &str| match field_text(line, name)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(format!("field \"{name}\" is missing or empty")),
    };
    let optional = |name: &str| field_text(line, name).map(Option::unwrap_or_default);
    let date_text = required("billingDate")?;
    // "2026-11-01" or a .NET DateTime "2026-11-01T00:00:00(Z|+01:00)": the date part.
    let date_part = date_text.split('T').next().unwrap_or(&date_text);
    let billing_date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d")
        .ok()
        .filter(|_| date_part.len() == 10)
        .ok_or_else(|| format!("field \"billingDate\" {date_text:?} is not an ISO date"))?;
    let subscription_id = optional("subscriptionId")?;
    Ok(BillLine {
        source,
        billing_date,
        service_name: required("serviceName")?,
        broker_name: optional("brokerName")?,
        organization_name: required("organizationName")?,
        customer_number: optional("customerNumber")?,
        product_name: required("productName")?,
        item_code: optional("itemCode")?,
        quantity: field_decimal(line, "quantity")?,
        unit_cost_price: field_decimal(line, "unitCostPrice")?,
        unit_sales_price: field_decimal(line, "unitSalesPrice")?,
        total_cost: field_decimal(line, "totalCost")?,
        total_sales: field_decimal(line, "totalSales")?,
        currency_code: required("currencyCode")?,
        product_id: optional("productId")?,
        subscription_id,
        subscription_name: optional("subscriptionName")?,
        autotask_company_id: None,
        payment_frequency: optional("paymentFrequency")?,
        organization_currency_code: optional("organizationCurrencyCode")?,
        organization_groups: optional("organizationGroups")?,
    })
}

fn shorten(body: &str) -> String {
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
    let body = response.text().map_err(|source| CloudmoreError::Transport {
        request: request.to_string(),
        source: source.without_url(),
    })?;
    if !status.is_success() {
        let mut body = body.trim().to_string();
        if body.len() > MAX_BODY_IN_ERROR {
            let cut =
                (0..=MAX_BODY_IN_ERROR).rev().find(|i| body.is_char_boundary(*i)).unwrap_or(0);
            body.truncate(cut);
            body.push('…');
        }
        return Err(CloudmoreError::Status {
            request: request.to_string(),
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_str(&body).map_err(|err| CloudmoreError::Answer {
        request: request.to_string(),
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests;
