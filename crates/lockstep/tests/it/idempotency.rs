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
// 1 and 2: concurrent identical requests with one key.

/// `n` identical keyed increments at once, spread round-robin over `urls`:
/// the counter rises by exactly one; every answer is the one stored response
/// (200, same body; all but the executing one are replays) or 409
/// `idempotency_key_in_use`; afterwards every replay gets the stored response.
async fn concurrent_identical(urls: &[String], n: usize, key: &str) {
    let body = json!({"success": [{"incr": {"key": "c", "by": 1}}]});
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let h = Http::new(&urls[i % urls.len()]);
        let barrier = barrier.clone();
        let body = body.clone();
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            keyed(&h, "POST", &path("/txn"), &key, &body).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let mut fresh: Vec<&Resp> = Vec::new();
    let mut replays: Vec<&Resp> = Vec::new();
    let mut in_use = 0;
    for r in &answers {
        match (r.status, is_replay(r)) {
            (200, false) => fresh.push(r),
            (200, true) => replays.push(r),
            (409, false) if r.code() == Some("idempotency_key_in_use") => in_use += 1,
            _ => panic!(
                "every answer is the stored one or idempotency_key_in_use; got {} {:?} {}",
                r.status, r.headers, r.text
            ),
        }
    }
    println!(
        "{n} concurrent identical keyed txns over {} server(s): 1 executed, {} replayed, {in_use} in use",
        urls.len(),
        replays.len()
    );
    assert_eq!(
        fresh.len(),
        1,
        "exactly one request executes: {:?}",
        fresh.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let stored = fresh[0];
    assert_eq!(stored.body["succeeded"], json!(true), "{}", stored.text);
    assert_eq!(stored.body["results"][0]["value"], json!(1), "{}", stored.text);
    for r in &replays {
        assert_replay_of(r, stored, "a concurrent replay");
    }
    let h = Http::new(&urls[0]);
    assert_eq!(
        int_value(&h, "c").await,
        Some(1),
        "the counter rose by exactly one"
    );
    // Afterwards every retry, on every server, replays the stored response.
    for (i, url) in urls.iter().enumerate().cycle().take(n) {
        let r = keyed(&Http::new(url), "POST", &path("/txn"), key, &body).await;
        assert_replay_of(&r, stored, &format!("a later replay on server {i}"));
    }
    for url in urls {
        assert_eq!(int_value(&Http::new(url), "c").await, Some(1));
    }
}

async fn concurrent_identical_requests(url: String) {
    let server = Server::start(&url);
    concurrent_identical(std::slice::from_ref(&server.url), 50, "conc-key-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_three_processes_concurrent_identical_requests() {
    with_db(Backend::Postgres, |url| async move {
        let servers: Vec<Process> = (0..3).map(|_| Process::start(&url)).collect();
        let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
        concurrent_identical(&urls, 60, "\"conc-key-3\"").await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// 3: crash safety.

fn crash_body(key: &str) -> Value {
    json!({"success": [
        {"incr": {"key": format!("c/{key}"), "by": 1}},
        {"put": {"key": format!("seen/{key}"), "value": {"key": key}}}]})
}

/// What a client saw of its first request of a key.
#[derive(Debug)]
enum First {
    /// Answered (before the crash): the answer.
    Acked(Resp),
    /// The connection failed (in flight at the crash, or sent after it).
    Unknown,
    /// Never sent.
    NeverSent,
}

/// A burst of keyed writes from several clients, each request with a key of its
/// own; SIGKILL in the middle; restart on the same file; replay every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_kill_9_mid_burst_then_replay_every_key() {
    const CLIENTS: usize = 12;
    const ACKS_BEFORE_KILL: usize = 300;
    let dir = tempdir();
    let db = sqlite_db(&dir);
    let mut server = Process::start(&db);
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..CLIENTS {
        let h = Http::new(&server.url);
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..5_000 {
                let key = format!("crash-{t:02}-{i:05}");
                let req = keyed_req(&h, "POST", &path("/txn"), &key, &crash_body(&key));
                match try_send(req).await {
                    Ok(r) => {
                        assert_fresh(&r, 200, &format!("first request of {key}"));
                        acked.fetch_add(1, Ordering::SeqCst);
                        seen.push((key, First::Acked(r)));
                    }
                    Err(_) => {
                        seen.push((key, First::Unknown));
                        break;
                    }
                }
            }
            seen
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < ACKS_BEFORE_KILL {
        assert!(Instant::now() < deadline, "the burst is too slow");
        // Polls until enough requests were acknowledged, then kills -9.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill9();
    let mut keys: Vec<(String, First)> = Vec::new();
    for t in tasks {
        keys.extend(t.await.unwrap());
    }
    for i in 0..5 {
        keys.push((format!("crash-never-{i}"), First::NeverSent));
    }

    let server = Process::start(&db);
    let h = Http::new(&server.url);
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut replays: Vec<(String, Resp)> = Vec::new();
    for (key, first) in &keys {
        let r = keyed(&h, "POST", &path("/txn"), key, &crash_body(key)).await;
        let count = int_value(&h, &format!("c/{key}")).await;
        let seen = h.get(&rec(&format!("seen/{key}"))).await.status;
        assert!(
            count.unwrap_or(0) <= 1,
            "{key}: applied {count:?} times ({first:?})"
        );
        let kind = match (first, r.status, is_replay(&r)) {
            (First::Acked(a), _, _) => {
                assert_replay_of(&r, a, &format!("{key} (acknowledged before the crash)"));
                "acked: replayed"
            }
            (First::Unknown, 200, true) => "in flight: completed before the crash, replayed",
            (First::Unknown, 200, false) => "in flight: not applied, executed on replay",
            (First::Unknown, 409, false) if r.code() == Some("idempotency_key_in_use") => {
                // Begun but not executed when the server died: the key stays
                // locked (90 s) and the effect must not be there.
                assert_eq!(count, None, "{key}: in use after the crash, yet applied");
                assert_eq!(seen, 404, "{key}: in use after the crash, yet applied");
                "in flight: begun, not applied (key locked)"
            }
            (First::NeverSent, 200, false) => "never sent: executed",
            _ => panic!(
                "{key} ({first:?}): unexpected replay answer {} {}",
                r.status, r.text
            ),
        };
        if r.status == 200 {
            assert_eq!(count, Some(1), "{key}: answered 200, so applied exactly once");
            assert_eq!(seen, 200, "{key}: both writes of the transaction are there");
            assert_eq!(r.body["results"][0]["value"], json!(1), "{key}: {}", r.text);
        }
        *tally.entry(kind).or_default() += 1;
        replays.push((key.clone(), r));
    }
    println!("kill -9 after {ACKS_BEFORE_KILL}+ acknowledged keyed writes; replays: {tally:#?}");
    assert!(tally.get("acked: replayed").copied().unwrap_or(0) >= ACKS_BEFORE_KILL);
    // A second round: answered keys replay what the first round answered.
    for (key, first_replay) in &replays {
        let r = keyed(&h, "POST", &path("/txn"), key, &crash_body(key)).await;
        if first_replay.status == 200 {
            assert!(is_replay(&r), "{key}: {} {}", r.status, r.text);
            assert_eq!(
                (r.status, &r.text),
                (200, &first_replay.text),
                "{key}: the stored answer"
            );
        } else {
            assert_problem(&r, 409, "idempotency_key_in_use", key);
        }
        assert!(int_value(&h, &format!("c/{key}")).await.unwrap_or(0) <= 1);
    }
}

// ---------------------------------------------------------------------------
// 4: replay semantics per endpoint.

async fn replay_semantics_per_endpoint(url: String) {
    let server = Server::start(&url);
    let h = Http::new(&server.url);

    // PUT of a record: 201 replayed with the same ETag and body; applied once.
    let body = json!({"value": {"a": 1}});
    let first = keyed(&h, "PUT", &rec("r1"), "put-1", &body).await;
    assert_fresh(&first, 201, "keyed PUT");
    let version = first.u64("version");
    assert_eq!(first.header("etag"), Some(format!("\"{version}\"").as_str()));
    let again = keyed(&h, "PUT", &rec("r1"), "put-1", &body).await;
    assert_replay_of(&again, &first, "PUT replay");
    assert_eq!(h.get(&rec("r1")).await.u64("version"), version, "applied once");

    // The same key with a different body: 422, nothing applied.
    let r = keyed(&h, "PUT", &rec("r1"), "put-1", &json!({"value": {"a": 2}})).await;
    assert_problem(&r, 422, "idempotency_key_reused", "another body");
    assert_eq!(h.get(&rec("r1")).await.body["value"], json!({"a": 1}));

    // The same key on another path, or with another method: another scope.
    let r = keyed(&h, "PUT", &rec("r2"), "put-1", &body).await;
    assert_fresh(&r, 201, "the same key on another path");
    let r = keyed_empty(&h, "DELETE", &rec("r2"), "put-1").await;
    assert_fresh(&r, 200, "the same key with another method");
    assert_eq!(h.get(&rec("r2")).await.status, 404);

    // A 409 version_mismatch is stored and replayed, even once the request
    // would now succeed.
    let vm = json!({"value": "v2", "expected_version": 0});
    let first = keyed(&h, "PUT", &rec("r1"), "vm-1", &vm).await;
    assert_problem(
        &first,
        409,
        "version_mismatch",
        "expected_version 0 on an existing record",
    );
    assert_eq!(first.body["current"]["version"], json!(version));
    assert_eq!(h.send(h.req("DELETE", &rec("r1"))).await.status, 200);
    let again = keyed(&h, "PUT", &rec("r1"), "vm-1", &vm).await;
    assert_replay_of(&again, &first, "version_mismatch replay");
    assert_eq!(again.code(), Some("version_mismatch"));
    assert_eq!(h.get(&rec("r1")).await.status, 404, "the replay applied nothing");

    // A 404 is stored too.
    let first = keyed_empty(&h, "DELETE", &rec("nope"), "del-404").await;
    assert_problem(&first, 404, "not_found", "keyed DELETE of an absent record");
    assert_eq!(
        h.json("PUT", &rec("nope"), &json!({"value": 1})).await.status,
        201
    );
    let again = keyed_empty(&h, "DELETE", &rec("nope"), "del-404").await;
    assert_replay_of(&again, &first, "404 replay");
    assert_eq!(
        h.get(&rec("nope")).await.status,
        200,
        "the replay deleted nothing"
    );

    // A PATCH replays, applying once.
    assert_eq!(h.json("PUT", &rec("p"), &json!({"value": [1]})).await.status, 201);
    let patch = json!([{"op": "add", "path": "/-", "value": 2}]);
    let patch_req = |key: &str| {
        h.req("PATCH", &rec("p"))
            .header("content-type", "application/json-patch+json")
            .header("idempotency-key", key)
            .body(patch.to_string())
    };
    let first = h.send(patch_req("patch-1")).await;
    assert_fresh(&first, 200, "keyed PATCH");
    let again = h.send(patch_req("patch-1")).await;
    assert_replay_of(&again, &first, "PATCH replay");
    assert_eq!(
        h.get(&rec("p")).await.body["value"],
        json!([1, 2]),
        "applied once"
    );

    // The structured-field string and the bare form name the same key.
    let first = keyed(&h, "PUT", &rec("r3"), "\"sf-1\"", &body).await;
    assert_fresh(&first, 201, "a structured-field key");
    let again = keyed(&h, "PUT", &rec("r3"), "sf-1", &body).await;
    assert_replay_of(&again, &first, "the bare form of the same key");
    let r = keyed(&h, "PUT", &rec("r5"), r#""with \"escaped\" quotes""#, &body).await;
    assert_fresh(&r, 201, "a structured-field key with escapes");

    // Malformed keys: 400, nothing applied.
    let long = "x".repeat(256);
    for bad in [
        "\"unterminated",
        "with space",
        long.as_str(),
        "\"\"",
        "\"",
        "a\"b",
        "\"bad \\n escape\"",
        "caf\u{e9}",
        "\u{96e8}",
    ] {
        let r = keyed(&h, "PUT", &rec("bad"), bad, &json!({"value": 1})).await;
        assert_problem(&r, 400, "invalid_request", &format!("Idempotency-Key {bad:?}"));
    }
    assert_eq!(
        h.get(&rec("bad")).await.status,
        404,
        "malformed keys apply nothing"
    );
    // 255 characters are accepted, bare and as a string.
    let max = "y".repeat(255);
    let first = keyed(&h, "PUT", &rec("r4"), &max, &body).await;
    assert_fresh(&first, 201, "a 255-character key");
    let again = keyed(&h, "PUT", &rec("r4"), &format!("\"{max}\""), &body).await;
    assert_replay_of(&again, &first, "a 255-character key, replayed");
    // Reads ignore the header.
    let r = h
        .send(h.req("GET", &rec("r3")).header("idempotency-key", "with space"))
        .await;
    assert_eq!(r.status, 200, "a GET ignores Idempotency-Key: {}", r.text);

    // Lease acquire: the replay is the same grant (token and fence).
    let acquire = json!({"ttl_ms": 60_000, "holder": "worker-1"});
    let lease = path("/leases/job/acquire");
    let first = keyed(&h, "POST", &lease, "acq-1", &acquire).await;
    assert_fresh(&first, 200, "keyed acquire");
    let again = keyed(&h, "POST", &lease, "acq-1", &acquire).await;
    assert_replay_of(&again, &first, "acquire replay");
    assert_eq!(again.body["token"], first.body["token"]);
    assert_eq!(again.body["fence"], first.body["fence"]);
    let other = h.json("POST", &lease, &json!({"ttl_ms": 60_000})).await;
    assert_problem(&other, 409, "lease_held", "an unkeyed acquire");
    let r = keyed(&h, "POST", &lease, "acq-1", &json!({"ttl_ms": 30_000})).await;
    assert_problem(&r, 422, "idempotency_key_reused", "another acquire body");
    let state = h.get(&path("/leases/job")).await;
    assert_eq!(state.body["fence"], first.body["fence"], "{}", state.text);

    // A waiting keyed acquire keeps its key in use while it waits; the grant
    // is stored; a wait that runs out stores its 409 lease_held.
    let holder = h
        .json("POST", &path("/leases/w/acquire"), &json!({"ttl_ms": 60_000}))
        .await;
    assert_eq!(holder.status, 200, "{}", holder.text);
    let wait = json!({"ttl_ms": 60_000, "wait_ms": 10_000});
    let waiter = {
        let h = h.clone();
        let wait = wait.clone();
        tokio::spawn(async move { keyed(&h, "POST", &path("/leases/w/acquire"), "wait-1", &wait).await })
    };
    // Once it waits in the queue (an unkeyed probe counts it), its key is in use.
    poll(Duration::from_secs(10), "the keyed acquire to wait", || async {
        let probe = h
            .json("POST", &path("/leases/w/acquire"), &json!({"ttl_ms": 1000}))
            .await;
        assert_problem(&probe, 409, "lease_held", "a probe while the holder holds");
        (probe.u64("waiters") == 1).then_some(())
    })
    .await;
    let r = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-1", &wait).await;
    assert_problem(
        &r,
        409,
        "idempotency_key_in_use",
        "the same key while its acquire waits",
    );
    assert_eq!(
        r.header("retry-after"),
        Some("1"),
        "idempotency_key_in_use is retryable and says when"
    );
    let released = h
        .json(
            "POST",
            &path("/leases/w/release"),
            &json!({"token": holder.body["token"]}),
        )
        .await;
    assert_eq!(released.body["released"], json!(true), "{}", released.text);
    let granted = waiter.await.unwrap();
    assert_fresh(&granted, 200, "the waiting keyed acquire");
    let again = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-1", &wait).await;
    assert_replay_of(&again, &granted, "the waited grant, replayed");
    let short = json!({"ttl_ms": 60_000, "wait_ms": 200});
    let first = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-2", &short).await;
    assert_problem(&first, 409, "lease_held", "a keyed wait that runs out");
    let again = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-2", &short).await;
    assert_replay_of(&again, &first, "the timed-out wait, replayed");

    // A client that goes away while its keyed acquire waits gives the key up:
    // its retry runs (and waits, here in vain) instead of answering
    // idempotency_key_in_use until the key's 90 s lock runs out.
    let long = json!({"ttl_ms": 60_000, "wait_ms": 2_000});
    let gone = try_send(
        keyed_req(&h, "POST", &path("/leases/w/acquire"), "wait-3", &long)
            .timeout(Duration::from_millis(300)),
    )
    .await;
    assert!(gone.is_err(), "the client gave up waiting");
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-3", &long).await;
        if r.code() != Some("idempotency_key_in_use") || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_problem(&r, 409, "lease_held", "the retry of an abandoned keyed wait runs");

    // Feed append: the replay is the 201 of the first append (an unkeyed
    // repeat is the idempotent 200 created: false).
    let entries = path("/feeds/inbox/entries");
    let entry = json!({"id": "e1", "data": {"n": 1}});
    let first = keyed(&h, "POST", &entries, "app-1", &entry).await;
    assert_fresh(&first, 201, "keyed append");
    let again = keyed(&h, "POST", &entries, "app-1", &entry).await;
    assert_replay_of(&again, &first, "append replay");
    let plain = h.json("POST", &entries, &entry).await;
    assert_eq!(
        (plain.status, &plain.body["created"]),
        (200, &json!(false)),
        "{}",
        plain.text
    );
    let list = h.get(&entries).await;
    assert_eq!(
        list.body["entries"].as_array().map(Vec::len),
        Some(1),
        "{}",
        list.text
    );

    // Gate ticket finalize with an append: replayed, finalized and appended once.
    assert_eq!(h.json("PUT", &path("/gates/g"), &json!({})).await.status, 201);
    let admit = path("/gates/g/tickets");
    let first = keyed(&h, "POST", &admit, "adm-1", &json!({"ticket_id": "t1"})).await;
    assert_fresh(&first, 201, "keyed admit");
    let again = keyed(&h, "POST", &admit, "adm-1", &json!({"ticket_id": "t1"})).await;
    assert_replay_of(&again, &first, "admit replay");
    let commit = h.send(h.req("POST", &path("/gates/g/tickets/t1/commit"))).await;
    assert_eq!(commit.status, 200, "{}", commit.text);
    let fin = json!({"append": {"feed": "done", "data": {"ok": true}}});
    let finalize = path("/gates/g/tickets/t1/finalize");
    let first = keyed(&h, "POST", &finalize, "fin-1", &fin).await;
    assert_fresh(&first, 200, "keyed finalize");
    assert_eq!(first.body["state"], json!("finalized"), "{}", first.text);
    let again = keyed(&h, "POST", &finalize, "fin-1", &fin).await;
    assert_replay_of(&again, &first, "finalize replay");
    let r = keyed(&h, "POST", &finalize, "fin-1", &json!({})).await;
    assert_problem(&r, 422, "idempotency_key_reused", "another finalize body");
    let list = h.get(&path("/feeds/done/entries")).await;
    assert_eq!(
        list.body["entries"].as_array().map(Vec::len),
        Some(1),
        "{}",
        list.text
    );

    // 423 gate_paused is not stored: after resume the same key executes.
    assert_eq!(h.json("PUT", &path("/gates/g2"), &json!({})).await.status, 201);
    let paused = h.send(h.req("POST", &path("/gates/g2/pause"))).await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let admit2 = path("/gates/g2/tickets");
    let r = keyed(&h, "POST", &admit2, "adm-2", &json!({"ticket_id": "t2"})).await;
    assert_problem(&r, 423, "gate_paused", "admit while paused");
    let resumed = h.send(h.req("POST", &path("/gates/g2/resume"))).await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    let first = keyed(&h, "POST", &admit2, "adm-2", &json!({"ticket_id": "t2"})).await;
    assert_fresh(&first, 201, "the same key after resume executes");
    let again = keyed(&h, "POST", &admit2, "adm-2", &json!({"ticket_id": "t2"})).await;
    assert_replay_of(&again, &first, "admit replay after resume");

    // Deleting the namespace forgets its keys with everything else.
    let r = h.send(h.req("DELETE", &path(""))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = keyed(&h, "PUT", &rec("r1"), "put-1", &body).await;
    assert_fresh(&r, 201, "a key of a deleted namespace executes afresh");
}

/// A request that differs only in its query (`?expected_version=`) or in a
/// precondition header (`If-Match`) is a different request: with the same key
/// it is 422 `idempotency_key_reused` (SPEC §9: "a different request with the
/// same key"), never the replay of the other request's answer (which would tell
/// the client about a precondition it did not send).
async fn fingerprint_covers_query_and_preconditions(url: String) {
    let server = Server::start(&url);
    let h = Http::new(&server.url);
    let put = h.json("PUT", &rec("x"), &json!({"value": 1})).await;
    assert_eq!(put.status, 201, "{}", put.text);
    let v = put.u64("version");

    let first = keyed_empty(
        &h,
        "DELETE",
        &format!("{}?expected_version={}", rec("x"), v + 1_000),
        "q-1",
    )
    .await;
    assert_problem(&first, 409, "version_mismatch", "DELETE at a wrong version");
    let other = keyed_empty(&h, "DELETE", &format!("{}?expected_version={v}", rec("x")), "q-1").await;
    assert_problem(
        &other,
        422,
        "idempotency_key_reused",
        "the same key on a DELETE with another ?expected_version= (got the first request's answer)",
    );

    let body = json!({"value": 2});
    let put_if = |etag: String| {
        h.req("PUT", &rec("x"))
            .header("content-type", "application/json")
            .header("if-match", etag)
            .header("idempotency-key", "h-1")
            .body(body.to_string())
    };
    let first = h.send(put_if(format!("\"{}\"", v + 1_000))).await;
    assert_problem(&first, 412, "precondition_failed", "PUT with a wrong If-Match");
    let other = h.send(put_if(format!("\"{v}\""))).await;
    assert_problem(
        &other,
        422,
        "idempotency_key_reused",
        "the same key on a PUT with another If-Match (got the first request's answer)",
    );
}

// ---------------------------------------------------------------------------
// 5: the application store.

fn app(scope: &str, key: &str) -> String {
    path(&format!("/idempotency/{scope}/{key}"))
}

#[track_caller]
fn started_token(r: &Resp, what: &str) -> String {
    assert_eq!(r.status, 201, "{what}: {}", r.text);
    assert_eq!(r.body["state"], json!("started"), "{what}: {}", r.text);
    let token = r.body["token"].as_str().unwrap_or_default().to_owned();
    assert!(!token.is_empty(), "{what}: a token: {}", r.text);
    token
}

async fn application_store(url: String) {
    let server = Server::start_manual(&url);
    let h = Http::new(&server.url);
    let k1 = app("checkout", "order-1");
    let f1 = json!({"fingerprint": "sha256:aaa", "lock_ms": 30_000});
    let f2 = json!({"fingerprint": "sha256:bbb", "lock_ms": 30_000});

    let token = started_token(&h.json("POST", &k1, &f1).await, "first begin");
    // Reading a key tells its state, never the owner's token.
    let r = h.get(&k1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.body["state"], &r.body["stale"]),
        (&json!("started"), &json!(false)),
        "{}",
        r.text
    );
    assert!(r.body["locked_until"].is_string(), "{}", r.text);
    assert!(
        !r.text.contains(&token),
        "the owner's token is never shown: {}",
        r.text
    );
    assert_problem(
        &h.get(&app("checkout", "never")).await,
        404,
        "not_found",
        "an unknown key",
    );
    assert_problem(
        &h.json("POST", &k1, &f1).await,
        409,
        "idempotency_key_in_use",
        "begin while started",
    );
    assert_problem(
        &h.json("POST", &k1, &f2).await,
        422,
        "idempotency_key_reused",
        "another fingerprint while started",
    );
    assert_problem(
        &h.json("PUT", &k1, &json!({"token": "not-the-owner", "response": {}}))
            .await,
        409,
        "lease_lost",
        "complete by a stranger",
    );
    assert_problem(
        &h.json("DELETE", &k1, &json!({"token": "not-the-owner"})).await,
        409,
        "lease_lost",
        "give up by a stranger",
    );
    let stored = json!({"order": 42, "lines": [1, 2], "note": null});
    let r = h
        .json("PUT", &k1, &json!({"token": token, "response": stored}))
        .await;
    assert_eq!(r.status, 200, "complete: {}", r.text);
    assert_eq!(r.body["state"], json!("completed"), "{}", r.text);
    let r = h.get(&k1).await;
    assert_eq!(
        (&r.body["state"], &r.body["response"]),
        (&json!("completed"), &stored),
        "{}",
        r.text
    );
    for _ in 0..2 {
        let r = h.json("POST", &k1, &f1).await;
        assert_eq!(r.status, 200, "replay: {}", r.text);
        assert_eq!(r.body["state"], json!("completed"), "{}", r.text);
        assert_eq!(r.body["response"], stored, "{}", r.text);
    }
    assert_problem(
        &h.json("POST", &k1, &f2).await,
        422,
        "idempotency_key_reused",
        "another fingerprint once completed",
    );
    assert_problem(
        &h.json("PUT", &k1, &json!({"token": token, "response": {"again": 1}}))
            .await,
        409,
        "lease_lost",
        "complete twice",
    );
    assert_problem(
        &h.json("DELETE", &k1, &json!({"token": token})).await,
        409,
        "lease_lost",
        "give up once completed",
    );
    assert_eq!(
        h.json("POST", &k1, &f1).await.body["response"],
        stored,
        "refusals change nothing"
    );
    // Scopes are independent, and independent of the header's scopes.
    started_token(
        &h.json("POST", &app("refunds", "order-1"), &f2).await,
        "the same key in another scope",
    );

    // Takeover once lock_ms ran out; the stale owner is refused.
    let k2 = app("checkout", "order-2");
    let short = json!({"fingerprint": "sha256:aaa", "lock_ms": 200});
    let stale = started_token(&h.json("POST", &k2, &short).await, "short lock");
    assert_problem(
        &h.json("POST", &k2, &short).await,
        409,
        "idempotency_key_in_use",
        "within the lock",
    );
    // The store's clock (manual) reaches the end of the lock: in use until then.
    server.clock.advance(199);
    assert_problem(
        &h.json("POST", &k2, &short).await,
        409,
        "idempotency_key_in_use",
        "a millisecond before the lock runs out",
    );
    server.clock.advance(1);
    let fresh = started_token(&h.json("POST", &k2, &short).await, "takeover");
    assert_ne!(stale, fresh, "the new owner has a new token");
    assert_problem(
        &h.json("PUT", &k2, &json!({"token": stale, "response": "stale"}))
            .await,
        409,
        "lease_lost",
        "the stale owner completes",
    );
    assert_problem(
        &h.json("DELETE", &k2, &json!({"token": stale})).await,
        409,
        "lease_lost",
        "the stale owner gives up",
    );
    let r = h
        .json("PUT", &k2, &json!({"token": fresh, "response": "fresh"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.json("POST", &k2, &short).await.body["response"], json!("fresh"));

    // Give up, then a retry owns the key again.
    let k3 = app("checkout", "order-3");
    let t1 = started_token(&h.json("POST", &k3, &f1).await, "begin");
    let r = h.json("DELETE", &k3, &json!({"token": t1})).await;
    assert_eq!(r.status, 200, "give up: {}", r.text);
    assert_eq!(r.body["released"], json!(true), "{}", r.text);
    let t2 = started_token(&h.json("POST", &k3, &f1).await, "retry after give up");
    assert_ne!(t1, t2);
    assert_problem(
        &h.json("DELETE", &k3, &json!({"token": t1})).await,
        409,
        "lease_lost",
        "giving up twice",
    );

    // The application store's writes are changes of kind idempotency, keyed
    // by the caller's scope and key.
    let changes = h
        .get(&path("/changes?kind=idempotency&prefix=checkout/order-"))
        .await;
    assert_eq!(changes.status, 200, "{}", changes.text);
    let seen: Vec<(String, String)> = changes.body["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", changes.text))
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["op"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("order-1", "start"),
        ("order-1", "complete"),
        ("order-2", "start"),
        ("order-2", "start"),
        ("order-2", "complete"),
        ("order-3", "start"),
        ("order-3", "release"),
        ("order-3", "start"),
    ]
    .iter()
    .map(|(k, op)| (format!("checkout/{k}"), (*op).to_owned()))
    .collect();
    assert_eq!(seen, expected, "{}", changes.text);

    // Bad input: 400, and nothing started.
    let kb = app("checkout", "bad");
    for (what, method, body) in [
        ("missing fingerprint", "POST", json!({"lock_ms": 1000})),
        ("missing lock_ms", "POST", json!({"fingerprint": "f"})),
        ("lock_ms 0", "POST", json!({"fingerprint": "f", "lock_ms": 0})),
        ("lock_ms 99", "POST", json!({"fingerprint": "f", "lock_ms": 99})),
        (
            "lock_ms over a day",
            "POST",
            json!({"fingerprint": "f", "lock_ms": 86_400_001u64}),
        ),
        (
            "empty fingerprint",
            "POST",
            json!({"fingerprint": "", "lock_ms": 1000}),
        ),
        (
            "unknown field",
            "POST",
            json!({"fingerprint": "f", "lock_ms": 1000, "ttl_ms": 5}),
        ),
        ("not an object", "POST", json!(["f", 1000])),
        ("empty token", "PUT", json!({"token": "", "response": 1})),
        ("missing response", "PUT", json!({"token": "abc"})),
        (
            "unknown field",
            "PUT",
            json!({"token": "abc", "response": 1, "status": 200}),
        ),
        ("empty token", "DELETE", json!({"token": ""})),
        ("unknown field", "DELETE", json!({"token": "abc", "why": "x"})),
        ("missing token", "DELETE", json!({})),
    ] {
        let r = h.json(method, &kb, &body).await;
        assert_problem(&r, 400, "invalid_request", &format!("{method} with {what}"));
    }
    let r = h
        .send(
            h.req("POST", &kb)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_problem(&r, 400, "invalid_request", "malformed JSON");
    // The smallest lock is accepted; the bad requests started nothing.
    started_token(
        &h.json("POST", &kb, &json!({"fingerprint": "f", "lock_ms": 100}))
            .await,
        "lock_ms 100 after the bad requests",
    );
}

// ---------------------------------------------------------------------------

lockstep_testkit::backends!(
    super::with_db;
    concurrent_identical_requests,
    replay_semantics_per_endpoint,
    fingerprint_covers_query_and_preconditions,
    application_store,
);
