//! lockstep over HTTP/1.1: each workload through its public API (docs/*.md).

use crate::error::Error;
use crate::http::{segment, Conn};
use crate::target::{Cell, Client, PageRead, Target};
use crate::workload::{self, Workload, LEASE_NAMES, LEASE_TTL_MS};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use std::net::SocketAddr;

/// A lockstep server; each cell writes in its own namespace.
pub struct Lockstep {
    addr: SocketAddr,
    ns_prefix: String,
}

impl Lockstep {
    /// The server at `addr`; namespaces are `{ns_prefix}-{cell tag}`.
    pub fn new(addr: SocketAddr, ns_prefix: String) -> Self {
        Lockstep { addr, ns_prefix }
    }

    fn ns(&self, cell: &Cell) -> String {
        format!("{}-{}", self.ns_prefix, cell.tag)
    }

    /// Pages `GET /v1/ns/{ns}/{what}?prefix=…` and folds each page.
    async fn page<P: serde::de::DeserializeOwned + Page>(
        &self,
        cell: &Cell,
        what: &str,
        prefix: &str,
        mut fold: impl FnMut(&P),
    ) -> Result<(), Error> {
        let mut conn = Conn::connect(self.addr).await?;
        let base = format!(
            "/v1/ns/{}/{what}?prefix={}&limit=1000",
            self.ns(cell),
            segment(prefix)
        );
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("{base}&cursor={}", segment(c)),
                None => base.clone(),
            };
            let a = conn.send(Method::GET, &path, None, &[]).await?;
            if a.status != StatusCode::OK {
                return Err(a.unexpected(&path));
            }
            let page: P = a.json()?;
            fold(&page);
            match page.next_cursor() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(()),
            }
        }
    }
}

/// A listing page with its cursor.
trait Page {
    fn next_cursor(&self) -> Option<&str>;
}

#[derive(Deserialize)]
struct Records {
    records: Vec<RecordItem>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct RecordItem {
    value: serde_json::Value,
}

impl Page for Records {
    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}

#[derive(Deserialize)]
struct Feeds {
    feeds: Vec<FeedItem>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct FeedItem {
    entries: u64,
}

impl Page for Feeds {
    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}

#[derive(Deserialize)]
struct Entries {
    entries: Vec<EntryItem>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct EntryItem {
    id: String,
}

#[derive(Deserialize)]
struct Record {
    value: u64,
    version: u64,
}

#[derive(Deserialize)]
struct Acquired {
    token: String,
}

#[derive(Deserialize)]
struct Released {
    released: bool,
}

#[derive(Deserialize)]
struct LeaseState {
    held: bool,
}

#[derive(Deserialize)]
struct Ticket {
    state: String,
}

impl Target for Lockstep {
    type Client = LockstepClient;

    fn supports(&self, w: Workload) -> bool {
        w != Workload::Noop
    }

    async fn prepare(&self, cell: &Cell) -> Result<(), Error> {
        if cell.workload == Workload::FeedPage {
            let mut conn = Conn::connect(self.addr).await?;
            let data: serde_json::Value = serde_json::from_str(&workload::entry_data())?;
            for f in 0..workload::PAGE_FEEDS {
                let entries: Vec<_> = (0..workload::PAGE_FEED_ENTRIES)
                    .map(|i| serde_json::json!({ "id": format!("e{i}"), "data": data }))
                    .collect();
                let path = format!("/v1/ns/{}/feeds/p{f}/import", self.ns(cell));
                let body = serde_json::to_string(&entries)?;
                let a = conn.send(Method::POST, &path, Some(body), &[]).await?;
                if !a.status.is_success() {
                    return Err(a.unexpected(&path));
                }
            }
        }
        if cell.workload == Workload::GateCycle {
            let mut conn = Conn::connect(self.addr).await?;
            for i in 0..cell.clients {
                let path = format!("/v1/ns/{}/gates/g{i}", self.ns(cell));
                let a = conn.send(Method::PUT, &path, Some("{}".into()), &[]).await?;
                if !a.status.is_success() {
                    return Err(a.unexpected(&path));
                }
            }
        }
        Ok(())
    }

    async fn connect(&self, cell: &Cell, _index: usize) -> Result<LockstepClient, Error> {
        Ok(LockstepClient {
            conn: Conn::connect(self.addr).await?,
            base: format!("/v1/ns/{}", self.ns(cell)),
        })
    }

