//! One client of the run: sends requests over a keep-alive connection pool to
//! its instance and records each request and answer in its own history.

use super::history::{Clock, Kind, Op};
use serde_json::Value;
use std::sync::Arc;

/// Where and how every client talks to the deployment.
#[derive(Clone)]
pub struct Target {
    /// The HTTP client (one pool, keep-alive).
    pub http: reqwest::Client,
    /// The instance base URLs, without a trailing slash.
    pub urls: Arc<Vec<String>>,
    /// The namespace of the run.
    pub ns: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// The run's clock.
    pub clock: Clock,
}

/// A client: its id, its instance and the operations it recorded.
pub struct Caller {
    target: Target,
    /// The client id.
    pub client: usize,
    /// The instance it talks to.
    pub instance: usize,
    /// What it sent and got.
    pub ops: Vec<Op>,
}

impl Caller {
    /// Client `client`, spread round-robin over the instances.
    pub fn new(target: Target, client: usize) -> Caller {
        let instance = client % target.urls.len().max(1);
        Caller {
            target,
            client,
            instance,
            ops: Vec::new(),
        }
    }

    /// Sends `method path` (relative to `/v1/ns/{ns}`) to this client's
    /// instance, records it and returns the recorded operation.
    pub async fn call(&mut self, kind: Kind, method: &'static str, path: &str, body: Option<Value>) -> Op {
        self.send(self.instance, kind, method, path, body, None).await
    }

    /// As [`Caller::call`], to instance `instance` with an `Idempotency-Key`
    /// when `key` is given. Requests of one caller may run concurrently.
    pub async fn send(
        &mut self,
        instance: usize,
        kind: Kind,
        method: &'static str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Op {
        let op = request(&self.target, self.client, instance, kind, method, path, body, key).await;
        self.ops.push(op.clone());
        op
    }

    /// Records an operation sent with [`request`] outside this caller.
    pub fn record(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// The target, for [`request`].
    pub fn target(&self) -> &Target {
        &self.target
    }
}

/// Sends one request and returns it as an operation (not yet recorded).
#[allow(clippy::too_many_arguments)]
pub async fn request(
    target: &Target,
    client: usize,
    instance: usize,
    kind: Kind,
    method: &'static str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> Op {
    let instance = instance % target.urls.len().max(1);
    let base = target.urls.get(instance).map(String::as_str).unwrap_or_default();
    let url = format!("{base}/v1/ns/{}{path}", target.ns);
    let m = match method {
        "GET" => reqwest::Method::GET,
        "PUT" => reqwest::Method::PUT,
        "DELETE" => reqwest::Method::DELETE,
        _ => reqwest::Method::POST,
    };
    let mut req = target.http.request(m, &url);
    if let Some(t) = &target.token {
        req = req.bearer_auth(t);
    }
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    if let Some(b) = &body {
        req = req.json(b);
    }
    let start_us = target.clock.now_us();
    let (status, answer, replayed) = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let replayed = resp
                .headers()
                .get("idempotent-replayed")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            match resp.bytes().await {
                Ok(bytes) => {
                    let answer = serde_json::from_slice(&bytes)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
                    (status, answer, replayed)
                }
                Err(e) => (0, Value::String(format!("reading the answer: {e}")), false),
            }
        }
        Err(e) => (0, Value::String(format!("{e}")), false),
    };
    Op {
        client,
        kind,
        method,
        path: path.to_owned(),
        instance,
        idempotency_key: key.map(str::to_owned),
        request: body.unwrap_or(Value::Null),
        start_us,
        end_us: target.clock.now_us(),
        status,
        answer,
        replayed,
    }
}
