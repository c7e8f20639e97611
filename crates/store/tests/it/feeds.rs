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
// 1. Append creates; the same id again (other data) answers the original,
//    `created: false`, and writes nothing.

async fn append_idempotent(env: Env) {
    let s = &env.store;
    let feed = "recentReceives:owner@example.com";
    // A feed that never had an entry lists as empty.
    let empty = page(s, feed, true, None, 10).await;
    assert_eq!(
        empty,
        FeedPage {
            entries: vec![],
            unread_count: 0
        }
    );

    let before = system_now();
    let (e1, created, rev1) = append_on(s, feed, "res:1", json!({"amount": 5, "ip": "10.0.0.1"}), None).await;
    let after = system_now();
    assert!(created, "the first append creates");
    assert_eq!(e1.id, "res:1");
    assert_eq!(e1.feed, feed);
    assert_eq!(
        e1.data,
        json!({"amount": 5, "ip": "10.0.0.1"})
            .as_object()
            .cloned()
            .unwrap()
    );
    assert!(!e1.read, "a new entry is unread");
    // `at` defaults to the storage clock; the same host, so allow a little slack.
    assert!(
        e1.at.0 >= before.0 - 5_000 && e1.at.0 <= after.0 + 5_000,
        "at {:?} is about now ({before:?}..{after:?})",
        e1.at
    );

    let (again, created, rev2) = append_on(s, feed, "res:1", json!({"amount": 999}), None).await;
    assert!(!created, "a duplicate finalization does not add the entry twice");
    assert_eq!(
        again, e1,
        "the duplicate answers the original entry, data included"
    );
    assert_eq!(rev2, rev1, "a duplicate append writes nothing (no new revision)");

    // With an explicit `at` too.
    let at = Millis(system_now().0 - 1_000);
    let (again, created, _) = append_on(s, feed, "res:1", json!({}), Some(at)).await;
    assert!(!created);
    assert_eq!(again, e1);

    let (e2, created, rev3) = append_on(s, feed, "res:2", json!({"amount": 7}), None).await;
    assert!(created);
    assert!(rev3 > rev1, "every new entry is a write with a new revision");
    assert!(e2.revision > e1.revision);

    let listed = all_entries(s, feed, false, 10).await;
    assert_eq!(listed.len(), 2, "one entry per id: {listed:?}");
    let first = listed.iter().find(|e| e.id == "res:1").unwrap();
    assert_eq!(first, &e1, "the listing shows the original entry");
    assert_eq!(unread(s, feed).await, 2);
    assert_eq!(feeds(s, "", None, 10).await, vec![summary(feed, 2, 2)]);
}

// ---------------------------------------------------------------------------
// 2. Concurrent appends of different ids from many tasks over three store
//    instances (three processes' pools on PostgreSQL): none is lost.

async fn concurrent_appends(env: Env) {
    const N: usize = 64;
    let feed = "recentReceives:owner@example.com";
    let stores = env.instances(3).await;
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let store = stores[i % stores.len()].clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let id = format!("reservation-{i:02}");
            store
                .execute(NS, append_cmd(feed, &id, json!({"i": i}), None), ACTOR)
                .await
        }));
    }
    let mut revisions = BTreeSet::new();
    for t in tasks {
        let c = t
            .await
            .expect("an appender panicked")
            .unwrap_or_else(|e| panic!("append failed: {e:?}"));
        let (e, created) = appended(&c);
        assert!(created, "{} is new", e.id);
        assert!(revisions.insert(c.revision), "each append has its own revision");
    }
    for (k, store) in stores.iter().enumerate() {
        let listed = all_entries(store, feed, true, 10).await;
        let got: BTreeSet<String> = ids(&listed).into_iter().collect();
        let want: BTreeSet<String> = (0..N).map(|i| format!("reservation-{i:02}")).collect();
        assert_eq!(got, want, "every concurrent append survives (instance {k})");
        assert_eq!(listed.len(), N, "no entry listed twice");
        assert_eq!(unread(store, feed).await, N as u64);
    }
}

