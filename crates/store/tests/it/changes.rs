//! Change-log conformance (SPEC §10, §15 "Changes and watch"): every committed
//! write appends its changes in (revision, index) order; pages filter by key
//! prefix and kind, never end inside a revision, and resume with `after`;
//! compaction keeps whole revisions and refuses reads from before its horizon;
//! a reader polling while several instances commit sees every revision once,
//! in order. The same cases run against every backend, like `conformance.rs`.
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep-store --test it changes:: -- --test-threads=4
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use lockstep_core::feed::NewEntry;
use lockstep_core::gate::Transition;
use lockstep_core::lease::AcquireReq;
use lockstep_core::{Change, ChangeKind, ChangeOp, Command, Limits, Precondition};
use lockstep_store::{ChangePage, Error, Store};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------------------
// Helpers.

async fn page(
    store: &Store,
    after: u64,
    prefix: Option<&str>,
    kind: Option<&str>,
    limit: usize,
) -> ChangePage {
    store
        .list_changes(NS, after, prefix, kind, limit)
        .await
        .unwrap_or_else(|e| panic!("list_changes after {after} {prefix:?} {kind:?} failed: {e:?}"))
}

/// Every change of [`NS`] after `after` matching the filters, by pages of `limit`.
async fn all(
    store: &Store,
    after: u64,
    prefix: Option<&str>,
    kind: Option<&str>,
    limit: usize,
) -> Vec<Change> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let p = page(store, after, prefix, kind, limit).await;
        out.extend(p.changes.iter().cloned());
        assert!(p.through >= after, "through {} went back from {after}", p.through);
        after = p.through;
        if !p.more {
            return out;
        }
    }
}

/// `(revision, index, kind, key, op)` of each change.
fn shape(changes: &[Change]) -> Vec<(u64, u32, ChangeKind, String, ChangeOp)> {
    changes
        .iter()
        .map(|c| (c.revision, c.index, c.kind, c.key.clone(), c.op))
        .collect()
}

fn keys_of(changes: &[Change]) -> Vec<String> {
    changes.iter().map(|c| c.key.clone()).collect()
}

fn acquire(name: &str, token: &str) -> Command {
    Command::Acquire {
        name: name.to_owned(),
        req: AcquireReq {
            ttl_ms: 60_000,
            holder: Some("h".into()),
            token: token.to_owned(),
            wait: None,
        },
    }
}

fn append(feed: &str, id: &str) -> Command {
    Command::Append {
        feed: feed.to_owned(),
        entry: NewEntry::new(id.to_owned(), json!({"n": 1}), None, &Limits::default()).unwrap(),
    }
}

fn put_gate(id: &str) -> Command {
    Command::PutGate {
        id: id.to_owned(),
        policy: None,
        meta: None,
    }
}

/// Writes one change of each primitive and a few records; returns the revisions.
async fn mixed_writes(s: &Store) -> Vec<u64> {
    let mut revs = Vec::new();
    for cmd in [
        put("user/1", json!(1)),
        put("user/2", json!(2)),
        put("order/1", json!(3)),
        acquire("user/lock", "tok-1"),
        append("user", "e1"),
        put_gate("user-gate"),
        put("user/1", json!(4)),
    ] {
        revs.push(exec(s, cmd).await.revision);
    }
    revs
}

// ---------------------------------------------------------------------------
// Cases.

