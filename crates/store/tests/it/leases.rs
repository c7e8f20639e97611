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
// 1. seeds/003: the cron run's lease lapses, the refresh acquires, the cron
//    run's late release clears nothing; fences strictly increase.

async fn seed_003_late_release(env: Env) {
    let s = &env.store;
    let name = "collection/in-flight";
    // Cron run: a short TTL, and it stalls past it.
    let a = acquire(s, name, 150, Some("cron")).await;
    assert_eq!(live_token(s, name).await.as_deref(), Some(token_of(&a)));
    lapse(&env, name).await;
    // Lapsed, even before anyone else acquires: the cron run's token neither
    // renews nor releases it (it no longer holds it), and nothing changes.
    let (lapsed, _) = lease_row(s, name).await;
    let e = refused(s, renew_cmd(name, token_of(&a), 60_000)).await;
    assert!(matches!(e, CoreError::LeaseLost(_)), "{e:?}");
    let c = exec(s, release_cmd(name, token_of(&a))).await;
    assert_eq!(c.outcome, Outcome::Released { released: false });
    assert_eq!(lease_row(s, name).await.0, lapsed);

    // User refresh: acquires the lapsed marker, with a larger fence.
    let b = acquire(s, name, 30_000, Some("refresh")).await;
    assert!(b.fence > a.fence, "fences strictly increase across holders");
    assert_ne!(a.token, b.token, "every acquisition gets a fresh token");
    let (row_before, _) = lease_row(s, name).await;

    // The cron run's deferred clear: compare-and-clear finds another owner.
    let c = exec(s, release_cmd(name, token_of(&a))).await;
    assert_eq!(c.outcome, Outcome::Released { released: false });
    // Nor may the cron run extend the refresh's lease.
    let e = refused(s, renew_cmd(name, token_of(&a), 60_000)).await;
    assert!(matches!(e, CoreError::LeaseLost(_)), "{e:?}");

    // The refresh still holds it, unchanged.
    let (row, now) = lease_row(s, name).await;
    assert_eq!(row, row_before, "a stale release changes nothing");
    let row = row.unwrap();
    assert_eq!(row.live_token(now), Some(token_of(&b)));
    assert_eq!(row.holder.as_deref(), Some("refresh"));
    assert_eq!(row.fence, b.fence);

    // The refresh finishes: its own release clears it.
    assert!(release(s, name, token_of(&b)).await);
    let (row, now) = lease_row(s, name).await;
    let row = row.unwrap();
    assert_eq!(row.live_token(now), None, "released: nobody holds it");
    assert_eq!(row.fence, b.fence, "a free lease keeps its last fence");
    assert!(
        !release(s, name, token_of(&b)).await,
        "a second release is a no-op"
    );

    // The next cron run acquires it again, with a still larger fence.
    let c = acquire(s, name, 1_000, Some("cron")).await;
    assert!(c.fence > b.fence);
    assert!(release(s, name, token_of(&c)).await);
}

// ---------------------------------------------------------------------------
// 2. Renew by the holder extends; foreign tokens neither renew nor release.

