//! Import throughput: generates a 1,000,000-line General Billing Report in a temporary folder
//! and imports it into a fresh state database, then imports it again (every bill unchanged).
//!
//! `cargo bench --bench import` (optionally `-- LINES`); for peak memory:
//! `/usr/bin/time -v target/release/deps/import-* --bench`.

use std::io::{BufWriter, Write};
use std::time::Instant;

use cmat::import::import_file;
use cmat::store::{Access, Store};

const HEADER: &str = "Billing Date,Service Name,Broker Name,Organization Name,Customer Number,Product Name,Item Code,Quantity,Unit Cost Price,Unit Sales Price,Total Cost,Total Sales,Margin Amount,Margin Percentage,Currency Code,Product ID,Payment Frequency,Purchase Order Number,Subscription ID,Subscription Name,Billing Line Details,Organization Currency Code,Organization Groups,Note,AutotaskCompanyID";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lines: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("bill.csv");
    let started = Instant::now();
    write_report(&csv, lines)?;
    let size = std::fs::metadata(&csv)?.len();
    println!("generated {lines} lines ({:.1} MB) in {:.2?}", size as f64 / 1e6, started.elapsed());

    let mut store = Store::open(&dir.path().join(".cmat/state.db"), Access::Write)?;
    for pass in ["first import (all bills new)", "second import (all unchanged)"] {
        let started = Instant::now();
        let summary = import_file(&mut store, &csv, "bill.csv")?;
        let elapsed = started.elapsed();
        println!(
            "{pass}: {} lines, {} new, {} unchanged in {:.2?}: {:.0} lines/s",
            summary.lines,
            summary.new_bills.len(),
            summary.unchanged_bills.len(),
            elapsed,
            summary.lines as f64 / elapsed.as_secs_f64()
        );
    }
    let db = std::fs::metadata(dir.path().join(".cmat/state.db"))?.len();
    println!("state.db: {:.1} MB", db as f64 / 1e6);
    Ok(())
}

/// Azure-like consumption lines: 200 organizations, each a run of lines of its own bill.
fn write_report(path: &std::path::Path, lines: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "{HEADER}")?;
    let organizations = 200;
    let per_org = lines.div_ceil(organizations);
    for i in 0..lines {
        let org = i / per_org;
        let meter = i % 997;
        let quantity_ten_thousandths = 10_000 + (i * 7919) % 9_000_000;
        let unit_cost_millionths = 1_000 + (meter * 313) % 250_000;
        let total_cost = quantity_ten_thousandths * unit_cost_millionths / 10_000;
        writeln!(
            out,
            "2026-11-01,Azure Plan,Microsoft,Organization {org:03},CM-{org:06},\"Virtual Machines - Dv3/DSv3 Series, meter {meter}\",DZH318Z0BPS6,\
             {}.{:04},0.{:06},0.{:06},{}.{:06},{}.{:06},0.0000,8.00,EUR,\
             {meter:08x}-0000-4000-8000-{org:012x},Monthly,,{org:08x}-1111-4111-8111-{org:012x},Azure plan,Usage 2026-10-01 - 2026-10-31,EUR,Azure,,{}",
            quantity_ten_thousandths / 10_000,
            quantity_ten_thousandths % 10_000,
            unit_cost_millionths,
            unit_cost_millionths * 108 / 100,
            total_cost / 1_000_000,
            total_cost % 1_000_000,
            total_cost * 108 / 100 / 1_000_000,
            total_cost * 108 / 100 % 1_000_000,
            29_683_000 + org
        )?;
    }
    out.flush()
}
