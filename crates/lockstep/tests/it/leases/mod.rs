//! Leases end to end (SPEC §5 lease and fence compares, §6, §15 "Leases") over
//! HTTP: a SQLite server, and PostgreSQL servers (several `lockstep serve`
//! processes on one schema where it matters).
//!
//! The story (seeds/003): a cron run and a user refresh share one in-flight
//! marker; the cron run's late "clear" must not wipe the marker that the refresh
//! set after the cron run's own had lapsed. With lockstep the marker is a lease:
//! the clear is a compare-and-clear release with the owner token.
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep --test it leases:: -- --test-threads=2
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{fresh_pg, poll, sqlite_db, tempdir, Http, Process, Resp, Server};
use lockstep_core::Millis;
use lockstep_store::clock::Clock;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_client::api::leases::{AcquireBody, Lease};
use lockstep_client::Ns;

mod bad_input;
mod exclusion;
mod story;
mod waiting;

use bad_input::*;
use exclusion::*;
use story::*;
use waiting::*;

/// The namespace of every case.
const NS: &str = "leases";

fn lease_path(name: &str) -> String {
    format!("/v1/ns/{NS}/leases/{name}")
}

fn action_path(name: &str, action: &str) -> String {
    format!("/v1/ns/{NS}/leases/{name}/{action}")
}

/// `POST .../leases/{name}/{action}` with a JSON body.
async fn post(h: &Http, name: &str, action: &str, body: Value) -> Resp {
    h.json("POST", &action_path(name, action), &body).await
}

async fn get_lease(h: &Http, name: &str) -> Resp {
    let r = h.get(&lease_path(name)).await;
    assert_eq!(r.status, 200, "GET lease {name}: {}", r.text);
    for member in ["held", "holder", "acquired_at", "expires_at", "fence"] {
        assert!(r.body.get(member).is_some(), "GET lease has {member}: {}", r.text);
    }
    r
}

/// Asserts a problem answer: status, problem+json and the stable code.
#[track_caller]
fn assert_problem(r: &Resp, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: status; body {}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}: content type"
    );
    assert_eq!(r.code(), Some(code), "{what}: code; body {}", r.text);
    assert_eq!(r.body["status"], json!(status), "{what}: {}", r.text);
}

fn time_of(v: &Value) -> Millis {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    Millis::parse_rfc3339(s).unwrap_or_else(|e| panic!("bad timestamp {s:?}: {e}"))
}

/// A granted lease as answered by acquire.
#[derive(Debug, Clone)]
struct Held {
    token: String,
    fence: u64,
    acquired_at: Millis,
    expires_at: Millis,
    body: Value,
}

/// Checks a 200 acquire answer `{name, token, fence, holder, acquired_at,
/// expires_at}`.
#[track_caller]
fn granted(r: &Resp, name: &str, holder: Option<&str>, ttl_ms: u64) -> Held {
    assert_eq!(r.status, 200, "acquire {name}: {}", r.text);
    let keys: BTreeSet<&str> = r
        .body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {}", r.text))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "name",
            "token",
            "fence",
            "holder",
            "acquired_at",
            "expires_at",
            "revision"
        ]),
        "acquire answer members: {}",
        r.text
    );
    assert_eq!(
        r.body["revision"], r.body["fence"],
        "an acquire commits at its fence: {}",
        r.text
    );
    assert_eq!(r.body["name"], json!(name));
    assert_eq!(r.body["holder"], json!(holder));
    let token = r.body["token"].as_str().unwrap().to_owned();
    held(token, r.u64("fence"), r.body.clone(), ttl_ms)
}

/// A granted lease from its answer `body`: the token is a URL-safe string of
/// at least 128 bits, and the lease expires `ttl_ms` after it was acquired.
#[track_caller]
fn held(token: String, fence: u64, body: Value, ttl_ms: u64) -> Held {
    assert!(
        token.len() >= 22
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "a token is a URL-safe string of at least 128 bits: {token:?}"
    );
    let acquired_at = time_of(&body["acquired_at"]);
    let expires_at = time_of(&body["expires_at"]);
    assert_eq!(expires_at, acquired_at.plus_ms(ttl_ms), "{body}");
    Held {
        token,
        fence,
        acquired_at,
        expires_at,
        body,
    }
}

/// Checks a granted lease as [`granted`] checks the raw answer: its name,
/// holder, a URL-safe token of at least 128 bits, the TTL, and that an
/// acquire commits at its fence.
#[track_caller]
fn granted_lease(l: &Lease, name: &str, holder: Option<&str>, ttl_ms: u64) -> Held {
    assert_eq!((l.name.as_str(), l.holder.as_deref()), (name, holder), "{l:?}");
    assert_eq!(l.revision, l.fence, "an acquire commits at its fence: {l:?}");
    let token = l
        .token
        .clone()
        .unwrap_or_else(|| panic!("a granted lease has a token: {l:?}"));
    held(token, l.fence, serde_json::to_value(l).unwrap(), ttl_ms)
}

