//! The change log over HTTP (SPEC §10, §15 "Changes and watch"): `GET /changes`
//! pages and `GET /watch` streams (Server-Sent Events) against a real server
//! (in process; spawned where several instances or a shutdown are the point).
//!
//! - A watcher connected while 32 clients commit 5,000 writes (through one
//!   SQLite server, or three `lockstep serve` processes over one PostgreSQL
//!   schema) receives every revision exactly once, in strictly increasing order;
//!   a watcher that disconnects mid-run and resumes with `Last-Event-ID` (on
//!   another process) misses nothing; so does `lockstep_client`'s watch
//!   stream. The writers go through `lockstep_client`; the watch latency
//!   (write acknowledged → event received) is printed, not asserted.
//! - `prefix` and `kind` filter both endpoints; bad input is a 400.
//! - With `--changes-keep-count` the sweeper compacts the log, and reading from
//!   before what is kept is a 410 `compacted`, also for a watch.
//! - An open watch does not hold up a graceful shutdown.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{fresh_pg, sqlite_db, tempdir, Http, Process, Resp, Server};
use futures_util::StreamExt;
use lockstep_client::api::changes::WatchEvent;
use lockstep_client::api::changes::WatchQuery;
use lockstep_client::api::records::PutRecordBody;
use lockstep_client::api::{Op, Txn};
use lockstep_client::Ns;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NS: &str = "chg";
const CLIENTS: usize = 32;
const WRITES: usize = 5_000;
/// Bound on one scenario, so a hang fails instead of blocking the suite.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

fn rec(key: &str) -> String {
    format!("/v1/ns/{NS}/records/{key}")
}

// ---------------------------------------------------------------------------
// A small Server-Sent Events client.

/// One event of the stream.
#[derive(Debug, Clone)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
    /// When the event's last byte arrived.
    at: Instant,
}

impl SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("event data {:?}: {e}", self.data))
    }
}

type ByteStream = Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// What waiting for an event gave.
#[derive(Debug)]
enum Next {
    Event(SseEvent),
    Quiet,
    End,
}

/// An open watch.
struct Sse {
    stream: ByteStream,
    buf: Vec<u8>,
    /// Comment lines seen (keep-alives and the opening comment).
    comments: Vec<String>,
}

/// A client without a total timeout, for streams.
fn stream_client() -> reqwest::Client {
    crate::common::reqwest_builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

impl Sse {
    /// Opens `GET path` as an event stream; a non-200 answer is returned as `Err`.
    async fn open(base: &str, path: &str, last_event_id: Option<&str>) -> Result<Sse, Resp> {
        let mut req = stream_client()
            .get(format!("{base}{path}"))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        if status != 200 {
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Err(Resp {
                status,
                headers,
                text,
                body,
            });
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(ct.starts_with("text/event-stream"), "content-type {ct:?}");
        Ok(Sse {
            stream: Box::pin(resp.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
            buf: Vec::new(),
            comments: Vec::new(),
        })
    }

    /// The next event with data; `None` when the stream ends.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8 events");
                let mut ev = SseEvent {
                    id: None,
                    event: None,
                    data: String::new(),
                    at: Instant::now(),
                };
                let mut has_data = false;
                for line in text.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        self.comments.push(c.trim().to_owned());
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "id" => ev.id = Some(value.to_owned()),
                        "event" => ev.event = Some(value.to_owned()),
                        "data" => {
                            if has_data {
                                ev.data.push('\n');
                            }
                            ev.data.push_str(value);
                            has_data = true;
                        }
                        _ => {}
                    }
                }
                if has_data {
                    return Some(ev);
                }
                continue;
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next event, or `None` if none arrives within `wait` (or the end).
    async fn next_within(&mut self, wait: Duration) -> Option<SseEvent> {
        match self.wait(wait).await {
            Next::Event(e) => Some(e),
            Next::Quiet | Next::End => None,
        }
    }

    /// The next event, a quiet `wait`, or the end of the stream.
    async fn wait(&mut self, wait: Duration) -> Next {
        match tokio::time::timeout(wait, self.next()).await {
            Ok(Some(e)) => Next::Event(e),
            Ok(None) => Next::End,
            Err(_) => Next::Quiet,
        }
    }
}

/// A received `change` event: its revision, the changes' keys and when it came.
#[derive(Debug, Clone)]
struct Got {
    revision: u64,
    keys: Vec<String>,
    at: Instant,
}

/// Checks one `change` event's shape and returns what it holds.
#[track_caller]
fn change_event(ev: &SseEvent) -> Got {
    assert_eq!(ev.event.as_deref(), Some("change"), "{ev:?}");
    let id: u64 = ev.id.as_deref().unwrap().parse().unwrap();
    let data = ev.json();
    assert_eq!(
        data["revision"],
        json!(id),
        "data.revision is the event id: {data}"
    );
    let changes = data["changes"].as_array().unwrap();
    assert!(!changes.is_empty(), "an event holds at least one change");
    let mut keys = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        assert_eq!(c["revision"], json!(id));
        if i > 0 {
            assert!(c["index"].as_u64() > changes[i - 1]["index"].as_u64());
        }
        keys.push(c["key"].as_str().unwrap().to_owned());
    }
    Got {
        revision: id,
        keys,
        at: ev.at,
    }
}

