//! The service endpoints and namespaces.

use super::*;

pub(super) async fn service(t: &T) {
    let r = t.check("GET", "/healthz", &[], B::None, 200, None).await;
    assert!(r.body.is_object());
    t.check("GET", "/readyz", &[], B::None, 200, None).await;
    let r = t.check("GET", "/v1/info", &[], B::None, 200, None).await;
    assert_eq!(r.body["backend"], json!(t.backend));
    assert!(
        r.body["version"].is_string() && r.body["durability"].is_string(),
        "{}",
        r.text
    );
    let r = t.check("GET", "/metrics", &[], B::None, 200, None).await;
    assert!(r.text.contains("lockstep_http_requests_total"), "{}", r.text);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain"));
    let r = t.check("GET", "/openapi.json", &[], B::None, 200, None).await;
    assert_eq!(r.body["openapi"], json!("3.1.0"));
    let paths = &r.body["paths"];
    for (path, methods) in [
        ("/v1/info", &["get"][..]),
        ("/v1/ns/{ns}", &["delete"]),
        ("/v1/ns/{ns}/records", &["get"]),
        ("/v1/ns/{ns}/records/{key}", &["get", "put", "patch", "delete"]),
        ("/v1/ns/{ns}/txn", &["post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "openapi has {m} {path}");
        }
    }
}

/// Every namespace of `GET /v1/namespaces`, one per page.
pub(super) async fn list_namespaces(h: &Http) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.map_or(String::new(), |c| format!("&cursor={c}"));
        let r = h.get(&format!("/v1/namespaces?limit=1{q}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        out.extend(
            r.body["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

pub(super) async fn namespaces(t: &T) {
    t.check(
        "PUT",
        "/v1/ns/gone/records/a",
        &[],
        j(json!({"value": 1})),
        201,
        None,
    )
    .await;
    t.check(
        "PUT",
        "/v1/ns/gone/records/b",
        &[],
        j(json!({"value": 1})),
        201,
        None,
    )
    .await;
    t.check(
        "PUT",
        "/v1/ns/kept/records/a",
        &[],
        j(json!({"value": 1})),
        201,
        None,
    )
    .await;
    // Every primitive of the namespace, not only records.
    let h = &t.http;
    let lease = h
        .json("POST", "/v1/ns/gone/leases/l/acquire", &json!({"ttl_ms": 60_000}))
        .await;
    assert_eq!(lease.status, 200, "{}", lease.text);
    assert_eq!(h.json("PUT", "/v1/ns/gone/gates/g", &json!({})).await.status, 201);
    let e = h
        .json(
            "POST",
            "/v1/ns/gone/feeds/f/entries",
            &json!({"id": "e", "data": {}}),
        )
        .await;
    assert_eq!(e.status, 201, "{}", e.text);
    let e = h
        .json(
            "POST",
            "/v1/ns/feed-only/feeds/f/entries",
            &json!({"id": "e", "data": {}}),
        )
        .await;
    assert_eq!(e.status, 201, "{}", e.text);
    let listed = list_namespaces(h).await;
    for ns in ["gone", "kept", "feed-only"] {
        assert!(listed.iter().any(|n| n == ns), "{ns} is listed: {listed:?}");
    }
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "namespaces by name");
    let r = t.check("DELETE", "/v1/ns/gone", &[], B::None, 200, None).await;
    assert_eq!(r.body["records"], json!(2), "{}", r.text);
    let listed = list_namespaces(h).await;
    assert!(
        !listed.iter().any(|n| n == "gone"),
        "a deleted namespace is not listed: {listed:?}"
    );
    let r = h.get("/v1/ns/gone/leases/l").await;
    assert_eq!(
        (&r.body["held"], &r.body["fence"]),
        (&json!(false), &Value::Null),
        "{}",
        r.text
    );
    assert_eq!(h.get("/v1/ns/gone/gates/g").await.status, 404);
    let r = h.get("/v1/ns/gone/feeds/f/entries").await;
    assert_eq!(r.body["entries"], json!([]), "{}", r.text);
    t.check(
        "GET",
        "/v1/ns/gone/records/a",
        &[],
        B::None,
        404,
        Some("not_found"),
    )
    .await;
    t.check("GET", "/v1/ns/kept/records/a", &[], B::None, 200, None)
        .await;
    t.check("DELETE", "/v1/ns/Bad", &[], B::None, 400, Some("invalid_request"))
        .await;
}
