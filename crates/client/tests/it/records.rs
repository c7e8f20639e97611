//! Records, transactions and `update_with`.

use crate::common::Ctx;
use futures_util::TryStreamExt;
use lockstep_client::api::records::{ListQuery, PutRecordBody};
use lockstep_client::api::{Compare, Op, Txn};
use lockstep_client::Error;
use serde_json::{json, Value};
use std::time::Duration;

lockstep_testkit::backends!(crate::common::run; cas_and_odd_keys, listing_pages, txn_typed, counter_has_every_increment, update_with_reports_conflict);

async fn cas_and_odd_keys(c: Ctx) {
    let key = "user/1 ü?#%";
    let w = c
        .app
        .put(key, &PutRecordBody::new(json!({"n": 1})).expected_version(0))
        .await
        .unwrap();
    assert!(w.created && !w.replayed);
    assert_eq!(w.put.key, key);
    let e = c
        .app
        .put(key, &PutRecordBody::new(json!(2)).expected_version(0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("version_mismatch"));
    assert_eq!(e.status(), Some(409));
    let cur = e.current().unwrap().unwrap();
    assert_eq!((cur.version, &cur.value), (w.put.version, &json!({"n": 1})));
    let r = c.app.get(key).await.unwrap().unwrap();
    assert_eq!(r.value, json!({"n": 1}));
    let p = c
        .app
        .merge_patch(key, &json!({"m": 2}), Some(r.version))
        .await
        .unwrap();
    assert_eq!(p.value, json!({"n": 1, "m": 2}));
    let e = c.app.delete(key, Some(r.version)).await.unwrap_err();
    assert_eq!(e.code(), Some("version_mismatch"));
    c.app.delete(key, Some(p.version)).await.unwrap();
    assert!(c.app.get(key).await.unwrap().is_none());
    let e = c.app.delete(key, None).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    // Another namespace is another place.
    assert!(c.client.ns("other").get("user/1").await.unwrap().is_none());
}

async fn listing_pages(c: Ctx) {
    for i in 0..7 {
        c.app
            .put(&format!("k/{i}"), &PutRecordBody::new(json!(i)))
            .await
            .unwrap();
    }
    c.app.put("z", &PutRecordBody::new(json!(0))).await.unwrap();
    let q = ListQuery {
        prefix: "k/".into(),
        limit: Some(3),
        cursor: None,
    };
    let keys: Vec<String> = c.app.records(q).map_ok(|r| r.key).try_collect().await.unwrap();
    assert_eq!(keys, (0..7).map(|i| format!("k/{i}")).collect::<Vec<_>>());
}

async fn txn_typed(c: Ctx) {
    let r = c
        .app
        .txn(&Txn {
            compare: vec![Compare::Version {
                key: "a".into(),
                version: 0,
            }],
            success: vec![Op::put("a", json!(1)), Op::get("b")],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(r.succeeded);
    assert_eq!(r.results.len(), 2);
    let r = c
        .app
        .txn(&Txn {
            compare: vec![Compare::Version {
                key: "a".into(),
                version: 0,
            }],
            success: vec![],
            failure: vec![Op::get("a")],
        })
        .await
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.failed, vec![0]);
    // Every kind of compare and operation, typed: the holding ones pass, and
    // the ones that do not hold are the ones named failed.
    let guard = c
        .app
        .acquire("l", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    let holding = vec![
        Compare::Version {
            key: "a".into(),
            version: 1,
        },
        Compare::Exists {
            key: "zz".into(),
            exists: false,
        },
        Compare::Value {
            key: "a".into(),
            value: json!(1),
        },
        guard.compare(),
        guard.fence_compare("ledger"),
    ];
    let ops = vec![
        Op::put("p", json!({"x": 1})),
        Op::patch("p", json!({"y": 2})),
        Op::incr("n", 3),
        Op::delete("a"),
        Op::get("p"),
    ];
    let r = c
        .app
        .txn(&Txn {
            compare: holding.clone(),
            success: ops,
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(r.succeeded, "{r:?}");
    assert_eq!(r.results.len(), 5);
    let p = c.app.get("p").await.unwrap().unwrap();
    assert_eq!(p.value, json!({"x": 1, "y": 2}));
    assert!(c.app.get("a").await.unwrap().is_none());
    // Now `a` is gone: its version, value compares fail (and only those).
    let r = c
        .app
        .txn(&Txn {
            compare: holding,
            success: vec![Op::incr("n", 1)],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.failed, vec![0, 2]);
    guard.release().await.unwrap();
}

fn incremented(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_u64).unwrap_or(0) + 1)
}

async fn counter_has_every_increment(c: Ctx) {
    const TASKS: u64 = 8;
    const EACH: u64 = 5;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let app = c.app.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                app.update_with("counter", incremented, 1000).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = c.app.get("counter").await.unwrap().unwrap();
    assert_eq!(r.value, json!(TASKS * EACH));
}

async fn update_with_reports_conflict(c: Ctx) {
    c.app.put("doc", &PutRecordBody::new(json!(0))).await.unwrap();
    let other = c.app.clone();
    let mut calls = 0;
    // Another writer changes the record between every read and write.
    let e = c
        .app
        .update_with(
            "doc",
            |v| {
                calls += 1;
                let o = other.clone();
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current()
                        .block_on(o.put("doc", &PutRecordBody::new(json!(format!("remote {calls}")))))
                        .unwrap()
                });
                json!({"local": v.cloned()})
            },
            3,
        )
        .await
        .unwrap_err();
    assert_eq!(calls, 3);
    match e {
        Error::Conflict { key, local, remote } => {
            assert_eq!(key, "doc");
            assert_eq!(local, json!({"local": "remote 2"}));
            assert_eq!(remote.unwrap().value, json!("remote 3"));
        }
        other => panic!("not a conflict: {other}"),
    }
}
