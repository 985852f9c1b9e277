//! The billing review at scale: the large tenant (2,000 organizations, 248,000 bill lines a
//! period) with 12 monthly periods imported (2,976,000 lines) and the converged Autotask
//! snapshot of the latest one; `cmat report` of the latest period, in a fresh process.
//!
//! `cargo bench --bench report`. The set-up (generating and importing the 12 periods, the
//! snapshot) runs here; the review is then built and rendered by this same binary started
//! again with `--measure WORKSPACE`, so that its peak memory (VmHWM of /proc/self/status) is
//! the report's alone. `REPORT_BENCH_PHASES=1` prints the review's phases (its debug lines).

/// The allocator the `cmat` binary ships with (src/bin/cmat.rs), so that the figures are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use chrono::{Months, NaiveDate};
use cmat::report::{load, render_to, Format};
use cmat::store::{Access, Store};
use cmat_engine::plan::{compute, PlanInputs};
use cmat_testkit::tenant::{bill_lines, companies, play, TenantSize};

const PERIODS: u32 = 12;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(index) = args.iter().position(|a| a == "--measure") {
        return measure(Path::new(&args[index + 1]));
    }
    let size = match args.iter().find(|arg| arg.starts_with("--size=")).map(String::as_str) {
        Some("--size=small") => TenantSize::SMALL,
        Some("--size=medium") => TenantSize::MEDIUM,
        _ => TenantSize::LARGE,
    };
    // `--dir DIR`: set up there (and keep it), or reuse it when it holds a database already.
    let kept =
        args.iter().position(|a| a == "--dir").map(|i| std::path::PathBuf::from(&args[i + 1]));
    let temporary = tempfile::tempdir()?;
    let root = kept.clone().unwrap_or_else(|| temporary.path().to_path_buf());
    if root.join(".cmat/state.db").exists() {
        return run_measures(&root);
    }
    std::fs::create_dir_all(&root)?;
    let dir = Dir(root);
    std::fs::create_dir_all(dir.path().join("mappings"))?;
    std::fs::write(
        dir.path().join("mappings/microsoft.cmat"),
        cmat_mapping::default_rules(29682801, 29682802, 1),
    )?;
    std::fs::write(dir.path().join("cmat.toml"), "")?;
    let rules = cmat_mapping::load_rules(dir.path())
        .unwrap_or_else(|diagnostics| panic!("the default rules must check:\n{diagnostics}"));

    let started = Instant::now();
    let mut store = Store::open(&dir.path().join(".cmat/state.db"), Access::Write)?;
    let first = NaiveDate::from_ymd_opt(2025, 12, 1).ok_or("date")?;
    let mut latest = Vec::new();
    let mut total = 0usize;
    for period in 0..PERIODS {
        let date = first.checked_add_months(Months::new(period)).ok_or("date")?;
        let mut lines = bill_lines(size, period, 10);
        for line in &mut lines {
            line.billing_date = date;
        }
        let mut import = store.begin_import(&format!("bill-{date}.csv"))?;
        for line in &lines {
            import.add_line(line)?;
        }
        import.finish()?;
        total += lines.len();
        if period + 1 == PERIODS {
            latest = lines;
        }
    }
    println!(
        "set-up: {} organizations, {} periods, {total} bill lines imported in {:.1} s",
        size.organizations,
        PERIODS,
        started.elapsed().as_secs_f64()
    );

    // Autotask as the latest period's apply leaves it.
    let mut snapshot = companies(size);
    let plan = compute(
        &PlanInputs {
            rules: &rules,
            lines: &latest,
            snapshot: &snapshot,
            mapping_sources: &[],
            inputs_digest: String::new(),
        },
        chrono::Utc::now(),
    )
    .map_err(|errors| format!("{} picklist errors", errors.len()))?;
    play(&plan, &mut snapshot);
    snapshot.refreshed_at = Some(chrono::Utc::now());
    store.replace_snapshot(&snapshot)?;
    println!(
        "snapshot: {} contracts, {} contract services, {} unit periods, {} charges",
        snapshot.contracts.len(),
        snapshot.contract_services.len(),
        snapshot.contract_service_units.len(),
        snapshot.charges.len()
    );
    drop((latest, plan, snapshot, store));
    run_measures(dir.path())
}

/// A folder, as `tempfile::TempDir` shows it.
struct Dir(std::path::PathBuf);

impl Dir {
    fn path(&self) -> &Path {
        &self.0
    }
}

fn run_measures(root: &Path) -> Result<(), Box<dyn std::error::Error>> {
    for format in ["html", "csv", "json"] {
        let output = Command::new(std::env::current_exe()?)
            .args(["--measure", &root.display().to_string(), format])
            .output()?;
        print!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            return Err(format!("the measured run failed: {}", output.status).into());
        }
    }
    Ok(())
}

/// One `cmat report` of the latest period, as the command does it: open the database read
/// only, check the rules, build the review, render it, write it.
fn measure(workspace: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let format = match std::env::args().next_back().as_deref() {
        Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        _ => Format::Html,
    };
    if std::env::var_os("REPORT_BENCH_PHASES").is_some() {
        // The review's own debug lines: where its time goes.
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .init();
    }
    let started = Instant::now();
    let store = Store::open(&workspace.join(".cmat/state.db"), Access::Read)?;
    let rules = cmat_mapping::load_rules(workspace)
        .unwrap_or_else(|diagnostics| panic!("the default rules must check:\n{diagnostics}"));
    let review = load::review(&store, &rules, None)?;
    let built = started.elapsed();
    // As `cmat report --out` does: rendered straight into the file.
    let out = workspace.join("review.out");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    render_to(&review, format, "bench", &mut file)?;
    drop(file);
    let total = started.elapsed();
    let written = std::fs::metadata(&out)?.len();
    println!(
        "report --format {:<4} {:>7.0} ms (review {:.0} ms, render+write {:.0} ms), {:>6.1} MB written, peak RSS {} MB; {} companies, {} exceptions, {} Azure subscriptions",
        format!("{format:?}").to_lowercase(),
        total.as_secs_f64() * 1e3,
        built.as_secs_f64() * 1e3,
        (total - built).as_secs_f64() * 1e3,
        written as f64 / 1e6,
        peak_rss_mb(),
        review.companies.len(),
        review.exceptions.len(),
        review.azure.len()
    );
    Ok(())
}

/// VmHWM of /proc/self/status, in MB; 0 when unknown.
fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()))
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}
