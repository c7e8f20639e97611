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

mod listing;
mod patches;
mod records;
mod service;
mod transactions;

use listing::*;
use patches::*;
use records::*;
use service::*;
use transactions::*;

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
