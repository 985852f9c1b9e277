//! Early writeback of the WAL while an import appends to it.
//!
//! A first import writes its blocks (125 MB for a million lines) into the WAL, and SQLite syncs
//! them all at once when the commit's checkpoint starts: 0.14 s of waiting on the disk, with
//! nothing else to do. A helper thread asks the kernel to write the WAL out as it grows (every
//! [`FLUSH_EVERY`] bytes of blocks), while the import is still parsing, so that the final sync
//! finds little left. This is what RocksDB's `wal_bytes_per_sync` does for its own log.
//!
//! It changes nothing SQLite relies on: a sync only makes data durable sooner, and SQLite
//! still syncs the WAL itself before its checkpoint. Errors are ignored for that reason (a
//! WAL not created yet, a platform where a read-only handle cannot be synced): the only cost
//! of a flush that did not happen is the wait it would have saved.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// Bytes of blocks written between two flushes.
const FLUSH_EVERY: usize = 16 * 1024 * 1024;

pub(super) struct WalFlusher {
    /// Dropped to stop the thread.
    requests: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Block bytes written since the last request.
    unflushed: usize,
}

impl WalFlusher {
    /// A flusher for the WAL of the database at `database` (its `-wal` file).
    pub(super) fn start(database: &Path) -> WalFlusher {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (requests, received) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("cmat-wal-flush".into())
            .spawn(move || {
                let mut file: Option<File> = None;
                for () in received {
                    if file.is_none() {
                        file = File::open(&wal).ok();
                    }
                    if let Some(file) = &file {
                        let _ = file.sync_data();
                    }
                }
            })
            .ok();
        WalFlusher { requests: thread.as_ref().map(|_| requests), thread, unflushed: 0 }
    }

    /// Counts `bytes` more written to the database; past [`FLUSH_EVERY`], asks for a flush
    /// (without waiting for it; a flush still running takes this one's place).
    pub(super) fn wrote(&mut self, bytes: usize) {
        self.unflushed += bytes;
        if self.unflushed >= FLUSH_EVERY {
            self.unflushed = 0;
            if let Some(requests) = &self.requests {
                let _ = requests.try_send(());
            }
        }
    }
}

impl Drop for WalFlusher {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_a_growing_wal_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("state.db");
        std::fs::write(dir.path().join("state.db-wal"), b"frames").unwrap();
        let mut flusher = WalFlusher::start(&database);
        assert!(flusher.requests.is_some(), "the thread started");
        flusher.wrote(FLUSH_EVERY - 1);
        assert_eq!(flusher.unflushed, FLUSH_EVERY - 1);
        flusher.wrote(1);
        assert_eq!(flusher.unflushed, 0, "a flush was asked for");
        drop(flusher);
    }

    #[test]
    fn a_missing_wal_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut flusher = WalFlusher::start(&dir.path().join("absent.db"));
        flusher.wrote(FLUSH_EVERY);
        assert_eq!(flusher.unflushed, 0, "a flush was asked for");
        // The request is served (the thread finds no WAL) and the thread ends cleanly, without
        // panicking, once the requests stop; no WAL file is created by the attempt.
        flusher.requests = None;
        let thread = flusher.thread.take().expect("the thread started");
        assert!(thread.join().is_ok(), "the flush thread panicked on a missing WAL");
        assert!(!dir.path().join("absent.db-wal").exists());
    }
}
