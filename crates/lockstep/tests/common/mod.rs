//! Shared harness of the end-to-end tests: runs the real `lockstep` binary as a
//! child process and talks to it over HTTP.
//!
//! - [`Server`]: `lockstep serve --listen 127.0.0.1:0 --database …`, started and
//!   waited for through its "listening on" log line; killed on drop.
//! - [`sqlite_db`]: a SQLite database in a temporary directory.
//! - [`fresh_pg`]: a fresh PostgreSQL schema in the database named by
//!   `LOCKSTEP_TEST_DATABASE_URL` (skipped when unset, mandatory when `CI` is set),
//!   dropped on drop.
//! - [`Http`]: a small HTTP helper answering [`Resp`] (status, headers, JSON body).

#![allow(dead_code, clippy::unwrap_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable naming the PostgreSQL test database.
pub const PG_URL_VAR: &str = "LOCKSTEP_TEST_DATABASE_URL";

/// How long a server may take to print its "listening on" line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Pool size of every PostgreSQL server the tests start: small, so several
/// servers (and tests running side by side) fit in `max_connections`.
pub const PG_POOL_SIZE: &str = "6";

/// A running `lockstep serve` child process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The `--database` it was started with.
    pub database: String,
    log: Arc<Mutex<Vec<String>>>,
    exited: Option<ExitStatus>,
}

impl Server {
    /// Starts a server on `database` (`sqlite:PATH` or `postgres://…`) and waits
    /// until it listens. Panics, showing its output, when it does not within 30 s.
    pub fn start(database: &str) -> Server {
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
        Server {
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

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
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

/// The PostgreSQL test database URL; `None` (with a note) when not configured
/// outside CI; a panic when not configured in CI.
pub fn pg_base_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{PG_URL_VAR} is not set but CI is: the PostgreSQL tests must run in CI \
                     (e.g. {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
                );
            }
            println!("skipping PostgreSQL: {PG_URL_VAR} is not set");
            None
        }
    }
}

/// A schema of its own in the PostgreSQL test database, dropped on drop.
pub struct PgDb {
    /// The database URL with `search_path` set to the schema.
    pub url: String,
    /// The schema's name.
    pub schema: String,
    base: String,
}

/// The URL with `search_path` set to `schema` through the `options` parameter.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// Runs SQL over a dedicated connection.
pub async fn pg_exec(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(conn);
    let result = client.batch_execute(sql).await;
    drop(client);
    let _ = driver.await;
    result
}

fn unique_schema() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = lockstep_store::clock::system_now().0;
    format!(
        "t_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh schema in the PostgreSQL test database, or `None` when PostgreSQL
/// is not configured (outside CI).
pub async fn fresh_pg() -> Option<PgDb> {
    let base = pg_base_url()?;
    let schema = unique_schema();
    pg_exec(&base, &format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create the schema {schema} in {}: {e}", redact(&base)));
    Some(PgDb {
        url: with_search_path(&base, &schema),
        schema,
        base,
    })
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Best effort, on a thread with its own runtime: Drop may run inside or
        // outside a runtime.
        let base = self.base.clone();
        let sql = format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.schema
        );
        let schema = self.schema.clone();
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                if let Err(e) = rt.block_on(pg_exec(&base, &sql)) {
                    eprintln!("could not drop the test schema {schema}: {e}");
                }
            }
        });
        let _ = worker.join();
    }
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
        let client = reqwest::Client::builder()
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
        _dir: Some(dir),
        _pg: None,
    }
}

/// `n` servers over one fresh PostgreSQL schema (None when PostgreSQL is skipped).
pub async fn pg_cluster(n: usize) -> Option<Cluster> {
    let pg = fresh_pg().await?;
    let servers: Vec<Server> = (0..n).map(|_| Server::start(&pg.url)).collect();
    Some(Cluster {
        urls: servers.iter().map(|s| s.url.clone()).collect(),
        disk: Disk::Postgres(pg.url.clone()),
        label: if n == 1 { "postgres" } else { "postgres×3" },
        _servers: servers,
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
}
