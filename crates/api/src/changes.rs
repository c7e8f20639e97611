//! The change log and watch events (SPEC §10).
//!
//! ```
//! use lockstep_api::{changes::Change, ChangeKind, ChangeOp};
//! let c: Change = serde_json::from_value(serde_json::json!({
//!     "revision": 9, "index": 0, "kind": "record", "key": "a", "op": "put",
//!     "actor": "anonymous", "forced": false, "at": "2026-01-01T00:00:00Z"})).unwrap();
//! assert_eq!((c.kind, c.op), (ChangeKind::Record, ChangeOp::Put));
//! ```

use lockstep_core::change::{ChangeKind, ChangeOp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One change: `{revision, index, kind, key, op, actor, forced, at}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// The revision of the write.
    pub revision: u64,
    /// Its position among the write's changes.
    pub index: u32,
    /// The primitive.
    pub kind: ChangeKind,
    /// The object's key (for feed entries `feed/id`, for tickets `gate/ticket`).
    pub key: String,
    /// What happened.
    pub op: ChangeOp,
    /// Who wrote it (a token's name, `anonymous`, or `system`).
    pub actor: String,
    /// Whether a precondition was overridden with `force`.
    pub forced: bool,
    /// RFC 3339.
    pub at: String,
}

/// `{changes: [...]}` of a page of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Changes {
    /// The changes, in (revision, index) order.
    pub changes: Vec<Change>,
}

/// The data of one `change` event of a watch: `{revision, changes}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WatchEvent {
    /// The revision.
    pub revision: u64,
    /// Its matching changes.
    pub changes: Vec<Change>,
}

/// `GET /changes?after=&cursor=&prefix=&kind=&limit=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// Changes after this revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only keys that start with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Only these kinds (comma-separated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `GET /watch?after=&prefix=&kind=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// Events after this revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Only keys that start with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Only these kinds (comma-separated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}
