//! Feed conformance (SPEC §8, §15 "Feeds"): the same cases run against every
//! backend of `lockstep_store::Store`, like `conformance.rs`. Each case is an
//! `async fn case_name(env: Env)`; the `backends!` list at the bottom generates
//! `sqlite::case_name` and `postgres::case_name`.
//!
//! The story behind them (seeds/000): a "recent receives" feed kept as one
//! capped JSON array lost entries when two instances appended at once, and a
//! duplicate finalization added an entry twice. Here entries are rows of their
//! own, idempotent by id, ordered by `(at, id)`, with retention, scrubbing and
//! read marks.
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep-store --test it feeds:: -- --test-threads=4
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use lockstep_core::feed::{Entry, FeedConfig, LegacyFields, NewEntry, ReadSelector};
use lockstep_core::{Command, Error as CoreError, Limits, Millis, Outcome};
use lockstep_store::clock::system_now;
use lockstep_store::{Committed, FeedPage, FeedSummary, Store};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::Barrier;

mod appends;
mod listing;
mod marks;
mod paging;
mod retention;

use appends::*;
use listing::*;
use marks::*;
use paging::*;
use retention::*;

// ---------------------------------------------------------------------------
// Helpers.

/// Ten minutes, in milliseconds: far enough in the past that the storage clock
/// (PostgreSQL's, or the process's) cannot disagree about "old".
const OLD_MS: i64 = 10 * 60 * 1000;

fn new_entry(id: &str, data: Value, at: Option<Millis>) -> NewEntry {
    NewEntry::new(id.to_owned(), data, at, &Limits::default())
        .unwrap_or_else(|e| panic!("bad entry {id:?} in the test: {e}"))
}

fn append_cmd(feed: &str, id: &str, data: Value, at: Option<Millis>) -> Command {
    Command::Append {
        feed: feed.to_owned(),
        entry: new_entry(id, data, at),
    }
}

/// The entry and `created` of an append answer.
#[track_caller]
fn appended(c: &Committed) -> (Entry, bool) {
    match &c.outcome {
        Outcome::Appended { entry, created } => (entry.clone(), *created),
        other => panic!("expected an append outcome, got {other:?}"),
    }
}

/// Appends on `store`; returns the entry, `created` and the answer's revision.
async fn append_on(
    store: &Store,
    feed: &str,
    id: &str,
    data: Value,
    at: Option<Millis>,
) -> (Entry, bool, u64) {
    let c = exec(store, append_cmd(feed, id, data, at)).await;
    let (e, created) = appended(&c);
    if created {
        assert_eq!(
            e.revision, c.revision,
            "a new entry carries the revision of its append"
        );
    }
    (e, created, c.revision)
}

fn config(v: Value) -> FeedConfig {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("bad feed config in the test: {e}"))
}

/// Configures `feed` (`""` = the namespace default).
async fn configure(store: &Store, feed: &str, v: Value) {
    let cfg = config(v);
    let c = exec(
        store,
        Command::Configure {
            feed: feed.to_owned(),
            config: cfg.clone(),
        },
    )
    .await;
    assert_eq!(c.outcome, Outcome::Configured(cfg));
}

async fn mark(store: &Store, feed: &str, selector: ReadSelector) -> u64 {
    let c = exec(
        store,
        Command::MarkRead {
            feed: feed.to_owned(),
            selector,
        },
    )
    .await;
    assert_eq!(c.outcome, Outcome::MarkedRead);
    c.revision
}

async fn page(
    store: &Store,
    feed: &str,
    desc: bool,
    after: Option<(Millis, String)>,
    limit: usize,
) -> FeedPage {
    store
        .list_entries(NS, feed, desc, after.clone(), limit)
        .await
        .unwrap_or_else(|e| panic!("list_entries {feed:?} after {after:?} failed: {e:?}"))
}

/// Every visible entry of `feed`, paged `limit` at a time by position.
async fn all_entries(store: &Store, feed: &str, desc: bool, limit: usize) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut after = None;
    loop {
        let p = page(store, feed, desc, after, limit).await;
        assert!(p.entries.len() <= limit, "a page holds at most `limit` entries");
        let n = p.entries.len();
        out.extend(p.entries);
        if n < limit {
            return out;
        }
        let last = out.last().unwrap();
        after = Some((last.at, last.id.clone()));
        assert!(out.len() < 100_000, "paging does not end");
    }
}

fn ids(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.id.clone()).collect()
}

async fn unread(store: &Store, feed: &str) -> u64 {
    page(store, feed, true, None, 1).await.unread_count
}

async fn feeds(store: &Store, prefix: &str, after: Option<&str>, limit: usize) -> Vec<FeedSummary> {
    store
        .list_feeds(NS, prefix, after, limit)
        .await
        .unwrap_or_else(|e| panic!("list_feeds {prefix:?} failed: {e:?}"))
}

/// Runs the sweeper until it has nothing left to do.
async fn sweep_all(store: &Store) -> usize {
    let mut total = 0;
    for _ in 0..100 {
        let n = store
            .sweep_expired(500)
            .await
            .unwrap_or_else(|e| panic!("sweep_expired failed: {e:?}"));
        if n == 0 {
            return total;
        }
        total += n;
    }
    panic!("the sweeper still finds work after 100 rounds ({total} so far)");
}

fn summary(feed: &str, entries: u64, unread_count: u64) -> FeedSummary {
    FeedSummary {
        feed: feed.to_owned(),
        entries,
        unread_count,
    }
}

// ---------------------------------------------------------------------------

lockstep_testkit::backends!(
    crate::common::run;
    append_idempotent,
    concurrent_appends,
    duplicate_append_race,
    order_and_paging,
    import_legacy,
    cap,
    max_age,
    scrub,
    scrub_fields_change,
    namespace_default,
    read_marks,
    delete_entry,
    purged_id_appended_again,
    stale_purge_spares_reappended,
    list_feeds,
    namespaces,
    delete_namespace_removes_feeds,
);
