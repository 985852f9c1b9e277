//! The parallel query runner: reads side by side on a few threads, results in the order asked.
//!
//! The client keeps each endpoint within Autotask's three requests in flight whatever the
//! number of threads here, so this only decides how many reads wait in line at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::locks;

/// Runs `read` on each of `items` by at most `workers` threads. Returns the results in the
/// order of `items`, or the failure of the earliest item that failed (stable across runs
/// whatever the threads' timing); once one fails, no further item is started.
pub(crate) fn run_in_order<I, T, E, F>(items: &[I], workers: usize, read: F) -> Result<Vec<T>, E>
where
    I: Sync,
    T: Send,
    E: Send,
    F: Fn(&I) -> Result<T, E> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Result<T, E>)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(index) else {
                    return;
                };
                let result = read(item);
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                locks::lock(&results).push((index, result));
            });
        }
    });
    let mut results = locks::into_inner(results);
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_order_asked() {
        let items: Vec<u32> = (0..50).collect();
        let doubled = run_in_order(&items, 4, |n| Ok::<_, ()>(n * 2)).unwrap();
        assert_eq!(doubled, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(run_in_order(&[] as &[u32], 4, |n| Ok::<_, ()>(*n)), Ok(vec![]));
    }

    #[test]
    fn the_earliest_failure_wins_and_stops_the_rest() {
        let started = AtomicUsize::new(0);
        let items: Vec<u32> = (0..1000).collect();
        let result = run_in_order(&items, 1, |n| {
            started.fetch_add(1, Ordering::SeqCst);
            if *n >= 3 {
                Err(*n)
            } else {
                Ok(*n)
            }
        });
        assert_eq!(result, Err(3));
        assert_eq!(started.load(Ordering::SeqCst), 4);
        // With many threads, whichever fails first, the earliest failing item is reported.
        let result = run_in_order(&items, 8, |n| if n % 7 == 5 { Err(*n) } else { Ok(*n) });
        assert_eq!(result, Err(5));
    }
}
