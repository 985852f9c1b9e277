//! The only code that speaks HTTP to Autotask.
//!
//! One [`AutotaskClient`] is shared by several threads. It holds at most
//! [`ClientOptions::max_in_flight`] requests in flight per endpoint (Autotask's thread threshold),
//! retries only what is safe to repeat (reads, and any thread-threshold refusal, 429 or another
//! status saying so, which Autotask did not execute), watches the tenant's hourly request
//! threshold and stops before cmat takes more than its share, and turns every answer it does not
//! understand into an error naming the request. Secrets travel only in headers and never appear
//! in an error or a log line.
//!
//! Here: the client, its reads and writes, and `send_named` (one attempt after another, each
//! logged for `-v`). Beside it: `response.rs` (status and body to a result), `budget.rs` (the
//! hourly threshold), `zone.rs` (zone lookup and the tenant's origin); `../pacing.rs` (the
//! in-flight limiter) and `../error.rs` (errors and refusal kinds).

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::Value;

pub use super::error::AutotaskError;
use super::pacing::Limiter;
pub use super::pacing::PacingMemory;
use crate::json_kind::kind;
use crate::locks::{self, lock};
use budget::BudgetState;
use response::{excerpt, interpret, read_response, refusal, Outcome, Refusal};
use zone::{with_slash, Zone};

mod budget;
mod clock;
mod response;
mod zone;
use super::query::Filter;
use crate::logging;
use crate::workspace::{check_url, AutotaskConfig, AutotaskCredentials};
pub use clock::{Clock, RecordingClock, SystemClock};

/// Autotask's own zone lookup service.
pub const DEFAULT_ZONE_LOOKUP_URL: &str = "https://webservices.autotask.net/atservicesrest/";
const API_VERSION: &str = "v1.0";
/// The default [`ClientOptions::slot_release_delay`], in milliseconds (measured against cmat-sim;
/// see BENCHMARKS.md, "Thread threshold"). 10, not 20: a saturated endpoint pays it on every
/// request cycle (20 ms held apply to 2.65 writes in flight at 150 ms a request), while a tenant
/// freeing slots later costs a refusal or two before the delay widens to it.
pub const DEFAULT_SLOT_RELEASE_MS: u64 = 10;
/// The default [`ClientOptions::slot_release_delay_max`], in milliseconds.
pub const DEFAULT_SLOT_RELEASE_MAX_MS: u64 = 250;
/// The default [`ClientOptions::slot_release_growth`]: 3, not 2, so that one refusal takes a
/// 10 ms delay past a tenant freeing its slots up to 30 ms late (doubling needed two widenings,
/// and each costs a burst of refusals: 6 of 187 requests at 25 ms late, against 3 of 184;
/// BENCHMARKS.md, "Thread threshold").
pub const DEFAULT_SLOT_RELEASE_GROWTH: u32 = 3;
/// Pages one query may have before the client assumes the server is looping.
const MAX_PAGES: usize = 100_000;
/// Largest response body read (Autotask pages of 500 records stay far below).
const MAX_BODY: usize = 256 * 1024 * 1024;

/// How the client behaves; defaults suit a live tenant, tests shorten the waits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Whole-request timeout (Autotask itself gives up after about 5 minutes).
    pub request_timeout: Duration,
    /// Requests in flight per endpoint (Autotask allows 3 per integration code).
    pub max_in_flight: usize,
    /// How long a slot stays taken after its answer arrives, to begin with (Autotask frees it a
    /// little after answering; see `pacing.rs`). Zero reuses a slot the instant an answer lands.
    pub slot_release_delay: Duration,
    /// The longest the delay grows to, widened by thread-threshold refusals.
    pub slot_release_delay_max: Duration,
    /// How many times longer the delay gets with each refusal it did not prevent.
    pub slot_release_growth: u32,
    /// Where the delay learned from refusals is kept for the next run (None: not kept).
    pub pacing_memory: Option<PacingMemory>,
    /// Attempts for a request that is safe to repeat (the first one included), after a
    /// connection failure or a gateway error. Thread-threshold refusals do not count: they are
    /// bounded by [`retry_budget`](Self::retry_budget).
    pub max_attempts: u32,
    /// How long one request may wait in all, over its thread-threshold refusals, before cmat
    /// gives up on it (a refused request was not processed, so it is always safe to resend).
    pub retry_budget: Duration,
    /// The first wait after a thread-threshold refusal; each further one twice as long (with
    /// jitter), at most `threshold_backoff_max`.
    pub threshold_backoff_base: Duration,
    pub threshold_backoff_max: Duration,
    /// First retry waits about this long; each further one twice as long, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Overrides `[autotask] max_hourly_share`; the default is 0.5.
    pub max_hourly_share: Option<Decimal>,
    /// Re-read `ThresholdInformation` after this many requests.
    pub threshold_every: u64,
    /// Longest pause added before each request when the tenant's usage nears cmat's share.
    pub slowdown_max: Duration,
    /// Optional `ImpersonationResourceId` header.
    pub impersonation_resource_id: Option<i64>,
    /// Where the waits go: the system's clock, or a test's [`RecordingClock`].
    pub clock: std::sync::Arc<dyn Clock>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_in_flight: 3,
            slot_release_delay: Duration::from_millis(DEFAULT_SLOT_RELEASE_MS),
            slot_release_delay_max: Duration::from_millis(DEFAULT_SLOT_RELEASE_MAX_MS),
            slot_release_growth: DEFAULT_SLOT_RELEASE_GROWTH,
            pacing_memory: None,
            max_attempts: 6,
            retry_budget: Duration::from_secs(120),
            threshold_backoff_base: Duration::from_millis(100),
            threshold_backoff_max: Duration::from_secs(10),
            backoff_base: Duration::from_millis(1000),
            backoff_max: Duration::from_secs(30),
            max_hourly_share: None,
            threshold_every: 100,
            slowdown_max: Duration::from_secs(2),
            impersonation_resource_id: None,
            clock: std::sync::Arc::new(SystemClock),
        }
    }
}

