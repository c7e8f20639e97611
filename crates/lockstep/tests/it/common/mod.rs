//! Shared harness of the end-to-end tests: a server, and HTTP to it.
//!
//! - [`Server`]: the server in this process (`lockstep_testkit::server`) on
//!   `127.0.0.1:0`, as `lockstep serve --database …` runs it without a config
//!   file; stopped on drop.
//! - [`Process`]: the real `lockstep serve --listen 127.0.0.1:0 --database …`
//!   as a child process, waited for through its "listening on" log line and
//!   killed on drop: for the tests where a process is the point (kill -9,
//!   outage, shutdown, several instances over one database).
//! - [`sqlite_db`]: a SQLite database in a temporary directory.
//! - [`fresh_pg`]: a fresh PostgreSQL schema (`lockstep_testkit::pg`), skipped
//!   when `LOCKSTEP_TEST_DATABASE_URL` is unset, mandatory when PostgreSQL is
//!   required (`CI`, `LOCKSTEP_REQUIRE_PG=1`); dropped on drop.
//! - [`client`], [`ns`], [`Cluster::ns`]: `lockstep_client` handles, for the
//!   tests of behaviour.
//! - [`Http`]: a small HTTP helper answering [`Resp`] (status, headers, JSON
//!   body), for the tests of the wire itself (statuses, headers, problem
//!   bodies, bad input, auth, preconditions).

#![allow(dead_code, clippy::unwrap_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use lockstep_testkit::pg::{base_url as pg_base_url, redact, Schema as PgDb};

/// How long a server may take to print its "listening on" line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Pool size of every PostgreSQL server the tests start: small, so several
/// servers (and tests running side by side) fit in `max_connections`.
pub const PG_POOL_SIZE: &str = "6";

/// The server running in this process; stopped on drop.
pub struct Server {
    inner: lockstep_testkit::server::InProcess,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The database it serves.
    pub database: String,
    /// Its store's clock: manual with [`Server::start_manual`], moved by the
    /// test (`advance`/`set`) in place of sleeping.
    pub clock: lockstep_store::clock::Clock,
}

impl Server {
    /// Serves `database` (`sqlite:PATH` or `postgres://…`) in this process and
    /// returns once it listens.
    pub fn start(database: &str) -> Server {
        Server::from(lockstep_testkit::server::InProcess::start(database))
    }

    /// As [`Server::start`], the store on a manual clock (at
    /// `lockstep_testkit::store::MANUAL_START`): TTLs, lease expiry and
    /// idempotency locks run out when the test moves [`Server::clock`].
    pub fn start_manual(database: &str) -> Server {
        Server::from(lockstep_testkit::server::InProcess::start_manual(database))
    }
}

impl From<lockstep_testkit::server::InProcess> for Server {
    fn from(inner: lockstep_testkit::server::InProcess) -> Server {
        Server {
            url: inner.url.clone(),
            database: inner.database.clone(),
            clock: inner.clock.clone(),
            inner,
        }
    }
}

/// A running `lockstep serve` child process.
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The `--database` it was started with.
    pub database: String,
    log: Arc<Mutex<Vec<String>>>,
    exited: Option<ExitStatus>,
}

