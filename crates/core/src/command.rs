//! The single entry point of the write path: a [`Command`] applied to the rows
//! it touches ([`Snapshot`]) at a revision and an instant gives an [`Effect`]:
//! the answer, the rows to persist and the change entries, or a typed refusal.
//! Backends call [`execute`] inside their storage transaction.

use crate::record::{self, PatchDoc, Precondition, PutRecord};
use crate::txn::{self, Txn, TxnResult, Working};
use crate::{Change, ChangeKind, ChangeOp, Error, Limits, Millis, Record};
use std::collections::BTreeMap;

/// A write request against one namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `PUT /records/{key}`.
    Put {
        /// Record key.
        key: String,
        /// The request.
        req: PutRecord,
    },
    /// `PATCH /records/{key}`.
    Patch {
        /// Record key.
        key: String,
        /// The patch document.
        doc: PatchDoc,
        /// The precondition.
        precondition: Precondition,
    },
    /// `DELETE /records/{key}`.
    Delete {
        /// Record key.
        key: String,
        /// The precondition.
        precondition: Precondition,
    },
    /// `POST /txn`.
    Txn(Txn),
    /// Purge a record whose TTL ran out (background sweeper).
    Expire {
        /// Record key.
        key: String,
    },
}

impl Command {
    /// Every record key the command touches, sorted and unique: the rows a backend
    /// must lock (present or not) and load before calling [`execute`].
    pub fn keys(&self) -> Vec<String> {
        match self {
            Command::Put { key, .. }
            | Command::Patch { key, .. }
            | Command::Delete { key, .. }
            | Command::Expire { key } => vec![key.clone()],
            Command::Txn(t) => t.keys(),
        }
    }
}

/// What the shell passes in: the revision this command would commit at, the
/// storage clock's `now`, the caller's name and the limits.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The revision of this write, if it writes.
    pub revision: u64,
    /// The storage clock.
    pub now: Millis,
    /// The caller's token name, for the change log.
    pub actor: &'a str,
    /// Limits in force.
    pub limits: &'a Limits,
}

/// The stored rows of the touched keys (expired ones included): `None` = no row.
pub type Snapshot = BTreeMap<String, Option<Record>>;

/// A row to persist.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Insert or replace the row.
    Upsert(Record),
    /// Remove the row.
    Delete(String),
}

/// The answer of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A PUT: the record and whether it was created.
    Put {
        /// As written.
        record: Record,
        /// 201 vs 200.
        created: bool,
    },
    /// A PATCH: the record as written.
    Patch {
        /// As written.
        record: Record,
    },
    /// A DELETE.
    Delete {
        /// The key.
        key: String,
    },
    /// A transaction.
    Txn(TxnResult),
    /// The sweeper's purge: whether the record was indeed expired.
    Expire {
        /// Whether a row was removed.
        expired: bool,
    },
}

/// The result of [`execute`]: the answer, what to persist and the change entries.
/// Nothing to persist means no revision is consumed.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// The answer.
    pub outcome: Outcome,
    /// Rows to write, one per touched key, in its final state.
    pub mutations: Vec<Mutation>,
    /// One change per write, indexed in order.
    pub changes: Vec<Change>,
}

impl Effect {
    /// Whether the command writes anything (and so consumes its revision).
    pub fn writes(&self) -> bool {
        !self.mutations.is_empty()
    }
}

fn live(snapshot: &Snapshot, key: &str, now: Millis) -> Option<Record> {
    snapshot
        .get(key)
        .and_then(Option::as_ref)
        .filter(|r| r.is_live(now))
        .cloned()
}

fn change(ctx: &Ctx, index: usize, key: &str, op: ChangeOp, forced: bool) -> Change {
    Change {
        revision: ctx.revision,
        index: u32::try_from(index).unwrap_or(u32::MAX),
        kind: ChangeKind::Record,
        key: key.to_owned(),
        op,
        actor: ctx.actor.to_owned(),
        forced,
        at: ctx.now,
    }
}

