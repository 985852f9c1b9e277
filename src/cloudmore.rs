//! The Cloudmore API client: the only module that speaks HTTP to Cloudmore.
//!
//! - OAuth2 password grant at `POST {base}/connect/token` (client `ro.customer.client` with the
//!   client secret as Basic auth); the token lives in memory only and is reused until a minute
//!   before it expires. Tokens, the password and the client secret never reach a log, an error
//!   message or the disk.
//! - Billing reports are asynchronous: `POST …/organizations/{id}/billing/reports` starts a task,
//!   `GET …/tasks/{taskId}` is polled until it is Completed, then its `resultUrl` holds the lines.
//! - Every answer line becomes a [`BillLine`] in one place ([`bill_line`]), and the lines go into
//!   the store through the same [`Import`](crate::store::Import) as a CSV export.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::billing::{BillLine, LineSource};
use crate::import::parse_exact_decimal;
use crate::store::{ImportSummary, Store, StoreError};
use crate::workspace::{check_url, CloudmoreConfig, CloudmoreCredentials, Secret};

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
    #[error("{request}: the billing report task failed")]
    TaskFailed { request: String },
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
    pub task_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            poll_interval: Duration::from_millis(500),
            max_poll_interval: Duration::from_secs(5),
            task_timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// An organization as `GET …/organizations` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub customer_number: Option<String>,
    #[serde(default)]
    pub custom_properties: Vec<CustomProperty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CustomProperty {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// One line of a billing report result; decimals arrive as strings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportLine {
    pub billing_date: String,
    pub service_name: String,
    #[serde(default)]
    pub broker_name: Option<String>,
    pub organization_name: String,
    #[serde(default)]
    pub customer_number: Option<String>,
    pub product_name: String,
    #[serde(default)]
    pub item_code: Option<String>,
    pub quantity: String,
    pub unit_cost_price: String,
    pub unit_sales_price: String,
    pub total_cost: String,
    pub total_sales: String,
    pub currency_code: String,
    #[serde(default)]
    pub product_id: Option<String>,
    pub subscription_id: String,
    #[serde(default)]
    pub subscription_name: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Serialize)]
struct ReportRequest {
    year: i32,
    month: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskStarted {
    task_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskState {
    status: String,
    #[serde(default)]
    result_url: Option<String>,
}

#[derive(Deserialize)]
struct ReportResult {
    lines: Vec<ReportLine>,
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
    options: ClientOptions,
    token: Option<Token>,
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

    /// A request with the bearer token; a 401 (token revoked early) gets one fresh token and
    /// one retry. Only idempotent reads and the report request (which only starts a task) come
    /// through here.
    fn send<T: serde::de::DeserializeOwned>(
        &mut self,
        method: reqwest::Method,
        path_or_url: &str,
        body: Option<&ReportRequest>,
    ) -> Result<T, CloudmoreError> {
        let url = if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base_url)
        } else {
            // A task's resultUrl is absolute: the token goes only to Cloudmore's own origin.
            if !same_origin(path_or_url, &self.base_url) {
                return Err(CloudmoreError::Answer {
                    request: format!("{method} resultUrl"),
                    message: "the result is on another host than [cloudmore] base_url; \
                              refusing to send the token there"
                        .into(),
                });
            }
            path_or_url.to_string()
        };
        let request = format!("{method} {}", url.strip_prefix(&self.base_url).unwrap_or(&url));
        for attempt in 0..2 {
            let token = self.token()?;
            let mut builder = self.http.request(method.clone(), &url).bearer_auth(token.expose());
            if let Some(body) = body {
                builder = builder.json(body);
            }
            let response = builder.send().map_err(|source| CloudmoreError::Transport {
                request: request.clone(),
                source: source.without_url(),
            })?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                self.token = None;
                continue;
            }
            return decode(&request, response);
        }
        unreachable!("the loop returns on its second attempt")
    }

    pub fn organizations(&mut self) -> Result<Vec<Organization>, CloudmoreError> {
        let path = format!("/api/resellers/{}/organizations", self.reseller_id);
        self.send(reqwest::Method::GET, &path, None)
    }

    /// One organization's billing report for a month: start the task, wait, fetch the lines.
    pub fn billing_report(
        &mut self,
        organization_id: &str,
        year: i32,
        month: u32,
    ) -> Result<Vec<ReportLine>, CloudmoreError> {
        let reseller = self.reseller_id.clone();
        let path =
            format!("/api/resellers/{reseller}/organizations/{organization_id}/billing/reports");
        let started: TaskStarted =
            self.send(reqwest::Method::POST, &path, Some(&ReportRequest { year, month }))?;
        let task_path = format!("/api/resellers/{reseller}/tasks/{}", started.task_id);
        let deadline = Instant::now() + self.options.task_timeout;
        let mut wait = self.options.poll_interval;
        let result_url = loop {
            let state: TaskState = self.send(reqwest::Method::GET, &task_path, None)?;
            match state.status.as_str() {
                "Completed" => {
                    break state.result_url.ok_or_else(|| CloudmoreError::Answer {
                        request: format!("GET {task_path}"),
                        message: "a Completed task without resultUrl".into(),
                    })?
                }
                "Failed" => {
                    return Err(CloudmoreError::TaskFailed { request: format!("GET {task_path}") })
                }
                _ => {}
            }
            if Instant::now() + wait > deadline {
                return Err(CloudmoreError::TaskTimeout {
                    request: format!("GET {task_path}"),
                    seconds: self.options.task_timeout.as_secs(),
                });
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(self.options.max_poll_interval);
        };
        // A resultUrl is absolute or origin-relative ("/cloudmore/api/…"), never relative to
        // base_url's path: resolve it as a browser would.
        let result_url = reqwest::Url::parse(&self.base_url)
            .and_then(|base| base.join(&result_url))
            .map(String::from)
            .map_err(|_| CloudmoreError::Answer {
                request: format!("GET {task_path}"),
                message: format!("resultUrl {result_url:?} is not a URL"),
            })?;
        let result: ReportResult = self.send(reqwest::Method::GET, &result_url, None)?;
        Ok(result.lines)
    }

    /// Pulls every organization's reports for the given months into the store, as one import
    /// (all or nothing). `source_name` names it in the store and in messages.
    pub fn pull_into(
        &mut self,
        store: &mut Store,
        months: &[(i32, u32)],
        source_name: &str,
    ) -> Result<ImportSummary, CloudmoreError> {
        let organizations = self.organizations()?;
        let mut import = store.begin_import(source_name)?;
        let mut problems = Vec::new();
        for organization in &organizations {
            for &(year, month) in months {
                let lines = self.billing_report(&organization.id, year, month)?;
                let file = format!("cloudmore:{year:04}-{month:02}/{}", organization.id);
                for (index, line) in lines.into_iter().enumerate() {
                    let source = LineSource { file: file.clone(), row: index as u64 + 1 };
                    match bill_line(line, organization, source.clone()) {
                        Ok(line) if problems.is_empty() => import.add_line(&line)?,
                        Ok(_) => {}
                        Err(reason) => problems.push(format!("{source}: {reason}")),
                    }
                }
            }
        }
        if !problems.is_empty() {
            let count = problems.len();
            problems.truncate(crate::import::MAX_LISTED_ROWS);
            return Err(CloudmoreError::BadLines {
                source_name: source_name.to_string(),
                message: format!(
                    "{count} malformed {}, nothing imported\n{}",
                    if count == 1 { "line" } else { "lines" },
                    problems.join("\n")
                ),
            });
        }
        Ok(import.finish()?)
    }
}