async fn renew_and_foreign_tokens(env: Env) {
    let s = &env.store;
    let x = acquire(s, "x", 300, Some("x-holder")).await;
    let y = acquire(s, "y", 30_000, Some("y-holder")).await;

    // The holder renews: a later expiry, same token, fence and holder.
    let c = exec(s, renew_cmd("x", token_of(&x), 60_000)).await;
    let renewed = lease_outcome(&c);
    assert!(renewed.expires_at > x.expires_at, "{renewed:?} vs {x:?}");
    assert_eq!(
        (
            &renewed.token,
            &renewed.holder,
            renewed.fence,
            renewed.acquired_at
        ),
        (&x.token, &x.holder, x.fence, x.acquired_at),
        "renewing keeps the token, holder, fence and acquisition time"
    );
    assert!(c.revision > x.fence, "a renewal is a write");
    let (row, _) = lease_row(s, "x").await;
    assert_eq!(row.as_ref(), Some(&renewed), "the renewal is stored");

    // Past the original TTL the renewed lease is still held.
    env.clock.advance(400);
    assert_eq!(live_token(s, "x").await.as_deref(), Some(token_of(&x)));
    let e = refused(s, acquire_cmd("x", 1_000, None, &new_token(), None)).await;
    assert!(matches!(e, CoreError::LeaseHeld { .. }), "{e:?}");

    // Foreign tokens: random, and the other lease's.
    let (before, _) = lease_row(s, "x").await;
    for foreign in [new_token(), token_of(&y).to_owned(), "x".to_owned()] {
        let e = refused(s, renew_cmd("x", &foreign, 60_000)).await;
        assert!(
            matches!(e, CoreError::LeaseLost(_)),
            "renew with {foreign:?}: {e:?}"
        );
        assert!(!release(s, "x", &foreign).await, "release with {foreign:?}");
    }
    let (after, _) = lease_row(s, "x").await;
    assert_eq!(after, before, "foreign tokens change nothing");
    assert_eq!(live_token(s, "y").await.as_deref(), Some(token_of(&y)));

    // A name that was never held: nothing to renew or release.
    let e = refused(s, renew_cmd("never", token_of(&x), 1_000)).await;
    assert!(matches!(e, CoreError::LeaseLost(_)), "{e:?}");
    assert!(!release(s, "never", token_of(&x)).await);
    assert_eq!(lease_row(s, "never").await.0, None);

    // After its release, the former holder's token renews nothing either.
    assert!(release(s, "x", token_of(&x)).await);
    let e = refused(s, renew_cmd("x", token_of(&x), 1_000)).await;
    assert!(matches!(e, CoreError::LeaseLost(_)), "{e:?}");
    assert!(release(s, "y", token_of(&y)).await);
}

// ---------------------------------------------------------------------------
// 3. Held → LeaseHeld with the holder; break; GET of free and never-held names.

async fn held_break_and_get(env: Env) {
    let s = &env.store;
    assert_eq!(
        lease_row(s, "never").await.0,
        None,
        "a never-held name has no row"
    );

    let a = acquire(s, "h", 30_000, Some("owner")).await;
    let e = refused(s, acquire_cmd("h", 1_000, Some("other"), &new_token(), None)).await;
    assert_eq!(
        e,
        CoreError::LeaseHeld {
            holder: Some("owner".into()),
            expires_at: Some(a.expires_at),
            waiters: 0,
        }
    );
    let (row, _) = lease_row(s, "h").await;
    assert_eq!(row.as_ref(), Some(&a), "a refused acquire changes nothing");

    // An admin breaks it; breaking a free lease breaks nothing.
    let c = exec(s, Command::Break { name: "h".into() }).await;
    assert_eq!(c.outcome, Outcome::Broken { broken: true });
    assert!(c.revision > a.fence, "a break is a write");
    let c = exec(s, Command::Break { name: "h".into() }).await;
    assert_eq!(c.outcome, Outcome::Broken { broken: false });
    let (row, now) = lease_row(s, "h").await;
    let row = row.unwrap();
    assert_eq!(row.live_token(now), None);
    assert_eq!(row.fence, a.fence);
    assert!(
        !release(s, "h", token_of(&a)).await,
        "the broken holder's release clears nothing"
    );
    let e = refused(s, renew_cmd("h", token_of(&a), 1_000)).await;
    assert!(matches!(e, CoreError::LeaseLost(_)), "{e:?}");

    // Free again: the next acquire gets it, with a larger fence.
    let b = acquire(s, "h", 30_000, None).await;
    assert!(b.fence > a.fence);
    assert_eq!(b.holder, None);
    assert!(release(s, "h", token_of(&b)).await);
    let (row, now) = lease_row(s, "h").await;
    let row = row.unwrap();
    assert_eq!(
        (row.live_token(now), row.fence),
        (None, b.fence),
        "after release: free, with the last fence"
    );
    let c = exec(s, Command::Break { name: "never".into() }).await;
    assert_eq!(c.outcome, Outcome::Broken { broken: false });
}

// ---------------------------------------------------------------------------
// 4. Fencing in transactions: the lease compare and the fence compare.

