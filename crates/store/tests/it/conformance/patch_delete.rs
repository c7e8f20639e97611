//! PATCH (merge patch, JSON patch) and DELETE.

use super::*;

// ---------------------------------------------------------------------------
// 4. PATCH: merge patch, JSON patch, `test` failures, invalid patches, 404, TTL kept.

async fn patch(env: Env) {
    let s = &env.store;
    let c = exec(
        s,
        put_with(
            "k",
            json!({"a": 1, "b": {"c": 2}}),
            Precondition::None,
            Some(3_600_000),
            false,
        ),
    )
    .await;
    let (r0, _) = put_outcome(&c);
    let expires = r0.expires_at.expect("a PUT with ttl_ms has expires_at");

    let r1 = patch_outcome(
        &exec(
            s,
            merge("k", json!({"b": {"c": null}, "d": 4}), Precondition::None),
        )
        .await,
    );
    assert_eq!(r1.value, json!({"a": 1, "b": {}, "d": 4}), "RFC 7396 merge");
    assert!(r1.version > r0.version);
    assert_eq!(r1.created_at, r0.created_at);
    assert_eq!(r1.expires_at, Some(expires), "PATCH keeps the TTL");
    assert_eq!(get_some(s, "k").await, r1);

    let ops = json!([
        {"op": "test", "path": "/a", "value": 1},
        {"op": "replace", "path": "/a", "value": 10},
        {"op": "add", "path": "/e", "value": [1, 2]},
        {"op": "remove", "path": "/b"}
    ]);
    let r2 = patch_outcome(&exec(s, json_patch("k", ops, Precondition::None)).await);
    assert_eq!(r2.value, json!({"a": 10, "d": 4, "e": [1, 2]}), "RFC 6902 patch");
    assert_eq!(r2.expires_at, Some(expires), "PATCH keeps the TTL");

    let failing = json!([
        {"op": "replace", "path": "/d", "value": 0},
        {"op": "test", "path": "/a", "value": 999}
    ]);
    match refused(s, json_patch("k", failing, Precondition::None)).await {
        CoreError::PatchTestFailed { current, .. } => assert_eq!(
            current,
            Some(Current {
                version: r2.version,
                value: r2.value.clone()
            }),
            "a failed test reports the current state"
        ),
        other => panic!("expected PatchTestFailed, got {other:?}"),
    }
    let e = refused(
        s,
        json_patch(
            "k",
            json!([{"op": "remove", "path": "/missing"}]),
            Precondition::None,
        ),
    )
    .await;
    assert!(matches!(e, CoreError::InvalidPatch(_)), "{e:?}");
    let e = refused(
        s,
        json_patch(
            "k",
            json!([{"op": "add", "path": "/e/9", "value": 1}]),
            Precondition::None,
        ),
    )
    .await;
    assert!(matches!(e, CoreError::InvalidPatch(_)), "{e:?}");
    assert_eq!(
        get_some(s, "k").await,
        r2,
        "a refused PATCH changes nothing (not even partly)"
    );

    let e = refused(s, merge("absent", json!({"a": 1}), Precondition::None)).await;
    assert!(
        matches!(e, CoreError::NotFound(_)),
        "PATCH of an absent record: {e:?}"
    );
    let e = refused(
        s,
        json_patch(
            "absent",
            json!([{"op": "add", "path": "/a", "value": 1}]),
            Precondition::None,
        ),
    )
    .await;
    assert!(matches!(e, CoreError::NotFound(_)), "{e:?}");
    assert_eq!(get(s, "absent").await, None);

    // With expected_version.
    let e = refused(
        s,
        merge("k", json!({"x": 1}), Precondition::ExpectedVersion(r1.version)),
    )
    .await;
    assert_eq!(
        e,
        CoreError::VersionMismatch {
            expected: r1.version,
            current: Some(Current {
                version: r2.version,
                value: r2.value.clone()
            })
        }
    );
    let r3 = patch_outcome(
        &exec(
            s,
            merge("k", json!({"x": 1}), Precondition::ExpectedVersion(r2.version)),
        )
        .await,
    );
    assert_eq!(r3.value, json!({"a": 10, "d": 4, "e": [1, 2], "x": 1}));
    assert_eq!(r3.expires_at, Some(expires));

    // A merge patch on a non-object replaces it (RFC 7396), and a PATCH of a
    // record without TTL leaves it without one.
    exec(s, put("scalar", json!(5))).await;
    let r = patch_outcome(&exec(s, merge("scalar", json!({"now": "object"}), Precondition::None)).await);
    assert_eq!((r.value, r.expires_at), (json!({"now": "object"}), None));
}

// ---------------------------------------------------------------------------
// 5. DELETE.

async fn delete_records(env: Env) {
    let s = &env.store;
    let e = refused(s, delete("absent", Precondition::None)).await;
    assert!(
        matches!(e, CoreError::NotFound(_)),
        "DELETE of an absent record: {e:?}"
    );

    let (r, _) = put_outcome(&exec(s, put("k", json!({"v": 1}))).await);
    let e = refused(s, delete("k", Precondition::ExpectedVersion(r.version + 1000))).await;
    assert_eq!(
        e,
        CoreError::VersionMismatch {
            expected: r.version + 1000,
            current: Some(Current {
                version: r.version,
                value: json!({"v": 1})
            })
        }
    );
    let e = refused(s, delete("k", Precondition::ExpectedVersion(0))).await;
    assert!(
        matches!(
            e,
            CoreError::VersionMismatch {
                expected: 0,
                current: Some(_)
            }
        ),
        "{e:?}"
    );
    assert_eq!(get_some(s, "k").await, r, "a refused DELETE leaves the record");

    let c = exec(s, delete("k", Precondition::ExpectedVersion(r.version))).await;
    assert!(
        matches!(&c.outcome, Outcome::Delete { key } if key == "k"),
        "{:?}",
        c.outcome
    );
    assert!(c.revision > r.version);
    assert_eq!(get(s, "k").await, None, "a deleted record reads as absent");
    assert!(list(s, "", None, 100).await.is_empty(), "and is not listed");
    let e = refused(s, delete("k", Precondition::None)).await;
    assert!(matches!(e, CoreError::NotFound(_)), "a second DELETE: {e:?}");
    let e = refused(s, delete("k", Precondition::ExpectedVersion(r.version))).await;
    assert_eq!(
        e,
        CoreError::VersionMismatch {
            expected: r.version,
            current: None
        }
    );
}

lockstep_testkit::backends!(
    crate::common::run;
    patch,
    delete_records,
);
