//! Fault injection (cargo feature `faults`, off by default; tests and benchmarks turn it on): failed
//! writes, bursts of 429s and thread-threshold refusals, extra latency, an hour used up by
//! other integrations. In Rust with [`SimHandle::inject`](crate::SimHandle::inject), over HTTP
//! with `POST /_sim/faults`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::server::{err, errors, execute, Control, Incoming, Outcome, Shared, Target};

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
    /// The write is committed and answered 200 `{"itemId": null}`: done, but not confirmed.
    CommitNullItemId,
}

/// A fault to inject, in Rust or as JSON on `POST /_sim/faults`
/// (`{"kind":"fail_write","nth":2,"mode":"commit_then_drop"}`, `{"kind":"burst429","count":3}`,
/// `{"kind":"thread_threshold_burst","count":3}`,
/// `{"kind":"latency","ms":200}`, `{"kind":"use_threshold","count":9990}`,
/// `{"kind":"hourly_lockout","seconds":600,"retry_after":true}`, `{"kind":"clear"}`).
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
    /// After `after` more API requests, the tenant goes over its hourly threshold for
    /// `seconds` (other integrations' burst that `ThresholdInformation` has not shown yet):
    /// every API request but the threshold read is refused as a lockout, with `Retry-After`
    /// when `retry_after` is true.
    HourlyLockout {
        seconds: u64,
        retry_after: bool,
        #[serde(default)]
        after: u64,
    },
    /// Removes pending faults and injected latency.
    Clear,
}

/// The faults pending, part of the simulator's control state.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Writes to fail: (the write's number in `Counters::writes`, how).
    write_faults: Vec<(u64, WriteFailure)>,
    burst_429: u32,
    /// Thread-threshold refusals still to send with the seed's refusal status.
    burst_refusals: u32,
    /// Added to every API request.
    pub latency: Duration,
    /// An injected lockout: requests still admitted before it, its length, whether it says
    /// so in `Retry-After`, and once begun, until when.
    lockout: Option<Lockout>,
}

#[derive(Debug, Clone, Copy)]
struct Lockout {
    admitted_before: u64,
    length: Duration,
    retry_after: bool,
    until: Option<Instant>,
}

impl Faults {
    /// The status of a thread-threshold refusal due now from a burst, if any (429 bursts
    /// first, then those with the seed's refusal status).
    pub fn burst_refusal(&mut self, refusal_status: u16) -> Option<u16> {
        if self.burst_429 > 0 {
            self.burst_429 -= 1;
            return Some(429);
        }
        if self.burst_refusals > 0 {
            self.burst_refusals -= 1;
            return Some(refusal_status);
        }
        None
    }

    /// `Some(Retry-After)` while an injected lockout lasts (counting this request toward its
    /// start).
    pub fn lockout(&mut self, now: Instant) -> Option<Option<u64>> {
        let lockout = self.lockout.as_mut()?;
        if lockout.admitted_before > 0 {
            lockout.admitted_before -= 1;
            return None;
        }
        let until = *lockout.until.get_or_insert(now + lockout.length);
        if now >= until {
            self.lockout = None;
            return None;
        }
        let says = lockout.retry_after;
        Some(says.then(|| until.duration_since(now).as_secs().max(1)))
    }

    /// The failure injected for write number `write` (counted in `Counters::writes`).
    pub fn write_failure(&mut self, write: u64) -> Option<WriteFailure> {
        let pos = self.write_faults.iter().position(|(nth, _)| *nth == write)?;
        Some(self.write_faults.remove(pos).1)
    }
}

impl Control {
    pub(crate) fn inject(&mut self, fault: Fault) {
        let f = &mut self.faults;
        match fault {
            Fault::FailWrite { nth, mode } => {
                let target = self.counters.writes + u64::from(nth.max(1));
                f.write_faults.push((target, mode));
            }
            Fault::Burst429 { count } => f.burst_429 += count,
            Fault::ThreadThresholdBurst { count } => f.burst_refusals += count,
            Fault::Latency { ms } => f.latency = Duration::from_millis(ms),
            Fault::UseThreshold { count } => self.use_hour(Instant::now(), count),
            Fault::HourlyLockout { seconds, retry_after, after } => {
                f.lockout = Some(Lockout {
                    admitted_before: after,
                    length: Duration::from_secs(seconds),
                    retry_after,
                    until: None,
                });
            }
            Fault::Clear => self.faults = Faults::default(),
        }
    }
}

impl Shared {
    pub(crate) fn inject(&self, fault: Fault) {
        self.control().inject(fault);
    }
}

/// A write that fails as injected (its concurrency slot still held).
pub(crate) fn fail_write(
    shared: &Shared,
    rq: &Incoming,
    target: &Target,
    failure: WriteFailure,
) -> Outcome {
    match failure {
        WriteFailure::Error500 => err(500, "Simulated failure: the write was not committed."),
        WriteFailure::TooMany429 => shared.thread_threshold_refusal(429),
        WriteFailure::ThreadThreshold => {
            shared.thread_threshold_refusal(shared.seed.throttling.refusal_status)
        }
        WriteFailure::CommitNullItemId => match execute(shared, rq, target) {
            Outcome::Json(200, _) => {
                shared.control().counters.writes_committed += 1;
                Outcome::Json(200, json!({"itemId": null}))
            }
            other => other,
        },
        WriteFailure::CommitThenDrop => {
            if let Outcome::Json(200, _) = execute(shared, rq, target) {
                shared.control().counters.writes_committed += 1;
            }
            Outcome::Drop
        }
    }
}

/// `POST /_sim/faults` with a fault or a list of them.
pub(crate) fn faults_route(shared: &Shared, rq: &Incoming) -> Outcome {
    let body = match rq.json() {
        Ok(v) => v,
        Err(e) => return errors(e),
    };
    let items = match body {
        Value::Array(items) => items,
        other => vec![other],
    };
    let mut faults = Vec::new();
    for item in items {
        match serde_json::from_value::<Fault>(item) {
            Ok(f) => faults.push(f),
            Err(e) => return err(400, format!("not a fault: {e}")),
        }
    }
    let mut c = shared.control();
    for f in faults {
        c.inject(f);
    }
    Outcome::Json(200, json!({"ok": true}))
}