    async fn tally(&self, cell: &Cell) -> Result<u64, Error> {
        let mut total = 0u64;
        match cell.workload {
            Workload::CasHot | Workload::CasSpread => {
                self.page(cell, "records", "c/", |p: &Records| {
                    total += p.records.iter().filter_map(|r| r.value.as_u64()).sum::<u64>();
                })
                .await?;
            }
            Workload::KeyedWrite => {
                self.page(cell, "records", "kw/", |p: &Records| {
                    total += p.records.len() as u64
                })
                .await?;
            }
            Workload::FeedAppend | Workload::FeedPage | Workload::GateCycle => {
                let prefix = match cell.workload {
                    Workload::FeedAppend => "f",
                    Workload::FeedPage => "p",
                    _ => "gate-out-",
                };
                self.page(cell, "feeds", prefix, |p: &Feeds| {
                    total += p.feeds.iter().map(|f| f.entries).sum::<u64>();
                })
                .await?;
            }
            Workload::LeaseCycle => {
                let mut conn = Conn::connect(self.addr).await?;
                for i in 0..LEASE_NAMES {
                    let path = format!("/v1/ns/{}/leases/l{i}", self.ns(cell));
                    let a = conn.send(Method::GET, &path, None, &[]).await?;
                    if a.status == StatusCode::OK && a.json::<LeaseState>()?.held {
                        total += 1;
                    }
                }
            }
            Workload::Noop => return Err(Error::Unsupported("noop")),
        }
        Ok(total)
    }
}

/// One client's connection and its namespace's path.
pub struct LockstepClient {
    conn: Conn,
    base: String,
}

impl LockstepClient {
    async fn post(&mut self, path: &str, body: Option<String>) -> Result<crate::http::Answer, Error> {
        let path = format!("{}{path}", self.base);
        self.conn.send(Method::POST, &path, body, &[]).await
    }
}

impl Client for LockstepClient {
    async fn cas(&mut self, key: &str) -> Result<bool, Error> {
        let path = format!("{}/records/{}", self.base, segment(key));
        let a = self.conn.send(Method::GET, &path, None, &[]).await?;
        let (value, version) = match a.status {
            StatusCode::OK => {
                let r: Record = a.json()?;
                (r.value, r.version)
            }
            StatusCode::NOT_FOUND => (0, 0),
            _ => return Err(a.unexpected("GET record")),
        };
        let body = format!(r#"{{"value":{},"expected_version":{version}}}"#, value + 1);
        let a = self.conn.send(Method::PUT, &path, Some(body), &[]).await?;
        match a.status {
            StatusCode::OK | StatusCode::CREATED => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            _ => Err(a.unexpected("PUT record")),
        }
    }

    async fn acquire(&mut self, name: &str, owner: &str) -> Result<Option<String>, Error> {
        let body = format!(r#"{{"ttl_ms":{LEASE_TTL_MS},"holder":"{owner}"}}"#);
        let a = self.post(&format!("/leases/{name}/acquire"), Some(body)).await?;
        match a.status {
            StatusCode::OK => Ok(Some(a.json::<Acquired>()?.token)),
            StatusCode::CONFLICT => Ok(None),
            _ => Err(a.unexpected("acquire")),
        }
    }

    async fn release(&mut self, name: &str, token: &str) -> Result<bool, Error> {
        let body = serde_json::to_string(&serde_json::json!({ "token": token }))?;
        let a = self.post(&format!("/leases/{name}/release"), Some(body)).await?;
        match a.status {
            StatusCode::OK => Ok(a.json::<Released>()?.released),
            _ => Err(a.unexpected("release")),
        }
    }

    async fn append(&mut self, feed: &str, id: &str, data: &str) -> Result<bool, Error> {
        let body = format!(r#"{{"id":"{id}","data":{data}}}"#);
        let a = self.post(&format!("/feeds/{feed}/entries"), Some(body)).await?;
        match a.status {
            StatusCode::CREATED => Ok(true),
            StatusCode::OK => Ok(false),
            _ => Err(a.unexpected("append")),
        }
    }

    async fn page(&mut self, feed: &str, cursor: Option<&str>) -> Result<PageRead, Error> {
        let mut path = format!("{}/feeds/{feed}/entries?limit={}", self.base, workload::PAGE_SIZE);
        if let Some(c) = cursor {
            path = format!("{path}&cursor={}", segment(c));
        }
        let a = self.conn.send(Method::GET, &path, None, &[]).await?;
        if a.status != StatusCode::OK {
            return Err(a.unexpected("GET entries"));
        }
        let page: Entries = a.json()?;
        Ok(PageRead {
            ids: page.entries.into_iter().map(|e| e.id).collect(),
            next: page.next_cursor,
        })
    }

    async fn gate_cycle(&mut self, gate: &str, ticket: &str, feed: &str) -> Result<bool, Error> {
        let tickets = format!("/gates/{gate}/tickets");
        let a = self
            .post(&tickets, Some(format!(r#"{{"ticket_id":"{ticket}"}}"#)))
            .await?;
        if a.status != StatusCode::CREATED {
            return Err(a.unexpected("admit"));
        }
        let a = self.post(&format!("{tickets}/{ticket}/commit"), None).await?;
        if a.status != StatusCode::OK {
            return Err(a.unexpected("commit"));
        }
        let body = format!(r#"{{"append":{{"feed":"{feed}","data":{{"ticket":"{ticket}"}}}}}}"#);
        let a = self
            .post(&format!("{tickets}/{ticket}/finalize"), Some(body))
            .await?;
        if a.status != StatusCode::OK {
            return Err(a.unexpected("finalize"));
        }
        Ok(a.json::<Ticket>()?.state == "finalized")
    }

    async fn keyed_write(&mut self, key: &str, idem: &str) -> Result<bool, Error> {
        let path = format!("{}/records/{}", self.base, segment(key));
        let body = Some(r#"{"value":{"n":1}}"#.to_owned());
        let a = self
            .conn
            .send(Method::PUT, &path, body, &[("idempotency-key", idem)])
            .await?;
        match a.status {
            StatusCode::CREATED if !a.replayed => Ok(true),
            _ => Err(a.unexpected("keyed PUT")),
        }
    }
}
