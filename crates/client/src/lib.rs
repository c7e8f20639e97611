//! lockstep-client: a typed async client of the lockstep HTTP API (SPEC §14).
//!
//! Every request and answer body is a type of [`lockstep_api`], shared with
//! the server. Calls retry what is safe to retry (503, 423, 429, 409
//! `idempotency_key_in_use`, connection errors and timeouts) with exponential
//! backoff and full jitter, honouring `Retry-After`; every write carries an
//! `Idempotency-Key` generated per call, so a retried write applies once.
//!
//! ```no_run
//! use lockstep_client::{Client, api::records::PutRecordBody};
//! use serde_json::json;
//! # async fn f() -> Result<(), lockstep_client::Error> {
//! let client = Client::builder("http://127.0.0.1:7707").token("secret").build()?;
//! let app = client.ns("app");
//! app.put("user/1", &PutRecordBody::new(json!({"plan": "pro"})).expected_version(0)).await?;
//! let n = app.update_with("visits", |v| json!(v.and_then(|v| v.as_u64()).unwrap_or(0) + 1), 10).await?;
//! let guard = app.acquire("settle", std::time::Duration::from_secs(30), std::time::Duration::ZERO).await?;
//! println!("fence {} version {}", guard.fence(), n.put.version);
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! Modules: [`Client`] and [`Builder`] here, [`Ns`] (one namespace) with its
//! records and transactions, leases ([`LeaseGuard`]), feeds, gates,
//! idempotency keys, and the change log ([`Ns::changes`], [`Ns::watch`]).

mod changes;
mod error;
mod feeds;
mod gates;
mod guard;
mod http;
mod idempotency;
mod leases;
mod paging;
mod records;
mod sse;

pub use error::Error;
pub use gates::{TicketOp, Transition};
pub use guard::{Held, LeaseGuard, LockOptions};
pub use http::Retry;
/// The wire types (re-exported `lockstep_api`).
pub use lockstep_api as api;
pub use paging::Pager;
pub use records::Written;
pub use reqwest::Method;

use http::{seg, Req, Transport};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A client of one lockstep server; cheap to clone (one connection pool).
///
/// ```no_run
/// # async fn f() -> Result<(), lockstep_client::Error> {
/// let client = lockstep_client::Client::new("http://127.0.0.1:7707")?;
/// println!("{}", client.server_info().await?.backend);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    t: Arc<Transport>,
}

/// Settings of a [`Client`].
///
/// ```
/// use std::time::Duration;
/// let client = lockstep_client::Client::builder("http://127.0.0.1:7707")
///     .token("secret")
///     .timeout(Duration::from_secs(5))
///     .retry(lockstep_client::Retry { attempts: 3, ..Default::default() })
///     .build()?;
/// # Ok::<(), lockstep_client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    url: String,
    token: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    retry: Retry,
}

impl Builder {
    /// Sends `Authorization: Bearer <token>` (an API token or a capability).
    ///
    /// ```
    /// let b = lockstep_client::Client::builder("http://127.0.0.1:7707").token("secret");
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Builder {
        self.token = Some(token.into());
        self
    }

