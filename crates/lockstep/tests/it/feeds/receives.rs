//! Concurrent appends, duplicate finalizations and unread counts (seeds/000),
//! through `lockstep_client`.

use super::*;
use futures_util::TryStreamExt;
use lockstep_client::api::feeds::{AppendBody, EntryAppended, FeedsQuery, ReadBody};
use lockstep_client::Ns;

/// Appends through `app`; the answer must come.
async fn add(app: &Ns, id: &str, data: Value) -> EntryAppended {
    let body = AppendBody {
        id: id.to_owned(),
        data,
        at: None,
    };
    app.append(RECEIVES, &body)
        .await
        .unwrap_or_else(|e| panic!("append {id}: {e:?}"))
}

/// Marks `ids` read through `app`.
async fn mark(app: &Ns, ids: &[String]) {
    let body = ReadBody {
        ids: Some(ids.to_vec()),
        ..ReadBody::default()
    };
    app.mark_read(RECEIVES, &body)
        .await
        .unwrap_or_else(|e| panic!("mark {ids:?} read: {e:?}"));
}

// ---------------------------------------------------------------------------
// 1. seeds/000: concurrent appends, duplicate finalizations, unread counts.

const CLIENTS: usize = 64;
const RACERS: usize = 20;
const DUP_ROUNDS: usize = 3;
const LATE: usize = 16;

async fn receives(cl: &Cluster) {
    let label = cl.label;
    let apps: Vec<Ns> = (0..cl.urls.len()).map(|i| cl.ns(i, NS)).collect();

    // 64 clients, each finalizing its own reservation, all at once.
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let app = cl.ns(i, NS);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            app.client().server_info().await.unwrap();
            barrier.wait().await;
            let data = json!({"client": i, "ip": format!("10.0.0.{i}")});
            (i, add(&app, &format!("reservation:{i:02}"), data).await)
        }));
    }
    let mut revisions = BTreeSet::new();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        assert!(r.created, "[{label}] client {i}: {r:?}");
        let e = &r.entry;
        assert_eq!(e.id, format!("reservation:{i:02}"));
        assert_eq!(
            Value::Object(e.data.clone()),
            json!({"client": i, "ip": format!("10.0.0.{i}")})
        );
        assert!(!e.read);
        assert!(!e.cursor.is_empty(), "{r:?}");
        Millis::parse_rfc3339(&e.at).unwrap_or_else(|err| panic!("bad at in {r:?}: {err}"));
        assert!(revisions.insert(e.revision), "[{label}] one revision per append");
    }
    let want: BTreeSet<String> = (0..CLIENTS).map(|i| format!("reservation:{i:02}")).collect();
    for order in ["desc", "asc"] {
        let (entries, unread) = all_entries(&apps, RECEIVES, order, 10).await;
        let got: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
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
            let app = cl.ns(i + round, NS);
            let (barrier, id) = (barrier.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                app.client().server_info().await.unwrap();
                barrier.wait().await;
                add(&app, &id, json!({"racer": i})).await
            }));
        }
        let mut created = Vec::new();
        let mut replays = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            if r.created {
                created.push(r.entry);
            } else {
                replays.push(r.entry);
            }
        }
        assert_eq!(
            created.len(),
            1,
            "[{label}] exactly one created of {RACERS} (round {round})"
        );
        assert_eq!(replays.len(), RACERS - 1);
        let won = &created[0];
        for r in &replays {
            assert_eq!(
                r, won,
                "[{label}] every duplicate answers the original entry (same at, revision, data)"
            );
        }
        let (entries, _) = all_entries(&apps, RECEIVES, "desc", 1000).await;
        let same: Vec<&Entry> = entries.iter().filter(|e| e.id == id).collect();
        assert_eq!(same.len(), 1, "[{label}] listed once");
        assert_eq!(same[0], won, "[{label}] the listing shows the original");
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
        let (app, barrier) = (cl.ns(m, NS), barrier.clone());
        tasks.push(tokio::spawn(async move {
            app.client().server_info().await.unwrap();
            barrier.wait().await;
            mark(&app, &ids).await;
            mark(&app, &ids).await; // idempotent
        }));
    }
    for j in 0..LATE {
        let (app, barrier) = (cl.ns(j + 1, NS), barrier.clone());
        tasks.push(tokio::spawn(async move {
            app.client().server_info().await.unwrap();
            barrier.wait().await;
            let r = add(&app, &format!("late:{j:02}"), json!({"j": j})).await;
            assert!(r.created, "{r:?}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = CLIENTS + DUP_ROUNDS + LATE;
    let expected_unread = (total - subset.len()) as u64;
    for (k, app) in apps.iter().enumerate() {
        let (entries, unread) = all_entries(std::slice::from_ref(app), RECEIVES, "desc", 25).await;
        assert_eq!(entries.len(), total, "[{label}] all entries visible (server {k})");
        let read: BTreeSet<String> = entries.iter().filter(|e| e.read).map(|e| e.id.clone()).collect();
        let want_read: BTreeSet<String> = subset.iter().cloned().collect();
        assert_eq!(read, want_read, "[{label}] exactly the marked entries are read");
        let unread_listed = entries.iter().filter(|e| !e.read).count() as u64;
        assert_eq!(
            unread, unread_listed,
            "[{label}] unread_count matches the marks (server {k})"
        );
        assert_eq!(unread, expected_unread, "[{label}] unread_count (server {k})");
    }
    let feeds: Vec<Value> = apps[0]
        .feeds(FeedsQuery::default())
        .map_ok(|f| serde_json::to_value(f).unwrap())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        feeds,
        [json!({"feed": RECEIVES, "entries": total, "unread_count": expected_unread})],
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