// ---------------------------------------------------------------------------
// A server started with extra arguments (the shared harness takes none).

struct ExtraServer {
    child: Child,
    url: String,
}

impl ExtraServer {
    fn start(database: &str, extra: &[&str]) -> ExtraServer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", database]);
        if database.starts_with("postgres") {
            cmd.args(["--pool-size", common::PG_POOL_SIZE]);
        }
        cmd.args(extra)
            .env_remove("LOCKSTEP_DATABASE")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("the server did not report listening: {e:?}"));
            if let Some(rest) = line.split("lockstep listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        ExtraServer { child, url }
    }
}

impl Drop for ExtraServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Scenarios.

async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(SCENARIO_TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {SCENARIO_TIMEOUT:?}"),
    }
}

/// What one writing client saw: (revision, when the answer arrived, how many
/// changes the write made).
type Acks = Vec<(u64, Instant, usize)>;

/// One client's share of the writes, through `lockstep_client`: PUTs of a
/// few keys of its own, every seventh a two-key transaction.
async fn writer(app: Ns, client: usize, n: usize) -> Acks {
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        let (revision, changes) = if i % 7 == 6 {
            let txn = Txn {
                success: vec![
                    Op::put(format!("c{client}/t"), json!(i)),
                    Op::put(format!("c{client}/u"), json!(i)),
                ],
                ..Txn::default()
            };
            let r = app
                .txn(&txn)
                .await
                .unwrap_or_else(|e| panic!("txn {i} of client {client}: {e:?}"));
            assert!(r.succeeded, "{r:?}");
            (r.revision, 2)
        } else {
            let key = format!("c{client}/{}", i % 5);
            let w = app
                .put(&key, &PutRecordBody::new(json!(i)))
                .await
                .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
            assert!(!w.replayed, "{w:?}");
            (w.put.revision, 1)
        };
        acks.push((revision, Instant::now(), changes));
    }
    acks
}

/// Reads the client's watch stream until an event at or past `target` (once
/// it is set), checking each event's changes as [`change_event`] does.
async fn collect_client(mut events: lockstep_client::Pager<WatchEvent>, target: Arc<AtomicU64>) -> Vec<Got> {
    let mut got: Vec<Got> = Vec::new();
    let deadline = Instant::now() + SCENARIO_TIMEOUT;
    loop {
        let t = target.load(Ordering::SeqCst);
        if t > 0 && got.last().is_some_and(|g| g.revision >= t) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "the client's watch stalled at {:?}",
            got.last()
        );
        match tokio::time::timeout(Duration::from_millis(200), events.next()).await {
            Ok(Some(Ok(ev))) => {
                assert!(
                    !ev.changes.is_empty(),
                    "an event holds at least one change: {ev:?}"
                );
                for (i, c) in ev.changes.iter().enumerate() {
                    assert_eq!(c.revision, ev.revision, "{ev:?}");
                    if i > 0 {
                        assert!(c.index > ev.changes[i - 1].index, "{ev:?}");
                    }
                }
                got.push(Got {
                    revision: ev.revision,
                    keys: ev.changes.into_iter().map(|c| c.key).collect(),
                    at: Instant::now(),
                });
            }
            Ok(Some(Err(e))) => panic!("the client's watch failed after {:?}: {e:?}", got.last()),
            Ok(None) => panic!("the client's watch ended early, after {:?}", got.last()),
            // A quiet interval: loop to re-check the target.
            Err(_) => {}
        }
    }
}

