//! `cmat apply` under faults, through the real binary against the in-process simulator: a
//! failure at any write, a 429 burst, latency, a killed process, a lost state database. Each
//! ends, after reruns, in exactly the Autotask state of an undisturbed run, with nothing
//! duplicated, a plan with no change, and one more apply that sends no write.

use crate::harness;

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::harness::{AutotaskState, SimWorkspace};
use cmat_sim::{Fault, Seed, SimOptions, Throttling, WriteFailure};

const OCTOBER: &str = "bill-2026-10-01.csv";
const NOVEMBER: &str = "bill-2026-11-01.csv";
const RESTATED: &str = "bill-2026-11-01-restated.csv";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bill {
    /// The October bill onto an empty tenant: services, contracts, first adjustments, charges.
    October,
    /// The November bill onto a converged October: relative unit adjustments, price updates.
    November,
    /// November's charges invoiced, then the November bill restated: a correcting charge.
    Restated,
    /// The November bill restated with other licence counts: a second adjustment on the
    /// same day, which Autotask refuses, so it goes on the next day.
    RestatedLicences,
}

const RESTATED_LICENCES: &str = "bill-2026-11-01-restated-licences.csv";

/// The November bill with two licence counts changed (28 → 30 and 37 → 35).
fn restated_licences() -> String {
    let november = std::fs::read_to_string(harness::fixture(NOVEMBER)).expect("read fixture");
    let restated = november
        .replace(
            "CFQ7TTC0LCHC,28,18.5400,20.6000,519.1200,576.8000,57.6800",
            "CFQ7TTC0LCHC,30,18.5400,20.6000,556.2000,618.0000,61.8000",
        )
        .replace(
            "CFQ7TTC0LDPB,37,11.1000,12.3000,410.7000,455.1000,44.4000",
            "CFQ7TTC0LDPB,35,11.1000,12.3000,388.5000,430.5000,42.0000",
        );
    assert_eq!(restated.lines().zip(november.lines()).filter(|(a, b)| a != b).count(), 2);
    restated
}

/// The bills a scenario has imported, in order.
fn bills_of(bill: Bill) -> &'static [&'static str] {
    match bill {
        Bill::October => &[OCTOBER],
        Bill::November => &[OCTOBER, NOVEMBER],
        Bill::Restated => &[OCTOBER, NOVEMBER, RESTATED],
        Bill::RestatedLicences => &[OCTOBER, NOVEMBER, RESTATED_LICENCES],
    }
}