/// Every primitive's writes produce their changes, in commit order, with the
/// actor, `forced` and one revision (several indexes) per transaction; refused
/// commands and other namespaces add nothing.
async fn each_primitive_in_order(env: Env) {
    let s = &env.store;
    let start = s.change_bounds().await.unwrap();
    assert_eq!(start.horizon, 0);
    let r1 = put_outcome(&exec(s, put("a", json!(1))).await).0.version;
    let r2 = exec(s, merge("a", json!({"x": 1}), Precondition::None))
        .await
        .revision;
    let r3 = exec(
        s,
        txn(json!({"success": [{"put": {"key": "b", "value": 1}}, {"put": {"key": "c", "value": 2}}]})),
    )
    .await
    .revision;
    let r4 = exec(s, delete("b", Precondition::None)).await.revision;
    // A refusal commits nothing and logs nothing.
    refused(s, put_if("a", json!(0), Precondition::ExpectedVersion(1))).await;
    let r5 = exec(
        s,
        put_with("a", json!(2), Precondition::ExpectedVersion(1), None, true),
    )
    .await
    .revision;
    let r6 = exec(s, acquire("lock", "tok-a")).await.revision;
    let r7 = exec(
        s,
        Command::Release {
            name: "lock".into(),
            token: "tok-a".into(),
        },
    )
    .await
    .revision;
    let r8 = exec(s, append("news", "e1")).await.revision;
    let r9 = exec(s, put_gate("g")).await.revision;
    let r10 = exec(
        s,
        Command::Transition {
            id: "g".into(),
            transition: Transition::Pause,
        },
    )
    .await
    .revision;
    // Another namespace's writes are not in this namespace's log.
    s.execute("elsewhere", put("a", json!(1)), ACTOR).await.unwrap();

    let got = all(s, 0, None, None, 100).await;
    use ChangeKind as K;
    use ChangeOp as O;
    let want = vec![
        (r1, 0, K::Record, "a".to_owned(), O::Put),
        (r2, 0, K::Record, "a".to_owned(), O::Patch),
        (r3, 0, K::Record, "b".to_owned(), O::Put),
        (r3, 1, K::Record, "c".to_owned(), O::Put),
        (r4, 0, K::Record, "b".to_owned(), O::Delete),
        (r5, 0, K::Record, "a".to_owned(), O::Put),
        (r6, 0, K::Lease, "lock".to_owned(), O::Acquire),
        (r7, 0, K::Lease, "lock".to_owned(), O::Release),
        (r8, 0, K::Feed, "news/e1".to_owned(), O::Append),
        (r9, 0, K::Gate, "g".to_owned(), O::Create),
        (r10, 0, K::Gate, "g".to_owned(), O::Pause),
    ];
    assert_eq!(shape(&got), want);
    let revisions: Vec<u64> = [r1, r2, r3, r4, r5, r6, r7, r8, r9, r10].into();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    assert!(got.iter().all(|c| c.actor == ACTOR));
    let forced: Vec<u64> = got.iter().filter(|c| c.forced).map(|c| c.revision).collect();
    assert_eq!(forced, vec![r5], "only the forced put is marked forced");
    assert!(got.iter().all(|c| c.at.0 > 0));
    // The latest revision is the other namespace's write.
    let b = s.change_bounds().await.unwrap();
    assert_eq!(b.latest, r10 + 1);
    let elsewhere = s.list_changes("elsewhere", 0, None, None, 10).await.unwrap();
    assert_eq!(
        shape(&elsewhere.changes),
        vec![(r10 + 1, 0, K::Record, "a".to_owned(), O::Put)]
    );
    // Round trip of the wire names.
    for c in &got {
        assert_eq!(ChangeKind::parse(c.kind.as_str()), Some(c.kind));
        assert_eq!(ChangeOp::parse(c.op.as_str()), Some(c.op));
    }
}

/// `prefix` matches the change's key (record key, lease name, gate id,
/// `feed/entry id`); `kind` selects a primitive; both combine.
async fn prefix_and_kind_filters(env: Env) {
    let s = &env.store;
    let revs = mixed_writes(s).await;
    let user = all(s, 0, Some("user"), None, 100).await;
    assert_eq!(
        keys_of(&user),
        ["user/1", "user/2", "user/lock", "user/e1", "user-gate", "user/1"],
        "{user:?}"
    );
    let slash = all(s, 0, Some("user/"), None, 100).await;
    assert_eq!(
        keys_of(&slash),
        ["user/1", "user/2", "user/lock", "user/e1", "user/1"]
    );
    let records = all(s, 0, None, Some("record"), 100).await;
    assert_eq!(keys_of(&records), ["user/1", "user/2", "order/1", "user/1"]);
    let user_records = all(s, 0, Some("user/"), Some("record"), 100).await;
    assert_eq!(keys_of(&user_records), ["user/1", "user/2", "user/1"]);
    for (kind, key) in [("lease", "user/lock"), ("feed", "user/e1"), ("gate", "user-gate")] {
        let got = all(s, 0, None, Some(kind), 100).await;
        assert_eq!(keys_of(&got), [key], "kind {kind}");
        assert_eq!(got[0].kind.as_str(), kind);
    }
    assert!(all(s, 0, None, Some("idempotency"), 100).await.is_empty());
    assert!(all(s, 0, Some("nothing"), None, 100).await.is_empty());
    // A page with no match is complete through the latest revision, so a
    // poller moves past revisions that do not match.
    let p = page(s, 0, Some("nothing"), None, 100).await;
    assert!(!p.more);
    assert_eq!(p.through, *revs.last().unwrap());
    let p = page(s, revs[2], Some("order/"), None, 100).await;
    assert!(p.changes.is_empty());
    assert_eq!(p.through, *revs.last().unwrap());
}

