//! A TCP proxy in front of the server that can cut connections: all of them
//! at once, or the next one right after the server answered (the request was
//! applied, the answer never arrives); or answer the next request itself
//! (e.g. a 503) without forwarding it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy; stops with its runtime.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    drop_answer: Arc<AtomicBool>,
    canned: Arc<std::sync::Mutex<Option<String>>>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    /// A proxy of the server at `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let drop_answer = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let canned = Arc::new(std::sync::Mutex::new(None));
        let (d, c, k) = (drop_answer.clone(), cut.clone(), canned.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, d.clone(), k.clone(), c.subscribe()));
            }
        });
        Proxy {
            url,
            drop_answer,
            canned,
            cut,
        }
    }

    /// The next answer from the server is not relayed: its connection is
    /// closed instead.
    pub fn drop_next_answer(&self) {
        self.drop_answer.store(true, Ordering::SeqCst);
    }

    /// The next request is not forwarded: the proxy answers `status` with
    /// this problem `code` and `Retry-After: 0`, and closes the connection.
    pub fn answer_next(&self, status: u16, code: &str) {
        let body = format!(
            r#"{{"type":"urn:lockstep:problem:{code}","title":"t","status":{status},"detail":"from the proxy","code":"{code}"}}"#
        );
        let answer = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/problem+json\r\nretry-after: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        *self.canned.lock().unwrap() = Some(answer);
    }

    /// Closes every open connection.
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    drop_answer: Arc<AtomicBool>,
    canned: Arc<std::sync::Mutex<Option<String>>>,
    mut cut: watch::Receiver<u64>,
) {
    let (mut cr, cw) = client.into_split();
    let cw = tokio::sync::Mutex::new(cw);
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let answer = canned.lock().unwrap().take();
            if let Some(a) = answer {
                let _ = cw.lock().await.write_all(a.as_bytes()).await;
                break;
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = sr.read(&mut buf).await {
            if n == 0 || drop_answer.swap(false, Ordering::SeqCst) {
                break;
            }
            if cw.lock().await.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut.changed() => {}
    }
}
