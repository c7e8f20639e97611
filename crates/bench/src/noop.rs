//! The HTTP ceiling: an axum server whose one route parses a JSON body and
//! answers a small JSON object, driven like lockstep (one keep-alive
//! connection per client).

use crate::error::Error;
use crate::http::Conn;
use crate::target::{Cell, Client, Target};
use crate::workload::{entry_data, Workload};
use axum::routing::post;
use axum::{Json, Router};
use hyper::{Method, StatusCode};
use std::io::Write;
use std::net::SocketAddr;

/// The body the route answers.
#[derive(serde::Serialize)]
struct Answered {
    ok: bool,
}

/// Parses the body as JSON and answers `{"ok":true}`.
async fn noop(Json(_body): Json<serde_json::Value>) -> Json<Answered> {
    Json(Answered { ok: true })
}

/// Serves `POST /noop` on `listen` until killed; prints
/// `listening on http://ADDR` first.
pub async fn serve(listen: &str) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()?;
    axum::serve(listener, Router::new().route("/noop", post(noop))).await?;
    Ok(())
}

/// The no-op server as a target.
pub struct Noop {
    addr: SocketAddr,
}

impl Noop {
    /// The server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Noop { addr }
    }
}

impl Target for Noop {
    type Client = NoopClient;

    fn supports(&self, w: Workload) -> bool {
        w == Workload::Noop
    }

    async fn prepare(&self, _cell: &Cell) -> Result<(), Error> {
        Ok(())
    }

    async fn connect(&self, _cell: &Cell, _index: usize) -> Result<NoopClient, Error> {
        Ok(NoopClient {
            conn: Conn::connect(self.addr).await?,
            body: entry_data(),
        })
    }

    async fn tally(&self, _cell: &Cell) -> Result<u64, Error> {
        Err(Error::Unsupported("noop"))
    }
}

/// One client of the no-op server.
pub struct NoopClient {
    conn: Conn,
    body: String,
}

impl Client for NoopClient {
    async fn cas(&mut self, _key: &str) -> Result<bool, Error> {
        Err(Error::Unsupported("cas"))
    }

    async fn acquire(&mut self, _name: &str, _owner: &str) -> Result<Option<String>, Error> {
        Err(Error::Unsupported("lease_cycle"))
    }

    async fn release(&mut self, _name: &str, _token: &str) -> Result<bool, Error> {
        Err(Error::Unsupported("lease_cycle"))
    }

    async fn append(&mut self, _feed: &str, _id: &str, _data: &str) -> Result<bool, Error> {
        Err(Error::Unsupported("feed_append"))
    }

    async fn noop(&mut self) -> Result<bool, Error> {
        let a = self
            .conn
            .send(Method::POST, "/noop", Some(self.body.clone()), &[])
            .await?;
        match a.status {
            StatusCode::OK => Ok(true),
            _ => Err(a.unexpected("noop")),
        }
    }
}
