//! Durability of the embedded mode (SPEC §12): every acknowledged write survives
//! `kill -9` of the server, and versions keep growing after the restart.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{sqlite_db, tempdir, Http, Process};
use serde_json::json;
use std::collections::BTreeMap;

const NS: &str = "dur";
const RECORDS: usize = 200;
const CONCURRENT_TASKS: usize = 10;

fn rec(key: &str) -> String {
    format!("/v1/ns/{NS}/records/{key}")
}

fn key(i: usize) -> String {
    format!("k{i:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempdir();
    let db = sqlite_db(&dir);
    let mut server = Process::start(&db);
    let h = Http::new(&server.url);

    // Half of the records written one after the other, half by concurrent tasks;
    // some rewritten (and one deleted), so the acknowledged version is not the first.
    let mut acked: BTreeMap<String, (u64, serde_json::Value)> = BTreeMap::new();
    for i in 0..RECORDS / 2 {
        let value = json!({"i": i, "pass": 1});
        let r = h.json("PUT", &rec(&key(i)), &json!({"value": value})).await;
        assert_eq!(r.status, 201, "{}", r.text);
        acked.insert(key(i), (r.u64("version"), value));
    }
    let mut tasks = Vec::new();
    for t in 0..CONCURRENT_TASKS {
        let h = Http::new(&server.url);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (RECORDS / 2..RECORDS).filter(|i| i % CONCURRENT_TASKS == t) {
                let value = json!({"i": i, "pass": 1, "task": t});
                let r = h.json("PUT", &rec(&key(i)), &json!({"value": value})).await;
                assert_eq!(r.status, 201, "{}", r.text);
                out.push((key(i), r.u64("version"), value));
            }
            // Rewrite a few of the sequential ones concurrently too.
            for i in (0..RECORDS / 2).filter(|i| i % 25 == t) {
                let value = json!({"i": i, "pass": 2});
                let r = h.json("PUT", &rec(&key(i)), &json!({"value": value})).await;
                assert_eq!(r.status, 200, "{}", r.text);
                out.push((key(i), r.u64("version"), value));
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
    let r = h
        .json(
            "POST",
            &format!("/v1/ns/{NS}/txn"),
            &json!({"success": [{"incr": {"key": "counter", "by": 41}}, {"incr": {"key": "counter", "by": 1}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    acked.insert("counter".into(), (r.u64("revision"), json!(42)));
    let r = h.json("PUT", &rec("gone"), &json!({"value": 1})).await;
    assert_eq!(r.status, 201);
    let r = h.send(h.req("DELETE", &rec("gone"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let last_ack = r.u64("revision");
    assert_eq!(acked.len(), RECORDS + 1);
    let max_version = acked.values().map(|(v, _)| *v).max().unwrap();
    assert!(last_ack > max_version);

    // kill -9 right after the last acknowledgement.
    server.kill9();
    drop(h);

    let server = Process::start(&db);
    let h = Http::new(&server.url);
    for (k, (version, value)) in &acked {
        let r = h.get(&rec(k)).await;
        assert_eq!(r.status, 200, "{k} was acknowledged before kill -9: {}", r.text);
        assert_eq!(r.u64("version"), *version, "{k}: the acknowledged version");
        assert_eq!(&r.body["value"], value, "{k}: the acknowledged value");
    }
    let r = h.get(&rec("gone")).await;
    assert_eq!(r.status, 404, "the acknowledged delete survives: {}", r.text);
    // Every record is listed once.
    let r = h.get(&format!("/v1/ns/{NS}/records?limit=1000")).await;
    assert_eq!(
        r.body["records"].as_array().map(Vec::len),
        Some(RECORDS + 1),
        "{:.500}",
        r.text
    );

    // New writes get larger versions than anything acknowledged before the crash.
    let r = h.json("PUT", &rec(&key(0)), &json!({"value": "after"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.u64("version");
    assert!(
        v > last_ack,
        "a version after the restart ({v}) exceeds every earlier revision ({last_ack})"
    );
    let r = h
        .json(
            "PUT",
            &rec("new"),
            &json!({"value": "after", "expected_version": 0}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.u64("version") > v);
    // Re-creating the deleted key does not reuse a version either.
    let r = h
        .json("PUT", &rec("gone"), &json!({"value": 2, "expected_version": 0}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.u64("version") > last_ack);
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
        let h = Http::new(&server.url);
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let k = format!("load/{t}/{i:05}");
                let req = h
                    .req("PUT", &rec(&k))
                    .header("content-type", "application/json")
                    .body(json!({"value": i}).to_string());
                match common::try_send(req).await {
                    Ok(r) if r.status == 201 => acked.lock().unwrap().push((k, r.u64("version"))),
                    Ok(r) => panic!("PUT {k} answered {}: {}", r.status, r.text),
                    // The server is gone.
                    Err(_) => return,
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
    let h = Http::new(&server.url);
    for (k, version) in &acked {
        let r = h.get(&rec(k)).await;
        assert_eq!(r.status, 200, "{k} was acknowledged before kill -9: {}", r.text);
        assert_eq!(r.u64("version"), *version, "{k}");
    }
    let max = acked.iter().map(|(_, v)| *v).max().unwrap();
    let r = h.json("PUT", &rec("after"), &json!({"value": 1})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.u64("version") > max);
    println!("{} acknowledged writes survived kill -9", acked.len());
}
