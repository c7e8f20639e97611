//! Feeds (SPEC §8): answers built from core and store types.

use lockstep_api::feeds::{Entry as EntryBody, FeedSummary as Summary};
use lockstep_core::cursor;
use lockstep_core::feed::{self, Entry};
use lockstep_store::FeedSummary;

/// An entry of namespace `ns` as read, with its cursor.
pub fn entry(ns: &str, e: Entry) -> EntryBody {
    EntryBody {
        cursor: cursor::encode(&feed::cursor_scope(ns, &e.feed), &feed::position(e.at, &e.id)),
        at: e.at.to_rfc3339(),
        id: e.id,
        data: e.data,
        read: e.read,
        revision: e.revision,
    }
}

/// A feed in a listing.
pub fn summary(f: &FeedSummary) -> Summary {
    Summary {
        feed: f.feed.clone(),
        entries: f.entries,
        unread_count: f.unread_count,
    }
}