// ---------------------------------------------------------------------------
// 3. The same id appended concurrently 20 times (duplicate finalizations over
//    three instances): exactly one creates, all answer the same entry.

async fn duplicate_append_race(env: Env) {
    const RACERS: usize = 20;
    let feed = "recentReceives:owner@example.com";
    let stores = env.instances(3).await;
    for round in 0..4 {
        let id = format!("reservation:{round}");
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let store = stores[(i + round) % stores.len()].clone();
            let (id, barrier) = (id.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store
                    .execute(NS, append_cmd(feed, &id, json!({"racer": i}), None), ACTOR)
                    .await
            }));
        }
        let mut winners = Vec::new();
        let mut answers = Vec::new();
        for t in tasks {
            let c = t
                .await
                .expect("a racer panicked")
                .unwrap_or_else(|e| panic!("append failed: {e:?}"));
            let (e, created) = appended(&c);
            if created {
                winners.push(e.clone());
            }
            answers.push(e);
        }
        assert_eq!(
            winners.len(),
            1,
            "exactly one of {RACERS} duplicate appends creates (round {round})"
        );
        let won = &winners[0];
        for a in &answers {
            assert_eq!(
                a, won,
                "every duplicate answers the winner's entry (round {round})"
            );
        }
        let listed = all_entries(&env.store, feed, true, 100).await;
        let n = listed.iter().filter(|e| e.id == id).count();
        assert_eq!(n, 1, "the entry is listed once (round {round})");
        assert_eq!(listed.iter().find(|e| e.id == id).unwrap(), won);
    }
    assert_eq!(unread(&env.store, feed).await, 4);
}

// ---------------------------------------------------------------------------
// 4. Order by (at, id), byte order of ids (ties broken by id), paging by
//    position in both orders yields every entry exactly once.

async fn order_and_paging(env: Env) {
    let s = &env.store;
    let feed = "ordered";
    let t0 = system_now().0 - OLD_MS;
    let specs: Vec<(i64, &str)> = vec![
        (t0 + 5, "b"),
        (t0, "ba"),
        (t0, "B"),
        (t0, "a"),
        (t0, "ab"),
        (t0, "a-b"),
        (t0, "a:b"),
        (t0, "é"),
        (t0 + 1, "z"),
        (t0 - 3, "zz"),
        (t0 + 5, "A"),
        (t0 + 5, "c/d"),
        (t0 + 2, "Ω"),
        (t0 + 2, "0"),
        (t0 + 7, "m"),
    ];
    for (at, id) in &specs {
        let (e, created, _) = append_on(s, feed, id, json!({"at": at}), Some(Millis(*at))).await;
        assert!(created);
        assert_eq!(e.at, Millis(*at), "an explicit `at` is kept");
    }
    let mut want: Vec<(i64, String)> = specs.iter().map(|(a, i)| (*a, (*i).to_owned())).collect();
    want.sort(); // Rust's String order is byte order, like SQLite BINARY and COLLATE "C".
    let asc = all_entries(s, feed, false, 1000).await;
    let got: Vec<(i64, String)> = asc.iter().map(|e| (e.at.0, e.id.clone())).collect();
    assert_eq!(got, want, "ascending order is (at, id)");
    let desc = all_entries(s, feed, true, 1000).await;
    let mut rev = want.clone();
    rev.reverse();
    let got: Vec<(i64, String)> = desc.iter().map(|e| (e.at.0, e.id.clone())).collect();
    assert_eq!(got, rev, "descending order is the reverse");

    for limit in [1, 2, 3, 4, 7, 14, 15, 16] {
        for desc in [false, true] {
            let paged = all_entries(s, feed, desc, limit).await;
            let got: Vec<(i64, String)> = paged.iter().map(|e| (e.at.0, e.id.clone())).collect();
            let expected = if desc { &rev } else { &want };
            assert_eq!(
                &got, expected,
                "paged {limit} at a time (desc: {desc}): each entry once, in order"
            );
        }
    }

    // A position between entries (one that names no entry) pages from there.
    let p = page(s, feed, false, Some((Millis(t0), "a0".to_owned())), 100).await;
    let expected: Vec<String> = want
        .iter()
        .filter(|(a, i)| (*a, i.as_str()) > (t0, "a0"))
        .map(|(_, i)| i.clone())
        .collect();
    assert_eq!(ids(&p.entries), expected);
    let p = page(s, feed, true, Some((Millis(t0 + 2), "1".to_owned())), 100).await;
    let expected: Vec<String> = rev
        .iter()
        .filter(|(a, i)| (*a, i.as_str()) < (t0 + 2, "1"))
        .map(|(_, i)| i.clone())
        .collect();
    assert_eq!(ids(&p.entries), expected);
    assert_eq!(
        p.unread_count,
        specs.len() as u64,
        "unread_count is the whole feed's"
    );
}

