//! Feeds end to end (SPEC §8, §15 "Feeds"), through real `lockstep serve`
//! processes: one over SQLite, and three over one PostgreSQL schema.
//!
//! The story (seeds/000): an owner's "recent receives" feed was one capped JSON
//! array rewritten on every finalization; two instances appending at once lost
//! entries, and a duplicate finalization added an entry twice. Here:
//! - concurrent appends of different entries from 64 clients all stay visible;
//!   the same entry appended 20 times at once is created exactly once;
//! - `unread_count` is derived from per-entry read marks, also under concurrent
//!   appends and marks;
//! - the legacy array imports idempotently (the migration path);
//! - paging by cursor is stable while others keep appending;
//! - retention (cap, age) and IP scrubbing hold in reads at once and on disk
//!   once the sweeper ran;
//! - bad input is a clean 400 and the server keeps serving.
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep --test it feeds:: -- --test-threads=2
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{pg_cluster, poll, sqlite_cluster, Cluster, Disk, Http, Resp};
use lockstep_core::Millis;
use lockstep_store::clock::system_now;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

use lockstep_client::api::feeds::{AppendBody, EntriesQuery, Entry, EntryAppended};
use lockstep_client::api::FeedConfig;
use lockstep_client::Ns;

mod bad_input;
mod legacy_import;
mod marks;
mod paging;
mod receives;
mod retention;

const NS: &str = "feeds";
/// The feed of the story: an owner's recent receives.
const RECEIVES: &str = "recentReceives:owner@example.com";
/// Bound on one scenario, so a deadlock fails instead of hanging.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the sweeper (every second) may take to get to something.
const SWEEP_DEADLINE: Duration = Duration::from_secs(10);
/// Ten minutes ago is "old" for every window below (60 s).
const OLD_MS: i64 = 10 * 60 * 1000;

// ---------------------------------------------------------------------------
// Servers and the database underneath.

/// The stored rows of a feed, `(id, data)` by id, read straight from the
/// database (SQLite file opened read-only, or the PostgreSQL schema).
async fn disk_rows(disk: &Disk, feed: &str) -> Result<BTreeMap<String, Value>, String> {
    const SQL_SQLITE: &str = "SELECT id, data FROM feed_entries WHERE ns = ?1 AND feed = ?2";
    const SQL_PG: &str = "SELECT id, data FROM feed_entries WHERE ns = $1 AND feed = $2";
    let parse =
        |(id, data): (String, String)| -> (String, Value) { (id, serde_json::from_str(&data).unwrap()) };
    match disk {
        Disk::Sqlite(path) => {
            let (path, feed) = (path.clone(), feed.to_owned());
            tokio::task::spawn_blocking(move || {
                let flags =
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let c = rusqlite::Connection::open_with_flags(&path, flags).map_err(|e| e.to_string())?;
                c.busy_timeout(Duration::from_secs(5))
                    .map_err(|e| e.to_string())?;
                let mut stmt = c.prepare(SQL_SQLITE).map_err(|e| e.to_string())?;
                let rows = stmt
                    .query_map(rusqlite::params![NS, feed], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(|e| e.to_string())?
                    .collect::<Result<Vec<(String, String)>, _>>()
                    .map_err(|e| e.to_string())?;
                Ok(rows.into_iter().map(parse).collect())
            })
            .await
            .unwrap()
        }
        Disk::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let driver = tokio::spawn(conn);
            let rows = client
                .query(SQL_PG, &[&NS, &feed])
                .await
                .map_err(|e| e.to_string());
            drop(client);
            let _ = driver.await;
            Ok(rows?.iter().map(|r| parse((r.get(0), r.get(1)))).collect())
        }
    }
}