async fn fencing_in_txn(env: Env) {
    let s = &env.store;
    let a = acquire(s, "job", 200, Some("a")).await;
    let ta = token_of(&a).to_owned();

    // The holder's lease compare holds.
    let (r, _) = run_txn(
        s,
        json!({
            "compare": [{"lease": "job", "token": ta}],
            "success": [{"put": {"key": "data", "value": "a1"}}],
            "failure": [{"get": {"key": "data"}}],
        }),
    )
    .await;
    assert!(r.succeeded && r.failed.is_empty(), "{r:?}");
    // Another token's does not.
    let (r, _) = run_txn(
        s,
        json!({"compare": [{"lease": "job", "token": new_token()}], "success": [{"put": {"key": "data", "value": "x"}}]}),
    )
    .await;
    assert_eq!((r.succeeded, r.failed), (false, vec![0]));
    // A fenced write by the holder.
    let (r, _) = run_txn(s, fenced_put("job", &ta, "db", a.fence, "data", json!("a2"))).await;
    assert!(r.succeeded, "{r:?}");
    assert_eq!(get_some(s, "data").await.value, json!("a2"));

    // A stalls past its TTL; B acquires.
    lapse(&env, "job").await;
    let (r, _) = run_txn(
        s,
        json!({"compare": [{"lease": "job", "token": ta}], "success": [{"put": {"key": "data", "value": "late"}}]}),
    )
    .await;
    assert_eq!(
        (r.succeeded, r.failed.clone()),
        (false, vec![0]),
        "a lapsed token fails its lease compare even before anyone else acquires"
    );
    let b = acquire(s, "job", 30_000, Some("b")).await;
    let tb = token_of(&b).to_owned();
    assert!(b.fence > a.fence);

    // A's lease-fenced write fails on its lease compare; the failure branch runs.
    let (r, _) = run_txn(
        s,
        json!({
            "compare": [{"lease": "job", "token": ta}],
            "success": [{"put": {"key": "data", "value": "late"}}],
            "failure": [{"get": {"key": "data"}}],
        }),
    )
    .await;
    assert_eq!((r.succeeded, r.failed.clone()), (false, vec![0]));
    assert!(
        matches!(&r.results[..], [OpResult::Get(Some(rec))] if rec.value == json!("a2")),
        "{r:?}"
    );
    // With both compares only the lease one fails: A's fence is still the highest
    // recorded for "db" (B has not written yet).
    let (r, _) = run_txn(s, fenced_put("job", &ta, "db", a.fence, "data", json!("late"))).await;
    assert_eq!((r.succeeded, r.failed), (false, vec![0]));
    assert_eq!(get_some(s, "data").await.value, json!("a2"));

    // B writes, presenting its larger fence, twice (equal fences hold), then releases.
    for v in ["b1", "b2"] {
        let (r, _) = run_txn(s, fenced_put("job", &tb, "db", b.fence, "data", json!(v))).await;
        assert!(r.succeeded, "{r:?}");
    }
    assert!(release(s, "job", &tb).await);

    // Nobody holds the lease now, yet A's fence is below the recorded one: the
    // storage-side check still rejects the paused ex-holder.
    let (r, _) = run_txn(
        s,
        json!({
            "compare": [{"fence": {"resource": "db", "token": a.fence}}],
            "success": [{"put": {"key": "data", "value": "late"}}],
        }),
    )
    .await;
    assert_eq!((r.succeeded, r.failed), (false, vec![0]));
    assert_eq!(get_some(s, "data").await.value, json!("b2"));
    // B's fence (the recorded one) still holds.
    let (r, _) = run_txn(
        s,
        json!({"compare": [{"fence": {"resource": "db", "token": b.fence}}], "success": [{"get": {"key": "data"}}]}),
    )
    .await;
    assert!(r.succeeded, "{r:?}");

    // The recorded fence moves only when the success branch applies.
    let (r, _) = run_txn(
        s,
        json!({
            "compare": [{"fence": {"resource": "db2", "token": 100}}, {"key": "absent", "exists": true}],
            "success": [{"put": {"key": "d2", "value": 100}}],
            "failure": [{"put": {"key": "d2", "value": "failure branch"}}],
        }),
    )
    .await;
    assert_eq!((r.succeeded, r.failed), (false, vec![1]));
    assert_eq!(get_some(s, "d2").await.value, json!("failure branch"));
    let (r, _) = run_txn(
        s,
        json!({"compare": [{"fence": {"resource": "db2", "token": 50}}], "success": [{"put": {"key": "d2", "value": 50}}]}),
    )
    .await;
    assert!(
        r.succeeded,
        "fence 100 was not recorded by a failed transaction: {r:?}"
    );
    let (r, _) = run_txn(
        s,
        json!({"compare": [{"fence": {"resource": "db2", "token": 49}}], "success": [{"put": {"key": "d2", "value": 49}}]}),
    )
    .await;
    assert_eq!((r.succeeded, r.failed), (false, vec![0]), "fence 50 was recorded");
    // A fence per resource: "db3" has none recorded, any fence holds.
    let (r, _) = run_txn(
        s,
        json!({"compare": [{"fence": {"resource": "db3", "token": 0}}], "success": []}),
    )
    .await;
    assert!(r.succeeded, "{r:?}");
    assert_eq!(get_some(s, "d2").await.value, json!(50));
}

