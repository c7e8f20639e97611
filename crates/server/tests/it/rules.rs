//! HTTP rules as table rows (SPEC §2, §3, §15 "Input"): one request each
//! (method, path, headers, body → status, problem code), sent in process
//! through the whole router with `tower::ServiceExt::oneshot`, over a fresh
//! store of each backend. Every error is `application/problem+json` with the
//! RFC 9457 members; a success has no code. Adding a rule is one row.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{header, Request};
use lockstep_core::Limits;
use lockstep_server::AppState;
use lockstep_testkit::store::Env;
use serde_json::{json, Value};
use tower::ServiceExt;

/// One request and the answer it must get.
struct Row {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: &'static [u8],
    status: u16,
    code: Option<&'static str>,
}

/// A row built at run time (long or repeated paths and bodies, headers).
struct Req {
    name: String,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: Option<&'static str>,
}

impl From<&Row> for Req {
    fn from(r: &Row) -> Req {
        Req {
            name: r.name.to_owned(),
            method: r.method,
            path: r.path.to_owned(),
            headers: Vec::new(),
            content_type: r.content_type,
            body: r.body.to_vec(),
            status: r.status,
            code: r.code,
        }
    }
}

/// A request of `method` on `path` with a JSON `body`, answered 400 `invalid_request`.
fn invalid(name: String, method: &'static str, path: String, body: &str) -> Req {
    Req {
        name,
        method,
        path,
        headers: Vec::new(),
        content_type: if body.is_empty() { None } else { JSON },
        body: body.as_bytes().to_vec(),
        status: 400,
        code: BAD,
    }
}

const JSON: Option<&str> = Some("application/json");
const MERGE: Option<&str> = Some("application/merge-patch+json");
const JPATCH: Option<&str> = Some("application/json-patch+json");
const BAD: Option<&str> = Some("invalid_request");

