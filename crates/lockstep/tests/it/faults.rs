//! Faults over PostgreSQL under a write load (issue #11):
//!
//! - `postgres_stopped_during_writes`: a private PostgreSQL cluster (initdb and
//!   pg_ctl in a temporary directory, on a free port) is stopped with
//!   `pg_ctl stop -m immediate` while clients make compare-and-set writes. Every
//!   answer is a 2xx, or a 503 `unavailable` with `Retry-After` within a bounded
//!   time; the same server recovers once PostgreSQL is back; every write
//!   acknowledged with 2xx is in the change log and in the final state.
//! - `instance_killed_during_writes`: three instances over one PostgreSQL, one is
//!   SIGKILLed mid-load; clients retry on the others with the same
//!   `Idempotency-Key` (and resend some acknowledged writes on purpose, as if
//!   the answer had been lost), and nothing acknowledged is lost or applied
//!   twice.
//!
//! The load itself is raw HTTP: its point is the wire (503 `unavailable` with
//! `Retry-After`, and one `Idempotency-Key` resent to other instances); the
//! checks afterwards read through `lockstep_client`.
//!
//! Without PostgreSQL (no `initdb`, or no `LOCKSTEP_TEST_DATABASE_URL`) they are
//! skipped, except when PostgreSQL is required (`CI`, `LOCKSTEP_REQUIRE_PG=1`),
//! where that fails.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{fresh_pg, poll, try_send, Http, Process, Resp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use lockstep_client::api::changes::{Change, ChangesQuery};
use lockstep_client::api::feeds::{EntriesQuery, Entry};
use lockstep_client::api::records::Record;
use lockstep_client::Ns;

const NS: &str = "faults";
/// Longest time one answer may take, outage or not (the store's query and
/// pool timeouts are 10 s each).
const ANSWER_WITHIN: Duration = Duration::from_secs(25);
/// How long the server may take to write again once PostgreSQL is back.
const RECOVER_WITHIN: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// A private PostgreSQL cluster.

