//! The daily sync at scale, against the Autotask simulator with real-API latency: cmat beside
//! a naive baseline, requests, wall time and peak memory, measured in one run. The steady day
//! is two `cmat sync` runs (day 0, then day 1), so the second reads contract services and
//! units only for the subscriptions whose bills changed (issue 15).
//!
//! ```text
//! cargo bench --no-run --bench sync
//! target/release/deps/sync-HASH --size=small|medium|large [--latency-ms=150]
//!     [--onboarding-latency-ms=10] [--no-onboarding] [--no-naive] [--resume-demo]
//! ```
//! (`cargo bench --bench sync -- --size=small` builds and runs in one go.) See BENCHMARKS.md.
//! With `CMAT_BENCH_KEEP=1` the workspaces are left behind, to run `cmat plan` in them again.

mod common;

use std::time::{Duration, Instant};

use cmat::autotask::{AutotaskClient, ClientOptions};
use cmat::workspace::{AutotaskConfig, AutotaskCredentials, Secret};
use cmat_engine::billing::BillLine;
use cmat_engine::plan::{compute, PlanInputs};
use cmat_engine::snapshot::Snapshot;
use cmat_sim::{SimHandle, SimOptions, Simulator};
use cmat_testkit::tenant::{bill_lines, companies, play, sim_seed_json, TenantSize};
use common::{measured, naive, say, seed, Cost, Workspace};
use rust_decimal::Decimal;

/// Autotask's hourly threshold, as on a real tenant.
const THRESHOLD: u64 = 10_000;
/// For runs measured beyond one hour's budget (the naive baseline, onboarding).
const NO_THRESHOLD: u64 = 1_000_000_000;
/// 1 % of licence counts move each day.
const CHURN_PER_MILLE: u64 = 10;

struct Args {
    size_name: String,
    size: TenantSize,
    latency: Duration,
    onboarding_latency: Duration,
    onboarding: bool,
    naive: bool,
    resume_demo: bool,
}

fn args() -> Args {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        all.iter().find_map(|a| a.strip_prefix(&format!("--{name}=")).map(String::from))
    };
    let flag = |name: &str| all.iter().any(|a| a == &format!("--{name}"));
    let size_name = value("size").unwrap_or_else(|| "medium".into());
    let size = match size_name.as_str() {
        "small" => TenantSize::SMALL,
        "medium" => TenantSize::MEDIUM,
        "large" => TenantSize::LARGE,
        other => panic!("--size=small|medium|large, not {other}"),
    };
    let ms = |name: &str, default: u64| {
        Duration::from_millis(
            value(name).map(|v| v.parse().expect("milliseconds")).unwrap_or(default),
        )
    };
    Args {
        latency: ms("latency-ms", 150),
        onboarding_latency: ms("onboarding-latency-ms", 10),
        // A large onboarding needs several hours of the tenant's budget: see --resume-demo.
        onboarding: !flag("no-onboarding") && size != TenantSize::LARGE,
        naive: !flag("no-naive"),
        resume_demo: flag("resume-demo") || size == TenantSize::SMALL,
        size_name,
        size,
    }
}

fn rules() -> cmat_engine::rules::RuleSet {
    let text = cmat_mapping::default_rules(
        common::SERVICE_BILLING_CODE,
        common::PRODUCT_BILLING_CODE,
        common::SLA,
    );
    cmat_mapping::compile_sources(&[("mappings/microsoft.cmat".into(), text)])
        .unwrap_or_else(|d| panic!("default rules: {d}"))
        .rules
}

/// Autotask after day 0 was applied: the companies plus the onboarding plan, played.
fn converged(size: TenantSize, rules: &cmat_engine::rules::RuleSet, day0: &[BillLine]) -> Snapshot {
    let mut snapshot = companies(size);
    let plan = compute(
        &PlanInputs {
            rules,
            lines: day0,
            snapshot: &snapshot,
            mapping_sources: &[],
            inputs_digest: String::new(),
        },
        chrono::Utc::now(),
    )
    .expect("the generated tenant has every label the rules name");
    play(&plan, &mut snapshot);
    snapshot
}

fn start_sim(snapshot: &Snapshot, threshold: u64, latency: Duration) -> SimHandle {
    let started = Instant::now();
    let sim = Simulator::start(
        "127.0.0.1:0",
        seed(&sim_seed_json(snapshot, threshold)),
        SimOptions { latency, ..SimOptions::default() },
    )
    .unwrap_or_else(|err| panic!("simulator: {err}"));
    say(format!(
        "  (simulator seeded with {} contracts, {} contract services in {:.1} s, latency {} ms, threshold {threshold}/h)",
        snapshot.contracts.len(),
        snapshot.contract_services.len(),
        started.elapsed().as_secs_f64(),
        latency.as_millis()
    ));
    sim
}

