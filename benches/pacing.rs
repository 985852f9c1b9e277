//! Thread-threshold refusals with and without slot pacing, against cmat-sim holding each slot
//! a little after it answers (seed `throttling`), as live tenants do.
//!
//! ```text
//! cargo bench --bench pacing [-- --latency-ms=20 --queries=40]
//! ```
//! Nine threads (as apply's scope re-read runs) query one endpoint; the client keeps 3 in
//! flight. For each server release delay and client pacing (fixed, or starting low and widened
//! by refusals, as by default), it prints the refusals the server sent, the requests, the wall
//! time and the delay the client ended with. See BENCHMARKS.md, "Thread threshold".

use std::time::{Duration, Instant};

use cmat::autotask::{
    AutotaskClient, ClientOptions, Condition, Filter, DEFAULT_SLOT_RELEASE_MAX_MS,
    DEFAULT_SLOT_RELEASE_MS,
};
use cmat::workspace::{AutotaskConfig, AutotaskCredentials, Secret};
use cmat_sim::{Seed, SimOptions, Simulator, Throttling};
use serde_json::json;

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str, default: u64| {
        all.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(String::from))
            .map(|v| v.parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let latency = Duration::from_millis(value("latency-ms", 20));
    let queries = value("queries", 40) as usize;
    println!(
        "9 threads x {queries} queries on one endpoint, {} ms per request",
        latency.as_millis()
    );
    println!("server frees slot after | client pacing: first -> last | refusals | requests | wall");
    for server_ms in [10u64, 30] {
        // The last two: the default before issue 15 (from 20 ms), and the default now.
        for (client_ms, max_ms) in [
            (0u64, 0u64),
            (20, 20),
            (50, 50),
            (0, 250),
            (20, 250),
            (DEFAULT_SLOT_RELEASE_MS, DEFAULT_SLOT_RELEASE_MAX_MS),
        ] {
            let (refused, requests, wall, last) =
                run(server_ms, client_ms, max_ms, latency, queries);
            let pacing = if max_ms == client_ms {
                format!("{client_ms} ms fixed")
            } else {
                format!("{client_ms} -> {} ms", last.as_millis())
            };
            println!(
                "{server_ms:>20} ms | {pacing:>20} | {refused:>8} | {requests:>8} | {:.2} s",
                wall.as_secs_f64()
            );
        }
    }
}

fn run(
    server_ms: u64,
    client_ms: u64,
    max_ms: u64,
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
