//! The HTTP side: routing, authentication, limits, fault injection (feature `faults`), and
//! the request log. The transport (hyper) is in `transport.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cloudmore::CloudmoreState;
use crate::query::{self, PageFrom, Query};
use crate::schema::EntityDef;
use crate::seed::RefusalBody;
use crate::state::State;
use crate::transport::{RawRequest, Reply};
use crate::{lock, ApiError, Counters, LoggedRequest, Seed, SimError, SimHandle, SimOptions};

/// Autotask's error code for a thread-threshold refusal (seen live).
pub(crate) const THREAD_THRESHOLD_CODE: &str = "Itgenatr005";

/// The hourly request threshold's rolling window (`requestThresholdTimeframe`, in minutes).
const TIMEFRAME_MINUTES: u64 = 60;
const HOUR: Duration = Duration::from_secs(TIMEFRAME_MINUTES * 60);

pub(crate) struct Control {
    pub log: Vec<LoggedRequest>,
    pub counters: Counters,
    in_flight: HashMap<(String, String), usize>,
    /// When each request of the rolling hour came (or was counted for other integrations).
    hour: VecDeque<Instant>,
    /// Slots answered but not yet free (the seed's `slot_release_delay`), per key: when each frees.
    releasing: HashMap<(String, String), Vec<Instant>>,
    #[cfg(feature = "faults")]
    pub faults: crate::faults::Faults,
    pub cloudmore: CloudmoreState,
}

impl Control {
    fn new() -> Self {
        Control {
            log: Vec::new(),
            counters: Counters::default(),
            in_flight: HashMap::new(),
            hour: VecDeque::new(),
            releasing: HashMap::new(),
            #[cfg(feature = "faults")]
            faults: Default::default(),
            cloudmore: CloudmoreState::default(),
        }
    }

    fn hour_count(&mut self, now: Instant) -> usize {
        while self.hour.front().is_some_and(|t| now.duration_since(*t) >= HOUR) {
            self.hour.pop_front();
        }
        self.hour.len()
    }

    /// Counts `count` requests at `now` against the rolling hour.
    pub(crate) fn use_hour(&mut self, now: Instant, count: u64) {
        self.hour.extend(std::iter::repeat_n(now, count as usize));
    }
}

pub(crate) struct Shared {
    pub seed: Seed,
    pub options: SimOptions,
    pub base_url: String,
    pub root_url: String,
    state: Mutex<State>,
    control: Mutex<Control>,
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.control)
    }

    /// A refusal for the thread threshold, with `status` (the seed's `refusalStatus`, or 429)
    /// and the seed's body shape (`refusalBody`: the text, only Autotask's code, or plain text).
    pub(crate) fn thread_threshold_refusal(&self, status: u16) -> Outcome {
        let max = self.options.max_concurrent_per_endpoint;
        let text = format!("API thread threshold of {max} threads has been exceeded");
        match self.seed.throttling.refusal_body {
            RefusalBody::Errors => err(status, text),
            RefusalBody::CodeOnly => Outcome::Json(
                status,
                json!({"errors": [{"code": THREAD_THRESHOLD_CODE, "message": null}]}),
            ),
            RefusalBody::PlainText => {
                Outcome::Raw { status, text, content_type: "text/plain", retry_after: None }
            }
        }
    }

    /// The tenant's hourly threshold is used up: every request is refused with `Retry-After`.
    pub(crate) fn lockout_refusal(&self, retry_after: Option<u64>) -> Outcome {
        let threshold = self.seed.external_request_threshold;
        let body = json!({"errors": [format!("The request threshold of {threshold} requests per {TIMEFRAME_MINUTES} minutes has been exceeded; try again later.")]});
        Outcome::Raw {
            status: 429,
            text: body.to_string(),
            content_type: "application/json; charset=utf-8",
            retry_after,
        }
    }

    pub fn reset(&self) {
        if let Ok(state) = State::new(&self.seed) {
            *self.state() = state;
        }
        *self.control() = Control::new();
    }
}

