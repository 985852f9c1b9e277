//! `cmat-sim`: a local, faithful simulator of the Autotask REST API (and the few Cloudmore
//! endpoints cmat reads), for tests and `cmat demo`.
//!
//! ```no_run
//! use cmat_sim::{Seed, SimOptions, Simulator};
//! let sim = Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default()).unwrap();
//! println!("{}", sim.base_url()); // http://127.0.0.1:PORT/atservicesrest/
//! ```
//!
//! The server is hyper on a tokio runtime of its own (its own threads), so blocking callers
//! work unchanged. Fault injection ([`Fault`], [`WriteFailure`], [`SimHandle::inject`],
//! `POST /_sim/faults`) is the cargo feature `faults`, off by default (so no build of what
//! ships can unify it in); the test kit and cmat's dev-dependencies turn it on.
//!
//! Every rule of `API-NOTES.md` holds here: authentication headers, zone lookup, the hourly
//! threshold, 3 concurrent requests per integration code and endpoint, query filters and paging,
//! field metadata, validation errors as HTTP 500 `{"errors":[…]}`, the child-entity paths, and
//! ContractServiceUnits derived from ContractServiceAdjustments.

// Lints that keep the code as issue 26 left it: no `unwrap`/`expect` outside tests (a clear
// typed error instead), no shipped function over 50 lines of code (clippy.toml). CI denies warnings.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

mod cloudmore;
#[cfg(feature = "faults")]
mod faults;
pub mod query;
pub mod schema;
pub mod seed;
mod server;
pub mod state;
mod transport;

#[cfg(feature = "faults")]
pub use faults::{Fault, WriteFailure};
pub use seed::{CloudmoreSeed, Credentials, RefusalBody, Seed, Throttling};

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
    /// Connections served at once (more wait in the listen backlog). The server's runtime has
    /// at most this many threads (and no more than the cores, at most 4).
    pub workers: usize,
    /// In-flight requests allowed per integration code and endpoint.
    pub max_concurrent_per_endpoint: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions { latency: Duration::ZERO, workers: 64, max_concurrent_per_endpoint: 3 }
    }
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
    server: transport::Server,
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

    /// Injects a fault (feature `faults`):
    ///
    /// ```no_run
    /// # use cmat_sim::{Fault, Seed, SimOptions, Simulator, WriteFailure};
    /// let sim = Simulator::start("127.0.0.1:0", Seed::bundled(), SimOptions::default()).unwrap();
    /// sim.inject(Fault::FailWrite { nth: 1, mode: WriteFailure::CommitThenDrop });
    /// ```
    #[cfg(feature = "faults")]
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

    /// Makes a nullable field of a record null, as a live tenant may hold it (Datto's metadata
    /// marks `ContractCharges.unitPrice` and the like nullable). False if there is no such
    /// record, or the field is unknown or required.
    pub fn blank_field(&self, entity: &str, id: i64, field: &str) -> bool {
        self.shared.state().blank_field(entity, id, field)
    }

    /// Back to the seed: records, log, counters and faults.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops serving (closing every connection once its request, if any, is answered) and
    /// waits for the server's thread; also done on drop.
    pub fn stop(&mut self) {
        self.server.stop();
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
