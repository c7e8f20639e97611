//! PostgreSQL outages (SPEC §3 `unavailable`, §12 "connection loss → 503"): the
//! server talks to PostgreSQL through a TCP proxy inside the test, which can be
//! cut (connections dropped, nothing accepted) or stalled (connections kept,
//! nothing forwarded) and later restored on the same port. During the outage
//! requests answer 503 `unavailable` with `Retry-After` within a bounded time,
//! `/readyz` is 503, and afterwards the same server process recovers by itself.
//! The answers during the outage are checked on the wire; the writes before it
//! and the state after it go through `lockstep_client`.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{fresh_pg, poll, try_send, Http, Process, Resp};
use lockstep_client::api::records::PutRecordBody;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const NS: &str = "outage";
/// How long one request may take during an outage.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
/// How long the server may take to recover once the database is back.
const RECOVER_WITHIN: Duration = Duration::from_secs(20);

fn rec(key: &str) -> String {
    format!("/v1/ns/{NS}/records/{key}")
}

// ---------------------------------------------------------------------------
// The proxy.

#[derive(Default)]
struct Tasks {
    accept: Option<JoinHandle<()>>,
    conns: Vec<JoinHandle<()>>,
}

/// A TCP proxy from 127.0.0.1:<port> to the database.
struct Proxy {
    addr: SocketAddr,
    target: String,
    /// While true, nothing is forwarded (stall).
    paused: watch::Sender<bool>,
    tasks: Arc<Mutex<Tasks>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let (paused, _) = watch::channel(false);
        let mut p = Proxy {
            addr: "127.0.0.1:0".parse().unwrap(),
            target,
            paused,
            tasks: Arc::default(),
        };
        p.addr = p.listen().await;
        p
    }

    /// Binds `self.addr` (port 0 the first time, the same port afterwards) and
    /// starts accepting.
    async fn listen(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            match socket.bind(self.addr).and_then(|()| socket.listen(256)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {} failed ({e}); retrying", self.addr);
                    // The kernel frees the port on its own time: retry until
                    // the deadline.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot bind the proxy on {}: {e}", self.addr),
            }
        };
        let addr = listener.local_addr().unwrap();
        let tasks = self.tasks.clone();
        let target = self.target.clone();
        let paused = self.paused.subscribe();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let conn = tokio::spawn(forward(client, target.clone(), paused.clone()));
                tasks.lock().unwrap().conns.push(conn);
            }
        });
        self.tasks.lock().unwrap().accept = Some(accept);
        addr
    }

    /// Stops accepting (the port refuses connections) and drops every live
    /// connection.
    async fn cut(&self) {
        let (accept, conns) = {
            let mut t = self.tasks.lock().unwrap();
            (t.accept.take(), std::mem::take(&mut t.conns))
        };
        for h in accept.into_iter().chain(conns) {
            h.abort();
            let _ = h.await;
        }
    }

    /// Keeps every connection open but forwards nothing, and holds new ones.
    fn stall(&self) {
        self.paused.send_replace(true);
    }

    /// Forwards again, listening on the same port if it was cut.
    async fn restore(&self) {
        self.paused.send_replace(false);
        let listening = self.tasks.lock().unwrap().accept.is_some();
        if !listening {
            let addr = self.listen().await;
            assert_eq!(addr, self.addr, "the proxy is restored on the same port");
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(mut t) = self.tasks.lock() {
            for h in t.accept.take().into_iter().chain(t.conns.drain(..)) {
                h.abort();
            }
        }
    }
}

