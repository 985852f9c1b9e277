// Lints that keep the code as issue 26 left it: no `unwrap`/`expect` outside tests (a clear
// typed error instead), no shipped function over 100 lines (clippy.toml). CI denies warnings.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

/// mimalloc rather than the system's: see Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cmat::cli::main()
}
