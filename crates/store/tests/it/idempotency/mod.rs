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

mod completing;
mod lifecycle;
mod sweep;

use completing::*;
use lifecycle::*;
use sweep::*;

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
