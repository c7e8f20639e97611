//! The lease guard: renewals, loss, release, `with_lock`.

use crate::common::{until, Ctx};
use lockstep_client::{Error, LockOptions};
use std::time::Duration;

lockstep_testkit::backends!(crate::common::run; guard_renews_then_releases, loss_is_reported_when_broken, with_lock_releases_on_every_path);

const TTL: Duration = Duration::from_millis(300);

async fn guard_renews_then_releases(c: Ctx) {
    // A TTL a loaded machine renews in time (a renewal slower than the TTL
    // loses the lease, as it should).
    let ttl = Duration::from_millis(1500);
    let guard = c.app.acquire("job/1", ttl, Duration::ZERO).await.unwrap();
    let fence = guard.fence();
    assert!(!guard.token().is_empty());
    // Four renewals at a third of the TTL each: longer than the TTL has passed.
    until("four renewals", || guard.renewals() >= 4 || guard.is_lost()).await;
    if guard.is_lost() {
        panic!("lost: {}", guard.lost().await);
    }
    let s = c.app.lease("job/1").await.unwrap();
    assert!(s.held);
    assert_eq!(s.fence, Some(fence));
    let e = c.app.acquire("job/1", TTL, Duration::ZERO).await.unwrap_err();
    assert_eq!(e.code(), Some("lease_held"));
    assert!(guard.release().await.unwrap());
    assert!(!c.app.lease("job/1").await.unwrap().held);
    let next = c.app.acquire("job/1", TTL, Duration::ZERO).await.unwrap();
    assert!(next.fence() > fence);
    assert!(next.release().await.unwrap());
}

async fn loss_is_reported_when_broken(c: Ctx) {
    let guard = c.app.acquire("job", TTL, Duration::ZERO).await.unwrap();
    let held = guard.held();
    let work = tokio::spawn(async move {
        tokio::select! {
            e = held.lost() => Some(e),
            _ = std::future::pending::<()>() => None,
        }
    });
    assert!(c.app.break_lease("job").await.unwrap().broken);
    let e = tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(e, Error::LeaseLost { ref name, .. } if name == "job"),
        "{e}"
    );
    assert!(guard.is_lost());
    assert!(!guard.release().await.unwrap());
}

async fn with_lock_releases_on_every_path(c: Ctx) {
    let o = LockOptions {
        ttl: Duration::from_secs(10),
        ..Default::default()
    };
    let fence = c
        .app
        .with_lock("settle", &o, |held| async move { Ok(held.fence()) })
        .await
        .unwrap();
    assert!(fence > 0);
    assert!(!c.app.lease("settle").await.unwrap().held);
    let r: Result<(), Error> = c
        .app
        .with_lock("settle", &o, |_| async {
            Err(Error::Config("the work failed".into()))
        })
        .await;
    assert!(matches!(r, Err(Error::Config(_))));
    assert!(!c.app.lease("settle").await.unwrap().held);
    // A dropped guard releases in the background.
    let guard = c
        .app
        .acquire("settle", Duration::from_secs(10), Duration::ZERO)
        .await
        .unwrap();
    drop(guard);
    let app = c.app.clone();
    let released = tokio::spawn(async move {
        loop {
            if !app.lease("settle").await.unwrap().held {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    tokio::time::timeout(Duration::from_secs(20), released)
        .await
        .unwrap()
        .unwrap();
}
