//! Waiting: first come, first served; timeouts; lapsed leases; crashed and
//! disconnected waiters. The waiters, holders and releases go through
//! `lockstep_client`; the probes that count the queue read the raw 409.

#![allow(clippy::unwrap_used)]

use super::*;
use lockstep_client::api::problem::Extensions;

/// Acquires through `app` without waiting; it must be granted.
async fn hold(app: &Ns, name: &str, ttl_ms: u64, holder: &str) -> Held {
    let l = try_acquire(app, name, ttl_ms, Some(holder), 0)
        .await
        .unwrap_or_else(|e| panic!("acquire {name}: {e:?}"));
    granted_lease(&l, name, Some(holder), ttl_ms)
}

/// A waiting acquire through `app`; it must be granted.
async fn wait_for(app: &Ns, name: &str, ttl_ms: u64, holder: &str, wait_ms: u64) -> Held {
    let l = try_acquire(app, name, ttl_ms, Some(holder), wait_ms)
        .await
        .unwrap_or_else(|e| panic!("waiting acquire {name} as {holder}: {e:?}"));
    granted_lease(&l, name, Some(holder), ttl_ms)
}

/// One holder, 10 waiters arriving one after another (each confirmed queued
/// before the next starts), spread over `apps`' servers: they acquire in
/// arrival order. `h0` (the first server) probes the queue.
pub(super) async fn fifo(apps: &[Ns], h0: &Http, name: &str) {
    const WAITERS: usize = 10;
    let holder = hold(&apps[0], name, 30_000, "holder").await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..WAITERS {
        let app = apps[i % apps.len()].clone();
        let order = order.clone();
        let lease = name.to_owned();
        tasks.push(tokio::spawn(async move {
            let holder = format!("waiter-{i}");
            let held = wait_for(&app, &lease, 10_000, &holder, 20_000).await;
            order.lock().unwrap().push((i, held.fence));
            // Holds the lease a moment, as a worker would (the next waiter
            // is woken by the release, not by this time).
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(
                release_lease(&app, &lease, &held.token).await,
                "waiter {i} held its lease until it released"
            );
        }));
        poll(Duration::from_secs(5), "the waiter to be queued", || async {
            let n = probe_waiters(h0, name).await;
            assert!(n <= i as u64 + 1, "{n} waiters with {} started", i + 1);
            (n == i as u64 + 1).then_some(())
        })
        .await;
    }
    let released_at = Instant::now();
    assert!(release_lease(&apps[0], name, &holder.token).await);
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
        apps.len(),
        released_at.elapsed()
    );
    let g = apps[0].lease(name).await.unwrap();
    assert!(!g.held, "{g:?}");
    assert_eq!(g.fence, Some(order[WAITERS - 1].1), "{g:?}");
}

/// A waiter with wait_ms 200 on a lease held for 5 s gets 409 after ≈200 ms.
pub(super) async fn wait_timeout(app: &Ns, h: &Http) {
    let name = "slow";
    let holder = hold(app, name, 5_000, "slow-holder").await;
    let waiter = {
        let app = app.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = try_acquire(&app, name, 1000, None, 200).await;
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
    let e = r.expect_err("a waiting acquire that timed out is refused");
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("lease_held")),
        "a waiting acquire that timed out: {e:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(180) && elapsed <= Duration::from_secs(10),
        "the wait lasted {elapsed:?}"
    );
    // The members of the server's own problem document (a problem made up
    // by the client has none).
    let p = e.problem().unwrap();
    assert_eq!(p.status, 409, "{p:?}");
    let Some(Extensions::LeaseHeld {
        holder: by,
        expires_at,
        waiters,
    }) = &p.extensions
    else {
        panic!("a lease_held problem names the holder: {p:?}")
    };
    assert_eq!(by.as_deref(), Some("slow-holder"), "{p:?}");
    assert_eq!(expires_at.as_deref(), holder.body["expires_at"].as_str(), "{p:?}");
    assert!(*waiters >= 1, "the final 409 counts the waiter: {p:?}");
    assert_eq!(seen, 1, "the waiter was queued while it waited");
    assert_eq!(
        probe_waiters(h, name).await,
        0,
        "a waiter that timed out left the queue"
    );
    assert!(release_lease(app, name, &holder.token).await);
    // Free and nobody waiting: a waiting acquire is granted at once.
    let started = Instant::now();
    let l = try_acquire(app, name, 1000, None, 60_000).await.unwrap();
    let c = granted_lease(&l, name, None, 1000);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "granted at once, not after the wait"
    );
    assert!(release_lease(app, name, &c.token).await);
}

