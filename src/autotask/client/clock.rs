//! The client's waits (back-off between attempts, the hourly budget's slowdown) go through a
//! [`Clock`], so tests check how long cmat would wait without waiting.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub trait Clock: Send + Sync + fmt::Debug {
    fn sleep(&self, wait: Duration);
}

/// The real thing: the thread sleeps.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn sleep(&self, wait: Duration) {
        std::thread::sleep(wait);
    }
}

/// For tests: remembers each wait and returns at once.
#[derive(Debug, Default)]
pub struct RecordingClock {
    waits: Mutex<Vec<Duration>>,
}

impl RecordingClock {
    pub fn new() -> Arc<Self> {
        Arc::new(RecordingClock::default())
    }

    /// The waits asked for so far, in order.
    pub fn waits(&self) -> Vec<Duration> {
        crate::locks::lock(&self.waits).clone()
    }
}

impl Clock for RecordingClock {
    fn sleep(&self, wait: Duration) {
        crate::locks::lock(&self.waits).push(wait);
    }
}