    /// Gives up an attempt after this long (default 30 s); a timed-out
    /// attempt is retried like a connection error. A waiting acquire gets its
    /// wait on top.
    ///
    /// ```
    /// let b = lockstep_client::Client::builder("http://127.0.0.1:7707")
    ///     .timeout(std::time::Duration::from_secs(2));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Builder {
        self.timeout = Some(timeout);
        self
    }

    /// Gives up connecting after this long (default 10 s).
    ///
    /// ```
    /// let b = lockstep_client::Client::builder("http://127.0.0.1:7707")
    ///     .connect_timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Builder {
        self.connect_timeout = timeout;
        self
    }

    /// The retry policy (default [`Retry::default`]: 6 attempts).
    ///
    /// ```
    /// let b = lockstep_client::Client::builder("http://127.0.0.1:7707")
    ///     .retry(lockstep_client::Retry::none());
    /// ```
    pub fn retry(mut self, retry: Retry) -> Builder {
        self.retry = retry;
        self
    }

    /// The client. TLS (`https://`) is rustls with the ring provider and the
    /// platform's trust store.
    ///
    /// ```
    /// let c = lockstep_client::Client::builder("http://127.0.0.1:7707").build()?;
    /// # Ok::<(), lockstep_client::Error>(())
    /// ```
    pub fn build(self) -> Result<Client, Error> {
        // The process-wide provider; already installed is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &self.token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .connect_timeout(self.connect_timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let base = self.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!("not an http(s) URL: {base}")));
        }
        Ok(Client {
            t: Arc::new(Transport {
                http,
                base,
                timeout: self.timeout,
                retry: self.retry,
            }),
        })
    }
}

