//! Import throughput: generates a 1,000,000-line General Billing Report in a temporary folder
//! and imports it into a fresh state database, then imports it again (every bill unchanged).
//!
//! `cargo bench --bench import` (optionally `-- LINES`); `-- xlsx [LINES]` converts the report
//! to an `.xlsx` workbook (as Cloudmore sends it) and imports that instead. For peak memory:
//! `/usr/bin/time -v target/release/deps/import-* --bench [xlsx] [LINES]`.

/// The allocator the `cmat` binary ships with (src/bin/cmat.rs), so that the figures are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let (report, name) = if std::env::args().any(|a| a == "xlsx") {
        let xlsx = dir.path().join("bill.xlsx");
        let started = Instant::now();
        write_workbook(&csv, &xlsx)?;
        std::fs::remove_file(&csv)?;
        let size = std::fs::metadata(&xlsx)?.len();
        println!("as .xlsx: {:.1} MB in {:.2?}", size as f64 / 1e6, started.elapsed());
        (xlsx, "bill.xlsx")
    } else {
        (csv, "bill.csv")
    };

    let mut store = Store::open(&dir.path().join(".cmat/state.db"), Access::Write)?;
    for pass in ["first import (all bills new)", "second import (all unchanged)"] {
        let started = Instant::now();
        let summary = import_file(&mut store, &report, name)?;
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

/// The report as a workbook: dates as dates, amounts as numbers, in rust_xlsxwriter's
/// constant-memory mode (rows go to disk as they are written).
fn write_workbook(
    csv: &std::path::Path,
    xlsx: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory()?;
    sheet.set_name("General Billing Report")?;
    let date_format = Format::new().set_num_format("yyyy-mm-dd");
    let mut reader = csv::Reader::from_path(csv)?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    for (col, name) in header.iter().enumerate() {
        sheet.write_string(0, col as u16, name)?;
    }
    let numeric = [
        "Quantity",
        "Unit Cost Price",
        "Unit Sales Price",
        "Total Cost",
        "Total Sales",
        "AutotaskCompanyID",
    ];
    let mut record = csv::StringRecord::new();
    let mut row = 0u32;
    while reader.read_record(&mut record)? {
        row += 1;
        for (col, (cell, name)) in record.iter().zip(&header).enumerate() {
            let col = col as u16;
            if cell.is_empty() {
                continue;
            }
            if name == "Billing Date" {
                let date = ExcelDateTime::parse_from_str(cell)?;
                sheet.write_datetime_with_format(row, col, &date, &date_format)?;
            } else if numeric.contains(&name.as_str()) {
                sheet.write_number(row, col, cell.parse::<f64>()?)?;
            } else {
                sheet.write_string(row, col, cell)?;
            }
        }
    }
    workbook.save(xlsx)?;
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
