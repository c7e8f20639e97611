//! The legacy array: imported once per id, also under concurrent imports.

use super::*;

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
