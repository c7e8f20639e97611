//! seeds/003 end to end, and fencing.

#![allow(clippy::unwrap_used)]

use super::*;
use lockstep_client::api::records::TxnOpResult;
use lockstep_client::api::{Compare, Op, Txn};

pub(super) async fn seed_003(h: &Http, clock: &Clock) {
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

pub(super) async fn fencing(h: &Http, clock: &Clock) {
    // The writes go through `lockstep_client` with typed transactions; the
    // lease answers are checked on the wire (`acquire`, `assert_problem`).
    let app = common::ns(&h.base, NS);
    let txn = |t: Txn| {
        let app = app.clone();
        async move { app.txn(&t).await.unwrap_or_else(|e| panic!("txn {t:?}: {e:?}")) }
    };
    let name = "fenced-job";
    let a = acquire(h, name, 200, Some("a")).await;
    let lease = |token: &str| Compare::Lease {
        name: name.into(),
        token: token.into(),
    };
    let fence = |token: u64| Compare::Fence {
        resource: "db".into(),
        token,
    };
    let fenced = |token: &str, f: u64, value: &str| Txn {
        compare: vec![lease(token), fence(f)],
        success: vec![Op::put("db-value", json!(value))],
        failure: vec![],
    };
    let r = txn(fenced(&a.token, a.fence, "a1")).await;
    assert_eq!((r.succeeded, r.failed), (true, vec![]));

    // A pauses past its TTL; B acquires.
    lapse(h, clock, name, &a).await;
    let b = acquire(h, name, 30_000, Some("b")).await;
    assert!(b.fence > a.fence);

    // A's lease-fenced write fails on the lease compare.
    let r = txn(Txn {
        compare: vec![lease(&a.token)],
        success: vec![Op::put("db-value", json!("late"))],
        failure: vec![],
    })
    .await;
    assert_eq!((r.succeeded, r.failed), (false, vec![0]));
    let r = txn(fenced(&a.token, a.fence, "late")).await;
    assert_eq!((r.succeeded, r.failed), (false, vec![0]));
    let r = post(h, name, "renew", json!({"token": a.token, "ttl_ms": 1000})).await;
    assert_problem(&r, 409, "lease_lost", "renew by the paused ex-holder");

    // B writes with its fence, and releases.
    let r = txn(fenced(&b.token, b.fence, "b1")).await;
    assert_eq!((r.succeeded, r.failed), (true, vec![]));
    assert!(release(h, name, &b.token).await.0);

    // Nobody holds the lease; A's fence is still below the recorded one.
    let r = txn(Txn {
        compare: vec![fence(a.fence)],
        success: vec![Op::put("db-value", json!("late"))],
        failure: vec![Op::get("db-value")],
    })
    .await;
    assert_eq!((r.succeeded, &r.failed), (false, &vec![0]), "{r:?}");
    assert!(
        matches!(&r.results[..], [TxnOpResult::Record { value, .. }] if value == &json!("b1")),
        "{r:?}"
    );
    let stored = app.get("db-value").await.unwrap().map(|r| r.value);
    assert_eq!(stored, Some(json!("b1")));
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
    let r = txn(Txn {
        compare: vec![fence(b.fence + 1000)],
        ..Txn::default()
    })
    .await;
    assert_eq!((r.succeeded, r.failed), (true, vec![]));
    let after = h.get(&format!("/v1/ns/{NS}/changes?limit=1000")).await;
    let last = after.body["changes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["revision"],
        json!(r.revision),
        "the fence-only txn committed at its own revision"
    );
    assert_eq!(
        (last["op"].clone(), last["key"].clone()),
        (json!("fence"), json!("db"))
    );
    assert!(
        r.revision
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