// ---------------------------------------------------------------------------
// 5. Legacy import: duplicates within the array and ids already present are
//    skipped; importing twice changes nothing.

fn import_cmd(feed: &str, items: &Value) -> Command {
    let entries = items
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            LegacyFields::default()
                .read(v.clone(), &Limits::default())
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    Command::Import {
        feed: feed.to_owned(),
        entries,
    }
}

fn imported(c: &Committed) -> (usize, usize) {
    match &c.outcome {
        Outcome::Imported { imported, skipped } => (*imported, *skipped),
        other => panic!("expected an import outcome, got {other:?}"),
    }
}

async fn import_legacy(env: Env) {
    let s = &env.store;
    let feed = "recentReceives:owner@example.com";
    let (present, _, _) = append_on(s, feed, "r2", json!({"live": true}), None).await;
    let legacy = json!([
        {"id": "r1", "at": "2026-01-01T00:00:01Z", "ip": "10.0.0.1", "amount": 1},
        {"id": "r2", "at": "2026-01-01T00:00:02Z", "amount": 2},
        {"id": "r3", "at": "2026-01-01T00:00:03.5Z", "data": {"amount": 3}},
        {"id": "r1", "at": "2026-01-01T00:00:09Z", "amount": 100},
        {"id": "r4", "data": {"amount": 4}, "note": "kept"},
        {"id": "r5"}
    ]);
    let c = exec(s, import_cmd(feed, &legacy)).await;
    assert_eq!(
        imported(&c),
        (4, 2),
        "r1, r3, r4, r5 imported; r2 (present) and the second r1 skipped"
    );
    let listed = all_entries(s, feed, false, 100).await;
    assert_eq!(listed.len(), 5);
    let by = |id: &str| listed.iter().find(|e| e.id == id).unwrap().clone();
    let r1 = by("r1");
    assert_eq!(r1.at, Millis::parse_rfc3339("2026-01-01T00:00:01Z").unwrap());
    assert_eq!(
        r1.data,
        json!({"ip": "10.0.0.1", "amount": 1})
            .as_object()
            .cloned()
            .unwrap(),
        "the first occurrence in the array wins; the other fields are the data"
    );
    assert_eq!(by("r2"), present, "an id already present keeps its entry");
    assert_eq!(
        by("r3").at,
        Millis(Millis::parse_rfc3339("2026-01-01T00:00:03Z").unwrap().0 + 500)
    );
    assert_eq!(by("r3").data, json!({"amount": 3}).as_object().cloned().unwrap());
    assert_eq!(
        by("r4").data,
        json!({"amount": 4}).as_object().cloned().unwrap(),
        "with a `data` member, the data is `data` (docs/feeds.md)"
    );
    assert!(by("r5").data.is_empty());
    assert_eq!(
        by("r1").revision,
        c.revision,
        "imported entries carry the import's revision"
    );
    assert!(listed.iter().all(|e| !e.read));
    assert_eq!(unread(s, feed).await, 5);

    let again = exec(s, import_cmd(feed, &legacy)).await;
    assert_eq!(imported(&again), (0, 6), "importing twice imports nothing");
    assert_eq!(again.revision, c.revision, "and writes nothing");
    assert_eq!(all_entries(s, feed, false, 100).await, listed, "nothing changed");
}

