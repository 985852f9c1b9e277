//! cmat: reconciles Cloudmore billing into Datto Autotask PSA.
//!
//! The flow runs one way, one module per stage (see ARCHITECTURE.md):
//! mapping rules → sources → desired state → diff → plan → apply → journal/audit.

pub mod apply;
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
