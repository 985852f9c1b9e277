//! The journal thread of an apply: writer threads hand it intents, outcomes and audit rows,
//! and it commits them in batches, so the database never holds the network back.

use std::sync::mpsc;

use crate::store::{AuditRow, JournalIntent, JournalOutcome, Store, StoreError};

/// Tells the journal thread that every writer is done, when dropped.
pub(super) struct FinishOnDrop<'a>(pub(super) &'a Journal);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.send(Record::Finish);
    }
}

/// What a writer thread hands the journal thread.
pub(super) enum Record {
    /// A write about to be sent; the entry's id goes back once committed (`None`: the state
    /// database failed, and the write must not be sent).
    Intent(JournalIntent, mpsc::SyncSender<Option<i64>>),
    Outcome(i64, JournalOutcome),
    Audit(Vec<AuditRow>),
    /// Every writer is done: commit what is left and stop.
    Finish,
}

/// The writer threads' way to the journal thread.
pub(super) struct Journal(pub(super) mpsc::Sender<Record>);

impl Journal {
    /// Journals a write about to be sent and waits for the commit: the entry's id, or `None`
    /// when the state database failed (nothing may be sent then).
    pub(super) fn intent(&self, intent: JournalIntent) -> Option<i64> {
        let (reply, committed) = mpsc::sync_channel(1);
        self.0.send(Record::Intent(intent, reply)).ok()?;
        committed.recv().ok().flatten()
    }

    /// Queues a record that nothing waits for (an outcome, audit rows). Were the journal
    /// thread gone, the store failed and the run reports that.
    pub(super) fn send(&self, record: Record) {
        let _ = self.0.send(record);
    }
}

/// The journal thread: commits each batch of records in one transaction, then tells the
/// waiting writers their intents' ids. A store failure goes to `on_failure` (it stops the run).
pub(super) fn keep_journal(
    store: &mut Store,
    records: &mpsc::Receiver<Record>,
    on_failure: &dyn Fn(StoreError),
) {
    while let Ok(first) = records.recv() {
        let mut batch = vec![first];
        batch.extend(records.try_iter());
        let committed = store.in_one_transaction(|store| {
            let mut ids = Vec::new();
            for record in &batch {
                match record {
                    Record::Intent(intent, _) => ids.push(store.journal_intent(intent)?),
                    Record::Outcome(id, outcome) => store.journal_outcome(*id, outcome)?,
                    Record::Audit(rows) => store.append_audit(rows)?,
                    Record::Finish => {}
                }
            }
            Ok(ids)
        });
        let mut ids = match committed {
            Ok(ids) => ids.into_iter(),
            Err(err) => {
                on_failure(err);
                Vec::new().into_iter()
            }
        };
        let mut finished = false;
        for record in batch {
            match record {
                Record::Intent(_, reply) => {
                    let _ = reply.send(ids.next());
                }
                Record::Finish => finished = true,
                _ => {}
            }
        }
        if finished {
            return;
        }
    }
}