// ---------------------------------------------------------------------------
// 6. Cap: 150 appends under max_entries 100 show the newest 100 at once; the
//    sweeper deletes the rest on disk.

async fn cap(env: Env) {
    let feed = "capped";
    configure(&env.store, feed, json!({"max_entries": 100})).await;
    let t0 = system_now().0 - OLD_MS;
    let stores = env.instances(3).await;
    let mut tasks = Vec::new();
    for i in 0..150i64 {
        let store = stores[i as usize % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("e{i:03}");
            append_on(&store, feed, &id, json!({"i": i}), Some(Millis(t0 + i))).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().1);
    }
    let s = &env.store;
    let want: Vec<String> = (50..150).map(|i| format!("e{i:03}")).collect();
    let listed = all_entries(s, feed, false, 37).await;
    assert_eq!(ids(&listed), want, "only the newest 100 are visible, at once");
    let p = page(s, feed, true, None, 1000).await;
    assert_eq!(p.entries.len(), 100);
    assert_eq!(p.unread_count, 100, "unread counts visible entries only");
    assert_eq!(feeds(s, "", None, 10).await, vec![summary(feed, 100, 100)]);

    let purged = sweep_all(s).await;
    assert_eq!(purged, 50, "the sweeper purges the 50 oldest");
    // Lift the cap: what the sweeper deleted stays gone.
    configure(s, feed, json!({})).await;
    assert_eq!(
        ids(&all_entries(s, feed, false, 1000).await),
        want,
        "deleted on disk"
    );
    assert_eq!(unread(s, feed).await, 100);
}

// ---------------------------------------------------------------------------
// 7. Maximum age hides old entries at once; the sweeper deletes them on disk.

async fn max_age(env: Env) {
    let s = &env.store;
    let feed = "aged";
    let now = system_now().0;
    for i in 0..5 {
        append_on(
            s,
            feed,
            &format!("old{i}"),
            json!({"i": i}),
            Some(Millis(now - OLD_MS - i)),
        )
        .await;
        append_on(s, feed, &format!("new{i}"), json!({"i": i}), None).await;
    }
    assert_eq!(all_entries(s, feed, true, 100).await.len(), 10);
    configure(s, feed, json!({"max_age_ms": 60_000})).await;
    let listed = all_entries(s, feed, true, 100).await;
    let got: BTreeSet<String> = ids(&listed).into_iter().collect();
    let want: BTreeSet<String> = (0..5).map(|i| format!("new{i}")).collect();
    assert_eq!(got, want, "old entries are hidden at once");
    assert_eq!(unread(s, feed).await, 5);
    assert_eq!(feeds(s, "", None, 10).await, vec![summary(feed, 5, 5)]);

    assert_eq!(sweep_all(s).await, 5, "the sweeper purges the 5 old entries");
    configure(s, feed, json!({})).await;
    let got: BTreeSet<String> = ids(&all_entries(s, feed, true, 100).await).into_iter().collect();
    assert_eq!(got, want, "the old entries are gone on disk");
}

// ---------------------------------------------------------------------------
// 8. Scrub: the named fields disappear from old entries in reads at once, and
//    on disk once the sweeper ran.

