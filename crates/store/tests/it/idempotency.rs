//! Idempotency conformance (SPEC §9, §15 "Idempotency"): the entry lifecycle
//! (`IdemBegin` / `IdemComplete` / `IdemRelease`, takeover after the lock) and
//! `Store::execute_completing`, which writes a request's rendered answer into its
//! entry in the same storage transaction as the command's effect. The same cases
//! run against every backend, like `conformance.rs`; the `backends!` list at the
//! bottom generates `sqlite::case_name` and `postgres::case_name`.
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep-store --test it idempotency:: -- --test-threads=4
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use lockstep_core::idempotency::{Began, Begin, StoredResponse};
use lockstep_core::txn::OpResult;
use lockstep_core::{ChangeKind, Command, Error as CoreError, Outcome, Precondition};
use lockstep_store::clock::Clock;
use lockstep_store::{Committed, Completion, Error, Finish, Location, Store};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Helpers.

/// The scope most cases use (see [`server_shaped_scopes`] for the server's).
const SCOPE: &str = "http|tester|POST /v1/ns/conf/txn";

/// Long enough never to run out during a case.
const LONG_MS: u64 = 3_600_000;

/// A fresh owner token, as the HTTP shell would make one.
fn new_token() -> String {
    format!("tok-{}{}", random_hex(), random_hex())
}

fn begin_cmd(key: &str, fingerprint: &str, token: &str, lock_ms: u64, ttl_ms: u64, app: bool) -> Command {
    Command::IdemBegin {
        scope: SCOPE.to_owned(),
        key: key.to_owned(),
        req: Begin {
            fingerprint: fingerprint.to_owned(),
            token: token.to_owned(),
            lock_ms,
            ttl_ms,
        },
        app,
    }
}

/// Begins `key` with a fresh token (lock and TTL of an hour unless given):
/// `Ok((began, token))` or the semantic refusal.
async fn begin_with(
    s: &Store,
    key: &str,
    fingerprint: &str,
    lock_ms: u64,
    ttl_ms: u64,
) -> Result<(Began, String), CoreError> {
    let token = new_token();
    match s
        .execute(
            NS,
            begin_cmd(key, fingerprint, &token, lock_ms, ttl_ms, false),
            ACTOR,
        )
        .await
    {
        Ok(Committed {
            outcome: Outcome::IdemBegun(b),
            ..
        }) => Ok((b, token)),
        Ok(other) => panic!("begin {key:?}: unexpected outcome {other:?}"),
        Err(Error::Core(e)) => Err(e),
        Err(e) => panic!("begin {key:?}: storage error {e:?}"),
    }
}

async fn begin(s: &Store, key: &str, fingerprint: &str) -> Result<(Began, String), CoreError> {
    begin_with(s, key, fingerprint, LONG_MS, LONG_MS).await
}

/// Begins `key`, which must be new (or takeable): returns the owner token.
#[track_caller]
fn owned(r: Result<(Began, String), CoreError>) -> String {
    match r {
        Ok((Began::Started(e), token)) => {
            assert_eq!(e.token, token, "the started entry carries the caller's token");
            assert!(e.response.is_none(), "a started entry has no response");
            token
        }
        other => panic!("expected to own the key, got {other:?}"),
    }
}

/// The stored response of a replay.
#[track_caller]
fn replayed(r: Result<(Began, String), CoreError>) -> StoredResponse {
    match r {
        Ok((Began::Replay(resp), _)) => resp,
        other => panic!("expected a replay, got {other:?}"),
    }
}

#[track_caller]
fn in_use(r: Result<(Began, String), CoreError>) {
    assert!(
        matches!(r, Err(CoreError::IdempotencyKeyInUse(_))),
        "expected idempotency_key_in_use, got {r:?}"
    );
}

#[track_caller]
fn reused(r: Result<(Began, String), CoreError>) {
    assert!(
        matches!(r, Err(CoreError::IdempotencyKeyReused(_))),
        "expected idempotency_key_reused, got {r:?}"
    );
}

fn response(status: u16, body: Value) -> StoredResponse {
    StoredResponse {
        status,
        content_type: "application/json".into(),
        etag: None,
        body: body.to_string(),
    }
}