pub(super) fn start(listen: &str, seed: Seed, options: SimOptions) -> Result<SimHandle, SimError> {
    let state = State::new(&seed).map_err(|e| SimError::Seed(e.errors.join("; ")))?;
    let listen_error = |message: String| SimError::Listen { addr: listen.to_string(), message };
    let listener = std::net::TcpListener::bind(listen).map_err(|e| listen_error(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| listen_error(e.to_string()))?;
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let root_url = format!("http://{host}");
    let shared = Arc::new(Shared {
        base_url: format!("{root_url}/atservicesrest/"),
        root_url,
        seed,
        options: options.clone(),
        state: Mutex::new(state),
        control: Mutex::new(Control::new()),
    });
    let app_shared = shared.clone();
    let app: crate::transport::App = Arc::new(move |request: RawRequest| {
        let shared = app_shared.clone();
        Box::pin(async move { handle(&shared, request).await })
    });
    let server = crate::transport::serve(listener, options.workers, app)
        .map_err(|e| listen_error(e.to_string()))?;
    Ok(SimHandle { shared, server })
}

/// What to send back.
pub(crate) enum Outcome {
    Json(u16, Value),
    /// A body already serialized (Cloudmore's decimals written as their exact JSON text, a
    /// plain-text refusal), with its content type and `Retry-After` when given.
    Raw {
        status: u16,
        text: String,
        content_type: &'static str,
        retry_after: Option<u64>,
    },
    /// Break the connection without an HTTP response.
    #[cfg(feature = "faults")]
    Drop,
}

pub(crate) fn errors(e: ApiError) -> Outcome {
    Outcome::Json(e.status, json!({"errors": e.errors}))
}

pub(crate) fn err(status: u16, message: impl Into<String>) -> Outcome {
    errors(ApiError::new(status, message))
}

/// Runs blocking work (the state and control locks, queries over a large tenant) without
/// stalling the runtime's other tasks (timers, other connections).
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

pub(crate) struct Incoming {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: Vec<(String, String)>,
    pub body: Result<String, String>,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; an empty body is `null`.
    pub fn json(&self) -> Result<Value, ApiError> {
        let body = self.body.as_ref().map_err(|e| ApiError::new(400, e.clone()))?;
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(body)
            .map_err(|e| ApiError::new(500, format!("The request body is not valid JSON: {e}")))
    }
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn parse_form(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

async fn handle(shared: &Arc<Shared>, request: RawRequest) -> Reply {
    let method = request.method.to_ascii_uppercase();
    let url = request.url;
    let (path, query_text) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let body_len = request.body.as_ref().map(Vec::len).unwrap_or(0);
    let body = request.body.and_then(|raw| {
        String::from_utf8(raw).map_err(|_| "The request body is not UTF-8.".to_string())
    });
    let incoming = Incoming {
        method: method.clone(),
        path: path.to_string(),
        query: parse_form(query_text),
        headers: request.headers,
        body,
    };
    let mut route = format!("{method} {path}");
    let is_sim = path.starts_with("/_sim/") || path == "/_sim";
    let outcome = dispatch(shared, &incoming, &mut route).await;
    if !is_sim {
        let status = status_of(&outcome);
        let throttled = status == 429 || is_thread_threshold_refusal(&outcome);
        let logged = LoggedRequest {
            method,
            path: url.clone(),
            status,
            body_len,
            at: chrono::Utc::now(),
            route,
        };
        count_and_log(shared, logged, throttled);
    }
    reply_of(outcome)
}

/// The HTTP status an outcome answers with (0 for a dropped connection).
fn status_of(outcome: &Outcome) -> u16 {
    match outcome {
        Outcome::Json(status, _) | Outcome::Raw { status, .. } => *status,
        #[cfg(feature = "faults")]
        Outcome::Drop => 0,
    }
}

/// Counts an API request (by method, route, and whether it was throttled) and logs it, for
/// `/_sim/counters` and `/_sim/log`.
fn count_and_log(shared: &Shared, logged: LoggedRequest, throttled: bool) {
    let mut c = shared.control();
    c.counters.total += 1;
    *c.counters.by_method.entry(logged.method.clone()).or_default() += 1;
    *c.counters.by_route.entry(logged.route.clone()).or_default() += 1;
    if throttled {
        c.counters.throttled += 1;
    }
    c.log.push(logged);
}

/// What the transport sends for an outcome.
fn reply_of(outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Json(status, body) => {
            Reply::Json(status, serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()))
        }
        Outcome::Raw { status, text, content_type, retry_after } => {
            Reply::Raw { status, text, content_type, retry_after }
        }
        // No response at all: the connection is shut, the client sees a transport error.
        #[cfg(feature = "faults")]
        Outcome::Drop => Reply::Drop,
    }
}

async fn dispatch(shared: &Arc<Shared>, rq: &Incoming, route: &mut String) -> Outcome {
    let path = rq.path.as_str();
    let lower = path.to_ascii_lowercase();
    if lower == "/_sim" || lower.starts_with("/_sim/") {
        return blocking(|| control(shared, rq));
    }
    if lower.starts_with("/cloudmore/") {
        let (status, body) = blocking(|| crate::cloudmore::handle(shared, rq, route));
        return Outcome::Raw {
            status,
            text: crate::cloudmore::serialize(&body),
            content_type: "application/json",
            retry_after: None,
        };
    }
    let Some(rest) =
        lower.strip_prefix("/atservicesrest/v1.0/").map(|_| &path["/atservicesrest/v1.0/".len()..])
    else {
        return err(404, format!("No route for {path}"));
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    api(shared, rq, &segments, route).await
}

fn control(shared: &Shared, rq: &Incoming) -> Outcome {
    let path = rq.path.trim_end_matches('/').to_ascii_lowercase();
    match (rq.method.as_str(), path.as_str()) {
        #[cfg(feature = "faults")]
        ("POST", "/_sim/faults") => crate::faults::faults_route(shared, rq),
        ("GET", "/_sim/log") => {
            Outcome::Json(200, serde_json::to_value(&shared.control().log).unwrap_or(Value::Null))
        }
        ("GET", "/_sim/counters") => Outcome::Json(
            200,
            serde_json::to_value(&shared.control().counters).unwrap_or(Value::Null),
        ),
        ("GET", "/_sim/state") => Outcome::Json(200, shared.state().snapshot()),
        ("POST", "/_sim/reset") => {
            shared.reset();
            Outcome::Json(200, json!({"ok": true}))
        }
        ("POST", p) if p.starts_with("/_sim/billed/") => {
            match p["/_sim/billed/".len()..].parse::<i64>() {
                Ok(id) if shared.state().set_billed(id) => Outcome::Json(200, json!({"ok": true})),
                _ => err(404, "no such charge"),
            }
        }
        _ => err(404, format!("No simulator control route {} {}", rq.method, rq.path)),
    }
}

/// Holds an in-flight slot for its endpoint until dropped.
struct Slot {
    shared: Arc<Shared>,
    key: (String, String),
}

impl Drop for Slot {
    /// The slot frees now, or (seed `throttling.slotReleaseDelayMs`) a little after the answer,
    /// as on a live tenant: it is dropped just before the answer is written.
    fn drop(&mut self) {
        let delay = self.shared.seed.throttling.slot_release_delay;
        let mut c = self.shared.control();
        if let Some(n) = c.in_flight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
        if !delay.is_zero() {
            let frees_at = Instant::now() + delay;
            c.releasing.entry(self.key.clone()).or_default().push(frees_at);
        }
    }
}

fn is_thread_threshold_refusal(outcome: &Outcome) -> bool {
    let says =
        |text: &str| text.contains("thread threshold") || text.contains(THREAD_THRESHOLD_CODE);
    match outcome {
        Outcome::Json(status, body) if *status >= 400 => says(&body.to_string()),
        Outcome::Raw { status, text, .. } if *status >= 400 => says(text),
        _ => false,
    }
}

/// The parsed shape of an API path.
pub(crate) enum Target {
    Threshold,
    Zone,
    Info(String, InfoKind),
    Query { entity: String, count: bool, page: Option<&'static str> },
    Item { entity: String, parent: Option<i64>, id: i64 },
    Collection { entity: String, parent: Option<i64> },
}

#[derive(Clone, Copy)]
pub(crate) enum InfoKind {
    Entity,
    Fields,
    Udfs,
}

fn child_entity(state: &State, segment: &str) -> Option<String> {
    state
        .defs
        .iter()
        .find(|d| d.child_of_contract.is_some_and(|c| c.eq_ignore_ascii_case(segment)))
        .map(|d| d.name.to_string())
}

/// The entity an URL names, spelt as the schema spells it; 404 for an unknown one.
fn entity_named(state: &State, name: &str) -> Result<String, Outcome> {
    state
        .def(name)
        .map(|d| d.name.to_string())
        .ok_or_else(|| err(404, format!("The entity '{name}' does not exist.")))
}

/// Which `entityInformation` route the segments after it name (lower-cased).
fn info_kind(rest: &[&str]) -> Option<InfoKind> {
    match rest {
        [] => Some(InfoKind::Entity),
        ["fields"] => Some(InfoKind::Fields),
        ["userdefinedfields"] => Some(InfoKind::Udfs),
        _ => None,
    }
}

/// A path segment that is a record id.
fn id_of(segment: &str) -> Option<i64> {
    segment.parse::<i64>().ok()
}

/// The target of an API path (its segments after `/atservicesrest/v1.0/`), with the route it
/// is counted under (ids replaced by `{id}`). Segments match without regard to case.
fn parse_target(state: &State, segments: &[&str]) -> Result<(Target, String), Outcome> {
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    Ok(match l.as_slice() {
        ["thresholdinformation"] => (Target::Threshold, "ThresholdInformation".into()),
        ["zoneinformation"] => (Target::Zone, "zoneInformation".into()),
        [_, "entityinformation", rest @ ..] if info_kind(rest).is_some() => {
            let e = entity_named(state, segments[0])?;
            let route = format!("{e}/{}", segments[1..].join("/"));
            (Target::Info(e, info_kind(rest).ok_or_else(|| err(404, "No such route."))?), route)
        }
        [_, "query"] => query_target(state, segments[0], None)?,
        [_, "query", mode @ ("count" | "next" | "prev")] => {
            query_target(state, segments[0], Some(mode))?
        }
        [_] => {
            let e = entity_named(state, segments[0])?;
            (Target::Collection { entity: e.clone(), parent: None }, e)
        }
        ["contracts", p, child, rest @ ..]
            if id_of(p).is_some() && child_entity(state, child).is_some() =>
        {
            contract_child_target(state, segments, id_of(p), child, rest)?
        }
        [_, i] if id_of(i).is_some() => {
            let e = entity_named(state, segments[0])?;
            let id = id_of(i).ok_or_else(|| err(404, "No such route."))?;
            (Target::Item { entity: e.clone(), parent: None, id }, format!("{e}/{{id}}"))
        }
        _ => return Err(err(404, format!("No such route: {}", segments.join("/")))),
    })
}

/// `Entity/query`, `…/query/count`, `…/query/next` and `…/query/prev`.
fn query_target(
    state: &State,
    entity: &str,
    mode: Option<&str>,
) -> Result<(Target, String), Outcome> {
    let e = entity_named(state, entity)?;
    let (count, page) = match mode {
        None => (false, None),
        Some("count") => (true, None),
        Some("next") => (false, Some("next")),
        Some(_) => (false, Some("prev")),
    };
    let route = match mode {
        None => format!("{e}/query"),
        Some(mode) => format!("{e}/query/{mode}"),
    };
    Ok((Target::Query { entity: e, count, page }, route))
}

/// `Contracts/{id}/Child`, `…/Child/{id}` and `…/Child/entityInformation…`: the entities
/// Autotask serves under their contract.
fn contract_child_target(
    state: &State,
    segments: &[&str],
    parent: Option<i64>,
    child: &str,
    rest: &[&str],
) -> Result<(Target, String), Outcome> {
    let e = child_entity(state, child).ok_or_else(|| err(404, "No such route."))?;
    let child_name = state.def(&e).and_then(|d| d.child_of_contract).unwrap_or("");
    Ok(match rest {
        [] => (Target::Collection { entity: e, parent }, format!("Contracts/{{id}}/{child_name}")),
        [i] if id_of(i).is_some() => {
            let id = id_of(i).ok_or_else(|| err(404, "No such route."))?;
            (
                Target::Item { entity: e, parent, id },
                format!("Contracts/{{id}}/{child_name}/{{id}}"),
            )
        }
        ["entityinformation", more @ ..] if info_kind(more).is_some() => {
            let route = format!("Contracts/{{id}}/{child_name}/{}", segments[3..].join("/"));
            (Target::Info(e, info_kind(more).ok_or_else(|| err(404, "No such route."))?), route)
        }
        _ => return Err(err(404, "No such route.")),
    })
}

fn endpoint_of(target: &Target) -> String {
    match target {
        Target::Threshold => "ThresholdInformation".into(),
        Target::Zone => "zoneInformation".into(),
        Target::Info(e, ..)
        | Target::Query { entity: e, .. }
        | Target::Item { entity: e, .. }
        | Target::Collection { entity: e, .. } => e.clone(),
    }
}

fn is_write(method: &str, target: &Target) -> bool {
    match target {
        Target::Item { .. } => method == "DELETE",
        Target::Collection { .. } => matches!(method, "POST" | "PATCH" | "PUT"),
        _ => false,
    }
}

/// An API request let through the limits: it holds its concurrency slot until dropped.
struct Admitted {
    target: Target,
    write: bool,
    /// Frees the slot when the request is done.
    _slot: Slot,
    latency: Duration,
    #[cfg(feature = "faults")]
    failure: Option<crate::faults::WriteFailure>,
}

/// Authentication, the zone and threshold lookups, then the limits: the hour, the thread
/// threshold (and injected faults). The latency is waited for after, holding the slot.
async fn api(
    shared: &Arc<Shared>,
    rq: &Incoming,
    segments: &[&str],
    route: &mut String,
) -> Outcome {
    let admitted = match blocking(|| admit(shared, rq, segments, route)) {
        Ok(admitted) => admitted,
        Err(outcome) => return outcome,
    };
    if !admitted.latency.is_zero() {
        tokio::time::sleep(admitted.latency).await;
    }
    blocking(|| complete(shared, rq, admitted))
}

fn admit(
    shared: &Arc<Shared>,
    rq: &Incoming,
    segments: &[&str],
    route: &mut String,
) -> Result<Admitted, Outcome> {
    let (target, route_name) = {
        let state = shared.state();
        parse_target(&state, segments)?
    };
    *route = format!("{} {route_name}", rq.method);
    let endpoint = endpoint_of(&target);
    *shared.control().counters.by_endpoint.entry(endpoint.clone()).or_default() += 1;
    if let Target::Zone = target {
        return Err(zone_answer(shared, rq));
    }
    let code = authenticate(shared, rq)?;
    if let Target::Threshold = target {
        return Err(threshold_answer(shared, rq));
    }
    let write = is_write(&rq.method, &target);
    take_slot(shared, code, endpoint, write).map(|taken| Admitted {
        target,
        write,
        _slot: Slot { shared: shared.clone(), key: taken.key },
        latency: taken.latency,
        #[cfg(feature = "faults")]
        failure: taken.failure,
    })
}

/// `GET zoneInformation?user=`: the zone of the seed's API user (no authentication).
fn zone_answer(shared: &Shared, rq: &Incoming) -> Outcome {
    if rq.method != "GET" {
        return err(405, "Method not allowed.");
    }
    let user = rq
        .query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("user"))
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if !user.eq_ignore_ascii_case(&shared.seed.credentials.username) {
        return err(500, format!("Zone information could not be determined for user {user}."));
    }
    Outcome::Json(
        200,
        json!({
            "zoneName": shared.seed.zone_name,
            "url": shared.base_url,
            "webUrl": format!("{}/Autotask/", shared.root_url),
            "ci": 0,
        }),
    )
}

/// The three headers against the seed's credentials; the integration code keys the limits.
fn authenticate<'a>(shared: &Shared, rq: &'a Incoming) -> Result<&'a str, Outcome> {
    let creds = &shared.seed.credentials;
    let code = rq.header("ApiIntegrationCode").unwrap_or("");
    if code != creds.integration_code
        || !rq.header("UserName").unwrap_or("").eq_ignore_ascii_case(&creds.username)
        || rq.header("Secret").unwrap_or("") != creds.secret
    {
        return Err(err(401, "Unauthorized: the ApiIntegrationCode, UserName and Secret headers do not match an API user."));
    }
    Ok(code)
}

