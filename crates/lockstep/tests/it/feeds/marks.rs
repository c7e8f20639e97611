//! Read marks by cursor, delete, and the feed listing.

use super::*;

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
