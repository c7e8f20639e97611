//! Waiting: first come, first served; timeouts; lapsed leases; crashed and disconnected waiters.

#![allow(clippy::unwrap_used)]

use super::*;

/// One holder, 10 waiters arriving one after another (each confirmed queued
/// before the next starts), spread over `servers`: they acquire in arrival order.
pub(super) async fn fifo(servers: &[Http], name: &str) {
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
pub(super) async fn wait_timeout(h: &Http) {
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
pub(super) async fn waiter_gets_lapsed_lease(h: &Http, clock: &Clock) {
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
pub(super) async fn crashed_waiter(servers: &mut [Process], https: &[Http]) {
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
pub(super) async fn disconnected_waiter(h: &Http) {
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