/// A fresh simulator and workspace, brought to the moment just before the apply under test.
fn prepare(bill: Bill, options: SimOptions) -> SimWorkspace {
    let sw = SimWorkspace::start_with(options);
    sw.import(OCTOBER);
    sw.pull();
    if bill == Bill::October {
        return sw;
    }
    let run = sw.apply();
    assert_eq!(run.status, 0, "October apply: {}", run.stderr);
    sw.import(NOVEMBER);
    if bill == Bill::November {
        return sw;
    }
    let run = sw.apply();
    assert_eq!(run.status, 0, "November apply: {}", run.stderr);
    if bill == Bill::RestatedLicences {
        sw.ws.write(RESTATED_LICENCES, &restated_licences());
        sw.ok(&["import", RESTATED_LICENCES]);
        return sw;
    }
    for charge in sw.sim.records("ContractCharges") {
        let id = charge["id"].as_i64().expect("charge id");
        assert!(sw.sim.set_billed(id));
    }
    sw.import(RESTATED);
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
        state.charges.values().filter(|c| !c.is_billed).count(),
        match bill {
            Bill::October => 2,
            Bill::November | Bill::RestatedLicences => 4,
            Bill::Restated => 1,
        },
        "{bill:?}: unbilled charges: {:#?}",
        state.charges
    );
    let committed = after.writes_committed - before.writes_committed;
    // Restated licence counts go to the first day no adjustment has taken yet, so even they
    // land at the first try: one write per change.
    assert_eq!(committed, writes, "every write of an undisturbed run lands");
    Baseline { state, writes, committed }
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
        assert_eq!(run.status, 1, "{scenario}: rerun exit code: {}\n{}", run.stdout, run.stderr);
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
    let scenario = format!("{bill:?} apply, write {nth} of {}: {mode:?}", baseline.writes);
    let sw = prepare(bill, SimOptions::default());
    let committed_before = sw.sim.counters().writes_committed;
    sw.sim.inject(Fault::FailWrite { nth, mode });
    let first = sw.apply();
    let expected = match mode {
        // 429 (or a thread-threshold refusal of another status) means Autotask did not run
        // it: the client retries it, and the run succeeds.
        WriteFailure::TooMany429 | WriteFailure::ThreadThreshold => 0,
        // A refused or unanswered write is reported, and the run fails.
        WriteFailure::Error500 | WriteFailure::CommitThenDrop => 1,
        // A create answered without its id landed but is not confirmed: unknown, the run fails.
        WriteFailure::CommitNullItemId => 1,
    };
    assert_eq!(
        first.status, expected,
        "{scenario}: exit code of the disturbed apply:\n{}\n{}",
        first.stdout, first.stderr
    );
    if mode == WriteFailure::TooMany429 {
        assert_eq!(sw.sim.counters().throttled, 1, "{scenario}: the injected 429 was sent");
    }
    if matches!(mode, WriteFailure::CommitThenDrop | WriteFailure::CommitNullItemId) {
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
                    failures.lock().unwrap().push(format!("── {}\n{message}", name(scenario)));
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

const MODES: [WriteFailure; 3] =
    [WriteFailure::Error500, WriteFailure::CommitThenDrop, WriteFailure::TooMany429];

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

#[test]
fn a_restated_bill_converges_after_a_fault_at_any_write() {
    fault_matrix(Bill::Restated);
}

#[test]
fn restated_licence_counts_converge_after_a_fault_at_any_write() {
    let baseline = baseline(Bill::RestatedLicences);
    let moved: Vec<_> = baseline
        .state
        .contract_services
        .iter()
        .filter(|(_, cs)| cs.adjustments.iter().any(|(date, _)| date == "2026-11-02"))
        .map(|((_, sku), cs)| (sku.clone(), cs.adjustments.clone()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    assert_eq!(
        moved,
        vec![
            (
                "CFQ7TTC0LCHC".to_string(),
                vec![
                    ("2026-10-01".to_string(), 25),
                    ("2026-11-01".to_string(), 3),
                    ("2026-11-02".to_string(), 2)
                ]
            ),
            (
                "CFQ7TTC0LDPB".to_string(),
                vec![
                    ("2026-10-01".to_string(), 40),
                    ("2026-11-01".to_string(), -3),
                    ("2026-11-02".to_string(), -2)
                ]
            ),
        ],
        "the restatement's changes go on the next day, once"
    );
    fault_matrix(Bill::RestatedLicences);
}

/// 429s on the first requests of the apply (its re-reads) and on three writes in a row
/// midway: the client backs off and retries them, and one run converges.
#[test]
fn a_429_burst_is_retried_and_converges_in_one_run() {
    let baselines =
        [(Bill::October, baseline(Bill::October)), (Bill::November, baseline(Bill::November))];
    let scenarios: Vec<(usize, bool)> =
        [0, 1].into_iter().flat_map(|b| [(b, false), (b, true)]).collect();
    run_all(
        &scenarios,
        |(b, on_writes)| {
            format!(
                "{:?} 429 burst on {}",
                baselines[*b].0,
                if *on_writes { "writes" } else { "the first requests" }
            )
        },
        |(b, on_writes)| {
            let (bill, baseline) = &baselines[*b];
            let scenario = format!("{bill:?} 429 burst (on writes: {on_writes})");
            let sw = prepare(*bill, SimOptions::default());
            let committed_before = sw.sim.counters().writes_committed;
            let throttled_before = sw.sim.counters().throttled;
            if *on_writes {
                let middle = (baseline.writes as u32).div_ceil(2);
                for nth in middle..middle + 3 {
                    sw.sim.inject(Fault::FailWrite { nth, mode: WriteFailure::TooMany429 });
                }
            } else {
                sw.sim.inject(Fault::Burst429 { count: 3 });
            }
            let run = sw.apply();
            assert_eq!(run.status, 0, "{scenario}: {}\n{}", run.stdout, run.stderr);
            assert_eq!(
                sw.sim.counters().throttled - throttled_before,
                3,
                "{scenario}: the burst was sent"
            );
            rerun_until_converged(&sw, &scenario, baseline, committed_before);
        },
    );
}

/// A tenant as live ones behave (API-NOTES): thread-threshold refusals come as HTTP 500 with
/// the text, and slots free 20 ms after the answer. During the October onboarding apply,
/// refusals of both kinds (429 and 500) hit its first requests (re-reads) and six writes in a
/// row, the first creates among them: one run ends with every write done exactly once, the
/// state of an undisturbed run, and an empty plan.
#[test]
fn a_burst_of_thread_threshold_refusals_of_both_kinds_ends_with_every_write_done_once() {
    let baseline = baseline(Bill::October);
    let seed = Seed {
        throttling: Throttling {
            slot_release_delay: Duration::from_millis(20),
            refusal_status: 500,
            ..Throttling::default()
        },
        ..Seed::bundled()
    };
    let sw = SimWorkspace::start_seeded(seed, SimOptions::default());
    sw.import(OCTOBER);
    sw.pull();
    let before = sw.sim.counters();
    let logged_before = sw.sim.request_log().len();
    sw.sim.inject(Fault::Burst429 { count: 2 });
    sw.sim.inject(Fault::ThreadThresholdBurst { count: 2 });
    for nth in 1..=6 {
        let mode =
            if nth % 2 == 0 { WriteFailure::TooMany429 } else { WriteFailure::ThreadThreshold };
        sw.sim.inject(Fault::FailWrite { nth, mode });
    }
    let run = sw.apply();
    assert_eq!(run.status, 0, "one run succeeds:\n{}\n{}", run.stdout, run.stderr);
    let after = sw.sim.counters();
    assert!(after.throttled - before.throttled >= 10, "the refusals were sent: {after:?}");
    let log = sw.sim.request_log();
    let refused: Vec<u16> = log[logged_before..]
        .iter()
        .filter(|r| r.status == 429 || r.status == 500)
        .map(|r| r.status)
        .collect();
    assert!(refused.contains(&429) && refused.contains(&500), "both kinds: {refused:?}");
    assert_eq!(
        after.writes_committed - before.writes_committed,
        baseline.committed,
        "every write landed once"
    );
    let state = sw.state();
    state.assert_no_duplicates("thread-threshold burst");
    assert_eq!(state, baseline.state, "the Autotask state of an undisturbed run");
    // The refusals widened the slot delay, and the workspace keeps it for the next run.
    let kept = std::fs::read_to_string(sw.ws.path().join(".cmat/autotask-pacing.json"))
        .expect("the learned pacing is kept");
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("JSON");
    let delay_ms = kept["slot_release_delay_ms"].as_u64().expect("a delay");
    assert!(delay_ms > cmat::autotask::DEFAULT_SLOT_RELEASE_MS, "widened: {kept}");
    assert!(kept["learned_at"].as_str().is_some_and(|at| at.ends_with('Z')), "{kept}");
    assert_converged(&sw, "thread-threshold burst");
}

/// Slow answers: nothing times out, nothing is sent twice, the concurrency cap holds.
#[test]
fn latency_changes_nothing() {
    for bill in [Bill::October, Bill::November] {
        let baseline = baseline(bill);
        let scenario = format!("{bill:?} with 40 ms latency");
        let sw = prepare(bill, SimOptions::default());
        let before = sw.sim.counters();
        sw.sim.inject(Fault::Latency { ms: 40 });
        let run = sw.apply();
        assert_eq!(run.status, 0, "{scenario}: {}", run.stderr);
        let after = sw.sim.counters();
        assert_eq!(
            after.writes - before.writes,
            baseline.writes,
            "{scenario}: one write per change"
        );
        assert_eq!(after.throttled, 0, "{scenario}: never over the thread threshold");
        assert!(
            after.peak_in_flight.values().all(|peak| *peak <= 3),
            "{scenario}: {:?}",
            after.peak_in_flight
        );
        sw.sim.inject(Fault::Clear);
        rerun_until_converged(&sw, &scenario, &baseline, before.writes_committed);
    }
}

/// `cmat apply` killed (SIGKILL) as soon as the simulator has received `after_sent` writes,
/// with 100 ms per request so that some are still in flight; the rerun finds the lock free
/// and converges.
///
/// The kill waits for writes *received*, not landed: the writes in flight when it comes
/// still land (Autotask finishes them), and with up to three in flight per endpoint a kill
/// counted in landed writes could come after the last write was sent.
fn crash_scenario(bill: Bill, after_sent: u64, baseline: &Baseline) {
    let scenario =
        format!("{bill:?} apply killed after {after_sent} of {} writes", baseline.writes);
    let sw = prepare(bill, SimOptions::default());
    let counters_before = sw.sim.counters();
    let committed_before = counters_before.writes_committed;
    sw.sim.inject(Fault::Latency { ms: 100 });
    let mut child = sw
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cmat apply");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if sw.sim.counters().writes - counters_before.writes >= after_sent {
            break;
        }
        if let Some(status) = child.try_wait().expect("poll the child") {
            panic!("{scenario}: apply ended ({status}) before it sent {after_sent} writes");
        }
        assert!(Instant::now() < deadline, "{scenario}: no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().expect("kill cmat apply");
    child.wait().expect("reap cmat apply");
    let landed = sw.sim.counters().writes_committed - committed_before;
    assert!(
        landed < baseline.writes,
        "{scenario}: the kill came too late to test anything ({landed} landed)"
    );
    // Autotask finishes a request whose client died: the rerun starts at once, and cmat
    // itself waits (`settle_seconds`, 1 s in these workspaces) for such writes to land
    // before it re-reads, so it finds them by their natural keys.
    sw.sim.inject(Fault::Clear);
    rerun_until_converged(&sw, &scenario, baseline, committed_before);
}

#[test]
fn a_killed_apply_converges_on_rerun() {
    let october = baseline(Bill::October);
    let november = baseline(Bill::November);
    let scenarios = [
        (Bill::October, 1, &october),
        (Bill::October, 8, &october),
        (Bill::October, 17, &october),
        (Bill::October, october.writes - 2, &october),
        (Bill::November, 1, &november),
        (Bill::November, november.writes - 3, &november),
    ];
    run_all(
        &scenarios,
        |(bill, after, _)| format!("{bill:?} killed after {after}"),
        |(bill, after, baseline)| crash_scenario(*bill, *after, baseline),
    );
}

/// The state database is lost after a converged run: re-importing the bills and pulling
/// finds everything by natural key, and the plan is empty.
#[test]
fn a_lost_state_database_creates_no_duplicate() {
    for bill in [Bill::October, Bill::November, Bill::Restated, Bill::RestatedLicences] {
        let scenario = format!("{bill:?} then the state database is lost");
        let sw = prepare(bill, SimOptions::default());
        sw.ok(&["apply", "--auto-approve"]);
        let converged = sw.state();
        for file in ["state.db", "state.db-wal", "state.db-shm"] {
            let path = sw.ws.path().join(".cmat").join(file);
            if path.exists() {
                std::fs::remove_file(&path).expect("delete the state database");
            }
        }
        assert!(!sw.ws.path().join(".cmat/state.db").exists());
        for name in bills_of(bill) {
            sw.ok(&["import", name]);
        }
        sw.pull();
        let plan = sw.plan_detailed();
        assert_eq!(
            plan.status, 0,
            "{scenario}: the plan is not empty:\n{}\n{}",
            plan.stdout, plan.stderr
        );
        assert_converged(&sw, &scenario);
        let state = sw.state();
        state.assert_no_duplicates(&scenario);
        assert_eq!(state, converged, "{scenario}");
    }
}

/// Faults in the rerun too, and a state database lost right after a failed run (the journal
/// of unknown outcomes with it): Autotask's natural keys alone must prevent duplicates.
#[test]
fn faults_in_reruns_and_a_database_lost_after_a_failure_converge() {
    let october = baseline(Bill::October);
    let november = baseline(Bill::November);
    let mut scenarios = Vec::new();
    for (bill, baseline) in [(Bill::October, &october), (Bill::November, &november)] {
        let last = baseline.writes as u32;
        for nth in [1, last.div_ceil(2), last] {
            for mode in [WriteFailure::Error500, WriteFailure::CommitThenDrop] {
                for lose_database in [false, true] {
                    scenarios.push((bill, baseline, nth, mode, lose_database));
                }
            }
        }
    }
    run_all(
        &scenarios,
        |(bill, _, nth, mode, lose)| {
            format!(
                "{bill:?} write {nth} {mode:?}, then {}",
                if *lose { "the database is lost" } else { "the rerun fails too" }
            )
        },
        |(bill, baseline, nth, mode, lose_database)| {
            let scenario = format!("{bill:?} write {nth} {mode:?}, database lost: {lose_database}");
            let sw = prepare(*bill, SimOptions::default());
            let committed_before = sw.sim.counters().writes_committed;
            sw.sim.inject(Fault::FailWrite { nth: *nth, mode: *mode });
            let first = sw.apply();
            assert_eq!(first.status, 1, "{scenario}: {}", first.stderr);
            if *lose_database {
                for file in ["state.db", "state.db-wal", "state.db-shm"] {
                    let path = sw.ws.path().join(".cmat").join(file);
                    if path.exists() {
                        std::fs::remove_file(&path).expect("delete the state database");
                    }
                }
                for name in bills_of(*bill) {
                    sw.ok(&["import", name]);
                }
                sw.pull();
            } else {
                // The rerun's first write, if it has one left, fails the same way.
                let writes = sw.writes();
                sw.sim.inject(Fault::FailWrite { nth: 1, mode: *mode });
                let second = sw.apply();
                let expected = if sw.writes() > writes { 1 } else { 0 };
                sw.sim.inject(Fault::Clear);
                assert_eq!(
                    second.status, expected,
                    "{scenario}: the second run: {}",
                    second.stderr
                );
            }
            rerun_until_converged(&sw, &scenario, baseline, committed_before);
        },
    );
}
