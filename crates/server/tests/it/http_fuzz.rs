//! The whole HTTP layer under generated requests, in process: `app(state)` over
//! a SQLite store in a temporary directory, driven with `oneshot`. Requests are
//! built from the route table (`/openapi.json`) with hostile path segments,
//! random methods, query strings, headers, content types and bodies (JSON
//! shaped after each endpoint's body schema, forged cursors, raw bytes, deep
//! nesting). Every answer is below 500, arrives in bounded time, and every 4xx
//! is `application/problem+json` with a `code`. `PROPTEST_CASES` overrides the
//! case count.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use lockstep_core::cursor;
use lockstep_server::{app, AppState};
use lockstep_store::{Location, Options, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Longest time one answer (headers and body) may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// One documented endpoint.
#[derive(Debug, Clone)]
struct Endpoint {
    method: String,
    path: String,
    query: Vec<String>,
    /// Body members, each with whether the schema requires it.
    body: Vec<(String, bool)>,
    content_types: Vec<String>,
}

fn endpoints() -> Vec<Endpoint> {
    let doc = lockstep_server::api::openapi();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        // `x-…` members of a path item are not operations.
        for (method, op) in ops
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.starts_with("x-"))
        {
            let query = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let content = op["requestBody"]["content"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let content_types = content.keys().cloned().collect();
            let body = content
                .values()
                .filter_map(|c| {
                    let required: Vec<Value> =
                        c["schema"]["required"].as_array().cloned().unwrap_or_default();
                    let props = c["schema"]["properties"].as_object()?;
                    Some(
                        props
                            .keys()
                            .map(move |k| (k.clone(), required.contains(&json!(k))))
                            .collect::<Vec<_>>(),
                    )
                })
                .flatten()
                .collect();
            out.push(Endpoint {
                method: method.to_uppercase(),
                path: path.clone(),
                query,
                body,
                content_types,
            });
        }
    }
    assert!(out.len() > 20, "the route table has {} endpoints", out.len());
    out
}

/// A generated request.
#[derive(Debug, Clone)]
struct Case {
    method: String,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

const NAMES: &[&str] = &["fz", "a", "k1", "0", "g", "f", "n"];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        14 => prop::sample::select(NAMES).prop_map(str::to_owned),
        4 => prop::sample::select(vec![
            "", ".", "..", "%2e%2e", "%00", "%FF", "%C3%28", "%2F", "a%2Fb", "%20", "A", "-a", "a.b_c-d",
            "%C3%A9", "%E2%80%A8", "%7F", "%0A", "*", "~", "%25", "%", "%zz", "a;b", "a=b", "@", "%F0%9F%92%A9",
            "%EF%BF%BF", "%ED%A0%80", "check", "commit", "abort", "finalize", "admit", "revoke", "pause",
        ])
        .prop_map(str::to_owned),
        1 => (prop::sample::select(vec!["x", "%00", "é", "%FF"]), 60usize..600).prop_map(|(s, n)| s.repeat(n)),
        1 => prop::collection::vec(prop::sample::select(b"abcAZ09-._~!$&'()*+,;=:@%/".to_vec()), 0..12)
            .prop_map(|b| String::from_utf8(b).unwrap()),
    ]
}

/// A key: one or more segments (the key route takes the rest of the path).
fn key_path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["a", "n", "f"]).prop_map(str::to_owned),
        3 => segment(),
        1 => prop::collection::vec(segment(), 1..4).prop_map(|s| s.join("/")),
    ]
}

/// The template with its parameters replaced; `{ns}` by the seeded namespace
/// when `home`.
fn fill(template: &str, segs: &[String], key: &str, home: bool) -> String {
    let mut out = String::new();
    let mut i = 0;
    for part in template.split('/').skip(1) {
        out.push('/');
        if part == "{ns}" && home {
            out.push_str("fz");
        } else if part == "{key}" {
            out.push_str(key);
        } else if part.starts_with('{') {
            out.push_str(&segs[i % segs.len()]);
            i += 1;
        } else {
            out.push_str(part);
        }
    }
    out
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => prop::sample::select(vec![json!(100), json!(1000), json!(60_000)]),
        1 => hostile_number(),
    ]
}