async fn scrub(env: Env) {
    let s = &env.store;
    let feed = "scrubbed";
    let now = system_now().0;
    for i in 0..3 {
        let data = json!({"ip": format!("10.0.0.{i}"), "amount": i});
        append_on(
            s,
            feed,
            &format!("old{i}"),
            data.clone(),
            Some(Millis(now - OLD_MS + i)),
        )
        .await;
        append_on(s, feed, &format!("new{i}"), data, None).await;
    }
    configure(
        s,
        feed,
        json!({"scrub": {"fields": ["ip", "absent"], "after_ms": 60_000}}),
    )
    .await;
    let check = |entries: &[Entry], what: &str| {
        assert_eq!(entries.len(), 6, "{what}: scrubbing hides no entry");
        for e in entries {
            let i = e.data["amount"].as_u64().unwrap();
            assert!(e.data.contains_key("amount"), "{what}: other fields stay");
            if e.id.starts_with("old") {
                assert_eq!(e.data.get("ip"), None, "{what}: {} is scrubbed", e.id);
            } else {
                assert_eq!(
                    e.data.get("ip"),
                    Some(&json!(format!("10.0.0.{i}"))),
                    "{what}: {} keeps ip",
                    e.id
                );
            }
        }
    };
    check(&all_entries(s, feed, true, 100).await, "in reads at once");
    assert_eq!(sweep_all(s).await, 3, "the sweeper scrubs the 3 old entries");
    check(&all_entries(s, feed, true, 100).await, "after the sweep");
    // Scrubbing off: the raw rows show what is on disk.
    configure(s, feed, json!({})).await;
    check(&all_entries(s, feed, true, 100).await, "on disk");
    assert_eq!(unread(s, feed).await, 6, "scrubbing does not touch read marks");
}

// ---------------------------------------------------------------------------
// 9. Changing which fields are scrubbed: the newly named ones go on disk too
//    (an entry scrubbed once for `ip` must still lose `ua` when `ua` is named).

async fn scrub_fields_change(env: Env) {
    let s = &env.store;
    let feed = "scrub-change";
    let old = Millis(system_now().0 - OLD_MS);
    append_on(
        s,
        feed,
        "r1",
        json!({"ip": "10.0.0.1", "ua": "curl", "n": 1}),
        Some(old),
    )
    .await;
    configure(s, feed, json!({"scrub": {"fields": ["ip"], "after_ms": 60_000}})).await;
    assert_eq!(sweep_all(s).await, 1);
    configure(s, feed, json!({"scrub": {"fields": ["ua"], "after_ms": 60_000}})).await;
    let e = &all_entries(s, feed, true, 10).await[0];
    assert_eq!(
        e.data,
        json!({"n": 1}).as_object().cloned().unwrap(),
        "ua hidden in reads at once"
    );
    sweep_all(s).await;
    configure(s, feed, json!({})).await;
    let e = &all_entries(s, feed, true, 10).await[0];
    assert_eq!(
        e.data,
        json!({"n": 1}).as_object().cloned().unwrap(),
        "after the sweeper ran under scrub [ua], ua must be gone on disk too"
    );
}

// ---------------------------------------------------------------------------
// 10. The namespace default applies to feeds without a configuration of their
//     own, in reads and in the sweeper.

async fn namespace_default(env: Env) {
    let s = &env.store;
    configure(s, "", json!({"max_entries": 3})).await;
    configure(s, "own-empty", json!({})).await;
    configure(s, "own-cap", json!({"max_entries": 4})).await;
    let t0 = system_now().0 - OLD_MS;
    for feed in ["defaulted", "own-empty", "own-cap"] {
        for i in 0..5 {
            append_on(s, feed, &format!("e{i}"), json!({}), Some(Millis(t0 + i))).await;
        }
    }
    let visible = |n: usize| (5 - n..5).map(|i| format!("e{i}")).collect::<Vec<_>>();
    assert_eq!(ids(&all_entries(s, "defaulted", false, 10).await), visible(3));
    assert_eq!(ids(&all_entries(s, "own-empty", false, 10).await), visible(5));
    assert_eq!(ids(&all_entries(s, "own-cap", false, 10).await), visible(4));
    assert_eq!(
        feeds(s, "", None, 10).await,
        vec![
            summary("defaulted", 3, 3),
            summary("own-cap", 4, 4),
            summary("own-empty", 5, 5)
        ]
    );
    assert_eq!(sweep_all(s).await, 3, "2 from the defaulted feed, 1 from own-cap");
    configure(s, "defaulted", json!({})).await;
    configure(s, "own-cap", json!({})).await;
    assert_eq!(ids(&all_entries(s, "defaulted", false, 10).await), visible(3));
    assert_eq!(ids(&all_entries(s, "own-cap", false, 10).await), visible(4));
    assert_eq!(ids(&all_entries(s, "own-empty", false, 10).await), visible(5));
}