fn complete_cmd(key: &str, token: &str, resp: StoredResponse, app: bool) -> Command {
    Command::IdemComplete {
        scope: SCOPE.to_owned(),
        key: key.to_owned(),
        token: token.to_owned(),
        response: resp,
        app,
    }
}

fn release_cmd(key: &str, token: &str, app: bool) -> Command {
    Command::IdemRelease {
        scope: SCOPE.to_owned(),
        key: key.to_owned(),
        token: token.to_owned(),
        app,
    }
}

#[track_caller]
fn lease_lost(e: CoreError) {
    assert!(
        matches!(e, CoreError::LeaseLost(_)),
        "expected lease_lost, got {e:?}"
    );
}

/// The renderer the cases use, like the server's: a successful answer is stored
/// as 200 with the revision and the debug form of the outcome; a semantic
/// refusal is stored as 409 with its message, except `idempotency_key_in_use`,
/// which gives the key up; a storage failure gives it up too. It counts its calls.
fn renderer(calls: Arc<AtomicUsize>) -> lockstep_store::Render {
    Arc::new(move |answer: &Result<Committed, Error>| {
        calls.fetch_add(1, Ordering::SeqCst);
        match answer {
            Ok(c) => Finish::Store(response(
                200,
                json!({"revision": c.revision, "outcome": format!("{:?}", c.outcome)}),
            )),
            Err(Error::Core(CoreError::IdempotencyKeyInUse(_))) => Finish::Release,
            Err(Error::Core(e)) => Finish::Store(response(409, json!({"refused": e.to_string()}))),
            Err(_) => Finish::Release,
        }
    })
}

fn completion(key: &str, token: &str, render: lockstep_store::Render) -> Completion {
    Completion {
        scope: SCOPE.to_owned(),
        key: key.to_owned(),
        token: token.to_owned(),
        begin: None,
        render,
    }
}

fn incr(key: &str) -> Command {
    txn(json!({"success": [{"incr": {"key": key, "by": 1}}]}))
}

/// The integer value of a counter record (0 when absent).
async fn counter(s: &Store, key: &str) -> i64 {
    get(s, key).await.map_or(0, |r| {
        r.value
            .as_i64()
            .unwrap_or_else(|| panic!("{key} is {:?}", r.value))
    })
}

/// The revision of the store now, read through a read-only transaction.
async fn revision_now(s: &Store) -> u64 {
    exec(
        s,
        txn(json!({"success": [{"get": {"key": "revision-probe/nothing"}}]})),
    )
    .await
    .revision
}

/// An idempotent replay answers the current revision (as every answer that
/// wrote nothing does), on every backend alike.
async fn replay_answers_the_current_revision(env: Env) {
    let s = &env.store;
    let keyed = |token: String| Completion {
        begin: Some(Begin {
            fingerprint: "fp-replay".to_owned(),
            token: token.clone(),
            lock_ms: LONG_MS,
            ttl_ms: LONG_MS,
        }),
        ..completion("replay", &token, renderer(Arc::default()))
    };
    let first = ok(s
        .execute_completing(NS, incr("c/replay"), ACTOR, Some(keyed(new_token())))
        .await);
    exec(s, incr("c/other")).await;
    let now = revision_now(s).await;
    assert!(now > first.revision);
    let replay = ok(s
        .execute_completing(NS, incr("c/replay"), ACTOR, Some(keyed(new_token())))
        .await);
    assert!(
        matches!(replay.outcome, Outcome::IdemBegun(Began::Replay(_))),
        "{replay:?}"
    );
    assert_eq!(replay.revision, now, "a replay answers the current revision");
    assert_eq!(counter(s, "c/replay").await, 1, "the replay ran nothing");
}

// ---------------------------------------------------------------------------
// Cases: the entry lifecycle.