fn hostile_number() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!(0),
        json!(1),
        json!(50),
        json!(99),
        json!(100),
        json!(1000),
        json!(86_400_000),
        json!(86_400_001),
        json!(u64::MAX),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(9_223_372_036_854_775_808u64),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!("1"),
        json!(null),
    ])
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(NAMES).prop_map(str::to_owned),
        2 => prop::sample::select(vec![
            "", "2026-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z",
            "+275760-09-13T00:00:00Z", "1970-01-01T00:00:00+25:00", "not a time", "\u{0}", "a\nb",
            "\u{10ffff}", "open", "committed", "x",
        ])
        .prop_map(str::to_owned),
        1 => prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        1 => (1usize..700).prop_map(|n| "k".repeat(n)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn txn_op() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["get", "put", "delete", "patch", "incr", "nope"]),
        text(),
        json_value(),
        prop::sample::select(vec![
            json!(1),
            json!(-1),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(1.5),
        ]),
    )
        .prop_map(|(op, key, value, by)| match op {
            "put" => json!({"put": {"key": key, "value": value}}),
            "patch" => json!({"patch": {"key": key, "merge": value}}),
            "incr" => json!({"incr": {"key": key, "by": by}}),
            "nope" => value,
            other => json!({other: {"key": key}}),
        })
}

fn compare() -> impl Strategy<Value = Value> {
    (text(), json_value(), number(), 0u8..5).prop_map(|(key, value, n, which)| match which {
        0 => json!({"key": key, "version": n}),
        1 => json!({"key": key, "exists": true}),
        2 => json!({"key": key, "value": value}),
        3 => json!({"lease": key, "token": value}),
        _ => json!({"fence": {"resource": key, "token": n}}),
    })
}

/// A value for a body member, by the member's name.
fn member(name: String) -> BoxedStrategy<Value> {
    match name.as_str() {
        "wait_ms" => prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(50),
            json!(-1),
            json!(60_001),
            json!("x"),
        ])
        .boxed(),
        "ttl_ms" | "lock_ms" | "expected_version" | "max_entries" | "max_age_ms" | "after_ms" | "fence"
        | "by" => number().boxed(),
        "compare" => prop::collection::vec(compare(), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        "success" | "failure" => prop::collection::vec(txn_op(), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        "value" | "data" | "response" | "scrub" | "append" | "entries" => json_value().boxed(),
        "force" => any::<bool>().prop_map(Value::Bool).boxed(),
        _ => prop_oneof![4 => text().prop_map(Value::String), 1 => json_value()].boxed(),
    }
}

fn json_body(ep: &Endpoint) -> BoxedStrategy<Vec<u8>> {
    let mut members: Vec<BoxedStrategy<Option<(String, Value)>>> = ep
        .body
        .iter()
        .map(|(n, required)| {
            let n = n.clone();
            let v = member(n.clone());
            // Required members are nearly always there, optional ones half the time.
            let p = if *required { 0.95 } else { 0.5 };
            prop::option::weighted(p, v.prop_map(move |v| (n.clone(), v))).boxed()
        })
        .collect();
    // Now and then a member no endpoint knows.
    members.push(prop::option::weighted(0.1, json_value().prop_map(|v| ("unknown".to_owned(), v))).boxed());
    members
        .prop_map(|kv| {
            let obj: Map<String, Value> = kv.into_iter().flatten().collect();
            Value::Object(obj).to_string().into_bytes()
        })
        .boxed()
}

fn body(ep: &Endpoint) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        8 => json_body(ep),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => Just(Vec::new()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => (1usize..300, prop::sample::select(vec!["[", "{\"a\":", "{\"value\":"]))
            .prop_map(|(n, open)| open.repeat(n).into_bytes()),
        1 => (prop::sample::select(vec!["value", "data", "merge"]), 120usize..140)
            .prop_map(|(name, n)| format!("{{\"{name}\":{}1{}}}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        1 => Just(br#"[{"op":"move","from":"/a","path":""},{"op":"remove","path":"/zz"}]"#.to_vec()),
        2 => prop::collection::vec(json_patch_op(), 0..4).prop_map(|ops| Value::Array(ops).to_string().into_bytes()),
    ]
    .boxed()
}

/// An RFC 6902 operation over the seeded records' members, or a broken one.
fn json_patch_op() -> impl Strategy<Value = Value> {
    let pointer = prop::sample::select(vec![
        "", "/a", "/b", "/b/0", "/b/-", "/b/9", "/a/b", "/zz", "/~1", "/~2", "a", "/b/01",
    ]);
    (
        prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test", "nope"]),
        pointer.clone(),
        pointer,
        json_value(),
    )
        .prop_map(|(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}))
}