// ---------------------------------------------------------------------------
// 11. Read marks: by ids, up to a position, all; the unread count is derived
//     from them, and marking is idempotent.

async fn read_marks(env: Env) {
    let s = &env.store;
    let feed = "marks";
    let t0 = system_now().0 - OLD_MS;
    for i in 0..10 {
        append_on(s, feed, &format!("e{i:02}"), json!({}), Some(Millis(t0 + i))).await;
    }
    assert_eq!(unread(s, feed).await, 10);
    let read_ids = |entries: Vec<Entry>| -> Vec<String> {
        entries.into_iter().filter(|e| e.read).map(|e| e.id).collect()
    };

    let sel = || ReadSelector::Ids(vec!["e01".into(), "e03".into(), "missing".into()]);
    let r1 = mark(s, feed, sel()).await;
    assert_eq!(unread(s, feed).await, 8);
    assert_eq!(read_ids(all_entries(s, feed, false, 100).await), ["e01", "e03"]);
    let r2 = mark(s, feed, sel()).await;
    assert!(r2 > r1, "a read mark is a write with a change");
    assert_eq!(unread(s, feed).await, 8, "marking again changes nothing");

    let up_to = || ReadSelector::UpTo(Millis(t0 + 5), "e05".into());
    mark(s, feed, up_to()).await;
    assert_eq!(unread(s, feed).await, 4, "e00..=e05 are read");
    assert_eq!(
        read_ids(all_entries(s, feed, false, 100).await),
        ["e00", "e01", "e02", "e03", "e04", "e05"]
    );
    mark(s, feed, up_to()).await;
    assert_eq!(unread(s, feed).await, 4);
    // A position naming no entry: every entry at or before it.
    mark(s, feed, ReadSelector::UpTo(Millis(t0 + 6), "e06~".into())).await;
    assert_eq!(unread(s, feed).await, 3);
    mark(s, feed, ReadSelector::Ids(vec!["e08".into()])).await;
    assert_eq!(unread(s, feed).await, 2);
    assert_eq!(
        read_ids(all_entries(s, feed, false, 100).await),
        ["e00", "e01", "e02", "e03", "e04", "e05", "e06", "e08"]
    );
    mark(s, feed, ReadSelector::All).await;
    assert_eq!(unread(s, feed).await, 0);
    mark(s, feed, ReadSelector::All).await;
    assert_eq!(unread(s, feed).await, 0);
    assert_eq!(read_ids(all_entries(s, feed, false, 100).await).len(), 10);

    // A new entry is unread; a duplicate append keeps the original's read mark.
    append_on(s, feed, "e10", json!({}), Some(Millis(t0 + 10))).await;
    assert_eq!(unread(s, feed).await, 1);
    let (dup, created, _) = append_on(s, feed, "e03", json!({}), None).await;
    assert!(!created && dup.read, "the duplicate answers the original, read");
    assert_eq!(unread(s, feed).await, 1);
    // Marks of another feed do not leak.
    append_on(s, "other", "e00", json!({}), None).await;
    assert_eq!(unread(s, "other").await, 1);
    // The unread count covers visible entries only.
    configure(s, feed, json!({"max_entries": 2})).await;
    assert_eq!(
        unread(s, feed).await,
        1,
        "e09 (read) and e10 (unread) are visible"
    );
    assert_eq!(
        feeds(s, "", None, 10).await,
        vec![summary(feed, 2, 1), summary("other", 1, 1)]
    );
}

// ---------------------------------------------------------------------------
// 12. Delete: an absent entry is NotFound; a deleted id may be appended again.