/// `GET ThresholdInformation`: the hour's budget and use (not limited itself).
fn threshold_answer(shared: &Shared, rq: &Incoming) -> Outcome {
    if rq.method != "GET" {
        return err(405, "Method not allowed.");
    }
    let count = shared.control().hour_count(Instant::now());
    Outcome::Json(
        200,
        json!({
            "externalRequestThreshold": shared.seed.external_request_threshold,
            "requestThresholdTimeframe": TIMEFRAME_MINUTES,
            "currentTimeframeRequestCount": count,
        }),
    )
}

/// What taking a slot gave a request: the slot's key and, with faults, what to inject.
struct Taken {
    key: (String, String),
    latency: Duration,
    #[cfg(feature = "faults")]
    failure: Option<crate::faults::WriteFailure>,
}

/// The limits (and faults), under the control lock: the hourly threshold, then the
/// endpoint's requests in flight (slots still releasing count).
fn take_slot(shared: &Shared, code: &str, endpoint: String, write: bool) -> Result<Taken, Outcome> {
    let mut c = shared.control();
    let now = Instant::now();
    count_in_hour(shared, &mut c, now)?;
    let key = (code.to_string(), endpoint.clone());
    occupy_endpoint(shared, &mut c, &key, endpoint, now)?;
    if write {
        c.counters.writes += 1;
    }
    #[cfg(feature = "faults")]
    let failure = if write {
        let nth = c.counters.writes;
        c.faults.write_failure(nth)
    } else {
        None
    };
    #[cfg(feature = "faults")]
    let latency = shared.options.latency + c.faults.latency;
    #[cfg(not(feature = "faults"))]
    let latency = shared.options.latency;
    Ok(Taken {
        key,
        latency,
        #[cfg(feature = "faults")]
        failure,
    })
}

