//! What the in-process tests of the server share: an app state over a SQLite
//! store in a temporary directory, and one request sent through the whole
//! router with `tower::ServiceExt::oneshot` (no sockets).

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

/// Sends `method path` (any case) with an optional bearer and JSON body.
pub async fn call(
    st: &AppState,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(path);
    if let Some(b) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {b}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
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
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Answer {
        status,
        headers,
        body,
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
