//! The legacy array: imported once per id, also under concurrent imports.
//! Through `lockstep_client`; the refused batch (400) is checked on the wire.

use super::*;
use lockstep_client::api::feeds::{FeedImported, ImportQuery};

// ---------------------------------------------------------------------------
// 2. The legacy array: imported once per id; importing again changes nothing;
//    concurrent imports of the same array import each id once in all.

/// Imports `items` into `feed` through `app` with `q`.
async fn import(app: &Ns, feed: &str, q: &ImportQuery, items: &Value) -> FeedImported {
    app.import(feed, q, items.as_array().unwrap())
        .await
        .unwrap_or_else(|e| panic!("import into {feed}: {e:?}"))
}

async fn legacy_import(cl: &Cluster) {
    let label = cl.label;
    let clients = cl.clients();
    let h = &clients[0];
    let apps: Vec<Ns> = (0..cl.urls.len()).map(|i| cl.ns(i, NS)).collect();
    let app = &apps[0];
    let plain = ImportQuery::default();
    let feed = "legacy:owner@example.com";
    let live = add_new(app, feed, "r2", json!({"live": true}), None).await;
    let legacy = json!([
        {"id": "r1", "at": "2026-01-01T00:00:01Z", "ip": "10.0.0.1", "amount": 1},
        {"id": "r2", "at": "2026-01-01T00:00:02Z", "amount": 2},
        {"id": "r3", "at": "2026-01-01T00:00:03.250Z", "data": {"amount": 3}},
        {"id": "r1", "at": "2026-01-01T00:00:09Z", "amount": 100},
        {"id": "r4", "amount": 4},
        {"id": "r3", "data": {"amount": 300}},
        {"id": "r5", "data": {}}
    ]);
    let r = import(app, feed, &plain, &legacy).await;
    assert_eq!((r.imported, r.skipped), (4, 3), "[{label}] {r:?}");
    let rev = r.revision;
    let (before, unread) = all_entries(&apps, feed, "asc", 2).await;
    assert_eq!(unread, 5);
    let by: BTreeMap<String, Entry> = before.iter().map(|e| (e.id.clone(), e.clone())).collect();
    assert_eq!(by.len(), 5);
    assert_eq!(
        data_of(&by["r1"]),
        json!({"ip": "10.0.0.1", "amount": 1}),
        "first occurrence wins"
    );
    assert_eq!(by["r1"].at, "2026-01-01T00:00:01.000Z");
    assert_eq!(by["r1"].revision, rev);
    assert_eq!(
        data_of(&by["r2"]),
        json!({"live": true}),
        "a present id keeps its entry"
    );
    assert_eq!(by["r2"].revision, live.entry.revision);
    assert_eq!(data_of(&by["r3"]), json!({"amount": 3}));
    assert_eq!(by["r3"].at, "2026-01-01T00:00:03.250Z");
    assert_eq!(data_of(&by["r4"]), json!({"amount": 4}));
    assert_eq!(data_of(&by["r5"]), json!({}));
    let order: Vec<&str> = before.iter().map(|e| e.id.as_str()).collect();
    // r2 was appended (now) before the import; r4 and r5 got the import's time.
    assert_eq!(order, ["r1", "r3", "r2", "r4", "r5"], "ordered by (at, id)");

    for (i, a) in apps.iter().enumerate() {
        let r = import(a, feed, &plain, &legacy).await;
        assert_eq!((r.imported, r.skipped), (0, 7), "[{label}] again via {i}");
    }
    let (after, _) = all_entries(&apps, feed, "asc", 2).await;
    assert_eq!(after, before, "[{label}] importing twice changes nothing");

    // The same array imported by 6 clients at once into a fresh feed.
    let feed2 = "legacy:concurrent";
    let barrier = Arc::new(Barrier::new(6));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (app, barrier, body) = (cl.ns(i, NS), barrier.clone(), legacy.clone());
        tasks.push(tokio::spawn(async move {
            app.client().server_info().await.unwrap();
            barrier.wait().await;
            import(&app, feed2, &ImportQuery::default(), &body).await
        }));
    }
    let mut imported = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.imported + r.skipped, 7, "{r:?}");
        imported += r.imported;
    }
    assert_eq!(
        imported, 5,
        "[{label}] concurrent imports import each id once in all"
    );
    let (entries, unread) = all_entries(&apps, feed2, "desc", 100).await;
    assert_eq!(entries.len(), 5);
    assert_eq!(unread, 5);

    // The documented shape: with a `data` member, the entry's data is `data`.
    let feed3 = "legacy:documented";
    let documented = json!([{"id": "c", "at": "2026-01-01T00:00:00Z", "data": {"file": "z"}, "extra": 1}]);
    let r = import(app, feed3, &plain, &documented).await;
    assert_eq!(r.imported, 1, "{r:?}");
    let (entries, _) = all_entries(&apps, feed3, "asc", 10).await;
    assert_eq!(
        data_of(&entries[0]),
        json!({"file": "z"}),
        "[{label}] {entries:?}"
    );

    // The seed's array, as the Worker kept it: named members, epoch milliseconds
    // and RFC 3339 mixed, the payload beside them.
    let feed4 = "legacy:seed-000";
    let seed = json!([
        {"reservationId": "res-1", "createdAt": 1_767_225_600_000_i64, "file": "a.pdf", "ip": "10.0.0.1"},
        {"reservationId": "res-2", "createdAt": "2026-01-01T00:00:01Z", "file": "b.pdf"},
    ]);
    let named = ImportQuery {
        id_field: Some("reservationId".into()),
        at_field: Some("createdAt".into()),
        ..ImportQuery::default()
    };
    let r = import(app, feed4, &named, &seed).await;
    assert_eq!(r.imported, 2, "[{label}] {r:?}");
    let (entries, _) = all_entries(&apps, feed4, "asc", 10).await;
    assert_eq!(entries[0].id, "res-1");
    assert_eq!(entries[0].at, "2026-01-01T00:00:00.000Z");
    assert_eq!(data_of(&entries[0]), json!({"file": "a.pdf", "ip": "10.0.0.1"}));
    assert_eq!(entries[1].at, "2026-01-01T00:00:01.000Z");

    // GET /feeds/{feed}: the configuration in force and the counts.
    let f = app.feed(feed4).await.unwrap();
    assert_eq!((f.entries, f.unread_count, f.own_config), (2, 2, false), "{f:?}");
    let ten = FeedConfig {
        max_entries: Some(10),
        ..FeedConfig::default()
    };
    set_config(app, feed4, ten.clone()).await;
    let f = app.feed(feed4).await.unwrap();
    assert_eq!((&f.config, f.own_config), (&ten, true), "{f:?}");
    let f = app.feed("legacy:never-used").await.unwrap();
    assert_eq!(f.entries, 0, "a feed never used reads empty: {f:?}");

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
    let (entries, _) = all_entries(&apps, feed5, "asc", 10).await;
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