/// Begin → in use / reused while started → complete → replay (same fingerprint)
/// or reused (another); a second complete is refused.
async fn begin_complete_replay(env: Env) {
    let s = &env.store;
    let a = owned(begin(s, "k1", "fp-1").await);
    in_use(begin(s, "k1", "fp-1").await);
    reused(begin(s, "k1", "fp-2").await);
    // Another key, and the same key under another scope's namesake, are independent.
    owned(begin(s, "k2", "fp-1").await);

    let resp = response(201, json!({"made": 1}));
    exec(s, complete_cmd("k1", &a, resp.clone(), false)).await;
    assert_eq!(replayed(begin(s, "k1", "fp-1").await), resp);
    assert_eq!(
        replayed(begin(s, "k1", "fp-1").await),
        resp,
        "every replay answers the stored response"
    );
    reused(begin(s, "k1", "fp-2").await);
    // A completed entry is no longer owned: completing or releasing it again is refused.
    lease_lost(refused(s, complete_cmd("k1", &a, response(200, json!({})), false)).await);
    lease_lost(refused(s, release_cmd("k1", &a, false)).await);
    assert_eq!(
        replayed(begin(s, "k1", "fp-1").await),
        resp,
        "refusals change nothing"
    );
    // A stranger cannot complete a started entry.
    lease_lost(refused(s, complete_cmd("k2", "tok-stranger", resp.clone(), false)).await);
    lease_lost(refused(s, complete_cmd("never-begun", &a, resp, false)).await);
}

/// A started entry whose lock ran out is taken over by the next caller; the
/// stale owner can neither complete nor release it any more.
async fn takeover_after_lock_expiry(env: Env) {
    let s = &env.store;
    let stale = owned(begin_with(s, "k", "fp", 600, LONG_MS).await);
    in_use(begin(s, "k", "fp").await);
    // The store's clock (manual) reaches the end of the lock: locked until then.
    env.clock.advance(599);
    in_use(begin(s, "k", "fp").await);
    env.clock.advance(1);
    // A different request is still refused: the fingerprint binds the key.
    reused(begin(s, "k", "fp-other").await);
    let fresh = owned(begin(s, "k", "fp").await);
    assert_ne!(stale, fresh);
    in_use(begin(s, "k", "fp").await);
    lease_lost(refused(s, complete_cmd("k", &stale, response(200, json!("stale")), false)).await);
    lease_lost(refused(s, release_cmd("k", &stale, false)).await);
    let resp = response(200, json!("fresh"));
    exec(s, complete_cmd("k", &fresh, resp.clone(), false)).await;
    assert_eq!(replayed(begin(s, "k", "fp").await), resp);
    // A completed entry is never taken over, however short its lock was.
    let short = owned(begin_with(s, "k3", "fp", 100, LONG_MS).await);
    exec(s, complete_cmd("k3", &short, resp.clone(), false)).await;
    env.clock.advance(200);
    assert_eq!(replayed(begin(s, "k3", "fp").await), resp);
}

/// The owner gives the key up: a retry owns it at once (even with another
/// fingerprint, as the entry is gone); strangers cannot give it up.
async fn release_lets_a_retry_run(env: Env) {
    let s = &env.store;
    let a = owned(begin(s, "k", "fp").await);
    lease_lost(refused(s, release_cmd("k", "tok-stranger", false)).await);
    in_use(begin(s, "k", "fp").await);
    exec(s, release_cmd("k", &a, false)).await;
    lease_lost(refused(s, release_cmd("k", &a, false)).await);
    lease_lost(refused(s, complete_cmd("k", &a, response(200, json!(1)), false)).await);
    let b = owned(begin(s, "k", "fp-2").await);
    let resp = response(200, json!(2));
    exec(s, complete_cmd("k", &b, resp.clone(), false)).await;
    assert_eq!(replayed(begin(s, "k", "fp-2").await), resp);
}

