//! The single writer thread: it drains the queue in batches, runs each command
//! through the kernel in a savepoint of one `BEGIN IMMEDIATE` transaction, and
//! commits the batch once.

use super::checkpoint::Checkpoints;
use super::rows::{load_row, persist, persist_mutation};
use crate::clock::Clock;
use crate::kernel::{self, WriteTx};
use crate::{rev_i64, sql, Committed, Error, StoreMetrics, Write};
use lockstep_core::{Effect, Limits, Millis, Mutation, RowKey, Snapshot};
use rusqlite::{params, Connection, TransactionBehavior};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub(super) enum Job {
    Exec {
        write: Box<Write>,
        reply: oneshot::Sender<Result<Committed, Error>>,
    },
    DeleteNamespace {
        ns: String,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    /// Stop once every job queued before this one is answered.
    Stop,
}

/// The single writer: owns the write connection and the revision counter.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) revision: u64,
    pub(super) limits: Limits,
    pub(super) clock: Clock,
    pub(super) batch_max: usize,
    pub(super) metrics: Arc<StoreMetrics>,
    /// Wakes the checkpointer as the WAL grows.
    pub(super) checkpoints: Checkpoints,
}

enum Reply {
    Exec(
        oneshot::Sender<Result<Committed, Error>>,
        Result<Committed, Error>,
    ),
    Deleted(oneshot::Sender<Result<u64, Error>>, Result<u64, Error>),
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut stopping = false;
        while let Some(first) = (!stopping).then(|| rx.blocking_recv()).flatten() {
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Stop => stopping = true,
                    job => batch.push(job),
                }
                if !stopping && batch.len() < self.batch_max {
                    next = rx.try_recv().ok();
                }
            }
            if batch.is_empty() {
                continue;
            }
            self.metrics.commit_batch_size.observe(batch.len() as u64);
            let start = self.revision;
            let replies = match self.commit_batch(batch) {
                Ok(replies) => replies,
                Err((e, replies)) => {
                    // The transaction did not commit: nothing of the batch applied.
                    self.revision = start;
                    tracing::error!(error = %e, "sqlite commit failed");
                    replies
                        .into_iter()
                        .map(|r| match r {
                            Reply::Exec(tx, _) => Reply::Exec(tx, Err(Error::Unavailable(e.to_string()))),
                            Reply::Deleted(tx, _) => {
                                Reply::Deleted(tx, Err(Error::Unavailable(e.to_string())))
                            }
                        })
                        .collect()
                }
            };
            for r in replies {
                // A caller that went away does not care about its answer.
                let _ = match r {
                    Reply::Exec(tx, v) => tx.send(v).map_err(|_| ()),
                    Reply::Deleted(tx, v) => tx.send(v).map_err(|_| ()),
                };
            }
        }
    }

    /// Runs a batch in one transaction, one savepoint per job. On a commit
    /// failure returns the error with the (now void) replies.
    fn commit_batch(&mut self, batch: Vec<Job>) -> Result<Vec<Reply>, (Error, Vec<Reply>)> {
        let now = self.clock.now();
        let mut replies = Vec::with_capacity(batch.len());
        let tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                let e = Error::from(e);
                for job in batch {
                    replies.push(match job {
                        Job::Exec { reply, .. } => Reply::Exec(reply, Err(Error::Unavailable(String::new()))),
                        Job::DeleteNamespace { reply, .. } => {
                            Reply::Deleted(reply, Err(Error::Unavailable(String::new())))
                        }
                        Job::Stop => continue,
                    });
                }
                return Err((e, replies));
            }
        };
        let mut tx = tx;
        let mut revision = self.revision;
        for job in batch {
            match job {
                Job::Exec { write, reply } => {
                    let before = revision;
                    let answer = tx.savepoint().map_err(Error::from).and_then(|sp| {
                        let stx = SqliteTx {
                            sp,
                            revision: &mut revision,
                            now,
                        };
                        kernel::complete_now(kernel::run(stx, kernel::Job::of(&write, &self.limits)))
                    });
                    let answer = answer.unwrap_or_else(|e| {
                        // Rolled back: the revision it may have taken is free again.
                        revision = before;
                        Err(e)
                    });
                    replies.push(Reply::Exec(reply, answer));
                }
                Job::DeleteNamespace { ns, reply } => {
                    let result = run_in_savepoint(&mut tx, |c| {
                        let mut n = None;
                        for sql in sql::delete_namespace() {
                            let deleted = c.prepare_cached(&sql::sqlite(&sql))?.execute(params![ns])?;
                            // The first statement empties `records`: its count is the answer.
                            n.get_or_insert(deleted as u64);
                        }
                        Ok(n.unwrap_or(0))
                    });
                    replies.push(Reply::Deleted(reply, result));
                }
                // Taken out of every batch by `run`.
                Job::Stop => {}
            }
        }
        // A batch of reads and refusals writes nothing, so its commit costs no fsync.
        let saved = if revision == self.revision {
            Ok(0)
        } else {
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")
                .map_err(Error::from)
                .and_then(|mut s| Ok(s.execute(params![rev_i64(revision)?])?))
        };
        match saved.and_then(|_| tx.commit().map_err(Error::from)) {
            Ok(()) => {
                assert!(revision >= self.revision, "the revision only grows");
                self.revision = revision;
                self.checkpoints.committed(&self.conn);
                Ok(replies)
            }
            Err(e) => Err((e, replies)),
        }
    }
}

/// One command's savepoint inside the writer's batch transaction.
struct SqliteTx<'a> {
    sp: rusqlite::Savepoint<'a>,
    /// The batch's running revision (restored by the writer on a rollback).
    pub(super) revision: &'a mut u64,
    now: Millis,
}

impl WriteTx for SqliteTx<'_> {
    type Fail = Error;

    async fn lock_and_load(&mut self, ns: &str, keys: &[RowKey]) -> Result<(Snapshot, Millis), Error> {
        // The single writer holds the write lock: loading is locking.
        let mut snapshot = Snapshot::new();
        for key in keys {
            snapshot.insert(key.clone(), load_row(&self.sp, ns, key)?);
        }
        Ok((snapshot, self.now))
    }

    fn probe_revision(&self) -> u64 {
        *self.revision + 1
    }

    async fn allocate_revision(&mut self) -> Result<u64, Error> {
        *self.revision += 1;
        Ok(*self.revision)
    }

    async fn current_revision(&mut self) -> Result<u64, Error> {
        Ok(*self.revision)
    }

    async fn persist(
        &mut self,
        ns: &str,
        effect: &Effect,
        _revision: u64,
        _now: Millis,
    ) -> Result<(), Error> {
        persist(&self.sp, ns, effect)
    }

    async fn persist_mutation(&mut self, ns: &str, m: &Mutation) -> Result<(), Error> {
        persist_mutation(&self.sp, ns, m)
    }

    async fn commit(self) -> Result<(), Error> {
        Ok(self.sp.commit()?)
    }
}

/// Runs `f` inside a savepoint: released on success, rolled back on refusal.
fn run_in_savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    let sp = tx.savepoint()?;
    let out = f(&sp)?;
    sp.commit()?;
    Ok(out)
}
