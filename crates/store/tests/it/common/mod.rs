//! Shared by the storage conformance suite: the harness (from
//! `lockstep_testkit::store`: a fresh store of either backend per case, cleaned
//! up afterwards; PostgreSQL skipped without `LOCKSTEP_TEST_DATABASE_URL`,
//! mandatory in CI), command builders and answer accessors.

#![allow(dead_code)]

use lockstep_core::record::{PatchDoc, PutRecord};
use lockstep_core::txn::{OpResult, Txn, TxnResult};
use lockstep_core::{Command, Outcome, Precondition, Record};
use lockstep_store::{Committed, Error, Store};
use serde_json::Value;

pub use lockstep_testkit::pg::random_hex;
pub use lockstep_testkit::store::{run, run_manual, Env, MANUAL_START};

/// The namespace most cases use (each case has a database of its own).
pub const NS: &str = "conf";

/// The actor recorded in the change log.
pub const ACTOR: &str = "tester";

// ---------------------------------------------------------------------------
// Command builders and answer accessors.

/// An unconditional PUT.
pub fn put(key: &str, value: Value) -> Command {
    put_with(key, value, Precondition::None, None, false)
}

/// A PUT with every option.
pub fn put_with(
    key: &str,
    value: Value,
    precondition: Precondition,
    ttl_ms: Option<u64>,
    force: bool,
) -> Command {
    Command::Put {
        key: key.to_owned(),
        req: PutRecord {
            value,
            precondition,
            ttl_ms,
            force,
        },
    }
}

/// A PUT with a precondition.
pub fn put_if(key: &str, value: Value, precondition: Precondition) -> Command {
    put_with(key, value, precondition, None, false)
}

/// A merge PATCH.
pub fn merge(key: &str, doc: Value, precondition: Precondition) -> Command {
    Command::Patch {
        key: key.to_owned(),
        doc: PatchDoc::Merge(doc),
        precondition,
    }
}

/// A JSON Patch PATCH.
pub fn json_patch(key: &str, ops: Value, precondition: Precondition) -> Command {
    let patch: json_patch::Patch =
        serde_json::from_value(ops).unwrap_or_else(|e| panic!("bad JSON patch in the test: {e}"));
    Command::Patch {
        key: key.to_owned(),
        doc: PatchDoc::Json(patch),
        precondition,
    }
}

/// A DELETE.
pub fn delete(key: &str, precondition: Precondition) -> Command {
    Command::Delete {
        key: key.to_owned(),
        precondition,
    }
}

/// A transaction parsed from its JSON body, as the server would parse it.
pub fn txn(body: Value) -> Command {
    let t: Txn = serde_json::from_value(body).unwrap_or_else(|e| panic!("bad transaction in the test: {e}"));
    Command::Txn(t)
}

/// Executes a command that must succeed.
#[track_caller]
pub fn ok(r: Result<Committed, Error>) -> Committed {
    match r {
        Ok(c) => c,
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

/// Executes `cmd` in [`NS`]; it must succeed.
pub async fn exec(store: &Store, cmd: Command) -> Committed {
    let shown = format!("{cmd:?}");
    store
        .execute(NS, cmd, ACTOR)
        .await
        .unwrap_or_else(|e| panic!("{shown} failed: {e:?}"))
}

/// Executes `cmd` in [`NS`]; it must be refused by the semantics.
pub async fn refused(store: &Store, cmd: Command) -> lockstep_core::Error {
    let shown = format!("{cmd:?}");
    match store.execute(NS, cmd, ACTOR).await {
        Err(Error::Core(e)) => e,
        Ok(c) => panic!("{shown}: expected a refusal, got {c:?}"),
        Err(e) => panic!("{shown}: expected a semantic refusal, got the storage error {e:?}"),
    }
}

/// The record and `created` of a PUT answer; checks version == revision.
#[track_caller]
pub fn put_outcome(c: &Committed) -> (Record, bool) {
    match &c.outcome {
        Outcome::Put { record, created } => {
            assert_eq!(
                record.version, c.revision,
                "a written record's version is the revision of the write"
            );
            (record.clone(), *created)
        }
        other => panic!("expected a PUT outcome, got {other:?}"),
    }
}

/// The record of a PATCH answer; checks version == revision.
#[track_caller]
pub fn patch_outcome(c: &Committed) -> Record {
    match &c.outcome {
        Outcome::Patch { record } => {
            assert_eq!(
                record.version, c.revision,
                "a written record's version is the revision of the write"
            );
            record.clone()
        }
        other => panic!("expected a PATCH outcome, got {other:?}"),
    }
}

/// The result of a transaction answer.
#[track_caller]
pub fn txn_outcome(c: &Committed) -> TxnResult {
    match &c.outcome {
        Outcome::Txn(r) => r.clone(),
        other => panic!("expected a transaction outcome, got {other:?}"),
    }
}

/// The record of a `put`/`patch`/`incr` result.
#[track_caller]
pub fn written(r: &OpResult) -> Record {
    match r {
        OpResult::Written(rec) => rec.clone(),
        other => panic!("expected a written record, got {other:?}"),
    }
}

/// Reads a live record of [`NS`].
pub async fn get(store: &Store, key: &str) -> Option<Record> {
    store
        .get(NS, key)
        .await
        .unwrap_or_else(|e| panic!("get {key:?} failed: {e:?}"))
}

/// Reads a live record of [`NS`] that must exist.
pub async fn get_some(store: &Store, key: &str) -> Record {
    get(store, key)
        .await
        .unwrap_or_else(|| panic!("record {key:?} should exist"))
}

/// Lists [`NS`].
pub async fn list(store: &Store, prefix: &str, after: Option<&str>, limit: usize) -> Vec<Record> {
    store
        .list(NS, prefix, after, limit)
        .await
        .unwrap_or_else(|e| panic!("list {prefix:?} after {after:?} failed: {e:?}"))
}

/// The keys of a listing.
pub fn keys(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.key.clone()).collect()
}