/// Applies `cmd` to the stored rows `snapshot` (which must hold an entry for
/// every key of [`Command::keys`]); pure: no I/O, no clock.
pub fn execute(cmd: &Command, snapshot: &Snapshot, ctx: &Ctx) -> Result<Effect, Error> {
    let (rev, now, limits) = (ctx.revision, ctx.now, ctx.limits);
    match cmd {
        Command::Put { key, req } => {
            let cur = live(snapshot, key, now);
            let (record, created) = record::put(key, cur.as_ref(), req, rev, now, limits)?;
            let forced = req.force && req.precondition != Precondition::None;
            Ok(Effect {
                changes: vec![change(ctx, 0, key, ChangeOp::Put, forced)],
                mutations: vec![Mutation::Upsert(record.clone())],
                outcome: Outcome::Put { record, created },
            })
        }
        Command::Patch {
            key,
            doc,
            precondition,
        } => {
            let cur = live(snapshot, key, now);
            let record = record::patch(key, cur.as_ref(), doc, precondition, rev, now, limits)?;
            Ok(Effect {
                changes: vec![change(ctx, 0, key, ChangeOp::Patch, false)],
                mutations: vec![Mutation::Upsert(record.clone())],
                outcome: Outcome::Patch { record },
            })
        }
        Command::Delete { key, precondition } => {
            let cur = live(snapshot, key, now);
            record::delete(key, cur.as_ref(), precondition)?;
            Ok(Effect {
                changes: vec![change(ctx, 0, key, ChangeOp::Delete, false)],
                mutations: vec![Mutation::Delete(key.clone())],
                outcome: Outcome::Delete { key: key.clone() },
            })
        }
        Command::Txn(t) => {
            t.validate(limits)?;
            let mut working: Working = t
                .keys()
                .into_iter()
                .map(|k| {
                    let r = live(snapshot, &k, now);
                    (k, r)
                })
                .collect();
            let (result, writes) = txn::apply(t, &mut working, rev, now, limits)?;
            let mut touched: Vec<&str> = writes.iter().map(|w| w.key.as_str()).collect();
            touched.sort_unstable();
            touched.dedup();
            let mutations = touched
                .into_iter()
                .map(|k| match working.get(k).cloned().flatten() {
                    Some(r) => Mutation::Upsert(r),
                    None => Mutation::Delete(k.to_owned()),
                })
                .collect();
            let changes = writes
                .iter()
                .enumerate()
                .map(|(i, w)| change(ctx, i, &w.key, w.op, false))
                .collect();
            Ok(Effect {
                outcome: Outcome::Txn(result),
                mutations,
                changes,
            })
        }
        Command::Expire { key } => {
            let expired = snapshot
                .get(key)
                .and_then(Option::as_ref)
                .is_some_and(|r| !r.is_live(now));
            let (mutations, changes) = if expired {
                (
                    vec![Mutation::Delete(key.clone())],
                    vec![change(ctx, 0, key, ChangeOp::Expire, false)],
                )
            } else {
                (vec![], vec![])
            };
            Ok(Effect {
                outcome: Outcome::Expire { expired },
                mutations,
                changes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(revision: u64, now: i64, limits: &Limits) -> Ctx<'_> {
        Ctx {
            revision,
            now: Millis(now),
            actor: "t",
            limits,
        }
    }

    #[test]
    fn expired_rows_read_as_absent_and_are_purged_once() {
        let l = Limits::default();
        let put = Command::Put {
            key: "k".into(),
            req: PutRecord {
                value: json!(1),
                precondition: Precondition::None,
                ttl_ms: Some(10),
                force: false,
            },
        };
        let mut snap = Snapshot::from([("k".to_string(), None)]);
        let e = execute(&put, &snap, &ctx(1, 100, &l)).unwrap_or_else(|e| panic!("{e}"));
        let Mutation::Upsert(r) = &e.mutations[0] else {
            panic!()
        };
        snap.insert("k".into(), Some(r.clone()));
        // At 110 it is expired: expected_version 0 holds, and PUT creates.
        let create = Command::Put {
            key: "k".into(),
            req: PutRecord {
                value: json!(2),
                precondition: Precondition::ExpectedVersion(0),
                ttl_ms: None,
                force: false,
            },
        };
        let e2 = execute(&create, &snap, &ctx(2, 110, &l)).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(e2.outcome, Outcome::Put { created: true, .. }));
        let exp = Command::Expire { key: "k".into() };
        assert!(!execute(&exp, &snap, &ctx(3, 105, &l))
            .unwrap_or_else(|e| panic!("{e}"))
            .writes());
        let e3 = execute(&exp, &snap, &ctx(3, 110, &l)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e3.changes[0].op, ChangeOp::Expire);
    }

    #[test]
    fn failed_commands_write_nothing() {
        let l = Limits::default();
        let del = Command::Delete {
            key: "k".into(),
            precondition: Precondition::None,
        };
        let snap = Snapshot::from([("k".to_string(), None)]);
        assert!(matches!(
            execute(&del, &snap, &ctx(1, 0, &l)),
            Err(Error::NotFound(_))
        ));
    }
}
