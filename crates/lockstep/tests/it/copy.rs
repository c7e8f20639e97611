//! `lockstep copy`: a populated SQLite store copied to PostgreSQL and back
//! verifies, and every primitive reads the same through the API on each copy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{fresh_pg, sqlite_db, tempdir, Http, Server};
use serde_json::{json, Value};
use std::process::Command;

fn copy(from: &str, to: &str, force: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    cmd.args(["copy", "--from", from, "--to", to]);
    if force {
        cmd.arg("--force");
    }
    let out = cmd.output().expect("run lockstep copy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Writes one of everything and returns the reads to compare.
async fn populate(h: &Http) {
    assert_eq!(
        h.json("PUT", "/v1/ns/app/records/user%2F1", &json!({"value": {"n": 1}}))
            .await
            .status,
        201
    );
    h.json("PATCH", "/v1/ns/app/records/user%2F1", &json!({"m": 2}))
        .await;
    h.json(
        "PUT",
        "/v1/ns/app/records/ttl",
        &json!({"value": 1, "ttl_ms": 3_600_000}),
    )
    .await;
    h.json(
        "POST",
        "/v1/ns/app/txn",
        &json!({"success": [{"incr": {"key": "counter", "by": 7}}]}),
    )
    .await;
    let l = h
        .json(
            "POST",
            "/v1/ns/app/leases/job/acquire",
            &json!({"ttl_ms": 3_600_000, "holder": "cron"}),
        )
        .await;
    assert_eq!(l.status, 200);
    h.json(
        "POST",
        "/v1/ns/app/txn",
        &json!({"compare": [{"fence": {"resource": "db", "token": 5}}]}),
    )
    .await;
    h.json("PUT", "/v1/ns/app/feeds/recv", &json!({"max_entries": 10}))
        .await;
    for i in 0..3 {
        h.json(
            "POST",
            "/v1/ns/app/feeds/recv/entries",
            &json!({"id": format!("r{i}"), "data": {"i": i}}),
        )
        .await;
    }
    h.json("POST", "/v1/ns/app/feeds/recv/read", &json!({"ids": ["r0"]}))
        .await;
    h.json(
        "PUT",
        "/v1/ns/app/gates/link",
        &json!({"policy": {"pending": "recover"}}),
    )
    .await;
    h.json(
        "POST",
        "/v1/ns/app/gates/link/tickets",
        &json!({"ticket_id": "t1"}),
    )
    .await;
    h.json("POST", "/v1/ns/app/gates/link/tickets/t1/commit", &json!({}))
        .await;
    h.json(
        "POST",
        "/v1/ns/app/idempotency/orders/o1",
        &json!({"fingerprint": "f", "lock_ms": 60_000}),
    )
    .await;
}

async fn snapshot(h: &Http) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/v1/ns/app/records?limit=100",
        "/v1/ns/app/leases/job",
        "/v1/ns/app/feeds/recv/entries",
        "/v1/ns/app/feeds",
        "/v1/ns/app/gates/link",
        "/v1/ns/app/gates/link/tickets",
        "/v1/ns/app/changes?limit=1000",
    ] {
        let r = h.get(path).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        out.push(r.body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back() {
    let Some(pg) = fresh_pg().await else { return };
    let dir = tempdir();
    let source = sqlite_db(&dir);
    let back = format!("sqlite:{}", dir.path().join("back.db").display());
    let before = {
        let server = Server::start(&source);
        let h = Http::new(&server.url);
        populate(&h).await;
        snapshot(&h).await
        // The server stops here: copy a quiescent source.
    };

    let (ok, report) = copy(&source, &pg.url, false);
    assert!(ok, "{report}");
    assert!(report.contains("verified"), "{report}");
    // A second copy into the now non-empty target is refused without --force ...
    let (ok, report) = copy(&source, &pg.url, false);
    assert!(!ok && report.contains("not empty"), "{report}");
    // ... and replaces it with --force (a restarted copy).
    let (ok, report) = copy(&source, &pg.url, true);
    assert!(ok, "{report}");

    let on_pg = {
        let server = Server::start(&pg.url);
        snapshot(&Http::new(&server.url)).await
    };
    assert_eq!(before, on_pg, "PostgreSQL copy reads differently");

    let (ok, report) = copy(&pg.url, &back, false);
    assert!(ok, "{report}");
    let server = Server::start(&back);
    let h = Http::new(&server.url);
    assert_eq!(before, snapshot(&h).await, "round-trip copy reads differently");
    // The copy continues the revision counter: a new write is newer than all.
    let w = h
        .json("PUT", "/v1/ns/app/records/after", &json!({"value": 1}))
        .await;
    let last = before[6]["changes"]
        .as_array()
        .and_then(|c| c.last())
        .map(|c| c["revision"].as_u64().unwrap());
    assert!(w.u64("revision") > last.unwrap_or(0));
}
