//! Autotask's thread threshold on the client side: at most N requests in flight per endpoint,
//! and a slot counted as taken a little after its answer has arrived.
//!
//! Why the delay: Autotask frees a request's slot a little after it answers (API-NOTES, "Shapes
//! seen on live tenants"), so a client that sends its next request the instant an answer lands,
//! while holding the other two slots, is refused now and then ("API thread threshold of 3
//! threads has been exceeded"). A refusal costs a backoff of a second or more; waiting a little
//! before reusing a slot costs that much only when all slots of the endpoint are busy. The slot
//! model mirrors the server's, so a delay at least as long as the server's never provokes a
//! refusal.
//!
//! How long Autotask keeps a slot is not published, so the delay adapts: it starts at
//! [`ClientOptions::slot_release_delay`](super::ClientOptions::slot_release_delay) and grows
//! [`ClientOptions::slot_release_growth`](super::ClientOptions::slot_release_growth) times
//! (by at least [`MIN_STEP`], up to
//! [`ClientOptions::slot_release_delay_max`](super::ClientOptions::slot_release_delay_max))
//! with each thread-threshold refusal of a request sent under the current delay; refusals of
//! requests sent before the last widening do not count again, so a burst of them widens it
//! once. A tenant that frees its slots late costs a few refusals per run, then none; one that
//! frees them at once costs only the starting delay. It never narrows within a run.
//!
//! A tenant's lag does not change from one day to the next, so the delay a run learned is kept
//! in the workspace ([`PacingMemory`], `.cmat/autotask-pacing.json`) and the next run starts
//! there: the refusals that taught it are paid once, not every day. A memory older than
//! [`MEMORY_DAYS`] is ignored (the tenant may have moved), and an unreadable one is only a
//! warning: it is a hint, never a reason to stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::locks::{self, lock};

/// How long a learned delay is trusted: older than this, a run starts from the default again.
pub const MEMORY_DAYS: i64 = 30;

/// The smallest widening of the delay after a refusal.
pub const MIN_STEP: Duration = Duration::from_millis(10);

/// Counting semaphore per endpoint whose permits free a delay after they are dropped.
#[derive(Default)]
pub(super) struct Limiter {
    slots: Mutex<HashMap<String, Slots>>,
    released: Condvar,
    peak: AtomicU64,
    pacing: Mutex<Pacing>,
}

#[derive(Default)]
struct Pacing {
    delay: Duration,
    max: Duration,
    /// When the delay was last widened: refusals of requests sent before do not widen it again.
    widened_at: Option<Instant>,
    /// How many times longer the delay gets with a refusal.
    growth: u32,
    memory: Option<PacingMemory>,
}

/// The file keeping the delay a tenant needed, between runs.
#[derive(Debug, Clone)]
pub struct PacingMemory {
    pub path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Remembered {
    slot_release_delay_ms: u64,
    learned_at: DateTime<Utc>,
}

impl PacingMemory {
    /// The delay remembered, if the file holds one learned less than [`MEMORY_DAYS`] ago.
    fn recall(&self, now: DateTime<Utc>) -> Option<Duration> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => {
                tracing::warn!(
                    "{}: cannot read the learned pacing ({err}); ignored",
                    self.path.display()
                );
                return None;
            }
        };
        match serde_json::from_str::<Remembered>(&text) {
            Ok(r) if now.signed_duration_since(r.learned_at).num_days() < MEMORY_DAYS => {
                Some(Duration::from_millis(r.slot_release_delay_ms))
            }
            Ok(_) => None,
            Err(err) => {
                tracing::warn!("{}: not a learned pacing ({err}); ignored", self.path.display());
                None
            }
        }
    }

    /// Keeps `delay` (written whole, then renamed: a crash leaves the old file or the new one).
    fn remember(&self, delay: Duration, now: DateTime<Utc>) {
        if self.path.parent().is_some_and(|dir| !dir.is_dir()) {
            return; // No workspace state yet (`doctor` before the first pull): nothing to keep.
        }
        let remembered = Remembered {
            slot_release_delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            learned_at: now,
        };
        let written = serde_json::to_vec_pretty(&remembered)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::workspace::write_atomically(&self.path, &bytes));
        if let Err(err) = written {
            tracing::warn!("{}: cannot keep the learned pacing ({err})", self.path.display());
        }
    }
}

