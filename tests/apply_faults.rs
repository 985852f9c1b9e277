//! `cmat apply` under faults, through the real binary against the in-process simulator: a
//! failure at any write, a 429 burst, latency, a killed process, a lost state database. Each
//! ends, after reruns, in exactly the Autotask state of an undisturbed run, with nothing
//! duplicated, a plan with no change, and one more apply that sends no write.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cmat::sim::{Fault, SimOptions, WriteFailure};
use common::{AutotaskState, SimWorkspace};

const OCTOBER: &str = "bill-2026-10-01.csv";
const NOVEMBER: &str = "bill-2026-11-01.csv";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bill {
    /// The October bill onto an empty tenant: services, contracts, first adjustments, charges.
    October,
    /// The November bill onto a converged October: relative unit adjustments, price updates.
    November,
}

/// A fresh simulator and workspace, brought to the moment just before the apply under test.
fn prepare(bill: Bill, options: SimOptions) -> SimWorkspace {
    let sw = SimWorkspace::start_with(options);
    sw.import(OCTOBER);
    sw.pull();
    if bill == Bill::November {
        let run = sw.apply();
        assert_eq!(run.status, 0, "October apply: {}", run.stderr);
        sw.import(NOVEMBER);
    }
    sw
}

/// What an undisturbed apply does.
struct Baseline {
    state: AutotaskState,
    /// Writes the apply sends (the plan's changes).
    writes: u64,
    committed: u64,
}

fn baseline(bill: Bill) -> Baseline {
    let sw = prepare(bill, SimOptions::default());
    let before = sw.sim.counters();
    let run = sw.apply();
    assert_eq!(run.status, 0, "undisturbed {bill:?} apply: {}", run.stderr);
    let after = sw.sim.counters();
    let state = sw.state();
    state.assert_no_duplicates(&format!("undisturbed {bill:?}"));
    assert_converged(&sw, &format!("undisturbed {bill:?}"));
    let writes = after.writes - before.writes;
    assert!(writes > 0, "the {bill:?} apply writes something");
    assert!(!state.contracts.is_empty() && !state.charges.is_empty());
    assert_eq!(
        after.writes_committed - before.writes_committed,
        writes,
        "every write of an undisturbed run lands"
    );
    Baseline {
        state,
        writes,
        committed: writes,
    }
}

/// `plan --detailed-exitcode` exits 0, and one more apply sends no write.
fn assert_converged(sw: &SimWorkspace, scenario: &str) {
    let plan = sw.plan_detailed();
    assert_eq!(
        plan.status, 0,
        "{scenario}: a plan after convergence still has changes:\n{}\n{}",
        plan.stdout, plan.stderr
    );
    let writes = sw.writes();
    let again = sw.apply();
    assert_eq!(again.status, 0, "{scenario}: apply again: {}", again.stderr);
    assert_eq!(
        sw.writes(),
        writes,
        "{scenario}: an apply after convergence sent writes:\n{}",
        again.stdout
    );
}

/// Reruns apply (at most 3 times) until it exits 0, then checks the state against the
/// undisturbed run's. `committed_before` is the simulator's committed writes before the
/// disturbed apply.
fn rerun_until_converged(
    sw: &SimWorkspace,
    scenario: &str,
    baseline: &Baseline,
    committed_before: u64,
) {
    let mut reruns = 0;
    loop {
        let run = sw.apply();
        if run.status == 0 {
            break;
        }
        assert_eq!(
            run.status, 1,
            "{scenario}: rerun exit code: {}\n{}",
            run.stdout, run.stderr
        );
        reruns += 1;
        assert!(
            reruns < 3,
            "{scenario}: still failing after 3 reruns:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    let state = sw.state();
    state.assert_no_duplicates(scenario);
    assert_eq!(
        state, baseline.state,
        "{scenario}: the Autotask state differs from an undisturbed run's"
    );
    assert_eq!(
        sw.sim.counters().writes_committed - committed_before,
        baseline.committed,
        "{scenario}: more writes landed than an undisturbed run makes"
    );
    assert_converged(sw, scenario);
}

/// A fault at write `nth` (1-based) of the apply, then reruns.
fn fault_scenario(bill: Bill, nth: u32, mode: WriteFailure, baseline: &Baseline) {
    let scenario = format!(
        "{bill:?} apply, write {nth} of {}: {mode:?}",
        baseline.writes
    );
    let sw = prepare(bill, SimOptions::default());
    let committed_before = sw.sim.counters().writes_committed;
    sw.sim.inject(Fault::FailWrite { nth, mode });
    let first = sw.apply();
    let expected = match mode {
        // 429 means Autotask did not run it: the client retries it, and the run succeeds.
        WriteFailure::TooMany429 => 0,
        // A refused or unanswered write is reported, and the run fails.
        WriteFailure::Error500 | WriteFailure::CommitThenDrop => 1,
    };
    assert_eq!(
        first.status, expected,
        "{scenario}: exit code of the disturbed apply:\n{}\n{}",
        first.stdout, first.stderr
    );
    if mode == WriteFailure::TooMany429 {
        assert_eq!(
            sw.sim.counters().throttled,
            1,
            "{scenario}: the injected 429 was sent"
        );
    }
    if mode == WriteFailure::CommitThenDrop {
        assert!(
            first.stderr.contains("outcome unknown"),
            "{scenario}: the dropped write is reported as of unknown outcome:\n{}",
            first.stderr
        );
    }
    rerun_until_converged(&sw, &scenario, baseline, committed_before);
}

/// Runs `scenarios` on a few threads (they mostly wait on processes and backoff sleeps) and
/// reports every failing one by name.
fn run_all<T: Sync>(scenarios: &[T], name: impl Fn(&T) -> String + Sync, run: impl Fn(&T) + Sync) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(scenario) = scenarios.get(index) else {
                    return;
                };
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(scenario)));
                if let Err(panic) = outcome {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("── {}\n{message}", name(scenario)));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} scenario(s) failed:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
}

const MODES: [WriteFailure; 3] = [
    WriteFailure::Error500,
    WriteFailure::CommitThenDrop,
    WriteFailure::TooMany429,
];

/// Every write position of the plan × every failure mode.
fn fault_matrix(bill: Bill) {
    let baseline = baseline(bill);
    let scenarios: Vec<(u32, WriteFailure)> = (1..=baseline.writes as u32)
        .flat_map(|nth| MODES.iter().map(move |mode| (nth, *mode)))
        .collect();
    run_all(
        &scenarios,
        |(nth, mode)| format!("{bill:?} write {nth} {mode:?}"),
        |(nth, mode)| fault_scenario(bill, *nth, *mode, &baseline),
    );
}

#[test]
fn october_onboarding_converges_after_a_fault_at_any_write() {
    fault_matrix(Bill::October);
}

#[test]
fn november_adjustments_converge_after_a_fault_at_any_write() {
    fault_matrix(Bill::November);
}
