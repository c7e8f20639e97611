//! HTTP conformance: every rule of SPEC §3–§5 (and §15 on records and
//! transactions) checked over HTTP against a real server in process, once over
//! SQLite and once over PostgreSQL, with the same case list. The stateless
//! rules (one request each) are table rows in crates/server/tests/it/rules.rs.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{fresh_pg, sqlite_db, tempdir, Http, Resp, Server};
use lockstep_store::clock::Clock;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The namespace of the stateful cases.
const NS: &str = "conf";

/// A request body.
enum B {
    /// No body.
    None,
    /// `application/json`.
    Json(Value),
    /// A body of the given content type.
    Raw(&'static str, String),
}

fn j(v: Value) -> B {
    B::Json(v)
}

fn merge(v: Value) -> B {
    B::Raw("application/merge-patch+json", v.to_string())
}

fn jpatch(v: Value) -> B {
    B::Raw("application/json-patch+json", v.to_string())
}

fn rec(key: &str) -> String {
    format!("/v1/ns/{NS}/records/{key}")
}

fn txn_path() -> String {
    format!("/v1/ns/{NS}/txn")
}

/// The server under test, its backend name and its store's (manual) clock.
struct T {
    http: Http,
    backend: &'static str,
    clock: Clock,
}

impl T {
    /// Sends one request and asserts its status; for an error also the problem
    /// `code`, the problem+json content type and the RFC 9457 members.
    async fn check(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: B,
        status: u16,
        code: Option<&str>,
    ) -> Resp {
        let mut req = self.http.req(method, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = match body {
            B::None => req,
            B::Json(v) => req.header("content-type", "application/json").body(v.to_string()),
            B::Raw(ct, text) => req.header("content-type", ct).body(text),
        };
        let r = self.http.send(req).await;
        let what = format!("[{}] {method} {path} {headers:?}", self.backend);
        assert_eq!(r.status, status, "{what}: status; body {}", r.text);
        if status >= 400 {
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{what}: content type of an error"
            );
            assert_eq!(r.code(), code, "{what}: problem code; body {}", r.text);
            assert_eq!(r.body["status"], json!(status), "{what}: problem status");
            for member in ["type", "title", "detail"] {
                assert!(
                    r.body[member].is_string(),
                    "{what}: problem member {member}: {}",
                    r.text
                );
            }
        } else {
            assert_eq!(code, None, "{what}: a success has no code");
        }
        r
    }
}

/// The ETag of a version.
fn etag(v: u64) -> String {
    format!("\"{v}\"")
}

#[track_caller]
fn assert_keys(v: &Value, keys: &[&str]) {
    let got: BTreeSet<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    let want: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(got, want, "members of {v}");
}

/// A write answer `{key, version, revision}`: version == revision (a record's
/// version is the revision of its last write), ETag "<version>".
#[track_caller]
fn assert_written(r: &Resp, key: &str) -> u64 {
    assert_keys(&r.body, &["key", "version", "revision"]);
    assert_eq!(r.body["key"], json!(key));
    let v = r.u64("version");
    assert_eq!(
        r.u64("revision"),
        v,
        "version is the revision of the write: {}",
        r.text
    );
    assert_eq!(r.header("etag"), Some(etag(v).as_str()), "ETag of {}", r.text);
    v
}

#[track_caller]
fn assert_current(r: &Resp, version: u64, value: &Value) {
    assert_eq!(
        r.body["current"],
        json!({"version": version, "value": value}),
        "current of {}",
        r.text
    );
}

// ---------------------------------------------------------------------------
// The stateless cases (one request each) are table rows run in process
// against the router: crates/server/tests/it/rules.rs.

// ---------------------------------------------------------------------------
// Stateful cases.

async fn put_and_get(t: &T) {
    let created = t
        .check("PUT", &rec("pg/a"), &[], j(json!({"value": {"n": 1}})), 201, None)
        .await;
    let v1 = assert_written(&created, "pg/a");
    let got = t.check("GET", &rec("pg/a"), &[], B::None, 200, None).await;
    assert_keys(
        &got.body,
        &[
            "key",
            "value",
            "version",
            "created_at",
            "updated_at",
            "expires_at",
        ],
    );
    assert_eq!(got.body["key"], json!("pg/a"));
    assert_eq!(got.body["value"], json!({"n": 1}));
    assert_eq!(got.u64("version"), v1);
    assert_eq!(got.body["expires_at"], Value::Null);
    assert_eq!(got.header("etag"), Some(etag(v1).as_str()));
    let created_at = got.body["created_at"].as_str().unwrap().to_owned();
    assert!(
        created_at.ends_with('Z') && created_at.contains('T'),
        "RFC 3339 UTC: {created_at}"
    );

    let replaced = t
        .check("PUT", &rec("pg/a"), &[], j(json!({"value": [1, 2]})), 200, None)
        .await;
    let v2 = assert_written(&replaced, "pg/a");
    assert!(v2 > v1, "a replacement gets a larger version ({v2} vs {v1})");
    let got = t.check("GET", &rec("pg/a"), &[], B::None, 200, None).await;
    assert_eq!(got.body["value"], json!([1, 2]));
    assert_eq!(got.u64("version"), v2);
    assert_eq!(
        got.body["created_at"],
        json!(created_at),
        "created_at survives a replacement"
    );
    assert!(got.body["updated_at"].as_str().unwrap() >= created_at.as_str());

    // Every JSON type is a value, null included.
    for (i, v) in [
        json!(null),
        json!(true),
        json!(-7),
        json!(1.5),
        json!("s"),
        json!({}),
    ]
    .iter()
    .enumerate()
    {
        let key = format!("pg/types{i}");
        t.check("PUT", &rec(&key), &[], j(json!({"value": v})), 201, None)
            .await;
        let got = t.check("GET", &rec(&key), &[], B::None, 200, None).await;
        assert_eq!(&got.body["value"], v);
    }
    // If-None-Match with the current ETag on a GET: 304.
    let r = t
        .http
        .send(t.http.req("GET", &rec("pg/a")).header("if-none-match", etag(v2)))
        .await;
    assert_eq!(r.status, 304, "{}", r.text);
}

async fn put_preconditions(t: &T) {
    // expected_version 0: must not exist.
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 1, "expected_version": 0})),
            201,
            None,
        )
        .await;
    let v1 = assert_written(&r, "pc/a");
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 2, "expected_version": 0})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_current(&r, v1, &json!(1));
    // Mismatch on an absent record: current is null.
    let r = t
        .check(
            "PUT",
            &rec("pc/none"),
            &[],
            j(json!({"value": 2, "expected_version": v1})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_eq!(
        r.body.get("current"),
        Some(&Value::Null),
        "current: null when absent: {}",
        r.text
    );
    t.check("GET", &rec("pc/none"), &[], B::None, 404, Some("not_found"))
        .await;
    // The right version applies.
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 2, "expected_version": v1})),
            200,
            None,
        )
        .await;
    let v2 = assert_written(&r, "pc/a");
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 3, "expected_version": v1})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_current(&r, v2, &json!(2));

    // If-Match / If-None-Match: 412.
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[("if-match", &etag(v2))],
            j(json!({"value": 3})),
            200,
            None,
        )
        .await;
    let v3 = assert_written(&r, "pc/a");
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[("if-match", &etag(v2))],
            j(json!({"value": 4})),
            412,
            Some("precondition_failed"),
        )
        .await;
    assert_eq!(
        r.body["current"],
        json!({"version": v3, "value": 3}),
        "a 412 carries current as a 409 does: {}",
        r.text
    );
    let list = format!("\"1\", {}", etag(v3));
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[("if-match", &list)],
            j(json!({"value": 4})),
            200,
            None,
        )
        .await;
    let v4 = assert_written(&r, "pc/a");
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-match", "*")],
        j(json!({"value": 5})),
        200,
        None,
    )
    .await;
    t.check(
        "PUT",
        &rec("pc/absent"),
        &[("if-match", "*")],
        j(json!({"value": 1})),
        412,
        Some("precondition_failed"),
    )
    .await;
    t.check(
        "PUT",
        &rec("pc/absent"),
        &[("if-match", &etag(v4))],
        j(json!({"value": 1})),
        412,
        Some("precondition_failed"),
    )
    .await;
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-none-match", "*")],
        j(json!({"value": 6})),
        412,
        Some("precondition_failed"),
    )
    .await;
    let r = t
        .check(
            "PUT",
            &rec("pc/inm"),
            &[("if-none-match", "*")],
            j(json!({"value": 1})),
            201,
            None,
        )
        .await;
    assert_written(&r, "pc/inm");
    let got = t.check("GET", &rec("pc/a"), &[], B::None, 200, None).await;
    assert_eq!(
        got.body["value"],
        json!(5),
        "failed preconditions applied nothing"
    );
    let cur = got.u64("version");

    // Header and body precondition together: 400, nothing applied.
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-match", &etag(cur))],
        j(json!({"value": 7, "expected_version": cur})),
        400,
        Some("invalid_request"),
    )
    .await;
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-match", "1")],
        j(json!({"value": 7})),
        400,
        Some("invalid_request"),
    )
    .await;

    // force skips the precondition.
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 8, "expected_version": 1, "force": true})),
            200,
            None,
        )
        .await;
    let v8 = assert_written(&r, "pc/a");
    assert!(v8 > cur);
    let r = t
        .check(
            "PUT",
            &rec("pc/forced"),
            &[],
            j(json!({"value": 1, "expected_version": 12345, "force": true})),
            201,
            None,
        )
        .await;
    assert_written(&r, "pc/forced");
    let got = t.check("GET", &rec("pc/a"), &[], B::None, 200, None).await;
    assert_eq!((got.body["value"].clone(), got.u64("version")), (json!(8), v8));

    // Versions are never reused, not even after delete and re-create.
    let r = t.check("DELETE", &rec("pc/a"), &[], B::None, 200, None).await;
    let deleted_at = r.u64("revision");
    assert!(deleted_at > v8);
    t.check("GET", &rec("pc/a"), &[], B::None, 404, Some("not_found"))
        .await;
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 1, "expected_version": v8})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_eq!(r.body.get("current"), Some(&Value::Null));
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 1, "expected_version": 0})),
            201,
            None,
        )
        .await;
    let again = assert_written(&r, "pc/a");
    assert!(
        again > deleted_at && again > v8,
        "re-created version {again} is new (old {v8})"
    );
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-match", &etag(v8))],
        j(json!({"value": 2})),
        412,
        Some("precondition_failed"),
    )
    .await;
}

