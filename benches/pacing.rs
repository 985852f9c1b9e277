//! Thread-threshold refusals with and without slot pacing, against cmat-sim holding each slot
//! a little after it answers (seed `throttling`), as live tenants do.
//!
//! ```text
//! cargo bench --bench pacing [-- --latency-ms=20 --queries=40 --server-ms=10,25,30 --pacing=10-250-3]
//! ```
//! Nine threads (as apply's scope re-read runs) query one endpoint; the client keeps 3 in
//! flight. For each server release delay and client pacing (fixed, or starting low and widened
//! by refusals, as by default), it prints the refusals the server sent, the requests, the wall
//! time and the delay the client ended with. See BENCHMARKS.md, "Thread threshold".

use std::time::{Duration, Instant};

use cmat::autotask::{
    AutotaskClient, ClientOptions, Condition, Filter, PacingMemory, DEFAULT_SLOT_RELEASE_GROWTH,
    DEFAULT_SLOT_RELEASE_MAX_MS, DEFAULT_SLOT_RELEASE_MS,
};
use cmat::workspace::{AutotaskConfig, AutotaskCredentials, Secret};
use cmat_sim::{Seed, SimOptions, Simulator, Throttling};
use serde_json::json;

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        all.iter().find_map(|a| a.strip_prefix(&format!("--{name}=")).map(String::from))
    };
    let number = |text: &str| text.trim().parse::<u64>().expect("a whole number");
    let latency = Duration::from_millis(arg("latency-ms").map_or(20, |v| number(&v)));
    let queries = arg("queries").map_or(40, |v| number(&v)) as usize;
    // `--server-ms=10,25,30`: how long after answering the simulator keeps each slot.
    let servers: Vec<u64> =
        arg("server-ms").map_or(vec![10, 25, 30], |v| v.split(',').map(number).collect());
    // `--pacing=0-0,20-20,10-250-2`: the client's first and largest delay (equal: fixed), and
    // how many times longer a refusal makes it (the default when left out).
    let pacings: Vec<(u64, u64, u32)> = arg("pacing").map_or_else(
        || {
            vec![
                (0, 0, DEFAULT_SLOT_RELEASE_GROWTH),
                (20, 20, DEFAULT_SLOT_RELEASE_GROWTH),
                (50, 50, DEFAULT_SLOT_RELEASE_GROWTH),
                (DEFAULT_SLOT_RELEASE_MS, DEFAULT_SLOT_RELEASE_MAX_MS, 2),
                (DEFAULT_SLOT_RELEASE_MS, DEFAULT_SLOT_RELEASE_MAX_MS, DEFAULT_SLOT_RELEASE_GROWTH),
            ]
        },
        |v| {
            v.split(',')
                .map(|p| {
                    let parts: Vec<u64> = p.split('-').map(number).collect();
                    match parts[..] {
                        [first, max] => (first, max, DEFAULT_SLOT_RELEASE_GROWTH),
                        [first, max, growth] => (first, max, growth as u32),
                        _ => panic!("--pacing: FIRST-MAX or FIRST-MAX-GROWTH, not {p}"),
                    }
                })
                .collect()
        },
    );
    println!(
        "9 threads x {queries} queries on one endpoint, {} ms per request",
        latency.as_millis()
    );
    println!(
        "server frees slot after | client pacing: first -> last | refusals | requests | refused % | in flight | wall"
    );
    for &server_ms in &servers {
        for &(client_ms, max_ms, growth) in &pacings {
            // An adaptive pacing runs twice with one workspace memory: the second run (a
            // day's next sync) starts at the delay the first one learned.
            let folder = tempfile::tempdir().expect("a temporary folder");
            let memory = PacingMemory { path: folder.path().join("autotask-pacing.json") };
            let runs = if max_ms == client_ms { 1 } else { 2 };
            for day in 1..=runs {
                let pacing = (client_ms, max_ms, growth);
                let (refused, requests, wall, last) =
                    run(server_ms, pacing, Some(memory.clone()), latency, queries);
                let pacing = if max_ms == client_ms {
                    format!("{client_ms} ms fixed")
                } else {
                    format!("{client_ms} -> {} ms (x{growth}) run {day}", last.as_millis())
                };
                // Answered requests times the simulator's latency over the wall time: a lower
                // bound of the requests in flight on average (the simulator's own time adds).
                let in_flight =
                    (requests - refused) as f64 * latency.as_secs_f64() / wall.as_secs_f64();
                println!(
                    "{server_ms:>20} ms | {pacing:>28} | {refused:>8} | {requests:>8} | {:>8.1} % | {in_flight:>9.2} | {:.2} s",
                    refused as f64 * 100.0 / requests as f64,
                    wall.as_secs_f64()
                );
            }
        }
    }
}

fn run(
    server_ms: u64,
    (client_ms, max_ms, growth): (u64, u64, u32),
    memory: Option<PacingMemory>,
    latency: Duration,
    queries: usize,
) -> (u64, u64, Duration, Duration) {
    let companies = (0..100)
        .map(|i| {
            json!({"id": 1000 + i, "companyName": format!("Company {i}"), "companyType": 1,
               "ownerResourceID": 1, "phone": "+1 555 0100"})
        })
        .collect();
    let seed = Seed {
        records: [("Companies".to_string(), companies)].into_iter().collect(),
        throttling: Throttling {
            slot_release_delay: Duration::from_millis(server_ms),
            refusal_status: 500,
            ..Throttling::default()
        },
        ..Seed::default()
    };
    let sim =
        Simulator::start("127.0.0.1:0", seed, SimOptions { latency, ..SimOptions::default() })
            .expect("simulator");
    let credentials = sim.credentials();
    let client = AutotaskClient::connect(
        &AutotaskConfig { base_url: Some(sim.base_url()), ..AutotaskConfig::default() },
        AutotaskCredentials {
            username: credentials.username,
            secret: Secret::new(credentials.secret),
            integration_code: Secret::new(credentials.integration_code),
        },
        ClientOptions {
            slot_release_delay: Duration::from_millis(client_ms),
            slot_release_delay_max: Duration::from_millis(max_ms),
            slot_release_growth: growth,
            pacing_memory: memory,
            ..ClientOptions::default()
        },
    )
    .expect("connect");
    let before = sim.counters();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..9 {
            let client = &client;
            scope.spawn(move || {
                for i in 0..queries {
                    let filter =
                        Filter::new(Condition::eq("id", 1000 + ((t * 7 + i) % 100) as i64))
                            .expect("filter");
                    client.query("Companies", &filter).expect("query");
                }
            });
        }
    });
    let wall = started.elapsed();
    let after = sim.counters();
    (
        after.throttled - before.throttled,
        after.total - before.total,
        wall,
        client.slot_release_delay(),
    )
}
