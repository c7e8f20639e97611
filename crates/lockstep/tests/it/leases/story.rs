//! seeds/003 end to end, and fencing.

#![allow(clippy::unwrap_used)]

use super::*;

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
