//! Idempotency end to end (SPEC §9, §15 "Idempotency"): the `Idempotency-Key`
//! header on mutating endpoints and the application idempotency store, over
//! HTTP against a real server (spawned for SIGKILL and several instances), on
//! SQLite and on PostgreSQL.
//!
//! - 50 concurrent identical keyed transactions apply once (one server; and three
//!   servers on one PostgreSQL schema);
//! - SIGKILL in the middle of a burst of keyed writes: after the restart every
//!   key's effect happened at most once and its replay agrees with the state;
//! - replay semantics per endpoint, key syntax, scopes;
//! - the application store (seeds/002): start, in use, reused, complete,
//!   takeover, give up, bad input.
//!
//! The overhead of a keyed write is measured by `lockstep bench --scenarios
//! keyed-overhead`.
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep --test it idempotency:: -- --test-threads=2
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{fresh_pg, poll, sqlite_db, tempdir, try_send, Http, PgDb, Process, Resp, Server};
use lockstep_testkit::Backend;
use reqwest::header::HeaderValue;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

mod app_store;
mod concurrent;
mod crash;
mod replay;

use app_store::*;
use concurrent::*;
use replay::*;

const NS: &str = "idem";
/// Bound on one scenario, so a deadlock fails instead of hanging.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Databases and helpers.

/// A database for one scenario; removed on drop.
enum Db {
    Sqlite { _dir: tempfile::TempDir, url: String },
    Postgres(PgDb),
}

impl Db {
    fn url(&self) -> String {
        match self {
            Db::Sqlite { url, .. } => url.clone(),
            Db::Postgres(pg) => pg.url.clone(),
        }
    }
}

/// A fresh database of `backend`; `None` when PostgreSQL is not configured
/// (outside CI; in CI the harness panics instead).
async fn database(backend: Backend) -> Option<Db> {
    match backend {
        Backend::Sqlite => {
            let dir = tempdir();
            let url = sqlite_db(&dir);
            Some(Db::Sqlite { _dir: dir, url })
        }
        Backend::Postgres => fresh_pg().await.map(Db::Postgres),
    }
}

/// Runs `case` on a fresh database of `backend`, bounded in time.
async fn with_db<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(db) = database(backend).await else {
        return;
    };
    if tokio::time::timeout(SCENARIO_TIMEOUT, case(db.url()))
        .await
        .is_err()
    {
        panic!("the scenario did not finish within {SCENARIO_TIMEOUT:?}");
    }
    drop(db);
}

fn path(rest: &str) -> String {
    format!("/v1/ns/{NS}{rest}")
}

fn rec(key: &str) -> String {
    path(&format!("/records/{key}"))
}

/// A request with a JSON body and an `Idempotency-Key` header (sent as is).
fn keyed_req(h: &Http, method: &str, p: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
    h.req(method, p)
        .header("content-type", "application/json")
        .header(
            "idempotency-key",
            HeaderValue::from_bytes(key.as_bytes()).unwrap(),
        )
        .body(body.to_string())
}

async fn keyed(h: &Http, method: &str, p: &str, key: &str, body: &Value) -> Resp {
    h.send(keyed_req(h, method, p, key, body)).await
}

/// A keyed request without a body.
async fn keyed_empty(h: &Http, method: &str, p: &str, key: &str) -> Resp {
    h.send(h.req(method, p).header("idempotency-key", key)).await
}

fn is_replay(r: &Resp) -> bool {
    r.header("idempotent-replayed") == Some("true")
}

/// Asserts `r` is a replay of `original`: same status, same body (byte for
/// byte), same `ETag` and `Content-Type`, with `Idempotent-Replayed: true`.
#[track_caller]
fn assert_replay_of(r: &Resp, original: &Resp, what: &str) {
    assert!(
        is_replay(r),
        "{what}: a replay carries Idempotent-Replayed: true; got {} {:?} {}",
        r.status,
        r.headers,
        r.text
    );
    assert_eq!(r.status, original.status, "{what}: same status; {}", r.text);
    assert_eq!(r.text, original.text, "{what}: same body");
    assert_eq!(r.header("etag"), original.header("etag"), "{what}: same ETag");
    assert_eq!(
        r.header("content-type"),
        original.header("content-type"),
        "{what}: same Content-Type"
    );
}

#[track_caller]
fn assert_fresh(r: &Resp, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert!(!is_replay(r), "{what}: not a replay: {:?}", r.headers);
}

#[track_caller]
fn assert_problem(r: &Resp, status: u16, code: &str, what: &str) {
    assert_eq!(
        (r.status, r.code()),
        (status, Some(code)),
        "{what}: expected {status} {code}, got {}{}",
        r.text,
        if is_replay(r) {
            " (Idempotent-Replayed: true)"
        } else {
            ""
        }
    );
    assert!(!is_replay(r), "{what}: a refusal of the key is not a replay");
}

/// The integer value of a record (`None` when absent).
async fn int_value(h: &Http, key: &str) -> Option<i64> {
    let r = h.get(&rec(key)).await;
    match r.status {
        200 => Some(
            r.body["value"]
                .as_i64()
                .unwrap_or_else(|| panic!("{key}: {}", r.text)),
        ),
        404 => None,
        other => panic!("GET {key} answered {other}: {}", r.text),
    }
}

// ---------------------------------------------------------------------------

lockstep_testkit::backends!(
    super::with_db;
    concurrent_identical_requests,
    replay_semantics_per_endpoint,
    fingerprint_covers_query_and_preconditions,
    application_store,
);
