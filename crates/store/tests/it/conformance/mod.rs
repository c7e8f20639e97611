//! Storage conformance suite (SPEC §12): the same cases run against every backend
//! of `lockstep_store::Store`. Each case is an `async fn case_name(env: Env)`;
//! the `lockstep_testkit::backends!` list at the bottom generates
//! `sqlite::case_name` and `postgres::case_name` tests for each.
//!
//! PostgreSQL runs against `LOCKSTEP_TEST_DATABASE_URL` (a fresh schema per
//! test); without it the PostgreSQL cases are skipped, or fail when PostgreSQL
//! is required (`CI`, `LOCKSTEP_REQUIRE_PG=1`).
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep-store --test it conformance:: -- --test-threads=4
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use lockstep_core::record::EtagMatch;
use lockstep_core::txn::OpResult;
use lockstep_core::{Command, Current, Error as CoreError, Outcome, Precondition};
use lockstep_store::Error;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

// ---------------------------------------------------------------------------
// 7. Listing: prefixes, byte order, paging.

const LIST_KEYS: &[&str] = &[
    "a",
    "a/b",
    "a/b/c",
    "a:c",
    "a0",
    "aB",
    "ab",
    "abc",
    "abd",
    "ac",
    "b",
    "z",
    "x",
    "é",
    "éa",
    "ü",
    "日本",
    "日本語",
    "😀",
    "x\u{10FFFF}",
    "x\u{10FFFF}a",
    "y",
    "Z",
    " space",
    "~",
];

async fn list_order_and_paging(env: Env) {
    let s = &env.store;
    let mut versions = BTreeMap::new();
    for k in LIST_KEYS {
        let (r, _) = put_outcome(&exec(s, put(k, json!({ "key": k }))).await);
        versions.insert(k.to_string(), r.version);
    }
    let mut sorted: Vec<String> = LIST_KEYS.iter().map(|k| k.to_string()).collect();
    sorted.sort(); // byte order of UTF-8 = code point order
    let all = list(s, "", None, 1000).await;
    assert_eq!(keys(&all), sorted, "listing is in byte order");
    for r in &all {
        assert_eq!(r.value, json!({ "key": r.key }));
        assert_eq!(Some(&r.version), versions.get(&r.key));
    }

    // Every prefix of every key (by characters), and a few more.
    let mut prefixes: BTreeSet<String> = BTreeSet::new();
    for k in LIST_KEYS {
        let chars: Vec<char> = k.chars().collect();
        for n in 0..=chars.len() {
            prefixes.insert(chars[..n].iter().collect());
        }
    }
    prefixes.extend(["q", "a/", "a:", "aa", "abcd", "\u{10FFFF}", "日", "x\u{10FFFE}"].map(String::from));
    for p in &prefixes {
        let want: Vec<String> = sorted
            .iter()
            .filter(|k| k.starts_with(p.as_str()))
            .cloned()
            .collect();
        assert_eq!(keys(&list(s, p, None, 1000).await), want, "prefix {p:?}");
    }
    assert_eq!(
        keys(&list(s, "ab", None, 100).await),
        ["ab", "abc", "abd"],
        "\"ab\" is exact"
    );
    assert_eq!(keys(&list(s, "abc", None, 100).await), ["abc"]);
    assert_eq!(keys(&list(s, "ac", None, 100).await), ["ac"]);
    assert_eq!(keys(&list(s, "a/", None, 100).await), ["a/b", "a/b/c"]);
    assert_eq!(
        keys(&list(s, "x\u{10FFFF}", None, 100).await),
        ["x\u{10FFFF}", "x\u{10FFFF}a"]
    );

    // Paging with `after` yields every record exactly once, in order.
    for p in ["", "a", "ab", "x", "日本", "é"] {
        let want: Vec<String> = sorted.iter().filter(|k| k.starts_with(p)).cloned().collect();
        for limit in [1, 2, 3, 7, 1000] {
            let mut got = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = list(s, p, after.as_deref(), limit).await;
                assert!(page.len() <= limit, "a page holds at most `limit` records");
                got.extend(keys(&page));
                match page.last() {
                    Some(last) if page.len() == limit => after = Some(last.key.clone()),
                    _ => break,
                }
                assert!(
                    got.len() <= want.len(),
                    "paging must terminate (prefix {p:?}, limit {limit})"
                );
            }
            assert_eq!(got, want, "paging prefix {p:?} by {limit}");
        }
    }

    // `after` outside the prefix's range, or between keys.
    assert_eq!(
        keys(&list(s, "ab", Some("a"), 100).await),
        ["ab", "abc", "abd"],
        "after before the prefix"
    );
    assert_eq!(keys(&list(s, "ab", Some("ab"), 100).await), ["abc", "abd"]);
    assert_eq!(
        keys(&list(s, "ab", Some("abb"), 100).await),
        ["abc", "abd"],
        "after that is not a key"
    );
    assert!(
        list(s, "ab", Some("ac"), 100).await.is_empty(),
        "after past the prefix"
    );
    assert_eq!(
        keys(&list(s, "", Some("é"), 100).await),
        sorted
            .iter()
            .filter(|k| k.as_str() > "é")
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(list(s, "", Some("\u{10FFFF}"), 100).await.is_empty());

    // Deleted records vanish from listings; the rest keep their place.
    exec(s, delete("abc", Precondition::None)).await;
    assert_eq!(keys(&list(s, "ab", None, 100).await), ["ab", "abd"]);
}

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

