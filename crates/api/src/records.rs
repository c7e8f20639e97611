//! Records, transactions and namespaces (SPEC §4, §5).
//!
//! ```
//! use lockstep_api::records::Record;
//! let r: Record = serde_json::from_value(serde_json::json!({
//!     "key": "user:1", "value": {"plan": "pro"}, "version": 3,
//!     "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z",
//!     "expires_at": null})).unwrap();
//! assert_eq!(r.value["plan"], "pro");
//!
//! use lockstep_api::records::PutRecordBody;
//! let b = PutRecordBody::new(serde_json::json!({"n": 1})).expected_version(0);
//! assert_eq!(b.expected_version, Some(0));
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A record as read: `{key, value, version, created_at, updated_at, expires_at}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Record {
    /// The key.
    pub key: String,
    /// The JSON value.
    pub value: Value,
    /// The version: the revision of its last write (never reused, no ABA).
    pub version: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339; null without a TTL.
    pub expires_at: Option<String>,
}

/// `PUT`: `{key, version, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordPut {
    /// The key.
    pub key: String,
    /// Its new version.
    pub version: u64,
    /// The revision of the write.
    pub revision: u64,
}

/// `PATCH`: `{key, version, value, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordPatched {
    /// The key.
    pub key: String,
    /// Its new version.
    pub version: u64,
    /// The value after the patch.
    pub value: Value,
    /// The revision of the write.
    pub revision: u64,
}

/// `DELETE`: `{key, deleted: true, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordDeleted {
    /// The key.
    pub key: String,
    /// Always true.
    pub deleted: bool,
    /// The revision of the write.
    pub revision: u64,
}

/// `{records: [...]}` of a listing page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Records {
    /// The records.
    pub records: Vec<Record>,
}

/// `DELETE /v1/ns/{ns}`: `{namespace, deleted: true, records}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NamespaceDeleted {
    /// The namespace.
    pub namespace: String,
    /// Always true.
    pub deleted: bool,
    /// How many records it held.
    pub records: u64,
}

/// `{namespaces: [...]}` of a listing page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Namespaces {
    /// The names.
    pub namespaces: Vec<String>,
}

/// One result of a transaction's operation: null for a missing `get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TxnOpResult {
    /// A record read or written: `{key, value, version}`.
    Record {
        /// The key.
        key: String,
        /// Its value.
        value: Value,
        /// Its version.
        version: u64,
    },
    /// A delete: `{key, deleted}`.
    Delete {
        /// The key.
        key: String,
        /// Whether a record was deleted.
        deleted: bool,
    },
    /// A `get` of an absent key.
    Missing,
}

/// `{succeeded, failed, results, revision}` (SPEC §5, §15).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TxnResult {
    /// Whether every comparison held (the `success` branch ran).
    pub succeeded: bool,
    /// The indexes of the comparisons that failed.
    pub failed: Vec<usize>,
    /// One result per operation of the branch that ran.
    pub results: Vec<TxnOpResult>,
    /// The revision the transaction committed (or compared) at.
    pub revision: u64,
}

/// `PUT /records/{key}` body: `{value, expected_version?, ttl_ms?, force?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRecordBody {
    /// The new value.
    pub value: Value,
    /// 0: create only; N: only if the version is N.
    #[schemars(range(max = 9_223_372_036_854_775_807_u64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// Expire this long after the write.
    #[schemars(range(min = 1, max = 315_360_000_000_u64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Write without a precondition where one is configured as required.
    #[serde(default)]
    pub force: bool,
}

impl PutRecordBody {
    /// An unconditional write of `value`.
    pub fn new(value: Value) -> PutRecordBody {
        PutRecordBody {
            value,
            expected_version: None,
            ttl_ms: None,
            force: false,
        }
    }

    /// Only if the record's version is `v` (0: only if it is absent).
    pub fn expected_version(mut self, v: u64) -> PutRecordBody {
        self.expected_version = Some(v);
        self
    }

    /// Expire `ms` after the write.
    pub fn ttl_ms(mut self, ms: u64) -> PutRecordBody {
        self.ttl_ms = Some(ms);
        self
    }
}

/// `?expected_version=N` of PATCH and DELETE.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreconditionQuery {
    /// Only if the record's version is N.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

/// `GET /records?prefix=&limit=&cursor=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only keys that start with it.
    #[serde(default)]
    pub prefix: String,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `GET /v1/namespaces?limit=&cursor=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespacesQuery {
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
