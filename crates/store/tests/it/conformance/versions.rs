//! Record versions and preconditions: PUT versions, `expected_version` and
//! force, If-Match / If-None-Match.

use super::*;

// ---------------------------------------------------------------------------
// 1. PUT: create then replace; versions are revisions, strictly increasing and
//    never reused (not even after delete and re-create).

async fn put_versions(env: Env) {
    let s = &env.store;
    let c1 = exec(s, put("k", json!(1))).await;
    let (r1, created) = put_outcome(&c1);
    assert!(created, "the first PUT creates");
    assert_eq!((r1.key.as_str(), &r1.value), ("k", &json!(1)));
    assert_eq!(r1.expires_at, None);
    assert_eq!(r1.created_at, r1.updated_at);
    let g1 = get_some(s, "k").await;
    assert_eq!(g1, r1, "get returns the record as written");

    let c2 = exec(s, put("k", json!({"n": 2}))).await;
    let (r2, created) = put_outcome(&c2);
    assert!(!created, "a second PUT replaces");
    assert!(r2.version > r1.version, "versions strictly increase");
    assert_eq!(r2.created_at, r1.created_at, "replacing keeps created_at");
    assert!(r2.updated_at >= r1.updated_at);
    assert_eq!(get_some(s, "k").await, r2);

    let c3 = exec(s, put("other", json!(null))).await;
    assert!(c3.revision > c2.revision, "every write advances the revision");

    let c4 = exec(s, delete("k", Precondition::None)).await;
    assert!(
        matches!(&c4.outcome, Outcome::Delete { key } if key == "k"),
        "{:?}",
        c4.outcome
    );
    assert!(c4.revision > c3.revision);
    assert_eq!(get(s, "k").await, None);

    let c5 = exec(s, put("k", json!(3))).await;
    let (r5, created) = put_outcome(&c5);
    assert!(created, "PUT after DELETE creates again");
    let before = [r1.version, r2.version, c3.revision, c4.revision];
    assert!(
        before.iter().all(|v| r5.version > *v),
        "a re-created record's version {} is greater than every earlier one {before:?}",
        r5.version
    );
    assert_eq!(get_some(s, "k").await.version, r5.version);

    // Many writes: the versions of one key strictly increase.
    let mut last = r5.version;
    for i in 0..20 {
        let (r, _) = put_outcome(&exec(s, put("k", json!(i))).await);
        assert!(r.version > last);
        last = r.version;
    }
}

// ---------------------------------------------------------------------------
// 2. expected_version (409 with the current state) and force.

async fn expected_version(env: Env) {
    let s = &env.store;
    let (r1, created) =
        put_outcome(&exec(s, put_if("k", json!("a"), Precondition::ExpectedVersion(0))).await);
    assert!(created, "expected_version 0 on an absent record creates it");

    let e = refused(s, put_if("k", json!("b"), Precondition::ExpectedVersion(0))).await;
    assert_eq!(
        e,
        CoreError::VersionMismatch {
            expected: 0,
            current: Some(Current {
                version: r1.version,
                value: json!("a")
            })
        },
        "expected_version 0 on an existing record reports its version and value"
    );

    let e = refused(
        s,
        put_if("absent", json!(1), Precondition::ExpectedVersion(r1.version)),
    )
    .await;
    assert_eq!(
        e,
        CoreError::VersionMismatch {
            expected: r1.version,
            current: None
        }
    );
    assert_eq!(get(s, "absent").await, None, "a refused PUT writes nothing");

    let (r2, created) = put_outcome(
        &exec(
            s,
            put_if("k", json!("c"), Precondition::ExpectedVersion(r1.version)),
        )
        .await,
    );
    assert!(!created);
    assert!(r2.version > r1.version);

    let e = refused(
        s,
        put_if("k", json!("stale"), Precondition::ExpectedVersion(r1.version)),
    )
    .await;
    assert_eq!(
        e,
        CoreError::VersionMismatch {
            expected: r1.version,
            current: Some(Current {
                version: r2.version,
                value: json!("c")
            })
        }
    );
    assert_eq!(
        get_some(s, "k").await,
        r2,
        "a refused PUT leaves the record as it was"
    );

    // force skips the precondition.
    let c = exec(
        s,
        put_with(
            "k",
            json!("forced"),
            Precondition::ExpectedVersion(r1.version),
            None,
            true,
        ),
    )
    .await;
    let (r3, created) = put_outcome(&c);
    assert!(!created);
    assert!(r3.version > r2.version);
    assert_eq!(get_some(s, "k").await.value, json!("forced"));
    let (_, created) = put_outcome(
        &exec(
            s,
            put_with("new", json!(1), Precondition::ExpectedVersion(12345), None, true),
        )
        .await,
    );
    assert!(created, "a forced PUT of an absent record creates it");
    let (_, created) = put_outcome(
        &exec(
            s,
            put_with("new", json!(2), Precondition::ExpectedVersion(0), None, true),
        )
        .await,
    );
    assert!(!created);

    // Refusals consume no revision.
    let last = exec(s, put("tick", json!(0))).await.revision;
    for _ in 0..3 {
        refused(s, put_if("k", json!(0), Precondition::ExpectedVersion(1))).await;
    }
    let next = exec(s, put("tick", json!(1))).await.revision;
    if env.is_sqlite() {
        assert_eq!(next, last + 1, "refused writes do not advance the revision");
    } else {
        assert!(next > last);
    }
}