/// `ThresholdInformation`: the tenant's rolling-hour request budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// `externalRequestThreshold`: requests allowed per timeframe.
    pub limit: u64,
    /// `requestThresholdTimeframe` (minutes).
    pub timeframe_minutes: u64,
    /// `currentTimeframeRequestCount`: used so far, by every integration on the tenant.
    pub used: u64,
}

/// One field of `entityInformation/fields` (or a UDF of `entityInformation/userDefinedFields`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    pub name: String,
    pub data_type: String,
    pub length: Option<i64>,
    pub is_required: bool,
    pub is_read_only: bool,
    pub is_queryable: bool,
    pub is_pick_list: bool,
    pub picklist_values: Vec<PicklistValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PicklistValue {
    /// Autotask sends picklist values as strings of numbers.
    pub value: String,
    pub label: String,
    pub is_active: bool,
}

impl PicklistValue {
    pub fn as_i64(&self) -> Option<i64> {
        self.value.trim().parse().ok()
    }
}

/// Whether a request may be sent again when its outcome is unclear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Safety {
    /// Reads: queries, counts, GETs.
    Repeatable,
    /// Writes: only a 429 or a connection that was never made may be retried.
    Write,
}

/// Where a request goes: a path below `{base}v1.0/`, or a `nextPageUrl` Autotask gave.
enum Target<'a> {
    Path(&'a str),
    Absolute(&'a str),
}

pub struct AutotaskClient {
    http: Client,
    credentials: AutotaskCredentials,
    headers: HeaderMap,
    options: ClientOptions,
    share: Decimal,
    zone_lookup_url: String,
    zone: RwLock<Zone>,
    rediscovered: Mutex<bool>,
    limiter: Limiter,
    sent: AtomicU64,
    budget: Mutex<Option<BudgetState>>,
    writes: Mutex<WriteTimes>,
    /// The hourly lockout Autotask answered, once it has: every later request fails at once
    /// with it instead of being sent (a locked-out tenant is not worth hammering).
    locked_out: Mutex<Option<AutotaskError>>,
}

/// How long this client's writes were in flight, for [`AutotaskClient::writes_in_flight`].
#[derive(Debug, Default, Clone, Copy)]
struct WriteTimes {
    first_sent: Option<Instant>,
    last_answered: Option<Instant>,
    /// Every write attempt's time from sending to its answer, summed.
    held: Duration,
}

/// How well writes kept Autotask's slots busy: `average` writes were in flight over the
/// `window` from the first one's sending to the last one's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WritesInFlight {
    pub window: Duration,
    pub average: f64,
}

impl fmt::Debug for AutotaskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutotaskClient")
            .field("base_url", &self.base_url())
            .field("username", &self.credentials.username)
            .field("requests_sent", &self.requests_sent())
            .finish_non_exhaustive()
    }
}

impl AutotaskClient {
    /// Finds the tenant's zone (unless `base_url` is configured), checks the credentials by
    /// reading `ThresholdInformation`, and refuses to start when the hour's budget is spent.
    pub fn connect(
        config: &AutotaskConfig,
        credentials: AutotaskCredentials,
        options: ClientOptions,
    ) -> Result<Self, AutotaskError> {
        let share = hourly_share(config, &options)?;
        let zone_lookup_url =
            config.zone_lookup_url.clone().unwrap_or_else(|| DEFAULT_ZONE_LOOKUP_URL.to_string());
        check_url(&zone_lookup_url).map_err(AutotaskError::Config)?;
        if let Some(base) = &config.base_url {
            check_url(base).map_err(AutotaskError::Config)?;
        }
        let headers = auth_headers(&credentials, options.impersonation_resource_id)?;
        let http = http_client(&options)?;
        let limiter = Limiter::new(
            options.slot_release_delay,
            options.slot_release_delay_max,
            options.slot_release_growth,
            options.pacing_memory.clone(),
        );
        let mut client = AutotaskClient {
            http,
            credentials,
            headers,
            options,
            share,
            zone_lookup_url,
            zone: RwLock::new(Zone { base_url: String::new(), discovered: false }),
            rediscovered: Mutex::new(false),
            limiter,
            sent: AtomicU64::new(0),
            writes: Mutex::new(WriteTimes::default()),
            budget: Mutex::new(None),
            locked_out: Mutex::new(None),
        };
        let zone = match &config.base_url {
            Some(base) => Zone { base_url: with_slash(base), discovered: false },
            None => Zone { base_url: client.lookup_zone()?, discovered: true },
        };
        client.zone = RwLock::new(zone);
        client.refresh_budget()?;
        client.check_budget()?;
        Ok(client)
    }