/// The naive script's client: the same library and options, allowed the whole hour.
fn client(sim: &SimHandle) -> AutotaskClient {
    let credentials = sim.credentials();
    AutotaskClient::connect(
        &AutotaskConfig {
            base_url: Some(sim.base_url()),
            zone_lookup_url: None,
            max_hourly_share: Some(Decimal::ONE),
            ..AutotaskConfig::default()
        },
        AutotaskCredentials {
            username: credentials.username,
            secret: Secret::new(credentials.secret),
            integration_code: Secret::new(credentials.integration_code),
        },
        ClientOptions::default(),
    )
    .unwrap_or_else(|err| panic!("naive client: {err}"))
}

/// Runs the naive baseline and checks with cmat that Autotask ended converged.
fn run_naive(sim: &SimHandle, ws: &Workspace, lines: &[BillLine]) -> Cost {
    let (report, cost) = measured(sim, || naive::run(&client(sim), lines));
    if !report.failures.is_empty() {
        say(format!(
            "  naive: {} subscription(s) failed, e.g. {}",
            report.failures.len(),
            report.failures[0]
        ));
    }
    say(format!(
        "  naive: {} subscriptions, {} writes landed",
        report.subscriptions, report.writes_ok
    ));
    check_converged(sim, ws, "naive");
    cost
}

/// `cmat pull autotask` + `cmat plan --detailed-exitcode` (not measured): 0 means converged.
fn check_converged(sim: &SimHandle, ws: &Workspace, who: &str) {
    ws.cmat_ok(sim, &["pull", "autotask"]);
    let (code, output, plan) = ws.cmat(sim, &["plan", "--detailed-exitcode"]);
    let verdict = match code {
        0 => "converged (a new plan is empty)".to_string(),
        2 => {
            let summary = output
                .lines()
                .find(|l| l.contains("to change") || l.contains("Plan:"))
                .unwrap_or("");
            let example = output
                .lines()
                .find(|l| l.contains("licence count") || l.contains("restated"))
                .unwrap_or("")
                .trim();
            format!("NOT converged: {summary} (e.g. {example})")
        }
        _ => format!("plan failed ({code})"),
    };
    say(format!(
        "  check after {who}: {verdict} (that `cmat plan`: {:.1} s, {:.0} MB)",
        plan.wall.as_secs_f64(),
        plan.peak_kib as f64 / 1024.0
    ));
}

