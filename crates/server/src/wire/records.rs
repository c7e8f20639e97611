//! Records, transactions and namespaces (SPEC §4, §5).

use super::time;
use lockstep_core::txn::{OpResult, TxnResult};
use lockstep_core::Record;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// `{key, value, version, created_at, updated_at, expires_at}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Record")]
pub struct RecordBody<'a> {
    key: &'a str,
    value: &'a Value,
    version: u64,
    created_at: String,
    updated_at: String,
    expires_at: Option<String>,
}

/// A record as read.
pub fn record(r: &Record) -> RecordBody<'_> {
    RecordBody {
        key: &r.key,
        value: &r.value,
        version: r.version,
        created_at: time(r.created_at),
        updated_at: time(r.updated_at),
        expires_at: r.expires_at.map(time),
    }
}

/// `PUT`: `{key, version, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "RecordPut")]
pub struct Put<'a> {
    /// The key.
    pub key: &'a str,
    /// Its new version.
    pub version: u64,
    /// The revision of the write.
    pub revision: u64,
}

/// `PATCH`: `{key, version, value, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "RecordPatched")]
pub struct Patched<'a> {
    /// The key.
    pub key: &'a str,
    /// Its new version.
    pub version: u64,
    /// The value after the patch.
    pub value: &'a Value,
    /// The revision of the write.
    pub revision: u64,
}

/// `DELETE`: `{key, deleted: true, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "RecordDeleted")]
pub struct Deleted<'a> {
    /// The key.
    pub key: &'a str,
    /// Always true.
    pub deleted: bool,
    /// The revision of the write.
    pub revision: u64,
}

/// `{records: [...]}` of a listing page.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Records")]
pub struct Records<'a> {
    /// The records.
    pub records: Vec<RecordBody<'a>>,
}

/// `DELETE /v1/ns/{ns}`: `{namespace, deleted: true, records}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NamespaceDeleted<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// Always true.
    pub deleted: bool,
    /// How many records it held.
    pub records: u64,
}

/// `{namespaces: [...]}` of a listing page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Namespaces {
    /// The names.
    pub namespaces: Vec<String>,
}

/// One result of a transaction's operation: null for a missing `get`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "TxnOpResult")]
#[serde(untagged)]
pub enum TxnOp<'a> {
    /// A `get` of an absent key.
    Missing,
    /// A record read or written: `{key, value, version}`.
    Record {
        /// The key.
        key: &'a str,
        /// Its value.
        value: &'a Value,
        /// Its version.
        version: u64,
    },
    /// A delete: `{key, deleted}`.
    Delete {
        /// The key.
        key: &'a str,
        /// Whether a record was deleted.
        deleted: bool,
    },
}

/// `{succeeded, failed, results, revision}` (SPEC §5, §15).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "TxnResult")]
pub struct Txn<'a> {
    succeeded: bool,
    failed: &'a [usize],
    results: Vec<TxnOp<'a>>,
    revision: u64,
}

/// The answer of a transaction that committed (or compared) at `revision`.
pub fn txn(t: &TxnResult, revision: u64) -> Txn<'_> {
    let results = t
        .results
        .iter()
        .map(|r| match r {
            OpResult::Get(None) => TxnOp::Missing,
            OpResult::Get(Some(r)) | OpResult::Written(r) => TxnOp::Record {
                key: &r.key,
                value: &r.value,
                version: r.version,
            },
            OpResult::Delete { key, deleted } => TxnOp::Delete {
                key,
                deleted: *deleted,
            },
        })
        .collect();
    Txn {
        succeeded: t.succeeded,
        failed: &t.failed,
        results,
        revision,
    }
}
