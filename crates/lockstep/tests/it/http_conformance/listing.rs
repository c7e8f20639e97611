//! Listing, paging, and keys with slashes.

use super::*;

/// Pages through `GET /records?prefix=` with `limit`, returning the keys.
pub(super) async fn list_all(t: &T, prefix: &str, limit: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/v1/ns/{NS}/records?prefix={prefix}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = t.check("GET", &path, &[], B::None, 200, None).await;
        assert_keys(&r.body, &["records", "next_cursor"]);
        let page = r.body["records"].as_array().unwrap();
        assert!(page.len() <= limit, "a page holds at most limit records");
        for record in page {
            assert_keys(
                record,
                &[
                    "key",
                    "value",
                    "version",
                    "created_at",
                    "updated_at",
                    "expires_at",
                ],
            );
            keys.push(record["key"].as_str().unwrap().to_owned());
        }
        match &r.body["next_cursor"] {
            Value::Null => return keys,
            Value::String(c) => {
                assert!(
                    c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "cursor is URL-safe: {c}"
                );
                cursor = Some(c.clone());
            }
            other => panic!("next_cursor is {other}"),
        }
    }
    panic!("listing did not end");
}

pub(super) async fn listing(t: &T) {
    let mut want = Vec::new();
    for i in 0..23 {
        let key = format!("ls/k{i:03}");
        t.check("PUT", &rec(&key), &[], j(json!({"value": i})), 201, None)
            .await;
        want.push(key);
    }
    for key in ["ls", "lr/x", "lt/x", "ls0"] {
        t.check("PUT", &rec(key), &[], j(json!({"value": 0})), 201, None)
            .await;
    }
    want.sort();
    for limit in [1, 5, 7, 23, 100] {
        let got = list_all(t, "ls/", limit).await;
        assert_eq!(
            got, want,
            "paging with limit {limit} yields every key once, in order"
        );
    }
    // A prefix without a slash matches "ls" itself and "ls0" too, in byte order.
    let all = list_all(t, "ls", 1000).await;
    assert!(all.contains(&"ls".to_owned()) && all.contains(&"ls0".to_owned()));
    assert_eq!(all.len(), 25);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);

    // The default page size is 100; next_cursor is null on the last page.
    let r = t
        .check(
            "GET",
            &format!("/v1/ns/{NS}/records?prefix=ls/"),
            &[],
            B::None,
            200,
            None,
        )
        .await;
    assert_eq!(r.body["records"].as_array().unwrap().len(), 23);
    assert_eq!(r.body["next_cursor"], Value::Null);
    // Values in listings.
    assert_eq!(r.body["records"][3]["value"], json!(3));

    // Cursors: garbage, tampered, of another prefix, of another namespace → 400.
    let r = t
        .check(
            "GET",
            &format!("/v1/ns/{NS}/records?prefix=ls/&limit=2"),
            &[],
            B::None,
            200,
            None,
        )
        .await;
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let ok = format!("/v1/ns/{NS}/records?prefix=ls/&limit=2&cursor={cursor}");
    let r = t.check("GET", &ok, &[], B::None, 200, None).await;
    assert_eq!(r.body["records"][0]["key"], json!("ls/k002"));
    for bad in [
        format!("/v1/ns/{NS}/records?prefix=lr/&limit=2&cursor={cursor}"),
        format!("/v1/ns/{NS}/records?limit=2&cursor={cursor}"),
        format!("/v1/ns/other/records?prefix=ls/&limit=2&cursor={cursor}"),
        format!("/v1/ns/{NS}/records?prefix=ls/&cursor={}", &cursor[1..]),
        format!("/v1/ns/{NS}/records?prefix=ls/&cursor={cursor}AA"),
        format!("/v1/ns/{NS}/records?prefix=ls/&cursor=%00%FF"),
        format!("/v1/ns/{NS}/records?prefix=ls/&cursor="),
    ] {
        t.check("GET", &bad, &[], B::None, 400, Some("invalid_request"))
            .await;
    }
    let mut tampered = cursor.into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let path = format!("/v1/ns/{NS}/records?prefix=ls/&cursor={tampered}");
    t.check("GET", &path, &[], B::None, 400, Some("invalid_request"))
        .await;
    t.check(
        "GET",
        &format!("/v1/ns/{NS}/records?prefix=ls/&nope=1"),
        &[],
        B::None,
        400,
        Some("invalid_request"),
    )
    .await;
    // An empty namespace lists as empty.
    let r = t
        .check("GET", "/v1/ns/never-written/records", &[], B::None, 200, None)
        .await;
    assert_eq!(r.body, json!({"records": [], "next_cursor": null}));
}

pub(super) async fn slash_keys(t: &T) {
    let r = t
        .check(
            "PUT",
            &rec("sl/a/b/c"),
            &[],
            j(json!({"value": "raw"})),
            201,
            None,
        )
        .await;
    let v = assert_written(&r, "sl/a/b/c");
    let r = t
        .check("GET", &rec("sl%2Fa%2Fb%2Fc"), &[], B::None, 200, None)
        .await;
    assert_eq!((r.body["key"].clone(), r.u64("version")), (json!("sl/a/b/c"), v));
    let r = t
        .check(
            "PUT",
            &rec("sl%2Fa%2Fb%2Fc"),
            &[],
            j(json!({"value": "encoded"})),
            200,
            None,
        )
        .await;
    let v2 = assert_written(&r, "sl/a/b/c");
    let r = t.check("GET", &rec("sl/a/b/c"), &[], B::None, 200, None).await;
    assert_eq!(
        (r.body["value"].clone(), r.u64("version")),
        (json!("encoded"), v2)
    );
    let r = t.check("GET", &rec("sl/a%2Fb/c"), &[], B::None, 200, None).await;
    assert_eq!(r.u64("version"), v2);
    // `:`, spaces and non-ASCII in keys, percent-encoded.
    let r = t
        .check(
            "PUT",
            &rec("sl%2Fx%3Ay%20z%C3%A9"),
            &[],
            j(json!({"value": 1})),
            201,
            None,
        )
        .await;
    assert_written(&r, "sl/x:y zé");
    let r = t
        .check("GET", &rec("sl/x:y%20z%C3%A9"), &[], B::None, 200, None)
        .await;
    assert_eq!(r.body["key"], json!("sl/x:y zé"));
    let keys = list_all(t, "sl/", 10).await;
    assert_eq!(keys, vec!["sl/a/b/c".to_owned(), "sl/x:y zé".to_owned()]);
    let r = t
        .check("DELETE", &rec("sl%2Fa/b%2Fc"), &[], B::None, 200, None)
        .await;
    assert_eq!(r.body["key"], json!("sl/a/b/c"));
    t.check("GET", &rec("sl/a/b/c"), &[], B::None, 404, Some("not_found"))
        .await;
}
