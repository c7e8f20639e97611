//! WAL checkpoints off the writer thread. The writer's connection runs with
//! `wal_autocheckpoint=0`; after each commit its WAL hook records how many
//! frames the log holds, and the writer wakes the checkpointer thread every
//! [`SIGNAL_FRAMES`] new frames. The checkpointer copies them into the database
//! file with `wal_checkpoint(PASSIVE)` on its own connection, beside the
//! writer's commits. A log can only start over from its beginning once
//! every frame is copied and no commit came since, which a busy writer rarely
//! leaves room for: past [`CATCH_UP_FRAMES`] the writer checkpoints itself
//! after its commit (the few frames the checkpointer has not copied yet), so
//! the next transaction restarts the log and the WAL stays bounded.

use super::open_connection;
use crate::Error;
use rusqlite::Connection;
use std::cell::Cell;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

/// New WAL frames (pages) between two wake-ups of the checkpointer.
const SIGNAL_FRAMES: u32 = 1000;

/// WAL frames past which the writer checkpoints after its commit.
const CATCH_UP_FRAMES: u32 = 4000;

thread_local! {
    /// Frames in the WAL after this thread's last commit (set by the WAL hook,
    /// which SQLite calls on the committing thread: the writer's).
    static WAL_FRAMES: Cell<u32> = const { Cell::new(0) };
}

/// The WAL hook: records the log's length.
fn on_commit(_: &rusqlite::hooks::Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(u32::try_from(frames).unwrap_or(0)));
    Ok(())
}

/// Runs one checkpoint that never waits for the writer or readers.
fn passive(conn: &Connection) -> Result<(), Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(())
}

/// The writer's side: its wake-ups and catch-ups.
pub(super) struct Checkpoints {
    wake: Option<SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The log's length when the checkpointer was last woken.
    signalled: u32,
}

impl Checkpoints {
    /// Turns off the writer connection's own checkpoints, hooks its commits,
    /// and starts the checkpointer on a connection of its own.
    pub(super) fn start(writer: &Connection, path: &Path) -> Result<Self, Error> {
        let conn = open_connection(path)?;
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.wal_hook(Some(on_commit));
        let (wake, rx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("lockstep-checkpoint".into())
            .spawn(move || run(&conn, &rx))
            .map_err(|e| Error::Internal(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpoints {
            wake: Some(wake),
            thread: Some(thread),
            signalled: 0,
        })
    }

    /// After a commit that wrote: wakes the checkpointer every
    /// `SIGNAL_FRAMES` frames, and past `CATCH_UP_FRAMES` checkpoints here.
    pub(super) fn committed(&mut self, writer: &Connection) {
        let frames = WAL_FRAMES.with(Cell::get);
        if frames < self.signalled {
            // The log started over.
            self.signalled = 0;
        }
        if frames >= CATCH_UP_FRAMES {
            // Busy when the checkpointer is at work: the next commit tries again.
            if let Err(e) = passive(writer) {
                tracing::debug!(error = %e, "writer checkpoint");
            }
        } else if frames >= self.signalled + SIGNAL_FRAMES {
            self.signalled = frames;
            if let Some(wake) = &self.wake {
                // Full: a wake-up is already pending.
                if let Err(TrySendError::Disconnected(())) = wake.try_send(()) {
                    tracing::error!("the SQLite checkpoint thread has stopped");
                }
            }
        }
    }
}

impl Drop for Checkpoints {
    /// Stops the checkpointer and waits for it (its connection closes with it).
    fn drop(&mut self) {
        self.wake = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the SQLite checkpoint thread panicked");
            }
        }
    }
}

/// The checkpointer: one passive checkpoint per wake-up, until the writer goes.
fn run(conn: &Connection, wake: &Receiver<()>) {
    while wake.recv().is_ok() {
        if let Err(e) = passive(conn) {
            tracing::warn!(error = %e, "sqlite checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::{Options, StoreMetrics, Write};
    use lockstep_core::record::PutRecord;
    use lockstep_core::{Command, Precondition};
    use std::sync::Arc;

    fn put(key: String, value: &str) -> Write {
        let req = PutRecord {
            value: serde_json::Value::String(value.to_owned()),
            precondition: Precondition::None,
            ttl_ms: None,
            force: false,
        };
        Write::new("n", Command::Put { key, req }, "t", None)
    }

    /// Many more pages than `CATCH_UP_FRAMES`, by concurrent writers: the WAL
    /// stays bounded, and every write is there after a reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_and_checkpoints_lose_nothing() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
        let path = dir.path().join("x.db");
        let store = SqliteStore::open(&path, Options::default(), Arc::new(StoreMetrics::default())).await?;
        // About one page per record.
        let value = "v".repeat(3000);
        let (tasks, each) = (32, 200);
        let mut handles = Vec::new();
        for t in 0..tasks {
            let (store, value) = (store.clone(), value.clone());
            handles.push(tokio::spawn(async move {
                for i in 0..each {
                    store.execute(put(format!("k{t}-{i}"), &value)).await?;
                }
                Ok::<_, Error>(())
            }));
        }
        for h in handles {
            h.await.map_err(|e| Error::Internal(e.to_string()))??;
        }
        let wal = std::fs::metadata(dir.path().join("x.db-wal")).map_or(0, |m| m.len());
        // The catch-up threshold plus a batch of 32 records (two pages each at most).
        let bound = u64::from(CATCH_UP_FRAMES + 64 + SIGNAL_FRAMES) * 4120;
        assert!(wal <= bound, "the WAL grew to {wal} bytes (bound {bound})");
        store.close().await?;
        let store = SqliteStore::open(&path, Options::default(), Arc::new(StoreMetrics::default())).await?;
        for t in 0..tasks {
            for i in 0..each {
                assert!(
                    store.get("n", &format!("k{t}-{i}")).await?.is_some(),
                    "k{t}-{i} is gone"
                );
            }
        }
        store.close().await
    }
}
