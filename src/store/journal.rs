//! The journal (each Autotask write, recorded before it is sent, then its outcome) and the
//! append-only audit trail. This file has no UPDATE or DELETE on `audit`; triggers refuse them.

use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension};

use crate::audit::{ChainBreak, ChainCheck, RowPlace};

use super::sql::{get_timestamp, timestamp};
use super::{
    meta_keys, AuditFilter, AuditOutcome, AuditRow, ChainedAuditRow, JournalEntry, JournalIntent,
    JournalOutcome, Store, StoreError,
};

impl JournalOutcome {
    fn state(&self) -> &'static str {
        match self {
            JournalOutcome::Pending => "pending",
            JournalOutcome::Done { .. } => "done",
            JournalOutcome::Failed { .. } => "failed",
            JournalOutcome::Unknown { .. } => "unknown",
        }
    }
}

impl AuditOutcome {
    /// The word SPEC.md's audit CSV uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Applied => "applied",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Option<AuditOutcome> {
        match text {
            "applied" => Some(AuditOutcome::Applied),
            "failed" => Some(AuditOutcome::Failed),
            "skipped" => Some(AuditOutcome::Skipped),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected value {0:?}")]
struct UnexpectedValue(String);

impl Store {
    /// Runs `work` in one transaction, committed once at the end (rolled back on an error):
    /// apply's journal thread commits the records of all its writer threads at once, so that no
    /// write waits for a commit of its own.
    pub fn in_one_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| self.wrap(e))?;
        let done = work(self).and_then(|value| {
            self.conn.execute_batch("COMMIT").map_err(|e| self.wrap(e))?;
            Ok(value)
        });
        if done.is_err() && !self.conn.is_autocommit() {
            // The error being returned says what went wrong; a failed rollback adds nothing.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        done
    }

    /// Records a write about to be sent (Pending); returns the entry's id.
    pub fn journal_intent(&mut self, intent: &JournalIntent) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO journal (run_id, change_ref, action, entity, key, request_body, state,
                                      recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)",
                params![
                    intent.run_id,
                    intent.change_ref,
                    intent.action,
                    intent.entity,
                    intent.key,
                    intent.request_body,
                    timestamp(&Utc::now()),
                ],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn journal_outcome(&mut self, id: i64, outcome: &JournalOutcome) -> Result<(), StoreError> {
        let (autotask_id, message) = match outcome {
            JournalOutcome::Pending => (None, None),
            JournalOutcome::Done { autotask_id } => (*autotask_id, None),
            JournalOutcome::Failed { message } | JournalOutcome::Unknown { message } => {
                (None, Some(message.as_str()))
            }
        };
        let changed = self
            .conn
            .execute(
                "UPDATE journal SET state = ?1, autotask_id = ?2, message = ?3, resolved_at = ?4
                 WHERE id = ?5",
                params![outcome.state(), autotask_id, message, timestamp(&Utc::now()), id],
            )
            .map_err(|e| self.wrap(e))?;
        if changed == 0 {
            return Err(StoreError::NoJournalEntry { path: self.path.display().to_string(), id });
        }
        Ok(())
    }

    /// Entries still Pending or Unknown, oldest first.
    pub fn journal_unresolved(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let read = || -> rusqlite::Result<Vec<JournalEntry>> {
            let mut statement = self.conn.prepare(
                "SELECT id, run_id, change_ref, action, entity, key, request_body, state, message,
                        recorded_at
                 FROM journal WHERE state IN ('pending', 'unknown') ORDER BY id",
            )?;
            let rows = statement.query_map([], |row| {
                let state: String = row.get(7)?;
                let message: Option<String> = row.get(8)?;
                let outcome = match state.as_str() {
                    "pending" => JournalOutcome::Pending,
                    _ => JournalOutcome::Unknown { message: message.unwrap_or_default() },
                };
                Ok(JournalEntry {
                    id: row.get(0)?,
                    intent: JournalIntent {
                        run_id: row.get(1)?,
                        change_ref: row.get(2)?,
                        action: row.get(3)?,
                        entity: row.get(4)?,
                        key: row.get(5)?,
                        request_body: row.get(6)?,
                    },
                    outcome,
                    recorded_at: get_timestamp(row, 9)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.wrap(e))
    }

    /// Every write Autotask took (state done), in the order they were journaled, with the id
    /// it answered: what `cmat revert` undoes.
    pub fn journal_done(&self) -> Result<Vec<(JournalIntent, Option<i64>)>, StoreError> {
        let read = || -> rusqlite::Result<Vec<(JournalIntent, Option<i64>)>> {
            let mut statement = self.conn.prepare(
                "SELECT run_id, change_ref, action, entity, key, request_body, autotask_id
                 FROM journal WHERE state = 'done' ORDER BY id",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    JournalIntent {
                        run_id: row.get(0)?,
                        change_ref: row.get(1)?,
                        action: row.get(2)?,
                        entity: row.get(3)?,
                        key: row.get(4)?,
                        request_body: row.get(5)?,
                    },
                    row.get(6)?,
                ))
            })?;
            rows.collect()
        };
        read().map_err(|e| self.wrap(e))
    }

    /// Appends rows to the audit trail, all or none, each chained to the row before.
    pub fn append_audit(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        let result = (|| -> rusqlite::Result<()> {
            // A savepoint, so that the rows also go inside `in_one_transaction`.
            let tx = self.conn.savepoint()?;
            {
                let mut prev: String = tx
                    .query_row("SELECT digest FROM audit ORDER BY id DESC LIMIT 1", [], |row| {
                        row.get(0)
                    })
                    .optional()?
                    .unwrap_or_default();
                let mut statement = tx.prepare(
                    "INSERT INTO audit (run_id, at, action, entity, autotask_id, key, field,
                                        old_value, new_value, rule, outcome, http_status, message,
                                        prev_digest, digest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )?;
                for row in rows {
                    let digest = crate::audit::link_digest(&prev, &crate::audit::cells(row));
                    statement.execute(params![
                        row.run_id,
                        timestamp(&row.at),
                        row.action,
                        row.entity,
                        row.autotask_id,
                        row.key,
                        row.field,
                        row.old_value,
                        row.new_value,
                        row.rule,
                        row.outcome.as_str(),
                        row.http_status,
                        row.message,
                        prev,
                        digest,
                    ])?;
                    prev = digest;
                }
                if !rows.is_empty() {
                    set_chain_head(&tx, tx.last_insert_rowid(), &prev)?;
                }
            }
            tx.commit()
        })();
        result.map_err(|e| self.wrap(e))
    }

    /// Audit rows in the order they were appended; `since` compares the UTC date of `at`.
    pub fn audit_rows(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        Ok(self.audit_chain(filter)?.into_iter().map(|chained| chained.row).collect())
    }

    /// Audit rows with their chain, in the order they were appended.
    pub fn audit_chain(&self, filter: &AuditFilter) -> Result<Vec<ChainedAuditRow>, StoreError> {
        let mut rows = Vec::new();
        each_audit_row(&self.conn, filter, |row| {
            rows.push(row);
            true
        })
        .map_err(|e| self.wrap(e))?;
        Ok(rows)
    }

    /// Checks the whole trail's hash chain, row by row in id order, and that it still ends
    /// where the last append left it. Reads one row at a time.
    pub fn verify_audit_chain(&self) -> Result<ChainVerdict, StoreError> {
        let mut check = ChainCheck::from_start();
        let mut broken = None;
        each_audit_row(&self.conn, &AuditFilter::default(), |chained| {
            let cells = crate::audit::cells(&chained.row);
            let place = RowPlace::Row(chained.id);
            match check.push(place, &cells, &chained.prev_digest, &chained.digest) {
                Ok(()) => true,
                Err(found) => {
                    broken = Some(found);
                    false
                }
            }
        })
        .map_err(|e| self.wrap(e))?;
        if broken.is_none() {
            broken = self.truncation(&check)?;
        }
        Ok(ChainVerdict { rows: check.rows(), head: check.head().map(str::to_string), broken })
    }

    /// A trail that ends before the head the last append recorded.
    fn truncation(&self, check: &ChainCheck) -> Result<Option<ChainBreak>, StoreError> {
        let Some(head) = self.get_meta(meta_keys::AUDIT_CHAIN_HEAD)? else {
            return Ok(None);
        };
        let (id, digest) = head.split_once(' ').unwrap_or(("0", head.as_str()));
        if check.head() == Some(digest) {
            return Ok(None);
        }
        Ok(Some(ChainBreak::Truncated { last: check.last(), recorded: id.parse().unwrap_or(0) }))
    }
}

/// What `verify_audit_chain` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerdict {
    pub rows: u64,
    /// The last row's digest (none for an empty trail).
    pub head: Option<String>,
    pub broken: Option<ChainBreak>,
}