/// Reads `change` events until one at or past `target` (once it is set) and
/// returns them; `stop_after` ends it early (a disconnect) after that many.
async fn collect(mut sse: Sse, target: Arc<AtomicU64>, stop_after: Option<usize>) -> Vec<Got> {
    let mut got: Vec<Got> = Vec::new();
    let deadline = Instant::now() + SCENARIO_TIMEOUT;
    loop {
        let t = target.load(Ordering::SeqCst);
        if t > 0 && got.last().is_some_and(|g| g.revision >= t) {
            return got;
        }
        if stop_after.is_some_and(|n| got.len() >= n) {
            return got;
        }
        assert!(Instant::now() < deadline, "the watch stalled at {:?}", got.last());
        match sse.wait(Duration::from_millis(200)).await {
            Next::Event(ev) => got.push(change_event(&ev)),
            // A quiet interval: loop to re-check the target.
            Next::Quiet => {}
            Next::End => panic!("the watch ended early, after {:?}", got.last()),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// 32 clients commit 5,000 writes spread over `urls` while watcher A (on the
/// first server, from now) and watcher B (on the second; it disconnects after a
/// third of the run and resumes with `Last-Event-ID` on the last server) read.
async fn watch_every_revision(urls: &[String], label: &str) {
    let first = &urls[0];
    let target = Arc::new(AtomicU64::new(0));
    let watch_path = format!("/v1/ns/{NS}/watch");
    let a = Sse::open(first, &watch_path, None).await.unwrap();
    let b = Sse::open(&urls[1 % urls.len()], &watch_path, None).await.unwrap();
    let watcher_a = tokio::spawn(collect(a, target.clone(), None));
    let watcher_b = tokio::spawn(collect(b, target.clone(), Some(WRITES / 3)));
    // C: `lockstep_client`'s watch stream, from the start of the (fresh) log.
    let from_start = WatchQuery {
        after: Some("0".into()),
        ..WatchQuery::default()
    };
    let c = common::ns(&urls[1 % urls.len()], NS).watch(from_start);
    let watcher_c = tokio::spawn(collect_client(c, target.clone()));

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let n = WRITES / CLIENTS + usize::from(c < WRITES % CLIENTS);
        tasks.push(tokio::spawn(writer(common::ns(&urls[c % urls.len()], NS), c, n)));
    }
    // B disconnects mid-run and resumes where it left off, on another process.
    let b_first = watcher_b.await.unwrap();
    let resume_id = b_first.last().unwrap().revision.to_string();
    let resumed = Sse::open(urls.last().unwrap(), &watch_path, Some(&resume_id))
        .await
        .unwrap();
    let watcher_b2 = tokio::spawn(collect(resumed, target.clone(), None));

    let mut acks: Acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let committed: BTreeSet<u64> = acks.iter().map(|(r, _, _)| *r).collect();
    assert_eq!(
        committed.len(),
        WRITES,
        "[{label}] every write has its own revision"
    );
    target.store(*committed.last().unwrap(), Ordering::SeqCst);
    let got_a = watcher_a.await.unwrap();
    let got_b2 = watcher_b2.await.unwrap();
    let got_c = watcher_c.await.unwrap();

    // A: every revision exactly once, strictly increasing.
    let revs_a: Vec<u64> = got_a.iter().map(|g| g.revision).collect();
    assert!(
        revs_a.windows(2).all(|w| w[0] < w[1]),
        "[{label}] A's revisions increase strictly"
    );
    let seen_a: BTreeSet<u64> = revs_a.iter().copied().collect();
    let missed: Vec<_> = committed.difference(&seen_a).take(20).collect();
    assert!(missed.is_empty(), "[{label}] A missed revisions, e.g. {missed:?}");
    assert_eq!(
        seen_a, committed,
        "[{label}] A saw exactly the committed revisions"
    );
    // Each event holds every change of its revision: 2 for the transactions.
    let sizes: std::collections::HashMap<u64, usize> = acks.iter().map(|(r, _, n)| (*r, *n)).collect();
    for g in &got_a {
        assert_eq!(
            g.keys.len(),
            sizes[&g.revision],
            "[{label}] the changes of {}",
            g.revision
        );
    }
    // B: the first part and the resumed part together, without gap or repeat.
    let revs_b: Vec<u64> = b_first.iter().chain(&got_b2).map(|g| g.revision).collect();
    assert!(
        revs_b.windows(2).all(|w| w[0] < w[1]),
        "[{label}] B's revisions increase strictly across the resume"
    );
    let seen_b: BTreeSet<u64> = revs_b.iter().copied().collect();
    assert_eq!(seen_b, committed, "[{label}] B missed nothing across its resume");

    // C (the client's stream): every revision exactly once, in order, each
    // with every change of its revision.
    let revs_c: Vec<u64> = got_c.iter().map(|g| g.revision).collect();
    assert!(
        revs_c.windows(2).all(|w| w[0] < w[1]),
        "[{label}] the client's watch yields strictly increasing revisions"
    );
    let seen_c: BTreeSet<u64> = revs_c.iter().copied().collect();
    assert_eq!(
        seen_c, committed,
        "[{label}] the client's watch saw exactly the committed revisions"
    );
    for g in &got_c {
        assert_eq!(
            g.keys.len(),
            sizes[&g.revision],
            "[{label}] the client's watch: changes of {}",
            g.revision
        );
    }

    // Latency: write acknowledged → event received by A.
    let arrived: std::collections::HashMap<u64, Instant> = got_a.iter().map(|g| (g.revision, g.at)).collect();
    let mut lat: Vec<f64> = acks
        .iter()
        .map(|(rev, ack, _)| {
            let ev = arrived[rev];
            if ev >= *ack {
                ev.duration_since(*ack).as_secs_f64() * 1000.0
            } else {
                -(ack.duration_since(ev).as_secs_f64() * 1000.0)
            }
        })
        .collect();
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    println!(
        "[{label}] {WRITES} writes by {CLIENTS} clients over {} server(s) in {:.1} s; \
         watch latency (write acknowledged → event received; negative = event first): \
         median {:.1} ms, p99 {:.1} ms, max {:.1} ms; B resumed after revision {resume_id}",
        urls.len(),
        elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn watch_sees_every_revision_once_sqlite() {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    let urls = vec![server.url.clone()];
    bounded("watch on SQLite", watch_every_revision(&urls, "sqlite")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn watch_sees_every_revision_once_postgres_three_processes() {
    let Some(pg) = fresh_pg().await else { return };
    let servers: Vec<Process> = (0..3).map(|_| Process::start(&pg.url)).collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    bounded(
        "watch on 3 PostgreSQL processes",
        watch_every_revision(&urls, "postgres×3"),
    )
    .await;
    drop(servers);
    drop(pg);
}

/// `GET /changes`: the shape of a change, paging with `next_cursor`, `prefix` and
/// `kind`; `GET /watch` with the same filters; bad input is a 400.
async fn filters_and_paging(url: &str) {
    let h = Http::new(url);
    let put = |k: &str| {
        let h = h.clone();
        let path = rec(k);
        async move {
            let r = h.json("PUT", &path, &json!({"value": 1})).await;
            assert!(r.status == 200 || r.status == 201, "{}", r.text);
            r.u64("revision")
        }
    };
    let watch_path = format!("/v1/ns/{NS}/watch?prefix=a%2F");
    let mut w_prefix = Sse::open(url, &watch_path, None).await.unwrap();
    let mut w_kind = Sse::open(url, &format!("/v1/ns/{NS}/watch?kind=lease"), None)
        .await
        .unwrap();
    let r1 = put("a/1").await;
    let _ = put("b/1").await;
    let r3 = put("a/2").await;
    let lease = h
        .json(
            "POST",
            &format!("/v1/ns/{NS}/leases/a%2Flock/acquire"),
            &json!({"ttl_ms": 60_000}),
        )
        .await;
    assert_eq!(lease.status, 200, "{}", lease.text);
    let r4 = lease.u64("fence");
    let r5 = h
        .json(
            "POST",
            &format!("/v1/ns/{NS}/txn"),
            &json!({"success": [{"put": {"key": "a/3", "value": 1}}, {"put": {"key": "b/2", "value": 1}}]}),
        )
        .await
        .u64("revision");

    // The prefix watch: a/… changes only, the lease's name included; a
    // transaction's event holds only its matching changes.
    let mut got = Vec::new();
    while got.len() < 4 {
        let ev = w_prefix
            .next_within(Duration::from_secs(10))
            .await
            .expect("a prefix event");
        got.push(change_event(&ev));
    }
    let revs: Vec<u64> = got.iter().map(|g| g.revision).collect();
    assert_eq!(revs, [r1, r3, r4, r5]);
    assert_eq!(got[2].keys, ["a/lock"]);
    assert_eq!(got[3].keys, ["a/3"]);
    assert!(w_prefix
        .comments
        .iter()
        .any(|c| c.starts_with("watching after revision")));
    let ev = change_event(
        &w_kind
            .next_within(Duration::from_secs(10))
            .await
            .expect("a lease event"),
    );
    assert_eq!(
        (ev.revision, ev.keys.as_slice()),
        (r4, ["a/lock".to_owned()].as_slice())
    );
    assert!(
        w_kind.next_within(Duration::from_millis(300)).await.is_none(),
        "records are not leases"
    );

    // The shape of a change.
    let r = h
        .get(&format!("/v1/ns/{NS}/changes?after={}&limit=1", r1 - 1))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = &r.body["changes"][0];
    assert_eq!(c["revision"], json!(r1));
    assert_eq!(c["index"], json!(0));
    assert_eq!(c["kind"], json!("record"));
    assert_eq!(c["key"], json!("a/1"));
    assert_eq!(c["op"], json!("put"));
    assert_eq!(c["actor"], json!("anonymous"));
    assert_eq!(c["forced"], json!(false));
    assert!(c["at"].as_str().unwrap().ends_with('Z'), "{c}");
    assert_eq!(r.body["next_cursor"], json!(r1.to_string()));
    assert_eq!(c.as_object().unwrap().len(), 8, "{c}");

    // Paging by 2 from the start: whole revisions, next_cursor null at the end.
    let mut after: Option<String> = None;
    let mut keys = Vec::new();
    let mut pages = 0;
    loop {
        let q = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let r = h.get(&format!("/v1/ns/{NS}/changes?limit=2{q}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        pages += 1;
        for c in r.body["changes"].as_array().unwrap() {
            keys.push(c["key"].as_str().unwrap().to_owned());
        }
        match &r.body["next_cursor"] {
            Value::Null => break,
            Value::String(s) => after = Some(s.clone()),
            other => panic!("next_cursor {other}"),
        }
    }
    assert_eq!(keys, ["a/1", "b/1", "a/2", "a/lock", "a/3", "b/2"]);
    assert!(pages >= 3, "{pages} pages");
    // The same pages with `cursor=`, as every listing takes `next_cursor` back.
    let mut cursor: Option<String> = None;
    let mut by_cursor = Vec::new();
    loop {
        let q = cursor
            .as_ref()
            .map(|a| format!("&cursor={a}"))
            .unwrap_or_default();
        let r = h.get(&format!("/v1/ns/{NS}/changes?limit=2{q}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        by_cursor.extend(
            r.body["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["key"].clone()),
        );
        match r.body["next_cursor"].as_str() {
            None => break,
            Some(s) => cursor = Some(s.to_owned()),
        }
    }
    assert_eq!(by_cursor, keys);

    // Filters on the listing.
    let list = |q: String| {
        let h = h.clone();
        async move {
            let r = h.get(&format!("/v1/ns/{NS}/changes?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            r.body["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["key"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("prefix=a%2F".into()).await, ["a/1", "a/2", "a/lock", "a/3"]);
    assert_eq!(list("prefix=b/&kind=record".into()).await, ["b/1", "b/2"]);
    assert_eq!(list("kind=lease".into()).await, ["a/lock"]);
    assert!(list("kind=gate".into()).await.is_empty());
    assert!(list("kind=idempotency".into()).await.is_empty());
    assert!(list(format!("after={r5}")).await.is_empty());

    // Bad input.
    for q in [
        "after=abc",
        "after=-1",
        "after=%2B1",
        "after=",
        "after=99999999999999999999999",
        "kind=records",
        "limit=0",
        "limit=1001",
        "bogus=1",
        "cursor=x",
        "cursor=1&after=1",
        "cursor=9223372036854775808",
    ] {
        let r = h.get(&format!("/v1/ns/{NS}/changes?{q}")).await;
        assert_eq!(r.status, 400, "changes?{q}: {}", r.text);
        assert_eq!(r.code(), Some("invalid_request"));
    }
    for q in ["after=x", "kind=nope", "limit=5", "bogus=1"] {
        let e = Sse::open(url, &format!("/v1/ns/{NS}/watch?{q}"), None)
            .await
            .err()
            .unwrap();
        assert_eq!(e.status, 400, "watch?{q}: {}", e.text);
        assert_eq!(e.code(), Some("invalid_request"));
        assert!(e
            .header("content-type")
            .unwrap()
            .starts_with("application/problem+json"));
    }
    let e = Sse::open(url, &format!("/v1/ns/{NS}/watch"), Some("abc"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.status, 400, "{}", e.text);
    let e = Sse::open(url, "/v1/ns/Bad!/watch", None).await.err().unwrap();
    assert_eq!(e.status, 400, "{}", e.text);
    // The endpoints are in the OpenAPI document.
    let doc = h.get("/openapi.json").await.body;
    assert!(doc["paths"]["/v1/ns/{ns}/changes"]["get"].is_object());
    assert!(doc["paths"]["/v1/ns/{ns}/watch"]["get"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_paging_and_bad_input_sqlite() {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    bounded("filters on SQLite", filters_and_paging(&server.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_paging_and_bad_input_postgres() {
    let Some(pg) = fresh_pg().await else { return };
    let server = Server::start(&pg.url);
    bounded("filters on PostgreSQL", filters_and_paging(&server.url)).await;
    drop(server);
    drop(pg);
}

/// With `--changes-keep-count 3` the sweeper compacts the log: a read (or a
/// watch, also by `Last-Event-ID`) from before what is kept is a 410
/// `compacted`; from the oldest kept it works.
async fn compacted(database: &str) {
    // The log is written first (by a server with the default limits), so the
    // flagged server's first sweep, at its start, finds it to compact: no
    // waiting for the next compaction, 10 sweeps later.
    let mut last = 0;
    {
        let writer = Server::start(database);
        let h = Http::new(&writer.url);
        for i in 0..10 {
            let r = h.json("PUT", &rec(&format!("k{i}")), &json!({"value": i})).await;
            last = r.u64("revision");
        }
    }
    let server = ExtraServer::start(database, &["--changes-keep-count", "3"]);
    let h = Http::new(&server.url);
    // Until the first sweep has run: only the newest three are kept then.
    common::poll(Duration::from_secs(40), "compaction to 3 changes", || {
        let h = h.clone();
        async move {
            let r = h.get(&format!("/v1/ns/{NS}/changes")).await;
            (r.body["changes"].as_array().map(Vec::len) == Some(3)).then_some(())
        }
    })
    .await;
    let r = h.get(&format!("/v1/ns/{NS}/changes?after=0")).await;
    assert_eq!(r.code(), Some("compacted"), "{}", r.text);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/problem+json"));
    // Without `after`: from the oldest kept, the newest three.
    let r = h.get(&format!("/v1/ns/{NS}/changes")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let kept: Vec<u64> = r.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(kept.len(), 3, "{}", r.text);
    assert_eq!(*kept.last().unwrap(), last);
    let horizon = kept[0] - 1;
    let r = h.get(&format!("/v1/ns/{NS}/changes?after={horizon}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h.get(&format!("/v1/ns/{NS}/changes?after={}", horizon - 1)).await;
    assert_eq!(r.status, 410, "{}", r.text);
    // Watches.
    let path = format!("/v1/ns/{NS}/watch");
    let e = Sse::open(&server.url, &format!("{path}?after=0"), None)
        .await
        .err()
        .unwrap();
    assert_eq!((e.status, e.code()), (410, Some("compacted")), "{}", e.text);
    let e = Sse::open(&server.url, &path, Some("1")).await.err().unwrap();
    assert_eq!((e.status, e.code()), (410, Some("compacted")), "{}", e.text);
    let mut w = Sse::open(&server.url, &path, Some(&horizon.to_string()))
        .await
        .unwrap();
    let revs: Vec<u64> = [
        w.next_within(Duration::from_secs(10)).await.unwrap(),
        w.next_within(Duration::from_secs(10)).await.unwrap(),
        w.next_within(Duration::from_secs(10)).await.unwrap(),
    ]
    .iter()
    .map(|e| change_event(e).revision)
    .collect();
    assert_eq!(revs, kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compacted_is_410_sqlite() {
    let dir = tempdir();
    bounded("compaction on SQLite", compacted(&sqlite_db(&dir))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compacted_is_410_postgres() {
    let Some(pg) = fresh_pg().await else { return };
    bounded("compaction on PostgreSQL", compacted(&pg.url)).await;
    drop(pg);
}

/// SIGTERM with a watch open: the watch ends and the server exits 0 promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_watch_does_not_block_shutdown() {
    let dir = tempdir();
    let mut server = Process::start(&sqlite_db(&dir));
    let mut w = Sse::open(&server.url, &format!("/v1/ns/{NS}/watch"), None)
        .await
        .unwrap();
    let h = Http::new(&server.url);
    let r = h.json("PUT", &rec("x"), &json!({"value": 1})).await;
    let ev = change_event(&w.next_within(Duration::from_secs(10)).await.unwrap());
    assert_eq!(ev.revision, r.u64("revision"));
    let started = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(
        w.next_within(Duration::from_secs(5)).await.is_none(),
        "the watch ended"
    );
}
