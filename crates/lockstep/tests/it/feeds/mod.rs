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

/// Percent-encodes a name for a path segment or a query value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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

async fn configure(h: &Http, feed: &str, config: Value) {
    let r = h.json("PUT", &feed_path(feed), &config).await;
    assert_eq!(r.status, 200, "PUT config {config} on {feed}: {}", r.text);
    assert_eq!(r.body["feed"], json!(feed), "{}", r.text);
    assert_eq!(r.body["config"], config, "{}", r.text);
    assert!(r.body["revision"].as_u64().is_some(), "{}", r.text);
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

fn id_of(e: &Value) -> String {
    e["id"].as_str().unwrap().to_owned()
}

fn at_of(e: &Value) -> Millis {
    Millis::parse_rfc3339(e["at"].as_str().unwrap()).unwrap_or_else(|err| panic!("bad at in {e}: {err}"))
}

fn rfc3339(ms: i64) -> String {
    Millis(ms).to_rfc3339()
}

async fn bounded(what: &str, fut: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(SCENARIO_TIMEOUT, fut).await.is_err() {
        panic!("{what} did not finish within {SCENARIO_TIMEOUT:?}");
    }
}

// ---------------------------------------------------------------------------
// 1. seeds/000: concurrent appends, duplicate finalizations, unread counts.

const CLIENTS: usize = 64;
const RACERS: usize = 20;
const DUP_ROUNDS: usize = 3;
const LATE: usize = 16;

async fn receives(cl: &Cluster) {
    let label = cl.label;
    let clients = cl.clients();

    // 64 clients, each finalizing its own reservation, all at once.
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let h = cl.http(i);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            assert_eq!(h.get("/healthz").await.status, 200);
            barrier.wait().await;
            let body = json!({"id": format!("reservation:{i:02}"), "data": {"client": i, "ip": format!("10.0.0.{i}")}});
            (i, append(&h, RECEIVES, body).await)
        }));
    }
    let mut revisions = BTreeSet::new();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        assert_eq!(r.status, 201, "[{label}] client {i}: {}", r.text);
        assert_eq!(r.body["created"], json!(true));
        assert_eq!(r.body["id"], json!(format!("reservation:{i:02}")));
        assert_eq!(r.body["data"], json!({"client": i, "ip": format!("10.0.0.{i}")}));
        assert_eq!(r.body["read"], json!(false));
        assert!(r.body["cursor"].is_string(), "{}", r.text);
        at_of(&r.body);
        assert!(
            revisions.insert(r.u64("revision")),
            "[{label}] one revision per append"
        );
    }
    let want: BTreeSet<String> = (0..CLIENTS).map(|i| format!("reservation:{i:02}")).collect();
    for order in ["desc", "asc"] {
        let (entries, unread) = page_all(&clients, RECEIVES, order, 10).await;
        let got: Vec<String> = entries.iter().map(id_of).collect();
        let unique: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(
            got.len(),
            unique.len(),
            "[{label}] no entry listed twice ({order})"
        );
        assert_eq!(
            unique, want,
            "[{label}] every concurrent append is visible ({order})"
        );
        assert_eq!(unread, CLIENTS as u64, "[{label}] unread_count");
    }

    // Duplicate finalizations: the same reservation 20 times at once.
    let mut dup_ids = Vec::new();
    for round in 0..DUP_ROUNDS {
        let id = format!("reservation:dup-{round}");
        dup_ids.push(id.clone());
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let h = cl.http(i + round);
            let (barrier, id) = (barrier.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                assert_eq!(h.get("/healthz").await.status, 200);
                barrier.wait().await;
                append(&h, RECEIVES, json!({"id": id, "data": {"racer": i}})).await
            }));
        }
        let mut created = Vec::new();
        let mut replays = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            match r.status {
                201 => created.push(r),
                200 => replays.push(r),
                other => panic!("[{label}] duplicate append answered {other}: {}", r.text),
            }
        }
        assert_eq!(
            created.len(),
            1,
            "[{label}] exactly one 201 of {RACERS} (round {round})"
        );
        assert_eq!(replays.len(), RACERS - 1);
        let mut won = created[0].body.clone();
        won.as_object_mut().unwrap().remove("created");
        for r in &replays {
            assert_eq!(r.body["created"], json!(false), "{}", r.text);
            let mut b = r.body.clone();
            b.as_object_mut().unwrap().remove("created");
            assert_eq!(
                b, won,
                "[{label}] every duplicate answers the original entry (same at, revision, data)"
            );
        }
        let (entries, _) = page_all(&clients, RECEIVES, "desc", 1000).await;
        let same: Vec<&Value> = entries.iter().filter(|e| e["id"] == json!(id)).collect();
        assert_eq!(same.len(), 1, "[{label}] listed once");
        assert_eq!(same[0], &won, "[{label}] the listing shows the original");
    }

    // Concurrent read marks of a known subset (by ids, overlapping, from
    // several clients) while other clients append new entries.
    let mut subset: Vec<String> = (0..CLIENTS)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("reservation:{i:02}"))
        .collect();
    subset.push(dup_ids[0].clone());
    const MARKERS: usize = 6;
    let chunk = subset.len().div_ceil(MARKERS);
    let barrier = Arc::new(Barrier::new(MARKERS + LATE));
    let mut tasks = Vec::new();
    for m in 0..MARKERS {
        // Each marker takes its chunk and the next one's first half: overlaps.
        let from = m * chunk;
        let to = (from + chunk + chunk / 2).min(subset.len());
        let ids: Vec<String> = subset[from.min(subset.len())..to].to_vec();
        let (h, barrier) = (cl.http(m), barrier.clone());
        tasks.push(tokio::spawn(async move {
            assert_eq!(h.get("/healthz").await.status, 200);
            barrier.wait().await;
            mark_read(&h, RECEIVES, json!({ "ids": ids })).await;
            mark_read(&h, RECEIVES, json!({ "ids": ids })).await; // idempotent
        }));
    }
    for j in 0..LATE {
        let (h, barrier) = (cl.http(j + 1), barrier.clone());
        tasks.push(tokio::spawn(async move {
            assert_eq!(h.get("/healthz").await.status, 200);
            barrier.wait().await;
            append_new(
                &h,
                RECEIVES,
                json!({"id": format!("late:{j:02}"), "data": {"j": j}}),
            )
            .await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = CLIENTS + DUP_ROUNDS + LATE;
    let expected_unread = (total - subset.len()) as u64;
    for (k, h) in clients.iter().enumerate() {
        let (entries, unread) = page_all(std::slice::from_ref(h), RECEIVES, "desc", 25).await;
        assert_eq!(entries.len(), total, "[{label}] all entries visible (server {k})");
        let read: BTreeSet<String> = entries
            .iter()
            .filter(|e| e["read"] == json!(true))
            .map(id_of)
            .collect();
        let want_read: BTreeSet<String> = subset.iter().cloned().collect();
        assert_eq!(read, want_read, "[{label}] exactly the marked entries are read");
        let unread_listed = entries.iter().filter(|e| e["read"] == json!(false)).count() as u64;
        assert_eq!(
            unread, unread_listed,
            "[{label}] unread_count matches the marks (server {k})"
        );
        assert_eq!(unread, expected_unread, "[{label}] unread_count (server {k})");
    }
    let r = clients[0].get(&format!("/v1/ns/{NS}/feeds")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["feeds"],
        json!([{"feed": RECEIVES, "entries": total, "unread_count": expected_unread}]),
        "[{label}] the feed listing counts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receives_sqlite() {
    let cl = sqlite_cluster();
    bounded("receives on SQLite", receives(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receives_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("receives on 3 PostgreSQL processes", receives(&cl)).await;
}

// ---------------------------------------------------------------------------
// 2. The legacy array: imported once per id; importing again changes nothing;
//    concurrent imports of the same array import each id once in all.

async fn legacy_import(cl: &Cluster) {
    let label = cl.label;
    let clients = cl.clients();
    let h = &clients[0];
    let feed = "legacy:owner@example.com";
    let live = append_new(h, feed, json!({"id": "r2", "data": {"live": true}})).await;
    let legacy = json!([
        {"id": "r1", "at": "2026-01-01T00:00:01Z", "ip": "10.0.0.1", "amount": 1},
        {"id": "r2", "at": "2026-01-01T00:00:02Z", "amount": 2},
        {"id": "r3", "at": "2026-01-01T00:00:03.250Z", "data": {"amount": 3}},
        {"id": "r1", "at": "2026-01-01T00:00:09Z", "amount": 100},
        {"id": "r4", "amount": 4},
        {"id": "r3", "data": {"amount": 300}},
        {"id": "r5", "data": {}}
    ]);
    let import = format!("{}/import", feed_path(feed));
    let r = h.json("POST", &import, &legacy).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    assert_eq!(
        (r.u64("imported"), r.u64("skipped")),
        (4, 3),
        "[{label}] {}",
        r.text
    );
    let rev = r.u64("revision");
    let (before, unread) = page_all(&clients, feed, "asc", 2).await;
    assert_eq!(unread, 5);
    let by: BTreeMap<String, Value> = before.iter().map(|e| (id_of(e), e.clone())).collect();
    assert_eq!(by.len(), 5);
    assert_eq!(
        by["r1"]["data"],
        json!({"ip": "10.0.0.1", "amount": 1}),
        "first occurrence wins"
    );
    assert_eq!(by["r1"]["at"], json!("2026-01-01T00:00:01.000Z"));
    assert_eq!(by["r1"]["revision"], json!(rev));
    assert_eq!(
        by["r2"]["data"],
        json!({"live": true}),
        "a present id keeps its entry"
    );
    assert_eq!(by["r2"]["revision"], live.body["revision"]);
    assert_eq!(by["r3"]["data"], json!({"amount": 3}));
    assert_eq!(by["r3"]["at"], json!("2026-01-01T00:00:03.250Z"));
    assert_eq!(by["r4"]["data"], json!({"amount": 4}));
    assert_eq!(by["r5"]["data"], json!({}));
    let order: Vec<String> = before.iter().map(id_of).collect();
    // r2 was appended (now) before the import; r4 and r5 got the import's time.
    assert_eq!(order, ["r1", "r3", "r2", "r4", "r5"], "ordered by (at, id)");

    for (i, c) in clients.iter().enumerate() {
        let r = c.json("POST", &import, &legacy).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            (r.u64("imported"), r.u64("skipped")),
            (0, 7),
            "[{label}] again via {i}"
        );
    }
    let (after, _) = page_all(&clients, feed, "asc", 2).await;
    assert_eq!(after, before, "[{label}] importing twice changes nothing");

    // The same array imported by 6 clients at once into a fresh feed.
    let feed2 = "legacy:concurrent";
    let import2 = format!("{}/import", feed_path(feed2));
    let barrier = Arc::new(Barrier::new(6));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (h, barrier, path, body) = (cl.http(i), barrier.clone(), import2.clone(), legacy.clone());
        tasks.push(tokio::spawn(async move {
            assert_eq!(h.get("/healthz").await.status, 200);
            barrier.wait().await;
            h.json("POST", &path, &body).await
        }));
    }
    let mut imported = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.u64("imported") + r.u64("skipped"), 7);
        imported += r.u64("imported");
    }
    assert_eq!(
        imported, 5,
        "[{label}] concurrent imports import each id once in all"
    );
    let (entries, unread) = page_all(&clients, feed2, "desc", 100).await;
    assert_eq!(entries.len(), 5);
    assert_eq!(unread, 5);

    // The documented shape: with a `data` member, the entry's data is `data`.
    let feed3 = "legacy:documented";
    let import3 = format!("{}/import", feed_path(feed3));
    let r = h
        .json(
            "POST",
            &import3,
            &json!([{"id": "c", "at": "2026-01-01T00:00:00Z", "data": {"file": "z"}, "extra": 1}]),
        )
        .await;
    assert_eq!(r.u64("imported"), 1, "{}", r.text);
    let (entries, _) = page_all(&clients, feed3, "asc", 10).await;
    assert_eq!(entries[0]["data"], json!({"file": "z"}), "[{label}] {entries:?}");

    // The seed's array, as the Worker kept it: named members, epoch milliseconds
    // and RFC 3339 mixed, the payload beside them.
    let feed4 = "legacy:seed-000";
    let seed = json!([
        {"reservationId": "res-1", "createdAt": 1_767_225_600_000_i64, "file": "a.pdf", "ip": "10.0.0.1"},
        {"reservationId": "res-2", "createdAt": "2026-01-01T00:00:01Z", "file": "b.pdf"},
    ]);
    let named = format!(
        "{}/import?id_field=reservationId&at_field=createdAt",
        feed_path(feed4)
    );
    let r = h.json("POST", &named, &seed).await;
    assert_eq!((r.status, r.u64("imported")), (200, 2), "[{label}] {}", r.text);
    let (entries, _) = page_all(&clients, feed4, "asc", 10).await;
    assert_eq!(entries[0]["id"], json!("res-1"));
    assert_eq!(entries[0]["at"], json!("2026-01-01T00:00:00.000Z"));
    assert_eq!(entries[0]["data"], json!({"file": "a.pdf", "ip": "10.0.0.1"}));
    assert_eq!(entries[1]["at"], json!("2026-01-01T00:00:01.000Z"));

    // GET /feeds/{feed}: the configuration in force and the counts.
    let path4 = feed_path(feed4);
    let r = h.get(&path4).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.body["entries"], &r.body["unread_count"], &r.body["own_config"]),
        (&json!(2), &json!(2), &json!(false)),
        "{}",
        r.text
    );
    let r = h.json("PUT", &path4, &json!({"max_entries": 10})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h.get(&path4).await;
    assert_eq!(
        (&r.body["config"], &r.body["own_config"]),
        (&json!({"max_entries": 10}), &json!(true)),
        "{}",
        r.text
    );
    let r = h.get(&feed_path("legacy:never-used")).await;
    assert_eq!(
        (r.status, &r.body["entries"]),
        (200, &json!(0)),
        "a feed never used reads empty: {}",
        r.text
    );

    // A bad element refuses the whole batch, naming its index; nothing of it lands.
    let feed5 = "legacy:bad";
    let import5 = format!("{}/import", feed_path(feed5));
    let r = h
        .json(
            "POST",
            &import5,
            &json!([{"id": "ok-1"}, {"id": "ok-2"}, {"id": "bad", "at": "yesterday"}]),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, Some("invalid_request")), "{}", r.text);
    assert!(
        r.body["detail"].as_str().unwrap().contains("element 2"),
        "{}",
        r.text
    );
    let (entries, _) = page_all(&clients, feed5, "asc", 10).await;
    assert!(
        entries.is_empty(),
        "[{label}] nothing of a refused batch: {entries:?}"
    );
    let r = h
        .json("POST", &format!("{import5}?id_column=x"), &json!([]))
        .await;
    assert_eq!(r.status, 400, "an unknown import parameter: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_import_sqlite() {
    let cl = sqlite_cluster();
    bounded("legacy import on SQLite", legacy_import(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_import_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("legacy import on 3 PostgreSQL processes", legacy_import(&cl)).await;
}

// ---------------------------------------------------------------------------
// 3. Paging 1,000 entries 37 at a time, both orders, while other clients keep
//    appending (now, and at times between the existing entries): every
//    pre-existing entry appears exactly once, in order.

const PRE: usize = 1000;
const PAGE: usize = 37;
const WRITERS: usize = 4;

async fn paging_under_appends(cl: &Cluster) {
    let label = cl.label;
    let clients = cl.clients();
    let feed = "paged/owner@example.com";
    let base = system_now().0 - 3_600_000;
    let pre_at = |i: usize| base + 4 * i as i64;
    for chunk in 0..2 {
        let items: Vec<Value> = (chunk * 500..(chunk + 1) * 500)
            .map(|i| json!({"id": format!("p{i:04}"), "at": rfc3339(pre_at(i)), "i": i}))
            .collect();
        let r = clients[0]
            .json(
                "POST",
                &format!("{}/import", feed_path(feed)),
                &Value::Array(items),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!((r.u64("imported"), r.u64("skipped")), (500, 0));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (h, stop, written) = (cl.http(w), stop.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut between = false;
            while !stop.load(Ordering::Relaxed) {
                // In turn: now, and between two pre-existing entries.
                between = !between;
                let body = if !between {
                    json!({"id": format!("w{w}-{n}"), "data": {}})
                } else {
                    let k = (n * 37 + w * 101) % PRE;
                    json!({"id": format!("w{w}-{n}"), "data": {}, "at": rfc3339(base + 4 * k as i64 + 2)})
                };
                append_new(&h, feed, body).await;
                written.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    // Let the writers get going before the readers start.
    poll(Duration::from_secs(30), "the writers to start", || async {
        (written.load(Ordering::Relaxed) >= 8).then_some(())
    })
    .await;
    let started = written.load(Ordering::Relaxed);
    let mut readers = Vec::new();
    for order in ["desc", "asc"] {
        let clients = clients.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            for n in 0.. {
                let r = get_page(&clients[n % clients.len()], feed, order, PAGE, cursor.as_deref()).await;
                let entries = r.body["entries"].as_array().unwrap().clone();
                assert!(entries.len() <= PAGE);
                seen.extend(entries);
                match &r.body["next_cursor"] {
                    Value::String(c) => cursor = Some(c.clone()),
                    _ => break,
                }
                // Give the writers room between pages.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (order, seen)
        }));
    }
    let mut results = Vec::new();
    for r in readers {
        results.push(r.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let during = written.load(Ordering::Relaxed) - started;
    assert!(
        during > 0,
        "[{label}] the writers appended while the readers paged"
    );

    for (order, seen) in results {
        let keys: Vec<(Millis, String)> = seen.iter().map(|e| (at_of(e), id_of(e))).collect();
        let unique: BTreeSet<&String> = keys.iter().map(|(_, id)| id).collect();
        assert_eq!(
            unique.len(),
            keys.len(),
            "[{label}] no entry seen twice ({order})"
        );
        let monotone = keys
            .windows(2)
            .all(|w| if order == "asc" { w[0] < w[1] } else { w[0] > w[1] });
        assert!(monotone, "[{label}] pages are in (at, id) order ({order})");
        let pre: Vec<String> = keys
            .iter()
            .map(|(_, id)| id.clone())
            .filter(|id| id.starts_with('p'))
            .collect();
        let mut want: Vec<String> = (0..PRE).map(|i| format!("p{i:04}")).collect();
        if order == "desc" {
            want.reverse();
        }
        assert_eq!(
            pre.len(),
            PRE,
            "[{label}] every pre-existing entry is seen ({order})"
        );
        assert_eq!(
            pre, want,
            "[{label}] each pre-existing entry exactly once, in order ({order})"
        );
        println!(
            "[{label}] {order}: {} entries seen, {} appended meanwhile",
            keys.len(),
            during
        );
    }
    // Everything written is there in the end.
    let (entries, unread) = page_all(&clients, feed, "asc", 1000).await;
    let total = PRE + written.load(Ordering::Relaxed);
    assert_eq!(entries.len(), total, "[{label}] nothing lost");
    assert_eq!(unread, total as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_under_appends_sqlite() {
    let cl = sqlite_cluster();
    bounded("paging on SQLite", paging_under_appends(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_under_appends_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("paging on 3 PostgreSQL processes", paging_under_appends(&cl)).await;
}

// ---------------------------------------------------------------------------
// 4. Retention and scrubbing: in reads at once, on disk once the sweeper ran.

async fn retention(cl: &Cluster) {
    let label = cl.label;
    let clients = cl.clients();
    let h = &clients[0];
    let now = system_now().0;

    // Cap: 150 appends under max_entries 100.
    let capped = "capped";
    configure(h, capped, json!({"max_entries": 100})).await;
    let mut tasks = Vec::new();
    for c in 0..10 {
        let h = cl.http(c);
        tasks.push(tokio::spawn(async move {
            for k in 0..15 {
                let i = c * 15 + k;
                append_new(&h, capped, json!({"id": format!("c{i:03}"), "data": {"i": i}})).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for hh in &clients {
        let r = get_page(hh, capped, "desc", 1000, None).await;
        let entries = r.body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 100, "[{label}] the cap shows 100");
        assert!(
            r.u64("unread_count") <= 100,
            "[{label}] {}",
            r.u64("unread_count")
        );
        assert_eq!(r.u64("unread_count"), 100);
        assert_eq!(r.body["next_cursor"], Value::Null);
    }
    let visible: BTreeSet<String> = get_page(h, capped, "desc", 1000, None).await.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    let rows = until_on_disk(&cl.disk, capped, "the sweeper to apply the cap on disk", |r| {
        r.len() == 100
    })
    .await;
    let stored: BTreeSet<String> = rows.keys().cloned().collect();
    assert_eq!(
        stored, visible,
        "[{label}] what is left on disk is what was visible"
    );

    // Age: old entries hidden at once, deleted by the sweeper.
    let aged = "aged";
    for i in 0..5 {
        append_new(
            h,
            aged,
            json!({"id": format!("old{i}"), "data": {}, "at": rfc3339(now - OLD_MS - i)}),
        )
        .await;
        append_new(h, aged, json!({"id": format!("new{i}"), "data": {}})).await;
    }
    assert_eq!(page_all(&clients, aged, "desc", 100).await.0.len(), 10);
    configure(h, aged, json!({"max_age_ms": 60_000})).await;
    let (entries, unread) = page_all(&clients, aged, "desc", 3).await;
    let got: BTreeSet<String> = entries.iter().map(id_of).collect();
    let new_ids: BTreeSet<String> = (0..5).map(|i| format!("new{i}")).collect();
    assert_eq!(got, new_ids, "[{label}] old entries are hidden at once");
    assert_eq!(unread, 5);
    until_on_disk(&cl.disk, aged, "the sweeper to delete aged entries", |r| {
        r.keys().cloned().collect::<BTreeSet<_>>() == new_ids
    })
    .await;
    // A purged id may be appended again, as new.
    let r = append(h, aged, json!({"id": "old0", "data": {"again": true}})).await;
    assert_eq!(
        r.status, 201,
        "[{label}] a purged id is appended again as new: {}",
        r.text
    );

    // Scrub: `ip` removed from entries older than the window.
    let scrubbed = "scrubbed";
    for i in 0..5 {
        let data = json!({"ip": format!("10.0.0.{i}"), "amount": i});
        append_new(
            h,
            scrubbed,
            json!({"id": format!("old{i}"), "data": data, "at": rfc3339(now - OLD_MS + i)}),
        )
        .await;
        append_new(h, scrubbed, json!({"id": format!("new{i}"), "data": data})).await;
    }
    let check = |entries: &[Value], what: &str| {
        assert_eq!(entries.len(), 10, "[{label}] {what}: scrubbing hides no entry");
        for e in entries {
            let i = e["data"]["amount"].as_u64().unwrap();
            let want = if id_of(e).starts_with("old") {
                json!({"amount": i})
            } else {
                json!({"amount": i, "ip": format!("10.0.0.{i}")})
            };
            assert_eq!(e["data"], want, "[{label}] {what}: {}", id_of(e));
        }
    };
    configure(
        h,
        scrubbed,
        json!({"scrub": {"fields": ["ip"], "after_ms": 60_000}}),
    )
    .await;
    check(
        &page_all(&clients, scrubbed, "desc", 4).await.0,
        "in reads at once",
    );
    let rows = until_on_disk(&cl.disk, scrubbed, "the sweeper to scrub ip on disk", |r| {
        r.iter()
            .filter(|(id, _)| id.starts_with("old"))
            .all(|(_, d)| d.get("ip").is_none())
    })
    .await;
    for (id, data) in &rows {
        assert_eq!(
            data.get("ip").is_some(),
            id.starts_with("new"),
            "[{label}] on disk, only the recent entries keep ip: {id} {data}"
        );
    }
    // Scrubbing off: the field stays gone from the old entries.
    configure(h, scrubbed, json!({})).await;
    check(
        &page_all(&clients, scrubbed, "desc", 4).await.0,
        "with scrubbing off",
    );

    // The namespace default applies to feeds without their own configuration.
    let r = h
        .json(
            "PUT",
            &format!("/v1/ns/{NS}/feed-defaults"),
            &json!({"max_entries": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["feed"], json!(""));
    let defaulted = "defaulted";
    for i in 0..4 {
        append_new(
            h,
            defaulted,
            json!({"id": format!("d{i}"), "data": {}, "at": rfc3339(now - 1000 + i)}),
        )
        .await;
    }
    let (entries, unread) = page_all(&clients, defaulted, "asc", 10).await;
    assert_eq!(
        entries.iter().map(id_of).collect::<Vec<_>>(),
        ["d2", "d3"],
        "[{label}] default cap"
    );
    assert_eq!(unread, 2);
    assert_eq!(
        page_all(&clients, scrubbed, "asc", 100).await.0.len(),
        10,
        "own config wins"
    );
    until_on_disk(&cl.disk, defaulted, "the sweeper to apply the default cap", |r| {
        r.len() == 2
    })
    .await;

    let r = h.get(&format!("/v1/ns/{NS}/feeds")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listed: BTreeMap<String, (u64, u64)> = r.body["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let n = |k: &str| f[k].as_u64().unwrap();
            (
                f["feed"].as_str().unwrap().to_owned(),
                (n("entries"), n("unread_count")),
            )
        })
        .collect();
    let want: BTreeMap<String, (u64, u64)> = [
        (aged, (6, 6)),
        (capped, (100, 100)),
        (defaulted, (2, 2)),
        (scrubbed, (10, 10)),
    ]
    .into_iter()
    .map(|(f, c)| (f.to_owned(), c))
    .collect();
    assert_eq!(listed, want, "[{label}] GET /feeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_sqlite() {
    let cl = sqlite_cluster();
    bounded("retention on SQLite", retention(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("retention on 3 PostgreSQL processes", retention(&cl)).await;
}

// ---------------------------------------------------------------------------
// 5. The original entry a duplicate append answers is what readers see: with
//    the scrubbed fields removed once it is old enough (the sweeper may not
//    have run yet).

async fn duplicate_answer_scrubbed(cl: &Cluster) {
    let label = cl.label;
    let h = cl.http(0);
    let feed = "dup-scrub";
    let old = rfc3339(system_now().0 - OLD_MS);
    append_new(
        &h,
        feed,
        json!({"id": "r1", "data": {"ip": "10.0.0.1", "n": 1}, "at": old}),
    )
    .await;
    configure(&h, feed, json!({"scrub": {"fields": ["ip"], "after_ms": 60_000}})).await;
    let r = append(&h, feed, json!({"id": "r1", "data": {"ip": "10.9.9.9", "n": 2}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listed = get_page(&h, feed, "desc", 10, None).await;
    assert_eq!(
        listed.body["entries"][0]["data"],
        json!({"n": 1}),
        "[{label}] {}",
        listed.text
    );
    assert_eq!(
        r.body["data"],
        json!({"n": 1}),
        "[{label}] a duplicate append answers the original entry as readers see it, without the scrubbed ip"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_answer_scrubbed_sqlite() {
    let cl = sqlite_cluster();
    bounded("duplicate answer on SQLite", duplicate_answer_scrubbed(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_answer_scrubbed_postgres() {
    let Some(cl) = pg_cluster(1).await else { return };
    bounded("duplicate answer on PostgreSQL", duplicate_answer_scrubbed(&cl)).await;
}

// ---------------------------------------------------------------------------
// 6. Read marks by cursor, delete, and the feed listing with names that need
//    percent-encoding.

async fn marks_delete_listing(cl: &Cluster) {
    let label = cl.label;
    let clients = cl.clients();
    let h = &clients[0];
    let t0 = system_now().0 - 60_000;
    // A feed that never had an entry lists as empty.
    let r = get_page(h, "never/used", "desc", 10, None).await;
    assert_eq!(
        r.body,
        json!({"entries": [], "next_cursor": null, "unread_count": 0})
    );

    let alpha = "team/alpha:ops@example.com";
    let mut cursors = Vec::new();
    for i in 0..6 {
        let r = append_new(
            h,
            alpha,
            json!({"id": format!("a{i}"), "data": {}, "at": rfc3339(t0 + i)}),
        )
        .await;
        cursors.push(r.body["cursor"].as_str().unwrap().to_owned());
    }
    // up_to: the entry's own cursor marks it and everything older.
    mark_read(h, alpha, json!({"up_to": cursors[2]})).await;
    let (entries, unread) = page_all(&clients, alpha, "asc", 4).await;
    let read: Vec<String> = entries
        .iter()
        .filter(|e| e["read"] == json!(true))
        .map(id_of)
        .collect();
    assert_eq!(read, ["a0", "a1", "a2"], "[{label}] up_to marks at or older");
    assert_eq!(unread, 3);
    // A cursor from a page works as well, and marking is idempotent.
    let page1 = get_page(h, alpha, "asc", 4, None).await;
    let next = page1.body["next_cursor"].as_str().unwrap().to_owned();
    mark_read(h, alpha, json!({"up_to": next})).await;
    mark_read(h, alpha, json!({"up_to": next})).await;
    assert_eq!(
        page_all(&clients, alpha, "asc", 4).await.1,
        2,
        "[{label}] a0..a3 read"
    );
    // Delete.
    let del = format!("{}/{}", entries_path(alpha), enc("a5"));
    let r = h.send(h.req("DELETE", &del)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], json!("a5"));
    assert_eq!(r.body["deleted"], json!(true));
    assert!(r.body["revision"].as_u64().is_some());
    let r = h.send(h.req("DELETE", &del)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.code(), Some("not_found"));
    let r = h
        .send(h.req("DELETE", &format!("{}/nope", entries_path(alpha))))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(
        page_all(&clients, alpha, "asc", 4).await.1,
        1,
        "[{label}] a4 unread"
    );
    mark_read(h, alpha, json!({"all": true})).await;
    assert_eq!(page_all(&clients, alpha, "asc", 4).await.1, 0);

    let beta = "team/beta";
    append_new(h, beta, json!({"id": "b0", "data": {}})).await;
    append_new(h, RECEIVES, json!({"id": "r0", "data": {}})).await;
    append_new(h, "solo", json!({"id": "s0", "data": {}})).await;
    append_new(h, "solo", json!({"id": "s1", "data": {}})).await;
    let all = json!([
        {"feed": RECEIVES, "entries": 1, "unread_count": 1},
        {"feed": "solo", "entries": 2, "unread_count": 2},
        {"feed": alpha, "entries": 5, "unread_count": 0},
        {"feed": beta, "entries": 1, "unread_count": 1}
    ]);
    let r = h.get(&format!("/v1/ns/{NS}/feeds")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"feeds": all, "next_cursor": null}), "[{label}]");
    let r = h.get(&format!("/v1/ns/{NS}/feeds?prefix={}", enc("team/"))).await;
    assert_eq!(r.body["feeds"], json!([all[2], all[3]]), "[{label}] prefix");
    // Paging one at a time through every server.
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    for n in 0..10 {
        let mut path = format!("/v1/ns/{NS}/feeds?limit=1");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", enc(c)));
        }
        let r = clients[n % clients.len()].get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        got.extend(r.body["feeds"].as_array().unwrap().iter().cloned());
        match &r.body["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            _ => break,
        }
    }
    assert_eq!(Value::Array(got), all, "[{label}] paged feed listing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn marks_delete_listing_sqlite() {
    let cl = sqlite_cluster();
    bounded("marks on SQLite", marks_delete_listing(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn marks_delete_listing_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("marks on 3 PostgreSQL processes", marks_delete_listing(&cl)).await;
}

// ---------------------------------------------------------------------------
// 7. Bad input: a clean 400 invalid_request for each, nothing written, and the
//    server keeps serving.

async fn bad_input(cl: &Cluster) {
    let label = cl.label;
    let h = cl.http(0);
    let feed = "guarded";
    let other = "guarded-other";
    append_new(&h, feed, json!({"id": "keep", "data": {"n": 1}})).await;
    let foreign = append_new(&h, other, json!({"id": "x", "data": {}})).await;
    let foreign = foreign.body["cursor"].as_str().unwrap().to_owned();
    let feeds_cursor = {
        append_new(&h, "guarded-third", json!({"id": "x", "data": {}})).await;
        let r = h.get(&format!("/v1/ns/{NS}/feeds?limit=1")).await;
        r.body["next_cursor"].as_str().unwrap().to_owned()
    };
    let entries = entries_path(feed);
    let config = feed_path(feed);
    let read = format!("{}/read", feed_path(feed));
    let import = format!("{}/import", feed_path(feed));
    let defaults = format!("/v1/ns/{NS}/feed-defaults");
    let get = |q: &str| ("GET", format!("{entries}?{q}"), None::<Value>);
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", entries.clone(), Some(json!({"data": {}}))),
        ("POST", entries.clone(), Some(json!({"id": "a"}))),
        ("POST", entries.clone(), Some(json!({"id": "a", "data": [1]}))),
        ("POST", entries.clone(), Some(json!({"id": "a", "data": "text"}))),
        ("POST", entries.clone(), Some(json!({"id": "a", "data": null}))),
        ("POST", entries.clone(), Some(json!({"id": "a", "data": 5}))),
        ("POST", entries.clone(), Some(json!({"id": "", "data": {}}))),
        ("POST", entries.clone(), Some(json!({"id": 5, "data": {}}))),
        (
            "POST",
            entries.clone(),
            Some(json!({"id": "a\u{1}b", "data": {}})),
        ),
        (
            "POST",
            entries.clone(),
            Some(json!({"id": "a", "data": {}, "at": "yesterday"})),
        ),
        (
            "POST",
            entries.clone(),
            Some(json!({"id": "a", "data": {}, "extra": 1})),
        ),
        ("POST", entries.clone(), Some(json!([{"id": "a", "data": {}}]))),
        get("cursor=garbage"),
        get(&format!("cursor={}", enc(&foreign))),
        get(&format!("cursor={}", enc(&feeds_cursor))),
        get("order=sideways"),
        get("limit=0"),
        get("limit=1001"),
        get("limit=-1"),
        get("bogus=1"),
        ("PUT", config.clone(), Some(json!({"max_entries": -1}))),
        ("PUT", config.clone(), Some(json!({"max_entries": 0}))),
        ("PUT", config.clone(), Some(json!({"max_entries": "10"}))),
        ("PUT", config.clone(), Some(json!({"max_age_ms": 0}))),
        ("PUT", config.clone(), Some(json!({"max_age_ms": -5}))),
        (
            "PUT",
            config.clone(),
            Some(json!({"max_entries": 10, "unknown": true})),
        ),
        (
            "PUT",
            config.clone(),
            Some(json!({"scrub": {"fields": [], "after_ms": 1}})),
        ),
        ("PUT", config.clone(), Some(json!({"scrub": {"fields": ["ip"]}}))),
        (
            "PUT",
            config.clone(),
            Some(json!({"scrub": {"fields": ["ip"], "after_ms": 1, "x": 1}})),
        ),
        ("PUT", defaults.clone(), Some(json!({"max_entries": 0}))),
        ("PUT", defaults.clone(), Some(json!({"nope": 1}))),
        ("POST", read.clone(), Some(json!({"ids": ["keep"], "all": true}))),
        (
            "POST",
            read.clone(),
            Some(json!({"ids": ["keep"], "up_to": foreign})),
        ),
        ("POST", read.clone(), Some(json!({}))),
        ("POST", read.clone(), Some(json!({"all": false}))),
        ("POST", read.clone(), Some(json!({"ids": "keep"}))),
        ("POST", read.clone(), Some(json!({"ids": [""]}))),
        ("POST", read.clone(), Some(json!({"up_to": "garbage"}))),
        ("POST", read.clone(), Some(json!({"up_to": foreign}))),
        ("POST", read.clone(), Some(json!({"all": true, "extra": 1}))),
        ("POST", import.clone(), Some(json!({"id": "a"}))),
        ("POST", import.clone(), Some(json!([{"data": {}}]))),
        ("POST", import.clone(), Some(json!([{"id": 5}]))),
        ("POST", import.clone(), Some(json!(["a"]))),
        ("POST", import.clone(), Some(json!([{"id": "a", "at": "bad"}]))),
        ("POST", import.clone(), Some(json!([{"id": "a", "data": [1]}]))),
        ("POST", import.clone(), Some(json!([{"id": "ok"}, {"id": ""}]))),
        ("GET", format!("/v1/ns/{NS}/feeds?cursor=garbage"), None),
        ("GET", format!("/v1/ns/{NS}/feeds?cursor={}", enc(&foreign)), None),
        ("GET", format!("/v1/ns/{NS}/feeds?bogus=1"), None),
        ("GET", format!("/v1/ns/{NS}/feeds?limit=0"), None),
    ];
    let mut failures = Vec::new();
    for (method, path, body) in &cases {
        let r = match body {
            Some(b) => h.json(method, path, b).await,
            None => h.send(h.req(method, path)).await,
        };
        let shown = format!(
            "{method} {path} {}",
            body.as_ref().map(Value::to_string).unwrap_or_default()
        );
        if r.status != 400 || r.code() != Some("invalid_request") {
            failures.push(format!(
                "{shown}: expected 400 invalid_request, got {} {:.300}",
                r.status, r.text
            ));
        }
        let ok = get_page(&h, feed, "desc", 10, None).await;
        if ok.body["entries"].as_array().map(Vec::len) != Some(1) {
            failures.push(format!("after {shown}: the feed changed: {}", ok.text));
        }
    }
    // Not JSON at all, and the wrong media type.
    let r = h
        .send(
            h.req("POST", &entries)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    if r.status != 400 || r.code() != Some("invalid_request") {
        failures.push(format!("malformed JSON: got {} {}", r.status, r.text));
    }
    let r = h
        .send(
            h.req("POST", &entries)
                .header("content-type", "text/plain")
                .body(r#"{"id":"a","data":{}}"#),
        )
        .await;
    if r.status != 415 {
        failures.push(format!(
            "text/plain body: expected 415, got {} {}",
            r.status, r.text
        ));
    }
    // An import over 1000 entries is refused as too large.
    let big: Vec<Value> = (0..1001).map(|i| json!({"id": format!("b{i}")})).collect();
    let r = h.json("POST", &import, &Value::Array(big)).await;
    if r.status != 413 {
        failures.push(format!(
            "1001-entry import: expected 413, got {} {:.300}",
            r.status, r.text
        ));
    }
    // Nothing was written, and the server still serves.
    let r = get_page(&h, feed, "desc", 10, None).await;
    assert_eq!(
        r.body["entries"].as_array().unwrap().len(),
        1,
        "[{label}] {}",
        r.text
    );
    assert_eq!(r.body["entries"][0]["data"], json!({"n": 1}));
    let r = h.get(&format!("/v1/ns/{NS}/feeds")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["feeds"].as_array().unwrap().len(),
        3,
        "[{label}] {}",
        r.text
    );
    append_new(&h, feed, json!({"id": "after", "data": {}})).await;
    assert_eq!(h.get("/readyz").await.status, 200);
    assert!(
        failures.is_empty(),
        "[{label}] {} failure(s):\n- {}",
        failures.len(),
        failures.join("\n- ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_sqlite() {
    let cl = sqlite_cluster();
    bounded("bad input on SQLite", bad_input(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_postgres() {
    let Some(cl) = pg_cluster(1).await else { return };
    bounded("bad input on PostgreSQL", bad_input(&cl)).await;
}