/// Forged and foreign cursors: a valid checksum over a hostile position in the
/// scope of a real listing (the checksum is not a secret).
fn cursor_value() -> impl Strategy<Value = String> {
    let position = prop_oneof![
        text(),
        Just("9223372036854775807:x".to_owned()),
        Just("-9223372036854775808:".to_owned()),
        Just(":".to_owned()),
        Just("99999999999999999999:a".to_owned()),
    ];
    let scope = prop_oneof![
        prop::sample::select(NAMES).prop_map(|n| format!("fz\0feed\0{n}")),
        Just("fz\0records\0".to_owned()),
        Just("fz\0feeds\0".to_owned()),
        prop::sample::select(NAMES).prop_map(|n| format!("fz\0tickets\0{n}\0")),
        Just("\0namespaces".to_owned()),
        text(),
    ];
    prop_oneof![
        3 => (scope, position).prop_map(|(s, p)| cursor::encode(&s, &p)),
        1 => text(),
    ]
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "", "0", "1", "-1", "1000", "1001", "18446744073709551616", "9223372036854775808", "1e3", "abc",
            "asc", "desc", "record", "lease", "feed", "gate", "idempotency", "open", "committed", "true", "%ZZ",
            "%00", "%FF", "a%2Fb",
        ])
        .prop_map(str::to_owned),
        1 => cursor_value().prop_map(|c| c.replace('\0', "%00")),
        1 => text().prop_map(|t| percent_encode(&t)),
    ]
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query(ep: &Endpoint) -> BoxedStrategy<String> {
    let mut names: Vec<String> = ep.query.clone();
    names.extend(ep.query.clone());
    names.extend(ep.query.clone());
    names.extend(["x", "limit", "cursor", "after", "", "prefix"].map(str::to_owned));
    let pair = (prop::sample::select(names), query_value()).prop_map(|(n, v)| format!("{n}={v}"));
    prop_oneof![
        6 => Just(String::new()),
        4 => prop::collection::vec(pair, 1..3).prop_map(|p| format!("?{}", p.join("&"))),
        1 => prop::sample::select(vec!["?", "?&&", "?=", "?a", "?limit", "?%", "?limit=1&limit=2", "?cursor=a&after=1"])
            .prop_map(str::to_owned),
    ]
    .boxed()
}

fn header_bytes(values: Vec<&'static str>) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(values).prop_map(|v| v.as_bytes().to_vec()),
        1 => prop::collection::vec(prop_oneof![8 => 0x20u8..0x7f, 1 => 0x80u8..=0xff, 1 => Just(b'\t')], 0..40),
    ]
    .boxed()
}

fn headers(ep: &Endpoint) -> BoxedStrategy<Vec<(String, Vec<u8>)>> {
    let mut types: Vec<&'static str> = vec![
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/merge-patch+json",
        "application/json-patch+json",
        "text/plain",
        "",
        "application/problem+json",
        "multipart/form-data; boundary=x",
        "application/json;;;",
    ];
    // Mostly the endpoint's own types.
    for t in &ep.content_types {
        let t: &'static str = Box::leak(t.clone().into_boxed_str());
        types.extend([t, t, t]);
    }
    let content_type = header_bytes(types).prop_map(|v| ("content-type".to_owned(), v));
    let etag = || {
        header_bytes(vec![
            "*",
            "\"1\"",
            "W/\"1\"",
            "\"1\", \"2\"",
            "\"18446744073709551616\"",
            "\"",
            "1",
            "\"a,b\"",
            ", ,",
            "W/",
        ])
    };
    let other = prop_oneof![
        etag().prop_map(|v| ("if-match".to_owned(), v)),
        etag().prop_map(|v| ("if-none-match".to_owned(), v)),
        header_bytes(vec![
            "k1",
            "\"k1\"",
            "\"a\\\"b\"",
            "\"",
            "a b",
            "\"\\x\"",
            "",
            "\"\""
        ])
        .prop_map(|v| ("idempotency-key".to_owned(), v)),
        header_bytes(vec!["1", "0", "-1", "18446744073709551616", "abc"])
            .prop_map(|v| ("last-event-id".to_owned(), v)),
        header_bytes(vec!["0", "5", "99999999999", "18446744073709551615", "-1", "abc"])
            .prop_map(|v| ("content-length".to_owned(), v)),
        header_bytes(vec!["application/json", "text/event-stream", "*/*", "nope"])
            .prop_map(|v| ("accept".to_owned(), v)),
        header_bytes(vec!["gzip", "br", "chunked"]).prop_map(|v| ("content-encoding".to_owned(), v)),
        header_bytes(vec!["Bearer x", "Basic eDp5", ""]).prop_map(|v| ("authorization".to_owned(), v)),
    ];
    (
        prop::option::weighted(0.85, content_type),
        prop::collection::vec(other, 0..3),
    )
        .prop_map(|(ct, rest)| ct.into_iter().chain(rest).collect())
        .boxed()
}

