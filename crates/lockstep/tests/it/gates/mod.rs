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
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

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

/// Percent-encodes a name for a path segment or a query value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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

// ---------------------------------------------------------------------------
// 1. seeds/001: owners race uploaders.

/// One recorded request and its answer.
#[derive(Debug, Clone)]
struct Rec {
    client: String,
    ticket: Option<String>,
    op: &'static str,
    status: u16,
    body: Value,
    sent: Instant,
    received: Instant,
}

impl Rec {
    fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    fn u64(&self, name: &str) -> Option<u64> {
        self.body.get(name).and_then(Value::as_u64)
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(Value::as_str)
    }
}

/// What the clients of one gate share.
struct Link {
    id: String,
    pending: &'static str,
    /// What the terminal owner does, in order.
    script: &'static [&'static str],
    /// Successful commits so far.
    commits: AtomicUsize,
    /// 423 answers so far.
    paused_hits: AtomicUsize,
    /// Pause/resume rounds the toggling owner completed.
    rounds: AtomicUsize,
    /// The straggler holds an open and a committed ticket.
    stragglers_ready: AtomicBool,
    /// The first terminal transition was answered.
    terminal: AtomicBool,
    /// The gate is deleted: uploaders finish.
    stop: AtomicBool,
    log: Mutex<Vec<Rec>>,
}

/// A client of one gate that records everything it sends.
#[derive(Clone)]
struct Client {
    name: String,
    h: Http,
    link: Arc<Link>,
}

impl Client {
    async fn call(&self, op: &'static str, ticket: Option<&str>) -> Rec {
        let gate = self.link.id.as_str();
        let sent = Instant::now();
        let r = match (op, ticket) {
            ("admit", Some(t)) => admit(&self.h, gate, t).await,
            ("finalize", Some(t)) => finalize_append(&self.h, gate, t).await,
            (op, Some(t)) => ticket_op(&self.h, gate, t, op).await,
            (op, None) => transition(&self.h, gate, op).await,
        };
        let rec = Rec {
            client: self.name.clone(),
            ticket: ticket.map(str::to_owned),
            op,
            status: r.status,
            body: r.body,
            sent,
            received: Instant::now(),
        };
        if rec.status == 423 {
            self.link.paused_hits.fetch_add(1, Ordering::SeqCst);
        }
        if op == "commit" && rec.status == 200 {
            self.link.commits.fetch_add(1, Ordering::SeqCst);
        }
        self.link.log.lock().unwrap().push(rec.clone());
        rec
    }

    /// A ticket step, retried while the gate is paused (the ticket survives).
    async fn step(&self, op: &'static str, ticket: &str) -> Rec {
        loop {
            let r = self.call(op, Some(ticket)).await;
            if r.status != 423 {
                return r;
            }
            pace().await;
        }
    }
}

/// An uploader: admit → check → commit → finalize (with append), again and
/// again until the gate is deleted. Every 5th ticket is aborted after check;
/// every 4th finalize is repeated. After a 410 at check or commit the upload
/// is undone with abort.
async fn uploader(c: Client) {
    let mut n = 0;
    while !c.link.stop.load(Ordering::SeqCst) {
        n += 1;
        let t = format!("{}.{n}", c.name);
        let r = c.call("admit", Some(&t)).await;
        if r.status != 201 {
            // 423 while paused, 410 while revoked or deleted.
            pace().await;
            continue;
        }
        let r = c.step("check", &t).await;
        if r.status != 200 {
            c.call("abort", Some(&t)).await;
            continue;
        }
        if n % 5 == 0 {
            // The uploader gives up; a repeated abort is 200 too.
            c.call("abort", Some(&t)).await;
            c.call("abort", Some(&t)).await;
            continue;
        }
        let r = c.step("commit", &t).await;
        if r.status != 200 {
            c.call("abort", Some(&t)).await;
            continue;
        }
        let r = c.step("finalize", &t).await;
        if r.status == 200 && n % 4 == 0 {
            c.step("finalize", &t).await;
        }
    }
}

/// A straggler: holds an open and a committed ticket across the first terminal
/// transition, then runs its late steps, whose answers the table fixes.
async fn straggler(c: Client) {
    let open = format!("{}.open", c.name);
    let committed = format!("{}.committed", c.name);
    for t in [&open, &committed] {
        loop {
            let r = c.call("admit", Some(t)).await;
            if r.status == 201 {
                break;
            }
            assert_eq!(r.status, 423, "{t}: the gate is open or paused now: {:?}", r.body);
            pace().await;
        }
    }
    let r = c.step("commit", &committed).await;
    assert_eq!(r.status, 200, "{committed}: {:?}", r.body);
    c.link.stragglers_ready.store(true, Ordering::SeqCst);
    wait_until("the terminal transition", || {
        c.link.terminal.load(Ordering::SeqCst)
    })
    .await;
    let what = |op: &str, t: &str| format!("[{}] late {op} of {t}", c.link.id);
    // The open ticket was voided by the transition: 410 for everything.
    for op in ["check", "commit", "finalize", "abort"] {
        let r = c.call(op, Some(&open)).await;
        assert_eq!(
            (r.status, r.code()),
            (410, Some("gate_closed")),
            "{}: {:?}",
            what(op, &open),
            r.body
        );
    }
    // The committed one is pending: check/commit 410; finalize per policy.
    for op in ["check", "commit"] {
        let r = c.call(op, Some(&committed)).await;
        assert_eq!(
            (r.status, r.code()),
            (410, Some("gate_closed")),
            "{}: {:?}",
            what(op, &committed),
            r.body
        );
    }
    let first = c.call("finalize", Some(&committed)).await;
    let again = c.call("finalize", Some(&committed)).await;
    let abort = c.call("abort", Some(&committed)).await;
    if c.link.pending == "recover" {
        assert_eq!(
            first.status,
            200,
            "{}: {:?}",
            what("finalize", &committed),
            first.body
        );
        assert_eq!(first.str("state"), Some("finalized"));
        assert_eq!(first.body["recovered"], json!(true), "{:?}", first.body);
        assert_eq!(again.body, first.body, "a repeated finalize answers the same");
        assert_eq!(
            (abort.status, abort.code()),
            (409, Some("ticket_conflict")),
            "{:?}",
            abort.body
        );
    } else {
        for r in [&first, &again, &abort] {
            assert_eq!(
                (r.status, r.code()),
                (410, Some("gate_closed")),
                "{}: {:?}",
                what(r.op, &committed),
                r.body
            );
        }
    }
}

