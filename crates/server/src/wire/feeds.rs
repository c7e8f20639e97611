//! Feeds (SPEC §8).

use lockstep_core::cursor;
use lockstep_core::feed::{self, Entry, FeedConfig};
use lockstep_store::FeedSummary;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// `{id, at, data, read, revision, cursor}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Entry")]
pub struct EntryBody<'a> {
    id: &'a str,
    at: String,
    data: &'a Map<String, Value>,
    read: bool,
    revision: u64,
    cursor: String,
}

/// An entry of namespace `ns` as read, with its cursor.
pub fn entry<'a>(ns: &str, e: &'a Entry) -> EntryBody<'a> {
    EntryBody {
        id: &e.id,
        at: e.at.to_rfc3339(),
        data: &e.data,
        read: e.read,
        revision: e.revision,
        cursor: cursor::encode(&feed::cursor_scope(ns, &e.feed), &feed::position(e.at, &e.id)),
    }
}

/// An append: the entry with `created`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "EntryAppended")]
pub struct Appended<'a> {
    /// The entry (the original one when not created).
    #[serde(flatten)]
    pub entry: EntryBody<'a>,
    /// Whether it is new.
    pub created: bool,
}

/// `{entries: [...], unread_count}` of a page of entries.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Entries<'a> {
    /// The entries.
    pub entries: Vec<EntryBody<'a>>,
    /// The feed's unread count.
    pub unread_count: u64,
}

/// `GET /feeds/{feed}`: `{feed, config, own_config, entries, unread_count}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Feed<'a> {
    /// Feed name.
    pub feed: &'a str,
    /// The configuration in force.
    pub config: &'a FeedConfig,
    /// Whether it is the feed's own (else the namespace default).
    pub own_config: bool,
    /// Visible entries.
    pub entries: u64,
    /// Visible entries not marked read.
    pub unread_count: u64,
}

/// `PUT /feeds/{feed}`: `{feed, config, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "FeedConfigured")]
pub struct Configured<'a> {
    /// Feed name (`""`: the namespace default).
    pub feed: &'a str,
    /// The configuration.
    pub config: &'a FeedConfig,
    /// The revision of the write.
    pub revision: u64,
}

/// `{revision}`: read marks were set.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MarkedRead {
    /// The revision of the write.
    pub revision: u64,
}

/// `{id, deleted: true, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EntryDeleted<'a> {
    /// Entry id.
    pub id: &'a str,
    /// Always true.
    pub deleted: bool,
    /// The revision of the write.
    pub revision: u64,
}

/// `{imported, skipped, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "FeedImported")]
pub struct Imported {
    /// Entries added.
    pub imported: usize,
    /// Entries not stored: already present, repeated in the array, or already
    /// older than the feed's `max_age_ms`.
    pub skipped: usize,
    /// The revision of the write.
    pub revision: u64,
}

/// `{feed, entries, unread_count}` of a feed in a listing.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "FeedSummary")]
pub struct Summary<'a> {
    feed: &'a str,
    entries: u64,
    unread_count: u64,
}

/// `{feeds: [...]}` of a listing page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Feeds<'a> {
    /// The feeds.
    pub feeds: Vec<Summary<'a>>,
}

/// A feed in a listing.
pub fn summary(f: &FeedSummary) -> Summary<'_> {
    Summary {
        feed: &f.feed,
        entries: f.entries,
        unread_count: f.unread_count,
    }
}
