//! Autotask PSA: the REST client (the only code that speaks HTTP to Autotask), the typed query
//! builder, record conversion to the domain types, the snapshot pull and the `init` look-ups.

pub mod client;
pub mod query;
pub mod records;

pub use client::{
    AutotaskClient, AutotaskError, ClientOptions, FieldInfo, PicklistValue, Threshold,
};
pub use query::{chunked_in, Condition, Filter, FilterError, FilterValue, GroupOp, Item, Op};
