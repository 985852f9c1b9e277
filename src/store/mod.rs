//! The state database (`.cmat/state.db`): the only module that speaks SQL.
//!
//! STUB: signatures agreed between stages; the [store] issue fills in the bodies.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};

use crate::billing::{BillKey, BillLine};
use crate::snapshot::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("workspace is busy (pid {pid}): another cmat is writing to {path}")]
    Busy { pid: String, path: String },
    #[error("{path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Whether this process intends to write; writers hold the workspace lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

pub struct Store {
    _private: (),
}

/// What one import did, per bill (organization + Billing Date).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub lines: u64,
    pub new_bills: Vec<BillKey>,
    pub unchanged_bills: Vec<BillKey>,
    pub restated_bills: Vec<BillKey>,
}

/// An import in progress: lines go in one by one (streaming); nothing is visible until `finish`.
/// Dropping it without `finish` rolls everything back.
pub struct Import<'a> {
    _store: &'a mut Store,
}

impl Import<'_> {
    pub fn add_line(&mut self, _line: &BillLine) -> Result<(), StoreError> {
        unimplemented!("store stub")
    }
    pub fn finish(self) -> Result<ImportSummary, StoreError> {
        unimplemented!("store stub")
    }
}

/// A write cmat is about to send (journal), recorded before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalIntent {
    pub run_id: String,
    /// The plan change's ref ("c12").
    pub change_ref: String,
    pub action: String,
    pub entity: String,
    /// The natural key ("subscription:…/item:…") used to find the record if the outcome is unknown.
    pub key: String,
    /// The JSON body sent (never contains secrets: those travel only in headers).
    pub request_body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalOutcome {
    Pending,
    Done {
        autotask_id: Option<i64>,
    },
    Failed {
        message: String,
    },
    /// Sent, but no answer came (timeout, dropped connection): must be looked up before any resend.
    Unknown {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub id: i64,
    pub intent: JournalIntent,
    pub outcome: JournalOutcome,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Applied,
    Failed,
    Skipped,
}

/// One field written (or not) to Autotask, in the SPEC.md audit column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub run_id: String,
    pub at: DateTime<Utc>,
    pub action: String,
    pub entity: String,
    pub autotask_id: Option<i64>,
    pub key: String,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub rule: String,
    pub outcome: AuditOutcome,
    pub http_status: Option<u16>,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub run_id: Option<String>,
    pub since: Option<NaiveDate>,
}

impl Store {
    /// Opens (creating and migrating) the database. `Access::Write` takes the workspace lock.
    pub fn open(_path: &Path, _access: Access) -> Result<Store, StoreError> {
        unimplemented!("store stub")
    }
    pub fn begin_import(&mut self, _source_name: &str) -> Result<Import<'_>, StoreError> {
        unimplemented!("store stub")
    }
    /// Every line of every current bill (restated bills: only their latest version).
    pub fn bill_lines(&self) -> Result<Vec<BillLine>, StoreError> {
        unimplemented!("store stub")
    }
    /// "sha256:…" over the current bills' contents; changes exactly when a bill is added or restated.
    pub fn inputs_digest(&self) -> Result<String, StoreError> {
        unimplemented!("store stub")
    }
    pub fn load_snapshot(&self) -> Result<Snapshot, StoreError> {
        unimplemented!("store stub")
    }
    /// Replaces the whole snapshot in one transaction (a failed pull leaves the old one).
    pub fn replace_snapshot(&mut self, _snapshot: &Snapshot) -> Result<(), StoreError> {
        unimplemented!("store stub")
    }
    /// Inserts or replaces each record present in `records` (by id); `refreshed_at` untouched.
    pub fn merge_snapshot(&mut self, _records: &Snapshot) -> Result<(), StoreError> {
        unimplemented!("store stub")
    }
    /// Removes deleted charges from the snapshot.
    pub fn remove_charges(&mut self, _ids: &[i64]) -> Result<(), StoreError> {
        unimplemented!("store stub")
    }
    pub fn journal_intent(&mut self, _intent: &JournalIntent) -> Result<i64, StoreError> {
        unimplemented!("store stub")
    }
    pub fn journal_outcome(
        &mut self,
        _id: i64,
        _outcome: &JournalOutcome,
    ) -> Result<(), StoreError> {
        unimplemented!("store stub")
    }
    /// Entries still Pending or Unknown, oldest first.
    pub fn journal_unresolved(&self) -> Result<Vec<JournalEntry>, StoreError> {
        unimplemented!("store stub")
    }
    pub fn append_audit(&mut self, _rows: &[AuditRow]) -> Result<(), StoreError> {
        unimplemented!("store stub")
    }
    pub fn audit_rows(&self, _filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        unimplemented!("store stub")
    }
    /// Small named values (last successful sync's inputs digest, …).
    pub fn get_meta(&self, _key: &str) -> Result<Option<String>, StoreError> {
        unimplemented!("store stub")
    }
    pub fn set_meta(&mut self, _key: &str, _value: &str) -> Result<(), StoreError> {
        unimplemented!("store stub")
    }
}
