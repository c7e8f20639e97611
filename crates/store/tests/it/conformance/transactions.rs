//! Transactions.

use super::*;

// ---------------------------------------------------------------------------
// 8. Transactions.

async fn transactions(env: Env) {
    let s = &env.store;
    let (a, _) = put_outcome(&exec(s, put("a", json!(1))).await);
    exec(s, put("b", json!("x"))).await;
    exec(s, put("o", json!({"p": 1}))).await;

    // All compares hold: the success branch applies, at one revision.
    let c = exec(
        s,
        txn(json!({
            "compare": [
                {"key": "a", "version": a.version},
                {"key": "b", "exists": true},
                {"key": "c", "exists": false},
                {"key": "b", "value": "x"},
                {"key": "c", "version": 0}
            ],
            "success": [
                {"get": {"key": "a"}},
                {"put": {"key": "c", "value": 10}},
                {"delete": {"key": "b"}},
                {"patch": {"key": "o", "merge": {"q": 2}}},
                {"incr": {"key": "n", "by": 5}},
                {"incr": {"key": "a", "by": 2}},
                {"get": {"key": "c"}},
                {"delete": {"key": "zz"}},
                {"get": {"key": "b"}}
            ],
            "failure": [{"put": {"key": "fail", "value": 1}}]
        })),
    )
    .await;
    let rev = c.revision;
    assert!(rev > a.version);
    let res = txn_outcome(&c);
    assert!(res.succeeded, "{res:?}");
    assert!(res.failed.is_empty());
    assert_eq!(
        res.results.len(),
        9,
        "one result per operation of the applied branch"
    );
    assert_eq!(res.results[0], OpResult::Get(Some(a.clone())));
    let rc = written(&res.results[1]);
    assert_eq!((rc.key.as_str(), &rc.value, rc.version), ("c", &json!(10), rev));
    assert_eq!(
        res.results[2],
        OpResult::Delete {
            key: "b".into(),
            deleted: true
        }
    );
    let ro = written(&res.results[3]);
    assert_eq!((&ro.value, ro.version), (&json!({"p": 1, "q": 2}), rev));
    let rn = written(&res.results[4]);
    assert_eq!(
        (&rn.value, rn.version),
        (&json!(5), rev),
        "incr of an absent record starts at 0"
    );
    let ra = written(&res.results[5]);
    assert_eq!(
        (&ra.value, ra.version, ra.created_at),
        (&json!(3), rev, a.created_at)
    );
    assert_eq!(
        res.results[6],
        OpResult::Get(Some(rc.clone())),
        "a later op sees an earlier write"
    );
    assert_eq!(
        res.results[7],
        OpResult::Delete {
            key: "zz".into(),
            deleted: false
        }
    );
    assert_eq!(res.results[8], OpResult::Get(None));
    // As stored: every write carries the transaction's revision.
    for (k, v) in [
        ("a", json!(3)),
        ("c", json!(10)),
        ("o", json!({"p": 1, "q": 2})),
        ("n", json!(5)),
    ] {
        let r = get_some(s, k).await;
        assert_eq!((r.value, r.version), (v, rev), "record {k}");
    }
    assert_eq!(get(s, "b").await, None);
    assert_eq!(get(s, "fail").await, None, "the failure branch did not apply");

    // Some compares fail: the failure branch applies, `failed` names them.
    let c = exec(
        s,
        txn(json!({
            "compare": [
                {"key": "a", "exists": true},
                {"key": "a", "version": a.version},
                {"key": "n", "value": 5},
                {"key": "zz", "exists": true},
                {"key": "c", "value": 11},
                {"key": "b", "version": 0}
            ],
            "success": [{"put": {"key": "s", "value": 1}}],
            "failure": [{"put": {"key": "f", "value": "failed"}}, {"get": {"key": "a"}}, {"incr": {"key": "n", "by": -7}}]
        })),
    )
    .await;
    let res = txn_outcome(&c);
    assert!(!res.succeeded);
    assert_eq!(
        res.failed,
        vec![1, 3, 4],
        "exactly the failing compares, in order"
    );
    assert_eq!(res.results.len(), 3);
    assert_eq!(written(&res.results[0]).version, c.revision);
    assert!(matches!(&res.results[1], OpResult::Get(Some(r)) if r.value == json!(3)));
    assert_eq!(written(&res.results[2]).value, json!(-2));
    assert_eq!(get_some(s, "f").await.version, c.revision);
    assert_eq!(get(s, "s").await, None, "the success branch did not apply");
    let last_write = c.revision;

    // A failing operation aborts the whole transaction: nothing applies.
    exec(s, put("str", json!("hello"))).await;
    let before_n = get_some(s, "n").await;
    let last_write_2 = get_some(s, "str").await.version;
    assert!(last_write_2 > last_write);
    let e = refused(
        s,
        txn(json!({"success": [
            {"put": {"key": "atom", "value": 1}},
            {"incr": {"key": "n", "by": 1}},
            {"delete": {"key": "a"}},
            {"incr": {"key": "str", "by": 1}}
        ]})),
    )
    .await;
    assert!(matches!(e, CoreError::InvalidPatch(_)), "incr on a string: {e:?}");
    assert_eq!(
        get(s, "atom").await,
        None,
        "an earlier put of the failed transaction is not visible"
    );
    assert_eq!(get_some(s, "n").await, before_n);
    assert_eq!(get_some(s, "a").await.value, json!(3));
    exec(s, put("float", json!(1.5))).await;
    let e = refused(s, txn(json!({"success": [{"incr": {"key": "float", "by": 1}}]}))).await;
    assert!(matches!(e, CoreError::InvalidPatch(_)), "incr on a float: {e:?}");
    exec(s, put("big", json!(i64::MAX))).await;
    let e = refused(s, txn(json!({"success": [{"incr": {"key": "big", "by": 1}}]}))).await;
    assert!(matches!(e, CoreError::InvalidPatch(_)), "incr overflow: {e:?}");
    let e = refused(
        s,
        txn(json!({"success": [{"put": {"key": "atom", "value": 1}}, {"patch": {"key": "absent", "merge": {"a": 1}}}]})),
    )
    .await;
    assert!(
        matches!(e, CoreError::NotFound(_)),
        "patch of an absent record in a txn: {e:?}"
    );
    assert_eq!(get(s, "atom").await, None);

    // A read-only transaction does not advance the revision.
    let before = exec(s, put("tick", json!(0))).await.revision;
    let c = exec(
        s,
        txn(json!({
            "compare": [{"key": "a", "exists": true}],
            "success": [{"get": {"key": "a"}}, {"get": {"key": "nothing"}}, {"delete": {"key": "nothing"}}],
            "failure": [{"put": {"key": "never", "value": 1}}]
        })),
    )
    .await;
    let res = txn_outcome(&c);
    assert!(res.succeeded);
    assert!(matches!(&res.results[0], OpResult::Get(Some(r)) if r.key == "a"));
    assert_eq!(res.results[1], OpResult::Get(None));
    let c2 = exec(s, txn(json!({"compare": [{"key": "a", "exists": false}], "success": [{"put": {"key": "never", "value": 1}}]}))).await;
    let res2 = txn_outcome(&c2);
    assert_eq!(
        (res2.succeeded, res2.failed.clone(), res2.results.len()),
        (false, vec![0], 0)
    );
    let after = exec(s, put("tick", json!(1))).await.revision;
    if env.is_sqlite() {
        assert_eq!(
            c.revision, before,
            "a read-only transaction answers the current revision"
        );
        assert_eq!(c2.revision, before);
        assert_eq!(
            after,
            before + 1,
            "a read-only transaction does not consume a revision"
        );
    } else {
        assert!(c.revision >= before && c2.revision >= before);
        assert!(after > before);
    }
    assert_eq!(get(s, "never").await, None);

    // At most 64 items.
    let gets: Vec<Value> = (0..64)
        .map(|i| json!({"get": {"key": format!("g{i}")}}))
        .collect();
    let c = exec(s, txn(json!({"success": gets}))).await;
    assert_eq!(txn_outcome(&c).results.len(), 64, "64 items are accepted");
    let gets: Vec<Value> = (0..65)
        .map(|i| json!({"get": {"key": format!("g{i}")}}))
        .collect();
    let e = refused(s, txn(json!({"success": gets}))).await;
    assert!(matches!(e, CoreError::PayloadTooLarge(_)), "65 items: {e:?}");
    let compares: Vec<Value> = (0..30)
        .map(|i| json!({"key": format!("k{i}"), "exists": false}))
        .collect();
    let puts: Vec<Value> = (0..30)
        .map(|i| json!({"put": {"key": format!("k{i}"), "value": i}}))
        .collect();
    let fails: Vec<Value> = (0..5)
        .map(|i| json!({"put": {"key": format!("f{i}"), "value": i}}))
        .collect();
    let e = refused(
        s,
        txn(json!({"compare": compares, "success": puts, "failure": fails})),
    )
    .await;
    assert!(
        matches!(e, CoreError::PayloadTooLarge(_)),
        "30 + 30 + 5 items: {e:?}"
    );
    assert_eq!(get(s, "k0").await, None);

    // A wide transaction: 32 writes at one revision.
    let puts: Vec<Value> = (0..32)
        .map(|i| json!({"put": {"key": format!("w/{i:02}"), "value": i}}))
        .collect();
    let c = exec(s, txn(json!({"success": puts}))).await;
    let listed = list(s, "w/", None, 100).await;
    assert_eq!(listed.len(), 32);
    assert!(
        listed.iter().all(|r| r.version == c.revision),
        "all writes of a txn share one revision"
    );
}

lockstep_testkit::backends!(
    crate::common::run;
    transactions,
);