// ---------------------------------------------------------------------------
// 5. Mutual exclusion under load: 16 tasks over 3 store instances.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// Logged after the acquisition committed.
    Acquired(u64),
    /// Logged before the release is sent.
    Releasing(u64),
}

#[derive(Debug, Clone)]
struct Hold {
    fence: u64,
    acquired_at: Millis,
    expires_at: Millis,
    /// The revision of the release when it cleared the lease; `None` when the
    /// release found the lease lost (expired).
    released_at_revision: Option<u64>,
}

#[derive(Debug, Clone)]
struct FencedWrite {
    revision: u64,
    fence: u64,
    seen_last: Option<u64>,
}

async fn mutual_exclusion_under_load(env: Env) {
    const TASKS: usize = 16;
    const NAME: &str = "mx";
    let stores = env.instances(3).await;
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let holds = Arc::new(Mutex::new(Vec::<Hold>::new()));
    let writes = Arc::new(Mutex::new(Vec::<FencedWrite>::new()));
    let lost_writes = Arc::new(Mutex::new(0usize));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let s = stores[i % stores.len()].clone();
        let (events, holds, writes, lost_writes) =
            (events.clone(), holds.clone(), writes.clone(), lost_writes.clone());
        tasks.push(tokio::spawn(async move {
            let holder = format!("task-{i}");
            while Instant::now() < deadline {
                let token = new_token();
                let c = match s
                    .execute(NS, acquire_cmd(NAME, 2_000, Some(&holder), &token, None), ACTOR)
                    .await
                {
                    Ok(c) => c,
                    Err(Error::Core(CoreError::LeaseHeld { .. })) => {
                        // Backs off under contention (pacing only: holders
                        // release, no TTL is waited for).
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    Err(e) => panic!("acquire failed: {e:?}"),
                };
                let l = lease_outcome(&c);
                assert_eq!(l.fence, c.revision);
                events.lock().unwrap().push(Event::Acquired(l.fence));
                let body = json!({
                    "compare": [
                        {"lease": NAME, "token": token},
                        {"fence": {"resource": "r", "token": l.fence}},
                    ],
                    "success": [
                        {"get": {"key": "last"}},
                        {"put": {"key": "last", "value": l.fence}},
                    ],
                });
                let tc = s.execute(NS, txn(body), ACTOR).await.unwrap();
                let r = txn_outcome(&tc);
                if r.succeeded {
                    let seen_last = match &r.results[0] {
                        OpResult::Get(rec) => rec.as_ref().map(|rec| rec.value.as_u64().unwrap()),
                        other => panic!("{other:?}"),
                    };
                    writes.lock().unwrap().push(FencedWrite {
                        revision: tc.revision,
                        fence: l.fence,
                        seen_last,
                    });
                } else {
                    *lost_writes.lock().unwrap() += 1;
                }
                events.lock().unwrap().push(Event::Releasing(l.fence));
                let rc = s.execute(NS, release_cmd(NAME, &token), ACTOR).await.unwrap();
                let released = match rc.outcome {
                    Outcome::Released { released } => released,
                    other => panic!("{other:?}"),
                };
                holds.lock().unwrap().push(Hold {
                    fence: l.fence,
                    acquired_at: l.acquired_at,
                    expires_at: l.expires_at,
                    released_at_revision: released.then_some(rc.revision),
                });
            }
        }));
    }
    for t in tasks {
        t.await.expect("a task panicked");
    }
    let events = events.lock().unwrap().clone();
    let mut holds = holds.lock().unwrap().clone();
    let mut writes = writes.lock().unwrap().clone();
    let lost_writes = *lost_writes.lock().unwrap();
    println!(
        "[{:?}] {} acquisitions, {} fenced writes, {lost_writes} lost",
        env.backend(),
        holds.len(),
        writes.len()
    );
    assert!(
        holds.len() >= 10,
        "too few acquisitions to say anything: {}",
        holds.len()
    );

    // Fences: unique, and the holding intervals [fence, release revision] (or,
    // for a lease that lapsed, [acquired_at, expires_at]) do not overlap.
    holds.sort_by_key(|h| h.fence);
    for pair in holds.windows(2) {
        let (p, n) = (&pair[0], &pair[1]);
        assert!(n.fence > p.fence, "fences are unique: {p:?} {n:?}");
        match p.released_at_revision {
            Some(rev) => assert!(
                rev < n.fence,
                "acquisition {n:?} was granted before the previous holder released ({p:?})"
            ),
            None => assert!(
                n.acquired_at >= p.expires_at,
                "acquisition {n:?} was granted while the previous lease was live ({p:?})"
            ),
        }
    }
    let lapsed = holds.iter().filter(|h| h.released_at_revision.is_none()).count();
    assert!(
        lost_writes <= lapsed,
        "{lost_writes} fenced writes failed but only {lapsed} leases lapsed"
    );

    // The shared log: between a holder's "acquired" and "releasing" entries no
    // other acquisition appears (each is logged after its commit, each release
    // before it is sent, so an overlap in time cannot hide as a non-overlap here
    // for leases released by their holder).
    let released: BTreeSet<u64> = holds
        .iter()
        .filter(|h| h.released_at_revision.is_some())
        .map(|h| h.fence)
        .collect();
    let mut holding: Option<u64> = None;
    for e in &events {
        match *e {
            Event::Acquired(f) => {
                if let Some(h) = holding {
                    assert!(
                        !released.contains(&h),
                        "fence {f} was acquired while {h} still held the lease"
                    );
                }
                holding = Some(f);
            }
            Event::Releasing(f) => {
                if holding == Some(f) {
                    holding = None;
                }
            }
        }
    }

    // Fenced writes: in commit (revision) order the fences strictly increase, and
    // each write saw the previous write's fence as "last".
    writes.sort_by_key(|w| w.revision);
    let mut prev: Option<u64> = None;
    for w in &writes {
        assert!(w.seen_last < Some(w.fence), "{w:?} saw a later or equal fence");
        assert_eq!(w.seen_last, prev, "{w:?}: last is the previous write's fence");
        prev = Some(w.fence);
    }
    assert!(writes.len() + lost_writes == holds.len());
    assert_eq!(
        get(&env.store, "last").await.map(|r| r.value),
        prev.map(Value::from)
    );
}