async fn patches(t: &T) {
    let r = t
        .check(
            "PUT",
            &rec("pa/a"),
            &[],
            j(json!({"value": {"a": 1, "b": {"c": 2}, "d": [1]}})),
            201,
            None,
        )
        .await;
    let v1 = assert_written(&r, "pa/a");

    // Merge patch (RFC 7396).
    let r = t
        .check(
            "PATCH",
            &rec("pa/a"),
            &[],
            merge(json!({"a": null, "b": {"e": 3}, "f": "x"})),
            200,
            None,
        )
        .await;
    assert_keys(&r.body, &["key", "version", "value", "revision"]);
    let v2 = r.u64("version");
    assert!(v2 > v1);
    assert_eq!(r.u64("revision"), v2);
    assert_eq!(r.header("etag"), Some(etag(v2).as_str()));
    let merged = json!({"b": {"c": 2, "e": 3}, "d": [1], "f": "x"});
    assert_eq!(r.body["value"], merged);
    let got = t.check("GET", &rec("pa/a"), &[], B::None, 200, None).await;
    assert_eq!(
        (got.body["value"].clone(), got.u64("version")),
        (merged.clone(), v2)
    );

    // JSON Patch (RFC 6902) with a passing test.
    let ops = json!([{"op": "test", "path": "/f", "value": "x"}, {"op": "add", "path": "/d/-", "value": 2}]);
    let r = t.check("PATCH", &rec("pa/a"), &[], jpatch(ops), 200, None).await;
    let v3 = r.u64("version");
    assert_eq!(r.body["value"]["d"], json!([1, 2]));
    let current = r.body["value"].clone();

    // A failing test: 409 patch_test_failed with the current state; nothing applied.
    let ops = json!([{"op": "test", "path": "/f", "value": "y"}, {"op": "add", "path": "/g", "value": 1}]);
    let r = t
        .check(
            "PATCH",
            &rec("pa/a"),
            &[],
            jpatch(ops),
            409,
            Some("patch_test_failed"),
        )
        .await;
    assert_current(&r, v3, &current);
    // A patch that cannot apply: 422 invalid_patch.
    let ops = json!([{"op": "remove", "path": "/nope/deeper"}]);
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[],
        jpatch(ops),
        422,
        Some("invalid_patch"),
    )
    .await;
    let ops = json!([{"op": "remove", "path": "/missing"}]);
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[],
        jpatch(ops),
        422,
        Some("invalid_patch"),
    )
    .await;
    let got = t.check("GET", &rec("pa/a"), &[], B::None, 200, None).await;
    assert_eq!(
        (got.body["value"].clone(), got.u64("version")),
        (current.clone(), v3)
    );

    // Preconditions: ?expected_version (409) and If-Match (412); both is 400.
    let path = format!("{}?expected_version={v1}", rec("pa/a"));
    let r = t
        .check(
            "PATCH",
            &path,
            &[],
            merge(json!({"z": 1})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_current(&r, v3, &current);
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[("if-match", &etag(v1))],
        merge(json!({"z": 1})),
        412,
        Some("precondition_failed"),
    )
    .await;
    let path = format!("{}?expected_version={v3}", rec("pa/a"));
    t.check(
        "PATCH",
        &path,
        &[("if-match", &etag(v3))],
        merge(json!({"z": 1})),
        400,
        Some("invalid_request"),
    )
    .await;
    let r = t
        .check("PATCH", &path, &[], merge(json!({"z": 1})), 200, None)
        .await;
    let v4 = r.u64("version");
    let r = t
        .check(
            "PATCH",
            &rec("pa/a"),
            &[("if-match", &etag(v4))],
            merge(json!({"z": 2})),
            200,
            None,
        )
        .await;
    assert_eq!(r.body["value"]["z"], json!(2));
    // PATCH of an absent record: 404.
    t.check(
        "PATCH",
        &rec("pa/absent"),
        &[],
        merge(json!({"z": 1})),
        404,
        Some("not_found"),
    )
    .await;
    // Wrong content type.
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[],
        B::Raw("text/plain", "{}".into()),
        415,
        Some("unsupported_media_type"),
    )
    .await;
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[],
        j(json!({"z": 3})),
        415,
        Some("unsupported_media_type"),
    )
    .await;
}

