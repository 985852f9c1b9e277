//! Locks that survive a panicked holder: one place for the poisoned-lock recovery.
//!
//! What cmat guards with a lock is records, counters and queues that are never left half-updated
//! by a panic (each update is one assignment or insert), so a poisoned lock's data is still good
//! and a panic in one worker must not turn into a second panic in every other one.

use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// `mutex.lock()`, recovering the guard of a poisoned lock.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `lock.read()`, recovering the guard of a poisoned lock.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `lock.write()`, recovering the guard of a poisoned lock.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `mutex.into_inner()` once the threads are done, recovering a poisoned lock's value.
pub(crate) fn into_inner<T>(mutex: Mutex<T>) -> T {
    mutex.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `condvar.wait(guard)`, recovering the guard of a poisoned lock.
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `condvar.wait_timeout(guard, timeout)` without its timed-out flag, recovering the guard of
/// a poisoned lock.
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    condvar
        .wait_timeout(guard, timeout)
        .map(|(guard, _)| guard)
        .unwrap_or_else(|poisoned| poisoned.into_inner().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let mutex = Mutex::new(7);
        let rw = RwLock::new(8);
        let _ = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _held = mutex.lock();
                    let _written = rw.write();
                    panic!("poison both");
                })
                .join()
        });
        assert!(mutex.is_poisoned() && rw.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*lock(&mutex), 8);
        *write(&rw) += 1;
        assert_eq!(*read(&rw), 9);
        assert_eq!(*wait_timeout(&Condvar::new(), lock(&mutex), Duration::from_millis(1)), 8);
        assert_eq!(into_inner(mutex), 8);
    }
}
