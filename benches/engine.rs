//! The engine at scale: desired state + diff + plan for the large tenant (2,000 organizations,
//! 10,000 subscriptions, 50,000 contract services, 200,000 Azure lines), onboarding and a
//! steady-state day with 1 % churn, planned with the default rules and again with the mid-size
//! example price book (`mappings/examples/mid-size-msp.cmat`, ≈50 `for` rules, plus a few rules
//! that match the generated tenant's names). Run: `cargo bench --bench engine` (peak memory:
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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let defaults = cmat_mapping::load_rules(root)
        .unwrap_or_else(|diagnostics| panic!("the default mappings must check:\n{diagnostics}"));
    let mut sources = cmat_mapping::mapping_sources(root).expect("the default mappings");
    let example = std::fs::read_to_string(root.join("mappings/examples/mid-size-msp.cmat"))
        .expect("the mid-size example");
    sources.push(("mappings/mid-size-msp.cmat".into(), example));
    sources.push(("mappings/bench.cmat".into(), GENERATED_TENANT_RULES.into()));
    let price_book = cmat_mapping::compile_sources(&sources)
        .unwrap_or_else(|diagnostics| panic!("the price book must check:\n{diagnostics}"))
        .rules;
    println!("rules: {} scoped (price book) vs 0 (defaults)", price_book.scoped.len());
    // `--rules=default` or `--rules=price-book` runs one (to count instructions of each with
    // `valgrind --tool=callgrind --toggle-collect='*plan*compute*'`, steady on a busy machine).
    match std::env::args().find(|arg| arg.starts_with("--rules=")).as_deref() {
        Some("--rules=default") => {
            run(&defaults, size, "default rules");
        }
        Some("--rules=price-book") => {
            run(&price_book, size, "mid-size price book");
        }
        _ => {
            let default_ms = run(&defaults, size, "default rules");
            let book_ms = run(&price_book, size, "mid-size price book");
            println!("price book / default rules, steady day: {:.2}x", book_ms / default_ms);
        }
    }
}

/// Rules that match the generated tenant's names, so that the price book does real work: the
/// issue-27 forms among them (tiers, a dated uplift with a price point, cap, rebate and floor,
/// a per-seat add-on, a priority), so the bench prices them too.
const GENERATED_TENANT_RULES: &str = r#"
for product "Product SKU00*" {
    unit_price = cost + 14%
}
for product "Product SKU01*" {
    unit_price = sales_price - 2%
}
for customer_number "C00001" {
    unit_price = sales_price - 5%
}
for customer_number "C00002", product "Product SKU00*" {
    included_units = 2
}
for service "Azure Plan", meter_category "METER001" {
    unit_price = cost + 12%
}
for service "Microsoft NCE" {
    decrease = next_period
}
for product "Product SKU02*" {
    tier "1-9" = sales_price + 5%
    tier "10-49" = sales_price
    tier "50+" = sales_price - 5%
}
for product "Product SKU03*", from "2026-01-01" {
    unit_price = sales_price + 5%
    price_point = 0.99
    max_price = 90.00
    unit_cost = cost - 3%
    margin_floor = 1.00
}
for product "Product SKU04*" {
    add_on_service = 7010
    add_on_price = 12.00
    add_on_cost = 4.00
}
for organization_group "Group A" {
    unit_price = cost + 1.50
    priority = 2
}
"#;

/// Plans onboarding and a steady day with `rules`; returns the steady day's milliseconds.
fn run(rules: &cmat_engine::rules::RuleSet, size: TenantSize, label: &str) -> f64 {
    let sources = Vec::new();
    let day0 = bill_lines(size, 0, 10);
    let mut snapshot = companies(size);
    println!("[{label}] tenant: {} organizations, {} bill lines", size.organizations, day0.len());

    let started = Instant::now();
    let onboarding = compute(
        &PlanInputs {
            rules,
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
            rules,
            lines: &day1,
            snapshot: &snapshot,
            mapping_sources: &sources,
            inputs_digest: String::new(),
        },
        chrono::Utc::now(),
    )
    .expect("the generated tenant has every label the rules name");
    let steady_ms = started.elapsed().as_secs_f64() * 1e3;
    println!(
        "plan (day 1, 1% churn): {:>8.1} ms  {} changes, {} unchanged",
        steady_ms,
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
    steady_ms
}
