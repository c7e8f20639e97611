//! PUT and GET, and their preconditions.

use super::*;

pub(super) async fn put_and_get(t: &T) {
    let created = t
        .check("PUT", &rec("pg/a"), &[], j(json!({"value": {"n": 1}})), 201, None)
        .await;
    let v1 = assert_written(&created, "pg/a");
    let got = t.check("GET", &rec("pg/a"), &[], B::None, 200, None).await;
    assert_keys(
        &got.body,
        &[
            "key",
            "value",
            "version",
            "created_at",
            "updated_at",
            "expires_at",
        ],
    );
    assert_eq!(got.body["key"], json!("pg/a"));
    assert_eq!(got.body["value"], json!({"n": 1}));
    assert_eq!(got.u64("version"), v1);
    assert_eq!(got.body["expires_at"], Value::Null);
    assert_eq!(got.header("etag"), Some(etag(v1).as_str()));
    let created_at = got.body["created_at"].as_str().unwrap().to_owned();
    assert!(
        created_at.ends_with('Z') && created_at.contains('T'),
        "RFC 3339 UTC: {created_at}"
    );

    let replaced = t
        .check("PUT", &rec("pg/a"), &[], j(json!({"value": [1, 2]})), 200, None)
        .await;
    let v2 = assert_written(&replaced, "pg/a");
    assert!(v2 > v1, "a replacement gets a larger version ({v2} vs {v1})");
    let got = t.check("GET", &rec("pg/a"), &[], B::None, 200, None).await;
    assert_eq!(got.body["value"], json!([1, 2]));
    assert_eq!(got.u64("version"), v2);
    assert_eq!(
        got.body["created_at"],
        json!(created_at),
        "created_at survives a replacement"
    );
    assert!(got.body["updated_at"].as_str().unwrap() >= created_at.as_str());

    // Every JSON type is a value, null included.
    for (i, v) in [
        json!(null),
        json!(true),
        json!(-7),
        json!(1.5),
        json!("s"),
        json!({}),
    ]
    .iter()
    .enumerate()
    {
        let key = format!("pg/types{i}");
        t.check("PUT", &rec(&key), &[], j(json!({"value": v})), 201, None)
            .await;
        let got = t.check("GET", &rec(&key), &[], B::None, 200, None).await;
        assert_eq!(&got.body["value"], v);
    }
    // If-None-Match with the current ETag on a GET: 304.
    let r = t
        .http
        .send(t.http.req("GET", &rec("pg/a")).header("if-none-match", etag(v2)))
        .await;
    assert_eq!(r.status, 304, "{}", r.text);
}

pub(super) async fn put_preconditions(t: &T) {
    // expected_version 0: must not exist.
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 1, "expected_version": 0})),
            201,
            None,
        )
        .await;
    let v1 = assert_written(&r, "pc/a");
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 2, "expected_version": 0})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_current(&r, v1, &json!(1));
    // Mismatch on an absent record: current is null.
    let r = t
        .check(
            "PUT",
            &rec("pc/none"),
            &[],
            j(json!({"value": 2, "expected_version": v1})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_eq!(
        r.body.get("current"),
        Some(&Value::Null),
        "current: null when absent: {}",
        r.text
    );
    t.check("GET", &rec("pc/none"), &[], B::None, 404, Some("not_found"))
        .await;
    // The right version applies.
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 2, "expected_version": v1})),
            200,
            None,
        )
        .await;
    let v2 = assert_written(&r, "pc/a");
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 3, "expected_version": v1})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_current(&r, v2, &json!(2));

    // If-Match / If-None-Match: 412.
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[("if-match", &etag(v2))],
            j(json!({"value": 3})),
            200,
            None,
        )
        .await;
    let v3 = assert_written(&r, "pc/a");
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[("if-match", &etag(v2))],
            j(json!({"value": 4})),
            412,
            Some("precondition_failed"),
        )
        .await;
    assert_eq!(
        r.body["current"],
        json!({"version": v3, "value": 3}),
        "a 412 carries current as a 409 does: {}",
        r.text
    );
    let list = format!("\"1\", {}", etag(v3));
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[("if-match", &list)],
            j(json!({"value": 4})),
            200,
            None,
        )
        .await;
    let v4 = assert_written(&r, "pc/a");
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-match", "*")],
        j(json!({"value": 5})),
        200,
        None,
    )
    .await;
    t.check(
        "PUT",
        &rec("pc/absent"),
        &[("if-match", "*")],
        j(json!({"value": 1})),
        412,
        Some("precondition_failed"),
    )
    .await;
    t.check(
        "PUT",
        &rec("pc/absent"),
        &[("if-match", &etag(v4))],
        j(json!({"value": 1})),
        412,
        Some("precondition_failed"),
    )
    .await;
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-none-match", "*")],
        j(json!({"value": 6})),
        412,
        Some("precondition_failed"),
    )
    .await;
    let r = t
        .check(
            "PUT",
            &rec("pc/inm"),
            &[("if-none-match", "*")],
            j(json!({"value": 1})),
            201,
            None,
        )
        .await;
    assert_written(&r, "pc/inm");
    let got = t.check("GET", &rec("pc/a"), &[], B::None, 200, None).await;
    assert_eq!(
        got.body["value"],
        json!(5),
        "failed preconditions applied nothing"
    );
    let cur = got.u64("version");

    // Header and body precondition together: 400, nothing applied.
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-match", &etag(cur))],
        j(json!({"value": 7, "expected_version": cur})),
        400,
        Some("invalid_request"),
    )
    .await;
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-match", "1")],
        j(json!({"value": 7})),
        400,
        Some("invalid_request"),
    )
    .await;

    // force skips the precondition.
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 8, "expected_version": 1, "force": true})),
            200,
            None,
        )
        .await;
    let v8 = assert_written(&r, "pc/a");
    assert!(v8 > cur);
    let r = t
        .check(
            "PUT",
            &rec("pc/forced"),
            &[],
            j(json!({"value": 1, "expected_version": 12345, "force": true})),
            201,
            None,
        )
        .await;
    assert_written(&r, "pc/forced");
    let got = t.check("GET", &rec("pc/a"), &[], B::None, 200, None).await;
    assert_eq!((got.body["value"].clone(), got.u64("version")), (json!(8), v8));

    // Versions are never reused, not even after delete and re-create.
    let r = t.check("DELETE", &rec("pc/a"), &[], B::None, 200, None).await;
    let deleted_at = r.u64("revision");
    assert!(deleted_at > v8);
    t.check("GET", &rec("pc/a"), &[], B::None, 404, Some("not_found"))
        .await;
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 1, "expected_version": v8})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_eq!(r.body.get("current"), Some(&Value::Null));
    let r = t
        .check(
            "PUT",
            &rec("pc/a"),
            &[],
            j(json!({"value": 1, "expected_version": 0})),
            201,
            None,
        )
        .await;
    let again = assert_written(&r, "pc/a");
    assert!(
        again > deleted_at && again > v8,
        "re-created version {again} is new (old {v8})"
    );
    t.check(
        "PUT",
        &rec("pc/a"),
        &[("if-match", &etag(v8))],
        j(json!({"value": 2})),
        412,
        Some("precondition_failed"),
    )
    .await;
}
