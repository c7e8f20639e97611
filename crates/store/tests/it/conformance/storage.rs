//! What storage keeps: reopening, exact round trips, control characters, and the
//! migrated schema.

use super::*;

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

/// The freshly migrated database is exactly the one schema description.
async fn schema_matches_description(env: Env) {
    assert_eq!(env.store.schema_drift().await.unwrap(), Vec::<String>::new());
}

lockstep_testkit::backends!(
    crate::common::run;
    reopen,
    values_round_trip,
    control_characters,
    schema_matches_description,
);