fn method(ep: &Endpoint) -> BoxedStrategy<String> {
    let own = ep.method.clone();
    prop_oneof![
        6 => Just(own),
        1 => prop::sample::select(vec!["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO"])
            .prop_map(str::to_owned),
    ]
    .boxed()
}

fn case(eps: Vec<Endpoint>) -> impl Strategy<Value = Case> {
    prop::sample::select(eps).prop_flat_map(|ep| {
        let path = (
            prop::collection::vec(segment(), 1..5),
            key_path(),
            0u8..40,
            prop::bool::weighted(0.6),
        )
            .prop_map({
                let template = ep.path.clone();
                move |(segs, key, mangle, home)| {
                    let p = fill(&template, &segs, &key, home);
                    match mangle {
                        0 => format!("{p}/"),
                        1 => p.rsplit_once('/').map_or(p.clone(), |(a, _)| a.to_owned()),
                        2 => p.replacen("/v1", "/v2", 1),
                        3 => p.replace('/', "//"),
                        _ => p,
                    }
                }
            });
        (method(&ep), path, query(&ep), headers(&ep), body(&ep)).prop_map(
            |(method, path, query, headers, body)| Case {
                method,
                uri: format!("{path}{query}"),
                headers,
                body,
            },
        )
    })
}

fn build(c: &Case) -> Option<Request<Body>> {
    let mut b = Request::builder()
        .method(Method::from_bytes(c.method.as_bytes()).ok()?)
        .uri(c.uri.as_str());
    for (name, value) in &c.headers {
        b = b.header(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_bytes(value).ok()?,
        );
    }
    b.body(Body::from(c.body.clone())).ok()
}

async fn check(router: &axum::Router, c: &Case) -> Result<Option<u16>, String> {
    let Some(req) = build(c) else {
        return Ok(None); // not a request http can even represent
    };
    let resp = tokio::time::timeout(ANSWER_WITHIN, router.clone().oneshot(req))
        .await
        .map_err(|_| format!("no answer within {ANSWER_WITHIN:?}"))?
        .map_err(|e| format!("router error {e:?}"))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type.starts_with("text/event-stream") {
        // A watch: it streams until the client goes away.
        return if status == 200 {
            Ok(Some(status))
        } else {
            Err(format!("{status} with an event stream"))
        };
    }
    let body = tokio::time::timeout(ANSWER_WITHIN, axum::body::to_bytes(resp.into_body(), usize::MAX))
        .await
        .map_err(|_| format!("{status}: the body did not end within {ANSWER_WITHIN:?}"))?
        .map_err(|e| format!("{status}: body error {e}"))?;
    let text = String::from_utf8_lossy(&body);
    if status >= 500 {
        return Err(format!("status {status}: {text}"));
    }
    if status >= 400 {
        if content_type != "application/problem+json" {
            return Err(format!("{status} as {content_type:?}: {text}"));
        }
        if c.method != "HEAD" {
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| format!("{status}: problem is not JSON ({e}): {text}"))?;
            if !v["code"].is_string() || v["status"] != json!(status) {
                return Err(format!("{status}: problem without code/status: {text}"));
            }
        }
    }
    Ok(Some(status))
}

