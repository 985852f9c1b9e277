//! `cmat-sim --listen ADDR [--seed FILE] [--latency-ms N]`: the local Autotask (and Cloudmore)
//! API simulator, serving until killed. All the logic lives in the `cmat_sim` library.

// Lints that keep the code as issue 26 left it: no `unwrap`/`expect` outside tests (a clear
// typed error instead), no shipped function over 100 lines (clippy.toml). CI denies warnings.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cmat_sim::{Seed, SimOptions, Simulator};

#[derive(Parser)]
#[command(name = "cmat-sim", version, about = "A local Autotask (and Cloudmore) API simulator")]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Seed file (the API's JSON shape); default: the bundled demo tenant.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Latency added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = match &args.seed {
        Some(path) => match Seed::from_file(path) {
            Ok(seed) => seed,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Seed::bundled(),
    };
    let options =
        SimOptions { latency: Duration::from_millis(args.latency_ms), ..SimOptions::default() };
    let handle = match Simulator::start(&args.listen, seed, options) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let creds = handle.credentials();
    println!("cmat-sim listening on {}", handle.base_url());
    println!("  zone lookup:  {}?user={}", handle.zone_lookup_url(), creds.username);
    println!("  credentials:  CMAT_AUTOTASK_USERNAME={}", creds.username);
    println!("                CMAT_AUTOTASK_SECRET={}", creds.secret);
    println!("                CMAT_AUTOTASK_INTEGRATION_CODE={}", creds.integration_code);
    println!("  cloudmore:    {}", handle.cloudmore_base_url());
    let control = if cfg!(feature = "faults") {
        "faults,log,counters,state,reset"
    } else {
        "log,counters,state,reset"
    };
    println!("  control:      {}/_sim/{{{control}}}", handle.root_url());
    loop {
        std::thread::park();
    }
}
