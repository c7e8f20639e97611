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
    assert!(
        token.len() >= 22
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "a token is a URL-safe string of at least 128 bits: {token:?}"
    );
    let acquired_at = time_of(&r.body["acquired_at"]);
    let expires_at = time_of(&r.body["expires_at"]);
    assert_eq!(expires_at, acquired_at.plus_ms(ttl_ms), "{}", r.text);
    Held {
        token,
        fence: r.u64("fence"),
        acquired_at,
        expires_at,
        body: r.body.clone(),
    }
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

async fn run_txn(h: &Http, body: Value) -> Resp {
    let r = h.json("POST", &format!("/v1/ns/{NS}/txn"), &body).await;
    assert_eq!(r.status, 200, "txn {body}: {}", r.text);
    r
}

#[track_caller]
fn txn_failed(r: &Resp) -> (bool, Vec<u64>) {
    let failed = r.body["failed"]
        .as_array()
        .unwrap_or_else(|| panic!("no failed in {}", r.text))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    (r.body["succeeded"].as_bool().unwrap(), failed)
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
// seeds/003 end to end.

async fn seed_003(h: &Http, clock: &Clock) {
    let name = "collection-in-flight";
    let never = get_lease(h, name).await;
    assert_eq!(never.body["held"], json!(false));
    assert_eq!(never.body["fence"], Value::Null, "never held: fence null");

    // The cron run marks the collection started, with a short TTL.
    let a = acquire(h, name, 150, Some("cron")).await;
    let g = get_lease(h, name).await;
    assert_eq!(g.body["held"], json!(true));
    assert_eq!(g.body["holder"], json!("cron"));
    assert_eq!(g.body["fence"], json!(a.fence));
    assert_eq!(g.body["acquired_at"], a.body["acquired_at"]);
    assert_eq!(g.body["expires_at"], a.body["expires_at"]);
    // A refresh clicked now finds it held.
    let r = post(h, name, "acquire", json!({"ttl_ms": 30_000, "holder": "refresh"})).await;
    assert_problem(&r, 409, "lease_held", "acquire while held");
    assert_eq!(r.body["holder"], json!("cron"));
    assert_eq!(r.body["expires_at"], a.body["expires_at"]);
    assert_eq!(r.body["waiters"], json!(0));

    // The cron run stalls past its TTL; the marker lapses (last fence kept).
    let g = lapse(h, clock, name, &a).await;
    assert_eq!(g.body["fence"], json!(a.fence));
    assert_eq!(g.body["holder"], Value::Null);

    // The refresh marks it.
    let b = acquire(h, name, 30_000, Some("refresh")).await;
    assert!(b.fence > a.fence, "fences strictly increase across holders");
    assert_ne!(a.token, b.token);

    // The cron run's deferred clear: a no-op, the refresh's marker stays.
    let r = post(h, name, "release", json!({"token": a.token})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["released"], json!(false), "{}", r.text);
    let r = post(h, name, "renew", json!({"token": a.token, "ttl_ms": 60_000})).await;
    assert_problem(&r, 409, "lease_lost", "renew by the lapsed cron run");
    let g = get_lease(h, name).await;
    assert_eq!(
        (&g.body["held"], &g.body["holder"], &g.body["fence"]),
        (&json!(true), &json!("refresh"), &json!(b.fence)),
        "the refresh still holds the marker: {}",
        g.text
    );
    assert_eq!(g.body["expires_at"], b.body["expires_at"]);

    // The refresh completes and clears its own marker.
    assert!(release(h, name, &b.token).await.0);
    let g = get_lease(h, name).await;
    assert_eq!(g.body["held"], json!(false));
    assert_eq!(g.body["holder"], Value::Null);
    assert_eq!(g.body["acquired_at"], Value::Null);
    assert_eq!(g.body["expires_at"], Value::Null);
    assert_eq!(g.body["fence"], json!(b.fence), "the last fence");
    assert!(!release(h, name, &b.token).await.0, "released twice");

    // An admin may break a lease; its holder's token then clears nothing.
    let c = acquire(h, name, 30_000, None).await;
    assert!(c.fence > b.fence);
    let r = h.req("POST", &action_path(name, "break"));
    let r = h.send(r).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["broken"], json!(true), "{}", r.text);
    assert!(r.u64("revision") > c.fence);
    assert_eq!(get_lease(h, name).await.body["held"], json!(false));
    assert!(!release(h, name, &c.token).await.0);
}

