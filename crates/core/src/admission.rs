//! Admitting a keyed request to run its command, and finishing its idempotency
//! entry with the answer, inside the command's own storage transaction
//! (SPEC §9). The storage kernel calls these around `execute`; the rendering of
//! the answer into a stored response is the server's.

use crate::command::idem_entry;
use crate::idempotency::{self, Began, Begin, StoredResponse};
use crate::{Error, Millis, Mutation, Row, RowKey, Snapshot};

/// What to do with the idempotency entry of a request once its command ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Store this response (completing the entry) in the same transaction.
    Store(StoredResponse),
    /// Give the entry up (an answer that invites a retry).
    Release,
    /// Leave it started (an intermediate step, such as a waiting acquire).
    Keep,
}

/// The idempotency entry a keyed request runs under.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// Entry scope.
    pub scope: &'a str,
    /// Entry key.
    pub key: &'a str,
    /// The owner token (from `IdemBegin`, or of `begin`).
    pub token: &'a str,
    /// Begin the key in the same transaction: a new key is started and owned,
    /// a completed one replayed (the command does not run), a running one
    /// refused as in use. Without it the request must still own the key.
    pub begin: Option<&'a Begin>,
}

impl Admission<'_> {
    /// The row of the entry.
    pub fn row(&self) -> RowKey {
        RowKey::Idem(self.scope.to_owned(), self.key.to_owned())
    }

    /// Admits the request to run its command: with `begin`, starts the key in
    /// `snapshot` (or answers the replay to give instead of running); without,
    /// refuses (409, retryable) unless this request still owns the key.
    pub fn admit(&self, snapshot: &mut Snapshot, now: Millis) -> Result<Option<StoredResponse>, Error> {
        let e = idem_entry(snapshot, self.scope, self.key);
        match self.begin {
            None => {
                idempotency::check_owner(e.as_ref(), self.token, now)?;
                Ok(None)
            }
            Some(b) => match idempotency::begin(e.as_ref(), self.scope, self.key, b, now)? {
                Began::Started(started) => {
                    snapshot.insert(self.row(), Some(Row::Idem(started)));
                    Ok(None)
                }
                Began::Replay(r) => Ok(Some(r)),
            },
        }
    }

    /// The entry write that records `finish` (decided from the command's
    /// answer), if any; `snapshot` is the one [`Admission::admit`] saw.
    pub fn finish(
        &self,
        snapshot: &Snapshot,
        finish: Finish,
        now: Millis,
    ) -> Result<Option<Mutation>, Error> {
        let e = idem_entry(snapshot, self.scope, self.key);
        Ok(match finish {
            Finish::Store(resp) => Some(Mutation::Put(Row::Idem(idempotency::complete(
                e.as_ref(),
                self.token,
                resp,
                now,
            )?))),
            Finish::Release => Some(Mutation::Delete(self.row())),
            // A key begun in this transaction must be written to stay started.
            Finish::Keep => match (self.begin, e) {
                (Some(_), Some(started)) => Some(Mutation::Put(Row::Idem(started))),
                _ => None,
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: Millis = Millis(1_000);

    fn begin(fingerprint: &str, token: &str) -> Begin {
        Begin {
            fingerprint: fingerprint.into(),
            token: token.into(),
            lock_ms: 100,
            ttl_ms: 10_000,
        }
    }

    fn admission<'a>(token: &'a str, b: Option<&'a Begin>) -> Admission<'a> {
        Admission {
            scope: "s",
            key: "k",
            token,
            begin: b,
        }
    }

    fn response() -> StoredResponse {
        StoredResponse {
            status: 200,
            content_type: "application/json".into(),
            etag: None,
            body: "{}".into(),
        }
    }

    /// The snapshot of a key `a` began and completed.
    fn completed() -> Snapshot {
        let b = begin("fp", "a");
        let a = admission("a", Some(&b));
        let mut snap = Snapshot::new();
        assert_eq!(a.admit(&mut snap, NOW).unwrap(), None);
        let Some(Mutation::Put(row)) = a.finish(&snap, Finish::Store(response()), NOW).unwrap() else {
            panic!("completing writes the entry");
        };
        snap.insert(a.row(), Some(row));
        snap
    }

    #[test]
    fn a_new_key_is_started_and_run() {
        let b = begin("fp", "a");
        let a = admission("a", Some(&b));
        let mut snap = Snapshot::new();
        assert_eq!(a.admit(&mut snap, NOW).unwrap(), None);
        assert!(matches!(snap.get(&a.row()), Some(Some(Row::Idem(e))) if e.token == "a"));
        // Kept: a key begun here is written to stay started.
        assert!(matches!(
            a.finish(&snap, Finish::Keep, NOW).unwrap(),
            Some(Mutation::Put(_))
        ));
        assert_eq!(
            a.finish(&snap, Finish::Release, NOW).unwrap(),
            Some(Mutation::Delete(a.row()))
        );
    }

    #[test]
    fn a_completed_key_is_replayed_and_a_running_one_refused() {
        let mut snap = completed();
        let b = begin("fp", "b");
        assert_eq!(
            admission("b", Some(&b)).admit(&mut snap, NOW).unwrap(),
            Some(response())
        );
        let other = begin("another fingerprint", "b");
        assert!(admission("b", Some(&other)).admit(&mut snap, NOW).is_err());
        // Started by `a` and still locked: `b` is refused as in use.
        let mut snap = Snapshot::new();
        let a = begin("fp", "a");
        admission("a", Some(&a)).admit(&mut snap, NOW).unwrap();
        assert!(matches!(
            admission("b", Some(&b)).admit(&mut snap, NOW),
            Err(Error::IdempotencyKeyInUse(_))
        ));
    }

    #[test]
    fn without_begin_only_the_owner_runs() {
        let mut snap = Snapshot::new();
        let a = begin("fp", "a");
        admission("a", Some(&a)).admit(&mut snap, NOW).unwrap();
        assert_eq!(admission("a", None).admit(&mut snap.clone(), NOW).unwrap(), None);
        assert!(admission("b", None).admit(&mut snap.clone(), NOW).is_err());
        // Keeping an entry not begun here writes nothing.
        assert_eq!(
            admission("a", None).finish(&snap, Finish::Keep, NOW).unwrap(),
            None
        );
    }
}