/// Pages hold whole revisions, resume after the last revision of the previous
/// one, and together hold every change once; a revision larger than the page
/// comes whole.
async fn paging_with_after_and_limit(env: Env) {
    let s = &env.store;
    let mut revs = Vec::new();
    for i in 0..7 {
        revs.push(exec(s, put(&format!("k{i}"), json!(i))).await.revision);
    }
    let big = exec(
        s,
        txn(json!({"success": [
            {"put": {"key": "t0", "value": 0}}, {"put": {"key": "t1", "value": 1}},
            {"put": {"key": "t2", "value": 2}}, {"put": {"key": "t3", "value": 3}},
            {"put": {"key": "t4", "value": 4}}]})),
    )
    .await
    .revision;
    let last = exec(s, put("z", json!(0))).await.revision;
    let everything = all(s, 0, None, None, 1000).await;
    assert_eq!(everything.len(), 7 + 5 + 1);
    for limit in [1, 2, 3, 4, 6] {
        let mut after = 0;
        let mut got = Vec::new();
        loop {
            let p = page(s, after, None, None, limit).await;
            if let Some(first) = p.changes.first() {
                assert!(first.revision > after);
                // Whole revisions: the page holds every change of each revision in it.
                let in_page: BTreeSet<u64> = p.changes.iter().map(|c| c.revision).collect();
                for r in &in_page {
                    let n = everything.iter().filter(|c| c.revision == *r).count();
                    assert_eq!(p.changes.iter().filter(|c| c.revision == *r).count(), n);
                }
                if in_page.len() > 1 {
                    assert!(
                        p.changes.len() <= limit,
                        "limit {limit}: {} changes",
                        p.changes.len()
                    );
                }
            }
            if p.more {
                assert_eq!(p.through, p.changes.last().unwrap().revision);
            }
            got.extend(p.changes);
            after = p.through;
            if !p.more {
                break;
            }
        }
        assert_eq!(got, everything, "limit {limit}");
    }
    // The five-change revision comes whole even on a page of 2.
    let p = page(s, revs[6], None, None, 2).await;
    assert_eq!(p.changes.len(), 5);
    assert!(p.changes.iter().all(|c| c.revision == big));
    assert!(p.more);
    assert_eq!(p.through, big);
    // After the last revision: empty and complete.
    let p = page(s, last, None, None, 10).await;
    assert!(p.changes.is_empty());
    assert!(!p.more);
    assert_eq!(p.through, last);
    // An `after` from the future reads nothing and stays there.
    let p = page(s, last + 100, None, None, 10).await;
    assert!(p.changes.is_empty());
    assert_eq!(p.through, last + 100);
}