/// The one mapping from Cloudmore's API to cmat's billing line. The organization's
/// AutotaskCompanyID custom property is the company link (as the CSV export's column is).
pub fn bill_line(
    line: ReportLine,
    organization: &Organization,
    source: LineSource,
) -> Result<BillLine, String> {
    let date_text = line.billing_date.trim();
    // The API may send a midnight timestamp; the date part is the Billing Date.
    let date_part = date_text.split('T').next().unwrap_or(date_text);
    let billing_date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d")
        .ok()
        .filter(|_| date_part.len() == 10)
        .ok_or_else(|| format!("billingDate {date_text:?} is not an ISO date (YYYY-MM-DD)"))?;
    let decimal = |name: &str, text: &str| parse_exact_decimal(name, text.trim());
    let autotask_company_id = match organization
        .custom_properties
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(COMPANY_PROPERTY))
        .and_then(|p| p.value.as_deref())
        .map(str::trim)
    {
        None | Some("") => None,
        Some(text) => Some(text.parse::<i64>().ok().filter(|id| *id >= 0).ok_or_else(|| {
            format!(
                "organization {:?}: {COMPANY_PROPERTY} {text:?} is not an integer",
                organization.name
            )
        })?),
    };
    let required = |name: &str, text: String| {
        if text.trim().is_empty() {
            Err(format!("{name} is empty"))
        } else {
            Ok(text.trim().to_string())
        }
    };
    let optional = |text: Option<String>| text.unwrap_or_default().trim().to_string();
    Ok(BillLine {
        source,
        billing_date,
        service_name: required("serviceName", line.service_name)?,
        broker_name: optional(line.broker_name),
        organization_name: required("organizationName", line.organization_name)?,
        customer_number: optional(line.customer_number),
        product_name: required("productName", line.product_name)?,
        item_code: optional(line.item_code),
        quantity: decimal("quantity", &line.quantity)?,
        unit_cost_price: decimal("unitCostPrice", &line.unit_cost_price)?,
        unit_sales_price: decimal("unitSalesPrice", &line.unit_sales_price)?,
        total_cost: decimal("totalCost", &line.total_cost)?,
        total_sales: decimal("totalSales", &line.total_sales)?,
        currency_code: required("currencyCode", line.currency_code)?,
        product_id: optional(line.product_id),
        subscription_id: required("subscriptionId", line.subscription_id)?,
        subscription_name: optional(line.subscription_name),
        autotask_company_id,
        ..BillLine::default()
    })
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

/// scheme://host:port of a URL, lowercased (enough to compare origins without a URL crate).
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(format!("{}://{}", scheme, authority).to_ascii_lowercase())
}

fn same_origin(url: &str, base: &str) -> bool {
    matches!((origin(url), origin(base)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests;
