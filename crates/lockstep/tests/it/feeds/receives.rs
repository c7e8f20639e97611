//! Concurrent appends, duplicate finalizations and unread counts (seeds/000).

use super::*;

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