/// Routes, methods, query parameters, content types and body shapes of the
/// records and the transaction, each on a fresh namespace.
#[rustfmt::skip]
const ROUTING_AND_RECORDS: &[Row] = &[
    Row { name: "unknown route", method: "GET", path: "/nope", content_type: None, body: b"", status: 404, code: Some("not_found") },
    Row { name: "unknown route under a namespace", method: "GET", path: "/v1/ns/st/nothing", content_type: None, body: b"", status: 404, code: Some("not_found") },
    Row { name: "POST on a record", method: "POST", path: "/v1/ns/st/records/k", content_type: JSON, body: br#"{"value":1}"#, status: 405, code: Some("method_not_allowed") },
    Row { name: "PUT on txn", method: "PUT", path: "/v1/ns/st/txn", content_type: JSON, body: b"{}", status: 405, code: Some("method_not_allowed") },
    Row { name: "GET on txn", method: "GET", path: "/v1/ns/st/txn", content_type: None, body: b"", status: 405, code: Some("method_not_allowed") },
    Row { name: "DELETE on healthz", method: "DELETE", path: "/healthz", content_type: None, body: b"", status: 405, code: Some("method_not_allowed") },
    Row { name: "POST on the record list", method: "POST", path: "/v1/ns/st/records", content_type: JSON, body: b"{}", status: 405, code: Some("method_not_allowed") },
    Row { name: "GET absent record", method: "GET", path: "/v1/ns/st/records/absent", content_type: None, body: b"", status: 404, code: Some("not_found") },
    Row { name: "PATCH absent record (merge)", method: "PATCH", path: "/v1/ns/st/records/absent", content_type: MERGE, body: br#"{"a":1}"#, status: 404, code: Some("not_found") },
    Row { name: "PATCH absent record (json patch)", method: "PATCH", path: "/v1/ns/st/records/absent", content_type: JPATCH, body: br#"[{"op":"add","path":"/a","value":1}]"#, status: 404, code: Some("not_found") },
    Row { name: "DELETE absent record", method: "DELETE", path: "/v1/ns/st/records/absent", content_type: None, body: b"", status: 404, code: Some("not_found") },
    Row { name: "list limit 0", method: "GET", path: "/v1/ns/st/records?limit=0", content_type: None, body: b"", status: 400, code: BAD },
    Row { name: "list limit 1001", method: "GET", path: "/v1/ns/st/records?limit=1001", content_type: None, body: b"", status: 400, code: BAD },
    Row { name: "list limit not a number", method: "GET", path: "/v1/ns/st/records?limit=ten", content_type: None, body: b"", status: 400, code: BAD },
    Row { name: "list garbage cursor", method: "GET", path: "/v1/ns/st/records?cursor=garbage", content_type: None, body: b"", status: 400, code: BAD },
    Row { name: "list unknown query parameter", method: "GET", path: "/v1/ns/st/records?frob=1", content_type: None, body: b"", status: 400, code: BAD },
    Row { name: "list limit 1000 is fine", method: "GET", path: "/v1/ns/st/records?limit=1000", content_type: None, body: b"", status: 200, code: None },
    Row { name: "list limit 1 is fine", method: "GET", path: "/v1/ns/st/records?limit=1", content_type: None, body: b"", status: 200, code: None },
    Row { name: "invalid namespace (upper case)", method: "GET", path: "/v1/ns/Bad/records/k", content_type: None, body: b"", status: 400, code: BAD },
    Row { name: "invalid namespace (leading dash)", method: "PUT", path: "/v1/ns/-x/records/k", content_type: JSON, body: br#"{"value":1}"#, status: 400, code: BAD },
    Row { name: "key with a control character", method: "PUT", path: "/v1/ns/st/records/a%0Ab", content_type: JSON, body: br#"{"value":1}"#, status: 400, code: BAD },
    Row { name: "PUT unknown field", method: "PUT", path: "/v1/ns/st/records/k", content_type: JSON, body: br#"{"value":1,"frob":2}"#, status: 400, code: BAD },
    Row { name: "PUT without value", method: "PUT", path: "/v1/ns/st/records/k", content_type: JSON, body: br#"{"expected_version":0}"#, status: 400, code: BAD },
    Row { name: "PUT malformed JSON", method: "PUT", path: "/v1/ns/st/records/k", content_type: JSON, body: br#"{"value":"#, status: 400, code: BAD },
    Row { name: "PUT negative expected_version", method: "PUT", path: "/v1/ns/st/records/k", content_type: JSON, body: br#"{"value":1,"expected_version":-1}"#, status: 400, code: BAD },
    Row { name: "PUT ttl_ms 0", method: "PUT", path: "/v1/ns/st/records/k", content_type: JSON, body: br#"{"value":1,"ttl_ms":0}"#, status: 400, code: BAD },
    Row { name: "PUT text/plain", method: "PUT", path: "/v1/ns/st/records/k", content_type: Some("text/plain"), body: br#"{"value":1}"#, status: 415, code: Some("unsupported_media_type") },
    Row { name: "PUT without content type", method: "PUT", path: "/v1/ns/st/records/k", content_type: None, body: br#"{"value":1}"#, status: 415, code: Some("unsupported_media_type") },
    Row { name: "PATCH application/json", method: "PATCH", path: "/v1/ns/st/records/k", content_type: JSON, body: br#"{"a":1}"#, status: 415, code: Some("unsupported_media_type") },
    Row { name: "PATCH unknown query parameter", method: "PATCH", path: "/v1/ns/st/records/k?frob=1", content_type: MERGE, body: br#"{"a":1}"#, status: 400, code: BAD },
    Row { name: "PATCH malformed JSON patch", method: "PATCH", path: "/v1/ns/st/records/k", content_type: JPATCH, body: br#"{"op":"add"}"#, status: 400, code: BAD },
    Row { name: "DELETE unknown query parameter", method: "DELETE", path: "/v1/ns/st/records/k?frob=1", content_type: None, body: b"", status: 400, code: BAD },
    Row { name: "DELETE bad expected_version", method: "DELETE", path: "/v1/ns/st/records/k?expected_version=abc", content_type: None, body: b"", status: 400, code: BAD },
    Row { name: "txn unknown op", method: "POST", path: "/v1/ns/st/txn", content_type: JSON, body: br#"{"success":[{"frob":{"key":"a"}}]}"#, status: 400, code: BAD },
    Row { name: "txn unknown field", method: "POST", path: "/v1/ns/st/txn", content_type: JSON, body: br#"{"compare":[],"other":[]}"#, status: 400, code: BAD },
    Row { name: "txn compare without target", method: "POST", path: "/v1/ns/st/txn", content_type: JSON, body: br#"{"compare":[{"key":"a"}]}"#, status: 400, code: BAD },
    Row { name: "txn compare with two targets", method: "POST", path: "/v1/ns/st/txn", content_type: JSON, body: br#"{"compare":[{"key":"a","version":1,"exists":true}]}"#, status: 400, code: BAD },
    Row { name: "txn put without value", method: "POST", path: "/v1/ns/st/txn", content_type: JSON, body: br#"{"success":[{"put":{"key":"a"}}]}"#, status: 400, code: BAD },
    Row { name: "txn op with an empty key", method: "POST", path: "/v1/ns/st/txn", content_type: JSON, body: br#"{"success":[{"get":{"key":""}}]}"#, status: 400, code: BAD },
    Row { name: "txn incr by a float", method: "POST", path: "/v1/ns/st/txn", content_type: JSON, body: br#"{"success":[{"incr":{"key":"a","by":1.5}}]}"#, status: 400, code: BAD },
    Row { name: "txn text/plain", method: "POST", path: "/v1/ns/st/txn", content_type: Some("text/plain"), body: b"{}", status: 415, code: Some("unsupported_media_type") },
    Row { name: "empty txn", method: "POST", path: "/v1/ns/st/txn", content_type: JSON, body: b"{}", status: 200, code: None },
];

/// Malformed JSON in many shapes, unknown fields and wrong types: 400
/// `invalid_request`, and nothing written.
#[rustfmt::skip]
const MALFORMED_BODIES: &[Row] = &[
    Row { name: "PUT of an empty body", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: b"", status: 400, code: BAD },
    Row { name: "PUT of {", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: b"{", status: 400, code: BAD },
    Row { name: "PUT of a cut body", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: br#"{"value":"#, status: 400, code: BAD },
    Row { name: "PUT of not json", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: b"not json", status: 400, code: BAD },
    Row { name: "PUT with a brace too many", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: br#"{"value":1}}"#, status: 400, code: BAD },
    Row { name: "PUT with trailing text", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: br#"{"value":1} x"#, status: 400, code: BAD },
    Row { name: "PUT of an array", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: b"[1]", status: 400, code: BAD },
    Row { name: "PUT of null", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: b"null", status: 400, code: BAD },
    Row { name: "PUT of a NUL byte", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: b"\0", status: 400, code: BAD },
    Row { name: "PUT of invalid UTF-8", method: "PUT", path: "/v1/ns/bad/records/m", content_type: JSON, body: &[0xff, 0xfe, 0x7b], status: 400, code: BAD },
    Row { name: "txn of malformed JSON", method: "POST", path: "/v1/ns/bad/txn", content_type: JSON, body: br#"{"success": ["#, status: 400, code: BAD },
    Row { name: "merge patch of malformed JSON", method: "PATCH", path: "/v1/ns/bad/records/m", content_type: MERGE, body: b"{", status: 400, code: BAD },
    Row { name: "PUT with an unknown field", method: "PUT", path: "/v1/ns/bad/records/u", content_type: JSON, body: br#"{"value":1,"extra":true}"#, status: 400, code: BAD },
    Row { name: "PUT with expected_version a string", method: "PUT", path: "/v1/ns/bad/records/u", content_type: JSON, body: br#"{"value":1,"expected_version":"3"}"#, status: 400, code: BAD },
    Row { name: "PUT with a negative ttl_ms", method: "PUT", path: "/v1/ns/bad/records/u", content_type: JSON, body: br#"{"value":1,"ttl_ms":-5}"#, status: 400, code: BAD },
    Row { name: "PUT with force a string", method: "PUT", path: "/v1/ns/bad/records/u", content_type: JSON, body: br#"{"value":1,"force":"yes"}"#, status: 400, code: BAD },
    Row { name: "PUT with Value capitalized", method: "PUT", path: "/v1/ns/bad/records/u", content_type: JSON, body: br#"{"Value":1}"#, status: 400, code: BAD },
    // The body is an object: the positional (array) form of the struct is not the API.
    Row { name: "PUT of the positional form", method: "PUT", path: "/v1/ns/bad/records/u", content_type: JSON, body: b"[1,null,null,false]", status: 400, code: BAD },
    Row { name: "PUT of the positional form with a version", method: "PUT", path: "/v1/ns/bad/records/u", content_type: JSON, body: b"[1,0,null,false]", status: 400, code: BAD },
    Row { name: "txn put with an unknown field", method: "POST", path: "/v1/ns/bad/txn", content_type: JSON, body: br#"{"success":[{"put":{"key":"a","value":1,"extra":1}}]}"#, status: 400, code: BAD },
    Row { name: "txn op with two kinds", method: "POST", path: "/v1/ns/bad/txn", content_type: JSON, body: br#"{"success":[{"get":{"key":"a"},"put":{"key":"b","value":1}}]}"#, status: 400, code: BAD },
    Row { name: "txn compare with an unknown field", method: "POST", path: "/v1/ns/bad/txn", content_type: JSON, body: br#"{"compare":[{"key":"a","version":1,"extra":1}]}"#, status: 400, code: BAD },
    Row { name: "txn success an object", method: "POST", path: "/v1/ns/bad/txn", content_type: JSON, body: br#"{"success":{"get":{"key":"a"}}}"#, status: 400, code: BAD },
    Row { name: "txn put in positional form", method: "POST", path: "/v1/ns/bad/txn", content_type: JSON, body: br#"{"success":[{"put":["a",1,null]}]}"#, status: 400, code: BAD },
    Row { name: "txn get in positional form", method: "POST", path: "/v1/ns/bad/txn", content_type: JSON, body: br#"{"success":[{"get":["a"]}]}"#, status: 400, code: BAD },
    Row { name: "txn in positional form", method: "POST", path: "/v1/ns/bad/txn", content_type: JSON, body: b"[[],[],[]]", status: 400, code: BAD },
];

/// Cursors, content types, namespaces, query strings and preconditions that
/// are refused before anything is read or written (and the neighbours that
/// are fine).
fn queries_types_and_names() -> Vec<Req> {
    let rec = "/v1/ns/bad/records";
    let value = r#"{"value":1}"#;
    let mut rows = Vec::new();
    // Garbage cursors.
    for cursor in ["garbage", "AAAA", "%2F%2F", "eyJ9", &"A".repeat(5000)] {
        rows.push(invalid(
            format!("cursor {cursor:.20}"),
            "GET",
            format!("{rec}?cursor={cursor}"),
            "",
        ));
    }
    // Wrong Content-Type.
    for ct in [None, Some("text/plain"), Some("application/xml"), MERGE] {
        rows.push(Req {
            content_type: ct,
            status: 415,
            code: Some("unsupported_media_type"),
            ..invalid(
                format!("PUT with content type {ct:?}"),
                "PUT",
                format!("{rec}/ct"),
                value,
            )
        });
    }
    rows.push(Req {
        content_type: Some("application/json; charset=utf-8"),
        status: 201,
        code: None,
        ..invalid(
            "a charset parameter is fine".into(),
            "PUT",
            format!("{rec}/ct"),
            value,
        )
    });
    rows.push(Req {
        status: 415,
        code: Some("unsupported_media_type"),
        ..invalid(
            "PATCH as application/json".into(),
            "PATCH",
            format!("{rec}/ct"),
            r#"{"value":2}"#,
        )
    });
    rows.push(Req {
        content_type: Some("text/plain"),
        status: 415,
        code: Some("unsupported_media_type"),
        ..invalid("txn as text/plain".into(), "POST", "/v1/ns/bad/txn".into(), "{}")
    });
    // Invalid namespaces.
    let ns64 = "n".repeat(64);
    for ns in ["Upper", "-dash", ".dot", "a%20b", "a%2Fb", "%C3%A9", &ns64] {
        rows.push(invalid(
            format!("namespace {ns:.20}"),
            "PUT",
            format!("/v1/ns/{ns}/records/k"),
            value,
        ));
        rows.push(invalid(
            format!("listing namespace {ns:.20}"),
            "GET",
            format!("/v1/ns/{ns}/records"),
            "",
        ));
    }
    rows.push(Req {
        status: 201,
        code: None,
        ..invalid(
            "a 63-character namespace".into(),
            "PUT",
            format!("/v1/ns/{}/records/k", "n".repeat(63)),
            value,
        )
    });
    // Query strings.
    for q in ["limit=-1", "limit=1e3", "limit=", "prefix=a&prefix=b", "x=1"] {
        rows.push(invalid(format!("query {q}"), "GET", format!("{rec}?{q}"), ""));
    }
    for q in [
        "expected_version=-1",
        "expected_version=x",
        "expected_version=1&force=true",
    ] {
        rows.push(invalid(
            format!("DELETE query {q}"),
            "DELETE",
            format!("{rec}/ct?{q}"),
            "",
        ));
    }
    // Malformed preconditions.
    for (name, v) in [("if-match", "3"), ("if-match", "\"3"), ("if-none-match", "abc")] {
        rows.push(Req {
            headers: vec![(name, v)],
            ..invalid(format!("{name}: {v}"), "PUT", format!("{rec}/ct"), value)
        });
    }
    rows
}

/// Sends `row` through the router and checks the answer; the failure, if any.
async fn check(st: &AppState, backend: &str, row: &Req) -> Result<(), String> {
    let mut req = Request::builder().method(row.method).uri(&row.path);
    for (name, value) in &row.headers {
        req = req.header(*name, *value);
    }
    if let Some(ct) = row.content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let req = req.body(Body::from(row.body.clone())).unwrap();
    let resp = lockstep_server::app(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let code = body.get("code").and_then(Value::as_str);
    let what = format!("[{backend}] {}: {} {:.120}", row.name, row.method, row.path);
    let mut wrong = Vec::new();
    if status != row.status {
        wrong.push(format!("status {status}, expected {}", row.status));
    }
    if row.status >= 400 {
        if content_type.as_deref() != Some("application/problem+json") {
            wrong.push(format!("content type {content_type:?} of an error"));
        }
        if code != row.code {
            wrong.push(format!("problem code {code:?}, expected {:?}", row.code));
        }
        if body["status"] != json!(row.status) {
            wrong.push(format!("problem status {}", body["status"]));
        }
        for member in ["type", "title", "detail"] {
            if !body[member].is_string() {
                wrong.push(format!("no problem member {member}"));
            }
        }
    } else if row.code.is_some() {
        wrong.push("a success row names a code".into());
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: {}; body {text:.300}", wrong.join(", ")))
    }
}

/// Checks every row in order, then reports every failure at once.
async fn check_all(env: &Env, rows: Vec<Req>) {
    let backend = if env.is_sqlite() { "sqlite" } else { "postgres" };
    let st = AppState::new(env.store.clone(), Limits::default());
    let mut failures = Vec::new();
    for row in &rows {
        if let Err(e) = check(&st, backend, row).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} row(s) failed:\n- {}",
        failures.len(),
        failures.join("\n- ")
    );
}

async fn routing_and_records(env: Env) {
    check_all(&env, ROUTING_AND_RECORDS.iter().map(Req::from).collect()).await;
}

async fn malformed_bodies(env: Env) {
    check_all(&env, MALFORMED_BODIES.iter().map(Req::from).collect()).await;
    // Nothing of the refused writes.
    let st = AppState::new(env.store.clone(), Limits::default());
    for key in ["m", "u", "a", "b"] {
        let req = Request::builder()
            .uri(format!("/v1/ns/bad/records/{key}"))
            .body(Body::empty())
            .unwrap();
        let resp = lockstep_server::app(st.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 404, "record {key} after the refused writes");
    }
}

async fn queries_types_and_namespaces(env: Env) {
    check_all(&env, queries_types_and_names()).await;
}

lockstep_testkit::backends!(
    lockstep_testkit::store::run;
    routing_and_records,
    malformed_bodies,
    queries_types_and_namespaces,
);