impl Client {
    /// Settings for a client of the server at `url` (e.g. `http://127.0.0.1:7707`).
    ///
    /// ```
    /// let c = lockstep_client::Client::builder("http://127.0.0.1:7707").build()?;
    /// # Ok::<(), lockstep_client::Error>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder {
            url: url.into(),
            token: None,
            timeout: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(10),
            retry: Retry::default(),
        }
    }

    /// A client with default settings and no token (open mode, on loopback).
    ///
    /// ```
    /// let c = lockstep_client::Client::new("http://127.0.0.1:7707")?;
    /// # Ok::<(), lockstep_client::Error>(())
    /// ```
    pub fn new(url: &str) -> Result<Client, Error> {
        Client::builder(url).build()
    }

    /// A client with default settings that sends `token`.
    ///
    /// ```
    /// let c = lockstep_client::Client::with_token("http://127.0.0.1:7707", "secret")?;
    /// # Ok::<(), lockstep_client::Error>(())
    /// ```
    pub fn with_token(url: &str, token: &str) -> Result<Client, Error> {
        Client::builder(url).token(token).build()
    }

    /// The handle of namespace `name` (percent-encoded in every URL).
    ///
    /// ```
    /// let app = lockstep_client::Client::new("http://127.0.0.1:7707")?.ns("app");
    /// assert_eq!(app.name(), "app");
    /// # Ok::<(), lockstep_client::Error>(())
    /// ```
    pub fn ns(&self, name: &str) -> Ns {
        Ns {
            client: self.clone(),
            name: name.to_owned(),
            path: format!("/v1/ns/{}", seg(name)),
        }
    }

    /// The path segment of a name: percent-encoded, `/` included.
    ///
    /// ```
    /// assert_eq!(lockstep_client::Client::segment("user/1"), "user%2F1");
    /// ```
    pub fn segment(name: &str) -> String {
        seg(name)
    }

    /// `GET /v1/info`, typed.
    ///
    /// ```no_run
    /// # async fn f(c: lockstep_client::Client) -> Result<(), lockstep_client::Error> {
    /// let info = c.server_info().await?;
    /// println!("{} {}", info.version, info.backend);
    /// # Ok(()) }
    /// ```
    pub async fn server_info(&self) -> Result<api::system::Info, Error> {
        Ok(self.t.send(&Req::get("/v1/info".into())).await?.body)
    }

    /// `GET /v1/info` as raw JSON (see [`Client::server_info`] for the typed answer).
    ///
    /// ```no_run
    /// # async fn f(c: lockstep_client::Client) -> Result<(), lockstep_client::Error> {
    /// let backend = c.info().await?["backend"].clone();
    /// # Ok(()) }
    /// ```
    pub async fn info(&self) -> Result<Value, Error> {
        Ok(self.t.send(&Req::get("/v1/info".into())).await?.body)
    }

    /// `GET /readyz`: whether storage is reachable (an error when not).
    ///
    /// ```no_run
    /// # async fn f(c: lockstep_client::Client) -> Result<(), lockstep_client::Error> {
    /// assert_eq!(c.ready().await?.status, "ready");
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self) -> Result<api::system::HealthStatus, Error> {
        let req = Req {
            retry: Some(Retry::none()),
            ..Req::get("/readyz".into())
        };
        Ok(self.t.send(&req).await?.body)
    }

    /// The namespaces that hold anything, by name (admin).
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// # async fn f(c: lockstep_client::Client) -> Result<(), lockstep_client::Error> {
    /// let all: Vec<String> = c.namespaces().try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn namespaces(&self) -> Pager<String> {
        let t = self.t.clone();
        paging::pager(move |cursor| {
            let t = t.clone();
            async move {
                let q = api::records::NamespacesQuery { limit: None, cursor };
                let req = Req::get("/v1/namespaces".into()).query(&q)?;
                let p: api::Page<api::records::Namespaces> = t.send(&req).await?.body;
                Ok((p.items.namespaces, p.next_cursor))
            }
        })
    }

    /// Removes namespace `name` and everything in it (admin).
    ///
    /// ```no_run
    /// # async fn f(c: lockstep_client::Client) -> Result<(), lockstep_client::Error> {
    /// let gone = c.delete_namespace("scratch").await?;
    /// println!("{} records", gone.records);
    /// # Ok(()) }
    /// ```
    pub async fn delete_namespace(&self, name: &str) -> Result<api::records::NamespaceDeleted, Error> {
        let req = Req::write(Method::DELETE, format!("/v1/ns/{}", seg(name)));
        Ok(self.t.send(&req).await?.body)
    }

    /// Any call, raw: `method` on `path` (from the server root, already
    /// percent-encoded, e.g. `/v1/ns/a/txn`) with an optional JSON body and
    /// `Idempotency-Key`; the status and the JSON body (`Null` when empty).
    /// Exactly one attempt with exactly the given key (none when `None`), so
    /// what is measured or tested is what was sent (`lockstep bench` uses it).
    ///
    /// ```no_run
    /// use lockstep_client::{Client, Method};
    /// # async fn f(c: Client) -> Result<(), lockstep_client::Error> {
    /// let (status, body) = c.call(Method::GET, "/v1/info", None, None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value), Error> {
        let mut req = Req {
            method,
            key: idempotency_key.map(str::to_owned),
            retry: Some(Retry::none()),
            ..Req::get(path.to_owned())
        };
        if let Some(b) = body {
            req = req.json(b)?;
        }
        let a = self.t.send::<Value>(&req).await?;
        Ok((a.status, a.body))
    }
}

/// One namespace of a [`Client`]: records, transactions, leases, feeds, gates,
/// idempotency keys and the change log. Cheap to clone.
///
/// ```no_run
/// # async fn f() -> Result<(), lockstep_client::Error> {
/// let app = lockstep_client::Client::new("http://127.0.0.1:7707")?.ns("app");
/// let r = app.get("user/1").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Ns {
    client: Client,
    name: String,
    /// `/v1/ns/{ns}`, encoded.
    path: String,
}

impl Ns {
    /// The namespace's name.
    ///
    /// ```
    /// let app = lockstep_client::Client::new("http://127.0.0.1:7707")?.ns("my app");
    /// assert_eq!(app.name(), "my app");
    /// # Ok::<(), lockstep_client::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client it belongs to.
    ///
    /// ```
    /// let app = lockstep_client::Client::new("http://127.0.0.1:7707")?.ns("app");
    /// let other = app.client().ns("other");
    /// # Ok::<(), lockstep_client::Error>(())
    /// ```
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The transport.
    fn t(&self) -> &Transport {
        &self.client.t
    }

    /// `/v1/ns/{ns}/{rest}`.
    fn at(&self, rest: &str) -> String {
        format!("{}/{rest}", self.path)
    }
}