/// The hourly threshold: refused (with when the hour frees a request) once it is used up or
/// a fault locks the integration out, else counted in the hour; then, with faults, a burst's
/// refusal.
fn count_in_hour(shared: &Shared, c: &mut Control, now: Instant) -> Result<(), Outcome> {
    let threshold = shared.seed.external_request_threshold;
    if c.hour_count(now) as u64 >= threshold {
        // Until the oldest request of the hour leaves the window.
        let frees = c.hour.front().map(|first| HOUR.saturating_sub(now.duration_since(*first)));
        return Err(shared.lockout_refusal(frees.map(|wait| wait.as_secs().max(1))));
    }
    #[cfg(feature = "faults")]
    if let Some(retry_after) = c.faults.lockout(now) {
        return Err(shared.lockout_refusal(retry_after));
    }
    c.use_hour(now, 1);
    #[cfg(feature = "faults")]
    if let Some(status) = c.faults.burst_refusal(shared.seed.throttling.refusal_status) {
        return Err(shared.thread_threshold_refusal(status));
    }
    Ok(())
}

/// The endpoint's thread threshold: its requests in flight and slots still releasing (those
/// whose release time has passed are forgotten); refused when full, else one more in flight.
fn occupy_endpoint(
    shared: &Shared,
    c: &mut Control,
    key: &(String, String),
    endpoint: String,
    now: Instant,
) -> Result<(), Outcome> {
    let releasing = match c.releasing.get_mut(key) {
        Some(pending) => {
            pending.retain(|frees_at| *frees_at > now);
            pending.len()
        }
        None => 0,
    };
    let n = c.in_flight.entry(key.clone()).or_default();
    if *n + releasing >= shared.options.max_concurrent_per_endpoint {
        return Err(shared.thread_threshold_refusal(shared.seed.throttling.refusal_status));
    }
    *n += 1;
    let now_in_flight = *n;
    let peak = c.counters.peak_in_flight.entry(endpoint).or_default();
    *peak = (*peak).max(now_in_flight);
    Ok(())
}

