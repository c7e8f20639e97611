//! `lockstep copy`: a populated SQLite store copied to PostgreSQL and back
//! verifies, and every primitive reads the same through the API on each copy.
//! The source is written through `lockstep_client`; the reads compared are
//! the raw answers (byte for byte as JSON).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{fresh_pg, sqlite_db, tempdir, Http, Server};
use lockstep_client::api::feeds::{AppendBody, ReadBody};
use lockstep_client::api::gates::{AdmitBody, FinalizeBody, PutGateBody};
use lockstep_client::api::idempotency::BeginBody;
use lockstep_client::api::leases::AcquireBody;
use lockstep_client::api::records::PutRecordBody;
use lockstep_client::api::{Compare, FeedConfig, Op, Pending, Policy, Txn};
use lockstep_client::{Ns, TicketOp};
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

/// Writes one of everything through `lockstep_client`; answers how many
/// writes it sent. Each carries the client's own `Idempotency-Key`, so the
/// source also holds one stored answer per write (plus the app's own entry
/// `orders/o1`): the copy must carry those too.
async fn populate(app: &Ns) -> usize {
    let mut writes = 0;
    let w = app
        .put("user/1", &PutRecordBody::new(json!({"n": 1})))
        .await
        .unwrap();
    assert!(w.created, "{w:?}");
    app.merge_patch("user/1", &json!({"m": 2}), None).await.unwrap();
    app.put("ttl", &PutRecordBody::new(json!(1)).ttl_ms(3_600_000))
        .await
        .unwrap();
    let incr = Txn {
        success: vec![Op::incr("counter", 7)],
        ..Txn::default()
    };
    assert!(app.txn(&incr).await.unwrap().succeeded);
    writes += 4;
    let lease = AcquireBody {
        ttl_ms: 3_600_000,
        holder: Some("cron".into()),
        wait_ms: 0,
    };
    app.acquire_lease("job", &lease).await.unwrap();
    let fence = Txn {
        compare: vec![Compare::Fence {
            resource: "db".into(),
            token: 5,
        }],
        ..Txn::default()
    };
    assert!(app.txn(&fence).await.unwrap().succeeded);
    writes += 2;
    let ten = FeedConfig {
        max_entries: Some(10),
        ..FeedConfig::default()
    };
    app.configure_feed("recv", &ten).await.unwrap();
    for i in 0..3 {
        let body = AppendBody {
            id: format!("r{i}"),
            data: json!({"i": i}),
            at: None,
        };
        assert!(app.append("recv", &body).await.unwrap().created);
    }
    let read = ReadBody {
        ids: Some(vec!["r0".into()]),
        ..ReadBody::default()
    };
    app.mark_read("recv", &read).await.unwrap();
    writes += 5;
    let gate = PutGateBody {
        policy: Some(Policy {
            pending: Pending::Recover,
        }),
        meta: None,
    };
    app.put_gate("link", &gate).await.unwrap();
    let t1 = AdmitBody {
        ticket_id: Some("t1".into()),
        meta: None,
    };
    assert!(app.admit("link", &t1).await.unwrap().created);
    app.ticket("link", "t1", TicketOp::Commit, &FinalizeBody::default())
        .await
        .unwrap();
    writes += 3;
    let begin = BeginBody {
        fingerprint: "f".into(),
        lock_ms: 60_000,
    };
    app.begin_idempotent("orders", "o1", &begin).await.unwrap();
    writes += 1;
    writes
}

/// The row count of `table` in a `lockstep copy` report, checked verified.
fn copied_rows(report: &str, table: &str) -> usize {
    let line = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no {table} line in the report:\n{report}"));
    assert!(line.trim_end().ends_with("ok"), "{table} not verified: {line}");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in {line:?}"))
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
    let (writes, before) = {
        let server = Server::start(&source);
        let writes = populate(&common::ns(&server.url, "app")).await;
        (writes, snapshot(&Http::new(&server.url)).await)
        // The server stops here: copy a quiescent source.
    };

    let (ok, report) = copy(&source, &pg.url, false);
    assert!(ok, "{report}");
    assert!(report.contains("verified"), "{report}");
    // The client's stored answers (one per write; the app's `orders/o1`
    // shares the table) are carried and verified like every other row.
    let idempotency_rows = copied_rows(&report, "idempotency");
    assert!(
        idempotency_rows >= writes,
        "{idempotency_rows} idempotency rows for {writes} keyed writes:\n{report}"
    );
    println!("copy: {idempotency_rows} idempotency rows carried for {writes} keyed writes");
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
    assert_eq!(copied_rows(&report, "idempotency"), idempotency_rows, "{report}");
    let server = Server::start(&back);
    let h = Http::new(&server.url);
    assert_eq!(before, snapshot(&h).await, "round-trip copy reads differently");
    // The copy continues the revision counter: a new write is newer than all.
    let w = common::ns(&server.url, "app")
        .put("after", &PutRecordBody::new(json!(1)))
        .await
        .unwrap();
    let last = before[6]["changes"]
        .as_array()
        .and_then(|c| c.last())
        .map(|c| c["revision"].as_u64().unwrap());
    assert!(w.put.revision > last.unwrap_or(0));
}