/// A waiter is granted a lease that lapses (nobody releases it) once the
/// store's clock (manual here) reaches its expiry, at its next retry.
pub(super) async fn waiter_gets_lapsed_lease(app: &Ns, h: &Http, clock: &Clock) {
    let name = "lapsing";
    let holder = hold(app, name, 300, "stalled").await;
    let waiter = {
        let app = app.clone();
        tokio::spawn(async move { wait_for(&app, name, 1000, "next", 10_000).await })
    };
    poll(Duration::from_secs(5), "the waiter to be queued", || async {
        (probe_waiters(h, name).await == 1).then_some(())
    })
    .await;
    clock.set(Millis(holder.expires_at.0 - 1));
    assert_eq!(probe_waiters(h, name).await, 1, "held until its expiry");
    assert!(!waiter.is_finished(), "the waiter waits while the lease is held");
    clock.set(holder.expires_at);
    let next = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter did not finish within 30 s")
        .unwrap();
    assert!(next.fence > holder.fence);
    assert_eq!(
        next.acquired_at, holder.expires_at,
        "granted at the holder's expiry (the clock stands there)"
    );
    assert!(!release_lease(app, name, &holder.token).await);
    assert!(release_lease(app, name, &next.token).await);
}

/// A queued waiter whose server process dies stops blocking the queue once
/// its alive window (3 s) lapses: the next waiter, on another process, gets
/// the lease. `apps[i]` is a client of `servers[i]`; `h0` probes server 0.
pub(super) async fn crashed_waiter(servers: &mut [Process], apps: &[Ns], h0: &Http) {
    let name = "crash";
    let holder = hold(&apps[0], name, 30_000, "holder").await;
    let doomed = {
        let app = apps[2].clone();
        tokio::spawn(async move {
            // Its server dies under it: whatever it answers is not the point.
            let _ = try_acquire(&app, name, 10_000, Some("crashed"), 20_000).await;
        })
    };
    poll(
        Duration::from_secs(5),
        "the doomed waiter to be queued",
        || async { (probe_waiters(h0, name).await == 1).then_some(()) },
    )
    .await;
    let survivor = {
        let app = apps[0].clone();
        tokio::spawn(async move { wait_for(&app, name, 10_000, "survivor", 20_000).await })
    };
    poll(Duration::from_secs(5), "the survivor to be queued", || async {
        (probe_waiters(h0, name).await == 2).then_some(())
    })
    .await;
    servers[2].kill9();
    let _ = doomed.await;
    let released_at = Instant::now();
    assert!(release_lease(&apps[0], name, &holder.token).await);
    let s = tokio::time::timeout(Duration::from_secs(30), survivor)
        .await
        .expect("the survivor did not finish within 30 s")
        .unwrap();
    let waited = released_at.elapsed();
    assert!(
        // The dead waiter's alive window is 3 s; far less than the survivor's
        // 30 s wait, so a waiter that never lapsed fails this.
        waited < Duration::from_secs(12),
        "the survivor waited {waited:?} after the release for a dead waiter"
    );
    println!("the survivor got the lease {waited:?} after the release");
    assert!(release_lease(&apps[0], name, &s.token).await);
}

/// A waiter whose client goes away stops waiting: it leaves the queue, and
/// the next waiter gets the lease right after the release.
pub(super) async fn disconnected_waiter(app: &Ns, h: &Http) {
    let name = "disc";
    let holder = hold(app, name, 30_000, "holder").await;
    let gone = {
        let app = app.clone();
        tokio::spawn(async move { try_acquire(&app, name, 10_000, Some("disconnected"), 20_000).await })
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
        let app = app.clone();
        tokio::spawn(async move {
            let l = wait_for(&app, name, 10_000, "later", 20_000).await;
            (l, Instant::now())
        })
    };
    poll(
        Duration::from_secs(5),
        "the later waiter to be queued",
        || async { (probe_waiters(h, name).await == 1).then_some(()) },
    )
    .await;
    let released_at = Instant::now();
    assert!(release_lease(app, name, &holder.token).await);
    let (l, got_at) = tokio::time::timeout(Duration::from_secs(30), later)
        .await
        .expect("the later waiter did not finish within 30 s")
        .unwrap();
    let waited = got_at.duration_since(released_at);
    assert!(
        waited < Duration::from_secs(1),
        "the later waiter got the lease {waited:?} after the release"
    );
    let g = app.lease(name).await.unwrap();
    assert_eq!(g.holder.as_deref(), Some("later"), "{g:?}");
    assert!(release_lease(app, name, &l.token).await);
}
