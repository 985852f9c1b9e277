//! cmat: reconciles Cloudmore billing into Datto Autotask PSA.
//!
//! The flow runs one way, one module per stage (see ARCHITECTURE.md):
//! mapping rules → sources → desired state → diff → plan → apply → journal/audit.

pub mod billing;
pub mod cli;
pub mod rules;
pub mod snapshot;
pub mod store;
pub mod workspace;
