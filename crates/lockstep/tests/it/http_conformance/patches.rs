//! PATCH and DELETE.

use super::*;

pub(super) async fn patches(t: &T) {
    let r = t
        .check(
            "PUT",
            &rec("pa/a"),
            &[],
            j(json!({"value": {"a": 1, "b": {"c": 2}, "d": [1]}})),
            201,
            None,
        )
        .await;
    let v1 = assert_written(&r, "pa/a");

    // Merge patch (RFC 7396).
    let r = t
        .check(
            "PATCH",
            &rec("pa/a"),
            &[],
            merge(json!({"a": null, "b": {"e": 3}, "f": "x"})),
            200,
            None,
        )
        .await;
    assert_keys(&r.body, &["key", "version", "value", "revision"]);
    let v2 = r.u64("version");
    assert!(v2 > v1);
    assert_eq!(r.u64("revision"), v2);
    assert_eq!(r.header("etag"), Some(etag(v2).as_str()));
    let merged = json!({"b": {"c": 2, "e": 3}, "d": [1], "f": "x"});
    assert_eq!(r.body["value"], merged);
    let got = t.check("GET", &rec("pa/a"), &[], B::None, 200, None).await;
    assert_eq!(
        (got.body["value"].clone(), got.u64("version")),
        (merged.clone(), v2)
    );

    // JSON Patch (RFC 6902) with a passing test.
    let ops = json!([{"op": "test", "path": "/f", "value": "x"}, {"op": "add", "path": "/d/-", "value": 2}]);
    let r = t.check("PATCH", &rec("pa/a"), &[], jpatch(ops), 200, None).await;
    let v3 = r.u64("version");
    assert_eq!(r.body["value"]["d"], json!([1, 2]));
    let current = r.body["value"].clone();

    // A failing test: 409 patch_test_failed with the current state; nothing applied.
    let ops = json!([{"op": "test", "path": "/f", "value": "y"}, {"op": "add", "path": "/g", "value": 1}]);
    let r = t
        .check(
            "PATCH",
            &rec("pa/a"),
            &[],
            jpatch(ops),
            409,
            Some("patch_test_failed"),
        )
        .await;
    assert_current(&r, v3, &current);
    // A patch that cannot apply: 422 invalid_patch.
    let ops = json!([{"op": "remove", "path": "/nope/deeper"}]);
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[],
        jpatch(ops),
        422,
        Some("invalid_patch"),
    )
    .await;
    let ops = json!([{"op": "remove", "path": "/missing"}]);
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[],
        jpatch(ops),
        422,
        Some("invalid_patch"),
    )
    .await;
    let got = t.check("GET", &rec("pa/a"), &[], B::None, 200, None).await;
    assert_eq!(
        (got.body["value"].clone(), got.u64("version")),
        (current.clone(), v3)
    );

    // Preconditions: ?expected_version (409) and If-Match (412); both is 400.
    let path = format!("{}?expected_version={v1}", rec("pa/a"));
    let r = t
        .check(
            "PATCH",
            &path,
            &[],
            merge(json!({"z": 1})),
            409,
            Some("version_mismatch"),
        )
        .await;
    assert_current(&r, v3, &current);
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[("if-match", &etag(v1))],
        merge(json!({"z": 1})),
        412,
        Some("precondition_failed"),
    )
    .await;
    let path = format!("{}?expected_version={v3}", rec("pa/a"));
    t.check(
        "PATCH",
        &path,
        &[("if-match", &etag(v3))],
        merge(json!({"z": 1})),
        400,
        Some("invalid_request"),
    )
    .await;
    let r = t
        .check("PATCH", &path, &[], merge(json!({"z": 1})), 200, None)
        .await;
    let v4 = r.u64("version");
    let r = t
        .check(
            "PATCH",
            &rec("pa/a"),
            &[("if-match", &etag(v4))],
            merge(json!({"z": 2})),
            200,
            None,
        )
        .await;
    assert_eq!(r.body["value"]["z"], json!(2));
    // PATCH of an absent record: 404.
    t.check(
        "PATCH",
        &rec("pa/absent"),
        &[],
        merge(json!({"z": 1})),
        404,
        Some("not_found"),
    )
    .await;
    // Wrong content type.
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[],
        B::Raw("text/plain", "{}".into()),
        415,
        Some("unsupported_media_type"),
    )
    .await;
    t.check(
        "PATCH",
        &rec("pa/a"),
        &[],
        j(json!({"z": 3})),
        415,
        Some("unsupported_media_type"),
    )
    .await;
}

pub(super) async fn deletes(t: &T) {
    let r = t
        .check("PUT", &rec("de/a"), &[], j(json!({"value": 1})), 201, None)
        .await;
    let v1 = assert_written(&r, "de/a");
    let path = format!("{}?expected_version={}", rec("de/a"), v1 + 1000);
    let r = t
        .check("DELETE", &path, &[], B::None, 409, Some("version_mismatch"))
        .await;
    assert_current(&r, v1, &json!(1));
    t.check(
        "DELETE",
        &rec("de/a"),
        &[("if-match", &etag(v1 + 1000))],
        B::None,
        412,
        Some("precondition_failed"),
    )
    .await;
    let path = format!("{}?expected_version={v1}", rec("de/a"));
    t.check(
        "DELETE",
        &path,
        &[("if-match", &etag(v1))],
        B::None,
        400,
        Some("invalid_request"),
    )
    .await;
    t.check("GET", &rec("de/a"), &[], B::None, 200, None).await;
    let r = t.check("DELETE", &path, &[], B::None, 200, None).await;
    assert_eq!(r.body["key"], json!("de/a"));
    assert_eq!(r.body["deleted"], json!(true));
    assert!(r.u64("revision") > v1);
    t.check("GET", &rec("de/a"), &[], B::None, 404, Some("not_found"))
        .await;
    t.check("DELETE", &rec("de/a"), &[], B::None, 404, Some("not_found"))
        .await;

    let r = t
        .check("PUT", &rec("de/b"), &[], j(json!({"value": 1})), 201, None)
        .await;
    let v = assert_written(&r, "de/b");
    let r = t
        .check(
            "DELETE",
            &rec("de/b"),
            &[("if-match", &etag(v))],
            B::None,
            200,
            None,
        )
        .await;
    assert_eq!(r.body["deleted"], json!(true));
    t.check("DELETE", &rec("de/b"), &[], B::None, 404, Some("not_found"))
        .await;
}