// ---------------------------------------------------------------------------
// 6. Waiters: queue positions in arrival order, first in line acquires, leave.

#[track_caller]
fn queued(c: &Committed) -> (u64, CoreError) {
    match &c.outcome {
        Outcome::Queued { id, held } => (*id, held.clone()),
        other => panic!("expected a queued waiter, got {other:?}"),
    }
}

async fn waiters(env: Env) {
    let s = &env.store;
    let h = acquire(s, "q", 30_000, Some("holder")).await;
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..3 {
        let t = new_token();
        let c = exec(s, acquire_cmd("q", 30_000, Some("w"), &t, Some(None))).await;
        let (id, held) = queued(&c);
        assert_eq!(
            held,
            CoreError::LeaseHeld {
                holder: Some("holder".into()),
                expires_at: Some(h.expires_at),
                waiters: i + 1,
            },
            "a queued waiter counts itself"
        );
        ids.push(id);
        tokens.push(t);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "queue ids increase in arrival order: {ids:?}"
    );
    // A waiter's repeated attempt keeps its position.
    let (id, _) = queued(&exec(s, acquire_cmd("q", 30_000, None, &tokens[1], Some(Some(ids[1])))).await);
    assert_eq!(id, ids[1]);
    let e = refused(s, acquire_cmd("q", 1_000, None, &new_token(), None)).await;
    assert!(matches!(e, CoreError::LeaseHeld { waiters: 3, .. }), "{e:?}");

    // Release: the lease is free, but waiters come first.
    assert!(release(s, "q", token_of(&h)).await);
    let e = refused(s, acquire_cmd("q", 1_000, None, &new_token(), None)).await;
    assert!(
        matches!(e, CoreError::LeaseHeld { waiters: 3, .. }),
        "a newcomer without a queue position is refused while anyone waits: {e:?}"
    );
    let (id, _) = queued(&exec(s, acquire_cmd("q", 1_000, None, &new_token(), Some(None))).await);
    assert!(id > ids[2], "a new waiter queues behind the others");
    exec(
        s,
        Command::LeaveQueue {
            name: "q".into(),
            waiter: id,
        },
    )
    .await;
    // The second and third cannot jump the queue.
    for i in [2, 1] {
        let c = exec(s, acquire_cmd("q", 30_000, None, &tokens[i], Some(Some(ids[i])))).await;
        assert_eq!(queued(&c).0, ids[i], "waiter {i} is not first in line");
    }
    assert_eq!(live_token(s, "q").await, None);
    // The first acquires.
    let c = exec(
        s,
        acquire_cmd("q", 30_000, Some("w0"), &tokens[0], Some(Some(ids[0]))),
    )
    .await;
    let w0 = lease_outcome(&c);
    assert!(w0.fence > h.fence);
    assert_eq!(w0.token.as_deref(), Some(tokens[0].as_str()));
    let e = refused(s, acquire_cmd("q", 1_000, None, &new_token(), None)).await;
    assert!(
        matches!(e, CoreError::LeaseHeld { waiters: 2, .. }),
        "the new holder left the queue: {e:?}"
    );
    assert!(release(s, "q", &tokens[0]).await);

    // The second leaves the queue (timeout or disconnect): the third is first now.
    let c = exec(
        s,
        Command::LeaveQueue {
            name: "q".into(),
            waiter: ids[1],
        },
    )
    .await;
    assert_eq!(c.outcome, Outcome::LeftQueue);
    let e = refused(s, acquire_cmd("q", 1_000, None, &new_token(), None)).await;
    assert!(matches!(e, CoreError::LeaseHeld { waiters: 1, .. }), "{e:?}");
    let c = exec(
        s,
        acquire_cmd("q", 30_000, Some("w2"), &tokens[2], Some(Some(ids[2]))),
    )
    .await;
    let w2 = lease_outcome(&c);
    assert!(w2.fence > w0.fence);
    assert!(release(s, "q", &tokens[2]).await);

    // Queue empty: a plain acquire gets it at once, and so does a waiting one.
    let plain = acquire(s, "q", 1_000, None).await;
    assert!(release(s, "q", token_of(&plain)).await);
    let t = new_token();
    let c = exec(s, acquire_cmd("q", 1_000, None, &t, Some(None))).await;
    assert_eq!(lease_outcome(&c).token.as_deref(), Some(t.as_str()));
    assert!(release(s, "q", &t).await);
    // Leaving a queue one is not in changes nothing.
    let c = exec(
        s,
        Command::LeaveQueue {
            name: "q".into(),
            waiter: 12_345,
        },
    )
    .await;
    assert_eq!(c.outcome, Outcome::LeftQueue);
}

