//! `cmat-sim`: a local, faithful simulator of the Autotask REST API (and the few Cloudmore
//! endpoints cmat reads), for tests and `cmat demo`.
//!
//! ```no_run
//! use cmat_sim::{Fault, Seed, SimOptions, Simulator, WriteFailure};
//! let sim = Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default()).unwrap();
//! println!("{}", sim.base_url()); // http://127.0.0.1:PORT/atservicesrest/
//! sim.inject(Fault::FailWrite { nth: 1, mode: WriteFailure::CommitThenDrop });
//! ```
//!
//! Every rule of `API-NOTES.md` holds here: authentication headers, zone lookup, the hourly
//! threshold, 3 concurrent requests per integration code and endpoint, query filters and paging,
//! field metadata, validation errors as HTTP 500 `{"errors":[…]}`, the child-entity paths, and
//! ContractServiceUnits derived from ContractServiceAdjustments.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod cloudmore;
mod http;
pub mod query;
pub mod schema;
pub mod seed;
mod server;
pub mod state;

pub use seed::{CloudmoreSeed, Credentials, Seed, Throttling};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cmat-sim cannot listen on {addr}: {message}")]
    Listen { addr: String, message: String },
    #[error("bad simulator seed: {0}")]
    Seed(String),
}

/// An API failure: the HTTP status and the `errors` the body lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub errors: Vec<String>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError { status, errors: vec![message.into()] }
    }
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Added to every API request while it holds its concurrency slot.
    pub latency: Duration,
    /// Connections served at once, each on its own thread (more wait in the listen backlog).
    pub workers: usize,
    /// In-flight requests allowed per integration code and endpoint.
    pub max_concurrent_per_endpoint: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions { latency: Duration::ZERO, workers: 64, max_concurrent_per_endpoint: 3 }
    }
}

/// How an injected write failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteFailure {
    /// HTTP 500 `{"errors":[…]}`; nothing is written.
    Error500,
    /// The write is committed, then the connection is broken without an HTTP response: the
    /// client sees a transport error and cannot know the write happened.
    CommitThenDrop,
    /// HTTP 429 (thread threshold); nothing is written.
    TooMany429,
    /// Refused for the thread threshold with the seed's refusal status (429, or 500 as live
    /// tenants may send it); nothing is written.
    ThreadThreshold,
}

/// A fault to inject, in Rust or as JSON on `POST /_sim/faults`
/// (`{"kind":"fail_write","nth":2,"mode":"commit_then_drop"}`, `{"kind":"burst429","count":3}`,
/// `{"kind":"thread_threshold_burst","count":3}`,
/// `{"kind":"latency","ms":200}`, `{"kind":"use_threshold","count":9990}`, `{"kind":"clear"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Fails the nth write (POST/PATCH/PUT/DELETE on an entity; queries are not writes)
    /// counted from now; nth = 1 is the next write.
    FailWrite { nth: u32, mode: WriteFailure },
    /// The next `count` API requests get HTTP 429.
    #[serde(rename = "burst429")]
    Burst429 { count: u32 },
    /// The next `count` API requests are refused for the thread threshold with the seed's
    /// refusal status (`throttling.refusalStatus`).
    ThreadThresholdBurst { count: u32 },
    /// Extra latency on every API request from now on (replaces an earlier one).
    Latency { ms: u64 },
    /// Counts `count` more requests against the current hour, as other integrations would.
    UseThreshold { count: u64 },
    /// Removes pending faults and injected latency.
    Clear,
}

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    /// The path with its query string, as sent.
    pub path: String,
    /// The HTTP status sent; 0 when the connection was dropped without a response.
    pub status: u16,
    /// The request body's length in bytes.
    pub body_len: usize,
    pub at: DateTime<Utc>,
    /// The route pattern, e.g. `POST Contracts/query`, `GET Contracts/{id}`,
    /// `POST Contracts/{id}/Charges`.
    pub route: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Every request, the simulator's own `/_sim/` ones excepted.
    pub total: u64,
    pub by_method: BTreeMap<String, u64>,
    /// Autotask requests by endpoint (entity name, `ThresholdInformation`, `zoneInformation`).
    pub by_endpoint: BTreeMap<String, u64>,
    /// By route pattern (see [`LoggedRequest::route`]).
    pub by_route: BTreeMap<String, u64>,
    /// Entity writes received (POST/PATCH/PUT/DELETE that are not queries), failed ones too.
    pub writes: u64,
    /// Entity writes that changed the records.
    pub writes_committed: u64,
    /// Requests answered 429, and thread-threshold refusals of any status.
    pub throttled: u64,
    /// The most requests in flight at once, per endpoint.
    pub peak_in_flight: BTreeMap<String, usize>,
}

pub struct Simulator;

/// Every (method, path) the simulator serves for Autotask, spelled as in v1.json
/// (`/V1.0/Contracts/{parentId}/Charges`).
pub fn served_routes() -> Vec<(String, String)> {
    match state::State::new(&Seed::default()) {
        Ok(state) => server::served_routes(&state),
        Err(_) => Vec::new(),
    }
}

impl Simulator {
    /// Listens on `listen` ("127.0.0.1:0" for any free port) and serves until stopped.
    pub fn start(listen: &str, seed: Seed, options: SimOptions) -> Result<SimHandle, SimError> {
        server::start(listen, seed, options)
    }
}

/// A running simulator; stops when dropped.
pub struct SimHandle {
    shared: Arc<server::Shared>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// The tenant base, `http://127.0.0.1:PORT/atservicesrest/`; requests go to `{base}v1.0/…`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `http://127.0.0.1:PORT`
    pub fn root_url(&self) -> String {
        self.shared.root_url.clone()
    }

    /// The zone lookup endpoint, `…/atservicesrest/v1.0/zoneInformation` (add `?user=NAME`).
    pub fn zone_lookup_url(&self) -> String {
        format!("{}v1.0/zoneInformation", self.shared.base_url)
    }

    /// The Cloudmore API base, `http://127.0.0.1:PORT/cloudmore`.
    pub fn cloudmore_base_url(&self) -> String {
        format!("{}/cloudmore", self.shared.root_url)
    }

    pub fn credentials(&self) -> Credentials {
        self.shared.seed.credentials.clone()
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.control().log.clone()
    }

    pub fn counters(&self) -> Counters {
        self.shared.control().counters.clone()
    }

    /// Every entity's records (ContractServiceUnits derived, ContractServiceAdjustments too).
    pub fn state_json(&self) -> Value {
        self.shared.state().snapshot()
    }

    /// One entity's records as the API would return them, ordered by id.
    pub fn records(&self, entity: &str) -> Vec<Value> {
        self.shared.state().rows(entity)
    }

    /// Marks a charge billed, as invoicing would. False if there is no such charge.
    pub fn set_billed(&self, charge_id: i64) -> bool {
        self.shared.state().set_billed(charge_id)
    }

    /// Back to the seed: records, log, counters and faults.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops serving (closing every connection) and waits for the threads; also done on drop.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