// ---------------------------------------------------------------------------
// 9. Namespaces are isolated.

async fn namespaces(env: Env) {
    let s = &env.store;
    let x = |ns: &'static str, cmd| {
        let s = s.clone();
        async move { s.execute(ns, cmd, ACTOR).await }
    };
    let (ra, _) = put_outcome(&ok(x("app", put("k", json!("in app"))).await));
    let (rb, created) = put_outcome(&ok(x("app2", put("k", json!("in app2"))).await));
    assert!(created, "the same key in another namespace is another record");
    ok(x("app", put("only-app", json!(1))).await);
    ok(x("app-x", put("k", json!("in app-x"))).await);
    assert_ne!(ra.version, rb.version);
    assert_eq!(
        s.get("app", "k").await.expect("get").map(|r| r.value),
        Some(json!("in app"))
    );
    assert_eq!(
        s.get("app2", "k").await.expect("get").map(|r| r.value),
        Some(json!("in app2"))
    );
    assert_eq!(s.get("app2", "only-app").await.expect("get"), None);
    let l = s.list("app2", "", None, 100).await.expect("list");
    assert_eq!(keys(&l), ["k"]);

    // Preconditions see only their own namespace.
    match x(
        "app2",
        put_if("k", json!(0), Precondition::ExpectedVersion(ra.version)),
    )
    .await
    {
        Err(Error::Core(CoreError::VersionMismatch { current: Some(c), .. })) => {
            assert_eq!(c.version, rb.version)
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    ok(x("app2", delete("k", Precondition::None)).await);
    assert_eq!(
        s.get("app", "k").await.expect("get").map(|r| r.version),
        Some(ra.version)
    );
    ok(x("app2", put("k", json!("back"))).await);

    // delete_namespace removes its own records only.
    assert_eq!(s.delete_namespace("app").await.expect("delete_namespace"), 2);
    assert_eq!(s.get("app", "k").await.expect("get"), None);
    assert!(s.list("app", "", None, 100).await.expect("list").is_empty());
    assert_eq!(
        s.get("app2", "k").await.expect("get").map(|r| r.value),
        Some(json!("back"))
    );
    assert_eq!(
        s.get("app-x", "k").await.expect("get").map(|r| r.value),
        Some(json!("in app-x"))
    );
    assert_eq!(
        s.delete_namespace("app").await.expect("delete_namespace"),
        0,
        "a second delete removes nothing"
    );
    assert_eq!(
        s.delete_namespace("never-used").await.expect("delete_namespace"),
        0
    );

    // The namespace comes back on the next write, with a fresh, larger version.
    let (again, created) = put_outcome(&ok(x("app", put("k", json!("new"))).await));
    assert!(created);
    assert!(again.version > rb.version && again.version > ra.version);
}

// ---------------------------------------------------------------------------
// 10. Real concurrency: compare-and-swap increments lose no update. On
//     PostgreSQL the tasks are spread over three store instances (three
//     processes, three pools).

const CAS_TASKS: usize = 32;
const CAS_INCREMENTS: usize = 50;

async fn concurrent_cas(env: Env) {
    let stores = env.instances(3).await;
    let (start, _) = put_outcome(&exec(&env.store, put("counter", json!(0))).await);
    let retries = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(CAS_TASKS));
    let mut tasks = Vec::new();
    for t in 0..CAS_TASKS {
        let store = stores[t % stores.len()].clone();
        let (retries, barrier) = (retries.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // (version written, value written) of every successful swap.
            let mut wins = Vec::with_capacity(CAS_INCREMENTS);
            let mut cur = get_some(&store, "counter").await.current();
            while wins.len() < CAS_INCREMENTS {
                let n = cur.value.as_i64().expect("the counter holds an integer");
                let cmd = put_if(
                    "counter",
                    json!(n + 1),
                    Precondition::ExpectedVersion(cur.version),
                );
                match store.execute(NS, cmd, ACTOR).await {
                    Ok(c) => {
                        let (r, created) = put_outcome(&c);
                        assert!(!created);
                        wins.push((r.version, n + 1));
                        cur = r.current();
                    }
                    Err(Error::Core(CoreError::VersionMismatch { expected, current })) => {
                        retries.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(expected, cur.version);
                        let now = current.expect("the counter exists");
                        assert!(now.version > cur.version, "a mismatch reports a newer version");
                        // Half the tasks merge from the conflict answer, half re-read.
                        cur = if t % 2 == 0 {
                            now
                        } else {
                            get_some(&store, "counter").await.current()
                        };
                    }
                    Err(e) => panic!("unexpected error in task {t}: {e:?}"),
                }
            }
            wins
        }));
    }
    let mut wins = Vec::new();
    for task in tasks {
        wins.extend(task.await.expect("a CAS task panicked"));
    }
    let total = CAS_TASKS * CAS_INCREMENTS;
    assert_eq!(wins.len(), total);
    let last = get_some(&env.store, "counter").await;
    assert_eq!(
        last.value,
        json!(total),
        "no lost update: final value == successful swaps"
    );
    // Linearizable: ordered by version, the successful swaps wrote 1, 2, 3, …
    wins.sort_unstable();
    let versions: BTreeSet<u64> = wins.iter().map(|w| w.0).collect();
    assert_eq!(
        versions.len(),
        total,
        "every successful write has its own version"
    );
    assert!(wins[0].0 > start.version);
    for (i, (_, v)) in wins.iter().enumerate() {
        assert_eq!(
            *v,
            i64::try_from(i + 1).expect("small"),
            "the {i}-th swap by version"
        );
    }
    assert_eq!(last.version, wins[total - 1].0);
    for store in &stores {
        assert_eq!(
            get_some(store, "counter").await,
            last,
            "every instance reads the same record"
        );
    }
    println!(
        "{}: {total} swaps, {} retries",
        env.store.backend(),
        retries.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------------------
// 11. Create race: exactly one of 50 concurrent `expected_version: 0` PUTs wins.

async fn create_race(env: Env) {
    const RACERS: usize = 50;
    let stores = env.instances(3).await;
    for round in 0..5 {
        let key = format!("race/{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let store = stores[i % stores.len()].clone();
            let (key, barrier) = (key.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store
                    .execute(
                        NS,
                        put_if(&key, json!(i), Precondition::ExpectedVersion(0)),
                        ACTOR,
                    )
                    .await
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            match task.await.expect("a racer panicked") {
                Ok(c) => winners.push(put_outcome(&c)),
                Err(Error::Core(CoreError::VersionMismatch {
                    expected: 0,
                    current: Some(cur),
                })) => losers.push(cur),
                Err(e) => panic!("unexpected answer in the create race: {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one create wins (round {round})");
        assert_eq!(losers.len(), RACERS - 1);
        let (won, created) = winners.pop().expect("one winner");
        assert!(created);
        for cur in &losers {
            assert_eq!(cur, &won.current(), "losers see the winner's record");
        }
        assert_eq!(get_some(&env.store, &key).await, won);
    }
}

// ---------------------------------------------------------------------------
// 12. Reopening: acknowledged writes are there after a restart, with their
//     versions, and revisions keep growing.

async fn reopen(env: Env) {
    const N: usize = 200;
    let mut tasks = Vec::new();
    for i in 0..N {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            let c = exec(&store, put(&format!("r/{i:03}"), json!({ "i": i }))).await;
            put_outcome(&c).0
        }));
    }
    let mut written = BTreeMap::new();
    for t in tasks {
        let r = t.await.expect("a writer panicked");
        written.insert(r.key.clone(), r);
    }
    for i in (0..N).step_by(10) {
        let key = format!("r/{i:03}");
        exec(&env.store, delete(&key, Precondition::None)).await;
        written.remove(&key);
    }
    let (ttl_rec, _) = put_outcome(
        &exec(
            &env.store,
            put_with("ttl", json!(1), Precondition::None, Some(3_600_000), false),
        )
        .await,
    );
    let last = exec(&env.store, put("last", json!("x"))).await.revision;
    let sqlite = env.is_sqlite();

    let env = env.reopen().await;
    let s = &env.store;
    let listed = list(s, "r/", None, 1000).await;
    assert_eq!(listed.len(), written.len());
    for r in &listed {
        assert_eq!(written.get(&r.key), Some(r), "record {} after reopening", r.key);
    }
    assert_eq!(get_some(s, "ttl").await, ttl_rec, "expires_at survives");
    assert_eq!(get_some(s, "last").await.version, last);
    let next = exec(s, put("after", json!(1))).await.revision;
    if sqlite {
        assert_eq!(next, last + 1, "the revision counter survives");
    } else {
        assert!(next > last, "the revision counter survives");
    }
    let (r, created) = put_outcome(&exec(s, put("r/000", json!("back"))).await);
    assert!(created && r.version > next);
}

// ---------------------------------------------------------------------------
// 13. Stored values round-trip exactly (JSON of every kind, non-ASCII keys).

async fn values_round_trip(env: Env) {
    let s = &env.store;
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(-9_223_372_036_854_775_807_i64),
        json!(18_446_744_073_709_551_615_u64),
        json!(1.25),
        json!(""),
        json!("ünïcødé \u{0000} \"quoted\" \\ 😀"),
        json!([1, "two", [3], {"four": 4}]),
        json!({"nested": {"deep": [{"a": null}]}, "": "empty key"}),
    ];
    for (i, v) in values.iter().enumerate() {
        let key = format!("v/{i}/ключ");
        exec(s, put(&key, v.clone())).await;
        assert_eq!(&get_some(s, &key).await.value, v, "value {v}");
    }
    let big = json!({"blob": "x".repeat(512 * 1024)});
    exec(s, put("big", big.clone())).await;
    assert_eq!(get_some(s, "big").await.value, big);
    let too_big = json!("x".repeat(1024 * 1024 + 1));
    let e = refused(s, put("too-big", too_big)).await;
    assert!(matches!(e, CoreError::PayloadTooLarge(_)), "{e:?}");
}

