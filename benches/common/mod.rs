//! What `benches/sync.rs` needs besides the measurements: the tenant as a simulator seed, a
//! workspace driven through the real `cmat` binary, bills as CSV, and the naive baseline.

pub mod naive;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cmat_engine::billing::BillLine;
use cmat_sim::{Seed, SimHandle};

pub const SERVICE_BILLING_CODE: i64 = 29682801;
pub const PRODUCT_BILLING_CODE: i64 = 29682802;
pub const SLA: i64 = 1;

/// What one measured step cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub wall: Duration,
    /// Peak resident memory in KiB (`/usr/bin/time -f %M`); 0 when unknown.
    pub peak_kib: u64,
    pub reads: u64,
    pub writes: u64,
}

impl Cost {
    pub fn requests(&self) -> u64 {
        self.reads + self.writes
    }

    pub fn plus(self, other: Cost) -> Cost {
        Cost {
            wall: self.wall + other.wall,
            peak_kib: self.peak_kib.max(other.peak_kib),
            reads: self.reads + other.reads,
            writes: self.writes + other.writes,
        }
    }
}

/// The simulator's counters as (reads, writes); reads are every Autotask request that is not
/// an entity write (queries, ThresholdInformation, zone look-ups).
pub fn requests(sim: &SimHandle) -> (u64, u64) {
    let counters = sim.counters();
    (counters.total - counters.writes, counters.writes)
}

/// Runs `measure` and charges it with the requests the simulator saw meanwhile.
pub fn measured<T>(sim: &SimHandle, measure: impl FnOnce() -> T) -> (T, Cost) {
    let (reads, writes) = requests(sim);
    let started = Instant::now();
    let value = measure();
    let wall = started.elapsed();
    let (reads_after, writes_after) = requests(sim);
    (value, Cost { wall, peak_kib: 0, reads: reads_after - reads, writes: writes_after - writes })
}

/// A simulator seed from the generator's JSON.
pub fn seed(json: &serde_json::Value) -> Seed {
    Seed::from_json(&json.to_string()).unwrap_or_else(|err| panic!("bench seed: {err}"))
}

/// The `cmat` binary cargo built beside this bench (`target/release/cmat`).
pub fn cmat_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_cmat") {
        return PathBuf::from(path);
    }
    // target/release/deps/sync-HASH → target/release/cmat
    let exe = std::env::current_exe().expect("the bench's own path");
    let dir = exe.parent().and_then(Path::parent).expect("target/release");
    dir.join("cmat")
}

/// A workspace in a temporary folder: cmat.toml pointing at a simulator, the default rules.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    credentials: cmat_sim::Credentials,
}

impl Workspace {
    /// With `CMAT_BENCH_KEEP` set, the folder is left behind (its path printed), to profile
    /// `cmat` in it afterwards.
    pub fn new(sim: &SimHandle) -> Workspace {
        let keep = std::env::var_os("CMAT_BENCH_KEEP").is_some();
        let dir = tempfile::Builder::new()
            .prefix("cmat-bench-")
            .disable_cleanup(keep)
            .tempdir()
            .expect("temporary folder");
        if keep {
            eprintln!("(keeping the workspace {})", dir.path().display());
        }
        std::fs::create_dir_all(dir.path().join("mappings")).expect("mappings folder");
        std::fs::write(
            dir.path().join("mappings/microsoft.cmat"),
            cmat_mapping::default_rules(SERVICE_BILLING_CODE, PRODUCT_BILLING_CODE, SLA),
        )
        .expect("write mappings");
        let workspace = Workspace { dir, credentials: sim.credentials() };
        workspace.point_at(sim);
        workspace
    }

    /// (Re)writes cmat.toml for this simulator.
    pub fn point_at(&self, sim: &SimHandle) {
        std::fs::write(
            self.path().join("cmat.toml"),
            format!("[autotask]\nbase_url = \"{}\"\n", sim.base_url()),
        )
        .expect("write cmat.toml");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_bill(&self, name: &str, lines: &[BillLine]) -> PathBuf {
        let path = self.path().join(name);
        let file = std::fs::File::create(&path).expect("create the bill");
        cmat_testkit::tenant::write_bill_csv(std::io::BufWriter::new(file), lines)
            .expect("write the bill");
        path
    }

    /// `cmat -w WS ARGS…` under `/usr/bin/time` (when present): exit code, stdout+stderr, cost.
    pub fn cmat(&self, sim: &SimHandle, args: &[&str]) -> (i32, String, Cost) {
        let time = Path::new("/usr/bin/time");
        let peak_file = self.path().join(".peak-rss");
        let mut command = if time.exists() {
            let mut c = Command::new(time);
            c.arg("-f").arg("%M").arg("-o").arg(&peak_file);
            c.arg(cmat_binary());
            c
        } else {
            Command::new(cmat_binary())
        };
        command
            .arg("-w")
            .arg(self.path())
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("CMAT_AUTOTASK_USERNAME", &self.credentials.username)
            .env("CMAT_AUTOTASK_SECRET", &self.credentials.secret)
            .env("CMAT_AUTOTASK_INTEGRATION_CODE", &self.credentials.integration_code);
        let (output, mut cost) = measured(sim, || command.output().expect("run cmat"));
        cost.peak_kib = std::fs::read_to_string(&peak_file)
            .ok()
            .and_then(|text| text.lines().last().and_then(|l| l.trim().parse().ok()))
            .unwrap_or(0);
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.code().unwrap_or(-1), text, cost)
    }

    /// Like [`Workspace::cmat`], but a failure stops the benchmark with cmat's output.
    pub fn cmat_ok(&self, sim: &SimHandle, args: &[&str]) -> Cost {
        let (code, output, cost) = self.cmat(sim, args);
        if code != 0 && code != 2 {
            let tail: Vec<&str> = output.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("cmat {} failed ({code}):\n{}", args.join(" "), tail.join("\n"));
        }
        cost
    }
}

/// Writes a line to stdout at once (progress of a long run).
pub fn say(text: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text.as_ref());
    let _ = out.flush();
}