/// Polls the stored rows of `feed` until `ok` holds, up to [`SWEEP_DEADLINE`].
async fn until_on_disk(
    disk: &Disk,
    feed: &str,
    what: &str,
    ok: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    poll(SWEEP_DEADLINE, what, || async {
        match disk_rows(disk, feed).await {
            Ok(rows) if ok(&rows) => Some(rows),
            _ => None,
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// Requests.

use crate::common::enc;

fn feed_path(feed: &str) -> String {
    format!("/v1/ns/{NS}/feeds/{}", enc(feed))
}

fn entries_path(feed: &str) -> String {
    format!("{}/entries", feed_path(feed))
}

async fn append(h: &Http, feed: &str, body: Value) -> Resp {
    h.json("POST", &entries_path(feed), &body).await
}

/// Appends a new entry; it must be created.
async fn append_new(h: &Http, feed: &str, body: Value) -> Resp {
    let r = append(h, feed, body.clone()).await;
    assert_eq!(r.status, 201, "append {body} to {feed}: {}", r.text);
    assert_eq!(r.body["created"], json!(true), "{}", r.text);
    r
}

async fn mark_read(h: &Http, feed: &str, body: Value) {
    let r = h.json("POST", &format!("{}/read", feed_path(feed)), &body).await;
    assert_eq!(r.status, 200, "mark {body} read on {feed}: {}", r.text);
    assert!(r.body["revision"].as_u64().is_some(), "{}", r.text);
}

/// One page: `GET entries?limit=&order=&cursor=`.
async fn get_page(h: &Http, feed: &str, order: &str, limit: usize, cursor: Option<&str>) -> Resp {
    let mut path = format!("{}?limit={limit}&order={order}", entries_path(feed));
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={}", enc(c)));
    }
    let r = h.get(&path).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    r
}

/// Every visible entry, paged `limit` at a time through the clients in turn;
/// with the last page's `unread_count`.
async fn page_all(hs: &[Http], feed: &str, order: &str, limit: usize) -> (Vec<Value>, u64) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for n in 0.. {
        let r = get_page(&hs[n % hs.len()], feed, order, limit, cursor.as_deref()).await;
        let entries = r.body["entries"].as_array().unwrap();
        assert!(entries.len() <= limit, "at most `limit` entries: {}", r.text);
        out.extend(entries.iter().cloned());
        match &r.body["next_cursor"] {
            Value::String(c) => {
                assert!(!entries.is_empty(), "a page with a next_cursor is not empty");
                cursor = Some(c.clone());
            }
            Value::Null => return (out, r.u64("unread_count")),
            other => panic!("next_cursor {other}"),
        }
        assert!(n < 10_000, "paging does not end");
    }
    unreachable!()
}

// ---------------------------------------------------------------------------
// The same, through `lockstep_client` (one attempt per call).

/// Every visible entry of `feed`, paged `limit` at a time through the
/// servers in turn; with the last page's `unread_count`.
async fn all_entries(apps: &[Ns], feed: &str, order: &str, limit: usize) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for n in 0.. {
        let q = EntriesQuery {
            limit: Some(limit),
            cursor: cursor.take(),
            order: Some(order.to_owned()),
        };
        let p = apps[n % apps.len()].entries_page(feed, &q).await.unwrap();
        let got = p.items.entries.len();
        assert!(got <= limit, "at most `limit` entries: {got}");
        out.extend(p.items.entries);
        match p.next_cursor {
            Some(c) => {
                assert!(got > 0, "a page with a next_cursor is not empty");
                cursor = Some(c);
            }
            None => return (out, p.items.unread_count),
        }
        assert!(n < 10_000, "paging does not end");
    }
    unreachable!()
}

/// Appends `{id, data, at}` through `app`; it must be created.
async fn add_new(app: &Ns, feed: &str, id: &str, data: Value, at: Option<String>) -> EntryAppended {
    let body = AppendBody {
        id: id.to_owned(),
        data,
        at,
    };
    let r = app
        .append(feed, &body)
        .await
        .unwrap_or_else(|e| panic!("append {body:?} to {feed}: {e:?}"));
    assert!(r.created, "append {id} to {feed}: {r:?}");
    assert_eq!(r.entry.id, id, "{r:?}");
    r
}

/// Configures `feed` through `app`; the answer names it and its config.
async fn set_config(app: &Ns, feed: &str, config: FeedConfig) {
    let r = app
        .configure_feed(feed, &config)
        .await
        .unwrap_or_else(|e| panic!("PUT config {config:?} on {feed}: {e:?}"));
    assert_eq!((r.feed.as_str(), &r.config), (feed, &config), "{r:?}");
}

/// An entry's `data` as a JSON value.
fn data_of(e: &Entry) -> Value {
    Value::Object(e.data.clone())
}

fn id_of(e: &Value) -> String {
    e["id"].as_str().unwrap().to_owned()
}

fn rfc3339(ms: i64) -> String {
    Millis(ms).to_rfc3339()
}

async fn bounded(what: &str, fut: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(SCENARIO_TIMEOUT, fut).await.is_err() {
        panic!("{what} did not finish within {SCENARIO_TIMEOUT:?}");
    }
}