/// How well the writes of `log` kept Autotask's 3 slots busy, as the simulator saw them. It
/// logs a request when it answers and holds each one at least `latency`: the writes' window
/// runs from the first one's start (its answer less the latency) to the last answer, and the
/// average in flight is `latency` per write over that window. A write the simulator was slow
/// to process counts as `latency` only, so this is a lower bound; cmat's own count (time from
/// sending to answer) is in apply's summary line ("writes in flight on average").
fn writes_in_flight(log: &[cmat_sim::LoggedRequest], latency: Duration) -> String {
    let answered: Vec<_> = log
        .iter()
        .filter(|r| {
            matches!(r.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE")
                && !r.route.contains("/query")
        })
        .map(|r| r.at)
        .collect();
    let (Some(first), Some(last)) = (answered.iter().min(), answered.iter().max()) else {
        return "no writes".into();
    };
    let window = (*last - *first).to_std().unwrap_or_default() + latency;
    let held = latency * answered.len() as u32;
    let limit = latency * answered.len() as u32 / 3;
    // Time with no write in flight: the gaps between one write's answer and the next start.
    let latency_chrono = chrono::Duration::from_std(latency).unwrap_or_default();
    let mut events: Vec<(chrono::DateTime<chrono::Utc>, i32)> =
        answered.iter().flat_map(|at| [(*at - latency_chrono, 1), (*at, -1)]).collect();
    events.sort();
    let (mut in_flight, mut idle, mut previous) = (0, chrono::Duration::zero(), *first);
    for (at, step) in events {
        if in_flight == 0 && at > previous {
            idle += at - previous;
        }
        in_flight += step;
        previous = at;
    }
    format!(
        "writes: {} in {:.2} s (first sent to last answered), average in flight {:.2}, none in flight for {:.2} s; the limit at 3 in flight is {:.2} s, ×1.15 = {:.2} s",
        answered.len(),
        window.as_secs_f64(),
        held.as_secs_f64() / window.as_secs_f64().max(1e-9),
        idle.to_std().unwrap_or_default().as_secs_f64(),
        limit.as_secs_f64(),
        limit.as_secs_f64() * 1.15
    )
}

fn row(what: &str, cost: &Cost) -> String {
    format!(
        "| {what} | {} | {} | {} | {:.1} s | {} |",
        cost.requests(),
        cost.reads,
        cost.writes,
        cost.wall.as_secs_f64(),
        if cost.peak_kib > 0 {
            format!("{:.0} MB", cost.peak_kib as f64 / 1024.0)
        } else {
            "n/a (in the bench process)".into()
        }
    )
}

fn ratio(cmat: &Cost, naive: &Cost) -> String {
    format!(
        "naive / cmat: {:.1}× the requests, {:.1}× the wall time",
        naive.requests() as f64 / cmat.requests().max(1) as f64,
        naive.wall.as_secs_f64() / cmat.wall.as_secs_f64().max(1e-9)
    )
}

fn main() {
    let args = args();
    let rules = rules();
    let started = Instant::now();
    let day0 = bill_lines(args.size, 0, CHURN_PER_MILLE);
    let day1 = bill_lines(args.size, 1, CHURN_PER_MILLE);
    let snapshot = converged(args.size, &rules, &day0);
    say(format!(
        "tenant {}: {} organizations, {} contracts, {} contract services, {} unit periods, {} charges; {} bill lines a day; generated in {:.1} s",
        args.size_name,
        args.size.organizations,
        snapshot.contracts.len(),
        snapshot.contract_services.len(),
        snapshot.contract_service_units.len(),
        snapshot.charges.len(),
        day1.len(),
        started.elapsed().as_secs_f64()
    ));
    let header = "| run | requests | reads | writes | wall time | peak memory (cmat) |\n|---|---:|---:|---:|---:|---:|";
    let mut table = vec![header.to_string()];
    let mut notes = Vec::new();

    // ---- steady state: day 1, 1 % churn, on a converged tenant ----
    say(format!(
        "\nsteady-state day (day 1, {} ‰ churn), latency {} ms:",
        CHURN_PER_MILLE,
        args.latency.as_millis()
    ));
    let sim = start_sim(&snapshot, THRESHOLD, args.latency);
    let ws = Workspace::new(&sim);
    ws.write_bill("day-0.csv", &day0);
    ws.write_bill("day-1.csv", &day1);
    // Yesterday's sync read the tenant in full (nothing to write: the tenant is day 0
    // applied) and stored what it applied per subscription; today's reads what changed since,
    // and the contract services and units of the subscriptions whose bills changed only.
    let first_sync = ws.cmat_ok(&sim, &["sync", "--auto-approve", "--import", "day-0.csv"]);
    let logged_before = sim.request_log().len();
    let (code, output, day) = ws.cmat(&sim, &["sync", "--auto-approve", "--import", "day-1.csv"]);
    say(format!("  {}", writes_in_flight(&sim.request_log()[logged_before..], args.latency)));
    if code != 0 && code != 2 {
        say(format!("  sync exited {code}:\n{output}"));
    }
    for line in output.lines().filter(|l| {
        l.starts_with("Apply ") || l.starts_with("Requests: ") || l.contains("whose bills changed")
    }) {
        say(format!("  {}", line.trim()));
    }
    // The pull's summary counts the requests its client sent so far: the pull's own.
    let pull_requests = output
        .lines()
        .find_map(|l| l.strip_prefix("Requests: ")?.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    for (what, cost) in [("sync (day 0)", &first_sync), ("sync (day 1)", &day)] {
        say(format!(
            "  cmat {what:<22} {:>6} requests ({} reads, {} writes) {:>7.1} s {:>6.0} MB",
            cost.requests(),
            cost.reads,
            cost.writes,
            cost.wall.as_secs_f64(),
            cost.peak_kib as f64 / 1024.0
        ));
    }
    say(format!(
        "  of which the pull: {pull_requests} requests; writes + {} in all",
        day.requests().saturating_sub(day.writes)
    ));
    check_converged(&sim, &ws, "cmat");
    let cmat_day = day;
    table.push(row(
        &format!(
            "{} steady-state day: cmat `sync --import day-1.csv` (import + pull + apply)",
            args.size_name
        ),
        &cmat_day,
    ));
    notes.push(format!(
        "{} steady-state day: the sync's pull sent {pull_requests} requests",
        args.size_name
    ));
    table.push(row("  (day 0's `sync`, a full read, not in the total)", &first_sync));
    drop(sim);
    if args.naive {
        say("  naive baseline (threshold lifted so that its whole cost shows):");
        let sim = start_sim(&snapshot, NO_THRESHOLD, args.latency);
        ws.point_at(&sim);
        let naive_day = run_naive(&sim, &ws, &day1);
        table.push(row(&format!("{} steady-state day: naive", args.size_name), &naive_day));
        notes.push(format!(
            "{} steady-state day: {}; cmat used {:.1} % of the hourly threshold of {THRESHOLD}, naive {:.1} %",
            args.size_name,
            ratio(&cmat_day, &naive_day),
            cmat_day.requests() as f64 * 100.0 / THRESHOLD as f64,
            naive_day.requests() as f64 * 100.0 / THRESHOLD as f64,
        ));
    }

    // ---- onboarding: empty Autotask (companies only) → converged ----
    if args.onboarding {
        say(format!(
            "\nonboarding (day 0 into an Autotask with only the companies), latency {} ms, threshold lifted:",
            args.onboarding_latency.as_millis()
        ));
        let empty = companies(args.size);
        let sim = start_sim(&empty, NO_THRESHOLD, args.onboarding_latency);
        let ws = Workspace::new(&sim);
        ws.write_bill("day-0.csv", &day0);
        ws.cmat_ok(&sim, &["import", "day-0.csv"]);
        let pull = ws.cmat_ok(&sim, &["pull", "autotask"]);
        let apply = ws.cmat_ok(&sim, &["apply", "--auto-approve"]);
        let cmat_onboarding = pull.plus(apply);
        check_converged(&sim, &ws, "cmat");
        table.push(row(
            &format!("{} onboarding: cmat (pull + apply)", args.size_name),
            &cmat_onboarding,
        ));
        drop(sim);
        if args.naive {
            let sim = start_sim(&empty, NO_THRESHOLD, args.onboarding_latency);
            ws.point_at(&sim);
            let naive_onboarding = run_naive(&sim, &ws, &day0);
            table.push(row(&format!("{} onboarding: naive", args.size_name), &naive_onboarding));
            notes.push(format!(
                "{} onboarding: {}",
                args.size_name,
                ratio(&cmat_onboarding, &naive_onboarding)
            ));
        }
    }

    if args.resume_demo {
        resume_demo(&args, &day0, &mut notes);
    }

    say(format!(
        "\n{} tenant, latency {} ms (onboarding {} ms):\n",
        args.size_name,
        args.latency.as_millis(),
        args.onboarding_latency.as_millis()
    ));
    say(table.join("\n"));
    say("");
    for note in notes {
        say(format!("- {note}"));
    }
}

/// Onboarding under a small hourly threshold: cmat stops before it would exceed its share
/// (`max_hourly_share`, default 50 %), the hour rolls over (a new simulator holding the same
/// records, its request count back to 0), and a rerun resumes until Autotask has converged.
fn resume_demo(args: &Args, day0: &[BillLine], notes: &mut Vec<String>) {
    let threshold = 600;
    say(format!(
        "\nresumability: {} onboarding under an hourly threshold of {threshold} (cmat's share 50 %):",
        args.size_name
    ));
    let empty = companies(args.size);
    let mut sim = start_sim(&empty, threshold, args.onboarding_latency);
    let ws = Workspace::new(&sim);
    ws.write_bill("day-0.csv", day0);
    ws.cmat_ok(&sim, &["import", "day-0.csv"]);
    let mut hours = Vec::new();
    for hour in 1..=20 {
        let pull = ws.cmat_ok(&sim, &["pull", "autotask"]);
        let (code, output, apply) = ws.cmat(&sim, &["apply", "--auto-approve"]);
        let cost = pull.plus(apply);
        let stopped = output.contains("hourly request threshold")
            || output.contains("request budget is spent");
        let written = output
            .lines()
            .find(|l| l.starts_with("Apply "))
            .unwrap_or("(nothing to apply)")
            .to_string();
        say(format!(
            "  hour {hour}: {} requests ({} writes), exit {code}{}: {written}",
            cost.requests(),
            cost.writes,
            if stopped { ", stopped at cmat's share of the hour" } else { "" }
        ));
        hours.push(cost);
        if code == 0 {
            break;
        }
        // The hour rolls over: the same records, a fresh request count.
        let mut state = sim.state_json();
        let state = state.as_object_mut().expect("state object");
        state.remove("ContractServiceUnits");
        let mut seed_json = sim_seed_json(&Snapshot::default(), threshold);
        for (entity, rows) in state.iter() {
            if cmat_sim::seed::SEEDABLE.contains(&entity.as_str()) {
                seed_json[entity] = rows.clone();
            }
        }
        let latency = args.onboarding_latency;
        drop(sim);
        sim = Simulator::start(
            "127.0.0.1:0",
            seed(&seed_json),
            SimOptions { latency, ..SimOptions::default() },
        )
        .unwrap_or_else(|err| panic!("simulator after the hour: {err}"));
        ws.point_at(&sim);
    }
    check_converged(&sim, &ws, "the last rerun");
    let most = hours.iter().map(Cost::requests).max().unwrap_or(0);
    notes.push(format!(
        "resumability: {} onboarding under a threshold of {threshold}/h took {} hour(s) of budget, at most {most} requests in any hour (cmat's share: {}), and converged",
        args.size_name,
        hours.len(),
        threshold / 2
    ));
}