// ---------------------------------------------------------------------------
// Fencing.

async fn fencing(h: &Http, clock: &Clock) {
    let name = "fenced-job";
    let a = acquire(h, name, 200, Some("a")).await;
    let fenced = |token: &str, fence: u64, value: &str| {
        json!({
            "compare": [
                {"lease": name, "token": token},
                {"fence": {"resource": "db", "token": fence}},
            ],
            "success": [{"put": {"key": "db-value", "value": value}}],
        })
    };
    let r = run_txn(h, fenced(&a.token, a.fence, "a1")).await;
    assert_eq!(txn_failed(&r), (true, vec![]), "{}", r.text);

    // A pauses past its TTL; B acquires.
    lapse(h, clock, name, &a).await;
    let b = acquire(h, name, 30_000, Some("b")).await;
    assert!(b.fence > a.fence);

    // A's lease-fenced write fails on the lease compare.
    let r = run_txn(
        h,
        json!({"compare": [{"lease": name, "token": a.token}], "success": [{"put": {"key": "db-value", "value": "late"}}]}),
    )
    .await;
    assert_eq!(txn_failed(&r), (false, vec![0]), "{}", r.text);
    let r = run_txn(h, fenced(&a.token, a.fence, "late")).await;
    assert_eq!(txn_failed(&r), (false, vec![0]), "{}", r.text);
    let r = post(h, name, "renew", json!({"token": a.token, "ttl_ms": 1000})).await;
    assert_problem(&r, 409, "lease_lost", "renew by the paused ex-holder");

    // B writes with its fence, and releases.
    let r = run_txn(h, fenced(&b.token, b.fence, "b1")).await;
    assert_eq!(txn_failed(&r), (true, vec![]), "{}", r.text);
    assert!(release(h, name, &b.token).await.0);

    // Nobody holds the lease; A's fence is still below the recorded one.
    let r = run_txn(
        h,
        json!({
            "compare": [{"fence": {"resource": "db", "token": a.fence}}],
            "success": [{"put": {"key": "db-value", "value": "late"}}],
            "failure": [{"get": {"key": "db-value"}}],
        }),
    )
    .await;
    assert_eq!(txn_failed(&r), (false, vec![0]), "{}", r.text);
    assert_eq!(r.body["results"][0]["value"], json!("b1"), "{}", r.text);
    let r = h.get(&format!("/v1/ns/{NS}/records/db-value")).await;
    assert_eq!(r.body["value"], json!("b1"), "{}", r.text);
    assert!(!release(h, name, &a.token).await.0);

    // Recording a fence is a write: a revision and a `fence` change (kind
    // lease, key = the resource), once per higher fence.
    let log = h
        .get(&format!("/v1/ns/{NS}/changes?kind=lease&prefix=db&limit=1000"))
        .await;
    let fences: Vec<(&str, &str)> = log.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["key"] == json!("db"))
        .map(|c| (c["op"].as_str().unwrap(), c["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fences,
        [("fence", "anonymous"), ("fence", "anonymous")],
        "{}",
        log.text
    );
    let before = h.get(&format!("/v1/ns/{NS}/changes?limit=1000")).await;
    let r = run_txn(
        h,
        json!({"compare": [{"fence": {"resource": "db", "token": b.fence + 1000}}]}),
    )
    .await;
    assert_eq!(txn_failed(&r), (true, vec![]), "{}", r.text);
    let after = h.get(&format!("/v1/ns/{NS}/changes?limit=1000")).await;
    let last = after.body["changes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["revision"], r.body["revision"],
        "the fence-only txn committed at its own revision"
    );
    assert_eq!(
        (last["op"].clone(), last["key"].clone()),
        (json!("fence"), json!("db"))
    );
    assert!(
        r.u64("revision")
            > before.body["changes"].as_array().unwrap().last().unwrap()["revision"]
                .as_u64()
                .unwrap()
    );

    // A's lease ran out and B took it over: the log shows the expiry between
    // the two acquisitions (written by the sweeper, or by B's acquire).
    let log = h
        .get(&format!(
            "/v1/ns/{NS}/changes?kind=lease&prefix={name}&limit=1000"
        ))
        .await;
    let ops: Vec<(&str, &str)> = log.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["op"].as_str().unwrap(), c["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ops[..3],
        [
            ("acquire", "anonymous"),
            ("expire", "system"),
            ("acquire", "anonymous")
        ],
        "{}",
        log.text
    );
}

// ---------------------------------------------------------------------------
// Mutual exclusion under load.

#[derive(Debug, Clone, Copy)]
enum Event {
    /// Logged after the acquire answered.
    Acquired(u64),
    /// Logged before the release is sent.
    Releasing(u64),
}

#[derive(Debug, Clone)]
struct Hold {
    client: usize,
    fence: u64,
    acquired_at: Millis,
    expires_at: Millis,
    released_at_revision: Option<u64>,
}

#[derive(Debug, Clone)]
struct Write {
    client: usize,
    revision: u64,
    fence: u64,
    seen_last: Option<u64>,
}

#[derive(Default)]
struct Logs {
    events: Vec<Event>,
    holds: Vec<Hold>,
    writes: Vec<Write>,
    lost_writes: usize,
    timeouts: usize,
}

async fn mutual_exclusion(servers: &[Http], clients: usize, run_for: Duration) {
    let name = "mx";
    let logs = Arc::new(Mutex::new(Logs::default()));
    let deadline = Instant::now() + run_for;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let h = servers[client % servers.len()].clone();
        let logs = logs.clone();
        tasks.push(tokio::spawn(async move {
            let holder = format!("client-{client}");
            while Instant::now() < deadline {
                let body = json!({"ttl_ms": 2000, "wait_ms": 2000, "holder": holder});
                let r = post(&h, name, "acquire", body).await;
                if r.status == 409 {
                    assert_problem(&r, 409, "lease_held", "a waiting acquire that timed out");
                    logs.lock().unwrap().timeouts += 1;
                    continue;
                }
                let held = granted(&r, name, Some(&holder), 2000);
                logs.lock().unwrap().events.push(Event::Acquired(held.fence));
                let t = run_txn(
                    &h,
                    json!({
                        "compare": [
                            {"lease": name, "token": held.token},
                            {"fence": {"resource": "log", "token": held.fence}},
                        ],
                        "success": [
                            {"get": {"key": "last"}},
                            {"put": {"key": "last", "value": held.fence}},
                            {"put": {"key": format!("log/{:012}", held.fence), "value": client}},
                        ],
                    }),
                )
                .await;
                let (succeeded, _) = txn_failed(&t);
                {
                    let mut l = logs.lock().unwrap();
                    if succeeded {
                        let seen_last = match &t.body["results"][0] {
                            Value::Null => None,
                            rec => Some(rec["value"].as_u64().unwrap()),
                        };
                        l.writes.push(Write {
                            client,
                            revision: t.u64("revision"),
                            fence: held.fence,
                            seen_last,
                        });
                    } else {
                        l.lost_writes += 1;
                    }
                    l.events.push(Event::Releasing(held.fence));
                }
                let (released, revision) = release(&h, name, &held.token).await;
                logs.lock().unwrap().holds.push(Hold {
                    client,
                    fence: held.fence,
                    acquired_at: held.acquired_at,
                    expires_at: held.expires_at,
                    released_at_revision: released.then_some(revision),
                });
            }
        }));
    }
    for t in tasks {
        t.await.expect("a client panicked");
    }
    let mut logs = Arc::try_unwrap(logs).ok().unwrap().into_inner().unwrap();
    println!(
        "{} servers, {clients} clients: {} acquisitions, {} fenced writes, {} lost, {} wait timeouts",
        servers.len(),
        logs.holds.len(),
        logs.writes.len(),
        logs.lost_writes,
        logs.timeouts
    );
    assert!(
        logs.holds.len() >= 20,
        "too few acquisitions to say anything: {}",
        logs.holds.len()
    );

    // No acquisition was granted while another live token held the name: the
    // holding intervals, ordered by fence, do not overlap.
    logs.holds.sort_by_key(|h| h.fence);
    for pair in logs.holds.windows(2) {
        let (p, n) = (&pair[0], &pair[1]);
        assert!(n.fence > p.fence, "fences are unique: {p:?} {n:?}");
        match p.released_at_revision {
            Some(rev) => assert!(
                rev < n.fence,
                "{n:?} was granted before the previous holder released ({p:?})"
            ),
            None => assert!(
                n.acquired_at >= p.expires_at,
                "{n:?} was granted while the previous lease was live ({p:?})"
            ),
        }
    }
    let lapsed = logs
        .holds
        .iter()
        .filter(|h| h.released_at_revision.is_none())
        .count();
    assert!(
        logs.lost_writes <= lapsed,
        "{} fenced writes failed but only {lapsed} leases lapsed",
        logs.lost_writes
    );
    // The shared log: no acquisition between a holder's "acquired" and
    // "releasing" entries (when that holder's release cleared the lease).
    let released: BTreeSet<u64> = logs
        .holds
        .iter()
        .filter(|h| h.released_at_revision.is_some())
        .map(|h| h.fence)
        .collect();
    let mut holding: Option<u64> = None;
    for e in &logs.events {
        match *e {
            Event::Acquired(f) => {
                if let Some(h) = holding {
                    assert!(
                        !released.contains(&h),
                        "fence {f} was acquired while {h} held the lease"
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

    // Fenced writes, in the order their revisions committed: fences strictly
    // increase and each saw the previous one as "last".
    logs.writes.sort_by_key(|w| w.revision);
    let mut prev: Option<u64> = None;
    for w in &logs.writes {
        assert!(w.seen_last < Some(w.fence), "{w:?} saw a later fence");
        assert_eq!(w.seen_last, prev, "{w:?}: last is the previous write's fence");
        prev = Some(w.fence);
    }
    let by_fence: BTreeMap<u64, usize> = logs.writes.iter().map(|w| (w.fence, w.client)).collect();
    assert_eq!(by_fence.len(), logs.writes.len());
    for h in &logs.holds {
        if let Some(c) = by_fence.get(&h.fence) {
            assert_eq!(*c, h.client, "the fence's writer is its holder");
        }
    }

    // What is stored: one log/<fence> record per successful write, by its client.
    let h = &servers[0];
    let mut stored = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/ns/{NS}/records?prefix=log/&limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = h.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for rec in r.body["records"].as_array().unwrap() {
            let fence: u64 = rec["key"].as_str().unwrap()["log/".len()..].parse().unwrap();
            stored.insert(fence, rec["value"].as_u64().unwrap() as usize);
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(stored, by_fence, "the stored log is what the clients wrote");
    let last = h.get(&format!("/v1/ns/{NS}/records/last")).await;
    assert_eq!(last.body["value"], json!(prev), "{}", last.text);
}

// ---------------------------------------------------------------------------
// Waiting: first come, first served; timeouts; disconnects.

/// One holder, 10 waiters arriving one after another (each confirmed queued
/// before the next starts), spread over `servers`: they acquire in arrival order.
async fn fifo(servers: &[Http], name: &str) {
    const WAITERS: usize = 10;
    let h0 = &servers[0];
    let holder = acquire(h0, name, 30_000, Some("holder")).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..WAITERS {
        let h = servers[i % servers.len()].clone();
        let order = order.clone();
        let lease = name.to_owned();
        tasks.push(tokio::spawn(async move {
            let holder = format!("waiter-{i}");
            let body = json!({"ttl_ms": 10_000, "wait_ms": 20_000, "holder": holder});
            let r = post(&h, &lease, "acquire", body).await;
            let held = granted(&r, &lease, Some(&holder), 10_000);
            order.lock().unwrap().push((i, held.fence));
            // Holds the lease a moment, as a worker would (the next waiter
            // is woken by the release, not by this time).
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (released, _) = release(&h, &lease, &held.token).await;
            assert!(released, "waiter {i} held its lease until it released");
        }));
        poll(Duration::from_secs(5), "the waiter to be queued", || async {
            let n = probe_waiters(h0, name).await;
            assert!(n <= i as u64 + 1, "{n} waiters with {} started", i + 1);
            (n == i as u64 + 1).then_some(())
        })
        .await;
    }
    let released_at = Instant::now();
    assert!(release(h0, name, &holder.token).await.0);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("the waiters did not all acquire within 30 s")
            .expect("a waiter panicked");
    }
    let order = order.lock().unwrap().clone();
    let ids: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        ids,
        (0..WAITERS).collect::<Vec<_>>(),
        "waiters acquire in arrival order"
    );
    assert!(
        order.windows(2).all(|w| w[0].1 < w[1].1) && order[0].1 > holder.fence,
        "fences increase in acquisition order: {order:?}"
    );
    println!(
        "{} servers: {WAITERS} waiters served in {:?}",
        servers.len(),
        released_at.elapsed()
    );
    let g = get_lease(h0, name).await;
    assert_eq!(g.body["held"], json!(false));
    assert_eq!(g.body["fence"], json!(order[WAITERS - 1].1));
}

/// A waiter with wait_ms 200 on a lease held for 5 s gets 409 after ≈200 ms.
async fn wait_timeout(h: &Http) {
    let name = "slow";
    let holder = acquire(h, name, 5_000, Some("slow-holder")).await;
    let waiter = {
        let h = h.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = post(&h, name, "acquire", json!({"ttl_ms": 1000, "wait_ms": 200})).await;
            (r, started.elapsed())
        })
    };
    // While it waits, others see it in the queue.
    let mut seen = 0;
    while !waiter.is_finished() {
        let r = post(h, name, "acquire", json!({"ttl_ms": 1000})).await;
        assert_problem(&r, 409, "lease_held", "probe");
        seen = seen.max(r.u64("waiters"));
        // Paces the probes only (the wait runs out on the server's timer).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (r, elapsed) = waiter.await.unwrap();
    assert_problem(&r, 409, "lease_held", "a waiting acquire that timed out");
    assert!(
        elapsed >= Duration::from_millis(180) && elapsed <= Duration::from_secs(10),
        "the wait lasted {elapsed:?}"
    );
    assert_eq!(r.body["holder"], json!("slow-holder"), "{}", r.text);
    assert_eq!(r.body["expires_at"], holder.body["expires_at"], "{}", r.text);
    assert!(
        r.body["waiters"].as_u64().is_some_and(|n| n >= 1),
        "the final 409 counts the waiter: {}",
        r.text
    );
    assert_eq!(seen, 1, "the waiter was queued while it waited");
    assert_eq!(
        probe_waiters(h, name).await,
        0,
        "a waiter that timed out left the queue"
    );
    assert!(release(h, name, &holder.token).await.0);
    // Free and nobody waiting: a waiting acquire is granted at once.
    let started = Instant::now();
    let r = post(h, name, "acquire", json!({"ttl_ms": 1000, "wait_ms": 60_000})).await;
    let c = granted(&r, name, None, 1000);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "granted at once, not after the wait"
    );
    assert!(release(h, name, &c.token).await.0);
}

/// A waiter is granted a lease that lapses (nobody releases it) once the
/// store's clock (manual here) reaches its expiry, at its next retry.
async fn waiter_gets_lapsed_lease(h: &Http, clock: &Clock) {
    let name = "lapsing";
    let holder = acquire(h, name, 300, Some("stalled")).await;
    let waiter = {
        let h = h.clone();
        tokio::spawn(async move {
            let body = json!({"ttl_ms": 1000, "wait_ms": 10_000, "holder": "next"});
            post(&h, name, "acquire", body).await
        })
    };
    poll(Duration::from_secs(5), "the waiter to be queued", || async {
        (probe_waiters(h, name).await == 1).then_some(())
    })
    .await;
    clock.set(Millis(holder.expires_at.0 - 1));
    assert_eq!(probe_waiters(h, name).await, 1, "held until its expiry");
    assert!(!waiter.is_finished(), "the waiter waits while the lease is held");
    clock.set(holder.expires_at);
    let r = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter did not finish within 30 s")
        .unwrap();
    let next = granted(&r, name, Some("next"), 1000);
    assert!(next.fence > holder.fence);
    assert_eq!(
        next.acquired_at, holder.expires_at,
        "granted at the holder's expiry (the clock stands there)"
    );
    assert!(!release(h, name, &holder.token).await.0);
    assert!(release(h, name, &next.token).await.0);
}

/// A queued waiter whose server process dies stops blocking the queue once
/// its alive window (3 s) lapses: the next waiter, on another process, gets
/// the lease.
async fn crashed_waiter(servers: &mut [Process], https: &[Http]) {
    let name = "crash";
    let (h0, h2) = (&https[0], &https[2]);
    let holder = acquire(h0, name, 30_000, Some("holder")).await;
    let doomed = {
        let h = h2.clone();
        tokio::spawn(async move {
            let body = json!({"ttl_ms": 10_000, "wait_ms": 20_000, "holder": "crashed"});
            let _ = common::try_send(
                h.req("POST", &action_path(name, "acquire"))
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await;
        })
    };
    poll(
        Duration::from_secs(5),
        "the doomed waiter to be queued",
        || async { (probe_waiters(h0, name).await == 1).then_some(()) },
    )
    .await;
    let survivor = {
        let h = h0.clone();
        tokio::spawn(async move {
            let body = json!({"ttl_ms": 10_000, "wait_ms": 20_000, "holder": "survivor"});
            post(&h, name, "acquire", body).await
        })
    };
    poll(Duration::from_secs(5), "the survivor to be queued", || async {
        (probe_waiters(h0, name).await == 2).then_some(())
    })
    .await;
    servers[2].kill9();
    let _ = doomed.await;
    let released_at = Instant::now();
    assert!(release(h0, name, &holder.token).await.0);
    let r = tokio::time::timeout(Duration::from_secs(30), survivor)
        .await
        .expect("the survivor did not finish within 30 s")
        .unwrap();
    let waited = released_at.elapsed();
    let s = granted(&r, name, Some("survivor"), 10_000);
    assert!(
        // The dead waiter's alive window is 3 s; far less than the survivor's
        // 30 s wait, so a waiter that never lapsed fails this.
        waited < Duration::from_secs(12),
        "the survivor waited {waited:?} after the release for a dead waiter"
    );
    println!("the survivor got the lease {waited:?} after the release");
    assert!(release(h0, name, &s.token).await.0);
}

/// A waiter whose client goes away stops waiting: it leaves the queue, and
/// the next waiter gets the lease right after the release.
async fn disconnected_waiter(h: &Http) {
    let name = "disc";
    let holder = acquire(h, name, 30_000, Some("holder")).await;
    let gone = {
        let h = h.clone();
        tokio::spawn(async move {
            let body = json!({"ttl_ms": 10_000, "wait_ms": 20_000, "holder": "disconnected"});
            post(&h, name, "acquire", body).await
        })
    };
    poll(
        Duration::from_secs(5),
        "the first waiter to be queued",
        || async { (probe_waiters(h, name).await == 1).then_some(()) },
    )
    .await;
    // The client disconnects: its request future (and connection) is dropped.
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());
    // The server sees the connection close and takes the waiter out of the
    // queue (well before its alive window could lapse).
    poll(
        Duration::from_secs(5),
        "the disconnected waiter to leave the queue",
        || async { (probe_waiters(h, name).await == 0).then_some(()) },
    )
    .await;

    let later = {
        let h = h.clone();
        tokio::spawn(async move {
            let body = json!({"ttl_ms": 10_000, "wait_ms": 20_000, "holder": "later"});
            let r = post(&h, name, "acquire", body).await;
            (r, Instant::now())
        })
    };
    poll(
        Duration::from_secs(5),
        "the later waiter to be queued",
        || async { (probe_waiters(h, name).await == 1).then_some(()) },
    )
    .await;
    let released_at = Instant::now();
    assert!(release(h, name, &holder.token).await.0);
    let (r, got_at) = tokio::time::timeout(Duration::from_secs(30), later)
        .await
        .expect("the later waiter did not finish within 30 s")
        .unwrap();
    let l = granted(&r, name, Some("later"), 10_000);
    let waited = got_at.duration_since(released_at);
    assert!(
        waited < Duration::from_secs(1),
        "the later waiter got the lease {waited:?} after the release"
    );
    let g = get_lease(h, name).await;
    assert_eq!(g.body["holder"], json!("later"), "{}", g.text);
    assert!(release(h, name, &l.token).await.0);
}

// ---------------------------------------------------------------------------
// Bad input.

async fn bad_input(h: &Http) {
    let name = "bad";
    let h257 = format!("{}x", "é".repeat(128));
    for body in [
        json!({"ttl_ms": 0}),
        json!({"ttl_ms": 99}),
        json!({"ttl_ms": 86_400_001}),
        json!({"ttl_ms": -1}),
        json!({"ttl_ms": "1000"}),
        json!({"ttl_ms": 1000.5}),
        json!({"ttl_ms": 1e30}),
        json!({}),
        json!({"ttl_ms": 1000, "holder": h257}),
        json!({"ttl_ms": 1000, "holder": 7}),
        json!({"ttl_ms": 1000, "wait_ms": 60_001}),
        json!({"ttl_ms": 1000, "wait_ms": -5}),
        json!({"ttl_ms": 1000, "token": "mine"}),
        json!({"ttl_ms": 1000, "unknown": true}),
    ] {
        let r = post(h, name, "acquire", body.clone()).await;
        assert_problem(&r, 400, "invalid_request", &format!("acquire {body}"));
    }
    assert_eq!(
        get_lease(h, name).await.body["fence"],
        Value::Null,
        "refused acquires write nothing"
    );
    // The limits themselves are fine.
    let l = acquire(h, name, 100, Some(&"é".repeat(128))).await;
    assert!(release(h, name, &l.token).await.0);
    let l = acquire(h, name, 86_400_000, None).await;

    for (action, body) in [
        ("renew", json!({"ttl_ms": 1000})),
        ("renew", json!({"token": "", "ttl_ms": 1000})),
        ("renew", json!({"token": 12345, "ttl_ms": 1000})),
        ("renew", json!({"token": null, "ttl_ms": 1000})),
        ("renew", json!({"token": l.token, "ttl_ms": 0})),
        ("renew", json!({"token": l.token, "ttl_ms": 86_400_001})),
        ("renew", json!({"token": l.token})),
        ("renew", json!({"token": l.token, "ttl_ms": 1000, "extra": 1})),
        ("release", json!({})),
        ("release", json!({"token": ""})),
        ("release", json!({"token": 12345})),
        ("release", json!({"token": ["a"]})),
        ("release", json!({"token": l.token, "force": true})),
        ("release", json!({"token": "t".repeat(257)})),
        ("renew", json!({"token": "t".repeat(257), "ttl_ms": 1000})),
    ] {
        let r = post(h, name, action, body.clone()).await;
        assert_problem(&r, 400, "invalid_request", &format!("{action} {body}"));
    }
    // Malformed JSON.
    let r = h
        .send(
            h.req("POST", &action_path(name, "release"))
                .header("content-type", "application/json")
                .body("{\"token\": "),
        )
        .await;
    assert_problem(&r, 400, "invalid_request", "truncated JSON");

    // A well-formed token that never held it.
    let random = "q0Lk3vB9xW2mN7pR4tY6zA";
    let r = post(h, name, "release", json!({"token": random})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["released"], json!(false), "{}", r.text);
    let r = post(h, name, "renew", json!({"token": random, "ttl_ms": 1000})).await;
    assert_problem(&r, 409, "lease_lost", "renew with a random token");
    let r = post(h, "never-held", "release", json!({"token": random})).await;
    assert_eq!(r.body["released"], json!(false), "{}", r.text);
    let r = post(h, "never-held", "renew", json!({"token": random, "ttl_ms": 1000})).await;
    assert_problem(&r, 409, "lease_lost", "renew of a never-held name");

    // Nothing of that touched the holder's lease; the holder renews and releases.
    let g = get_lease(h, name).await;
    assert_eq!(g.body["held"], json!(true));
    assert_eq!(g.body["expires_at"], l.body["expires_at"]);
    let r = post(h, name, "renew", json!({"token": l.token, "ttl_ms": 5000})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["fence"], json!(l.fence));
    assert!(
        r.u64("revision") > l.fence,
        "a renew names its own revision: {}",
        r.text
    );
    assert!(
        time_of(&r.body["expires_at"]) < l.expires_at,
        "renewing sets the expiry from now"
    );
    assert!(release(h, name, &l.token).await.0);
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
    mutual_exclusion(&[Http::new(&server.url)], 16, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_postgres_three_processes() {
    let Some(pg) = fresh_pg().await else { return };
    let servers: Vec<Process> = (0..3).map(|_| Process::start(&pg.url)).collect();
    let https: Vec<Http> = servers.iter().map(|s| Http::new(&s.url)).collect();
    mutual_exclusion(&https, 16, Duration::from_secs(10)).await;
}

/// The waiting cases of one server, its store on a manual clock.
async fn waiting(server: &Server) {
    let h = Http::new(&server.url);
    fifo(std::slice::from_ref(&h), "fifo").await;
    wait_timeout(&h).await;
    waiter_gets_lapsed_lease(&h, &server.clock).await;
    disconnected_waiter(&h).await;
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
    // Waiters spread over three processes still acquire in arrival order.
    fifo(&https, "fifo-across").await;
    crashed_waiter(&mut servers, &https).await;
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
