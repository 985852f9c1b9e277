//! The integration tests, one binary (as uv's `tests/it`): each module drives the real `cmat`
//! binary (or the simulator, or a client against a stand-in server) through [`harness`].
//! One binary links reqwest, rustls, SQLite and proptest once instead of once per file.

mod harness;

mod adopt;
mod apply_cli;
mod apply_faults;
mod autotask_client;
mod autotask_pull_cli;
mod bad_input;
mod cloudmore_pull;
mod converge_cli;
mod doctor_cli;
mod fidelity_cli;
mod focused_pull;
mod fuzz_props;
mod help;
mod import_cli;
mod init;
mod live_quirks;
mod mapping_cli;
mod mapping_diagnostics;
mod mapping_properties;
mod price_books;
mod pull_changes_cli;
mod report;
mod revert;
mod security;
mod sim_api;
mod sync_cli;
mod trust_cli;
mod verbose;
mod workspace_lock;
