//! The state database (`.cmat/state.db`): the only module that speaks SQL.
//!
//! - The schema is built by append-only, numbered migrations (`migrations/NNNN_*.sql`), applied
//!   on open inside one transaction and counted in `PRAGMA user_version`. A shipped migration is
//!   never edited: add one.
//! - WAL mode, `synchronous=NORMAL`: readers never wait for a writer, a commit survives a crash of
//!   the process (only a power loss can lose the last transactions, never corrupt the file).
//! - Writers (`Access::Write`) hold an exclusive lock on `.cmat/lock` for as long as the `Store`
//!   lives, so two `cmat import`/`apply` runs never interleave; the file names the holder (pid,
//!   command, since when) for the second one's message (`lock.rs`).
//! - Money and quantities are stored as TEXT decimal strings (never REAL), dates as ISO TEXT,
//!   timestamps as RFC 3339 UTC; tables are STRICT so SQLite refuses anything else.
//! - The audit trail is append-only: this module has no UPDATE or DELETE on it, and triggers make
//!   the database refuse them.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension};

use cmat_engine::billing::BillKey;

mod bills;
mod journal;
mod line_blocks;
mod lock;
mod review;
mod snapshot;
mod sql;
mod synced;
mod wal_flush;

pub use bills::{BillInfo, OrganizationInfo};
pub use journal::ChainVerdict;
pub use line_blocks::StoredLine;
pub use lock::LockHolder;
pub use review::{BillRevision, History, ReviewLine};
pub use snapshot::SnapshotCounts;

/// Well-known keys of the `meta` table.
pub mod meta_keys {
    /// When the Autotask snapshot was last read (RFC 3339 UTC); written by `replace_snapshot`.
    pub const SNAPSHOT_REFRESHED_AT: &str = "snapshot.refreshed_at";
    /// Where the last pull left each entity (JSON `PullMarks`); written by
    /// `replace_pulled_snapshot` with the snapshot it describes.
    pub const PULL_MARKS: &str = "snapshot.pull_marks";
    /// The records the last pull kept out as incomplete (JSON, `Entity/id` → record).
    pub const SNAPSHOT_INCOMPLETE: &str = "snapshot.incomplete";
    /// When the last successful `sync` ended (RFC 3339 UTC); `status` shows it.
    pub const LAST_SYNC_AT: &str = "last_sync.at";
    /// Requests the last sync sent to Autotask (`cmat doctor` shows it beside the budget).
    pub const LAST_SYNC_REQUESTS: &str = "last_sync.requests";
    /// The inputs digest the last successful `sync` applied.
    pub const LAST_SYNC_INPUTS_DIGEST: &str = "last_sync.inputs_digest";
    /// The mappings digest the last successful `sync` applied.
    pub const LAST_SYNC_MAPPINGS_DIGEST: &str = "last_sync.mappings_digest";
    /// The audit trail's last row, "ID DIGEST", written with each append: a trail whose last
    /// rows were deleted no longer ends there.
    pub const AUDIT_CHAIN_HEAD: &str = "audit.chain_head";
    /// What the last sync's re-plan still held after writing (JSON list of
    /// `NotConverged`): `report` lists it among the exceptions.
    pub const LAST_SYNC_NOT_CONVERGED: &str = "last_sync.not_converged";
}

/// A change a sync wrote (or meant to) and that its own re-plan still holds: writing it again
/// would not settle it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotConverged {
    pub action: String,
    pub entity: String,
    pub key: String,
    pub reason: String,
    pub rule: String,
}

/// One step of the schema: its SQL, then, where SQL cannot say it, a step in Rust.
struct Migration {
    sql: &'static str,
    then: Option<fn(&Connection) -> rusqlite::Result<()>>,
}

const fn sql(sql: &'static str) -> Migration {
    Migration { sql, then: None }
}

/// The schema, one migration per entry, in order. Append only.
const MIGRATIONS: &[Migration] = &[
    sql(include_str!("migrations/0001_bills.sql")),
    sql(include_str!("migrations/0002_autotask_snapshot.sql")),
    sql(include_str!("migrations/0003_plans_journal_audit.sql")),
    sql(include_str!("migrations/0004_autotask_as_it_is.sql")),
    sql(include_str!("migrations/0005_bill_line_terms.sql")),
    sql(include_str!("migrations/0006_bill_totals.sql")),
    sql(include_str!("migrations/0007_synced_subscriptions.sql")),
    sql(include_str!("migrations/0009_organization_groups.sql")),
    Migration {
        sql: include_str!("migrations/0010_bill_line_blocks.sql"),
        then: Some(line_blocks::move_lines_into_blocks),
    },
    Migration {
        sql: include_str!("migrations/0011_audit_chain.sql"),
        then: Some(journal::chain_existing_audit_rows),
    },
];

/// The schema version this build writes (`PRAGMA user_version` after every migration).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// A connection's page cache: 32 MiB (an import keeps less while it runs, `bills.rs`).
const CACHE_SIZE: &str = "PRAGMA cache_size = -32768;";

/// The page size of a new database (an existing one keeps its own: a WAL database cannot
/// change it). A state database is mostly bill-line blocks, 64 KiB BLOBs: with SQLite's
/// default 4 KiB page, the million-line import wrote, logged and checkpointed 30,000 pages,
/// one system call each way; 16 KiB pages made it 11–15 % faster (BENCHMARKS.md, issue 15).
const NEW_PAGE_SIZE: &str = "PRAGMA page_size = 16384;";