#[derive(Default)]
struct Slots {
    in_flight: usize,
    /// Answered requests whose slot is not free yet: when each frees.
    releasing: Vec<Instant>,
}

impl Slots {
    /// Slots taken now (in flight, or answered less than the delay ago).
    fn taken(&mut self, now: Instant) -> usize {
        self.releasing.retain(|frees_at| *frees_at > now);
        self.in_flight + self.releasing.len()
    }
}

pub(super) struct Permit<'a> {
    limiter: &'a Limiter,
    key: String,
}

impl Limiter {
    /// Starts at `release_delay`, or at the delay `memory` kept if it is longer (never past
    /// `max`); each refusal makes it `growth` times longer.
    pub(super) fn new(
        release_delay: Duration,
        max: Duration,
        growth: u32,
        memory: Option<PacingMemory>,
    ) -> Self {
        let max = max.max(release_delay);
        let recalled = memory.as_ref().and_then(|m| m.recall(Utc::now()));
        let delay = recalled.map_or(release_delay, |r| r.clamp(release_delay, max));
        let pacing = Pacing { delay, max, widened_at: None, growth: growth.max(1), memory };
        Limiter { pacing: Mutex::new(pacing), ..Limiter::default() }
    }

    /// How long an answered slot stays taken now.
    pub(super) fn release_delay(&self) -> Duration {
        lock(&self.pacing).delay
    }

    /// A request sent at `sent_at` was refused for the thread threshold: widens the delay,
    /// unless the request went out before the last widening (it says nothing of the new delay).
    pub(super) fn refused(&self, sent_at: Instant) {
        let mut pacing = lock(&self.pacing);
        if pacing.widened_at.is_some_and(|widened_at| sent_at < widened_at) {
            return;
        }
        let old = pacing.delay;
        pacing.delay = old.saturating_mul(pacing.growth).max(old + MIN_STEP).min(pacing.max);
        pacing.widened_at = Some(Instant::now());
        if let Some(memory) = &pacing.memory {
            memory.remember(pacing.delay, Utc::now());
        }
        // Slots answered under the old delay take the new one too: every request sent from now
        // on meets only the new delay, so its refusal, if any, does say the delay is too short.
        let longer = pacing.delay.saturating_sub(old);
        drop(pacing);
        for slots in lock(&self.slots).values_mut() {
            for frees_at in &mut slots.releasing {
                *frees_at += longer;
            }
        }
    }

