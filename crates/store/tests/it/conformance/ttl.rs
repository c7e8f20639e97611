//! TTL on the store's clock: the cases move a manual clock instead of sleeping.

use super::*;

// ---------------------------------------------------------------------------
// 6. TTL: expiry by the storage clock, reads, listing, re-creation, sweeping.

async fn ttl(env: Env) {
    let s = &env.store;
    let (t1, _) = put_outcome(
        &exec(
            s,
            put_with("tmp1", json!(1), Precondition::None, Some(300), false),
        )
        .await,
    );
    let exp = t1.expires_at.expect("ttl_ms gives expires_at");
    assert_eq!(exp.0 - t1.updated_at.0, 300, "expires_at = write time + ttl_ms");
    assert_eq!(get_some(s, "tmp1").await.expires_at, Some(exp));
    exec(
        s,
        put_with("tmp2", json!(2), Precondition::None, Some(300), false),
    )
    .await;
    exec(s, put("live", json!("forever"))).await;
    let (long, _) = put_outcome(
        &exec(
            s,
            put_with("long", json!(3), Precondition::None, Some(3_600_000), false),
        )
        .await,
    );
    assert_eq!(
        keys(&list(s, "", None, 100).await),
        ["live", "long", "tmp1", "tmp2"]
    );

    // The store's clock (manual) reaches the TTL: live a millisecond before.
    env.clock.advance(299);
    assert_eq!(
        get_some(s, "tmp1").await.expires_at,
        Some(exp),
        "live until its expiry"
    );
    env.clock.advance(1);

    assert_eq!(get(s, "tmp1").await, None, "an expired record reads as absent");
    assert_eq!(get(s, "tmp2").await, None);
    assert_eq!(
        keys(&list(s, "", None, 100).await),
        ["live", "long"],
        "expired records are not listed"
    );
    assert_eq!(keys(&list(s, "tmp", None, 100).await), Vec::<String>::new());
    let e = refused(s, merge("tmp1", json!({"a": 1}), Precondition::None)).await;
    assert!(
        matches!(e, CoreError::NotFound(_)),
        "PATCH of an expired record: {e:?}"
    );
    let e = refused(s, delete("tmp1", Precondition::None)).await;
    assert!(
        matches!(e, CoreError::NotFound(_)),
        "DELETE of an expired record: {e:?}"
    );
    let e = refused(
        s,
        put_if("tmp1", json!(0), Precondition::ExpectedVersion(t1.version)),
    )
    .await;
    assert_eq!(
        e,
        CoreError::VersionMismatch {
            expected: t1.version,
            current: None
        }
    );

    let c = exec(
        s,
        put_if("tmp2", json!("again"), Precondition::ExpectedVersion(0)),
    )
    .await;
    let (again, created) = put_outcome(&c);
    assert!(
        created,
        "expected_version 0 holds on an expired record, and the PUT creates"
    );
    assert_eq!(again.expires_at, None, "a PUT without ttl_ms has no TTL");
    assert_eq!(again.created_at, again.updated_at, "re-created: a new created_at");

    // The sweeper purges only expired rows: tmp1 (tmp2 was re-created).
    let purged = s.sweep_expired(100).await.expect("sweep");
    assert_eq!(purged, 1, "exactly the one expired record is purged");
    assert_eq!(
        s.sweep_expired(100).await.expect("sweep"),
        0,
        "nothing left to purge"
    );
    assert_eq!(keys(&list(s, "", None, 100).await), ["live", "long", "tmp2"]);
    assert_eq!(
        get_some(s, "long").await,
        long,
        "a live record with a TTL is not purged"
    );
    assert_eq!(get_some(s, "tmp2").await, again);

    // A TTL is replaced by the next PUT's.
    let (r, _) = put_outcome(&exec(s, put_with("long", json!(4), Precondition::None, None, false)).await);
    assert_eq!(r.expires_at, None);
}

/// TTLs run on the store's clock: with a manual clock a record is live until
/// the clock reaches its expiry, then absent, unlisted and swept; no sleep.
async fn manual_clock_expiry(env: Env) {
    let s = &env.store;
    let put_tmp = put_with("tmp", json!(1), Precondition::None, Some(300), false);
    let (r, _) = put_outcome(&exec(s, put_tmp).await);
    assert_eq!(r.updated_at, MANUAL_START, "writes take the store's clock");
    assert_eq!(r.expires_at, Some(lockstep_core::Millis(MANUAL_START.0 + 300)));
    env.clock.advance(299);
    assert!(get(s, "tmp").await.is_some(), "live until its expiry");
    assert_eq!(keys(&list(s, "", None, 10).await), ["tmp"]);
    assert_eq!(s.sweep_expired(100).await.unwrap(), 0, "nothing to sweep yet");
    env.clock.advance(1);
    assert_eq!(get(s, "tmp").await, None, "expired at its expiry");
    assert!(list(s, "", None, 10).await.is_empty());
    assert_eq!(s.sweep_expired(100).await.unwrap(), 1, "swept");
    let key = lockstep_core::RowKey::Record("tmp".into());
    let (rows, now) = s.read_rows(NS, vec![key.clone()]).await.unwrap();
    assert_eq!(now, lockstep_core::Millis(MANUAL_START.0 + 300));
    assert_eq!(rows.get(&key), Some(&None), "the row is gone");
}

lockstep_testkit::backends!(
    manual_clock => crate::common::run_manual;
    ttl,
    manual_clock_expiry,
);