impl Process {
    /// Starts a server on `database` (`sqlite:PATH` or `postgres://…`) and waits
    /// until it listens. Panics, showing its output, when it does not within 30 s.
    pub fn start(database: &str) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", database]);
        if database.starts_with("postgres") {
            cmd.args(["--pool-size", PG_POOL_SIZE]);
        }
        cmd.env_remove("LOCKSTEP_DATABASE")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_lockstep")));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            let log = log.clone();
            // Drains stderr for the whole life of the child, so it never blocks on
            // a full pipe; the lines are kept for diagnostics.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line.clone());
                    if let Ok(mut l) = log.lock() {
                        l.push(line);
                    }
                }
            });
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        if line.contains("lockstep listening on") {
                            let url = rest.split_whitespace().next().unwrap_or_default().to_owned();
                            break url;
                        }
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    let output = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                    panic!(
                        "lockstep serve --database {} did not report listening ({e:?}, exit {status:?}); \
                         its output:\n{output}",
                        redact(database)
                    );
                }
            }
        };
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "unexpected listen URL {url:?}"
        );
        Process {
            child,
            url,
            database: database.to_owned(),
            log,
            exited: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    pub fn output(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        if let Ok(s) = self.child.wait() {
            self.exited = Some(s);
        }
    }

    /// Sends SIGTERM without waiting.
    pub fn send_sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.child.id()
        );
    }

    /// Waits up to `timeout` for the process to exit; `None` if it did not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited {
            return Some(s);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.exited = Some(s);
                    return Some(s);
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => return None,
            }
        }
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.send_sigterm();
        match self.wait_exit(Duration::from_secs(30)) {
            Some(s) => s,
            None => {
                self.kill9();
                panic!(
                    "the server did not exit within 30 s of SIGTERM; its output:\n{}",
                    self.output()
                );
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `sqlite:<dir>/lockstep.db`.
pub fn sqlite_db(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("lockstep.db").display())
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("cannot create a temporary directory")
}

/// A fresh schema in the PostgreSQL test database, or `None` when PostgreSQL
/// is not configured (and not required).
pub async fn fresh_pg() -> Option<PgDb> {
    PgDb::fresh().await
}

// ---------------------------------------------------------------------------
// The client.

/// A `lockstep_client` of the server at `url`, making one attempt per call
/// (no retries: a test sees every answer as the server gave it). Its writes
/// carry a generated `Idempotency-Key`, as every client's do.
pub fn client(url: &str) -> lockstep_client::Client {
    lockstep_client::Client::builder(url)
        .retry(lockstep_client::Retry::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("cannot build a lockstep client")
}

/// As [`client`], sending `Authorization: Bearer <token>` (an API token or a
/// gate capability).
pub fn client_with_token(url: &str, token: &str) -> lockstep_client::Client {
    lockstep_client::Client::builder(url)
        .token(token)
        .retry(lockstep_client::Retry::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("cannot build a lockstep client")
}

/// Namespace `name` of the server at `url`, through [`client`].
pub fn ns(url: &str, name: &str) -> lockstep_client::Ns {
    client(url).ns(name)
}

// ---------------------------------------------------------------------------
// HTTP.

/// An answer: status, headers and the body (as JSON when it parses).
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

impl Resp {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem `code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    /// `body[name]` as u64 (panics when absent).
    #[track_caller]
    pub fn u64(&self, name: &str) -> u64 {
        self.body
            .get(name)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no integer {name:?} in {}", self.text))
    }
}

/// Parses JSON without serde_json's recursion limit (the API accepts 128
/// levels of value inside its own wrapper).
pub fn parse_deep(text: &str) -> Option<Value> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let v = Value::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(v)
}

/// An HTTP client of one server.
#[derive(Debug, Clone)]
pub struct Http {
    /// The underlying client.
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Http {
    /// A client of the server at `base`.
    pub fn new(base: &str) -> Http {
        let client = reqwest_builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("cannot build an HTTP client");
        Http {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// A request of `method` on `path` (which starts with `/`).
    pub fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        self.client.request(m, format!("{}{path}", self.base))
    }

    /// Sends and reads the whole answer; panics on a transport error.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        match try_send(req).await {
            Ok(r) => r,
            Err(e) => panic!("request to {} failed: {e}", self.base),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.req("GET", path)).await
    }

    /// A method with a JSON body (`Content-Type: application/json`).
    pub async fn json(&self, method: &str, path: &str, body: &Value) -> Resp {
        self.send(
            self.req(method, path)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }
}

/// Sends and reads the whole answer.
pub async fn try_send(req: reqwest::RequestBuilder) -> Result<Resp, reqwest::Error> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await?;
    let body = parse_deep(&text).unwrap_or(Value::Null);
    Ok(Resp {
        status,
        headers,
        text,
        body,
    })
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` after
/// `timeout`.
pub async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where a cluster's rows are, for tests that read the database directly.
#[derive(Clone)]
pub enum Disk {
    /// The SQLite file.
    Sqlite(std::path::PathBuf),
    /// The PostgreSQL URL (with the test schema's `search_path`).
    Postgres(String),
}

/// Running servers over one database. Fields drop in order: servers first.
pub struct Cluster {
    /// The servers' base URLs.
    pub urls: Vec<String>,
    /// The database underneath.
    pub disk: Disk,
    /// `sqlite`, `postgres` or `postgres×3`, for messages.
    pub label: &'static str,
    _servers: Vec<Server>,
    _processes: Vec<Process>,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDb>,
}

/// One server over a fresh SQLite database.
pub fn sqlite_cluster() -> Cluster {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    Cluster {
        urls: vec![server.url.clone()],
        disk: Disk::Sqlite(dir.path().join("lockstep.db")),
        label: "sqlite",
        _servers: vec![server],
        _processes: Vec::new(),
        _dir: Some(dir),
        _pg: None,
    }
}

/// `n` servers over one fresh PostgreSQL schema (None when PostgreSQL is
/// skipped): one runs in this process, several are processes of their own.
pub async fn pg_cluster(n: usize) -> Option<Cluster> {
    let pg = fresh_pg().await?;
    let (servers, processes) = if n == 1 {
        (vec![Server::start(&pg.url)], Vec::new())
    } else {
        (
            Vec::new(),
            (0..n).map(|_| Process::start(&pg.url)).collect::<Vec<_>>(),
        )
    };
    let urls = servers
        .iter()
        .map(|s| s.url.clone())
        .chain(processes.iter().map(|p| p.url.clone()))
        .collect();
    Some(Cluster {
        urls,
        disk: Disk::Postgres(pg.url.clone()),
        label: if n == 1 { "postgres" } else { "postgres×3" },
        _servers: servers,
        _processes: processes,
        _dir: None,
        _pg: Some(pg),
    })
}

impl Cluster {
    /// A client of server `i` (round-robin).
    pub fn http(&self, i: usize) -> Http {
        Http::new(&self.urls[i % self.urls.len()])
    }

    /// A client of every server.
    pub fn clients(&self) -> Vec<Http> {
        self.urls.iter().map(|u| Http::new(u)).collect()
    }

    /// Namespace `name` through a `lockstep_client` of server `i`
    /// (round-robin; see [`client`]).
    pub fn ns(&self, i: usize, name: &str) -> lockstep_client::Ns {
        ns(&self.urls[i % self.urls.len()], name)
    }
}

/// A `reqwest` client builder. reqwest is built with `rustls-no-provider` (for
/// lockstep-client, which picks ring), so the process-wide provider is
/// installed first: a client built without one panics.
pub fn reqwest_builder() -> reqwest::ClientBuilder {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A default `reqwest` client (see [`reqwest_builder`]).
pub fn reqwest_client() -> reqwest::Client {
    reqwest_builder().build().unwrap()
}

/// Percent-encodes a name for a path segment or a query value.
pub fn enc(s: &str) -> String {
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