/// `PROPTEST_CASES` when set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Seeds a few things to find, then runs `cases` generated requests.
fn fuzz(rt: &tokio::runtime::Runtime, store: Store, limits: lockstep_core::Limits, cases: u32, label: &str) {
    let router = app(AppState::new(store, limits));
    rt.block_on(async {
        for (m, p, b) in [
            (
                "PUT",
                "/v1/ns/fz/records/a",
                json!({"value": {"a": 1, "b": [1, 2]}}),
            ),
            ("PUT", "/v1/ns/fz/records/n", json!({"value": 1})),
            ("PUT", "/v1/ns/fz/records/f", json!({"value": 1e300})),
            (
                "POST",
                "/v1/ns/fz/feeds/f/entries",
                json!({"id": "a", "data": {"x": 1}}),
            ),
            ("PUT", "/v1/ns/fz/gates/g", json!({})),
            ("POST", "/v1/ns/fz/leases/a/acquire", json!({"ttl_ms": 60_000})),
        ] {
            let req = Request::builder()
                .method(m)
                .uri(p)
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap();
            let status = router.clone().oneshot(req).await.unwrap().status();
            assert!(status.as_u16() < 500, "{m} {p}: {status}");
        }
    });
    // Fixed hostile requests first: forged cursors with NUL and extreme
    // positions, and the JSON Patch that once panicked (a move to the root
    // followed by a failing operation).
    let forged = |scope: &str, position: &str| cursor::encode(scope, position);
    let fixed = [
        (
            "GET",
            format!("/v1/ns/fz/records?cursor={}", forged("fz\0records\0", "a\0b")),
        ),
        (
            "GET",
            format!("/v1/ns/fz/feeds?cursor={}", forged("fz\0feeds\0", "\0")),
        ),
        (
            "GET",
            format!(
                "/v1/ns/fz/feeds/f/entries?cursor={}",
                forged("fz\0feed\0f", "9223372036854775807:\0")
            ),
        ),
        (
            "GET",
            format!(
                "/v1/ns/fz/feeds/f/entries?order=asc&cursor={}",
                forged("fz\0feed\0f", "-9223372036854775808:")
            ),
        ),
        (
            "GET",
            format!(
                "/v1/ns/fz/gates/g/tickets?cursor={}",
                forged("fz\0tickets\0g\0", "\0\u{10ffff}")
            ),
        ),
        (
            "GET",
            format!("/v1/namespaces?cursor={}", forged("\0namespaces", "\0")),
        ),
    ];
    for (m, uri) in fixed {
        let c = Case {
            method: m.into(),
            uri,
            headers: Vec::new(),
            body: Vec::new(),
        };
        if let Err(e) = rt.block_on(check(&router, &c)) {
            panic!("{label}: {c:?}: {e}");
        }
    }
    let c = Case {
        method: "PATCH".into(),
        uri: "/v1/ns/fz/records/a".into(),
        headers: vec![("content-type".into(), b"application/json-patch+json".to_vec())],
        body: br#"[{"op":"move","from":"/a","path":""},{"op":"remove","path":"/zz"}]"#.to_vec(),
    };
    assert_eq!(rt.block_on(check(&router, &c)), Ok(Some(422)), "{label}: {c:?}");
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u64>::new());
    let started = Instant::now();
    let result = runner.run(&case(endpoints()), |c| match rt.block_on(check(&router, &c)) {
        Ok(Some(s)) => {
            *statuses.lock().unwrap().entry(s).or_default() += 1;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(TestCaseError::fail(e)),
    });
    let statuses = statuses.into_inner().unwrap();
    println!(
        "{label}: {cases} generated requests in {:?}; answers by status: {statuses:?}",
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("{label}: {e}");
    }
    // The generator reaches the handlers, not only the refusals.
    assert!(
        statuses.keys().any(|s| (200..300).contains(s)),
        "no request succeeded: {statuses:?}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sqlite_every_generated_request_answers_below_500_with_a_problem() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default();
    let store = rt
        .block_on(Store::open(
            &Location::Sqlite(dir.path().join("fuzz.db")),
            opts.clone(),
        ))
        .unwrap();
    fuzz(&rt, store, opts.limits, cases(5000), "sqlite");
}

/// The same over PostgreSQL (a fresh schema of `LOCKSTEP_TEST_DATABASE_URL`;
/// skipped when it is unset, unless PostgreSQL is required: `CI` or
/// `LOCKSTEP_REQUIRE_PG=1`). Fewer cases: each write is a
/// round trip to the database.
#[test]
fn postgres_every_generated_request_answers_below_500_with_a_problem() {
    let rt = runtime();
    let Some(schema) = rt.block_on(lockstep_testkit::pg::Schema::fresh()) else {
        return;
    };
    let url = schema.url.clone();
    let opts = Options {
        pool_size: 4,
        ..Options::default()
    };
    let store = rt
        .block_on(Store::open(&Location::Postgres(url), opts.clone()))
        .unwrap();
    // The schema is dropped on drop, also when the fuzzer panics.
    fuzz(&rt, store, opts.limits.clone(), cases(3000), "postgres");
    drop(schema);
}