    /// The tenant base in use, like `https://webservices5.autotask.net/atservicesrest/`.
    pub fn base_url(&self) -> String {
        locks::read(&self.zone).base_url.clone()
    }

    /// HTTP requests sent so far (zone lookups and threshold reads included, retries too).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// How long an answered request's slot stays taken now (it widens with refusals).
    pub fn slot_release_delay(&self) -> Duration {
        self.limiter.release_delay()
    }

    /// The most requests this client had in flight at once on one endpoint.
    pub fn peak_in_flight(&self) -> u64 {
        self.limiter.peak()
    }

    /// The writes sent so far: the time from the first one's sending to the last one's answer,
    /// and how many were in flight on average over it (close to 3 when apply keeps Autotask's
    /// three slots busy). None before any write.
    pub fn writes_in_flight(&self) -> Option<WritesInFlight> {
        let times = *lock(&self.writes);
        let window = times.last_answered?.checked_duration_since(times.first_sent?)?;
        let average = times.held.as_secs_f64() / window.as_secs_f64().max(f64::MIN_POSITIVE);
        Some(WritesInFlight { window, average })
    }

    /// The share of the tenant's hourly threshold cmat may use.
    pub fn max_hourly_share(&self) -> Decimal {
        self.share
    }

    /// The latest `ThresholdInformation` reading plus the requests sent since.
    pub fn hourly_usage(&self) -> Option<Threshold> {
        let state = (*lock(&self.budget))?;
        let since = self.requests_sent().saturating_sub(state.sent_at_reading);
        Some(Threshold { used: state.reading.used + since, ..state.reading })
    }

    // ----- reading -----

    /// Every record matching `filter`, following each `nextPageUrl` (POST, same body).
    pub fn query(&self, entity: &str, filter: &Filter) -> Result<Vec<Value>, AutotaskError> {
        let mut records = Vec::new();
        self.query_each_page(entity, filter, &mut |page| {
            records.extend(page);
            ControlFlow::Continue(())
        })?;
        Ok(records)
    }

    /// Like [`query`](Self::query), but hands each page to `on_page` as it arrives, so a
    /// caller can convert records without holding every page; `Break` stops reading.
    pub fn query_each_page(
        &self,
        entity: &str,
        filter: &Filter,
        on_page: &mut dyn FnMut(Vec<Value>) -> ControlFlow<()>,
    ) -> Result<(), AutotaskError> {
        let path = format!("{}/query", entity_path(entity)?);
        let request = format!("POST {path}");
        let body = filter
            .to_body()
            .map_err(|source| AutotaskError::Filter { request: request.clone(), source })?;
        let mut seen_urls = HashSet::new();
        let mut next: Option<String> = None;
        for page in 1..=MAX_PAGES {
            let (mut answer, name) =
                self.query_page(&path, &request, &body, page, next.as_deref())?;
            let bad =
                |message: String| AutotaskError::BadResponse { request: name.clone(), message };
            let (items, next_url) = page_of(&mut answer).map_err(&bad)?;
            if on_page(items).is_break() {
                return Ok(());
            }
            let Some(url) = next_url else { return Ok(()) };
            self.check_page_url(&url).map_err(|m| bad(m.clone()))?;
            if !seen_urls.insert(url.clone()) {
                return Err(bad(format!(
                    "`nextPageUrl` repeats an earlier page ({url}); stopping"
                )));
            }
            next = Some(url);
        }
        Err(AutotaskError::BadResponse {
            request,
            message: format!("more than {MAX_PAGES} pages; stopping"),
        })
    }

    /// One page of a query and the request's name in errors: the first page by its path, the
    /// next ones by the `nextPageUrl` the one before gave (named with their number).
    fn query_page(
        &self,
        path: &str,
        request: &str,
        body: &Value,
        page: usize,
        next: Option<&str>,
    ) -> Result<(Value, String), AutotaskError> {
        let Some(url) = next else {
            let answer =
                self.send(Method::POST, Target::Path(path), Some(body), Safety::Repeatable)?;
            return Ok((answer, request.to_string()));
        };
        let name = format!("{request} (page {page})");
        let answer = self.send_named(
            &name,
            Method::POST,
            Target::Absolute(url),
            Some(body),
            Safety::Repeatable,
        )?;
        Ok((answer, name))
    }

    /// `POST {Entity}/query/count`.
    pub fn query_count(&self, entity: &str, filter: &Filter) -> Result<u64, AutotaskError> {
        let path = format!("{}/query/count", entity_path(entity)?);
        let request = format!("POST {path}");
        let body = filter
            .to_body()
            .map_err(|source| AutotaskError::Filter { request: request.clone(), source })?;
        let answer =
            self.send(Method::POST, Target::Path(&path), Some(&body), Safety::Repeatable)?;
        answer.get("queryCount").and_then(Value::as_u64).ok_or_else(|| AutotaskError::BadResponse {
            request,
            message: "`queryCount` should be a whole number".into(),
        })
    }

