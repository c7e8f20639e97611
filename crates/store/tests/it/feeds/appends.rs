//! Appends: idempotent by id, concurrent, racing duplicates.

#![allow(clippy::unwrap_used)]

use super::*;

// 1. Append creates; the same id again (other data) answers the original,
//    `created: false`, and writes nothing.

pub(super) async fn append_idempotent(env: Env) {
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

pub(super) async fn concurrent_appends(env: Env) {
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

pub(super) async fn duplicate_append_race(env: Env) {
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