/// Pauses and resumes the gate: each round after some commits, resuming after
/// some uploaders saw 423. Stops at the first 410.
async fn toggler(c: Client) {
    let l = c.link.clone();
    for round in 0..5 {
        let base = l.commits.load(Ordering::SeqCst);
        wait_until("commits before a pause", || {
            l.commits.load(Ordering::SeqCst) >= base + 5 || l.terminal.load(Ordering::SeqCst)
        })
        .await;
        let r = c.call("pause", None).await;
        if r.status == 410 {
            return;
        }
        let hits = l.paused_hits.load(Ordering::SeqCst);
        wait_until("423 answers while paused", || {
            l.paused_hits.load(Ordering::SeqCst) >= hits + 3 || l.terminal.load(Ordering::SeqCst)
        })
        .await;
        // A second owner action may repeat it: a no-op.
        if round == 1 {
            c.call("pause", None).await;
        }
        let r = c.call("resume", None).await;
        if r.status == 410 {
            return;
        }
        l.rounds.fetch_add(1, Ordering::SeqCst);
    }
}

/// The terminal owner: once the stragglers are set and three pause/resume rounds
/// went by, runs the gate's script (revoke, reopen, pause, delete, …); after a
/// reopen it waits for new commits first. Sets `stop` after the delete.
async fn terminator(c: Client) {
    let l = c.link.clone();
    wait_until("the stragglers", || {
        l.stragglers_ready.load(Ordering::SeqCst) && l.rounds.load(Ordering::SeqCst) >= 3
    })
    .await;
    for (i, op) in l.script.iter().enumerate() {
        if i > 0 && l.script[i - 1] == "reopen" {
            let base = l.commits.load(Ordering::SeqCst);
            wait_until("commits in the new epoch", || {
                l.commits.load(Ordering::SeqCst) >= base + 8
            })
            .await;
        }
        let r = c.call(op, None).await;
        assert_eq!(r.status, 200, "[{}] {op}: {:?}", l.id, r.body);
        // (A pause may find the toggling owner's pause in force.)
        if *op != "pause" {
            assert_eq!(r.body["changed"], json!(true), "[{}] {op}: {:?}", l.id, r.body);
        }
        if *op == "revoke" || *op == "delete" {
            l.terminal.store(true, Ordering::SeqCst);
        }
    }
    l.stop.store(true, Ordering::SeqCst);
}

const UPLOADERS: usize = 5;

/// The gates of the scenario: (id, policy, the terminal owner's script).
const LINKS: [(&str, &str, &[&str]); 4] = [
    ("link-a", "reject", &["revoke", "delete"]),
    (
        "link-b",
        "recover",
        &["revoke", "reopen", "pause", "revoke", "delete"],
    ),
    ("link-c", "reject", &["revoke", "reopen", "delete"]),
    ("link-d", "recover", &["delete"]),
];

/// Statuses documented for an operation (docs/gates.md) and the code of each.
fn documented(op: &str, status: u16) -> Option<&'static str> {
    let transition = matches!(op, "pause" | "resume" | "revoke" | "delete" | "reopen");
    match (status, op) {
        (200, _) => Some(""),
        (201, "admit") => Some(""),
        (404, _) => Some("not_found"),
        (409, _) if transition => Some("invalid_transition"),
        (409, _) => Some("ticket_conflict"),
        (410, _) => Some("gate_closed"),
        (423, "admit" | "check" | "commit" | "finalize") => Some("gate_paused"),
        _ => None,
    }
}