async fn deletes(t: &T) {
    let r = t
        .check("PUT", &rec("de/a"), &[], j(json!({"value": 1})), 201, None)
        .await;
    let v1 = assert_written(&r, "de/a");
    let path = format!("{}?expected_version={}", rec("de/a"), v1 + 1000);
    let r = t
        .check("DELETE", &path, &[], B::None, 409, Some("version_mismatch"))
        .await;
    assert_current(&r, v1, &json!(1));
    t.check(
        "DELETE",
        &rec("de/a"),
        &[("if-match", &etag(v1 + 1000))],
        B::None,
        412,
        Some("precondition_failed"),
    )
    .await;
    let path = format!("{}?expected_version={v1}", rec("de/a"));
    t.check(
        "DELETE",
        &path,
        &[("if-match", &etag(v1))],
        B::None,
        400,
        Some("invalid_request"),
    )
    .await;
    t.check("GET", &rec("de/a"), &[], B::None, 200, None).await;
    let r = t.check("DELETE", &path, &[], B::None, 200, None).await;
    assert_eq!(r.body["key"], json!("de/a"));
    assert_eq!(r.body["deleted"], json!(true));
    assert!(r.u64("revision") > v1);
    t.check("GET", &rec("de/a"), &[], B::None, 404, Some("not_found"))
        .await;
    t.check("DELETE", &rec("de/a"), &[], B::None, 404, Some("not_found"))
        .await;

    let r = t
        .check("PUT", &rec("de/b"), &[], j(json!({"value": 1})), 201, None)
        .await;
    let v = assert_written(&r, "de/b");
    let r = t
        .check(
            "DELETE",
            &rec("de/b"),
            &[("if-match", &etag(v))],
            B::None,
            200,
            None,
        )
        .await;
    assert_eq!(r.body["deleted"], json!(true));
    t.check("DELETE", &rec("de/b"), &[], B::None, 404, Some("not_found"))
        .await;
}

