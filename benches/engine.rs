//! The engine at scale: desired state + diff + plan for the large tenant (2,000 organizations,
//! 10,000 subscriptions, 50,000 contract services, 200,000 Azure lines), onboarding and a
//! steady-state day with 1 % churn. Run: `cargo bench --bench engine` (peak memory:
//! `/usr/bin/time -v target/release/deps/engine-* --bench`).

use std::time::Instant;

use cmat_engine::plan::{compute, PlanInputs};
use cmat_testkit::tenant::{bill_lines, companies, play, TenantSize};

fn main() {
    let size = match std::env::args().find(|arg| arg.starts_with("--size=")).as_deref() {
        Some("--size=small") => TenantSize::SMALL,
        Some("--size=medium") => TenantSize::MEDIUM,
        _ => TenantSize::LARGE,
    };
    let rules = cmat_mapping::load_rules(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|diagnostics| panic!("the default mappings must check:\n{diagnostics}"));
    let sources = Vec::new();
    let day0 = bill_lines(size, 0, 10);
    let mut snapshot = companies(size);
    println!("tenant: {} organizations, {} bill lines", size.organizations, day0.len());

    let started = Instant::now();
    let onboarding = compute(
        &PlanInputs {
            rules: &rules,
            lines: &day0,
            snapshot: &snapshot,
            mapping_sources: &sources,
            inputs_digest: String::new(),
        },
        chrono::Utc::now(),
    )
    .expect("the generated tenant has every label the rules name");
    let onboarding_time = started.elapsed();
    println!(
        "plan (onboarding): {:>8.1} ms  {} changes ({} create, {} adjust)",
        onboarding_time.as_secs_f64() * 1e3,
        onboarding.changes.len(),
        onboarding.summary.create,
        onboarding.summary.adjust
    );
    play(&onboarding, &mut snapshot);

    let day1 = bill_lines(size, 1, 10);
    let started = Instant::now();
    let steady = compute(
        &PlanInputs {
            rules: &rules,
            lines: &day1,
            snapshot: &snapshot,
            mapping_sources: &sources,
            inputs_digest: String::new(),
        },
        chrono::Utc::now(),
    )
    .expect("the generated tenant has every label the rules name");
    println!(
        "plan (day 1, 1% churn): {:>8.1} ms  {} changes, {} unchanged",
        started.elapsed().as_secs_f64() * 1e3,
        steady.changes.len(),
        steady.summary.unchanged
    );
    let started = Instant::now();
    let json = steady.to_json();
    println!(
        "render json: {:>8.1} ms  {} bytes",
        started.elapsed().as_secs_f64() * 1e3,
        json.len()
    );
}
