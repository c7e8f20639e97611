//! Records and transactions (SPEC §4, §5): answers built from core types.

use super::time;
use lockstep_api::records::{Record as RecordBody, TxnOpResult, TxnResult as Txn};
use lockstep_core::txn::{OpResult, TxnResult};
use lockstep_core::Record;

/// A record as read.
pub fn record(r: &Record) -> RecordBody {
    RecordBody {
        key: r.key.clone(),
        value: r.value.clone(),
        version: r.version,
        created_at: time(r.created_at),
        updated_at: time(r.updated_at),
        expires_at: r.expires_at.map(time),
    }
}

/// The answer of a transaction that committed (or compared) at `revision`.
pub fn txn(t: &TxnResult, revision: u64) -> Txn {
    let results = t
        .results
        .iter()
        .map(|r| match r {
            OpResult::Get(None) => TxnOpResult::Missing,
            OpResult::Get(Some(r)) | OpResult::Written(r) => TxnOpResult::Record {
                key: r.key.clone(),
                value: r.value.clone(),
                version: r.version,
            },
            OpResult::Delete { key, deleted } => TxnOpResult::Delete {
                key: key.clone(),
                deleted: *deleted,
            },
        })
        .collect();
    Txn {
        succeeded: t.succeeded,
        failed: t.failed.clone(),
        results,
        revision,
    }
}