// ---------------------------------------------------------------------------
// 7. The sweeper frees expired leases (and counts them).

async fn sweep_frees_expired(env: Env) {
    let s = &env.store;
    let short = acquire(s, "short", 100, Some("s")).await;
    let long = acquire(s, "long", 60_000, Some("l")).await;
    let done = acquire(s, "done", 100, None).await;
    assert!(release(s, "done", token_of(&done)).await);
    lapse(&env, "short").await;

    let n = s.sweep_expired(100).await.unwrap();
    assert_eq!(n, 1, "exactly the expired lease is freed");
    let (row, now) = lease_row(s, "short").await;
    let row = row.unwrap();
    assert_eq!(row.token, None, "the sweeper cleared the token");
    assert_eq!(row.live_token(now), None);
    assert_eq!(row.fence, short.fence, "the last fence is kept");
    assert_eq!(s.sweep_expired(100).await.unwrap(), 0, "nothing left to free");
    assert_eq!(live_token(s, "long").await.as_deref(), Some(token_of(&long)));
    assert!(
        !release(s, "short", token_of(&short)).await,
        "the swept holder's release clears nothing"
    );
    let next = acquire(s, "short", 1_000, None).await;
    assert!(next.fence > short.fence);

    // The sweeper's list may be stale: a lease it saw expired was acquired again
    // meanwhile. Its expire command re-checks and leaves the new holder alone.
    let old = acquire(s, "race", 100, None).await;
    lapse(&env, "race").await;
    let new = acquire(s, "race", 30_000, Some("new")).await;
    assert!(new.fence > old.fence);
    let c = exec(s, Command::ExpireLease { name: "race".into() }).await;
    assert_eq!(c.outcome, Outcome::LeaseExpired { expired: false });
    assert_eq!(live_token(s, "race").await.as_deref(), Some(token_of(&new)));
    let c = exec(s, Command::ExpireLease { name: "never".into() }).await;
    assert_eq!(c.outcome, Outcome::LeaseExpired { expired: false });
    assert_eq!(lease_row(s, "never").await.0, None);
}

