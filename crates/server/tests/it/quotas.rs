//! Per-token limits (SPEC §3 429, §11), in process: one token opens more
//! watches, or queues more waiting acquires, than it may; the excess gets 429
//! `too_many_requests` with `Retry-After`, and another token is still served.
//! And the request rate.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use lockstep_core::Limits;
use lockstep_server::auth::{secret_sha256_hex, Auth, Role, TokenSet, TokenSpec};
use lockstep_server::AppState;
use lockstep_store::{Location, Options, Store};
use std::sync::Arc;
use tower::ServiceExt;

async fn state(dir: &tempfile::TempDir, limits: Limits) -> AppState {
    let store = Store::open(&Location::Sqlite(dir.path().join("db")), Options::default())
        .await
        .unwrap();
    let spec = |name: &str, secret: &str| TokenSpec {
        name: name.into(),
        role: Role::Writer,
        namespaces: vec!["app".into()],
        secret_sha256: secret_sha256_hex(secret),
    };
    let set = TokenSet::from_specs(&[spec("greedy", "g-secret"), spec("polite", "p-secret")]).unwrap();
    AppState::new(store, limits).with_auth(Arc::new(Auth::new(set, false)))
}

async fn send(st: &AppState, method: &str, path: &str, secret: &str, body: Option<&str>) -> Response<Body> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {secret}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    lockstep_server::app(st.clone()).oneshot(req).await.unwrap()
}

async fn metrics(st: &AppState) -> String {
    let r = send(st, "GET", "/metrics", "p-secret", None).await;
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn assert_429(r: &Response<Body>, what: &str) {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "1", "{what}");
    assert_eq!(
        r.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/problem+json",
        "{what}"
    );
}

#[tokio::test]
async fn watches_over_the_limit_get_429_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        token_watches_max: 2,
        ..Limits::default()
    };
    let st = state(&dir, limits).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = send(&st, "GET", "/v1/ns/app/watch", "g-secret", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r); // held open: its body is the stream
    }
    let r = send(&st, "GET", "/v1/ns/app/watch", "g-secret", None).await;
    assert_429(&r, "a third watch of the same token");
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("too_many_requests"));
    // Another token is served, and so are the greedy token's other requests.
    let r = send(&st, "GET", "/v1/ns/app/watch", "p-secret", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(&st, "GET", "/v1/ns/app/records/k", "g-secret", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // /metrics shows the open watches and who was refused.
    let text = metrics(&st).await;
    for line in [
        "lockstep_watches_open 3",
        "lockstep_http_refused_total{status=\"429\",token=\"greedy\"} 1",
    ] {
        assert!(text.contains(line), "/metrics lacks {line}:\n{text}");
    }
    let r = send(&st, "GET", "/v1/ns/app/records/k", "not-a-token", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = send(&st, "GET", "/v1/ns/other/records/k", "p-secret", None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = metrics(&st).await;
    for line in [
        "lockstep_http_refused_total{status=\"401\",token=\"-\"} 1",
        "lockstep_http_refused_total{status=\"403\",token=\"polite\"} 1",
    ] {
        assert!(text.contains(line), "/metrics lacks {line}:\n{text}");
    }
    // Closing a watch frees its place.
    drop(open.pop());
    let r = send(&st, "GET", "/v1/ns/app/watch", "g-secret", None).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn waiting_acquires_over_the_limit_get_429() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        token_waiting_acquires_max: 1,
        ..Limits::default()
    };
    let st = state(&dir, limits).await;
    let r = send(
        &st,
        "POST",
        "/v1/ns/app/leases/l/acquire",
        "p-secret",
        Some(r#"{"ttl_ms": 60000}"#),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // One waiter of the greedy token waits in line...
    let waiter = {
        let st = st.clone();
        tokio::spawn(async move {
            let body = r#"{"ttl_ms": 1000, "wait_ms": 2000}"#;
            send(&st, "POST", "/v1/ns/app/leases/l/acquire", "g-secret", Some(body))
                .await
                .status()
        })
    };
    // ...(once it is counted)...
    while st.quotas.totals().0 == 0 {
        assert!(
            !waiter.is_finished(),
            "the first waiter ended before it was counted"
        );
        // Paces the poll (bounded: the waiter gives up after its 2 s wait).
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // ...so a second waiting acquire of that token is refused at once.
    let body = r#"{"ttl_ms": 1000, "wait_ms": 10}"#;
    let r = send(&st, "POST", "/v1/ns/app/leases/l/acquire", "g-secret", Some(body)).await;
    assert_429(&r, "a second waiting acquire");
    assert!(metrics(&st).await.contains("lockstep_lease_waiters 1"));
    let r = send(&st, "POST", "/v1/ns/app/leases/l/acquire", "p-secret", Some(body)).await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "another token waits (and times out with lease_held)"
    );
    assert_eq!(
        waiter.await.unwrap(),
        StatusCode::CONFLICT,
        "the first waiter times out with lease_held"
    );
}

#[tokio::test]
async fn the_request_rate_is_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        token_requests_per_s: 5,
        ..Limits::default()
    };
    let st = state(&dir, limits).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            send(&st, "GET", "/v1/ns/app/records/k", "g-secret", None)
                .await
                .status(),
        );
    }
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(refused >= 10, "{statuses:?}");
    let r = send(&st, "GET", "/v1/ns/app/records/k", "p-secret", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "another token is served");
}
