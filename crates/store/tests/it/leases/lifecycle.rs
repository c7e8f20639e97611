//! seeds/003 late release, renewals and foreign tokens, held answers, break and GET.

#![allow(clippy::unwrap_used)]

use super::*;

// 1. seeds/003: the cron run's lease lapses, the refresh acquires, the cron
//    run's late release clears nothing; fences strictly increase.

pub(super) async fn seed_003_late_release(env: Env) {
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

pub(super) async fn renew_and_foreign_tokens(env: Env) {
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

pub(super) async fn held_break_and_get(env: Env) {
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