    /// `GET {path}` (like `Contracts/4410`): the `item`, or None when Autotask has no such
    /// record (404 or `{"item": null}`). Not used by `pull`, which reads only in pages.
    pub fn get(&self, path: &str) -> Result<Option<Value>, AutotaskError> {
        let path = entity_path(path)?;
        match self.send(Method::GET, Target::Path(path), None, Safety::Repeatable) {
            Ok(answer) => match answer.get("item") {
                None | Some(Value::Null) => Ok(None),
                Some(item @ Value::Object(_)) => Ok(Some(item.clone())),
                Some(other) => Err(AutotaskError::BadResponse {
                    request: format!("GET {path}"),
                    message: format!("`item` should be a record, found {}", kind(other)),
                }),
            },
            Err(AutotaskError::Api { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET {Entity}/entityInformation/fields`.
    pub fn get_fields(&self, entity: &str) -> Result<Vec<FieldInfo>, AutotaskError> {
        self.field_list(&format!("{}/entityInformation/fields", entity_path(entity)?))
    }

    /// `GET {Entity}/entityInformation/userDefinedFields`.
    pub fn get_udfs(&self, entity: &str) -> Result<Vec<FieldInfo>, AutotaskError> {
        self.field_list(&format!("{}/entityInformation/userDefinedFields", entity_path(entity)?))
    }

    fn field_list(&self, path: &str) -> Result<Vec<FieldInfo>, AutotaskError> {
        let answer = self.send(Method::GET, Target::Path(path), None, Safety::Repeatable)?;
        let request = format!("GET {path}");
        let fields = match answer.get("fields") {
            Some(Value::Array(fields)) => fields,
            _ => {
                return Err(AutotaskError::BadResponse {
                    request,
                    message: "no `fields` list in the answer".into(),
                })
            }
        };
        fields
            .iter()
            .map(|field| {
                field_info(field).map_err(|message| AutotaskError::BadResponse {
                    request: request.clone(),
                    message,
                })
            })
            .collect()
    }

    /// `GET ThresholdInformation` (also refreshes the client's budget reading).
    pub fn threshold(&self) -> Result<Threshold, AutotaskError> {
        self.refresh_budget()
    }

    // ----- writing -----

    /// `POST {path}` (`Contracts`, `Contracts/4410/ServiceAdjustments`): the new record's id.
    /// An answer without one (`{"itemId": null}`, or none at all) is an unknown outcome, never
    /// "done": live integrations count a create as written only when `itemId` is present, so
    /// cmat re-reads before deciding (API-NOTES).
    pub fn create(&self, path: &str, body: &Value) -> Result<Option<i64>, AutotaskError> {
        let path = entity_path(path)?;
        let answer = self.send(Method::POST, Target::Path(path), Some(body), Safety::Write)?;
        match answer.get("itemId") {
            Some(Value::Null) => Err(AutotaskError::OutcomeUnknown {
                request: format!("POST {path}"),
                reason: "Autotask answered 200 with a null `itemId`".into(),
            }),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(other) => Err(AutotaskError::OutcomeUnknown {
                request: format!("POST {path}"),
                reason: format!("Autotask answered 200 with an `itemId` that is {}", kind(other)),
            }),
            None => Err(AutotaskError::OutcomeUnknown {
                request: format!("POST {path}"),
                reason: "Autotask answered 200 without an `itemId`".into(),
            }),
        }
    }

    /// `PATCH {path}` (the collection URL); `body` holds the record's `id` and the changed fields.
    pub fn update(&self, path: &str, body: &Value) -> Result<(), AutotaskError> {
        let path = entity_path(path)?;
        if body.get("id").and_then(Value::as_i64).is_none() {
            return Err(AutotaskError::Config(format!(
                "PATCH {path}: the body needs the record's numeric `id`"
            )));
        }
        self.send(Method::PATCH, Target::Path(path), Some(body), Safety::Write)?;
        Ok(())
    }

    /// `DELETE {path}` (like `Contracts/4410/Charges/77`).
    pub fn delete(&self, path: &str) -> Result<(), AutotaskError> {
        let path = entity_path(path)?;
        self.send(Method::DELETE, Target::Path(path), None, Safety::Write)?;
        Ok(())
    }

    // ----- the machinery -----

    fn send(
        &self,
        method: Method,
        target: Target<'_>,
        body: Option<&Value>,
        safety: Safety,
    ) -> Result<Value, AutotaskError> {
        let name = match &target {
            Target::Path(path) => format!("{method} {path}"),
            Target::Absolute(url) => format!("{method} {url}"),
        };
        self.send_named(&name, method, target, body, safety)
    }

    /// Sends until an answer decides: the retries (connection failures, cut-off answers,
    /// gateways, thread-threshold refusals, a moved zone) are chosen by [`Self::decide`].
    fn send_named(
        &self,
        request: &str,
        method: Method,
        target: Target<'_>,
        body: Option<&Value>,
        safety: Safety,
    ) -> Result<Value, AutotaskError> {
        let mut number: u32 = 0;
        let mut retries = ThresholdRetries::default();
        loop {
            number += 1;
            let base = self.base_url();
            let url = match &target {
                Target::Path(path) => format!("{base}{API_VERSION}/{path}"),
                Target::Absolute(url) => url.to_string(),
            };
            let endpoint = endpoint_of(&url);
            if let Some(err) = self.still_locked_out(request) {
                return Err(err);
            }
            self.before_request(&endpoint)?;
            let (started, outcome) =
                self.send_once(request, number, &method, &url, &endpoint, body, safety);
            let attempt = Attempt {
                request,
                method: &method,
                url: &url,
                relative: matches!(target, Target::Path(_)),
                safety,
                started,
                elapsed: started.elapsed(),
                number,
                retries_left: number < self.options.max_attempts,
            };
            match self.decide(&attempt, outcome, &mut retries)? {
                Step::Done(value) => return Ok(value),
                Step::Backoff(retry_after) => self.backoff(number, retry_after),
                Step::Wait(wait) => {
                    self.options.clock.sleep(wait);
                    retries.waited += wait;
                    // Bounded by time, not counted against the attempts.
                    number = number.saturating_sub(1);
                }
                Step::Again => number = number.saturating_sub(1),
            }
        }
    }

    /// One HTTP exchange within the endpoint's in-flight limit; a write's time is counted.
    #[allow(clippy::too_many_arguments)]
    fn send_once(
        &self,
        request: &str,
        attempt: u32,
        method: &Method,
        url: &str,
        endpoint: &str,
        body: Option<&Value>,
        safety: Safety,
    ) -> (Instant, Outcome) {
        let _permit = self.limiter.acquire(endpoint, self.options.max_in_flight);
        let started = Instant::now();
        self.sent.fetch_add(1, Ordering::SeqCst);
        let mut builder = self.http.request(method.clone(), url).headers(self.headers.clone());
        if let Some(body) = body {
            builder = builder.body(body.to_string());
        }
        tracing::debug!(target: logging::HTTP_TARGET, request, attempt, "sending");
        let outcome = match builder.send() {
            Ok(response) => read_response(response),
            Err(err) => Outcome::NotSent {
                connect: err.is_connect(),
                message: self.describe_transport(&err),
            },
        };
        if safety == Safety::Write {
            let answered = Instant::now();
            let mut times = lock(&self.writes);
            times.first_sent = Some(times.first_sent.map_or(started, |t| t.min(started)));
            times.last_answered = Some(answered);
            times.held += answered - started;
        }
        (started, outcome)
    }

    /// What one attempt's outcome means: the result, or how to go again.
    fn decide(
        &self,
        attempt: &Attempt<'_>,
        outcome: Outcome,
        retries: &mut ThresholdRetries,
    ) -> Result<Step, AutotaskError> {
        match outcome {
            Outcome::NotSent { connect, message } => not_sent(attempt, connect, message),
            Outcome::BodyLost { status, message } => body_lost(attempt, status, message),
            Outcome::Answer { status, body, retry_after } => {
                let text = self.redact(&String::from_utf8_lossy(&body));
                self.answered(attempt, status, &text, retry_after, retries)
            }
        }
    }

    /// An HTTP answer: a refusal to wait out, a 401 to rediscover the zone for, a gateway to
    /// retry (reads) or call unknown (writes), else Autotask's answer read.
    fn answered(
        &self,
        attempt: &Attempt<'_>,
        status: StatusCode,
        text: &str,
        retry_after: Option<Duration>,
        retries: &mut ThresholdRetries,
    ) -> Result<Step, AutotaskError> {
        if let Some(kind) = refusal(status, text) {
            let started = attempt.started;
            let refused = Refused { kind, request: attempt.request, status, retry_after, started };
            return match self.after_refusal(refused, retries) {
                Ok(wait) => {
                    attempt.log(Some(status), Some("thread threshold"));
                    Ok(Step::Wait(wait))
                }
                Err(err) => {
                    attempt.log(Some(status), None);
                    Err(err)
                }
            };
        }
        let unauthorized = status == StatusCode::UNAUTHORIZED && attempt.relative;
        if unauthorized {
            attempt.log(Some(status), None);
            if self.try_rediscover()? {
                // Not executed either; the tenant moved zone: once more on the new base.
                return Ok(Step::Again);
            }
        }
        if let Some(step) = gateway(attempt, status, retry_after)? {
            return Ok(step);
        }
        if !unauthorized {
            attempt.log(Some(status), None);
        }
        match interpret(attempt.request, status, text) {
            Err(AutotaskError::BadResponse { request, message })
                if attempt.safety == Safety::Write && status.is_success() =>
            {
                Err(AutotaskError::OutcomeUnknown {
                    request,
                    reason: format!("Autotask answered 200 but {message}"),
                })
            }
            other => other.map(Step::Done),
        }
    }

    /// Removes the credentials from any text a server sent back (a hostile or debugging server
    /// could echo the request headers).
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in [self.credentials.secret.expose(), self.credentials.integration_code.expose()]
        {
            if !secret.is_empty() {
                text = text.replace(secret, "***");
            }
        }
        text
    }

    fn describe_transport(&self, err: &reqwest::Error) -> String {
        let what = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "could not connect"
        } else {
            "the connection failed"
        };
        let mut detail = String::new();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            detail = cause.to_string();
            source = cause.source();
        }
        if detail.is_empty() {
            what.to_string()
        } else {
            self.redact(&format!("{what}: {detail}"))
        }
    }

    /// What to do after a refusal (`refusal` said it is one): the wait before sending the
    /// request again (a thread-threshold refusal within the time budget), or the error to
    /// stop with (a lockout, or the budget spent).
    fn after_refusal(
        &self,
        refused: Refused<'_>,
        retries: &mut ThresholdRetries,
    ) -> Result<Duration, AutotaskError> {
        let Refused { kind, request, status, retry_after, started } = refused;
        if kind == Refusal::HourlyLockout {
            return Err(self.locked_out(lockout(request, status, retry_after)));
        }
        // Autotask did not execute it: any request may go again, creates too (API-NOTES).
        self.limiter.refused(started);
        let wait = self.threshold_wait(retries.refusals, retry_after);
        retries.refusals += 1;
        if wait <= self.options.retry_budget.saturating_sub(retries.waited) {
            return Ok(wait);
        }
        if retry_after.is_some_and(|r| r > self.options.retry_budget) {
            // Asked to wait longer than a request's whole budget: locked out, not busy.
            return Err(self.locked_out(lockout(request, status, retry_after)));
        }
        Err(AutotaskError::ThreadThreshold {
            request: request.to_string(),
            status: status.as_u16(),
            attempts: retries.refusals,
            waited: retries.waited,
        })
    }

    /// Remembers a lockout; returns it.
    fn locked_out(&self, err: AutotaskError) -> AutotaskError {
        if let AutotaskError::HourlyLockout { request, status, retry_after, resume_at } = &err {
            *lock(&self.locked_out) = Some(AutotaskError::HourlyLockout {
                request: request.clone(),
                status: *status,
                retry_after: *retry_after,
                resume_at: *resume_at,
            });
        }
        err
    }

    /// The lockout met earlier, for `request`, while it lasts (for the rest of the run when
    /// Autotask did not say how long).
    fn still_locked_out(&self, request: &str) -> Option<AutotaskError> {
        let mut locked = lock(&self.locked_out);
        let AutotaskError::HourlyLockout { status, retry_after, resume_at, .. } =
            locked.as_ref()?
        else {
            return None;
        };
        if resume_at.is_some_and(|at| chrono::Utc::now() >= at) {
            *locked = None;
            return None;
        }
        Some(AutotaskError::HourlyLockout {
            request: request.to_string(),
            status: *status,
            retry_after: *retry_after,
            resume_at: *resume_at,
        })
    }

    /// The wait before resending a request refused `refusals` times before for the thread
    /// threshold: short (a slot frees within milliseconds), doubling with jitter, at least
    /// Autotask's `Retry-After`.
    fn threshold_wait(&self, refusals: u32, retry_after: Option<Duration>) -> Duration {
        let base = self.options.threshold_backoff_base;
        let exp = base.saturating_mul(1u32 << refusals.min(16));
        let capped = exp.min(self.options.threshold_backoff_max.max(base));
        let half = capped / 2;
        (half + half * random_per_mille() / 1000).max(retry_after.unwrap_or_default())
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) {
        let exp =
            self.options.backoff_base.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
        let capped = exp.min(self.options.backoff_max);
        // Full jitter in [capped/2, capped].
        let half = capped / 2;
        let jitter = half * random_per_mille() / 1000;
        let wait = (half + jitter).max(retry_after.unwrap_or_default());
        self.options.clock.sleep(wait.min(self.options.backoff_max.max(self.options.backoff_base)));
    }
}

/// A refused answer, for [`AutotaskClient::after_refusal`].
struct Refused<'a> {
    kind: Refusal,
    request: &'a str,
    status: StatusCode,
    retry_after: Option<Duration>,
    /// When the refused request was sent (the pacing widens for refusals of recent ones).
    started: Instant,
}

/// One request's thread-threshold refusals so far, and the time waited over them.
#[derive(Default)]
struct ThresholdRetries {
    refusals: u32,
    waited: Duration,
}

/// One page of a query's answer: its records and the next page's URL, or what is wrong with
/// it.
fn page_of(answer: &mut Value) -> Result<(Vec<Value>, Option<String>), String> {
    let items = match answer.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("`items` should be a list, found {}", kind(&other))),
        None => return Err("no `items` in the answer".into()),
    };
    if let Some(item) = items.iter().find(|item| !item.is_object()) {
        return Err(format!("`items` should hold records, found {}", kind(item)));
    }
    let next_url = match answer.get("pageDetails").and_then(|d| d.get("nextPageUrl")) {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) if url.is_empty() => None,
        Some(Value::String(url)) => Some(url.clone()),
        Some(other) => {
            return Err(format!("`pageDetails.nextPageUrl` should be text, found {}", kind(other)))
        }
    };
    Ok((items, next_url))
}

/// One request as it was sent, for deciding what its outcome means.
struct Attempt<'a> {
    request: &'a str,
    method: &'a Method,
    url: &'a str,
    /// A path below the base URL (a 401 may mean the zone moved), not a `nextPageUrl`.
    relative: bool,
    safety: Safety,
    started: Instant,
    elapsed: Duration,
    number: u32,
    retries_left: bool,
}

impl Attempt<'_> {
    /// One `-v` line per attempt, with the reason when it goes again.
    fn log(&self, status: Option<StatusCode>, retry: Option<&str>) {
        let status = status.map(|s| s.as_u16());
        logging::request(self.method.as_str(), self.url, status, self.elapsed, retry);
    }
}

/// What an attempt decided, when it is not a failure.
enum Step {
    Done(Value),
    /// Again after the back-off, counted as an attempt (at least `Retry-After` when given).
    Backoff(Option<Duration>),
    /// Again after this wait, not counted: a thread-threshold refusal, bounded by time.
    Wait(Duration),
    /// Again at once, not counted: the zone moved.
    Again,
}

/// No answer: a connection never made carried nothing (retried); any other failure may have
/// (retried for reads only, a write's outcome is unknown).
fn not_sent(attempt: &Attempt<'_>, connect: bool, message: String) -> Result<Step, AutotaskError> {
    if attempt.safety == Safety::Repeatable || connect {
        if attempt.retries_left {
            attempt.log(None, Some("connection failed"));
            return Ok(Step::Backoff(None));
        }
        attempt.log(None, None);
        return Err(AutotaskError::Transport {
            request: attempt.request.to_string(),
            message: format!("{message} (after {} attempts)", attempt.number),
        });
    }
    attempt.log(None, None);
    Err(AutotaskError::OutcomeUnknown { request: attempt.request.to_string(), reason: message })
}

/// A status without its body: a read goes again; a successful write's outcome is unknown.
fn body_lost(
    attempt: &Attempt<'_>,
    status: StatusCode,
    message: String,
) -> Result<Step, AutotaskError> {
    if attempt.safety == Safety::Repeatable && attempt.retries_left {
        attempt.log(Some(status), Some("answer cut off"));
        return Ok(Step::Backoff(None));
    }
    attempt.log(Some(status), None);
    if attempt.safety == Safety::Write && status.is_success() {
        return Err(AutotaskError::OutcomeUnknown {
            request: attempt.request.to_string(),
            reason: format!("the answer was cut off: {message}"),
        });
    }
    Err(AutotaskError::Transport {
        request: attempt.request.to_string(),
        message: format!("HTTP {}, then {message}", status.as_u16()),
    })
}

/// A gateway's 502/503/504 came before Autotask answered: a read goes again while attempts
/// are left (then the answer is read as any other), a write's outcome is unknown.
fn gateway(
    attempt: &Attempt<'_>,
    status: StatusCode,
    retry_after: Option<Duration>,
) -> Result<Option<Step>, AutotaskError> {
    let is_gateway = matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    );
    if !is_gateway {
        return Ok(None);
    }
    if attempt.safety != Safety::Repeatable {
        attempt.log(Some(status), None);
        return Err(AutotaskError::OutcomeUnknown {
            request: attempt.request.to_string(),
            reason: format!("HTTP {} from a gateway before Autotask answered", status.as_u16()),
        });
    }
    if attempt.retries_left {
        attempt.log(Some(status), Some("gateway"));
        return Ok(Some(Step::Backoff(retry_after)));
    }
    Ok(None)
}

/// The error of an hourly lockout: not retried, and saying when to run again.
fn lockout(request: &str, status: StatusCode, retry_after: Option<Duration>) -> AutotaskError {
    let resume_at = retry_after
        .and_then(|wait| chrono::Duration::from_std(wait).ok())
        .map(|wait| chrono::Utc::now() + wait);
    AutotaskError::HourlyLockout {
        request: request.to_string(),
        status: status.as_u16(),
        retry_after,
        resume_at,
    }
}

/// The share of the hourly threshold cmat may use: the option's, else the configuration's,
/// else half; it must lie in (0, 1].
fn hourly_share(
    config: &AutotaskConfig,
    options: &ClientOptions,
) -> Result<Decimal, AutotaskError> {
    let share = options.max_hourly_share.or(config.max_hourly_share).unwrap_or(Decimal::new(5, 1));
    if share <= Decimal::ZERO || share > Decimal::ONE {
        return Err(AutotaskError::Config(format!(
            "max_hourly_share must lie above 0 and at most 1, not {share}"
        )));
    }
    Ok(share)
}

/// The HTTP client of the Autotask API: the options' timeouts, and no redirects.
fn http_client(options: &ClientOptions) -> Result<Client, AutotaskError> {
    Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        // A redirect would carry the credential headers to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cmat/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| AutotaskError::Config(format!("cannot set up HTTP: {err}")))
}

fn field_info(value: &Value) -> Result<FieldInfo, String> {
    let get = |name: &str| response::member(value, name);
    let flag = |name: &str| get(name).and_then(Value::as_bool).unwrap_or(false);
    let name = get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a field without a `name`: {}", excerpt(&value.to_string())))?
        .to_string();
    let picklist_values = match get("picklistValues") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => {
            values.iter().map(|v| picklist_value(v, &name)).collect::<Result<_, String>>()?
        }
        Some(other) => {
            return Err(format!(
                "field `{name}`: `picklistValues` should be a list, found {}",
                kind(other)
            ))
        }
    };
    Ok(FieldInfo {
        data_type: get("dataType").and_then(Value::as_str).unwrap_or_default().to_string(),
        length: get("length").and_then(Value::as_i64),
        is_required: flag("isRequired"),
        is_read_only: flag("isReadOnly"),
        is_queryable: flag("isQueryable"),
        is_pick_list: flag("isPickList") || !picklist_values.is_empty(),
        picklist_values,
        name,
    })
}

/// One of field `field`'s picklist values; a number `value` or `label` is taken as its text.
fn picklist_value(v: &Value, field: &str) -> Result<PicklistValue, String> {
    let text = |name: &str| -> Option<String> {
        match response::member(v, name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    Ok(PicklistValue {
        value: text("value")
            .ok_or_else(|| format!("field `{field}`: a picklist value without `value`"))?,
        label: text("label").unwrap_or_default(),
        is_active: v.get("isActive").and_then(Value::as_bool).unwrap_or(true),
    })
}

fn auth_headers(
    credentials: &AutotaskCredentials,
    impersonation: Option<i64>,
) -> Result<HeaderMap, AutotaskError> {
    fn value(text: &str, variable: &str, sensitive: bool) -> Result<HeaderValue, AutotaskError> {
        let mut value = HeaderValue::from_str(text).map_err(|_| {
            AutotaskError::Config(format!(
                "{variable} holds characters an HTTP header cannot carry"
            ))
        })?;
        value.set_sensitive(sensitive);
        Ok(value)
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        "ApiIntegrationCode",
        value(credentials.integration_code.expose(), "CMAT_AUTOTASK_INTEGRATION_CODE", true)?,
    );
    headers.insert("UserName", value(&credentials.username, "CMAT_AUTOTASK_USERNAME", false)?);
    headers.insert("Secret", value(credentials.secret.expose(), "CMAT_AUTOTASK_SECRET", true)?);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(id) = impersonation {
        headers.insert(
            "ImpersonationResourceId",
            value(&id.to_string(), "ImpersonationResourceId", false)?,
        );
    }
    Ok(headers)
}

/// Checks a path given by the caller: relative, no scheme, no query string, no `..`.
fn entity_path(path: &str) -> Result<&str, AutotaskError> {
    let trimmed = path.trim_matches('/');
    let ok = !trimmed.is_empty()
        && trimmed.split('/').all(|seg| !seg.is_empty() && seg != ".." && seg != ".")
        && trimmed.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'));
    if ok {
        Ok(trimmed)
    } else {
        Err(AutotaskError::Config(format!("`{path}` is not an Autotask API path")))
    }
}

/// The endpoint a URL addresses, lowercased: its entity after `v1.0/`; a child path
/// `Contracts/{id}/Charges` addresses the child entity `contractcharges`.
fn endpoint_of(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    let after = match lower.find("/v1.0/") {
        Some(i) => &lower[i + 6..],
        None => lower.as_str(),
    };
    let path = after.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [parent, id, child, ..]
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && *child != "query" =>
        {
            let singular = match parent.strip_suffix("ies") {
                Some(stem) => format!("{stem}y"),
                None => parent.strip_suffix('s').unwrap_or(parent).to_string(),
            };
            format!("{singular}{child}")
        }
        [first, ..] => first.to_string(),
        [] => String::new(),
    }
}

/// A number in 0..1000 for backoff jitter, from the standard library's randomly keyed hasher.
fn random_per_mille() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() % 1000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_endpoints() {
        assert_eq!(entity_path("Contracts/4410/Charges/9").unwrap(), "Contracts/4410/Charges/9");
        assert!(entity_path("../x").is_err());
        assert!(entity_path("https://evil/").is_err());
        assert!(entity_path("Contracts?x=1").is_err());
        assert_eq!(
            endpoint_of("http://127.0.0.1:9/atservicesrest/v1.0/Contracts/4410/Charges"),
            "contractcharges"
        );
        assert_eq!(
            endpoint_of("http://h/atservicesrest/v1.0/Contracts/4410/Charges/9"),
            "contractcharges"
        );
        assert_eq!(endpoint_of("http://h/x/v1.0/Contracts/4410"), "contracts");
        assert_eq!(endpoint_of("http://h/x/v1.0/Companies/1/Contacts"), "companycontacts");
        assert_eq!(
            endpoint_of("https://h/atservicesrest/V1.0/Companies/query?paging=x"),
            "companies"
        );
        assert_eq!(zone::origin("https://a.b:8/x/y"), "https://a.b:8");
    }

    #[test]
    fn field_info_reads_picklists() {
        let info = field_info(&json!({"name": "useType", "dataType": "integer", "isPickList": true,
            "picklistValues": [{"value": "5", "label": "Recurring Contract Service", "isActive": true}]}))
        .unwrap();
        assert_eq!(info.picklist_values[0].as_i64(), Some(5));
        assert!(field_info(&json!({"dataType": "x"})).is_err());
    }

    #[test]
    fn jitter_is_a_fraction() {
        let draws: Vec<u32> = (0..200).map(|_| random_per_mille()).collect();
        assert!(draws.iter().all(|&draw| draw < 1000), "{draws:?}");
        // A constant (or a clock read too coarse to differ) would give a handful of values;
        // 200 uniform draws out of 1000 give about 180 distinct ones.
        let distinct: std::collections::BTreeSet<u32> = draws.iter().copied().collect();
        assert!(distinct.len() > 100, "only {} distinct values in 200 draws", distinct.len());
        assert!(draws.iter().any(|&draw| draw < 500) && draws.iter().any(|&draw| draw >= 500));
    }
}
