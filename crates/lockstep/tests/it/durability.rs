//! Durability of the embedded mode (SPEC §12): every acknowledged write survives
//! `kill -9` of the server, and versions keep growing after the restart.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{ns, sqlite_db, tempdir, Process};
use futures_util::TryStreamExt;
use lockstep_client::api::records::{ListQuery, PutRecordBody};
use lockstep_client::api::{Op, Txn};
use lockstep_client::Ns;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const NS: &str = "dur";
const RECORDS: usize = 200;
const CONCURRENT_TASKS: usize = 10;

/// Writes `value` at `key`, asserting it was created (or replaced).
async fn put(app: &Ns, key: &str, value: &Value, created: bool) -> u64 {
    let w = app.put(key, &PutRecordBody::new(value.clone())).await.unwrap();
    assert_eq!(w.created, created, "PUT {key}: {w:?}");
    w.put.version
}

/// The `(version, value)` of a record that must exist.
async fn get(app: &Ns, key: &str) -> (u64, Value) {
    let r = app
        .get(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} was acknowledged before kill -9, and is gone"));
    (r.version, r.value)
}

fn key(i: usize) -> String {
    format!("k{i:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempdir();
    let db = sqlite_db(&dir);
    let mut server = Process::start(&db);
    let app = ns(&server.url, NS);

    // Half of the records written one after the other, half by concurrent tasks;
    // some rewritten (and one deleted), so the acknowledged version is not the first.
    let mut acked: BTreeMap<String, (u64, Value)> = BTreeMap::new();
    for i in 0..RECORDS / 2 {
        let value = json!({"i": i, "pass": 1});
        acked.insert(key(i), (put(&app, &key(i), &value, true).await, value));
    }
    let mut tasks = Vec::new();
    for t in 0..CONCURRENT_TASKS {
        let app = ns(&server.url, NS);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (RECORDS / 2..RECORDS).filter(|i| i % CONCURRENT_TASKS == t) {
                let value = json!({"i": i, "pass": 1, "task": t});
                out.push((key(i), put(&app, &key(i), &value, true).await, value));
            }
            // Rewrite a few of the sequential ones concurrently too.
            for i in (0..RECORDS / 2).filter(|i| i % 25 == t) {
                let value = json!({"i": i, "pass": 2});
                out.push((key(i), put(&app, &key(i), &value, false).await, value));
            }
            out
        }));
    }
    for t in tasks {
        for (k, version, value) in t.await.unwrap() {
            acked.insert(k, (version, value));
        }
    }
    // A transaction and a patch are writes too.
    let r = app
        .txn(&Txn {
            success: vec![Op::incr("counter", 41), Op::incr("counter", 1)],
            ..Txn::default()
        })
        .await
        .unwrap();
    assert!(r.succeeded);
    acked.insert("counter".into(), (r.revision, json!(42)));
    put(&app, "gone", &json!(1), true).await;
    let d = app.delete("gone", None).await.unwrap();
    let last_ack = d.revision;
    assert_eq!(acked.len(), RECORDS + 1);
    let max_version = acked.values().map(|(v, _)| *v).max().unwrap();
    assert!(last_ack > max_version);

    // kill -9 right after the last acknowledgement.
    server.kill9();
    drop(app);

    let server = Process::start(&db);
    let app = ns(&server.url, NS);
    for (k, (version, value)) in &acked {
        let (v, val) = get(&app, k).await;
        assert_eq!(v, *version, "{k}: the acknowledged version");
        assert_eq!(&val, value, "{k}: the acknowledged value");
    }
    assert!(
        app.get("gone").await.unwrap().is_none(),
        "the acknowledged delete survives"
    );
    // Every record is listed once.
    let listed: Vec<String> = app
        .records(ListQuery {
            limit: Some(1000),
            ..ListQuery::default()
        })
        .map_ok(|r| r.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        listed,
        acked.keys().cloned().collect::<Vec<_>>(),
        "every record listed once"
    );

    // New writes get larger versions than anything acknowledged before the crash.
    let v = put(&app, &key(0), &json!("after"), false).await;
    assert!(
        v > last_ack,
        "a version after the restart ({v}) exceeds every earlier revision ({last_ack})"
    );
    let w = app
        .put("new", &PutRecordBody::new(json!("after")).expected_version(0))
        .await
        .unwrap();
    assert!(w.created && w.put.version > v);
    // Re-creating the deleted key does not reuse a version either.
    let w = app
        .put("gone", &PutRecordBody::new(json!(2)).expected_version(0))
        .await
        .unwrap();
    assert!(w.created && w.put.version > last_ack);
}

/// kill -9 while writers are busy: whatever was acknowledged before the kill is
/// there after the restart (a write in flight may or may not be).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_keeps_every_acknowledged_write() {
    use std::sync::{Arc, Mutex};
    let dir = tempdir();
    let db = sqlite_db(&dir);
    let mut server = Process::start(&db);
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let app = ns(&server.url, NS);
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let k = format!("load/{t}/{i:05}");
                match app.put(&k, &PutRecordBody::new(json!(i))).await {
                    Ok(w) if w.created => acked.lock().unwrap().push((k, w.put.version)),
                    Ok(w) => panic!("PUT {k} answered {w:?}"),
                    // The server is gone.
                    Err(lockstep_client::Error::Transport(_)) => return,
                    Err(e) => panic!("PUT {k} answered {e:?}"),
                }
            }
        }));
    }
    common::poll(
        std::time::Duration::from_secs(30),
        "300 acknowledged writes",
        || {
            let n = acked.lock().unwrap().len();
            async move { (n >= 300).then_some(()) }
        },
    )
    .await;
    server.kill9();
    let acked: Vec<(String, u64)> = acked.lock().unwrap().clone();
    for t in tasks {
        t.await.unwrap();
    }

    let server = Process::start(&db);
    let app = ns(&server.url, NS);
    for (k, version) in &acked {
        assert_eq!(get(&app, k).await.0, *version, "{k}");
    }
    let max = acked.iter().map(|(_, v)| *v).max().unwrap();
    assert!(put(&app, "after", &json!(1), true).await > max);
    println!("{} acknowledged writes survived kill -9", acked.len());
}
