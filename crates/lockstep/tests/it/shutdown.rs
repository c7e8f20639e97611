//! Graceful shutdown: on SIGTERM the server stops accepting connections,
//! finishes the requests in flight, and exits 0 promptly; every acknowledged
//! write is there after a restart.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{poll, sqlite_db, tempdir, try_send, Http, Process};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

const NS: &str = "shut";
const CONCURRENT: usize = 20;

fn rec(key: &str) -> String {
    format!("/v1/ns/{NS}/records/{key}")
}

/// Reads until `needle` has arrived (or the peer closed); returns what was read.
async fn read_until(s: &mut TcpStream, needle: &str, timeout: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + timeout;
    while !String::from_utf8_lossy(&got).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!(
                "reading the answer failed: {e} (got {:?})",
                String::from_utf8_lossy(&got)
            ),
            Err(_) => panic!(
                "no {needle:?} within {timeout:?} (got {:?})",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_requests_in_flight_and_exits_0() {
    let dir = tempdir();
    let db = sqlite_db(&dir);
    let mut server = Process::start(&db);
    let addr = server.url.trim_start_matches("http://").to_owned();

    // 1. A request that is certainly in flight: its head is read and its handler
    //    is reading the body (the server said `100 Continue`), half of the body sent.
    let body = json!({"value": {"slow": "x".repeat(1000)}}).to_string();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        rec("slow"),
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let cont = read_until(&mut slow, "\r\n\r\n", Duration::from_secs(10)).await;
    assert!(
        cont.starts_with("HTTP/1.1 100"),
        "expected 100 Continue, got {cont:?}"
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    slow.write_all(first).await.unwrap();
    slow.flush().await.unwrap();

    // 2. Concurrent PUTs on warm connections, released together.
    let barrier = Arc::new(Barrier::new(CONCURRENT + 1));
    let mut tasks = Vec::new();
    for i in 0..CONCURRENT {
        let h = Http::new(&server.url);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            assert_eq!(h.get("/healthz").await.status, 200);
            barrier.wait().await;
            let req = h
                .req("PUT", &rec(&format!("k{i:02}")))
                .header("content-type", "application/json")
                .body(json!({"value": i}).to_string());
            (i, try_send(req).await)
        }));
    }
    barrier.wait().await;

    // 3. SIGTERM right away.
    server.send_sigterm();
    let signalled = Instant::now();

    // 4. The listener closes: new connections are refused, while the process
    //    waits for the request in flight.
    poll(
        Duration::from_secs(10),
        "the listener to close after SIGTERM",
        || {
            let addr = addr.clone();
            async move { TcpStream::connect(&addr).await.is_err().then_some(()) }
        },
    )
    .await;
    assert!(
        server.wait_exit(Duration::from_millis(200)).is_none(),
        "the server exited with a request in flight; its output:\n{}",
        server.output()
    );

    // 5. The request in flight completes.
    slow.write_all(rest).await.unwrap();
    slow.flush().await.unwrap();
    let answer = read_until(&mut slow, "\"revision\"", Duration::from_secs(10)).await;
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the in-flight PUT: {answer:?}"
    );
    let slow_version: u64 = {
        let json_start = answer.find('{').unwrap();
        let v: serde_json::Value = serde_json::from_str(answer[json_start..].trim_end_matches(['\r', '\n']))
            .unwrap_or_else(|e| panic!("{e}: {answer:?}"));
        v["version"].as_u64().unwrap()
    };
    drop(slow);

    // 6. The process exits 0 promptly.
    let status = server.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "the server did not exit within 10 s of finishing its requests; its output:\n{}",
            server.output()
        )
    });
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        server.output()
    );
    println!("exited {status} {:?} after SIGTERM", signalled.elapsed());

    // 7. Every concurrent PUT either completed with 2xx or never got an answer;
    //    none got another status.
    let mut acked = vec![("slow".to_owned(), slow_version)];
    let mut unanswered = 0;
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match result {
            Ok(r) => {
                assert_eq!(r.status, 201, "PUT k{i:02} during shutdown: {}", r.text);
                acked.push((format!("k{i:02}"), r.u64("version")));
            }
            Err(_) => unanswered += 1,
        }
    }
    println!(
        "{} of {CONCURRENT} PUTs were answered during shutdown",
        CONCURRENT - unanswered
    );

    // 8. After a restart, every acknowledged write is there.
    let server = Process::start(&db);
    let h = Http::new(&server.url);
    for (k, version) in &acked {
        let r = h.get(&rec(k)).await;
        assert_eq!(r.status, 200, "{k} was acknowledged before shutdown: {}", r.text);
        assert_eq!(r.u64("version"), *version, "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_idle_connections_exits_0_promptly() {
    let dir = tempdir();
    let mut server = Process::start(&sqlite_db(&dir));
    // Idle keep-alive connections and an idle raw connection must not hold the exit.
    let h = Http::new(&server.url);
    for i in 0..5 {
        let r = h.json("PUT", &rec(&format!("i{i}")), &json!({"value": i})).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let _idle = TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let start = Instant::now();
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        server.output()
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "exit took {:?} with idle connections open",
        start.elapsed()
    );
    let server = Process::start(&server.database);
    let r = Http::new(&server.url).get(&rec("i4")).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