fn set_chain_head(conn: &Connection, id: i64, digest: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![meta_keys::AUDIT_CHAIN_HEAD, format!("{id} {digest}")],
    )?;
    Ok(())
}

/// Calls `visit` with each matching audit row in id order until it returns false.
fn each_audit_row(
    conn: &Connection,
    filter: &AuditFilter,
    mut visit: impl FnMut(ChainedAuditRow) -> bool,
) -> rusqlite::Result<()> {
    let since = filter.since.map(|d| d.format("%Y-%m-%d").to_string());
    let mut statement = conn.prepare(
        "SELECT run_id, at, action, entity, autotask_id, key, field, old_value, new_value,
                rule, outcome, http_status, message, id, prev_digest, digest
         FROM audit
         WHERE (?1 IS NULL OR run_id = ?1) AND (?2 IS NULL OR substr(at, 1, 10) >= ?2)
         ORDER BY id",
    )?;
    let mut rows = statement.query(params![filter.run_id, since])?;
    while let Some(row) = rows.next()? {
        if !visit(chained_audit_row(row)?) {
            break;
        }
    }
    Ok(())
}

/// One row of [`each_audit_row`]'s query; an outcome this cmat does not know is an error.
fn chained_audit_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChainedAuditRow> {
    let outcome: String = row.get(10)?;
    let outcome = AuditOutcome::parse(&outcome).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            10,
            rusqlite::types::Type::Text,
            Box::new(UnexpectedValue(outcome.clone())),
        )
    })?;
    let audit = AuditRow {
        run_id: row.get(0)?,
        at: get_timestamp(row, 1)?,
        action: row.get(2)?,
        entity: row.get(3)?,
        autotask_id: row.get(4)?,
        key: row.get(5)?,
        field: row.get(6)?,
        old_value: row.get(7)?,
        new_value: row.get(8)?,
        rule: row.get(9)?,
        outcome,
        http_status: row.get(11)?,
        message: row.get(12)?,
    };
    Ok(ChainedAuditRow {
        id: row.get(13)?,
        row: audit,
        prev_digest: row.get(14)?,
        digest: row.get(15)?,
    })
}

/// Migration 0011's step: chains the rows an older cmat wrote, from the first, in id order,
/// and puts back the trigger that refuses updates.
pub(super) fn chain_existing_audit_rows(conn: &Connection) -> rusqlite::Result<()> {
    let mut links = Vec::new();
    let mut prev = String::new();
    each_audit_row(conn, &AuditFilter::default(), |chained| {
        let digest = crate::audit::link_digest(&prev, &crate::audit::cells(&chained.row));
        links.push((chained.id, std::mem::replace(&mut prev, digest.clone()), digest));
        true
    })?;
    {
        let mut update =
            conn.prepare("UPDATE audit SET prev_digest = ?1, digest = ?2 WHERE id = ?3")?;
        for (id, prev, digest) in &links {
            update.execute(params![prev, digest, id])?;
        }
    }
    if let Some((id, _, digest)) = links.last() {
        set_chain_head(conn, *id, digest)?;
    }
    conn.execute_batch(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
         BEGIN
             SELECT RAISE(ABORT, 'the audit trail is append-only');
         END;",
    )
}
