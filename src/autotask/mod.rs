//! Autotask PSA: the REST client (the only code that speaks HTTP to Autotask), the typed query
//! builder, record conversion to the domain types, the snapshot pull and the `init` look-ups.

pub mod client;
pub mod error;
mod pacing;
mod parallel;
pub mod query;
pub mod records;

pub use client::{
    AutotaskClient, ClientOptions, Clock, FieldInfo, PacingMemory, PicklistValue, RecordingClock,
    SystemClock, Threshold, WritesInFlight, DEFAULT_SLOT_RELEASE_GROWTH,
    DEFAULT_SLOT_RELEASE_MAX_MS, DEFAULT_SLOT_RELEASE_MS,
};
pub use error::{AutotaskError, Rejection};
pub use query::{chunked_in, Condition, Filter, FilterError, FilterValue, GroupOp, Item, Op};
pub mod discover;
pub mod doctor;
pub mod pull;
pub mod read;

pub use discover::{discover_ids, discover_ids_for, BillingCodeChoice, Discovery};
pub use pull::{
    pull_into_store, pull_snapshot, EntityRead, FullReason, Previous, PullOptions, PullProgress,
    PullReport, Pulled,
};
pub use read::PullError;
pub mod adapter;

pub use adapter::{
    read_scope, write_failure, ApplyConnection, AutotaskReader, AutotaskWriter, WriteFailure,
};