async fn delete_entry(env: Env) {
    let s = &env.store;
    let feed = "deletes";
    let del = |id: &str| Command::DeleteEntry {
        feed: feed.to_owned(),
        id: id.to_owned(),
    };
    let e = refused(s, del("nope")).await;
    assert!(matches!(e, CoreError::NotFound(_)), "{e:?}");
    let (first, _, _) = append_on(s, feed, "x", json!({"v": 1}), None).await;
    append_on(s, feed, "y", json!({"v": 1}), None).await;
    // The same id in another feed is another entry.
    let e = refused(
        s,
        Command::DeleteEntry {
            feed: "elsewhere".into(),
            id: "x".into(),
        },
    )
    .await;
    assert!(matches!(e, CoreError::NotFound(_)), "{e:?}");
    let c = exec(s, del("x")).await;
    assert_eq!(c.outcome, Outcome::EntryDeleted);
    assert!(c.revision > first.revision);
    assert_eq!(ids(&all_entries(s, feed, true, 10).await), ["y"]);
    assert_eq!(unread(s, feed).await, 1);
    let e = refused(s, del("x")).await;
    assert!(matches!(e, CoreError::NotFound(_)), "deleting twice: {e:?}");
    let (again, created, _) = append_on(s, feed, "x", json!({"v": 2}), None).await;
    assert!(created, "a deleted id may be appended again");
    assert!(again.revision > first.revision);
    assert_eq!(again.data, json!({"v": 2}).as_object().cloned().unwrap());
}

// ---------------------------------------------------------------------------
// 13. An id purged by retention (age) may be appended again as new, both once
//     the sweeper deleted it and while it is only hidden.

async fn purged_id_appended_again(env: Env) {
    let s = &env.store;
    let feed = "reappend";
    let old = Millis(system_now().0 - OLD_MS);
    let (swept, _, _) = append_on(s, feed, "swept", json!({"v": 1}), Some(old)).await;
    let (hidden, _, _) = append_on(s, feed, "hidden", json!({"v": 1}), Some(old)).await;
    mark(s, feed, ReadSelector::All).await;
    configure(s, feed, json!({"max_age_ms": 60_000})).await;
    assert!(all_entries(s, feed, true, 10).await.is_empty());
    assert_eq!(unread(s, feed).await, 0);

    // Hidden, not yet swept: appended again as new.
    let (e, created, _) = append_on(s, feed, "hidden", json!({"v": 2}), None).await;
    assert!(created, "an aged-out id is appended again as new");
    assert!(e.revision > hidden.revision);
    assert!(!e.read, "as a new, unread entry");
    assert_eq!(e.data, json!({"v": 2}).as_object().cloned().unwrap());

    assert_eq!(sweep_all(s).await, 1, "the sweeper purges the old `swept` only");
    let (e, created, _) = append_on(s, feed, "swept", json!({"v": 2}), None).await;
    assert!(created, "a purged id is appended again as new");
    assert!(e.revision > swept.revision && !e.read);
    let listed = all_entries(s, feed, false, 10).await;
    let got: BTreeSet<String> = ids(&listed).into_iter().collect();
    assert_eq!(got, BTreeSet::from(["hidden".to_owned(), "swept".to_owned()]));
    assert_eq!(unread(s, feed).await, 2);
    // And now they are live again: duplicates are refused as usual.
    let (_, created, _) = append_on(s, feed, "swept", json!({"v": 3}), None).await;
    assert!(!created);
}

// ---------------------------------------------------------------------------
// 14. The sweeper picks aged-out ids, then purges them in a later transaction.
//     An id appended again as new in between (which the previous case shows
//     is allowed) must survive that stale purge.

async fn stale_purge_spares_reappended(env: Env) {
    let s = &env.store;
    let feed = "purge-race";
    let old = Millis(system_now().0 - OLD_MS);
    append_on(s, feed, "r1", json!({"v": 1}), Some(old)).await;
    configure(s, feed, json!({"max_age_ms": 60_000})).await;
    // What the sweeper decided (its candidate query ran here) ...
    let stale = Command::PurgeEntries {
        feed: feed.to_owned(),
        ids: vec!["r1".to_owned()],
        before: None,
    };
    // ... then a new append of the same id commits ...
    let (e, created, _) = append_on(s, feed, "r1", json!({"v": 2}), None).await;
    assert!(created);
    // ... then the sweeper's purge runs.
    exec(s, stale).await;
    let listed = all_entries(s, feed, true, 10).await;
    assert_eq!(
        listed,
        vec![e],
        "the live entry appended after the sweeper chose the aged-out one must not be purged"
    );
}