async fn forward(client: TcpStream, target: String, mut paused: watch::Receiver<bool>) {
    // A stalled proxy holds new connections without a word.
    if paused.wait_for(|p| !*p).await.is_err() {
        return;
    }
    let Ok(upstream) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let up = pump(cr, uw, paused.clone());
    let down = pump(ur, cw, paused);
    // When one direction ends, the whole connection ends (dropping both sockets).
    tokio::select! {
        _ = up => {},
        _ = down => {},
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if paused.wait_for(|p| !*p).await.is_err() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The `host:port` of a PostgreSQL URL and the URL with it replaced by `proxy`;
/// `None` when the URL has no single TCP host this test can stand in front of.
fn through_proxy(url: &str, proxy: Option<SocketAddr>) -> Option<(String, String)> {
    let cfg: tokio_postgres::Config = url.parse().ok()?;
    let host = match cfg.get_hosts() {
        [tokio_postgres::config::Host::Tcp(h)] => h.clone(),
        _ => return None,
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let hostport_start = authority.rfind('@').map_or(0, |i| i + 1);
    if rest[authority_end..].contains("host=") {
        return None;
    }
    let replacement = proxy.map_or_else(String::new, |p| p.to_string());
    let proxied = format!(
        "{}{}{}{}",
        &url[..scheme_end],
        &authority[..hostport_start],
        replacement,
        &rest[authority_end..]
    );
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Some((target, proxied))
}

// ---------------------------------------------------------------------------
// The scenarios.

/// Sends a request that must answer within [`ANSWER_WITHIN`].
async fn timed(what: &str, req: reqwest::RequestBuilder) -> (Resp, Duration) {
    let start = Instant::now();
    match tokio::time::timeout(ANSWER_WITHIN, try_send(req)).await {
        Ok(Ok(r)) => (r, start.elapsed()),
        Ok(Err(e)) => panic!("{what}: no answer: {e}"),
        Err(_) => panic!("{what}: no answer within {ANSWER_WITHIN:?} during the outage"),
    }
}

#[track_caller]
fn assert_unavailable(r: &Resp, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.text);
    assert_eq!(r.code(), Some("unavailable"), "{what}: {}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let retry_after = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"));
    assert!(
        retry_after.parse::<u64>().is_ok(),
        "{what}: Retry-After {retry_after:?}"
    );
}

fn put(h: &Http, key: &str, value: serde_json::Value) -> reqwest::RequestBuilder {
    h.req("PUT", &rec(key))
        .header("content-type", "application/json")
        .body(json!({"value": value}).to_string())
}

enum Outage {
    Cut,
    Stall,
}

async fn outage(kind: Outage) {
    let Some(pg) = fresh_pg().await else { return };
    let base = common::pg_base_url().unwrap();
    let Some((target, _)) = through_proxy(&base, None) else {
        println!(
            "skipping: {} has no single TCP host to proxy",
            common::redact(&base)
        );
        return;
    };
    let proxy = Proxy::start(target).await;
    let (_, url) = through_proxy(&pg.url, Some(proxy.addr)).unwrap();
    let server = Process::start(&url);
    let h = Http::new(&server.url);
    let app = common::ns(&server.url, NS);

    // Up: writes (through `lockstep_client`) and readiness.
    for i in 0..5 {
        let w = app
            .put(&format!("before{i}"), &PutRecordBody::new(json!(i)))
            .await
            .unwrap();
        assert!(w.created, "{w:?}");
    }
    assert_eq!(h.get("/readyz").await.status, 200);

    // Down.
    match kind {
        Outage::Cut => proxy.cut().await,
        Outage::Stall => proxy.stall(),
    }
    let (r, took) = timed("PUT during the outage", put(&h, "during", json!(1))).await;
    assert_unavailable(&r, "PUT during the outage");
    println!("PUT during the outage answered 503 in {took:?}");
    let (r, _) = timed("/readyz during the outage", h.req("GET", "/readyz")).await;
    assert_unavailable(&r, "/readyz during the outage");
    let (r, _) = timed("GET during the outage", h.req("GET", &rec("before0"))).await;
    assert_unavailable(&r, "GET during the outage");
    let txn = h
        .req("POST", &format!("/v1/ns/{NS}/txn"))
        .header("content-type", "application/json")
        .body(json!({"success": [{"incr": {"key": "n", "by": 1}}]}).to_string());
    let (r, _) = timed("txn during the outage", txn).await;
    assert_unavailable(&r, "txn during the outage");
    // Several at once: none hangs.
    let mut many = Vec::new();
    for i in 0..8 {
        let req = put(&h, &format!("during{i}"), json!(i));
        many.push(tokio::spawn(async move {
            timed("concurrent PUT during the outage", req).await
        }));
    }
    for t in many {
        let (r, _) = t.await.unwrap();
        assert_unavailable(&r, "concurrent PUT during the outage");
    }
    // The process itself is up.
    assert_eq!(h.get("/healthz").await.status, 200);

    // Back: the same process recovers without a restart.
    proxy.restore().await;
    let start = Instant::now();
    poll(
        RECOVER_WITHIN,
        "writes to succeed again after the database is back",
        || {
            let req = put(&h, "after", json!("ok"));
            async move {
                match tokio::time::timeout(ANSWER_WITHIN, try_send(req)).await {
                    Ok(Ok(r)) if r.status == 201 || r.status == 200 => Some(()),
                    Ok(Ok(r)) if r.status == 503 => None,
                    Ok(Ok(r)) => panic!("PUT after the outage answered {}: {}", r.status, r.text),
                    Ok(Err(e)) => panic!("PUT after the outage: {e}"),
                    Err(_) => panic!("PUT after the outage: no answer within {ANSWER_WITHIN:?}"),
                }
            }
        },
    )
    .await;
    println!("recovered {:?} after the restore", start.elapsed());
    assert_eq!(h.get("/readyz").await.status, 200);
    // The state afterwards, read through `lockstep_client`.
    for i in 0..5 {
        let key = format!("before{i}");
        let r = app.get(&key).await.unwrap();
        assert_eq!(r.map(|r| r.value), Some(json!(i)), "{key}");
    }
    // Nothing answered 503 was applied.
    assert_eq!(
        app.get("during").await.unwrap(),
        None,
        "a write answered 503 applied nothing"
    );
    assert_eq!(
        app.get("n").await.unwrap(),
        None,
        "a txn answered 503 applied nothing"
    );
    for i in 0..8 {
        let key = format!("during{i}");
        assert_eq!(
            app.get(&key).await.unwrap(),
            None,
            "a write answered 503 applied nothing: {key}"
        );
    }
    // And the server keeps working for many requests (no poisoned pool entries).
    for i in 0..20 {
        let w = app
            .put(&format!("later{i}"), &PutRecordBody::new(json!(i)))
            .await
            .unwrap();
        assert!(w.created, "{w:?}");
    }
    drop(server);
    drop(proxy);
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_loss_answers_503_and_recovers() {
    outage(Outage::Cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_database_answers_503_and_recovers() {
    outage(Outage::Stall).await;
}

#[test]
fn proxy_url_rewrite() {
    let p: SocketAddr = "127.0.0.1:4242".parse().unwrap();
    assert_eq!(
        through_proxy("postgres://postgres@127.0.0.1:5432/test", Some(p)),
        Some((
            "127.0.0.1:5432".to_owned(),
            "postgres://postgres@127.0.0.1:4242/test".to_owned()
        ))
    );
    assert_eq!(
        through_proxy(
            "postgres://u:pw@db.example/x?options=-csearch_path%3Dt_1",
            Some(p)
        ),
        Some((
            "db.example:5432".to_owned(),
            "postgres://u:pw@127.0.0.1:4242/x?options=-csearch_path%3Dt_1".to_owned()
        ))
    );
    assert_eq!(through_proxy("postgres:///x?host=/run/postgresql", Some(p)), None);
}
