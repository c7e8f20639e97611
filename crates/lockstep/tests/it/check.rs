//! `lockstep check` end to end: a passing run against the embedded server and
//! against 3 `lockstep serve` processes over one PostgreSQL, and a run against
//! a deliberately broken deployment (a proxy that drops `expected_version`
//! from record writes) that must report lost updates and exit 2.

use crate::common::{fresh_pg, sqlite_db, tempdir, Process, Server};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::time::Duration;

/// The whole check (2 s of load, then verification) must end well within this.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// What one `lockstep check` run gave: its exit code, stdout and JSON verdict.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    verdict: Value,
}

impl Outcome {
    fn invariant(&self, name_part: &str) -> &Value {
        self.verdict["invariants"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|i| i["name"].as_str().is_some_and(|n| n.contains(name_part)))
            })
            .unwrap_or_else(|| panic!("no invariant {name_part:?} in {}", self.verdict))
    }
}

async fn check(urls: &[String]) -> Outcome {
    let dir = tempdir();
    let json = dir.path().join("verdict.json");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lockstep"));
    cmd.args([
        "check",
        "--url",
        &urls.join(","),
        "--duration",
        "2s",
        "--clients",
        "8",
        "--json",
    ])
    .arg(&json)
    .env_remove("LOCKSTEP_TOKEN")
    .env_remove("LOCKSTEP_URL")
    .kill_on_drop(true);
    let out = tokio::time::timeout(CHECK_TIMEOUT, cmd.output())
        .await
        .expect("lockstep check finishes in time")
        .expect("lockstep check runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let verdict = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    Outcome {
        code: out.status.code(),
        stdout,
        stderr,
        verdict,
    }
}

/// Asserts a clean run: exit 0, every invariant checked something, no violation.
fn assert_passes(o: &Outcome, label: &str) {
    assert_eq!(
        o.code,
        Some(0),
        "{label}: check must pass\nstdout:\n{}\nstderr:\n{}",
        o.stdout,
        o.stderr
    );
    assert_eq!(o.verdict["violations"], 0, "{label}: {}", o.verdict);
    for inv in o.verdict["invariants"].as_array().expect("invariants") {
        assert!(
            inv["checked"].as_u64().unwrap_or(0) > 0,
            "{label}: invariant {} checked nothing: {}",
            inv["name"],
            o.stdout
        );
    }
    assert!(
        o.stdout.contains("OK: every invariant held"),
        "{label}: {}",
        o.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_passes_on_the_embedded_server() {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    let o = check(std::slice::from_ref(&server.url)).await;
    assert_passes(&o, "sqlite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_passes_on_three_postgres_processes() {
    let Some(pg) = fresh_pg().await else { return };
    let servers: Vec<Process> = (0..3).map(|_| Process::start(&pg.url)).collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let o = check(&urls).await;
    assert_passes(&o, "postgres×3");
    drop(servers);
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_catches_lost_updates_behind_a_broken_proxy() {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    let proxy = BrokenProxy::start(&server.url).await;
    let o = check(std::slice::from_ref(&proxy.url)).await;
    eprintln!("lockstep check behind the broken proxy:\n{}", o.stdout);
    assert_eq!(
        o.code,
        Some(2),
        "a lost update must exit 2\nstdout:\n{}\nstderr:\n{}",
        o.stdout,
        o.stderr
    );
    let counters = o.invariant("lost update");
    assert!(
        counters["violations"].as_u64().unwrap_or(0) > 0,
        "the counter violation is reported: {}",
        o.verdict
    );
    assert!(o.stdout.contains("FAILED"), "{}", o.stdout);
    // Only the broken behaviour is reported: the other invariants still hold.
    for name in [
        "feed entries",
        "retention",
        "lease",
        "stale",
        "paused gate",
        "idempotent",
    ] {
        assert_eq!(o.invariant(name)["violations"], 0, "{name}: {}", o.verdict);
    }
}

/// A proxy in front of a real server that drops `expected_version` from the
/// body of every record `PUT`: compare-and-set becomes a blind write.
struct BrokenProxy {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
}

impl BrokenProxy {
    async fn start(upstream: &str) -> BrokenProxy {
        let state = Upstream {
            base: upstream.trim_end_matches('/').to_owned(),
            http: crate::common::reqwest_client(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds a port");
        let url = format!("http://{}", listener.local_addr().expect("the proxy's address"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        BrokenProxy { url, stop: Some(tx) }
    }
}

impl Drop for BrokenProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Forwards one request, stripping `expected_version` from record PUTs.
async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 4 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut body = bytes.to_vec();
    if parts.method == axum::http::Method::PUT && path.contains("/records/") {
        if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(&body) {
            m.remove("expected_version");
            body = serde_json::to_vec(&Value::Object(m)).unwrap_or_default();
        }
    }
    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let mut out = up.http.request(method, format!("{}{path}", up.base));
    for name in [
        "content-type",
        "idempotency-key",
        "authorization",
        "if-match",
        "if-none-match",
    ] {
        if let Some(v) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            out = out.header(name, v);
        }
    }
    let Ok(resp) = out.body(body).send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for name in ["content-type", "idempotent-replayed", "etag", "retry-after"] {
        if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
            if let Ok(v) = v.parse() {
                headers.insert(name, v);
            }
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    (status, headers, Body::from(bytes)).into_response()
}

#[tokio::test]
async fn check_exits_1_when_it_cannot_check() {
    for args in [
        // Nothing listens on port 1: the setup write gets no answer.
        vec!["--url", "http://127.0.0.1:1", "--duration", "1s"],
        vec!["--url", "http://127.0.0.1:1", "--duration", "3h"],
        vec!["--url", "http://127.0.0.1:1", "--clients", "0"],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .arg("check")
            .args(&args)
            .env_remove("LOCKSTEP_TOKEN")
            .output();
        let out = tokio::time::timeout(CHECK_TIMEOUT, out)
            .await
            .expect("lockstep check finishes in time")
            .expect("lockstep check runs");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
