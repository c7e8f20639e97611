//! The write path, once for both backends: rows → lock and load → admit the
//! idempotency key → execute → allocate a revision → persist → finish the key
//! → commit. A backend implements [`WriteTx`] (one storage transaction of one
//! command) and runs [`run`] on it; SQLite inside a savepoint of its batch,
//! PostgreSQL inside a transaction of its own (retried as a whole on a
//! serialization failure or deadlock).

use crate::{Committed, Completion, Error};
use lockstep_core::idempotency::Began;
use lockstep_core::{execute, Command, Ctx, Effect, Limits, Millis, Mutation, Outcome, RowKey, Snapshot};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// One storage transaction of the write path, as a backend runs it.
///
/// Dropping it without [`WriteTx::commit`] rolls everything it wrote back.
pub(crate) trait WriteTx {
    /// The backend's failure: a [`Error`] or something the backend retries.
    type Fail: From<Error> + From<lockstep_core::Error>;

    /// Locks the rows of `keys` (where the backend locks them) and loads
    /// them, with the storage clock's `now` read once the locks are held.
    async fn lock_and_load(&mut self, ns: &str, keys: &[RowKey]) -> Result<(Snapshot, Millis), Self::Fail>;

    /// The revision the command is first executed with: the one it will be
    /// allocated when the backend knows it (SQLite), else a probe (PostgreSQL).
    fn probe_revision(&self) -> u64;

    /// Allocates the revision of a command that writes.
    async fn allocate_revision(&mut self) -> Result<u64, Self::Fail>;

    /// The current revision (that of a command that wrote nothing).
    async fn current_revision(&mut self) -> Result<u64, Self::Fail>;

    /// Writes the rows and change entries of `effect`.
    async fn persist(
        &mut self,
        ns: &str,
        effect: &Effect,
        revision: u64,
        now: Millis,
    ) -> Result<(), Self::Fail>;

    /// Writes one row (the idempotency entry of a keyed request).
    async fn persist_mutation(&mut self, ns: &str, m: &Mutation) -> Result<(), Self::Fail>;

    /// Commits what was written.
    async fn commit(self) -> Result<(), Self::Fail>;

    /// [`WriteTx::persist`], then [`WriteTx::commit`]: a backend may send the
    /// last write and the commit together, but must never report a commit when
    /// the write failed.
    async fn persist_and_commit(
        mut self,
        ns: &str,
        effect: &Effect,
        revision: u64,
        now: Millis,
    ) -> Result<(), Self::Fail>
    where
        Self: Sized,
    {
        self.persist(ns, effect, revision, now).await?;
        self.commit().await
    }

    /// [`WriteTx::persist_mutation`], then [`WriteTx::commit`] (sent together
    /// where the backend can, as [`WriteTx::persist_and_commit`]).
    async fn persist_mutation_and_commit(mut self, ns: &str, m: &Mutation) -> Result<(), Self::Fail>
    where
        Self: Sized,
    {
        self.persist_mutation(ns, m).await?;
        self.commit().await
    }
}

/// What one command needs besides its transaction.
pub(crate) struct Job<'a> {
    /// The namespace.
    pub ns: &'a str,
    /// The command.
    pub cmd: &'a Command,
    /// Who asks.
    pub actor: &'a str,
    /// The keyed request's idempotency entry to admit and finish.
    pub completion: Option<&'a Completion>,
    /// Limits in force.
    pub limits: &'a Limits,
}

impl<'a> Job<'a> {
    /// The job of `write` under `limits`.
    pub fn of(write: &'a crate::Write, limits: &'a Limits) -> Job<'a> {
        Job {
            ns: &write.ns,
            cmd: &write.cmd,
            actor: &write.actor,
            completion: write.completion.as_ref(),
            limits,
        }
    }
}

/// Runs one command on `tx` and commits it. The outer `Err` means nothing was
/// committed (the caller may retry, as PostgreSQL does); `Ok` carries the
/// committed answer, which is a refusal when a keyed request stored it.
///
/// An idempotent replay answers the *current* revision, as every command that
/// writes nothing does: [`Committed::revision`] is documented as "the current
/// revision when it wrote nothing", and the server reports it as the state the
/// answer reflects, so `0` (PostgreSQL's old answer) was wrong.
pub(crate) async fn run<T: WriteTx>(mut tx: T, job: Job<'_>) -> Result<Result<Committed, Error>, T::Fail> {
    let Job {
        ns,
        cmd,
        actor,
        completion,
        limits,
    } = job;
    let mut rows = cmd.rows();
    rows.extend(completion.map(Completion::row));
    let (mut snapshot, now) = tx.lock_and_load(ns, &rows).await?;
    if let Some(replay) = completion
        .map(|cp| cp.admit(&mut snapshot, now))
        .transpose()?
        .flatten()
    {
        let revision = tx.current_revision().await?;
        tx.commit().await?;
        let outcome = Outcome::IdemBegun(Began::Replay(replay));
        return Ok(Ok(Committed { outcome, revision }));
    }
    // Probe first: a command that makes no visible write (a refusal, a
    // read-only transaction, a waiter's bookkeeping) consumes no revision.
    let probe = Ctx {
        revision: tx.probe_revision(),
        now,
        actor,
        limits,
    };
    let answer = match execute(cmd, &snapshot, &probe) {
        // A refusal without a key writes nothing: roll back.
        Err(e) if completion.is_none() => return Err(Error::Core(e).into()),
        // With a key, a refusal is an answer too: it is stored with the key.
        Err(e) => Err(Error::Core(e)),
        Ok(probed) => {
            let (effect, revision) = if probed.writes() {
                let revision = tx.allocate_revision().await?;
                let effect = if revision == probe.revision {
                    probed
                } else {
                    execute(cmd, &snapshot, &Ctx { revision, ..probe })?
                };
                (effect, revision)
            } else {
                (probed, tx.current_revision().await?)
            };
            if completion.is_none() {
                // Nothing follows the effect: it is written and committed at once.
                tx.persist_and_commit(ns, &effect, revision, now).await?;
                return Ok(Ok(Committed {
                    outcome: effect.outcome,
                    revision,
                }));
            }
            tx.persist(ns, &effect, revision, now).await?;
            Ok(Committed {
                outcome: effect.outcome,
                revision,
            })
        }
    };
    match completion
        .map(|cp| cp.finish(&snapshot, &answer, now))
        .transpose()?
        .flatten()
    {
        Some(m) => tx.persist_mutation_and_commit(ns, &m).await?,
        None => tx.commit().await?,
    }
    Ok(answer)
}

/// Drives a future that never waits (SQLite's [`WriteTx`] does its work
/// synchronously) to completion on the calling thread.
pub(crate) fn complete_now<T>(fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(Error::Internal(
            "a synchronous storage step waited on something".into(),
        )),
    }
}
