//! Bad input: a clean 400 for each, nothing written, and the server keeps serving.

use super::*;

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