/// Runs an admitted request; its slot frees when this returns, just before the answer is sent.
fn complete(shared: &Shared, rq: &Incoming, admitted: Admitted) -> Outcome {
    #[cfg(feature = "faults")]
    if let Some(failure) = admitted.failure {
        return crate::faults::fail_write(shared, rq, &admitted.target, failure);
    }
    let outcome = execute(shared, rq, &admitted.target);
    if admitted.write && matches!(outcome, Outcome::Json(200, _)) {
        shared.control().counters.writes_committed += 1;
    }
    outcome
}

/// Runs an admitted request against the state: one function per kind of URL.
pub(crate) fn execute(shared: &Shared, rq: &Incoming, target: &Target) -> Outcome {
    let method = rq.method.as_str();
    let mut state = shared.state();
    match target {
        Target::Threshold | Target::Zone => errors(ApiError::new(404, "unreachable")),
        Target::Info(entity, kind) => info(&state, method, entity, *kind),
        Target::Query { entity, count, page } => {
            query_answer(shared, rq, &mut state, entity, *count, *page)
        }
        Target::Item { entity, parent, id } => item(&mut state, method, entity, *parent, *id),
        Target::Collection { entity, parent } => collection(&mut state, rq, entity, *parent),
    }
}

/// An API answer as sent: 200 with its body, or the error's status and message.
fn respond(result: Result<Value, ApiError>) -> Outcome {
    match result {
        Ok(body) => Outcome::Json(200, body),
        Err(e) => errors(e),
    }
}

