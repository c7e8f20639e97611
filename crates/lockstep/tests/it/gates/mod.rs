//! Gates end to end (SPEC §7, §15 "Gates", docs/gates.md), through real
//! `lockstep serve` processes: one over SQLite, and three over one PostgreSQL
//! schema.
//!
//! The story (seeds/001): a receive link's owner pauses, resumes, revokes and
//! deletes it while anonymous uploaders run admit → check → commit → finalize
//! on other instances; late steps of an old epoch must not slip in after a
//! terminal transition. Here:
//! - `receive_links`: 32 concurrent clients on 4 gates (2 `reject`, 2
//!   `recover`): uploaders loop through tickets, finalizing with an append to
//!   `recv/<gate>`; owners pause/resume and finally revoke, reopen, revoke and
//!   delete; "stragglers" hold an open and a committed ticket across the
//!   terminal transition. Every request and answer is recorded, then checked
//!   against the final tickets, the feeds and the `changes` table:
//!   (1) no ticket of an old epoch was committed or finalized after the
//!   transition closing its epoch (by revision), except finalized with
//!   `recovered: true` under `recover`; (2) every status is one documented for
//!   its operation, with its code; (3) finalized once ⇔ one feed entry.
//! - `pause_resume`: a ticket admitted before a pause commits after resume;
//!   during the pause its steps and new admissions answer 423.
//! - `duplicate_finalize`: 20 concurrent finalizes over 3 processes → one
//!   finalization, one feed entry, identical answers.
//! - `bad_input`: 400/404/409 for malformed or misdirected ticket requests,
//!   with nothing changed.
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep --test it gates:: -- --test-threads=2
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{pg_cluster, poll, sqlite_cluster, Cluster, Disk, Http, Resp};
use futures_util::TryStreamExt;
use lockstep_client::api::feeds::{EntriesQuery, Entry};
use lockstep_client::api::gates::{
    AdmitBody, AppendSpec, FinalizeBody, Gate, PutGateBody, Ticket, TicketAdmitted, TicketsQuery,
};
use lockstep_client::api::{GateState, Pending, Policy, TicketState};
use lockstep_client::{Error as ClientError, Ns, TicketOp, Transition};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

mod actors;
mod bad_input;
mod capabilities;
mod duplicate_finalize;
mod pause_resume;
mod receive_links;

const NS: &str = "gates";
/// Bound on one scenario, so a deadlock fails instead of hanging.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on one wait for progress inside a scenario.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Servers and the database underneath.

/// A change of the log: `(revision, idx, op)`.
type ChangeRow = (u64, u64, String);

/// The gate changes of `gate` in [`NS`], in log order, read straight from the
/// `changes` table (SQLite file opened read-only, or the PostgreSQL schema).
async fn gate_changes(disk: &Disk, gate: &str) -> Vec<ChangeRow> {
    const SQL_SQLITE: &str =
        "SELECT revision, idx, op FROM changes WHERE ns = ?1 AND kind = 'gate' AND key = ?2 \
                              ORDER BY revision, idx";
    const SQL_PG: &str = "SELECT revision, idx::bigint, op FROM changes WHERE ns = $1 AND kind = 'gate' \
                          AND key = $2 ORDER BY revision, idx";
    let rows: Vec<(i64, i64, String)> = match disk {
        Disk::Sqlite(path) => {
            let (path, gate) = (path.clone(), gate.to_owned());
            tokio::task::spawn_blocking(move || {
                let flags =
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let c = rusqlite::Connection::open_with_flags(&path, flags).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                let mut stmt = c.prepare(SQL_SQLITE).unwrap();
                let rows = stmt
                    .query_map(rusqlite::params![NS, gate], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                rows
            })
            .await
            .unwrap()
        }
        Disk::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
            let driver = tokio::spawn(conn);
            let rows = client.query(SQL_PG, &[&NS, &gate]).await.unwrap();
            drop(client);
            let _ = driver.await;
            rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
        }
    };
    rows.into_iter()
        .map(|(r, i, op)| (u64::try_from(r).unwrap(), u64::try_from(i).unwrap(), op))
        .collect()
}

// ---------------------------------------------------------------------------
// Requests.

use crate::common::enc;

fn gate_path(gate: &str) -> String {
    format!("/v1/ns/{NS}/gates/{}", enc(gate))
}

fn tickets_path(gate: &str) -> String {
    format!("{}/tickets", gate_path(gate))
}

fn ticket_path(gate: &str, ticket: &str, op: &str) -> String {
    format!("{}/{}/{op}", tickets_path(gate), enc(ticket))
}

fn feed_of(gate: &str) -> String {
    format!("recv/{gate}")
}

/// `POST path`, with a JSON body or none.
async fn post(h: &Http, path: &str, body: Option<&Value>) -> Resp {
    match body {
        Some(b) => h.json("POST", path, b).await,
        None => h.send(h.req("POST", path)).await,
    }
}

async fn put_gate(h: &Http, gate: &str, pending: &str) -> Resp {
    let r = h
        .json(
            "PUT",
            &gate_path(gate),
            &json!({"policy": {"pending": pending}, "meta": {"owner": "owner@example.com"}}),
        )
        .await;
    assert_eq!(r.status, 201, "PUT gate {gate}: {}", r.text);
    assert_eq!(r.body["state"], json!("open"), "{}", r.text);
    assert_eq!(r.body["epoch"], json!(1), "{}", r.text);
    assert_eq!(r.body["policy"]["pending"], json!(pending), "{}", r.text);
    assert!(r.body["revision"].as_u64().is_some(), "{}", r.text);
    r
}

