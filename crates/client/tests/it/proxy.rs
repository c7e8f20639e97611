//! A TCP proxy in front of the server that can cut connections: all of them
//! at once, or the next one right after the server answered (the request was
//! applied, the answer never arrives).

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
        let (d, c) = (drop_answer.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, d.clone(), c.subscribe()));
            }
        });
        Proxy {
            url,
            drop_answer,
            cut,
        }
    }

    /// The next answer from the server is not relayed: its connection is
    /// closed instead.
    pub fn drop_next_answer(&self) {
        self.drop_answer.store(true, Ordering::SeqCst);
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
    mut cut: watch::Receiver<u64>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
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
            if cw.write_all(&buf[..n]).await.is_err() {
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
