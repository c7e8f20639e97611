//! lockstep-client: a thin typed async client of the lockstep HTTP API. It knows
//! only the wire types; it grows with the API (retries, lease guards, pagers).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
pub use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

/// Characters left as they are in a path segment; everything else (`/` included)
/// is percent-encoded, so a key is always one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a problem.
    #[error("{status} {code}: {detail}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The stable `code`.
        code: String,
        /// The `detail`.
        detail: String,
        /// The whole problem body (e.g. `current`).
        body: Value,
    },
    /// No answer: connection refused, reset, timed out.
    #[error("transport: {0}")]
    Transport(String),
}

impl Error {
    /// The problem `code`, if the server answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            Error::Transport(_) => None,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::Transport(_) => None,
        }
    }
}

/// A record as read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Its version.
    pub version: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339, when it has a TTL.
    pub expires_at: Option<String>,
}

/// The answer of a PUT.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Written {
    /// The key.
    pub key: String,
    /// The new version.
    pub version: u64,
    /// The revision it committed at.
    pub revision: u64,
    /// Whether it was created (201) rather than replaced (200).
    #[serde(skip)]
    pub created: bool,
}

/// A client of one lockstep server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

fn transport(e: reqwest::Error) -> Error {
    Error::Transport(e.to_string())
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:7707`),
    /// without a token (open mode, on loopback).
    pub fn new(base_url: &str) -> Result<Client, Error> {
        Client::build(base_url, reqwest::header::HeaderMap::new())
    }

    /// A client that sends `Authorization: Bearer <token>` with every request.
    pub fn with_token(base_url: &str, token: &str) -> Result<Client, Error> {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Error::Transport("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        Client::build(base_url, headers)
    }

    fn build(base_url: &str, headers: reqwest::header::HeaderMap) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .default_headers(headers)
            .build()
            .map_err(transport)?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The URL of a record.
    pub fn record_url(&self, ns: &str, key: &str) -> String {
        format!(
            "{}/v1/ns/{ns}/records/{}",
            self.base,
            utf8_percent_encode(key, SEGMENT)
        )
    }

    async fn answer(resp: reqwest::Response) -> Result<(u16, Value), Error> {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(transport)?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status >= 400 {
            let field = |n: &str| body.get(n).and_then(Value::as_str).unwrap_or_default().to_owned();
            return Err(Error::Api {
                status,
                code: field("code"),
                detail: field("detail"),
                body,
            });
        }
        Ok((status, body))
    }

    fn decode<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, Error> {
        serde_json::from_value(v).map_err(|e| Error::Transport(format!("unexpected answer: {e}")))
    }

    /// Reads a record; `None` when absent.
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Record>, Error> {
        let resp = self
            .http
            .get(self.record_url(ns, key))
            .send()
            .await
            .map_err(transport)?;
        match Self::answer(resp).await {
            Ok((_, body)) => Self::decode(body).map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a record, only at `expected_version` when given (0 = must not exist).
    pub async fn put(
        &self,
        ns: &str,
        key: &str,
        value: Value,
        expected_version: Option<u64>,
    ) -> Result<Written, Error> {
        let mut body = json!({"value": value});
        if let Some(v) = expected_version {
            body["expected_version"] = json!(v);
        }
        let resp = self
            .http
            .put(self.record_url(ns, key))
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let (status, body) = Self::answer(resp).await?;
        let mut w: Written = Self::decode(body)?;
        w.created = status == 201;
        Ok(w)
    }

    /// Deletes a record.
    pub async fn delete(&self, ns: &str, key: &str) -> Result<Value, Error> {
        let resp = self
            .http
            .delete(self.record_url(ns, key))
            .send()
            .await
            .map_err(transport)?;
        Ok(Self::answer(resp).await?.1)
    }

    /// Runs a transaction (`{compare, success, failure}`) and returns its answer.
    pub async fn txn(&self, ns: &str, txn: &Value) -> Result<Value, Error> {
        let url = format!("{}/v1/ns/{ns}/txn", self.base);
        let resp = self.http.post(url).json(txn).send().await.map_err(transport)?;
        Ok(Self::answer(resp).await?.1)
    }

    /// Any call: `method` on `path` (from the server root, e.g. `/v1/ns/a/txn`)
    /// with an optional JSON body and `Idempotency-Key`; the status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value), Error> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", format!("\"{k}\""));
        }
        Self::answer(req.send().await.map_err(transport)?).await
    }

    /// The path segment of a name (percent-encoded, `/` included).
    pub fn segment(name: &str) -> String {
        utf8_percent_encode(name, SEGMENT).to_string()
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Value, Error> {
        let resp = self
            .http
            .get(format!("{}/v1/info", self.base))
            .send()
            .await
            .map_err(transport)?;
        Ok(Self::answer(resp).await?.1)
    }
}