/// The entity's definition; parse_target only admits known entities.
fn known<'a>(state: &'a State, entity: &str) -> Result<&'a EntityDef, Outcome> {
    state.def(entity).ok_or_else(|| errors(ApiError::new(404, format!("Unknown entity {entity}"))))
}

/// `GET {entity}/entityInformation[/fields|/userDefinedFields]`.
fn info(state: &State, method: &str, entity: &str, kind: InfoKind) -> Outcome {
    if method != "GET" {
        return err(405, "Method not allowed.");
    }
    let def = match known(state, entity) {
        Ok(def) => def,
        Err(outcome) => return outcome,
    };
    let body = match kind {
        InfoKind::Entity => def.info_json(),
        InfoKind::Fields => {
            json!({"fields": def.fields.iter().map(|f| f.to_json()).collect::<Vec<_>>()})
        }
        InfoKind::Udfs if def.has_udfs => json!({"fields": udf_infos(state)}),
        InfoKind::Udfs => json!({"fields": []}),
    };
    Outcome::Json(200, body)
}

/// The Contracts UDFs' field information (text fields, some required).
fn udf_infos(state: &State) -> Vec<Value> {
    state
        .contract_udfs
        .iter()
        .map(|name| {
            let required = state.required_udfs.iter().any(|r| r.eq_ignore_ascii_case(name));
            json!({
                "name": name, "label": name, "dataType": "string", "length": 100,
                "isRequired": required, "isReadOnly": false, "isQueryable": true,
                "isReference": false, "referenceEntityType": "", "isPickList": false,
                "picklistValues": null, "isActive": true,
            })
        })
        .collect()
}