    /// Waits for a free slot on `key` (at most `max` taken at once) and takes it.
    pub(super) fn acquire(&self, key: &str, max: usize) -> Permit<'_> {
        let max = max.max(1);
        let mut map = lock(&self.slots);
        loop {
            let now = Instant::now();
            let slots = map.entry(key.to_string()).or_default();
            if slots.taken(now) < max {
                slots.in_flight += 1;
                self.peak.fetch_max(slots.in_flight as u64, Ordering::SeqCst);
                return Permit { limiter: self, key: key.to_string() };
            }
            // Wake when an answer lands, or when the first answered slot frees.
            map = match slots.releasing.iter().min().copied() {
                Some(frees_at) => {
                    let wait = frees_at.saturating_duration_since(now);
                    locks::wait_timeout(&self.released, map, wait)
                }
                None => locks::wait(&self.released, map),
            };
        }
    }

    /// The most requests in flight at once on one endpoint.
    pub(super) fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let delay = self.limiter.release_delay();
        let mut map = lock(&self.limiter.slots);
        if let Some(slots) = map.get_mut(&self.key) {
            slots.in_flight = slots.in_flight.saturating_sub(1);
            if !delay.is_zero() {
                slots.releasing.push(Instant::now() + delay);
            }
        }
        drop(map);
        self.limiter.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answered_slot_stays_taken_for_the_delay() {
        let limiter = Limiter::new(Duration::from_secs(3600), Duration::from_secs(3600), 2, None);
        let mut slots = Slots::default();
        let now = Instant::now();
        assert_eq!(slots.taken(now), 0);
        drop(limiter.acquire("contracts", 3));
        // Freed an hour from now: still counted, on its endpoint only.
        let mut map = lock(&limiter.slots);
        assert_eq!(map.get_mut("contracts").map(|s| s.taken(Instant::now())), Some(1));
        assert!(map.get_mut("companies").is_none());
        slots.releasing.push(now);
        assert_eq!(slots.taken(now), 0, "a slot whose time has come is free");
    }

    #[test]
    fn a_refusal_widens_the_delay_once_per_burst_up_to_the_cap() {
        let ms = Duration::from_millis;
        let limiter = Limiter::new(ms(20), ms(100), 2, None);
        let before = Instant::now();
        limiter.refused(before);
        assert_eq!(limiter.release_delay(), ms(40));
        // A request sent before that widening, refused after it: no further widening.
        limiter.refused(before);
        assert_eq!(limiter.release_delay(), ms(40));
        limiter.refused(Instant::now());
        assert_eq!(limiter.release_delay(), ms(80));
        limiter.refused(Instant::now());
        assert_eq!(limiter.release_delay(), ms(100), "capped");
        let tripling = Limiter::new(ms(10), ms(100), 3, None);
        tripling.refused(Instant::now());
        assert_eq!(tripling.release_delay(), ms(30));
        let from_zero = Limiter::new(Duration::ZERO, ms(100), 2, None);
        from_zero.refused(Instant::now());
        assert_eq!(from_zero.release_delay(), MIN_STEP);
    }

    #[test]
    fn without_a_delay_a_slot_frees_with_its_answer() {
        let limiter = Limiter::new(Duration::ZERO, Duration::ZERO, 2, None);
        for _ in 0..10 {
            let _a = limiter.acquire("contracts", 3);
            let _b = limiter.acquire("contracts", 3);
            let _c = limiter.acquire("contracts", 3);
        }
        assert_eq!(limiter.peak(), 3);
        assert_eq!(
            lock(&limiter.slots).get_mut("contracts").map(|s| s.taken(Instant::now())),
            Some(0)
        );
    }

    #[test]
    fn a_learned_delay_is_the_next_runs_start_until_it_is_old() {
        let ms = Duration::from_millis;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let memory = PacingMemory { path: dir.path().join("autotask-pacing.json") };
        // Nothing kept yet: the configured start.
        assert_eq!(Limiter::new(ms(10), ms(250), 2, Some(memory.clone())).release_delay(), ms(10));
        let first = Limiter::new(ms(10), ms(250), 2, Some(memory.clone()));
        first.refused(Instant::now());
        assert_eq!(first.release_delay(), ms(20));
        // The next run starts where this one ended, within its own bounds.
        assert_eq!(Limiter::new(ms(10), ms(250), 2, Some(memory.clone())).release_delay(), ms(20));
        assert_eq!(Limiter::new(ms(30), ms(250), 2, Some(memory.clone())).release_delay(), ms(30));
        assert_eq!(Limiter::new(ms(5), ms(15), 2, Some(memory.clone())).release_delay(), ms(15));
        // Learned too long ago: forgotten.
        let now = Utc::now();
        assert_eq!(memory.recall(now), Some(ms(20)));
        assert_eq!(memory.recall(now + chrono::Duration::days(MEMORY_DAYS)), None);
    }

    #[test]
    fn a_damaged_or_unwritable_memory_is_only_a_hint() {
        let ms = Duration::from_millis;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("autotask-pacing.json");
        std::fs::write(&path, "{ not json").expect("written");
        let memory = PacingMemory { path: path.clone() };
        assert_eq!(Limiter::new(ms(10), ms(250), 2, Some(memory)).release_delay(), ms(10));
        // A workspace without its state folder yet: nothing written, no error.
        let nowhere =
            PacingMemory { path: dir.path().join("missing").join("autotask-pacing.json") };
        let limiter = Limiter::new(ms(10), ms(250), 2, Some(nowhere.clone()));
        limiter.refused(Instant::now());
        assert_eq!(limiter.release_delay(), ms(20));
        assert!(!nowhere.path.exists());
    }
}
