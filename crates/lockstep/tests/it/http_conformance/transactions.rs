//! TTL, transactions and revisions.

use super::*;

pub(super) async fn ttl(t: &T) {
    let r = t
        .check(
            "PUT",
            &rec("ttl/a"),
            &[],
            j(json!({"value": 1, "ttl_ms": 300})),
            201,
            None,
        )
        .await;
    assert_written(&r, "ttl/a");
    t.check(
        "PUT",
        &rec("ttl/keep"),
        &[],
        j(json!({"value": 1, "ttl_ms": 600_000})),
        201,
        None,
    )
    .await;
    let got = t.check("GET", &rec("ttl/a"), &[], B::None, 200, None).await;
    let expires = got.body["expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("expires_at: {}", got.text));
    let updated = got.body["updated_at"].as_str().unwrap();
    assert!(
        expires > updated,
        "expires_at {expires} is after updated_at {updated}"
    );
    assert_eq!(
        list_all(t, "ttl/", 10).await,
        vec!["ttl/a".to_owned(), "ttl/keep".to_owned()]
    );
    // Expiry is exact at read time, by the store's clock (manual here): live
    // a millisecond before the 300 ms, absent at them.
    t.clock.advance(299);
    t.check("GET", &rec("ttl/a"), &[], B::None, 200, None).await;
    t.clock.advance(1);
    t.check("GET", &rec("ttl/a"), &[], B::None, 404, Some("not_found"))
        .await;
    assert_eq!(list_all(t, "ttl/", 10).await, vec!["ttl/keep".to_owned()]);
    // An expired record counts as absent for preconditions and PATCH.
    t.check(
        "PATCH",
        &rec("ttl/a"),
        &[],
        merge(json!({"a": 1})),
        404,
        Some("not_found"),
    )
    .await;
    let r = t
        .check(
            "PUT",
            &rec("ttl/a"),
            &[],
            j(json!({"value": 2, "expected_version": 0})),
            201,
            None,
        )
        .await;
    assert_written(&r, "ttl/a");
    // A PUT without ttl_ms clears the TTL.
    t.check("PUT", &rec("ttl/keep"), &[], j(json!({"value": 2})), 200, None)
        .await;
    let got = t.check("GET", &rec("ttl/keep"), &[], B::None, 200, None).await;
    assert_eq!(got.body["expires_at"], Value::Null);
}

pub(super) async fn transactions(t: &T) {
    let p = txn_path();
    // Success branch: every op's result shape (SPEC §15), one revision for all writes.
    t.check("PUT", &rec("tx/s"), &[], j(json!({"value": "str"})), 201, None)
        .await;
    let r = t
        .check(
            "PUT",
            &rec("tx/obj"),
            &[],
            j(json!({"value": {"a": 1}})),
            201,
            None,
        )
        .await;
    let vobj = r.u64("version");
    let r = t
        .check("PUT", &rec("tx/del"), &[], j(json!({"value": 0})), 201, None)
        .await;
    let vdel = r.u64("version");
    let body = json!({
        "compare": [{"key": "tx/a", "version": 0}, {"key": "tx/obj", "exists": true},
                    {"key": "tx/obj", "value": {"a": 1}}, {"key": "tx/obj", "version": vobj}],
        "success": [
            {"put": {"key": "tx/a", "value": 10}},
            {"get": {"key": "tx/a"}},
            {"get": {"key": "tx/missing"}},
            {"incr": {"key": "tx/n", "by": 5}},
            {"incr": {"key": "tx/n", "by": -2}},
            {"patch": {"key": "tx/obj", "merge": {"b": 2}}},
            {"delete": {"key": "tx/del"}},
            {"delete": {"key": "tx/missing"}}
        ],
        "failure": [{"put": {"key": "tx/failed", "value": 1}}]
    });
    let r = t.check("POST", &p, &[], j(body), 200, None).await;
    assert_keys(&r.body, &["succeeded", "failed", "results", "revision"]);
    let rev = r.u64("revision");
    assert!(rev > vdel);
    assert_eq!(r.body["succeeded"], json!(true));
    assert_eq!(r.body["failed"], json!([]));
    assert_eq!(
        r.body["results"],
        json!([
            {"key": "tx/a", "version": rev, "value": 10},
            {"key": "tx/a", "version": rev, "value": 10},
            null,
            {"key": "tx/n", "version": rev, "value": 5},
            {"key": "tx/n", "version": rev, "value": 3},
            {"key": "tx/obj", "version": rev, "value": {"a": 1, "b": 2}},
            {"key": "tx/del", "deleted": true},
            {"key": "tx/missing", "deleted": false}
        ]),
        "results of the success branch"
    );
    for (key, value) in [
        ("tx/a", json!(10)),
        ("tx/n", json!(3)),
        ("tx/obj", json!({"a": 1, "b": 2})),
    ] {
        let got = t.check("GET", &rec(key), &[], B::None, 200, None).await;
        assert_eq!(
            (got.body["value"].clone(), got.u64("version")),
            (value, rev),
            "{key}"
        );
    }
    t.check("GET", &rec("tx/del"), &[], B::None, 404, Some("not_found"))
        .await;
    t.check("GET", &rec("tx/failed"), &[], B::None, 404, Some("not_found"))
        .await;

    // Failure branch: `failed` lists the compares that did not hold.
    let body = json!({
        "compare": [{"key": "tx/a", "version": rev}, {"key": "tx/a", "version": 0},
                    {"key": "tx/a", "exists": false}, {"key": "tx/a", "value": 10},
                    {"key": "tx/obj", "value": {"a": 1}}, {"key": "tx/missing", "exists": false},
                    {"key": "tx/missing", "value": null}],
        "success": [{"put": {"key": "tx/ok", "value": 1}}],
        "failure": [{"get": {"key": "tx/a"}}, {"put": {"key": "tx/f", "value": "f"}}, {"delete": {"key": "tx/n"}}]
    });
    let r = t.check("POST", &p, &[], j(body), 200, None).await;
    let rev2 = r.u64("revision");
    assert!(rev2 > rev);
    assert_eq!(r.body["succeeded"], json!(false));
    assert_eq!(r.body["failed"], json!([1, 2, 4, 6]));
    assert_eq!(
        r.body["results"],
        json!([
            {"key": "tx/a", "version": rev, "value": 10},
            {"key": "tx/f", "version": rev2, "value": "f"},
            {"key": "tx/n", "deleted": true}
        ])
    );
    t.check("GET", &rec("tx/ok"), &[], B::None, 404, Some("not_found"))
        .await;
    t.check("GET", &rec("tx/n"), &[], B::None, 404, Some("not_found"))
        .await;

    // A read-only transaction still answers a revision.
    let r = t
        .check(
            "POST",
            &p,
            &[],
            j(json!({"success": [{"get": {"key": "tx/f"}}]})),
            200,
            None,
        )
        .await;
    assert!(r.body["revision"].is_u64(), "{}", r.text);
    assert_eq!(
        r.body["results"],
        json!([{"key": "tx/f", "version": rev2, "value": "f"}])
    );

    // incr on a non-integer: 422 invalid_patch, and nothing of the branch applied.
    let body = json!({"success": [{"put": {"key": "tx/x", "value": 1}}, {"incr": {"key": "tx/s", "by": 1}}]});
    t.check("POST", &p, &[], j(body), 422, Some("invalid_patch"))
        .await;
    t.check("GET", &rec("tx/x"), &[], B::None, 404, Some("not_found"))
        .await;
    let got = t.check("GET", &rec("tx/s"), &[], B::None, 200, None).await;
    assert_eq!(got.body["value"], json!("str"));
    let body = json!({"success": [{"incr": {"key": "tx/obj", "by": 1}}]});
    t.check("POST", &p, &[], j(body), 422, Some("invalid_patch"))
        .await;
    // patch of an absent record inside a transaction: 404, nothing applied.
    let body = json!({"success": [{"put": {"key": "tx/y", "value": 1}}, {"patch": {"key": "tx/nope", "merge": {}}}]});
    t.check("POST", &p, &[], j(body), 404, Some("not_found")).await;
    t.check("GET", &rec("tx/y"), &[], B::None, 404, Some("not_found"))
        .await;

    // 64 items is the limit; 65 is 413.
    let ops: Vec<Value> = (0..63)
        .map(|i| json!({"put": {"key": format!("tx/many{i}"), "value": i}}))
        .collect();
    let body = json!({"compare": [{"key": "tx/many0", "exists": false}], "success": ops});
    let r = t.check("POST", &p, &[], j(body), 200, None).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 63);
    let ops: Vec<Value> = (0..64)
        .map(|i| json!({"get": {"key": format!("tx/many{i}")}}))
        .collect();
    let body = json!({"compare": [{"key": "tx/many0", "exists": true}], "success": ops});
    t.check("POST", &p, &[], j(body), 413, Some("payload_too_large"))
        .await;
    let ops: Vec<Value> = (0..33)
        .map(|i| json!({"put": {"key": format!("tx/big{i}"), "value": i}}))
        .collect();
    let body = json!({"success": ops.clone(), "failure": ops});
    t.check("POST", &p, &[], j(body), 413, Some("payload_too_large"))
        .await;
    t.check("GET", &rec("tx/big0"), &[], B::None, 404, Some("not_found"))
        .await;
    // Unknown op.
    let body = json!({"success": [{"frob": {"key": "tx/a"}}]});
    t.check("POST", &p, &[], j(body), 400, Some("invalid_request"))
        .await;
}

pub(super) async fn revisions(t: &T) {
    // Every write answer carries the revision it committed at, and revisions grow.
    let mut last = 0;
    let r = t
        .check("PUT", &rec("rv/a"), &[], j(json!({"value": 1})), 201, None)
        .await;
    for r in [
        r,
        t.check("PUT", &rec("rv/a"), &[], j(json!({"value": 2})), 200, None)
            .await,
        t.check("PATCH", &rec("rv/a"), &[], merge(json!({"x": 1})), 200, None)
            .await,
        t.check(
            "POST",
            &txn_path(),
            &[],
            j(json!({"success": [{"incr": {"key": "rv/n", "by": 1}}]})),
            200,
            None,
        )
        .await,
        t.check("DELETE", &rec("rv/a"), &[], B::None, 200, None).await,
    ] {
        let rev = r.u64("revision");
        assert!(rev > last, "revision {rev} after {last}: {}", r.text);
        last = rev;
    }
}
