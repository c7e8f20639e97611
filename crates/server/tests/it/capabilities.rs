//! Capabilities (SPEC §11, seeds/001) and CORS, in process: minting; the
//! access matrix of every route of the route table × {capability of this gate,
//! of another gate, expired, tampered}; the epoch decided with the operation
//! (revoke, reopen); capabilities beside tokens; and CORS preflights.

#![allow(clippy::unwrap_used)]

use crate::common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::call;
use lockstep_core::capability::{self, CapOp, Claims};
use lockstep_core::Limits;
use lockstep_server::auth::{secret_sha256_hex, Auth, Role, TokenSet, TokenSpec};
use lockstep_server::{api, AppState};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

async fn state(dir: &tempfile::TempDir) -> AppState {
    common::sqlite_state(dir, Limits::default()).await
}

/// Creates gate `g` of `app` and mints a capability for it.
async fn gate_and_capability(st: &AppState, g: &str, bearer: Option<&str>) -> String {
    let r = call(
        st,
        "PUT",
        &format!("/v1/ns/app/gates/{g}"),
        bearer,
        Some(json!({})),
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    let r = call(
        st,
        "POST",
        &format!("/v1/ns/app/gates/{g}/capabilities"),
        bearer,
        Some(json!({"ttl_ms": 60_000})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["epoch"], json!(1));
    assert_eq!(
        r.body["ops"],
        json!(["admit", "check", "commit", "abort", "finalize"])
    );
    r.body["capability"].as_str().unwrap().to_owned()
}

/// A capability signed with the server's key whose expiry has passed.
async fn expired(st: &AppState, g: &str) -> String {
    let keys = st.capability_keys.get(&st.store).await.unwrap();
    let claims = Claims {
        ns: "app".into(),
        gate: g.into(),
        epoch: 1,
        ops: CapOp::ALL.to_vec(),
        exp: 1,
    };
    capability::sign(&claims, &keys[0]).unwrap()
}

fn is_ticket_route(method: &str, path: &str) -> bool {
    method == "post"
        && (path == "/v1/ns/{ns}/gates/{name}/tickets"
            || path == "/v1/ns/{ns}/gates/{name}/tickets/{ticket}/{op}")
}

#[tokio::test]
async fn minting() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir).await;
    gate_and_capability(&st, "g", None).await;
    let mint = |g: &'static str, body: Value| {
        let st = st.clone();
        async move {
            call(
                &st,
                "POST",
                &format!("/v1/ns/app/gates/{g}/capabilities"),
                None,
                Some(body),
            )
            .await
        }
    };
    assert_eq!(
        mint("nope", json!({"ttl_ms": 60_000})).await.status,
        StatusCode::NOT_FOUND
    );
    for bad in [
        json!({"ttl_ms": 999}),
        json!({"ttl_ms": 2_592_000_001_u64}),
        json!({"ttl_ms": 60_000, "ops": []}),
        json!({"ttl_ms": 60_000, "ops": ["delete"]}),
        json!({"ttl_ms": 60_000, "extra": 1}),
        json!({}),
    ] {
        let r = mint("g", bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let r = mint("g", json!({"ttl_ms": 1000, "ops": ["commit", "admit", "commit"]})).await;
    assert_eq!(r.body["ops"], json!(["admit", "commit"]), "{}", r.body);
    let r = call(&st, "POST", "/v1/ns/app/gates/g/revoke", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = mint("g", json!({"ttl_ms": 60_000})).await;
    assert_eq!(
        (r.status, &r.body["code"]),
        (StatusCode::GONE, &json!("gate_closed")),
        "{}",
        r.body
    );
}

/// Every route × {capability of this gate, of another gate, expired,
/// tampered}: only the ticket operations of its own gate pass the door.
#[tokio::test]
async fn access_matrix_of_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir).await;
    let own = gate_and_capability(&st, "g", None).await;
    let other = gate_and_capability(&st, "h", None).await;
    let old = expired(&st, "g").await;
    let tampered = format!("{}x", own);
    let mut failures = Vec::new();
    for e in api::endpoints() {
        let (method, template) = (e.method(), e.path());
        let path = common::concrete(template, "g");
        let body = match method {
            "get" | "delete" => None,
            _ => Some(json!({})),
        };
        for (who, cap) in [
            ("own", &own),
            ("other gate", &other),
            ("expired", &old),
            ("tampered", &tampered),
        ] {
            let r = call(&st, &method.to_uppercase(), &path, Some(cap), body.clone()).await;
            let want: &[u16] = match who {
                "expired" | "tampered" => &[401],
                "other gate" => &[403],
                _ if is_ticket_route(method, template) => &[200, 201, 404],
                _ => &[403],
            };
            // Open routes (health, openapi) never look at credentials.
            let open = matches!(template, "/healthz" | "/readyz" | "/openapi.json");
            let ok = if open {
                r.status.is_success()
            } else {
                want.contains(&r.status.as_u16())
            };
            if !ok {
                failures.push(format!(
                    "{method} {template} with the {who} capability: {} {}",
                    r.status, r.body
                ));
            }
            if r.status == StatusCode::UNAUTHORIZED && r.headers.get(header::WWW_AUTHENTICATE).is_none() {
                failures.push(format!("{method} {template}: 401 without WWW-Authenticate"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// seeds/001: an upload with a capability runs admit → check → commit →
/// finalize; once the owner revokes, the old epoch's capability is 410 at
/// once (decided with the operation), also after a reopen; a new one works.
#[tokio::test]
async fn the_epoch_decides_with_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir).await;
    let cap = gate_and_capability(&st, "link", None).await;
    let t = "/v1/ns/app/gates/link/tickets";
    let r = call(&st, "POST", t, Some(&cap), Some(json!({"ticket_id": "u1"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for op in ["check", "commit"] {
        let r = call(&st, "POST", &format!("{t}/u1/{op}"), Some(&cap), None).await;
        assert_eq!(r.status, StatusCode::OK, "{op}: {}", r.body);
    }
    let r = call(&st, "POST", t, Some(&cap), Some(json!({"ticket_id": "u2"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The changes name the capability's gate as the actor.
    let log = call(&st, "GET", "/v1/ns/app/changes?kind=gate", None, None).await;
    assert!(log.body.to_string().contains("capability:link"), "{}", log.body);

    let r = call(&st, "POST", "/v1/ns/app/gates/link/revoke", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    for (method, path) in [
        ("POST", format!("{t}/u1/finalize")),
        ("POST", format!("{t}/u2/commit")),
        ("POST", t.to_owned()),
    ] {
        let r = call(&st, method, &path, Some(&cap), Some(json!({}))).await;
        assert_eq!(
            (r.status, &r.body["code"]),
            (StatusCode::GONE, &json!("gate_closed")),
            "{path}: {}",
            r.body
        );
    }
    let r = call(&st, "POST", "/v1/ns/app/gates/link/reopen", None, None).await;
    assert_eq!(r.body["epoch"], json!(3), "{}", r.body);
    let r = call(&st, "POST", t, Some(&cap), Some(json!({"ticket_id": "u3"}))).await;
    assert_eq!(
        r.status,
        StatusCode::GONE,
        "an old epoch's capability stays refused after reopen: {}",
        r.body
    );
    let r = call(
        &st,
        "POST",
        "/v1/ns/app/gates/link/capabilities",
        None,
        Some(json!({"ttl_ms": 60_000})),
    )
    .await;
    let fresh = r.body["capability"].as_str().unwrap().to_owned();
    assert_eq!(r.body["epoch"], json!(3));
    let r = call(&st, "POST", t, Some(&fresh), Some(json!({"ticket_id": "u3"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // A capability with fewer operations allows only those.
    let r = call(
        &st,
        "POST",
        "/v1/ns/app/gates/link/capabilities",
        None,
        Some(json!({"ttl_ms": 60_000, "ops": ["check"]})),
    )
    .await;
    let check_only = r.body["capability"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&st, "POST", &format!("{t}/u3/check"), Some(&check_only), None)
            .await
            .status,
        StatusCode::OK
    );
    let r = call(&st, "POST", &format!("{t}/u3/commit"), Some(&check_only), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

/// With tokens configured: writers mint in their namespaces, readers and
/// other namespaces' writers may not; a capability still works without a token.
#[tokio::test]
async fn capabilities_beside_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |name: &str, role, ns: &str, secret: &str| TokenSpec {
        name: name.into(),
        role,
        namespaces: vec![ns.into()],
        secret_sha256: secret_sha256_hex(secret),
    };
    let set = TokenSet::from_specs(&[
        spec("writer", Role::Writer, "app", "w-secret"),
        spec("reader", Role::Reader, "app", "r-secret"),
        spec("other", Role::Writer, "other", "o-secret"),
    ])
    .unwrap();
    let st = state(&dir).await.with_auth(Arc::new(Auth::new(set, false)));
    let cap = gate_and_capability(&st, "g", Some("w-secret")).await;
    for (secret, status) in [("r-secret", 403), ("o-secret", 403)] {
        let r = call(
            &st,
            "POST",
            "/v1/ns/app/gates/g/capabilities",
            Some(secret),
            Some(json!({"ttl_ms": 60_000})),
        )
        .await;
        assert_eq!(r.status.as_u16(), status, "{secret}: {}", r.body);
    }
    let r = call(
        &st,
        "POST",
        "/v1/ns/app/gates/g/tickets",
        Some(&cap),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // A capability cannot mint.
    let r = call(
        &st,
        "POST",
        "/v1/ns/app/gates/g/capabilities",
        Some(&cap),
        Some(json!({"ttl_ms": 60_000})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

#[tokio::test]
async fn cors_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let preflight = |st: AppState, origin: &'static str| async move {
        let req = Request::builder()
            .method("OPTIONS")
            .uri("/v1/ns/app/gates/g/tickets")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type, idempotency-key",
            )
            .body(Body::empty())
            .unwrap();
        lockstep_server::app(st).oneshot(req).await.unwrap()
    };
    let plain = state(&dir).await;
    let r = preflight(plain.clone(), "https://upload.example.com").await;
    assert!(
        r.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
        "no CORS unless configured"
    );

    let st = plain.with_cors(&["https://upload.example.com".into()]).unwrap();
    let r = preflight(st.clone(), "https://upload.example.com").await;
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(
        h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        "https://upload.example.com"
    );
    let allowed = h
        .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for needed in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(needed), "{allowed}");
    }
    let r = preflight(st.clone(), "https://evil.example.com").await;
    assert!(r.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    // A real request from the origin carries the header and exposes ours.
    let req = Request::builder()
        .method("GET")
        .uri("/healthz")
        .header(header::ORIGIN, "https://upload.example.com")
        .body(Body::empty())
        .unwrap();
    let r = lockstep_server::app(st.clone()).oneshot(req).await.unwrap();
    assert_eq!(
        r.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        "https://upload.example.com"
    );
    assert!(AppState::new(st.store.clone(), Limits::default())
        .with_cors(&["not an origin\n".into()])
        .is_err());
}