// ---------------------------------------------------------------------------
// 8. Bad input.

async fn bad_input(env: Env) {
    let s = &env.store;
    let invalid = |e: CoreError, what: &str| {
        assert!(matches!(e, CoreError::InvalidRequest(_)), "{what}: {e:?}");
    };
    for ttl in [0, 99, 24 * 3600 * 1000 + 1, u64::MAX] {
        invalid(
            refused(s, acquire_cmd("b", ttl, None, &new_token(), None)).await,
            &format!("acquire ttl {ttl}"),
        );
    }
    let h257 = format!("{}x", "é".repeat(128));
    assert_eq!(h257.len(), 257);
    invalid(
        refused(s, acquire_cmd("b", 1_000, Some(&h257), &new_token(), None)).await,
        "holder of 257 bytes",
    );
    assert_eq!(lease_row(s, "b").await.0, None, "refusals write nothing");

    // The limits themselves are accepted.
    let h256 = "é".repeat(128);
    let l = acquire(s, "b", 100, Some(&h256)).await;
    assert!(release(s, "b", token_of(&l)).await);
    let l = acquire(s, "b", 24 * 3600 * 1000, None).await;

    // Renew: bad TTL (even by the holder), empty or oversized tokens.
    for ttl in [0, 99, 24 * 3600 * 1000 + 1] {
        invalid(
            refused(s, renew_cmd("b", token_of(&l), ttl)).await,
            &format!("renew ttl {ttl}"),
        );
    }
    invalid(
        refused(s, renew_cmd("b", "", 1_000)).await,
        "renew with an empty token",
    );
    invalid(
        refused(s, release_cmd("b", "")).await,
        "release with an empty token",
    );
    let long = "t".repeat(257);
    invalid(
        refused(s, renew_cmd("b", &long, 1_000)).await,
        "renew with a 257-byte token",
    );
    invalid(
        refused(s, release_cmd("b", &long)).await,
        "release with a 257-byte token",
    );
    let (row, _) = lease_row(s, "b").await;
    assert_eq!(row.as_ref(), Some(&l), "refusals change nothing");
    assert!(release(s, "b", token_of(&l)).await);
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