/// Application-store entries (`app: true`) are writes with changes of kind
/// `idempotency`; the HTTP header's entries (`app: false`) write none and
/// consume no revision.
async fn app_entries_write_changes(env: Env) {
    let s = &env.store;
    let before = revision_now(s).await;
    let t = new_token();
    exec(s, begin_cmd("h", "fp", &t, LONG_MS, LONG_MS, false)).await;
    exec(s, complete_cmd("h", &t, response(200, json!(1)), false)).await;
    assert_eq!(
        revision_now(s).await,
        before,
        "header entries are bookkeeping, not revisions"
    );

    let t1 = new_token();
    let c1 = exec(s, begin_cmd("a", "fp", &t1, LONG_MS, LONG_MS, true)).await;
    let c2 = exec(s, complete_cmd("a", &t1, response(200, json!(1)), true)).await;
    let t2 = new_token();
    let c3 = exec(s, begin_cmd("b", "fp", &t2, LONG_MS, LONG_MS, true)).await;
    let c4 = exec(s, release_cmd("b", &t2, true)).await;
    assert!(before < c1.revision && c1.revision < c2.revision && c2.revision < c3.revision);
    assert!(c3.revision < c4.revision);
    let page = s
        .list_changes(NS, before, None, Some("idempotency"), 100)
        .await
        .unwrap();
    let seen: Vec<(u64, String, &str)> = page
        .changes
        .iter()
        .map(|c| {
            assert_eq!(c.kind, ChangeKind::Idempotency);
            assert_eq!(c.actor, ACTOR);
            (c.revision, c.key.clone(), c.op.as_str())
        })
        .collect();
    let scoped = |k: &str| format!("{SCOPE}/{k}");
    assert_eq!(
        seen,
        vec![
            (c1.revision, scoped("a"), "start"),
            (c2.revision, scoped("a"), "complete"),
            (c3.revision, scoped("b"), "start"),
            (c4.revision, scoped("b"), "release"),
        ]
    );
}

/// An entry whose TTL ran out is forgotten: the same key may be used for
/// another request, even before the sweeper removed the row.
async fn expired_entries_are_forgotten(env: Env) {
    let s = &env.store;
    let t = owned(begin_with(s, "k", "fp", LONG_MS, 1_000).await);
    exec(s, complete_cmd("k", &t, response(200, json!("old")), false)).await;
    assert_eq!(replayed(begin(s, "k", "fp").await).body, "\"old\"");
    // The store's clock (manual) reaches the TTL: replayed until then.
    env.clock.advance(999);
    assert_eq!(replayed(begin(s, "k", "fp").await).body, "\"old\"");
    env.clock.advance(1);
    let t2 = owned(begin(s, "k", "fp-new").await);
    assert_ne!(t, t2);
    // A started entry past its TTL is forgotten too, whatever its lock.
    owned(begin_with(s, "started", "fp", LONG_MS, 100).await);
    env.clock.advance(99);
    in_use(begin(s, "started", "fp").await);
    env.clock.advance(1);
    owned(begin(s, "started", "fp-other").await);
}

/// Many callers begin one key at once, from several instances on PostgreSQL:
/// exactly one owns it; the owner's keyed increment applies once; then every
/// caller replays the stored answer.
async fn one_owner_among_concurrent_begins(env: Env) {
    const CALLERS: usize = 40;
    let stores = env.instances(3).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..CALLERS {
        let s = stores[i % stores.len()].clone();
        let barrier = barrier.clone();
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            match begin(&s, "once", "fp").await {
                Ok((Began::Started(_), token)) => {
                    let cp = completion("once", &token, renderer(calls));
                    let c = s.execute_completing(NS, incr("counter"), ACTOR, Some(cp)).await;
                    let c = ok(c);
                    let r = txn_outcome(&c);
                    assert_eq!(r.results.len(), 1);
                    match &r.results[0] {
                        OpResult::Written(rec) => assert_eq!(rec.value, json!(1)),
                        other => panic!("{other:?}"),
                    }
                    "owner"
                }
                Ok((Began::Replay(_), _)) => "replay",
                Err(CoreError::IdempotencyKeyInUse(_)) => "in_use",
                Err(e) => panic!("unexpected refusal {e:?}"),
            }
        }));
    }
    let mut owners = 0;
    for t in tasks {
        if t.await.unwrap() == "owner" {
            owners += 1;
        }
    }
    assert_eq!(owners, 1, "exactly one caller owns the key");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the answer is rendered once");
    assert_eq!(counter(&env.store, "counter").await, 1);
    let first = replayed(begin(&env.store, "once", "fp").await);
    assert_eq!(first.status, 200);
    for s in &stores {
        assert_eq!(replayed(begin(s, "once", "fp").await), first);
    }
    assert_eq!(counter(&env.store, "counter").await, 1);
}

// ---------------------------------------------------------------------------
// Cases: execute_completing.