/// An acquire through `lockstep_client`: `ttl_ms`, the `holder` label, and
/// `wait_ms` (0: no wait).
async fn try_acquire(
    app: &Ns,
    name: &str,
    ttl_ms: u64,
    holder: Option<&str>,
    wait_ms: u64,
) -> Result<Lease, lockstep_client::Error> {
    let body = AcquireBody {
        ttl_ms,
        holder: holder.map(str::to_owned),
        wait_ms,
    };
    app.acquire_lease(name, &body).await
}

/// Releases through `lockstep_client`; answers `released`.
async fn release_lease(app: &Ns, name: &str, token: &str) -> bool {
    app.release_lease(name, token)
        .await
        .unwrap_or_else(|e| panic!("release {name}: {e:?}"))
        .released
}

/// Acquires without waiting; it must be granted.
async fn acquire(h: &Http, name: &str, ttl_ms: u64, holder: Option<&str>) -> Held {
    let mut body = json!({"ttl_ms": ttl_ms});
    if let Some(holder) = holder {
        body["holder"] = json!(holder);
    }
    let r = post(h, name, "acquire", body).await;
    granted(&r, name, holder, ttl_ms)
}

/// Releases; answers `released` (checks `{released, revision}`).
async fn release(h: &Http, name: &str, token: &str) -> (bool, u64) {
    let r = post(h, name, "release", json!({"token": token})).await;
    assert_eq!(r.status, 200, "release {name}: {}", r.text);
    let released = r.body["released"]
        .as_bool()
        .unwrap_or_else(|| panic!("no released in {}", r.text));
    (released, r.u64("revision"))
}

/// A no-wait acquire that must be refused: answers the 409 body's `waiters`.
async fn probe_waiters(h: &Http, name: &str) -> u64 {
    let r = post(h, name, "acquire", json!({"ttl_ms": 1000})).await;
    assert_problem(&r, 409, "lease_held", "probe acquire");
    r.u64("waiters")
}

/// Lets `held` lapse by moving the server's manual clock to its expiry: held
/// a millisecond before, free at it. Answers the GET of the lapsed lease.
async fn lapse(h: &Http, clock: &Clock, name: &str, held: &Held) -> Resp {
    clock.set(Millis(held.expires_at.0 - 1));
    let r = get_lease(h, name).await;
    assert_eq!(r.body["held"], json!(true), "held until its expiry: {}", r.text);
    clock.set(held.expires_at);
    let r = get_lease(h, name).await;
    assert_eq!(r.body["held"], json!(false), "lapsed at its expiry: {}", r.text);
    r
}

// ---------------------------------------------------------------------------
// Test entry points.

fn sqlite_server() -> (tempfile::TempDir, Server) {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    (dir, server)
}

/// A SQLite server whose store runs on a manual clock.
fn sqlite_manual_server() -> (tempfile::TempDir, Server) {
    let dir = tempdir();
    let server = Server::start_manual(&sqlite_db(&dir));
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_003_and_fencing_sqlite() {
    let (_dir, server) = sqlite_manual_server();
    let h = Http::new(&server.url);
    seed_003(&h, &server.clock).await;
    fencing(&h, &server.clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_003_and_fencing_postgres() {
    let Some(pg) = fresh_pg().await else { return };
    let server = Server::start_manual(&pg.url);
    let h = Http::new(&server.url);
    seed_003(&h, &server.clock).await;
    fencing(&h, &server.clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_sqlite() {
    let (_dir, server) = sqlite_server();
    mutual_exclusion(&[common::ns(&server.url, NS)], 16, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_postgres_three_processes() {
    let Some(pg) = fresh_pg().await else { return };
    let servers: Vec<Process> = (0..3).map(|_| Process::start(&pg.url)).collect();
    let apps: Vec<_> = servers.iter().map(|s| common::ns(&s.url, NS)).collect();
    mutual_exclusion(&apps, 16, Duration::from_secs(10)).await;
}

/// The waiting cases of one server, its store on a manual clock.
async fn waiting(server: &Server) {
    let h = Http::new(&server.url);
    let app = common::ns(&server.url, NS);
    fifo(std::slice::from_ref(&app), &h, "fifo").await;
    wait_timeout(&app, &h).await;
    waiter_gets_lapsed_lease(&app, &h, &server.clock).await;
    disconnected_waiter(&app, &h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_sqlite() {
    let (_dir, server) = sqlite_manual_server();
    waiting(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_postgres() {
    let Some(pg) = fresh_pg().await else { return };
    let server = Server::start_manual(&pg.url);
    waiting(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_postgres_three_processes() {
    let Some(pg) = fresh_pg().await else { return };
    let mut servers: Vec<Process> = (0..3).map(|_| Process::start(&pg.url)).collect();
    let https: Vec<Http> = servers.iter().map(|s| Http::new(&s.url)).collect();
    let apps: Vec<Ns> = servers.iter().map(|s| common::ns(&s.url, NS)).collect();
    // Waiters spread over three processes still acquire in arrival order.
    fifo(&apps, &https[0], "fifo-across").await;
    crashed_waiter(&mut servers, &apps, &https[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_sqlite() {
    let (_dir, server) = sqlite_server();
    bad_input(&Http::new(&server.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_postgres() {
    let Some(pg) = fresh_pg().await else { return };
    let server = Server::start(&pg.url);
    bad_input(&Http::new(&server.url)).await;
}