/// `{entity}/query[/count|/next|/prev]`: POST with the query body, or GET with `search=`.
fn query_answer(
    shared: &Shared,
    rq: &Incoming,
    state: &mut State,
    entity: &str,
    count: bool,
    page: Option<&'static str>,
) -> Outcome {
    let def = match known(state, entity) {
        Ok(def) => def.clone(),
        Err(outcome) => return outcome,
    };
    if !def.can_query {
        return err(405, format!("{} cannot be queried.", def.name));
    }
    let body = match rq.method.as_str() {
        "POST" => rq.json(),
        "GET" if page.is_some() => {
            return err(
                405,
                "The next and previous page URLs are followed with POST and the query body.",
            )
        }
        "GET" => match rq.query.iter().find(|(k, _)| k.eq_ignore_ascii_case("search")) {
            Some((_, search)) => serde_json::from_str(search)
                .map_err(|e| ApiError::new(500, format!("search is not valid JSON: {e}"))),
            None => Ok(Value::Null),
        },
        _ => return err(405, "Method not allowed."),
    };
    let udfs = if def.has_udfs { state.contract_udfs.clone() } else { Vec::new() };
    let offset = shared.seed.tenant_utc_offset_minutes;
    respond(body.and_then(|body| Query::parse_in(&def, &udfs, &body, offset)).and_then(|q| {
        let rows = state.rows_shared(def.name);
        if count {
            return Ok(query::count(&q, &rows[..]));
        }
        let from = page_from(rq, page)?;
        let base = shared.base_url.clone();
        let name = def.name;
        let url = move |kind: &str, id: i64| format!("{base}v1.0/{name}/query/{kind}?paging={id}");
        query::run(&q, &rows[..], from, &url)
    }))
}

/// Where a page starts: the first, or after/before the `paging` id of a next/prev URL.
fn page_from(rq: &Incoming, page: Option<&str>) -> Result<PageFrom, ApiError> {
    let paging = rq
        .query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("paging"))
        .and_then(|(_, v)| v.parse::<i64>().ok());
    match (page, paging) {
        (None, _) => Ok(PageFrom::Start),
        (Some("next"), Some(id)) => Ok(PageFrom::After(id)),
        (Some(_), Some(id)) => Ok(PageFrom::Before(id)),
        (Some(_), None) => Err(ApiError::new(500, "The paging parameter is missing or invalid.")),
    }
}