/// The lock file writers hold, next to the database.
pub const LOCK_FILE: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the workspace lock (see `lock.rs`).
    #[error("workspace is busy: another cmat ({}) is writing to {path}; nothing was done. Run again when it has finished", lock::describe(.holder))]
    Busy { holder: Option<LockHolder>, path: String },
    #[error("{path}: state database error")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("{path}: {action}")]
    Io { path: String, action: &'static str, source: std::io::Error },
    #[error(
        "{path}: the state database has schema version {found}, newer than this cmat knows ({known}); \
         upgrade cmat"
    )]
    NewerSchema { path: String, found: u32, known: u32 },
    #[error("{path}: no journal entry {id}")]
    NoJournalEntry { path: String, id: i64 },
    /// A value cmat stored itself no longer reads back (or could not be written as text).
    #[error("{path}: {what} is not readable")]
    Unreadable {
        path: String,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the state database's lock was poisoned by a thread that panicked")]
    Poisoned,
}

/// Whether this process intends to write; writers hold the workspace lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Held (and locked) for the store's lifetime by writers; the OS releases it on exit.
    _lock: Option<File>,
}

/// What one import did, per bill (organization + Billing Date).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub lines: u64,
    pub new_bills: Vec<BillKey>,
    pub unchanged_bills: Vec<BillKey>,
    pub restated_bills: Vec<BillKey>,
}

pub use bills::{encode_line, Import};
pub use synced::subscription_digests;

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

/// An audit row with its place in the hash chain (`audit.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedAuditRow {
    pub id: i64,
    pub row: AuditRow,
    /// The digest of the row before; empty for the workspace's first row.
    pub prev_digest: String,
    pub digest: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub run_id: Option<String>,
    /// Rows whose `at` falls on this UTC date or later.
    pub since: Option<NaiveDate>,
}

impl Store {
    /// Opens (creating and migrating) the database. `Access::Write` takes the workspace lock.
    ///
    /// A missing database folder (`.cmat/`) is created with mode 0700 and a missing database
    /// with mode 0600 (SQLite gives its WAL and shared-memory files the same mode).
    pub fn open(path: &Path, access: Access) -> Result<Store, StoreError> {
        let display = path.display().to_string();
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_private_dir(&folder)?;
        let lock = match access {
            Access::Write => Some(lock::take_lock(&folder.join(LOCK_FILE), &display)?),
            Access::Read => None,
        };
        create_private_file(path)?;
        let conn = Connection::open(path)
            .map_err(|source| StoreError::Sqlite { path: display.clone(), source })?;
        let mut store = Store { conn, path: path.to_path_buf(), _lock: lock };
        store.configure().map_err(|e| store.wrap(e))?;
        store.migrate(MIGRATIONS)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        user_version(&self.conn).map_err(|e| self.wrap(e))
    }

    fn configure(&self) -> rusqlite::Result<()> {
        // busy_timeout first: a reader opening while another process migrates waits for it.
        self.conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Before journal_mode: it writes the database's first page, which fixes its size.
        self.conn.execute_batch(NEW_PAGE_SIZE)?;
        // journal_mode answers with a row; read it rather than execute.
        let _mode: String =
            self.conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        self.conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA journal_size_limit = 67108864;
             PRAGMA temp_store = FILE;",
        )?;
        self.conn.execute_batch(CACHE_SIZE)
    }

    /// Applies every migration past the database's `user_version`, all in one transaction.
    fn migrate(&mut self, migrations: &[Migration]) -> Result<(), StoreError> {
        let known = migrations.len() as u32;
        let path = self.path.display().to_string();
        let wrap = |source| StoreError::Sqlite { path: path.clone(), source };
        let current = user_version(&self.conn).map_err(wrap)?;
        if current > known {
            return Err(StoreError::NewerSchema { path, found: current, known });
        }
        if current >= known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(wrap)?;
        // Another process may have migrated while we waited for the write lock: read again.
        let current = user_version(&tx).map_err(wrap)?;
        for migration in migrations.iter().skip(current as usize) {
            tx.execute_batch(migration.sql).map_err(wrap)?;
            if let Some(step) = migration.then {
                step(&tx).map_err(wrap)?;
            }
        }
        if current < known {
            tx.pragma_update(None, "user_version", known).map_err(wrap)?;
        }
        tx.commit().map_err(wrap)
    }

    fn wrap(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite { path: self.path.display().to_string(), source }
    }

    /// Small named values (last successful sync's inputs digest, …).
    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| row.get(0))
            .optional()
            .map_err(|e| self.wrap(e))
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(|_| ())
            .map_err(|e| self.wrap(e))
    }
}

fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.display().to_string();
    move |source| StoreError::Io { path, action, source }
}

/// Creates the database folder (not its parents: the workspace itself must exist), owner-only.
fn create_private_dir(folder: &Path) -> Result<(), StoreError> {
    if folder.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(folder) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(io_error(folder, "cannot create the state folder")(err)),
    }
}

/// Creates an empty file readable by its owner only, unless it exists.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(io_error(path, "cannot create the state database")(err)),
    }
}

#[cfg(test)]
mod tests;
