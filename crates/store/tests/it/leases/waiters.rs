//! Waiters in arrival order, the sweeper freeing expired leases, bad input.

#![allow(clippy::unwrap_used)]

use super::*;

#[track_caller]
pub(super) fn queued(c: &Committed) -> (u64, CoreError) {
    match &c.outcome {
        Outcome::Queued { id, held } => (*id, held.clone()),
        other => panic!("expected a queued waiter, got {other:?}"),
    }
}

pub(super) async fn waiters(env: Env) {
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

pub(super) async fn sweep_frees_expired(env: Env) {
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

pub(super) async fn bad_input(env: Env) {
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
