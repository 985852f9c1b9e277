//! The engine: from a bill and the rules to the plan of Autotask writes, as pure functions.
//!
//! The flow runs one way, one module per stage (see ARCHITECTURE.md):
//! rules + bill lines → desired state → (with the snapshot and its picklists) diff → plan.
//! No network, no database, no clock: this crate does not depend on anything that could, so
//! the same inputs give the same plan, and every stage is tested without a server.

// No shipped function over 50 lines of code (clippy.toml), so each one reads on a screen; test
// code is left out, as fn_lengths.py leaves it out.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]
// A panic in the engine would lose a run's plan: errors are typed, never unwrapped.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Every pub item says what it is for: the engine is the part a newcomer reads first.
#![deny(missing_docs)]

pub mod adopt;
pub mod billing;
pub mod desired;
pub mod diff;
pub mod explain;
pub mod picklists;
pub mod plan;
pub mod revert;
pub mod rules;
pub mod scope;
pub mod snapshot;
pub mod spreadsheet;
pub mod table;
pub mod write;

#[cfg(any(test, feature = "testing"))]
// Test support, never shipped.
#[allow(clippy::too_many_lines, clippy::unwrap_used, clippy::expect_used)]
pub mod testing;

#[cfg(test)]
mod convergence;