/// `GET {entity}/{id}` (or a contract's child by id), `DELETE` a contract's child.
fn item(state: &mut State, method: &str, entity: &str, parent: Option<i64>, id: i64) -> Outcome {
    respond(match method {
        "GET" => {
            match known(state, entity) {
                Ok(def) if !def.can_query => {
                    return err(405, format!("{} cannot be read.", def.name))
                }
                Ok(_) => {}
                Err(outcome) => return outcome,
            }
            match state.get(entity, id) {
                Some(item)
                    if parent.is_none()
                        || item.get("contractID").and_then(Value::as_i64) == parent =>
                {
                    Ok(json!({"item": item}))
                }
                _ => Err(ApiError::new(404, format!("{entity} with id {id} was not found."))),
            }
        }
        "DELETE" if parent.is_some() => state.delete(entity, parent, id),
        _ => Err(ApiError::new(
            405,
            "Method not allowed: updates go to the collection URL with id in the body.",
        )),
    })
}

/// `{entity}` or `Contracts/{id}/{child}`: create (POST), update (PATCH, PUT), a contract's
/// children (GET).
fn collection(state: &mut State, rq: &Incoming, entity: &str, parent: Option<i64>) -> Outcome {
    let method = rq.method.as_str();
    let def = match known(state, entity) {
        Ok(def) => def.clone(),
        Err(outcome) => return outcome,
    };
    let writes_here = parent.is_some() || !def.child_writes_only;
    respond(match method {
        "GET" if parent.is_some() && def.can_query => {
            let items: Vec<Value> = state
                .rows(entity)
                .into_iter()
                .filter(|r| r.get("contractID").and_then(Value::as_i64) == parent)
                .take(query::PAGE_MAX)
                .collect();
            Ok(
                json!({"items": items, "pageDetails": {"count": items.len(), "requestCount": query::PAGE_MAX, "prevPageUrl": null, "nextPageUrl": null}}),
            )
        }
        "POST" if writes_here && def.can_create => {
            rq.json().and_then(|b| state.create(entity, parent, &b))
        }
        "PATCH" | "PUT" if writes_here && def.can_update => {
            rq.json().and_then(|b| state.update(entity, parent, &b, method == "PUT"))
        }
        _ => Err(ApiError::new(405, format!("{method} is not allowed on this {} URL.", def.name))),
    })
}

/// Every (method, path) the simulator serves for Autotask, in v1.json's spelling
/// (`/V1.0/Contracts/{parentId}/Charges`), so tests can check them against the Swagger.
pub fn served_routes(state: &State) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |method: &str, path: String| out.push((method.to_string(), path));
    add("GET", "/V1.0/ThresholdInformation".into());
    add("GET", "/V1.0/ZoneInformation".into());
    for def in &state.defs {
        let e = def.name;
        for info in ["", "/fields", "/userDefinedFields"] {
            add("GET", format!("/V1.0/{e}/entityInformation{info}"));
        }
        if def.can_query {
            for q in ["query", "query/count"] {
                add("GET", format!("/V1.0/{e}/{q}"));
                add("POST", format!("/V1.0/{e}/{q}"));
            }
            add("GET", format!("/V1.0/{e}/{{id}}"));
        }
        if !def.child_writes_only {
            if def.can_create {
                add("POST", format!("/V1.0/{e}"));
            }
            if def.can_update {
                add("PATCH", format!("/V1.0/{e}"));
                add("PUT", format!("/V1.0/{e}"));
            }
        }
        if let Some(child) = def.child_of_contract {
            let base = format!("/V1.0/Contracts/{{parentId}}/{child}");
            for info in ["", "/fields", "/userDefinedFields"] {
                add("GET", format!("{base}/entityInformation{info}"));
            }
            if def.can_query {
                add("GET", base.clone());
                add("GET", format!("{base}/{{id}}"));
            }
            if def.can_create {
                add("POST", base.clone());
            }
            if def.can_update {
                add("PATCH", base.clone());
                add("PUT", base.clone());
            }
            if def.can_delete {
                add("DELETE", format!("{base}/{{id}}"));
            }
        }
    }
    out
}
