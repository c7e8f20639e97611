//! Retention and IP scrubbing: in reads at once, on disk once the sweeper ran,
//! and in the entry a duplicate append answers.

use super::*;

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