async fn receive_links(cl: &Cluster) {
    let label = cl.label;
    let mut links = Vec::new();
    for (id, pending, script) in LINKS {
        put_gate(&cl.http(0), id, pending).await;
        links.push(Arc::new(Link {
            id: id.to_owned(),
            pending,
            script,
            commits: AtomicUsize::new(0),
            paused_hits: AtomicUsize::new(0),
            rounds: AtomicUsize::new(0),
            stragglers_ready: AtomicBool::new(false),
            terminal: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        }));
    }
    // 32 clients: per gate 5 uploaders, a straggler, a toggling owner and a
    // terminal owner, spread round-robin over the servers.
    let mut n = 0;
    let mut client = |link: &Arc<Link>, role: &str| {
        n += 1;
        Client {
            name: format!("{}.{role}", link.id),
            h: cl.http(n),
            link: link.clone(),
        }
    };
    let mut tasks = Vec::new();
    for l in &links {
        for u in 0..UPLOADERS {
            tasks.push(tokio::spawn(uploader(client(l, &format!("u{u}")))));
        }
        tasks.push(tokio::spawn(straggler(client(l, "straggler"))));
        tasks.push(tokio::spawn(toggler(client(l, "toggler"))));
        tasks.push(tokio::spawn(terminator(client(l, "owner"))));
    }
    assert_eq!(tasks.len(), 32);
    for t in tasks {
        t.await.unwrap();
    }

    let h = cl.http(0);
    let mut failures: Vec<String> = Vec::new();
    let mut stats = Vec::new();
    for l in &links {
        let g = l.id.as_str();
        let log = l.log.lock().unwrap().clone();
        let gate = h.get(&gate_path(g)).await;
        expect(&gate, 200, None, g);
        assert_eq!(gate.body["state"], json!("deleted"), "[{label}] {g}");
        let tickets = list_tickets(&h, g).await;
        let entries = feed_entries(&h, &feed_of(g)).await;
        let changes = gate_changes(&cl.disk, g).await;

        // (2) Every answer is documented for its operation, with its code.
        for r in &log {
            match documented(r.op, r.status) {
                Some("") => {}
                Some(code) if r.code() == Some(code) => {}
                _ => failures.push(format!(
                    "[{g}] {} {} {:?}: undocumented answer {} {}",
                    r.client, r.op, r.ticket, r.status, r.body
                )),
            }
        }

        // Epochs from the change log: epoch e is closed at close_rev[e].
        let mut epoch = 1u64;
        let mut close_rev: BTreeMap<u64, u64> = BTreeMap::new();
        for (rev, _, op) in &changes {
            match op.as_str() {
                "revoke" | "delete" => {
                    close_rev.insert(epoch, *rev);
                    epoch += 1;
                }
                "reopen" => epoch += 1,
                _ => {}
            }
        }
        assert_eq!(
            gate.body["epoch"],
            json!(epoch),
            "[{label}] {g}: the epoch counts the log's moves"
        );
        // The owners' successful transitions are the log's, at the same revisions.
        let owner_moves: Vec<(u64, String)> = log
            .iter()
            .filter(|r| r.ticket.is_none() && r.status == 200 && r.body["changed"] == json!(true))
            .map(|r| (r.u64("revision").unwrap(), r.op.to_owned()))
            .collect();
        let mut log_moves: Vec<(u64, String)> = changes
            .iter()
            .filter(|(_, _, op)| matches!(op.as_str(), "pause" | "resume" | "revoke" | "delete" | "reopen"))
            .map(|(rev, _, op)| (*rev, op.clone()))
            .collect();
        let mut sorted_moves = owner_moves.clone();
        sorted_moves.sort();
        log_moves.sort();
        if sorted_moves != log_moves {
            failures.push(format!(
                "[{g}] transitions answered {sorted_moves:?}, logged {log_moves:?}"
            ));
        }

        // Per ticket: its admission epoch, and what its answers said.
        let mut admitted: BTreeMap<String, u64> = BTreeMap::new();
        for r in log.iter().filter(|r| r.op == "admit" && r.status == 201) {
            admitted.insert(r.ticket.clone().unwrap(), r.u64("epoch").unwrap());
        }
        if admitted.keys().collect::<BTreeSet<_>>() != tickets.keys().collect::<BTreeSet<_>>() {
            failures.push(format!("[{g}] the listed tickets are not the admitted ones"));
        }
        let mut first_finalize: BTreeMap<String, Value> = BTreeMap::new();
        let mut committed_ok: BTreeSet<String> = BTreeSet::new();
        let mut finalize_rejected: BTreeSet<String> = BTreeSet::new();
        for r in log.iter().filter(|r| r.ticket.is_some() && r.op != "admit") {
            let t = r.ticket.clone().unwrap();
            if r.status == 200 {
                if r.u64("epoch") != admitted.get(&t).copied() {
                    failures.push(format!("[{g}] {t}: {} answered epoch {:?}", r.op, r.u64("epoch")));
                }
                if r.op == "commit" {
                    committed_ok.insert(t.clone());
                }
            }
            if r.op == "finalize" {
                if r.status == 200 {
                    match first_finalize.get(&t) {
                        Some(first) if *first != r.body => failures.push(format!(
                            "[{g}] {t}: a repeated finalize answered {} after {first}",
                            r.body
                        )),
                        Some(_) => {}
                        None => {
                            first_finalize.insert(t.clone(), r.body.clone());
                        }
                    }
                } else if r.status == 410 && committed_ok.contains(&t) {
                    finalize_rejected.insert(t.clone());
                }
            }
        }

        // (1) No ticket of a closed epoch was committed or finalized after the
        // transition closing it, except recovered under `recover`.
        let mut recovered = 0;
        let mut finalized: BTreeMap<String, u64> = BTreeMap::new();
        for (id, t) in &tickets {
            let e = t["epoch"].as_u64().unwrap();
            let state = t["state"].as_str().unwrap();
            if !matches!(state, "finalized" | "voided" | "aborted") {
                failures.push(format!("[{g}] {id} ends {state}: every upload ends"));
            }
            if state != "finalized" {
                if !t["finalized_revision"].is_null() || t["recovered"] != json!(false) {
                    failures.push(format!("[{g}] {id}: {t}"));
                }
                continue;
            }
            let fr = t["finalized_revision"].as_u64().unwrap();
            finalized.insert(id.clone(), fr);
            let late = close_rev.get(&e).is_some_and(|c| fr > *c);
            let rec = t["recovered"] == json!(true);
            if rec {
                recovered += 1;
            }
            if late && !(rec && l.pending == "recover") {
                failures.push(format!(
                    "[{g}] {id} of epoch {e} finalized at {fr}, after its epoch closed at {:?}: {t}",
                    close_rev.get(&e)
                ));
            }
            if rec && !late {
                failures.push(format!("[{g}] {id} recovered though finalized in its epoch: {t}"));
            }
            if let Some(first) = first_finalize.get(id) {
                if first != t {
                    failures.push(format!("[{g}] {id}: finalize answered {first}, listed {t}"));
                }
            } else {
                failures.push(format!("[{g}] {id} finalized without a 200 finalize answer"));
            }
        }
        for id in first_finalize.keys() {
            if !finalized.contains_key(id) {
                failures.push(format!("[{g}] {id}: answered finalized, listed {}", tickets[id]));
            }
        }
        // Commits, from the log: every 200 commit is one `commit` change, and
        // after epoch e closed, the only commits are of newer tickets.
        let commit_revs: Vec<u64> = changes
            .iter()
            .filter(|(_, _, op)| op == "commit")
            .map(|(r, _, _)| *r)
            .collect();
        if commit_revs.len() != committed_ok.len() {
            failures.push(format!(
                "[{g}] {} commit changes for {} successful commits",
                commit_revs.len(),
                committed_ok.len()
            ));
        }
        for (e, closed_at) in &close_rev {
            let after = commit_revs.iter().filter(|r| *r > closed_at).count();
            let newer = committed_ok.iter().filter(|t| admitted[*t] > *e).count();
            if after != newer {
                failures.push(format!(
                    "[{g}] {after} commits after epoch {e} closed at {closed_at}, but {newer} commits of newer tickets"
                ));
            }
        }
        // Finalizations, from the log: exactly the tickets' finalized_revision.
        let finalize_revs: BTreeSet<u64> = changes
            .iter()
            .filter(|(_, _, op)| op == "finalize")
            .map(|(r, _, _)| *r)
            .collect();
        let want_revs: BTreeSet<u64> = finalized.values().copied().collect();
        if finalize_revs != want_revs || want_revs.len() != finalized.len() {
            failures.push(format!(
                "[{g}] finalize changes at {finalize_revs:?}, finalized tickets at {want_revs:?}"
            ));
        }
        // Real time: no step of a closed epoch succeeded that was sent after
        // the closing transition was answered (a finalize only as a repeat of
        // one done in time, or recovered).
        for m in log.iter().filter(|r| {
            matches!(r.op, "revoke" | "delete") && r.status == 200 && r.body["changed"] == json!(true)
        }) {
            let closed_epoch = m.u64("epoch").unwrap() - 1;
            let closed_at = m.u64("revision").unwrap();
            for r in log
                .iter()
                .filter(|r| r.sent > m.received && matches!(r.status, 200 | 201))
            {
                let Some(t) = &r.ticket else { continue };
                let Some(e) = admitted.get(t) else { continue };
                if *e > closed_epoch {
                    continue;
                }
                let allowed = match r.op {
                    "finalize" => {
                        r.body["recovered"] == json!(true)
                            || finalized.get(t).is_some_and(|fr| *fr < closed_at)
                    }
                    "abort" => true,
                    _ => false,
                };
                if !allowed {
                    failures.push(format!(
                        "[{g}] {} {t} (epoch {e}) succeeded, sent after {} closed epoch {closed_epoch}: {}",
                        r.op, m.op, r.body
                    ));
                }
            }
        }
        // Terminal counts: Σ voided = tickets voided by transitions; Σ pending =
        // tickets committed at a close, then voided (reject) or recovered.
        let voided_total: u64 = log
            .iter()
            .filter(|r| matches!(r.op, "revoke" | "delete") && r.status == 200)
            .map(|r| r.u64("voided").unwrap())
            .sum();
        let pending_total: u64 = log
            .iter()
            .filter(|r| matches!(r.op, "revoke" | "delete") && r.status == 200)
            .map(|r| r.u64("pending").unwrap())
            .sum();
        let voided_listed = tickets.values().filter(|t| t["state"] == json!("voided")).count() as u64;
        let void_changes = changes.iter().filter(|(_, _, op)| op == "void").count() as u64;
        if void_changes != finalize_rejected.len() as u64 {
            failures.push(format!(
                "[{g}] {void_changes} void changes for {} rejected finalizes",
                finalize_rejected.len()
            ));
        }
        if voided_total != voided_listed - finalize_rejected.len() as u64 {
            failures.push(format!(
                "[{g}] transitions voided {voided_total}; {voided_listed} voided tickets, {} by finalize",
                finalize_rejected.len()
            ));
        }
        if pending_total != finalize_rejected.len() as u64 + recovered {
            failures.push(format!(
                "[{g}] pending {pending_total}, but {} rejected and {recovered} recovered",
                finalize_rejected.len()
            ));
        }
        if l.pending == "reject" && recovered > 0 {
            failures.push(format!("[{g}] recovered tickets under reject"));
        }
        // The straggler's committed ticket was pending at the first close.
        if pending_total == 0 {
            failures.push(format!("[{g}] no pending ticket at any terminal transition"));
        }

        // (3) Finalized once ⇔ exactly one feed entry, at its revision.
        let mut by_id: BTreeMap<String, u64> = BTreeMap::new();
        for e in &entries {
            let id = e["id"].as_str().unwrap().to_owned();
            if e["data"]["ticket"] != json!(id) {
                failures.push(format!("[{g}] entry {e}: data of another ticket"));
            }
            if by_id
                .insert(id.clone(), e["revision"].as_u64().unwrap())
                .is_some()
            {
                failures.push(format!("[{g}] two entries {id}"));
            }
        }
        if by_id != finalized {
            let extra: Vec<_> = by_id.keys().filter(|k| !finalized.contains_key(*k)).collect();
            let missing: Vec<_> = finalized.keys().filter(|k| !by_id.contains_key(*k)).collect();
            failures.push(format!(
                "[{g}] feed entries differ from finalized tickets: extra {extra:?}, missing {missing:?}"
            ));
        }
        let count = |op: &str| log.iter().filter(|r| r.op == op).count();
        stats.push(format!(
            "{g}: {} requests, {} tickets, {} finalized ({recovered} recovered), {} commits, {} 423s, {} 410s, \
             voided {voided_total} + {} at finalize, pending {pending_total}, epochs {epoch}, changes {}, admits {}",
            log.len(),
            tickets.len(),
            finalized.len(),
            committed_ok.len(),
            log.iter().filter(|r| r.status == 423).count(),
            log.iter().filter(|r| r.status == 410).count(),
            finalize_rejected.len(),
            changes.len(),
            count("admit"),
        ));
    }
    println!("[{label}] receive links:\n  {}", stats.join("\n  "));
    assert!(
        failures.is_empty(),
        "[{label}] {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_links_sqlite() {
    let cl = sqlite_cluster();
    bounded("receive_links on sqlite", receive_links(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_links_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("receive_links on postgres×3", receive_links(&cl)).await;
}

// ---------------------------------------------------------------------------
// 2. Pause and resume are backward compatible.

async fn pause_resume(cl: &Cluster) {
    let label = cl.label;
    let hs: Vec<Http> = (0..3).map(|i| cl.http(i)).collect();
    let g = "upload-session";
    put_gate(&hs[0], g, "reject").await;
    for (i, t) in ["before", "committed", "finalized", "given-up"]
        .iter()
        .enumerate()
    {
        let r = admit(&hs[i % 3], g, t).await;
        expect(&r, 201, None, t);
        assert_eq!(r.body["created"], json!(true));
    }
    expect_ticket(
        &ticket_op(&hs[1], g, "committed", "commit").await,
        "committed",
        "commit",
    );
    expect_ticket(
        &ticket_op(&hs[2], g, "finalized", "commit").await,
        "committed",
        "commit",
    );
    expect_ticket(
        &finalize_append(&hs[0], g, "finalized").await,
        "finalized",
        "finalize",
    );
    let before = list_tickets(&hs[0], g).await;

    let p = transition(&hs[1], g, "pause").await;
    expect(&p, 200, None, "pause");
    assert_eq!(
        (p.body["state"].clone(), p.body["epoch"].clone()),
        (json!("paused"), json!(1))
    );
    assert_eq!(p.body["changed"], json!(true));
    // Repeated pause: a no-op.
    let again = transition(&hs[2], g, "pause").await;
    expect(&again, 200, None, "pause again");
    assert_eq!(again.body["changed"], json!(false), "{}", again.text);
    let gate = hs[0].get(&gate_path(g)).await;
    assert_eq!(gate.body["state"], json!("paused"));

    for (i, (t, op)) in [
        ("before", "check"),
        ("before", "commit"),
        ("committed", "check"),
        ("committed", "commit"),
        ("committed", "finalize"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = if op == "finalize" {
            finalize_append(&hs[i % 3], g, t).await
        } else {
            ticket_op(&hs[i % 3], g, t, op).await
        };
        expect(
            &r,
            423,
            Some("gate_paused"),
            &format!("[{label}] {op} {t} while paused"),
        );
    }
    // Finalize of an open ticket is a conflict whatever the gate does.
    let r = ticket_op(&hs[0], g, "before", "finalize").await;
    expect(&r, 409, Some("ticket_conflict"), "finalize open while paused");
    let r = admit(&hs[1], g, "during").await;
    expect(&r, 423, Some("gate_paused"), "admit while paused");
    // Re-admitting a still-open id returns it, even while paused.
    let r = admit(&hs[2], g, "before").await;
    expect(&r, 200, None, "re-admit while paused");
    assert_eq!(r.body["created"], json!(false));
    // A finalized ticket answers as finalized; abort still works while paused.
    expect_ticket(
        &ticket_op(&hs[0], g, "finalized", "finalize").await,
        "finalized",
        "finalize finalized",
    );
    expect_ticket(
        &ticket_op(&hs[1], g, "given-up", "abort").await,
        "aborted",
        "abort while paused",
    );
    // Reopen while paused is invalid.
    expect(
        &transition(&hs[2], g, "reopen").await,
        409,
        Some("invalid_transition"),
        "reopen while paused",
    );
    // Nothing but the abort changed.
    let during = list_tickets(&hs[0], g).await;
    for (id, t) in &before {
        if id != "given-up" {
            assert_eq!(&during[id], t, "[{label}] {id} survives the pause unchanged");
        }
    }

    // A client retrying a 423 with the same Idempotency-Key (§14): the 423 is
    // not stored, so the retry after resume runs (§15 "Idempotency").
    let keyed = |h: &Http| {
        h.req("POST", &ticket_path(g, "before", "commit"))
            .header("idempotency-key", "\"commit-before-1\"")
    };
    let r = hs[0].send(keyed(&hs[0])).await;
    expect(
        &r,
        423,
        Some("gate_paused"),
        &format!("[{label}] keyed commit while paused"),
    );
    let r = hs[1].send(keyed(&hs[1])).await;
    expect(
        &r,
        423,
        Some("gate_paused"),
        &format!("[{label}] keyed commit retried while paused"),
    );
    assert_eq!(r.header("idempotent-replayed"), None, "a 423 is not replayed");

    let r = transition(&hs[0], g, "resume").await;
    expect(&r, 200, None, "resume");
    assert_eq!(
        (r.body["state"].clone(), r.body["epoch"].clone()),
        (json!("open"), json!(1))
    );
    // The ticket admitted before the pause goes on, same epoch.
    expect_ticket(
        &ticket_op(&hs[1], g, "before", "check").await,
        "open",
        "check after resume",
    );
    let c = hs[2].send(keyed(&hs[2])).await;
    expect_ticket(&c, "committed", &format!("[{label}] keyed commit after resume"));
    assert_eq!(c.header("idempotent-replayed"), None, "{}: the retry ran", c.text);
    assert_eq!(c.body["epoch"], json!(1));
    let replay = hs[0].send(keyed(&hs[0])).await;
    expect_ticket(&replay, "committed", "keyed commit replayed");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, c.body);
    let f = finalize_append(&hs[0], g, "before").await;
    expect_ticket(&f, "finalized", "finalize after resume");
    assert_eq!(f.body["recovered"], json!(false));
    expect_ticket(
        &finalize_append(&hs[1], g, "committed").await,
        "finalized",
        "finalize after resume",
    );
    let r = admit(&hs[2], g, "after").await;
    expect(&r, 201, None, "admit after resume");
    // Feed: one entry per finalized ticket.
    let ids: BTreeSet<String> = feed_entries(&hs[0], &feed_of(g))
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["before", "committed", "finalized"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    // The log: pause and resume once each (the repeats wrote nothing).
    let ops: Vec<String> = gate_changes(&cl.disk, g)
        .await
        .into_iter()
        .map(|(_, _, op)| op)
        .filter(|op| op == "pause" || op == "resume")
        .collect();
    assert_eq!(ops, ["pause", "resume"], "[{label}]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_resume_sqlite() {
    let cl = sqlite_cluster();
    bounded("pause_resume on sqlite", pause_resume(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_resume_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("pause_resume on postgres×3", pause_resume(&cl)).await;
}

// ---------------------------------------------------------------------------
// 3. Duplicate finalize.

const RACERS: usize = 20;

async fn duplicate_finalize(cl: &Cluster) {
    let label = cl.label;
    let h = cl.http(0);
    for (g, pending) in [("dup-reject", "reject"), ("dup-recover", "recover")] {
        put_gate(&h, g, pending).await;
        let t = &format!("{g}.upload-1");
        expect(&admit(&h, g, t).await, 201, None, "admit");
        expect_ticket(&ticket_op(&h, g, t, "commit").await, "committed", "commit");
        if pending == "recover" {
            // The recovered path: committed, then revoked.
            let r = transition(&h, g, "revoke").await;
            assert_eq!(r.body["pending"], json!(1), "{}", r.text);
        }
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let (c, barrier) = (cl.http(i), barrier.clone());
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                finalize_append(&c, g, &t).await
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let first = &answers[0];
        expect_ticket(first, "finalized", &format!("[{label}] {g} finalize"));
        assert_eq!(
            first.body["recovered"],
            json!(pending == "recover"),
            "{}",
            first.text
        );
        let fin_rev = first.body["finalized_revision"].as_u64().unwrap();
        assert_eq!(
            first.body["revision"],
            json!(fin_rev),
            "[{label}] {g}: a finalize names the revision it committed at"
        );
        for a in &answers {
            assert_eq!(a.status, 200, "[{label}] {g}: {}", a.text);
            assert_eq!(a.text, first.text, "[{label}] {g}: byte-identical answers");
        }
        let listed = list_tickets(&h, g).await;
        assert_eq!(
            listed[t.as_str()],
            first.body,
            "[{label}] {g}: the listing agrees"
        );
        let entries = feed_entries(&h, &feed_of(g)).await;
        assert_eq!(entries.len(), 1, "[{label}] {g}: one entry: {entries:?}");
        assert_eq!(entries[0]["id"], json!(t));
        assert_eq!(
            entries[0]["revision"],
            json!(fin_rev),
            "appended with the finalization"
        );
        let finalizes: Vec<u64> = gate_changes(&cl.disk, g)
            .await
            .into_iter()
            .filter(|(_, _, op)| op == "finalize")
            .map(|(r, _, _)| r)
            .collect();
        assert_eq!(finalizes, [fin_rev], "[{label}] {g}: one finalization in the log");
    }
    // Every ticket answer names the revision of the ticket's last write; a
    // repeat that changes nothing names the original write's.
    let g = "dup-abort";
    put_gate(&h, g, "reject").await;
    let admitted = admit(&h, g, "t-abort").await;
    expect(&admitted, 201, None, "admit");
    let again = admit(&h, g, "t-abort").await;
    assert_eq!(
        again.body["revision"], admitted.body["revision"],
        "{}",
        again.text
    );
    let check = ticket_op(&h, g, "t-abort", "check").await;
    assert_eq!(
        check.body["revision"], admitted.body["revision"],
        "{}",
        check.text
    );
    let aborted = ticket_op(&h, g, "t-abort", "abort").await;
    let rev = aborted.body["revision"].as_u64().unwrap();
    assert!(
        rev > admitted.body["revision"].as_u64().unwrap(),
        "{}",
        aborted.text
    );
    for _ in 0..3 {
        let repeat = ticket_op(&cl.http(1), g, "t-abort", "abort").await;
        assert_eq!(
            repeat.text, aborted.text,
            "[{label}] a repeated abort answers the same"
        );
    }
    let paused = transition(&h, g, "pause").await;
    let repeat = transition(&h, g, "pause").await;
    assert_eq!(
        repeat.body["revision"], paused.body["revision"],
        "{}",
        repeat.text
    );
    // DELETE /gates/{id} is the delete transition; repeating it changes nothing.
    let open = admit(&h, "dup-reject", "t-open").await;
    expect(&open, 201, None, "admit before delete");
    let deleted = h
        .send(h.req("DELETE", &format!("/v1/ns/{NS}/gates/dup-reject")))
        .await;
    expect(&deleted, 200, None, "DELETE a gate");
    assert_eq!(
        (
            &deleted.body["state"],
            &deleted.body["changed"],
            &deleted.body["voided"]
        ),
        (&json!("deleted"), &json!(true), &json!(1)),
        "{}",
        deleted.text
    );
    let again = h
        .send(h.req("DELETE", &format!("/v1/ns/{NS}/gates/dup-reject")))
        .await;
    assert_eq!(again.body["changed"], json!(false), "{}", again.text);
    assert_eq!(again.body["revision"], deleted.body["revision"], "{}", again.text);
    let r = ticket_op(&h, "dup-reject", "t-open", "check").await;
    expect(&r, 410, Some("gate_closed"), "a ticket of a deleted gate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_finalize_sqlite() {
    let cl = sqlite_cluster();
    bounded("duplicate_finalize on sqlite", duplicate_finalize(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_finalize_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("duplicate_finalize on postgres×3", duplicate_finalize(&cl)).await;
}

// ---------------------------------------------------------------------------
// Capabilities racing a revoke (SPEC §11, seeds/001): 32 anonymous uploaders
// hold a capability minted at epoch 1 and run admit → check → commit →
// finalize while the owner revokes. Checked against the change log: no
// operation made with the old epoch's capability succeeded after the revoke's
// revision, and every success the uploaders saw is in the log before it.

const CAP_UPLOADERS: usize = 32;

async fn cap_post(h: &Http, cap: &str, path: &str, body: Value) -> Resp {
    h.send(
        h.req("POST", path)
            .header("authorization", format!("Bearer {cap}"))
            .json(&body),
    )
    .await
}

async fn capabilities_race_revoke(cl: &Cluster) {
    let label = cl.label;
    let owner = cl.http(0);
    let g = "cap-race";
    put_gate(&owner, g, "reject").await;
    let r = post(
        &owner,
        &format!("/v1/ns/{NS}/gates/{g}/capabilities"),
        Some(&json!({"ttl_ms": 600_000})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let cap = r.body["capability"].as_str().unwrap().to_owned();
    let ops_done = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CAP_UPLOADERS + 1));
    let mut tasks = Vec::new();
    for i in 0..CAP_UPLOADERS {
        let (h, cap, barrier, done) = (cl.http(i), cap.clone(), barrier.clone(), ops_done.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // Each success: (op, revision it committed at or names).
            let mut seen: Vec<(&'static str, u64)> = Vec::new();
            let mut closed = 0;
            'uploads: for n in 0..40 {
                let t = format!("u{i}-{n}");
                let base = format!("/v1/ns/{NS}/gates/{g}/tickets");
                let steps: [(&'static str, String, Value); 4] = [
                    ("admit", base.clone(), json!({"ticket_id": t})),
                    ("check", format!("{base}/{t}/check"), json!({})),
                    ("commit", format!("{base}/{t}/commit"), json!({})),
                    ("finalize", format!("{base}/{t}/finalize"), json!({})),
                ];
                for (op, path, body) in steps {
                    let r = cap_post(&h, &cap, &path, body).await;
                    match r.status {
                        200 | 201 => {
                            seen.push((op, r.u64("revision")));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        410 => {
                            assert_eq!(r.code(), Some("gate_closed"), "{}", r.text);
                            closed += 1;
                            if closed >= 3 {
                                break 'uploads;
                            }
                            continue 'uploads;
                        }
                        other => panic!("{op} {path}: unexpected {other} {}", r.text),
                    }
                }
            }
            (seen, closed)
        }));
    }
    barrier.wait().await;
    // Revoke in the middle of the load.
    poll(Duration::from_secs(30), "uploads under way", || {
        let done = ops_done.clone();
        async move { (done.load(Ordering::Relaxed) >= 60).then_some(()) }
    })
    .await;
    let revoked = transition(&owner, g, "revoke").await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let r_revoke = revoked.u64("revision");
    let mut successes = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (seen, closed) = t.await.unwrap();
        assert!(closed > 0, "[{label}] every uploader met the revoke");
        successes.extend(seen);
        refused += closed;
    }
    // Every write the uploaders saw succeed committed before the revoke.
    let writes: Vec<&(&str, u64)> = successes.iter().filter(|(op, _)| *op != "check").collect();
    assert!(!writes.is_empty());
    for (op, rev) in &writes {
        assert!(
            *rev < r_revoke,
            "[{label}] {op} at revision {rev} after the revoke at {r_revoke}"
        );
    }
    // The log agrees: nothing by the capability after the revoke's revision.
    let log = owner
        .get(&format!("/v1/ns/{NS}/changes?kind=gate&prefix={g}&limit=1000"))
        .await;
    let mut by_cap = 0;
    for c in log.body["changes"].as_array().unwrap() {
        if c["actor"] == json!(format!("capability:{g}")) {
            by_cap += 1;
            assert!(
                c["revision"].as_u64().unwrap() < r_revoke,
                "[{label}] {c} after the revoke at {r_revoke}"
            );
        }
    }
    assert_eq!(
        by_cap,
        writes.len(),
        "[{label}] the log holds exactly the writes the uploaders saw"
    );
    println!(
        "[{label}] capabilities racing a revoke: {} writes before revision {r_revoke}, {refused} refused 410, 0 accepted after",
        writes.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capabilities_race_revoke_sqlite() {
    let cl = sqlite_cluster();
    bounded(
        "capabilities racing a revoke on sqlite",
        capabilities_race_revoke(&cl),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capabilities_race_revoke_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded(
        "capabilities racing a revoke on postgres×3",
        capabilities_race_revoke(&cl),
    )
    .await;
}

// ---------------------------------------------------------------------------
// 4. Bad input.

async fn bad_input(cl: &Cluster) {
    let label = cl.label;
    let h = cl.http(0);
    put_gate(&h, "a", "reject").await;
    put_gate(&h, "b", "reject").await;
    expect(&admit(&h, "a", "t1").await, 201, None, "admit");
    expect(&admit(&h, "a", "t2").await, 201, None, "admit");
    expect_ticket(&ticket_op(&h, "a", "t2", "commit").await, "committed", "commit");
    let before = list_tickets(&h, "a").await;
    let gate_before = h.get(&gate_path("a")).await.body;
    let what = |s: &str| format!("[{label}] {s}");

    // Transitions.
    expect(
        &transition(&h, "a", "close").await,
        400,
        Some("invalid_request"),
        &what("unknown transition"),
    );
    expect(
        &transition(&h, "a", "Pause").await,
        400,
        Some("invalid_request"),
        &what("transitions are lower case"),
    );
    expect(
        &transition(&h, "nope", "pause").await,
        404,
        Some("not_found"),
        &what("transition of a missing gate"),
    );
    expect(
        &h.get(&gate_path("nope")).await,
        404,
        Some("not_found"),
        &what("GET a missing gate"),
    );
    expect(
        &admit(&h, "nope", "x").await,
        404,
        Some("not_found"),
        &what("admit to a missing gate"),
    );

    // A ticket of another gate (or none) is not found there, for every operation.
    for op in ["check", "commit", "finalize", "abort"] {
        expect(
            &ticket_op(&h, "b", "t1", op).await,
            404,
            Some("not_found"),
            &what(&format!("{op} via gate b")),
        );
        expect(
            &ticket_op(&h, "a", "zz", op).await,
            404,
            Some("not_found"),
            &what(&format!("{op} of no ticket")),
        );
    }
    expect(
        &finalize_append(&h, "b", "t2").await,
        404,
        Some("not_found"),
        &what("finalize+append via gate b"),
    );
    // Admitting another gate's ticket id is a conflict.
    expect(
        &admit(&h, "b", "t1").await,
        409,
        Some("ticket_conflict"),
        &what("admit gate a's id to b"),
    );
    // Finalize of an open ticket.
    expect(
        &ticket_op(&h, "a", "t1", "finalize").await,
        409,
        Some("ticket_conflict"),
        &what("finalize of an open ticket"),
    );
    expect(
        &finalize_append(&h, "a", "t1").await,
        409,
        Some("ticket_conflict"),
        &what("finalize+append of an open ticket"),
    );
    // Unknown ticket operations.
    for op in ["complete", "Commit", "void", "finalise"] {
        expect(
            &ticket_op(&h, "a", "t1", op).await,
            400,
            Some("invalid_request"),
            &what(&format!("op {op}")),
        );
    }
    // append with another operation.
    let append = json!({"append": {"feed": "recv/a", "data": {"x": 1}}});
    for op in ["check", "commit", "abort"] {
        let r = post(&h, &ticket_path("a", "t2", op), Some(&append)).await;
        expect(
            &r,
            400,
            Some("invalid_request"),
            &what(&format!("append with {op}")),
        );
    }
    // append data that is not an object, and other malformed finalize bodies.
    for body in [
        json!({"append": {"feed": "recv/a", "data": [1, 2]}}),
        json!({"append": {"feed": "recv/a", "data": "x"}}),
        json!({"append": {"feed": "recv/a", "data": 5}}),
        json!({"append": {"feed": "recv/a", "data": null}}),
        json!({"append": {"feed": "recv/a"}}),
        json!({"append": {"data": {"x": 1}}}),
        json!({"append": {"feed": "", "data": {"x": 1}}}),
        json!({"append": {"feed": "recv/a", "data": {"x": 1}, "id": "other"}}),
        json!({"append": [1]}),
        json!({"extra": 1}),
        json!([1]),
        json!([null]),
    ] {
        let r = post(&h, &ticket_path("a", "t2", "finalize"), Some(&body)).await;
        expect(
            &r,
            400,
            Some("invalid_request"),
            &what(&format!("finalize with {body}")),
        );
    }
    // Admission bodies.
    for body in [
        json!({"ticket_id": ""}),
        json!({"ticket_id": 5}),
        json!({"ticket_id": "x\u{1}y"}),
        json!({"ticket": "x"}),
    ] {
        let r = post(&h, &tickets_path("a"), Some(&body)).await;
        expect(&r, 400, Some("invalid_request"), &what(&format!("admit {body}")));
    }
    // Gate bodies and listings.
    for body in [
        json!({"policy": {"pending": "drop"}}),
        json!({"policy": {"pending": "reject", "x": 1}}),
        json!({"state": "open"}),
    ] {
        let r = h.json("PUT", &gate_path("a"), &body).await;
        expect(
            &r,
            400,
            Some("invalid_request"),
            &what(&format!("PUT gate {body}")),
        );
    }
    for q in ["state=bogus", "cursor=garbage", "limit=0", "color=red"] {
        let r = h.get(&format!("{}?{q}", tickets_path("a"))).await;
        expect(&r, 400, Some("invalid_request"), &what(&format!("list ?{q}")));
    }
    // Nothing changed; the tickets still work.
    assert_eq!(
        list_tickets(&h, "a").await,
        before,
        "{}",
        what("tickets unchanged")
    );
    assert_eq!(
        h.get(&gate_path("a")).await.body,
        gate_before,
        "{}",
        what("gate unchanged")
    );
    assert!(
        feed_entries(&h, "recv/a").await.is_empty(),
        "{}",
        what("no entry")
    );
    expect_ticket(
        &finalize_append(&h, "a", "t2").await,
        "finalized",
        &what("finalize after all that"),
    );
    // A ticket id with a `/` is addressed percent-encoded.
    expect(&admit(&h, "a", "dir/t3").await, 201, None, &what("admit dir/t3"));
    expect_ticket(
        &ticket_op(&h, "a", "dir/t3", "commit").await,
        "committed",
        &what("commit dir/t3"),
    );
    assert_eq!(list_tickets(&h, "a").await["dir/t3"]["state"], json!("committed"));
    // An abort after finalize is a conflict; a filtered listing shows it.
    expect(
        &ticket_op(&h, "a", "t2", "abort").await,
        409,
        Some("ticket_conflict"),
        &what("abort after finalize"),
    );
    let r = h.get(&format!("{}?state=finalized", tickets_path("a"))).await;
    expect(&r, 200, None, "filtered listing");
    assert_eq!(r.body["tickets"].as_array().unwrap().len(), 1, "{}", r.text);
    // A cursor is bound to its listing: another state filter or gate is 400.
    let r = h.get(&format!("{}?limit=1", tickets_path("a"))).await;
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = h
        .get(&format!("{}?limit=1&cursor={}", tickets_path("a"), enc(&cursor)))
        .await;
    expect(&r, 200, None, &what("the cursor on its own listing"));
    for path in [
        format!("{}?state=open&cursor={}", tickets_path("a"), enc(&cursor)),
        format!("{}?cursor={}", tickets_path("b"), enc(&cursor)),
    ] {
        expect(
            &h.get(&path).await,
            400,
            Some("invalid_request"),
            &what(&format!("foreign cursor {path}")),
        );
    }
    // The deleted gate: PUT 410, transitions 410 but delete.
    expect(&transition(&h, "b", "delete").await, 200, None, "delete b");
    expect(
        &h.json("PUT", &gate_path("b"), &json!({})).await,
        410,
        Some("gate_closed"),
        &what("PUT deleted"),
    );
    expect(
        &transition(&h, "b", "reopen").await,
        410,
        Some("gate_closed"),
        &what("reopen deleted"),
    );
    let r = transition(&h, "b", "delete").await;
    expect(&r, 200, None, "delete deleted");
    assert_eq!(r.body["changed"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_sqlite() {
    let cl = sqlite_cluster();
    bounded("bad_input on sqlite", bad_input(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_postgres() {
    let Some(cl) = pg_cluster(1).await else { return };
    bounded("bad_input on postgres", bad_input(&cl)).await;
}
