//! What the in-process tests of the server share: an app state over a SQLite
//! store in a temporary directory, and one request ([`Ask`]) sent through the
//! whole router with `tower::ServiceExt::oneshot` (no sockets).

#![allow(dead_code, clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use lockstep_core::Limits;
use lockstep_server::AppState;
use lockstep_store::{Location, Options, Store};
use serde_json::Value;
use tower::ServiceExt;

/// A state over a fresh SQLite store in `dir`, with `limits`.
pub async fn sqlite_state(dir: &tempfile::TempDir, limits: Limits) -> AppState {
    let store = Store::open(&Location::Sqlite(dir.path().join("db")), Options::default())
        .await
        .unwrap();
    AppState::new(store, limits)
}

/// An answer: status, headers and the JSON body (null for a stream or no JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// One request to send.
pub struct Ask {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
}

impl Ask {
    /// `method path` (any case), no headers, no body.
    pub fn new(method: &str, path: impl Into<String>) -> Ask {
        Ask {
            method: method.to_uppercase(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }
    /// With `Authorization: Bearer {b}` when `b` is given.
    pub fn bearer(self, b: Option<&str>) -> Ask {
        match b {
            Some(b) => self.header("authorization", &format!("Bearer {b}")),
            None => self,
        }
    }
    /// With a header.
    pub fn header(mut self, name: &str, value: &str) -> Ask {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// With a body of this media type.
    pub fn body(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Ask {
        self.body = Some((content_type.into(), bytes.into()));
        self
    }
    /// With a JSON body.
    pub fn json(self, v: Value) -> Ask {
        self.body("application/json", v.to_string())
    }
}

/// Sends `a` through the whole app and reads the answer.
pub async fn send(st: &AppState, a: Ask) -> Answer {
    let mut req = Request::builder().method(a.method.as_str()).uri(&a.path);
    for (n, v) in &a.headers {
        req = req.header(n.as_str(), v.as_str());
    }
    let req = match a.body {
        Some((ct, bytes)) => req.header(header::CONTENT_TYPE, ct).body(Body::from(bytes)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = lockstep_server::app(st.clone()).oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    // A watch streams forever: its body is not read.
    let stream = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body = if stream {
        Value::Null
    } else {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends `method path` (any case) with an optional bearer and JSON body.
pub async fn call(
    st: &AppState,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let a = Ask::new(method, path).bearer(bearer);
    let a = match body {
        Some(b) => a.json(b),
        None => a,
    };
    send(st, a).await
}

/// One answer as the OpenAPI checks see it: the operation asked, its status,
/// content type and JSON body.
pub struct Seen {
    pub op: String,
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

/// Sends `a` through the whole app; `op` names the operation it is checked against.
pub async fn ask(st: &AppState, op: &str, a: Ask) -> Seen {
    let answer = send(st, a).await;
    let content_type = answer
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Seen {
        op: op.to_owned(),
        status: answer.status,
        content_type,
        body: answer.body,
    }
}

/// A concrete path for a route template: namespace `app`, `gate` for
/// `{name}`, and a valid value for every other parameter.
pub fn concrete(template: &str, gate: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{ns}" => "app",
            "{name}" => gate,
            "{*key}" => "k",
            "{transition}" => "pause",
            "{op}" => "check",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}
