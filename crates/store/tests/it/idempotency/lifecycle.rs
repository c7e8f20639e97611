//! The entry lifecycle: begin, complete, replay, takeover, release, expiry, concurrent begins.

#![allow(clippy::unwrap_used)]

use super::*;

/// Begin → in use / reused while started → complete → replay (same fingerprint)
/// or reused (another); a second complete is refused.
pub(super) async fn begin_complete_replay(env: Env) {
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
pub(super) async fn takeover_after_lock_expiry(env: Env) {
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
pub(super) async fn release_lets_a_retry_run(env: Env) {
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
pub(super) async fn app_entries_write_changes(env: Env) {
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
pub(super) async fn expired_entries_are_forgotten(env: Env) {
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
pub(super) async fn one_owner_among_concurrent_begins(env: Env) {
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