/// Pages through `GET /records?prefix=` with `limit`, returning the keys.
async fn list_all(t: &T, prefix: &str, limit: usize) -> Vec<String> {
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

async fn listing(t: &T) {
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

async fn slash_keys(t: &T) {
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

async fn ttl(t: &T) {
    let r = t
        .check(
            "PUT",
            &rec("ttl/a"),
            &[],
            j(json!({"value": 1, "ttl_ms": 300})),
            201,
            None,
        )
        .await;
    assert_written(&r, "ttl/a");
    t.check(
        "PUT",
        &rec("ttl/keep"),
        &[],
        j(json!({"value": 1, "ttl_ms": 600_000})),
        201,
        None,
    )
    .await;
    let got = t.check("GET", &rec("ttl/a"), &[], B::None, 200, None).await;
    let expires = got.body["expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("expires_at: {}", got.text));
    let updated = got.body["updated_at"].as_str().unwrap();
    assert!(
        expires > updated,
        "expires_at {expires} is after updated_at {updated}"
    );
    assert_eq!(
        list_all(t, "ttl/", 10).await,
        vec!["ttl/a".to_owned(), "ttl/keep".to_owned()]
    );
    // Expiry is exact at read time, by the store's clock (manual here): live
    // a millisecond before the 300 ms, absent at them.
    t.clock.advance(299);
    t.check("GET", &rec("ttl/a"), &[], B::None, 200, None).await;
    t.clock.advance(1);
    t.check("GET", &rec("ttl/a"), &[], B::None, 404, Some("not_found"))
        .await;
    assert_eq!(list_all(t, "ttl/", 10).await, vec!["ttl/keep".to_owned()]);
    // An expired record counts as absent for preconditions and PATCH.
    t.check(
        "PATCH",
        &rec("ttl/a"),
        &[],
        merge(json!({"a": 1})),
        404,
        Some("not_found"),
    )
    .await;
    let r = t
        .check(
            "PUT",
            &rec("ttl/a"),
            &[],
            j(json!({"value": 2, "expected_version": 0})),
            201,
            None,
        )
        .await;
    assert_written(&r, "ttl/a");
    // A PUT without ttl_ms clears the TTL.
    t.check("PUT", &rec("ttl/keep"), &[], j(json!({"value": 2})), 200, None)
        .await;
    let got = t.check("GET", &rec("ttl/keep"), &[], B::None, 200, None).await;
    assert_eq!(got.body["expires_at"], Value::Null);
}

async fn transactions(t: &T) {
    let p = txn_path();
    // Success branch: every op's result shape (SPEC §15), one revision for all writes.
    t.check("PUT", &rec("tx/s"), &[], j(json!({"value": "str"})), 201, None)
        .await;
    let r = t
        .check(
            "PUT",
            &rec("tx/obj"),
            &[],
            j(json!({"value": {"a": 1}})),
            201,
            None,
        )
        .await;
    let vobj = r.u64("version");
    let r = t
        .check("PUT", &rec("tx/del"), &[], j(json!({"value": 0})), 201, None)
        .await;
    let vdel = r.u64("version");
    let body = json!({
        "compare": [{"key": "tx/a", "version": 0}, {"key": "tx/obj", "exists": true},
                    {"key": "tx/obj", "value": {"a": 1}}, {"key": "tx/obj", "version": vobj}],
        "success": [
            {"put": {"key": "tx/a", "value": 10}},
            {"get": {"key": "tx/a"}},
            {"get": {"key": "tx/missing"}},
            {"incr": {"key": "tx/n", "by": 5}},
            {"incr": {"key": "tx/n", "by": -2}},
            {"patch": {"key": "tx/obj", "merge": {"b": 2}}},
            {"delete": {"key": "tx/del"}},
            {"delete": {"key": "tx/missing"}}
        ],
        "failure": [{"put": {"key": "tx/failed", "value": 1}}]
    });
    let r = t.check("POST", &p, &[], j(body), 200, None).await;
    assert_keys(&r.body, &["succeeded", "failed", "results", "revision"]);
    let rev = r.u64("revision");
    assert!(rev > vdel);
    assert_eq!(r.body["succeeded"], json!(true));
    assert_eq!(r.body["failed"], json!([]));
    assert_eq!(
        r.body["results"],
        json!([
            {"key": "tx/a", "version": rev, "value": 10},
            {"key": "tx/a", "version": rev, "value": 10},
            null,
            {"key": "tx/n", "version": rev, "value": 5},
            {"key": "tx/n", "version": rev, "value": 3},
            {"key": "tx/obj", "version": rev, "value": {"a": 1, "b": 2}},
            {"key": "tx/del", "deleted": true},
            {"key": "tx/missing", "deleted": false}
        ]),
        "results of the success branch"
    );
    for (key, value) in [
        ("tx/a", json!(10)),
        ("tx/n", json!(3)),
        ("tx/obj", json!({"a": 1, "b": 2})),
    ] {
        let got = t.check("GET", &rec(key), &[], B::None, 200, None).await;
        assert_eq!(
            (got.body["value"].clone(), got.u64("version")),
            (value, rev),
            "{key}"
        );
    }
    t.check("GET", &rec("tx/del"), &[], B::None, 404, Some("not_found"))
        .await;
    t.check("GET", &rec("tx/failed"), &[], B::None, 404, Some("not_found"))
        .await;

    // Failure branch: `failed` lists the compares that did not hold.
    let body = json!({
        "compare": [{"key": "tx/a", "version": rev}, {"key": "tx/a", "version": 0},
                    {"key": "tx/a", "exists": false}, {"key": "tx/a", "value": 10},
                    {"key": "tx/obj", "value": {"a": 1}}, {"key": "tx/missing", "exists": false},
                    {"key": "tx/missing", "value": null}],
        "success": [{"put": {"key": "tx/ok", "value": 1}}],
        "failure": [{"get": {"key": "tx/a"}}, {"put": {"key": "tx/f", "value": "f"}}, {"delete": {"key": "tx/n"}}]
    });
    let r = t.check("POST", &p, &[], j(body), 200, None).await;
    let rev2 = r.u64("revision");
    assert!(rev2 > rev);
    assert_eq!(r.body["succeeded"], json!(false));
    assert_eq!(r.body["failed"], json!([1, 2, 4, 6]));
    assert_eq!(
        r.body["results"],
        json!([
            {"key": "tx/a", "version": rev, "value": 10},
            {"key": "tx/f", "version": rev2, "value": "f"},
            {"key": "tx/n", "deleted": true}
        ])
    );
    t.check("GET", &rec("tx/ok"), &[], B::None, 404, Some("not_found"))
        .await;
    t.check("GET", &rec("tx/n"), &[], B::None, 404, Some("not_found"))
        .await;

    // A read-only transaction still answers a revision.
    let r = t
        .check(
            "POST",
            &p,
            &[],
            j(json!({"success": [{"get": {"key": "tx/f"}}]})),
            200,
            None,
        )
        .await;
    assert!(r.body["revision"].is_u64(), "{}", r.text);
    assert_eq!(
        r.body["results"],
        json!([{"key": "tx/f", "version": rev2, "value": "f"}])
    );

    // incr on a non-integer: 422 invalid_patch, and nothing of the branch applied.
    let body = json!({"success": [{"put": {"key": "tx/x", "value": 1}}, {"incr": {"key": "tx/s", "by": 1}}]});
    t.check("POST", &p, &[], j(body), 422, Some("invalid_patch"))
        .await;
    t.check("GET", &rec("tx/x"), &[], B::None, 404, Some("not_found"))
        .await;
    let got = t.check("GET", &rec("tx/s"), &[], B::None, 200, None).await;
    assert_eq!(got.body["value"], json!("str"));
    let body = json!({"success": [{"incr": {"key": "tx/obj", "by": 1}}]});
    t.check("POST", &p, &[], j(body), 422, Some("invalid_patch"))
        .await;
    // patch of an absent record inside a transaction: 404, nothing applied.
    let body = json!({"success": [{"put": {"key": "tx/y", "value": 1}}, {"patch": {"key": "tx/nope", "merge": {}}}]});
    t.check("POST", &p, &[], j(body), 404, Some("not_found")).await;
    t.check("GET", &rec("tx/y"), &[], B::None, 404, Some("not_found"))
        .await;

    // 64 items is the limit; 65 is 413.
    let ops: Vec<Value> = (0..63)
        .map(|i| json!({"put": {"key": format!("tx/many{i}"), "value": i}}))
        .collect();
    let body = json!({"compare": [{"key": "tx/many0", "exists": false}], "success": ops});
    let r = t.check("POST", &p, &[], j(body), 200, None).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 63);
    let ops: Vec<Value> = (0..64)
        .map(|i| json!({"get": {"key": format!("tx/many{i}")}}))
        .collect();
    let body = json!({"compare": [{"key": "tx/many0", "exists": true}], "success": ops});
    t.check("POST", &p, &[], j(body), 413, Some("payload_too_large"))
        .await;
    let ops: Vec<Value> = (0..33)
        .map(|i| json!({"put": {"key": format!("tx/big{i}"), "value": i}}))
        .collect();
    let body = json!({"success": ops.clone(), "failure": ops});
    t.check("POST", &p, &[], j(body), 413, Some("payload_too_large"))
        .await;
    t.check("GET", &rec("tx/big0"), &[], B::None, 404, Some("not_found"))
        .await;
    // Unknown op.
    let body = json!({"success": [{"frob": {"key": "tx/a"}}]});
    t.check("POST", &p, &[], j(body), 400, Some("invalid_request"))
        .await;
}

async fn revisions(t: &T) {
    // Every write answer carries the revision it committed at, and revisions grow.
    let mut last = 0;
    let r = t
        .check("PUT", &rec("rv/a"), &[], j(json!({"value": 1})), 201, None)
        .await;
    for r in [
        r,
        t.check("PUT", &rec("rv/a"), &[], j(json!({"value": 2})), 200, None)
            .await,
        t.check("PATCH", &rec("rv/a"), &[], merge(json!({"x": 1})), 200, None)
            .await,
        t.check(
            "POST",
            &txn_path(),
            &[],
            j(json!({"success": [{"incr": {"key": "rv/n", "by": 1}}]})),
            200,
            None,
        )
        .await,
        t.check("DELETE", &rec("rv/a"), &[], B::None, 200, None).await,
    ] {
        let rev = r.u64("revision");
        assert!(rev > last, "revision {rev} after {last}: {}", r.text);
        last = rev;
    }
}

async fn service(t: &T) {
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
async fn list_namespaces(h: &Http) -> Vec<String> {
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

async fn namespaces(t: &T) {
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

async fn conformance(server: &Server, backend: &'static str) {
    let t = T {
        http: Http::new(&server.url),
        backend,
        clock: server.clock.clone(),
    };
    service(&t).await;
    put_and_get(&t).await;
    put_preconditions(&t).await;
    patches(&t).await;
    deletes(&t).await;
    listing(&t).await;
    slash_keys(&t).await;
    ttl(&t).await;
    transactions(&t).await;
    revisions(&t).await;
    namespaces(&t).await;
    // The server counted what it served.
    let r = t.check("GET", "/metrics", &[], B::None, 200, None).await;
    assert!(r.text.contains("status=\"409\""), "{}", r.text);
    // Every metric family is there, under route templates, never concrete paths.
    let backend_gauges: &[&str] = match backend {
        "sqlite" => &["lockstep_sqlite_writer_queue_depth "],
        _ => &[
            "lockstep_pg_pool_size ",
            "lockstep_pg_pool_idle ",
            "lockstep_pg_pool_waiting ",
        ],
    };
    for family in [
        "lockstep_http_request_duration_microseconds_bucket{route=\"/v1/ns/{ns}/records/{*key}\",status=\"2xx\",le=\"",
        "lockstep_http_request_duration_microseconds_count{route=\"/v1/ns/{ns}/records/{*key}\",status=\"4xx\"}",
        "lockstep_http_requests_in_flight 1",
        "lockstep_commit_batch_size_bucket",
        "lockstep_storage_write_latency_microseconds_bucket",
        "lockstep_lease_waiters 0",
        "lockstep_watches_open 0",
        "# TYPE lockstep_http_refused_total counter",
    ]
    .iter()
    .chain(backend_gauges)
    {
        assert!(r.text.contains(family), "[{backend}] /metrics lacks {family}:\n{}", r.text);
    }
    assert!(!r.text.contains("pc/a"), "a concrete key in /metrics");
    // X-Request-Id: a good one is echoed, a missing or bad one replaced.
    let h = &t.http;
    let r = h
        .send(h.req("GET", "/healthz").header("x-request-id", "req-42"))
        .await;
    assert_eq!(r.header("x-request-id"), Some("req-42"));
    let r = h.get("/healthz").await;
    assert!(
        r.header("x-request-id").is_some_and(|id| id.len() >= 16),
        "{:?}",
        r.headers
    );
    let r = h
        .send(h.req("GET", "/healthz").header("x-request-id", "has space"))
        .await;
    assert_ne!(r.header("x-request-id"), Some("has space"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_sqlite() {
    let dir = tempdir();
    let server = Server::start_manual(&sqlite_db(&dir));
    conformance(&server, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_postgres() {
    let Some(pg) = fresh_pg().await else { return };
    let server = Server::start_manual(&pg.url);
    conformance(&server, "postgres").await;
    drop(server);
    drop(pg);
}