/// Compaction by count and by age deletes whole revisions from the oldest,
/// records the horizon, and a read from before it is refused (`Compacted`),
/// while a read from the horizon on still works.
async fn compaction_then_compacted(env: Env) {
    let s = &env.store;
    let mut revs = Vec::new();
    for i in 0..20 {
        revs.push(exec(s, put(&format!("k{i:02}"), json!(i))).await.revision);
    }
    let pair = exec(
        s,
        txn(json!({"success": [{"put": {"key": "p0", "value": 0}}, {"put": {"key": "p1", "value": 1}}]})),
    )
    .await
    .revision;
    // Nothing is old enough and the count is not exceeded: nothing goes.
    let n = s.compact_changes(u64::MAX, 1_000).await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(s.change_bounds().await.unwrap().horizon, 0);
    assert_eq!(all(s, 0, None, None, 100).await.len(), 22);

    // Keep 6 changes: the last 4 single puts and the pair stay (whole revisions).
    let n = s.compact_changes(u64::MAX, 6).await.unwrap();
    assert_eq!(n, 16);
    let b = s.change_bounds().await.unwrap();
    assert_eq!(b.horizon, revs[15]);
    assert_eq!(b.latest, pair);
    match s.list_changes(NS, 0, None, None, 10).await {
        Err(Error::Core(lockstep_core::Error::Compacted { after: 0, horizon })) => {
            assert_eq!(horizon, revs[15])
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    match s
        .list_changes(NS, revs[15] - 1, Some("k"), Some("record"), 10)
        .await
    {
        Err(Error::Core(lockstep_core::Error::Compacted { .. })) => {}
        other => panic!("expected Compacted, got {other:?}"),
    }
    let kept = all(s, revs[15], None, None, 100).await;
    assert_eq!(
        keys_of(&kept),
        ["k16", "k17", "k18", "k19", "p0", "p1"],
        "the newest whole revisions are kept"
    );
    // A count that would split the pair deletes it whole.
    let n = s.compact_changes(u64::MAX, 1).await.unwrap();
    assert_eq!(n, 6);
    assert_eq!(s.change_bounds().await.unwrap().horizon, pair);
    assert!(all(s, pair, None, None, 100).await.is_empty());

    // By age: new writes, then everything older than 0 ms goes.
    let fresh = exec(s, put("fresh", json!(1))).await.revision;
    assert_eq!(s.compact_changes(0, 1_000_000).await.unwrap(), 0, "not older yet");
    env.clock.advance(1);
    let n = s.compact_changes(0, 1_000_000).await.unwrap();
    assert_eq!(n, 1);
    let b = s.change_bounds().await.unwrap();
    assert_eq!((b.horizon, b.latest), (fresh, fresh));
    assert!(page(s, fresh, None, None, 10).await.changes.is_empty());
    assert!(s.list_changes(NS, fresh - 1, None, None, 10).await.is_err());
    // The log goes on after compaction, and survives a restart with its horizon.
    let next = exec(s, put("next", json!(1))).await.revision;
    assert!(next > fresh);
    let env = env.reopen().await;
    let s = &env.store;
    assert_eq!(s.change_bounds().await.unwrap().horizon, fresh);
    assert_eq!(keys_of(&all(s, fresh, None, None, 10).await), ["next"]);
}

/// Compaction in batches: more rows than one batch go in one call (or a few).
async fn compaction_in_batches(env: Env) {
    let s = &env.store;
    let stores = env.instances(4).await;
    let mut tasks = Vec::new();
    for (w, st) in stores.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..1_500 {
                exec(&st, put(&format!("w{w}/{i}"), json!(i))).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let latest = s.change_bounds().await.unwrap().latest;
    let mut deleted = 0;
    for _ in 0..10 {
        deleted += s.compact_changes(u64::MAX, 100).await.unwrap();
        if deleted == 5_900 {
            break;
        }
    }
    assert_eq!(deleted, 5_900);
    let kept = all(s, s.change_bounds().await.unwrap().horizon, None, None, 1000).await;
    assert_eq!(kept.len(), 100);
    assert_eq!(kept.last().unwrap().revision, latest);
}

/// A reader polling with `through` while several instances commit concurrently
/// sees every committed revision exactly once, in strictly increasing order
/// (PostgreSQL allocates revisions in commit order). Three pools, sixteen
/// writers: on PostgreSQL it fails within a second, missing over a hundred
/// revisions, if the reader does not wait for the writers' marks or if the
/// writers take none (both checked by planting the bug).
async fn poller_sees_every_revision_once(env: Env) {
    const WRITERS: usize = 16;
    const WRITES: usize = 60;
    let stores = env.instances(3).await;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let s = env.store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut after = 0;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let p = page(&s, after, Some("w"), None, 50).await;
                for c in &p.changes {
                    if seen.last() != Some(&c.revision) {
                        seen.push(c.revision);
                    }
                }
                after = p.through;
                if finished && !p.more {
                    return seen;
                }
                if !p.more {
                    // Paces the poller between empty pages (a poller's
                    // interval; nothing depends on its length).
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let st = stores[w % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..WRITES {
                let key = format!("w{}", (w * 7 + i) % 23);
                let cmd = if i % 5 == 4 {
                    txn(json!({"success": [{"put": {"key": key, "value": i}}, {"put": {"key": format!("w-{w}"), "value": i}}]}))
                } else {
                    put(&key, json!(i))
                };
                revs.push(exec(&st, cmd).await.revision);
            }
            revs
        }));
    }
    let mut committed = BTreeSet::new();
    for t in tasks {
        committed.extend(t.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "revisions out of order");
    let seen_set: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(seen_set.len(), seen.len(), "a revision was seen twice");
    let missed: Vec<_> = committed.difference(&seen_set).collect();
    assert!(
        missed.is_empty(),
        "the poller missed {} revisions: {missed:?}",
        missed.len()
    );
    assert_eq!(seen_set, committed);
}

// ---------------------------------------------------------------------------

lockstep_testkit::backends!(
    crate::common::run;
    each_primitive_in_order,
    prefix_and_kind_filters,
    paging_with_after_and_limit,
    compaction_in_batches,
    poller_sees_every_revision_once,
);

// Compaction by age moves the store's clock instead of sleeping.
lockstep_testkit::backends!(
    manual_clock => crate::common::run_manual;
    compaction_then_compacted,
);