// ---------------------------------------------------------------------------
// 15. Feed listing: by name, with prefix and paging, with counts.

async fn list_feeds(env: Env) {
    let s = &env.store;
    for (feed, n) in [("a", 1), ("b/c", 2), ("b/d", 3), ("b0", 1), ("c", 4)] {
        for i in 0..n {
            append_on(s, feed, &format!("e{i}"), json!({}), None).await;
        }
    }
    mark(s, "b/d", ReadSelector::Ids(vec!["e0".into()])).await;
    let all = feeds(s, "", None, 100).await;
    assert_eq!(
        all,
        vec![
            summary("a", 1, 1),
            summary("b/c", 2, 2),
            summary("b/d", 3, 2),
            summary("b0", 1, 1),
            summary("c", 4, 4)
        ]
    );
    assert_eq!(
        feeds(s, "b/", None, 100).await,
        vec![summary("b/c", 2, 2), summary("b/d", 3, 2)]
    );
    assert_eq!(feeds(s, "b/", Some("b/c"), 100).await, vec![summary("b/d", 3, 2)]);
    let first = feeds(s, "", None, 2).await;
    assert_eq!(first, all[..2].to_vec());
    let rest = feeds(s, "", Some(&first[1].feed), 100).await;
    assert_eq!(rest, all[2..].to_vec());
    // Another namespace sees none of them.
    assert!(s.list_feeds("other-ns", "", None, 100).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// 16. Namespaces isolate feeds of the same name.

async fn namespaces(env: Env) {
    let s = &env.store;
    let feed = "shared-name";
    append_on(s, feed, "x", json!({"ns": NS}), None).await;
    let c = s
        .execute(
            "other",
            append_cmd(feed, "x", json!({"ns": "other"}), None),
            ACTOR,
        )
        .await
        .unwrap();
    let (e, created) = appended(&c);
    assert!(
        created,
        "the same feed and id in another namespace is another entry"
    );
    assert_eq!(e.data["ns"], json!("other"));
    s.execute(
        "other",
        Command::MarkRead {
            feed: feed.into(),
            selector: ReadSelector::All,
        },
        ACTOR,
    )
    .await
    .unwrap();
    assert_eq!(unread(s, feed).await, 1, "read marks stay in their namespace");
    let other = s.list_entries("other", feed, true, None, 10).await.unwrap();
    assert_eq!(other.unread_count, 0);
    assert_eq!(other.entries.len(), 1);
}

// ---------------------------------------------------------------------------
// 17. Deleting a namespace removes everything in it (SPEC §2), feeds and feed
//     configuration included: afterwards the namespace is as new.

async fn delete_namespace_removes_feeds(env: Env) {
    let s = &env.store;
    let feed = "doomed";
    configure(s, "", json!({"max_entries": 1})).await;
    configure(s, feed, json!({"max_entries": 1})).await;
    append_on(s, feed, "a", json!({}), None).await;
    append_on(s, feed, "b", json!({}), None).await;
    exec(s, put("rec", json!(1))).await;
    s.delete_namespace(NS).await.unwrap();
    assert_eq!(get(s, "rec").await, None, "records are gone");
    assert!(feeds(s, "", None, 10).await.is_empty(), "the feeds are gone too");
    assert!(page(s, feed, true, None, 10).await.entries.is_empty());
    // As new: the ids append as new, with no configuration left behind.
    let (_, created, _) = append_on(s, feed, "a", json!({"v": 2}), None).await;
    assert!(created, "an id of a deleted namespace appends as new");
    append_on(s, feed, "c", json!({}), None).await;
    append_on(s, "fresh", "x", json!({}), None).await;
    append_on(s, "fresh", "y", json!({}), None).await;
    assert_eq!(
        all_entries(s, feed, true, 10).await.len(),
        2,
        "the feed's cap is gone"
    );
    assert_eq!(
        all_entries(s, "fresh", true, 10).await.len(),
        2,
        "the default cap is gone"
    );
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