/// As [`put_gate`], through `lockstep_client`.
async fn open_gate(app: &Ns, gate: &str, pending: Pending) -> Gate {
    let body = PutGateBody {
        policy: Some(Policy { pending }),
        meta: Some(json!({"owner": "owner@example.com"})),
    };
    let g = app
        .put_gate(gate, &body)
        .await
        .unwrap_or_else(|e| panic!("PUT gate {gate}: {e:?}"));
    assert_eq!(g.state, GateState::Open, "{g:?}");
    assert_eq!(g.epoch, 1, "{g:?}");
    assert_eq!(g.policy.pending, pending, "{g:?}");
    assert_eq!(g.meta, json!({"owner": "owner@example.com"}), "{g:?}");
    g
}

async fn transition(h: &Http, gate: &str, t: &str) -> Resp {
    post(h, &format!("{}/{t}", gate_path(gate)), None).await
}

async fn admit(h: &Http, gate: &str, ticket: &str) -> Resp {
    post(
        h,
        &tickets_path(gate),
        Some(&json!({"ticket_id": ticket, "meta": {"file": format!("{ticket}.bin")}})),
    )
    .await
}

async fn ticket_op(h: &Http, gate: &str, ticket: &str, op: &str) -> Resp {
    post(h, &ticket_path(gate, ticket, op), None).await
}

async fn finalize_append(h: &Http, gate: &str, ticket: &str) -> Resp {
    let body = json!({"append": {"feed": feed_of(gate), "data": {"ticket": ticket, "size": 1234}}});
    post(h, &ticket_path(gate, ticket, "finalize"), Some(&body)).await
}

/// Every ticket of a gate by id, paged 25 at a time.
async fn list_tickets(h: &Http, gate: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{}?limit=25", tickets_path(gate));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", enc(c)));
        }
        let r = h.get(&path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        for t in r.body["tickets"].as_array().unwrap() {
            let id = t["ticket_id"].as_str().unwrap().to_owned();
            assert!(out.insert(id.clone(), t.clone()).is_none(), "{id} listed twice");
        }
        match &r.body["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            Value::Null => return out,
            other => panic!("next_cursor {other}"),
        }
    }
}

/// Every entry of a feed, oldest first.
async fn feed_entries(h: &Http, feed: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/ns/{NS}/feeds/{}/entries?order=asc&limit=100", enc(feed));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", enc(c)));
        }
        let r = h.get(&path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        out.extend(r.body["entries"].as_array().unwrap().iter().cloned());
        match &r.body["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            Value::Null => return out,
            other => panic!("next_cursor {other}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The same, through `lockstep_client` (one attempt per call).

/// Admits `ticket` as [`admit`] does.
async fn admit_ticket(app: &Ns, gate: &str, ticket: &str) -> Result<TicketAdmitted, ClientError> {
    let body = AdmitBody {
        ticket_id: Some(ticket.to_owned()),
        meta: Some(json!({"file": format!("{ticket}.bin")})),
    };
    app.admit(gate, &body).await
}

/// Runs `op` on a ticket, without a body.
async fn on_ticket(app: &Ns, gate: &str, ticket: &str, op: TicketOp) -> Result<Ticket, ClientError> {
    app.ticket(gate, ticket, op, &FinalizeBody::default()).await
}

/// Finalizes with an append to the gate's feed, as [`finalize_append`] does.
async fn finalize_appending(app: &Ns, gate: &str, ticket: &str) -> Result<Ticket, ClientError> {
    let body = FinalizeBody {
        append: Some(AppendSpec {
            feed: feed_of(gate),
            data: json!({"ticket": ticket, "size": 1234}),
        }),
    };
    app.ticket(gate, ticket, TicketOp::Finalize, &body).await
}

/// Asserts a ticket answer in `state`.
#[track_caller]
fn ticket_in(r: Result<Ticket, ClientError>, state: TicketState, what: &str) -> Ticket {
    let t = r.unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(t.state, state, "{what}: {t:?}");
    t
}

/// Every ticket of a gate by id, paged 25 at a time.
async fn tickets_of(app: &Ns, gate: &str) -> BTreeMap<String, Ticket> {
    let q = TicketsQuery {
        limit: Some(25),
        ..TicketsQuery::default()
    };
    let all: Vec<Ticket> = app.tickets(gate, q).try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for t in all {
        let id = t.ticket_id.clone();
        assert!(out.insert(id.clone(), t).is_none(), "{id} listed twice");
    }
    out
}

/// The ids of every entry of a feed, oldest first.
async fn feed_ids(app: &Ns, feed: &str) -> Vec<String> {
    let q = EntriesQuery {
        limit: Some(100),
        cursor: None,
        order: Some("asc".into()),
    };
    let all: Vec<Entry> = app.entries(feed, q).try_collect().await.unwrap();
    all.into_iter().map(|e| e.id).collect()
}

#[track_caller]
fn expect(r: &Resp, status: u16, code: Option<&str>, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    if let Some(code) = code {
        assert_eq!(r.code(), Some(code), "{what}: {}", r.text);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            "{what}: a problem document"
        );
    }
}

#[track_caller]
fn expect_ticket(r: &Resp, state: &str, what: &str) {
    expect(r, 200, None, what);
    assert_eq!(r.body["state"], json!(state), "{what}: {}", r.text);
}

async fn bounded(what: &str, fut: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(SCENARIO_TIMEOUT, fut).await.is_err() {
        panic!("{what} did not finish within {SCENARIO_TIMEOUT:?}");
    }
}

/// Waits until `cond` holds; panics after [`WAIT_TIMEOUT`]. The short sleep
/// paces the polling only: nothing depends on how long it is.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A pause between retries of a 423/410 (pacing only).
async fn pace() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}