/// The newest `/usr/lib/postgresql/*/bin` holding `initdb` and `pg_ctl`.
fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL cluster of its own in a temporary directory, stopped on drop.
struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// initdb and start; `None` (skip) when PostgreSQL is not installed outside CI.
    fn start() -> Option<PgCluster> {
        let Some(bin) = pg_bin_dir() else {
            assert!(
                !lockstep_testkit::pg::required(),
                "no initdb/pg_ctl under /usr/lib/postgresql/*/bin but PostgreSQL is required \
                 (CI or LOCKSTEP_REQUIRE_PG=1): scripts/ensure-postgres installs them"
            );
            println!("skipping: no initdb/pg_ctl under /usr/lib/postgresql/*/bin");
            return None;
        };
        // initdb refuses to run as root: the cluster then belongs to `postgres`.
        let as_postgres = is_root();
        // Under /tmp, which `postgres` can traverse (TMPDIR may not be).
        let dir = if as_postgres {
            tempfile::tempdir_in("/tmp").unwrap()
        } else {
            common::tempdir()
        };
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let port = free_port();
        let c = PgCluster {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = c.data();
        c.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        c.start_again();
        Some(c)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log(&self) -> String {
        self.dir.path().join("postgres.log").display().to_string()
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed ({}):\n{}\n{}\nlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    /// `pg_ctl start -w` on the same port.
    fn start_again(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=40 \
             -c shared_buffers=16MB",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (self.data(), self.log());
        self.run(
            "pg_ctl",
            &["start", "-w", "-t", "60", "-D", &data, "-l", &log, "-o", &opts],
        );
    }

    /// `pg_ctl stop -m immediate`: every backend dies at once, no checkpoint.
    fn stop_immediate(&self) {
        let data = self.data();
        self.run("pg_ctl", &["stop", "-w", "-m", "immediate", "-D", &data]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["stop", "-w", "-m", "immediate", "-D", &data])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// Helpers.

fn rec(key: &str) -> String {
    format!("/v1/ns/{NS}/records/{key}")
}

/// Sends with [`ANSWER_WITHIN`]; a transport error is `Err`, a hang fails.
async fn send(what: &str, req: reqwest::RequestBuilder) -> Result<(Resp, Duration), reqwest::Error> {
    let start = Instant::now();
    match tokio::time::timeout(ANSWER_WITHIN, try_send(req)).await {
        Ok(r) => r.map(|r| (r, start.elapsed())),
        Err(_) => panic!("{what}: no answer within {ANSWER_WITHIN:?}"),
    }
}

#[track_caller]
fn assert_unavailable(r: &Resp, what: &str) {
    assert_eq!(r.code(), Some("unavailable"), "{what}: {} {}", r.status, r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let ra = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
    assert!(ra.parse::<u64>().is_ok(), "{what}: Retry-After {ra:?}");
}

/// Every revision of the change log that touched `key` (record changes),
/// read through `lockstep_client`'s pager.
async fn logged_revisions(app: &Ns, key: &str) -> BTreeSet<u64> {
    let q = ChangesQuery {
        kind: Some("record".into()),
        prefix: Some(key.to_owned()),
        limit: Some(1000),
        ..ChangesQuery::default()
    };
    let changes: Vec<Change> = app.changes(q).try_collect().await.unwrap();
    changes
        .into_iter()
        .filter(|c| c.key == key)
        .map(|c| c.revision)
        .collect()
}

/// The record `key`, read through `lockstep_client`; it must exist.
async fn record(app: &Ns, key: &str) -> Record {
    app.get(key)
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e:?}"))
        .unwrap_or_else(|| panic!("{key} is absent"))
}

// ---------------------------------------------------------------------------
// Stop PostgreSQL during a write load.

/// What one compare-and-set client saw.
#[derive(Default, Debug)]
struct CasLog {
    /// Acknowledged writes: (value, version), in order.
    acks: Vec<(u64, u64)>,
    unavailable: u64,
    /// 409 after a write answered 503 that had in fact committed (its COMMIT
    /// was in flight when PostgreSQL died, so the server cannot know).
    resynced: u64,
    slowest: Duration,
    /// When the first write after PostgreSQL came back was acknowledged.
    first_ack_after_restart: Option<Instant>,
}

struct Phase {
    stopped: AtomicBool,
    /// Between `pg_ctl stop` returning and `pg_ctl start` being called.
    down: AtomicBool,
    restarted: Mutex<Option<Instant>>,
    done: AtomicBool,
    acks: AtomicU64,
    /// Writes sent and answered 2xx while `down`: must stay 0.
    acks_sent_while_down: AtomicU64,
    unavailable: AtomicU64,
}

async fn cas_client(h: Http, key: String, phase: Arc<Phase>) -> CasLog {
    let mut log = CasLog::default();
    let (mut value, mut version) = (0u64, 0u64);
    // After a 503 the write may or may not have committed: a 409 then tells.
    let mut ambiguous = false;
    while !phase.done.load(Ordering::SeqCst) {
        let next = value + 1;
        // Sent while PostgreSQL was down: nothing can commit, so never a 2xx.
        let sent_while_down = phase.down.load(Ordering::SeqCst);
        let req = h
            .req("PUT", &rec(&key))
            .header("content-type", "application/json")
            .body(json!({"value": next, "expected_version": version}).to_string());
        let (r, took) = match send(&format!("PUT {key}"), req).await {
            Ok(x) => x,
            Err(e) => {
                // The server itself never goes away in this test.
                panic!("PUT {key}: transport error {e}");
            }
        };
        log.slowest = log.slowest.max(took);
        match r.status {
            200 | 201 => {
                if sent_while_down && phase.down.load(Ordering::SeqCst) {
                    phase.acks_sent_while_down.fetch_add(1, Ordering::SeqCst);
                }
                assert!(
                    !sent_while_down || !phase.down.load(Ordering::SeqCst),
                    "PUT {key} sent and answered while PostgreSQL was stopped: {} {}",
                    r.status,
                    r.text
                );
                value = next;
                version = r.u64("version");
                log.acks.push((value, version));
                ambiguous = false;
                phase.acks.fetch_add(1, Ordering::SeqCst);
                if log.first_ack_after_restart.is_none() && phase.restarted.lock().unwrap().is_some() {
                    log.first_ack_after_restart = Some(Instant::now());
                }
            }
            503 => {
                assert_unavailable(&r, &format!("PUT {key}"));
                log.unavailable += 1;
                phase.unavailable.fetch_add(1, Ordering::SeqCst);
                ambiguous = true;
                // A client honours Retry-After, briefly here to keep the load on.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            409 if ambiguous && r.code() == Some("version_mismatch") => {
                // Our unanswered write had committed: continue from it.
                let cur = &r.body["current"];
                value = cur["value"].as_u64().unwrap();
                version = cur["version"].as_u64().unwrap();
                assert_eq!(value, next, "only our own write can have moved {key}: {}", r.text);
                log.resynced += 1;
                ambiguous = false;
            }
            _ => panic!(
                "PUT {key} answered {} {} (stopped: {})",
                r.status,
                r.text,
                phase.stopped.load(Ordering::SeqCst)
            ),
        }
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_during_writes() {
    let Some(pg) = PgCluster::start() else { return };
    let server = Process::start(&pg.url());
    let h = Http::new(&server.url);
    const CLIENTS: usize = 8;
    let phase = Arc::new(Phase {
        stopped: AtomicBool::new(false),
        down: AtomicBool::new(false),
        restarted: Mutex::new(None),
        done: AtomicBool::new(false),
        acks: AtomicU64::new(0),
        acks_sent_while_down: AtomicU64::new(0),
        unavailable: AtomicU64::new(0),
    });
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(cas_client(h.clone(), format!("c{i}"), phase.clone())))
        .collect();

    // Under load: then stop PostgreSQL in the middle of it.
    poll(
        Duration::from_secs(30),
        "200 acknowledged writes before the stop",
        || {
            let n = phase.acks.load(Ordering::SeqCst);
            async move { (n >= 200).then_some(()) }
        },
    )
    .await;
    phase.stopped.store(true, Ordering::SeqCst);
    pg.stop_immediate();
    let stopped_at = Instant::now();
    phase.down.store(true, Ordering::SeqCst);
    let acks_before = phase.acks.load(Ordering::SeqCst);
    println!("PostgreSQL stopped (immediate) after {acks_before} acknowledged writes");

    // The clients keep writing against the stopped database for a few seconds:
    // every answer is a 503 (checked by the clients); the process stays up.
    let outage = Duration::from_secs(4);
    poll(
        outage + Duration::from_secs(5),
        "the outage window to pass",
        || {
            let over = stopped_at.elapsed() >= outage;
            async move { over.then_some(()) }
        },
    )
    .await;
    let r = h.get("/readyz").await;
    assert_eq!(r.status, 503, "/readyz while PostgreSQL is stopped: {}", r.text);
    assert_eq!(h.get("/healthz").await.status, 200);
    // A write sent before the stop may commit just before PostgreSQL dies and
    // be answered after `pg_ctl` returned: a true acknowledgement. A write sent
    // once PostgreSQL was down can never commit.
    let acks_during = phase.acks_sent_while_down.load(Ordering::SeqCst);
    assert_eq!(
        acks_during, 0,
        "writes sent while PostgreSQL was stopped were acknowledged"
    );
    let unavailable_so_far = phase.unavailable.load(Ordering::SeqCst);
    assert!(unavailable_so_far > 0, "no write met the stopped database");

    // Back: the same server process writes again.
    phase.down.store(false, Ordering::SeqCst);
    let starting = Instant::now();
    pg.start_again();
    let restarted = Instant::now();
    let start_took = restarted - starting;
    let outage_lasted = restarted - stopped_at;
    *phase.restarted.lock().unwrap() = Some(restarted);
    let target = phase.acks.load(Ordering::SeqCst) + 100;
    poll(
        RECOVER_WITHIN,
        "writes to succeed again after PostgreSQL restarted",
        || {
            let n = phase.acks.load(Ordering::SeqCst);
            async move { (n >= target).then_some(()) }
        },
    )
    .await;
    phase.done.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.unwrap());
    }

    // Every acknowledged write is there: its version is in the change log of
    // its key, values and versions only grow, and the final state holds the
    // last acknowledged one (or a later write whose answer was lost).
    let app = common::ns(&server.url, NS);
    let mut total_acks = 0;
    for (i, log) in logs.iter().enumerate() {
        let key = format!("c{i}");
        assert!(!log.acks.is_empty(), "{key}: no write acknowledged");
        total_acks += log.acks.len();
        for w in log.acks.windows(2) {
            assert!(
                w[0].0 < w[1].0 && w[0].1 < w[1].1,
                "{key}: acks out of order {w:?}"
            );
        }
        let revisions = logged_revisions(&app, &key).await;
        let lost: Vec<_> = log.acks.iter().filter(|(_, v)| !revisions.contains(v)).collect();
        assert!(
            lost.is_empty(),
            "{key}: acknowledged writes missing from the change log: {lost:?}"
        );
        let r = record(&app, &key).await;
        let (last_value, last_version) = *log.acks.last().unwrap();
        let (value, version) = (r.value.as_u64().unwrap(), r.version);
        assert!(
            (value, version) == (last_value, last_version) || (value > last_value && version > last_version),
            "{key}: final ({value}, v{version}) behind the last acknowledged ({last_value}, v{last_version})"
        );
    }
    let unavailable: u64 = logs.iter().map(|l| l.unavailable).sum();
    let resynced: u64 = logs.iter().map(|l| l.resynced).sum();
    let slowest = logs.iter().map(|l| l.slowest).max().unwrap_or_default();
    let recovered = logs
        .iter()
        .filter_map(|l| l.first_ack_after_restart)
        .min()
        .map(|t| t.duration_since(restarted));
    assert!(unavailable > 0, "no write met the stopped database");
    println!(
        "postgres stopped during writes: {CLIENTS} clients, {total_acks} writes acknowledged \
         ({acks_before} before the stop, {acks_during} while stopped: none can be), {unavailable} answered 503 \
         unavailable with Retry-After, {resynced} writes answered 503 found committed (their COMMIT was in flight), slowest \
         answer {slowest:?}, outage {outage_lasted:?} (pg_ctl start took {start_took:?}), first write \
         acknowledged {recovered:?} after pg_ctl start returned; \
         lost: 0 (every acknowledged version is in the change log)"
    );
    assert_eq!(h.get("/readyz").await.status, 200);
    drop(server);
    drop(pg);
}

// ---------------------------------------------------------------------------
// Kill one of three instances during a load.

#[derive(Default, Debug)]
struct RetryLog {
    /// Acknowledged increments and appends (one each per logical write).
    incr_acks: u64,
    appended: Vec<String>,
    /// Attempts that failed over: transport errors and 503s.
    failovers: u64,
    /// Answers replayed from a stored idempotent response.
    replayed: u64,
}

/// Sends one logical write to `urls[first]`, moving to the next instance on a
/// transport error or a retryable answer, with the same `Idempotency-Key`,
/// until it is acknowledged.
async fn keyed(
    clients: &[Http],
    first: usize,
    key: &str,
    path: &str,
    body: &Value,
    log: &mut RetryLog,
) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut at = first;
    loop {
        assert!(Instant::now() < deadline, "{key}: not acknowledged within 60 s");
        let h = &clients[at % clients.len()];
        let req = h
            .req("POST", path)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_string());
        match send(key, req).await {
            Ok((r, _)) if (200..300).contains(&r.status) => {
                if r.header("idempotent-replayed") == Some("true") {
                    log.replayed += 1;
                }
                return r;
            }
            Ok((r, _)) if r.status == 503 || r.code() == Some("idempotency_key_in_use") => {
                log.failovers += 1;
                // The client's backoff before it retries elsewhere (part of
                // the failover under test; no TTL is waited for).
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok((r, _)) => panic!("{key} on {}: {} {}", h.base, r.status, r.text),
            Err(_) => log.failovers += 1,
        }
        at += 1;
    }
}

async fn retrying_client(clients: Vec<Http>, c: usize, writes: usize, acks: Arc<AtomicU64>) -> RetryLog {
    let mut log = RetryLog::default();
    let txn = format!("/v1/ns/{NS}/txn");
    let feed = format!("/v1/ns/{NS}/feeds/f/entries");
    for i in 0..writes {
        let first = c + i;
        let incr = json!({"success": [{"incr": {"key": "n", "by": 1}}]});
        let r = keyed(&clients, first, &format!("incr-{c}-{i}"), &txn, &incr, &mut log).await;
        assert_eq!(r.body["succeeded"], true, "{}", r.text);
        log.incr_acks += 1;
        if i % 4 == 0 {
            // As if the answer had been lost: the same key again, elsewhere,
            // replays the stored answer and increments nothing.
            let again = keyed(
                &clients,
                first + 1,
                &format!("incr-{c}-{i}"),
                &txn,
                &incr,
                &mut log,
            )
            .await;
            assert_eq!(
                again.header("idempotent-replayed"),
                Some("true"),
                "{}",
                again.text
            );
            assert_eq!(again.body, r.body, "a replay answers what the original did");
        }
        let id = format!("e-{c}-{i}");
        let r = keyed(
            &clients,
            first,
            &format!("append-{c}-{i}"),
            &feed,
            &json!({"id": id, "data": {"client": c, "i": i}}),
            &mut log,
        )
        .await;
        assert_eq!(r.body["id"], id.as_str(), "{}", r.text);
        log.appended.push(id);
        acks.fetch_add(1, Ordering::SeqCst);
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instance_killed_during_writes() {
    let Some(pg) = fresh_pg().await else { return };
    let mut servers: Vec<Process> = (0..3).map(|_| Process::start(&pg.url)).collect();
    let clients: Vec<Http> = servers.iter().map(|s| Http::new(&s.url)).collect();
    const CLIENTS: usize = 6;
    const WRITES: usize = 50;
    let acks = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(retrying_client(clients.clone(), c, WRITES, acks.clone())))
        .collect();
    poll(
        Duration::from_secs(60),
        "60 logical writes before the kill",
        || {
            let n = acks.load(Ordering::SeqCst);
            async move { (n >= 60).then_some(()) }
        },
    )
    .await;
    let before = acks.load(Ordering::SeqCst);
    servers[0].kill9();
    println!("instance 0 SIGKILLed after {before} logical writes");
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.unwrap());
    }

    // The checks read through `lockstep_client`, on a surviving instance.
    let app = common::ns(&servers[1].url, NS);
    let incr_acks: u64 = logs.iter().map(|l| l.incr_acks).sum();
    let counter = record(&app, "n").await.value.as_u64().unwrap();
    let failovers: u64 = logs.iter().map(|l| l.failovers).sum();
    let replayed: u64 = logs.iter().map(|l| l.replayed).sum();

    // Every acknowledged entry is in the feed exactly once, and nothing else is.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let q = EntriesQuery {
        limit: Some(1000),
        cursor: None,
        order: Some("asc".into()),
    };
    let entries: Vec<Entry> = app.entries("f", q).try_collect().await.unwrap();
    for e in entries {
        *seen.entry(e.id).or_default() += 1;
    }
    let acked: BTreeSet<String> = logs.iter().flat_map(|l| l.appended.iter().cloned()).collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let unknown: Vec<&String> = seen.keys().filter(|id| !acked.contains(*id)).collect();
    println!(
        "instance killed during writes: {CLIENTS} clients × {WRITES} logical writes (a keyed txn incr and a \
         keyed feed append each) over 3 instances; {incr_acks} increments acknowledged, counter = {counter}; \
         {} appends acknowledged, {} entries in the feed; {failovers} attempts failed over to another \
         instance, {replayed} answered by replay (every 4th increment is sent twice on purpose, \
         to another instance); lost: {}, applied twice: {}",
        acked.len(),
        seen.len(),
        lost.len() as u64 + incr_acks.saturating_sub(counter),
        twice.len() as u64 + counter.saturating_sub(incr_acks),
    );
    assert_eq!(
        counter, incr_acks,
        "the counter is the number of acknowledged increments"
    );
    assert!(lost.is_empty(), "acknowledged entries missing: {lost:?}");
    assert!(twice.is_empty(), "entries stored twice: {twice:?}");
    assert!(unknown.is_empty(), "entries nobody wrote: {unknown:?}");
    assert!(failovers > 0, "no request met the killed instance");
    drop(servers);
    drop(pg);
}
