//! Autotask's thread threshold on the client side: at most N requests in flight per endpoint,
//! and a slot counted as taken a little after its answer has arrived.
//!
//! Why the delay: Autotask frees a request's slot a little after it answers (API-NOTES, "Shapes
//! seen on live tenants"), so a client that sends its next request the instant an answer lands,
//! while holding the other two slots, is refused now and then ("API thread threshold of 3
//! threads has been exceeded"). A refusal costs a backoff of a second or more; waiting
//! [`ClientOptions::slot_release_delay`](super::ClientOptions::slot_release_delay) before
//! reusing a slot costs that much only when all slots of the endpoint are busy. The slot model
//! mirrors the server's, so a delay at least as long as the server's never provokes a refusal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Counting semaphore per endpoint whose permits free `release_delay` after they are dropped.
#[derive(Default)]
pub(super) struct Limiter {
    slots: Mutex<HashMap<String, Slots>>,
    released: Condvar,
    peak: AtomicU64,
    release_delay: Duration,
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
    pub(super) fn new(release_delay: Duration) -> Self {
        Limiter { release_delay, ..Limiter::default() }
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
                    self.released
                        .wait_timeout(map, wait)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|poisoned| poisoned.into_inner().0)
                }
                None => self.released.wait(map).unwrap_or_else(|poisoned| poisoned.into_inner()),
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
        let delay = self.limiter.release_delay;
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answered_slot_stays_taken_for_the_delay() {
        let limiter = Limiter::new(Duration::from_secs(3600));
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
    fn without_a_delay_a_slot_frees_with_its_answer() {
        let limiter = Limiter::new(Duration::ZERO);
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
}