/// The effect and the stored answer commit together: after the call both are
/// visible, and the stored answer is the rendering of the committed outcome.
async fn completing_commits_effect_and_response(env: Env) {
    let s = &env.store;
    let token = owned(begin(s, "k", "fp").await);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let render: lockstep_store::Render = {
        let seen = seen.clone();
        Arc::new(move |answer: &Result<Committed, Error>| {
            let c = answer.as_ref().unwrap_or_else(|e| panic!("{e:?}"));
            let (record, created) = put_outcome(c);
            let body = json!({"key": record.key, "version": record.version, "created": created});
            seen.lock().unwrap().push(body.to_string());
            Finish::Store(StoredResponse {
                status: 201,
                content_type: "application/json".into(),
                etag: Some(format!("\"{}\"", record.version)),
                body: body.to_string(),
            })
        })
    };
    let c = ok(s
        .execute_completing(
            NS,
            put("rec", json!({"v": 1})),
            ACTOR,
            Some(completion("k", &token, render)),
        )
        .await);
    let (record, created) = put_outcome(&c);
    assert!(created);
    assert_eq!(get_some(s, "rec").await, record);
    let stored = replayed(begin(s, "k", "fp").await);
    assert_eq!(stored.status, 201);
    assert_eq!(stored.etag, Some(format!("\"{}\"", record.version)));
    let rendered = seen.lock().unwrap().clone();
    assert_eq!(
        rendered,
        vec![stored.body.clone()],
        "rendered once, and that is what is stored"
    );
    let body: Value = serde_json::from_str(&stored.body).unwrap();
    assert_eq!(
        body,
        json!({"key": "rec", "version": record.version, "created": true})
    );
    // The same on another handle (a restarted process on SQLite, another
    // instance on PostgreSQL): both survived together.
    let env = env.reopen().await;
    let s = &env.store;
    assert_eq!(get_some(s, "rec").await, record);
    assert_eq!(replayed(begin(s, "k", "fp").await), stored);
    // The completed key is not owned any more: a second keyed run is refused
    // and applies nothing.
    let calls = Arc::new(AtomicUsize::new(0));
    let again = s
        .execute_completing(
            NS,
            put("rec", json!({"v": 2})),
            ACTOR,
            Some(completion("k", &token, renderer(calls.clone()))),
        )
        .await;
    assert!(
        matches!(again, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "{again:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a refused owner renders nothing");
    assert_eq!(get_some(s, "rec").await, record, "nothing applied");
    assert_eq!(replayed(begin(s, "k", "fp").await), stored, "nothing changed");
}

/// Recognizes the expected refusal.
type IsRefusal = fn(&CoreError) -> bool;

/// A refused command (version mismatch, not found, invalid patch) stores the
/// refusal with the key and applies nothing; the refusal is answered.
async fn completing_refusal_stores_it_and_applies_nothing(env: Env) {
    let s = &env.store;
    let (existing, _) = put_outcome(&exec(s, put("rec", json!("v1"))).await);
    exec(s, put("text", json!("not a number"))).await;
    let before = revision_now(s).await;
    let cases: Vec<(&str, Command, IsRefusal)> = vec![
        (
            "vm",
            put_if(
                "rec",
                json!("v2"),
                Precondition::ExpectedVersion(existing.version + 1_000),
            ),
            |e| matches!(e, CoreError::VersionMismatch { .. }),
        ),
        ("nf", delete("absent", Precondition::None), |e| {
            matches!(e, CoreError::NotFound(_))
        }),
        (
            "ip",
            txn(json!({"success": [
                {"put": {"key": "side", "value": 1}},
                {"incr": {"key": "text", "by": 1}}]})),
            |e| matches!(e, CoreError::InvalidPatch(_)),
        ),
    ];
    for (key, cmd, expected) in cases {
        let token = owned(begin(s, key, "fp").await);
        let calls = Arc::new(AtomicUsize::new(0));
        let r = s
            .execute_completing(
                NS,
                cmd,
                ACTOR,
                Some(completion(key, &token, renderer(calls.clone()))),
            )
            .await;
        match &r {
            Err(Error::Core(e)) if expected(e) => {}
            other => panic!("{key}: expected the refusal, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{key}: the refusal is rendered");
        let stored = replayed(begin(s, key, "fp").await);
        assert_eq!(stored.status, 409, "{key}");
        let Err(Error::Core(e)) = r else { unreachable!() };
        assert_eq!(
            serde_json::from_str::<Value>(&stored.body).unwrap(),
            json!({"refused": e.to_string()}),
            "{key}: the stored answer is the refusal"
        );
    }
    assert_eq!(get_some(s, "rec").await, existing, "nothing applied");
    assert_eq!(
        get(s, "side").await,
        None,
        "a refused transaction applies nothing"
    );
    assert_eq!(get_some(s, "text").await.value, json!("not a number"));
    assert_eq!(revision_now(s).await, before, "refusals consume no revision");
}

/// A request whose key was taken over (its lock ran out) must not apply its
/// command: the answer is `idempotency_key_in_use` and the new owner's run
/// applies exactly once.
async fn stale_owner_applies_nothing(env: Env) {
    let s = &env.store;
    let stale = owned(begin_with(s, "k", "fp", 150, LONG_MS).await);
    env.clock.advance(150);
    let fresh = owned(begin(s, "k", "fp").await);
    let calls = Arc::new(AtomicUsize::new(0));
    let r = s
        .execute_completing(
            NS,
            incr("c"),
            ACTOR,
            Some(completion("k", &stale, renderer(calls.clone()))),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "the stale owner is refused with in_use, got {r:?}"
    );
    assert_eq!(
        counter(s, "c").await,
        0,
        "the stale owner's command was not applied"
    );
    in_use(begin(s, "k", "fp").await);
    // The stale owner's refusal did not give the new owner's key up.
    ok(s.execute_completing(
        NS,
        incr("c"),
        ACTOR,
        Some(completion("k", &fresh, renderer(calls.clone()))),
    )
    .await);
    assert_eq!(counter(s, "c").await, 1);
    let stored = replayed(begin(s, "k", "fp").await);
    assert_eq!(stored.status, 200);
    // And after completion the stale owner is still refused.
    let r = s
        .execute_completing(
            NS,
            incr("c"),
            ACTOR,
            Some(completion("k", &stale, renderer(calls))),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "{r:?}"
    );
    assert_eq!(counter(s, "c").await, 1);
    assert_eq!(replayed(begin(s, "k", "fp").await), stored);
}

/// `Finish::Release` gives the key up with the command (a retry owns it at
/// once); `Finish::Keep` leaves it started (an intermediate step).
async fn completing_release_and_keep(env: Env) {
    let s = &env.store;
    let release: lockstep_store::Render = Arc::new(|_: &Result<Committed, Error>| Finish::Release);
    let keep: lockstep_store::Render = Arc::new(|_: &Result<Committed, Error>| Finish::Keep);

    let t = owned(begin(s, "rel", "fp").await);
    ok(
        s.execute_completing(NS, incr("c"), ACTOR, Some(completion("rel", &t, release.clone())))
            .await,
    );
    assert_eq!(counter(s, "c").await, 1, "the command applied");
    let t2 = owned(begin(s, "rel", "fp").await);
    assert_ne!(t, t2);

    let t = owned(begin(s, "keep", "fp").await);
    ok(
        s.execute_completing(NS, incr("c"), ACTOR, Some(completion("keep", &t, keep)))
            .await,
    );
    assert_eq!(counter(s, "c").await, 2);
    in_use(begin(s, "keep", "fp").await);
    // The owner still owns it and may finish later.
    let calls = Arc::new(AtomicUsize::new(0));
    ok(s.execute_completing(
        NS,
        incr("c"),
        ACTOR,
        Some(completion("keep", &t, renderer(calls))),
    )
    .await);
    assert_eq!(counter(s, "c").await, 3);
    assert_eq!(replayed(begin(s, "keep", "fp").await).status, 200);

    // A refusal with Release: nothing applied, the key is free again.
    let t = owned(begin(s, "relref", "fp").await);
    let r = s
        .execute_completing(
            NS,
            delete("absent", Precondition::None),
            ACTOR,
            Some(completion("relref", &t, release)),
        )
        .await;
    assert!(matches!(r, Err(Error::Core(CoreError::NotFound(_)))), "{r:?}");
    owned(begin(s, "relref", "fp").await);
}

/// A completion for a key that was never begun (or was given up) applies
/// nothing: the request does not own it.
async fn completing_without_owning_applies_nothing(env: Env) {
    let s = &env.store;
    let calls = Arc::new(AtomicUsize::new(0));
    let r = s
        .execute_completing(
            NS,
            incr("c"),
            ACTOR,
            Some(completion("never", &new_token(), renderer(calls.clone()))),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "{r:?}"
    );
    let t = owned(begin(s, "gone", "fp").await);
    exec(s, release_cmd("gone", &t, false)).await;
    let r = s
        .execute_completing(
            NS,
            incr("c"),
            ACTOR,
            Some(completion("gone", &t, renderer(calls.clone()))),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "{r:?}"
    );
    assert_eq!(counter(s, "c").await, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    owned(begin(s, "never", "fp").await);
    owned(begin(s, "gone", "fp").await);
}

/// Keyed increments from many concurrent callers, each key used by several
/// callers at once and retried on in_use: every key applies exactly once.
async fn keyed_increments_apply_once_under_contention(env: Env) {
    const KEYS: usize = 12;
    const CALLERS_PER_KEY: usize = 4;
    let stores = env.instances(3).await;
    let mut tasks = Vec::new();
    for k in 0..KEYS {
        for c in 0..CALLERS_PER_KEY {
            let s = stores[(k + c) % stores.len()].clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("key-{k}");
                let counter_key = format!("c/{k}");
                for _ in 0..500 {
                    match begin(&s, &key, "fp").await {
                        Ok((Began::Started(_), token)) => {
                            let cp = completion(&key, &token, renderer(Arc::default()));
                            ok(s.execute_completing(NS, incr(&counter_key), ACTOR, Some(cp))
                                .await);
                            return;
                        }
                        Ok((Began::Replay(r), _)) => {
                            assert_eq!(r.status, 200);
                            return;
                        }
                        Err(CoreError::IdempotencyKeyInUse(_)) => {
                            // Backs off while another caller owns the key
                            // (pacing only: owners complete, no lock runs out).
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
                panic!("{key}: still in use after 500 retries");
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    for k in 0..KEYS {
        assert_eq!(counter(&env.store, &format!("c/{k}")).await, 1, "key {k}");
    }
}

/// Scopes as the server builds them: `http\u{1f}{caller}\u{1f}{method} {path}`
/// for the `Idempotency-Key` header (`app: false`, completed with the command)
/// and the caller's own scope for the application store (`app: true`, kept apart
/// by the core). Every backend stores them, and an application entry never
/// collides with a header entry of the same scope text and key.
async fn server_shaped_scopes(env: Env) {
    let s = &env.store;
    let scope = "http\u{1f}tester\u{1f}POST /v1/ns/conf/txn";
    let begin_in = |app: bool, fingerprint: &str| {
        let token = new_token();
        let cmd = Command::IdemBegin {
            scope: scope.to_owned(),
            key: "k".to_owned(),
            req: Begin {
                fingerprint: fingerprint.to_owned(),
                token: token.clone(),
                lock_ms: LONG_MS,
                ttl_ms: LONG_MS,
            },
            app,
        };
        async move {
            match s.execute(NS, cmd, ACTOR).await {
                Ok(Committed {
                    outcome: Outcome::IdemBegun(b),
                    ..
                }) => Ok((b, token)),
                Ok(other) => panic!("unexpected outcome {other:?}"),
                Err(Error::Core(e)) => Err(e),
                Err(e) => panic!("IdemBegin with the scope {scope:?} (app: {app}): storage error {e:?}"),
            }
        }
    };
    // The header's entry, completed with its command.
    let token = owned(begin_in(false, "fp-http").await);
    let cp = Completion {
        scope: scope.to_owned(),
        key: "k".to_owned(),
        token,
        begin: None,
        render: renderer(Arc::default()),
    };
    ok(s.execute_completing(NS, incr("c/http"), ACTOR, Some(cp)).await);
    let http_answer = replayed(begin_in(false, "fp-http").await);
    assert_eq!(counter(s, "c/http").await, 1);
    // The application store's entry of the same scope text and key is another
    // entry: another fingerprint starts it instead of being refused as reused.
    let app_token = owned(begin_in(true, "fp-app").await);
    in_use(begin_in(true, "fp-app").await);
    let app_answer = response(200, json!({"app": true}));
    let cmd = Command::IdemComplete {
        scope: scope.to_owned(),
        key: "k".to_owned(),
        token: app_token,
        response: app_answer.clone(),
        app: true,
    };
    exec(s, cmd).await;
    assert_eq!(replayed(begin_in(true, "fp-app").await), app_answer);
    assert_eq!(replayed(begin_in(false, "fp-http").await), http_answer);
    reused(begin_in(false, "fp-app").await);
    reused(begin_in(true, "fp-http").await);
}

// ---------------------------------------------------------------------------
// The sweeper: reads the raw rows of the case's database.

/// Counts the stored idempotency rows of a database.
enum Raw {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Raw {
    async fn rows(&self) -> i64 {
        match self {
            Raw::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.query_row("SELECT count(*) FROM idempotency WHERE ns = ?1", [NS], |r| {
                    r.get(0)
                })
                .unwrap()
            }
            Raw::Postgres(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                let driver = tokio::spawn(conn);
                let n: i64 = client
                    .query_one("SELECT count(*) FROM idempotency WHERE ns = $1", &[&NS])
                    .await
                    .unwrap()
                    .get(0);
                drop(client);
                let _ = driver.await;
                n
            }
        }
    }
}

/// The sweeper deletes entries whose TTL ran out (started or completed) and
/// keeps the others.
async fn sweep_case(store: Store, clock: Clock, raw: Raw) {
    let s = &store;
    let t = owned(begin_with(s, "done", "fp", LONG_MS, 1_000).await);
    exec(s, complete_cmd("done", &t, response(200, json!(1)), false)).await;
    owned(begin_with(s, "started", "fp", LONG_MS, 1_000).await);
    let t = owned(begin(s, "kept", "fp").await);
    exec(s, complete_cmd("kept", &t, response(200, json!("kept")), false)).await;
    owned(begin(s, "kept-started", "fp").await);
    assert_eq!(raw.rows().await, 4);
    assert_eq!(store.sweep_expired(500).await.unwrap(), 0, "nothing expired yet");
    clock.advance(1_000);
    assert_eq!(raw.rows().await, 4, "expired rows stay until swept");
    store.sweep_expired(500).await.unwrap();
    assert_eq!(
        raw.rows().await,
        2,
        "the sweeper forgets the expired entries, only them"
    );
    assert_eq!(replayed(begin(s, "kept", "fp").await).body, "\"kept\"");
    in_use(begin(s, "kept-started", "fp").await);
    owned(begin(s, "done", "fp-other").await);
    owned(begin(s, "started", "fp-other").await);
    store.sweep_expired(500).await.unwrap();
    assert_eq!(raw.rows().await, 4, "nothing else expired");
}

/// [`sweep_case`] on the store of `env`, reading its rows directly.
async fn sweep_forgets_expired_entries(env: Env) {
    let raw = match env.location() {
        Location::Sqlite(path) => Raw::Sqlite(path),
        Location::Postgres(url) => Raw::Postgres(url),
    };
    sweep_case(env.store, env.clock, raw).await;
}

// ---------------------------------------------------------------------------

lockstep_testkit::backends!(
    crate::common::run;
    begin_complete_replay,
    release_lets_a_retry_run,
    app_entries_write_changes,
    one_owner_among_concurrent_begins,
    completing_commits_effect_and_response,
    completing_refusal_stores_it_and_applies_nothing,
    completing_release_and_keep,
    completing_without_owning_applies_nothing,
    keyed_increments_apply_once_under_contention,
    server_shaped_scopes,
    replay_answers_the_current_revision,
);

// The cases where a lock or a TTL runs out: the store's clock is moved, not
// slept on.
lockstep_testkit::backends!(
    manual_clock => crate::common::run_manual;
    takeover_after_lock_expiry,
    expired_entries_are_forgotten,
    stale_owner_applies_nothing,
    sweep_forgets_expired_entries,
);
