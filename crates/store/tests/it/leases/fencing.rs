//! Fencing in transactions: the lease compare and the fence compare.

#![allow(clippy::unwrap_used)]

use super::*;

pub(super) async fn fencing_in_txn(env: Env) {
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