// ---------------------------------------------------------------------------
// 13. One rule on every backend: strings stored or compared as columns refuse
//     control characters (U+0000 included) as invalid requests, never a storage
//     error; JSON values, entry data and gate meta keep U+0000 exactly.

async fn control_characters(env: Env) {
    let s = &env.store;
    let acquire = Command::Acquire {
        name: "l".into(),
        req: lockstep_core::lease::AcquireReq {
            ttl_ms: 1000,
            holder: Some("a\u{0}b".into()),
            token: "t".into(),
            wait: None,
        },
    };
    let e = refused(s, acquire).await;
    assert!(matches!(e, CoreError::InvalidRequest(_)), "holder: {e:?}");
    let begin = Command::IdemBegin {
        scope: "s".into(),
        key: "k".into(),
        req: lockstep_core::idempotency::Begin {
            fingerprint: "f\u{0}".into(),
            token: "t".into(),
            lock_ms: 1000,
            ttl_ms: 60_000,
        },
        app: true,
    };
    let e = refused(s, begin).await;
    assert!(matches!(e, CoreError::InvalidRequest(_)), "fingerprint: {e:?}");
    let invalid = |r: Result<(), Error>, what: &str| {
        assert!(
            matches!(r, Err(Error::Core(CoreError::InvalidRequest(_)))),
            "{what}: {r:?}"
        );
    };
    invalid(s.list(NS, "a\u{0}", None, 10).await.map(drop), "records prefix");
    invalid(
        s.list_feeds(NS, "a\u{0}", None, 10).await.map(drop),
        "feeds prefix",
    );
    invalid(
        s.list_changes(NS, 0, Some("a\u{0}"), None, 10).await.map(drop),
        "changes prefix",
    );
    // JSON keeps every character.
    let value = json!({"s": "x\u{0}y", "\u{0}": ["\u{1}"]});
    let data = value.as_object().cloned().unwrap();
    exec(
        s,
        Command::Append {
            feed: "f".into(),
            entry: lockstep_core::feed::NewEntry {
                id: "e".into(),
                data,
                at: None,
            },
        },
    )
    .await;
    let page = s.list_entries(NS, "f", true, None, 10).await.unwrap();
    assert_eq!(Value::Object(page.entries[0].data.clone()), value);
    exec(
        s,
        Command::PutGate {
            id: "g".into(),
            policy: None,
            meta: Some(value.clone()),
        },
    )
    .await;
    assert_eq!(s.get_gate(NS, "g").await.unwrap().unwrap().meta, value);
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

/// The freshly migrated database is exactly the one schema description.
async fn schema_matches_description(env: Env) {
    assert_eq!(env.store.schema_drift().await.unwrap(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------

lockstep_testkit::backends!(
    crate::common::run;
    put_versions,
    expected_version,
    header_preconditions,
    patch,
    delete_records,
    list_order_and_paging,
    transactions,
    namespaces,
    concurrent_cas,
    create_race,
    reopen,
    values_round_trip,
    control_characters,
    schema_matches_description,
);

// The cases that move the store's clock instead of sleeping.
lockstep_testkit::backends!(
    manual_clock => crate::common::run_manual;
    ttl,
    manual_clock_expiry,
);
