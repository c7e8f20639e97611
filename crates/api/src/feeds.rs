//! Feeds (SPEC §8).
//!
//! ```
//! use lockstep_api::feeds::Entry;
//! let e: Entry = serde_json::from_value(serde_json::json!({
//!     "id": "photo-1", "at": "2026-01-01T00:00:00Z", "data": {"url": "u"},
//!     "read": false, "revision": 4, "cursor": "c"})).unwrap();
//! assert_eq!(e.data["url"], "u");
//!
//! use lockstep_api::feeds::AppendBody;
//! let b = AppendBody { id: "photo-1".into(), data: serde_json::json!({"url": "u"}), at: None };
//! assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"id":"photo-1","data":{"url":"u"}}"#);
//! ```

use lockstep_core::feed::FeedConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An entry as read: `{id, at, data, read, revision, cursor}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Entry {
    /// The entry id, unique in its feed.
    pub id: String,
    /// RFC 3339: its place in the feed's order.
    pub at: String,
    /// The entry's object.
    pub data: Map<String, Value>,
    /// Whether it was marked read.
    pub read: bool,
    /// The revision of its append.
    pub revision: u64,
    /// A cursor that pages on after this entry.
    pub cursor: String,
}

/// An append: the entry with `created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntryAppended {
    /// The entry (the original one when not created).
    #[serde(flatten)]
    pub entry: Entry,
    /// Whether it is new.
    pub created: bool,
}

/// `{entries: [...], unread_count}` of a page of entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Entries {
    /// The entries.
    pub entries: Vec<Entry>,
    /// The feed's unread count.
    pub unread_count: u64,
}

/// `GET /feeds/{feed}`: `{feed, config, own_config, entries, unread_count}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Feed {
    /// Feed name.
    pub feed: String,
    /// The configuration in force.
    pub config: FeedConfig,
    /// Whether it is the feed's own (else the namespace default).
    pub own_config: bool,
    /// Visible entries.
    pub entries: u64,
    /// Visible entries not marked read.
    pub unread_count: u64,
}

/// `PUT /feeds/{feed}`: `{feed, config, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeedConfigured {
    /// Feed name (`""`: the namespace default).
    pub feed: String,
    /// The configuration.
    pub config: FeedConfig,
    /// The revision of the write.
    pub revision: u64,
}

/// `{revision}`: read marks were set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarkedRead {
    /// The revision of the write.
    pub revision: u64,
}

/// `{id, deleted: true, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntryDeleted {
    /// Entry id.
    pub id: String,
    /// Always true.
    pub deleted: bool,
    /// The revision of the write.
    pub revision: u64,
}

/// `{imported, skipped, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeedImported {
    /// Entries added.
    pub imported: usize,
    /// Entries not stored: already present, repeated in the array, or already
    /// older than the feed's `max_age_ms`.
    pub skipped: usize,
    /// The revision of the write.
    pub revision: u64,
}

/// `{feed, entries, unread_count}` of a feed in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeedSummary {
    /// Feed name.
    pub feed: String,
    /// Visible entries.
    pub entries: u64,
    /// Visible entries not marked read.
    pub unread_count: u64,
}

/// `{feeds: [...]}` of a listing page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Feeds {
    /// The feeds.
    pub feeds: Vec<FeedSummary>,
}

/// `POST /feeds/{feed}/entries` body: `{id, data, at?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendBody {
    /// The entry id: a second append of it changes nothing.
    #[schemars(length(min = 1, max = 512))]
    #[schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    pub id: String,
    /// The entry's object.
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub data: Value,
    /// RFC 3339; now when absent.
    #[schemars(extend("format" = "date-time"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// `GET /feeds/{feed}/entries?limit=&cursor=&order=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntriesQuery {
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// `asc` or `desc` (newest first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// `POST /feeds/{feed}/read` body: one of `ids`, `up_to` or `all`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    /// These entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// Every entry up to this cursor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_to: Option<String>,
    /// Every entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

/// `GET /feeds?prefix=&limit=&cursor=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedsQuery {
    /// Only feeds whose name starts with it.
    #[serde(default)]
    pub prefix: String,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `POST /feeds/{feed}/import?id_field=&at_field=&data_field=`: where the
/// legacy array's objects keep their id, time and data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// The member holding the id (default `id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
    /// The member holding the time (default `at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_field: Option<String>,
    /// The member holding the data (default `data`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_field: Option<String>,
}
