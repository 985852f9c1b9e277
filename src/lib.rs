//! cmat: reconciles Cloudmore billing into Datto Autotask PSA.
//!
//! The flow runs one way, one module per stage (see ARCHITECTURE.md):
//! mapping rules → sources → desired state → diff → plan → apply → journal/audit.

pub mod apply;
pub mod audit;
pub mod autotask;
pub mod billing;
pub mod cli;
pub mod cloudmore;
pub mod desired;
pub mod diff;
pub mod import;
pub mod json_kind;
pub mod logging;
pub mod mapping;
pub mod picklists;
pub mod plan;
pub mod rules;
pub mod sim;
pub mod snapshot;
pub mod store;
pub mod tenant;
pub mod workspace;
