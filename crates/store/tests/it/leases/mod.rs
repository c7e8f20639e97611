//! Lease conformance (SPEC §5 lease and fence compares, §6, §15 "Leases"): the
//! same cases run against every backend of `lockstep_store::Store`, like
//! `conformance.rs`. Each case is an `async fn case_name(env: Env)`; the `backends!`
//! list at the bottom generates `sqlite::case_name` and `postgres::case_name`.
//!
//! The story behind the first case (seeds/003): a cron run and a user refresh
//! share one in-flight marker; the cron run's late "clear" must not wipe the
//! marker the refresh set after the cron run's own had lapsed.
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep-store --test it leases:: -- --test-threads=4
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use lockstep_core::lease::{AcquireReq, Lease};
use lockstep_core::txn::OpResult;
use lockstep_core::{Command, Error as CoreError, Millis, Outcome};
use lockstep_store::{Committed, Error, Store};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod exclusion;
mod fencing;
mod lifecycle;
mod waiters;

use exclusion::*;
use fencing::*;
use lifecycle::*;
use waiters::*;

// ---------------------------------------------------------------------------
// Helpers.

/// A fresh owner token, as the HTTP shell would make one.
fn new_token() -> String {
    format!("tok-{}{}", random_hex(), random_hex())
}

fn acquire_cmd(
    name: &str,
    ttl_ms: u64,
    holder: Option<&str>,
    token: &str,
    wait: Option<Option<u64>>,
) -> Command {
    Command::Acquire {
        name: name.to_owned(),
        req: AcquireReq {
            ttl_ms,
            holder: holder.map(str::to_owned),
            token: token.to_owned(),
            wait,
        },
    }
}

fn release_cmd(name: &str, token: &str) -> Command {
    Command::Release {
        name: name.to_owned(),
        token: token.to_owned(),
    }
}

fn renew_cmd(name: &str, token: &str, ttl_ms: u64) -> Command {
    Command::Renew {
        name: name.to_owned(),
        token: token.to_owned(),
        ttl_ms,
    }
}

/// The lease of an acquire/renew answer.
#[track_caller]
fn lease_outcome(c: &Committed) -> Lease {
    match &c.outcome {
        Outcome::Lease(l) => l.clone(),
        other => panic!("expected a lease, got {other:?}"),
    }
}

/// Acquires `name` without waiting; it must be granted. Checks the answer: the
/// token, holder and TTL asked for, and fence == the revision of the acquisition.
async fn acquire(s: &Store, name: &str, ttl_ms: u64, holder: Option<&str>) -> Lease {
    let token = new_token();
    let c = exec(s, acquire_cmd(name, ttl_ms, holder, &token, None)).await;
    let l = lease_outcome(&c);
    assert_eq!(l.name, name);
    assert_eq!(l.token.as_deref(), Some(token.as_str()));
    assert_eq!(l.holder.as_deref(), holder);
    assert_eq!(
        l.fence, c.revision,
        "the fence is the revision of the acquisition"
    );
    assert_eq!(l.expires_at, l.acquired_at.plus_ms(ttl_ms));
    l
}

fn token_of(l: &Lease) -> &str {
    l.token.as_deref().unwrap()
}

/// Releases; answers `released`.
async fn release(s: &Store, name: &str, token: &str) -> bool {
    match exec(s, release_cmd(name, token)).await.outcome {
        Outcome::Released { released } => released,
        other => panic!("expected a release answer, got {other:?}"),
    }
}

/// The stored lease row and the storage clock.
async fn lease_row(s: &Store, name: &str) -> (Option<Lease>, Millis) {
    s.get_lease(NS, name)
        .await
        .unwrap_or_else(|e| panic!("get_lease {name:?} failed: {e:?}"))
}

/// The live token of `name` now, if any.
async fn live_token(s: &Store, name: &str) -> Option<String> {
    let (l, now) = lease_row(s, name).await;
    l.and_then(|l| l.live_token(now).map(str::to_owned))
}

/// Moves the store's manual clock to the expiry of `name`'s holder: live a
/// millisecond before, lapsed at its expiry (no sleep, no guessing how long
/// the storage clock takes).
async fn lapse(env: &Env, name: &str) {
    let (row, now) = lease_row(&env.store, name).await;
    let row = row.unwrap_or_else(|| panic!("the lease {name:?} has no row"));
    let token = row.live_token(now).map(str::to_owned);
    assert!(token.is_some(), "the lease {name:?} is not held");
    env.clock.set(Millis(row.expires_at.0 - 1));
    assert_eq!(live_token(&env.store, name).await, token, "held until its expiry");
    env.clock.set(row.expires_at);
    assert_eq!(live_token(&env.store, name).await, None, "lapsed at its expiry");
}

/// Executes a transaction parsed from JSON; it must run (succeed or fail).
async fn run_txn(s: &Store, body: Value) -> (lockstep_core::txn::TxnResult, u64) {
    let c = exec(s, txn(body)).await;
    (txn_outcome(&c), c.revision)
}

/// A fenced write as a lease holder makes it: `{lease, token}` then
/// `{fence: {resource, token: fence}}`, then `put key = value`.
fn fenced_put(lease: &str, token: &str, resource: &str, fence: u64, key: &str, value: Value) -> Value {
    json!({
        "compare": [
            {"lease": lease, "token": token},
            {"fence": {"resource": resource, "token": fence}},
        ],
        "success": [{"put": {"key": key, "value": value}}],
    })
}

// ---------------------------------------------------------------------------

lockstep_testkit::backends!(
    crate::common::run;
    held_break_and_get,
    mutual_exclusion_under_load,
    waiters,
    bad_input,
);

// The cases where a lease lapses: the store's clock is moved, not slept on.
lockstep_testkit::backends!(
    manual_clock => crate::common::run_manual;
    seed_003_late_release,
    renew_and_foreign_tokens,
    fencing_in_txn,
    sweep_frees_expired,
);