// ---------------------------------------------------------------------------
// 3. If-Match / If-None-Match (412).

async fn header_preconditions(env: Env) {
    let s = &env.store;
    use EtagMatch::{Any, Versions};
    let (r1, created) = put_outcome(&exec(s, put_if("k", json!(1), Precondition::IfNoneMatch(Any))).await);
    assert!(created, "If-None-Match: * creates an absent record");
    let e = refused(s, put_if("k", json!(2), Precondition::IfNoneMatch(Any))).await;
    assert!(matches!(e, CoreError::PreconditionFailed { .. }), "{e:?}");
    let e = refused(
        s,
        put_if(
            "k",
            json!(2),
            Precondition::IfNoneMatch(Versions(vec![r1.version])),
        ),
    )
    .await;
    assert!(matches!(e, CoreError::PreconditionFailed { .. }), "{e:?}");

    let e = refused(s, put_if("absent", json!(1), Precondition::IfMatch(Any))).await;
    assert!(
        matches!(e, CoreError::PreconditionFailed { .. }),
        "If-Match: * on an absent record: {e:?}"
    );
    assert_eq!(get(s, "absent").await, None);

    let (r2, _) = put_outcome(
        &exec(
            s,
            put_if(
                "k",
                json!(2),
                Precondition::IfMatch(Versions(vec![1, r1.version])),
            ),
        )
        .await,
    );
    let e = refused(
        s,
        put_if("k", json!(3), Precondition::IfMatch(Versions(vec![r1.version]))),
    )
    .await;
    assert!(matches!(e, CoreError::PreconditionFailed { .. }), "{e:?}");
    let (r3, _) = put_outcome(&exec(s, put_if("k", json!(3), Precondition::IfMatch(Any))).await);
    let (r4, _) = put_outcome(
        &exec(
            s,
            put_if(
                "k",
                json!(4),
                Precondition::IfNoneMatch(Versions(vec![r2.version])),
            ),
        )
        .await,
    );
    assert!(r4.version > r3.version);

    // PATCH and DELETE take them too.
    let e = refused(
        s,
        merge(
            "k",
            json!({"a": 1}),
            Precondition::IfMatch(Versions(vec![r3.version])),
        ),
    )
    .await;
    assert!(matches!(e, CoreError::PreconditionFailed { .. }), "{e:?}");
    let e = refused(s, delete("k", Precondition::IfMatch(Versions(vec![r3.version])))).await;
    assert!(matches!(e, CoreError::PreconditionFailed { .. }), "{e:?}");
    let e = refused(s, delete("k", Precondition::IfNoneMatch(Any))).await;
    assert!(matches!(e, CoreError::PreconditionFailed { .. }), "{e:?}");
    assert_eq!(get_some(s, "k").await, r4, "refusals change nothing");
    exec(s, delete("k", Precondition::IfMatch(Versions(vec![r4.version])))).await;
    assert_eq!(get(s, "k").await, None);
}

lockstep_testkit::backends!(
    crate::common::run;
    put_versions,
    expected_version,
    header_preconditions,
);
