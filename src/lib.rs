//! cmat: reconciles Cloudmore billing into Datto Autotask PSA.
//!
//! The flow runs one way, one module per stage (see ARCHITECTURE.md):
//! mapping rules → sources → desired state → diff → plan → apply → journal/audit.

// Lints that keep the code as issue 26 left it: no `unwrap`/`expect` outside tests (a clear
// typed error instead), no shipped function over 50 lines of code (clippy.toml). CI denies warnings.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod audit;
pub mod autotask;
pub mod cli;
pub mod cloudmore;
pub mod import;
pub mod json_kind;
pub(crate) mod locks;
pub mod logging;
pub mod report;
pub mod store;
pub mod webhook;
pub mod workflow;
pub mod workspace;
