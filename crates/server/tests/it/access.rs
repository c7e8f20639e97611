//! The access matrix of SPEC §11, generated from the route table: every route
//! × {no token, wrong token, reader, writer, admin, writer of another
//! namespace} answers what its access rule says, in process (no sockets).
//! Also: the 401 shape, admin-only features inside write routes, the change
//! log's actor, namespace globs, and open mode.

#![allow(clippy::unwrap_used)]

use crate::common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::Answer;
use lockstep_core::Limits;
use lockstep_server::auth::{secret_sha256_hex, Access, Auth, Role, TokenSet, TokenSpec};
use lockstep_server::{api, AppState};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    NoToken,
    WrongToken,
    Reader,
    Writer,
    Admin,
    OtherWriter,
}

const EVERYONE: [Who; 6] = [
    Who::NoToken,
    Who::WrongToken,
    Who::Reader,
    Who::Writer,
    Who::Admin,
    Who::OtherWriter,
];

impl Who {
    fn secret(self) -> Option<&'static str> {
        match self {
            Who::NoToken => None,
            Who::WrongToken => Some("lst_not-a-token-of-this-server"),
            Who::Reader => Some("reader-secret"),
            Who::Writer => Some("writer-secret"),
            Who::Admin => Some("admin-secret"),
            Who::OtherWriter => Some("other-secret"),
        }
    }
}

/// What the matrix expects.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Past the door: anything but 401 and 403 (the handler decides).
    Allowed,
    /// Refused with this status.
    Refused(u16),
}

/// The documented rule (docs/configuration.md, "Access").
fn expected(access: Access, who: Who) -> Expect {
    use Expect::*;
    match (access, who) {
        (Access::Open, _) => Allowed,
        (_, Who::NoToken | Who::WrongToken) => Refused(401),
        (Access::Token, _) => Allowed,
        (_, Who::Admin) => Allowed,
        (Access::Read, Who::Reader | Who::Writer) => Allowed,
        (Access::Write, Who::Writer) => Allowed,
        _ => Refused(403),
    }
}

fn spec(name: &str, role: Role, ns: &[&str], secret: &str) -> TokenSpec {
    TokenSpec {
        name: name.into(),
        role,
        namespaces: ns.iter().map(|s| (*s).to_owned()).collect(),
        secret_sha256: secret_sha256_hex(secret),
    }
}

async fn state(dir: &tempfile::TempDir, auth: Option<Auth>) -> AppState {
    let st = common::sqlite_state(dir, Limits::default()).await;
    match auth {
        Some(a) => st.with_auth(Arc::new(a)),
        None => st,
    }
}

fn tokens() -> Auth {
    let set = TokenSet::from_specs(&[
        spec("reader", Role::Reader, &["app"], "reader-secret"),
        spec("writer", Role::Writer, &["app", "app-*"], "writer-secret"),
        spec("admin", Role::Admin, &["*"], "admin-secret"),
        spec("other", Role::Writer, &["other-*"], "other-secret"),
    ])
    .unwrap();
    Auth::new(set, false)
}

async fn call(st: &AppState, method: &str, path: &str, who: Who, body: Option<Value>) -> Answer {
    common::call(st, method, path, who.secret(), body).await
}

#[test]
fn every_endpoint_declares_its_access() {
    for e in api::endpoints() {
        assert!(
            e.access_rule().is_some(),
            "{} {} has no .access(…) in the route table",
            e.method(),
            e.path()
        );
    }
}

#[tokio::test]
async fn access_matrix_of_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir, Some(tokens())).await;
    let mut checked = 0;
    for e in api::endpoints() {
        let access = e.access_rule().unwrap_or(Access::Admin);
        let path = common::concrete(e.path(), "x");
        for who in EVERYONE {
            let a = call(&st, e.method(), &path, who, None).await;
            let got = match a.status.as_u16() {
                s @ (401 | 403) => Expect::Refused(s),
                _ => Expect::Allowed,
            };
            assert_eq!(
                got,
                expected(access, who),
                "{} {path} ({access:?}) as {who:?}: {} {}",
                e.method(),
                a.status,
                a.body
            );
            checked += 1;
        }
    }
    assert!(checked >= 6 * 30, "only {checked} cases");
}

#[tokio::test]
async fn refusals_are_problems_with_a_bearer_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir, Some(tokens())).await;
    for who in [Who::NoToken, Who::WrongToken] {
        let a = call(&st, "get", "/v1/ns/app/records/k", who, None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.body["code"], "unauthorized");
        assert_eq!(a.headers[header::CONTENT_TYPE], "application/problem+json");
        let challenge = a.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    let a = call(
        &st,
        "put",
        "/v1/ns/app/records/k",
        Who::Reader,
        Some(json!({"value": 1})),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["code"], "forbidden");
    assert!(a.headers.get(header::WWW_AUTHENTICATE).is_none());
    // Another scheme, or an empty bearer, is no token.
    for value in ["Basic d3JpdGVyLXNlY3JldA==", "Bearer ", "writer-secret"] {
        let req = Request::builder()
            .uri("/v1/ns/app/records/k")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .unwrap();
        let resp = lockstep_server::app(st.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{value}");
    }
    // The scheme is case-insensitive (RFC 9110).
    let req = Request::builder()
        .uri("/v1/ns/app/records/k")
        .header(header::AUTHORIZATION, "bearer writer-secret")
        .body(Body::empty())
        .unwrap();
    let resp = lockstep_server::app(st.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn head_and_unknown_methods_need_a_token_too() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir, Some(tokens())).await;
    let a = call(
        &st,
        "put",
        "/v1/ns/app/records/k",
        Who::Writer,
        Some(json!({"value": 1})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    // HEAD runs the GET handler: it has GET's rule.
    for (who, status) in [(Who::NoToken, 401), (Who::OtherWriter, 403), (Who::Reader, 200)] {
        let a = call(&st, "head", "/v1/ns/app/records/k", who, None).await;
        assert_eq!(a.status.as_u16(), status, "HEAD as {who:?}");
    }
    let a = call(&st, "head", "/healthz", Who::NoToken, None).await;
    assert_eq!(a.status, StatusCode::OK);
    // A method the route does not have: a token first, then 405.
    let a = call(&st, "post", "/v1/ns/app/records/k", Who::NoToken, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = call(&st, "post", "/v1/ns/app/records/k", Who::Reader, None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    // An unknown path is a 404 for anyone.
    let a = call(&st, "get", "/v1/nothing", Who::NoToken, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admin_only_features_inside_write_routes() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir, Some(tokens())).await;
    let forced = json!({"value": 2, "expected_version": 99, "force": true});
    let a = call(
        &st,
        "put",
        "/v1/ns/app/records/k",
        Who::Writer,
        Some(forced.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let a = call(&st, "put", "/v1/ns/app/records/k", Who::Admin, Some(forced)).await;
    assert!(a.status.is_success(), "{}", a.body);

    let a = call(&st, "put", "/v1/ns/app/gates/g", Who::Writer, Some(json!({}))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let a = call(&st, "post", "/v1/ns/app/gates/g/delete", Who::Writer, None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let a = call(&st, "post", "/v1/ns/app/gates/g/pause", Who::Writer, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = call(&st, "post", "/v1/ns/app/gates/g/delete", Who::Admin, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let a = call(&st, "post", "/v1/ns/app/leases/l/break", Who::Writer, None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = call(&st, "delete", "/v1/ns/app", Who::Writer, None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_change_log_names_the_token_and_globs_select_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir, Some(tokens())).await;
    for (ns, who, status) in [
        ("app", Who::Writer, 201),
        ("app-eu", Who::Writer, 201),
        ("apps", Who::Writer, 403),
        ("app-eu", Who::Reader, 403),
        ("other-1", Who::OtherWriter, 201),
        ("app", Who::OtherWriter, 403),
        ("anything", Who::Admin, 201),
    ] {
        let path = format!("/v1/ns/{ns}/records/k");
        let a = call(&st, "put", &path, who, Some(json!({"value": 1}))).await;
        assert_eq!(a.status.as_u16(), status, "{who:?} in {ns}: {}", a.body);
    }
    let a = call(&st, "get", "/v1/ns/app-eu/changes", Who::Writer, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["changes"][0]["actor"], "writer", "{}", a.body);
    let a = call(&st, "get", "/v1/ns/anything/changes", Who::Admin, None).await;
    assert_eq!(a.body["changes"][0]["actor"], "admin", "{}", a.body);
}

#[tokio::test]
async fn open_mode_makes_every_caller_an_anonymous_admin() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir, None).await;
    for e in api::endpoints() {
        let a = call(
            &st,
            e.method(),
            &common::concrete(e.path(), "x"),
            Who::NoToken,
            None,
        )
        .await;
        assert!(
            !matches!(a.status.as_u16(), 401 | 403),
            "{} {}: {}",
            e.method(),
            e.path(),
            a.status
        );
    }
    let a = call(
        &st,
        "put",
        "/v1/ns/o/records/k",
        Who::NoToken,
        Some(json!({"value": 1, "force": true})),
    )
    .await;
    assert!(a.status.is_success(), "{}", a.body);
    let a = call(&st, "get", "/v1/ns/o/changes", Who::NoToken, None).await;
    assert_eq!(a.body["changes"][0]["actor"], "anonymous", "{}", a.body);
}

#[tokio::test]
async fn a_replaced_token_set_takes_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Arc::new(tokens());
    let st = state(&dir, None).await.with_auth(auth.clone());
    let a = call(&st, "get", "/v1/ns/app/records/k", Who::Reader, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let fewer = TokenSet::from_specs(&[spec("admin", Role::Admin, &["*"], "admin-secret")]).unwrap();
    auth.replace(fewer).unwrap();
    let a = call(&st, "get", "/v1/ns/app/records/k", Who::Reader, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // A network listener never falls back to open mode.
    assert!(auth.replace(TokenSet::default()).is_err());
    let a = call(&st, "get", "/v1/ns/app/records/k", Who::Admin, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_tells_each_operations_access() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir, Some(tokens())).await;
    let a = call(&st, "get", "/openapi.json", Who::NoToken, None).await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.body;
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let put = &doc["paths"]["/v1/ns/{ns}/records/{key}"]["put"];
    assert_eq!(put["x-lockstep-access"], "writer");
    assert!(put["responses"]["401"].is_object() && put["responses"]["403"].is_object());
    let health = &doc["paths"]["/healthz"]["get"];
    assert_eq!(health["x-lockstep-access"], "open");
    assert_eq!(health["security"], json!([]));
    assert!(health["responses"]["401"].is_null());
    let info = &doc["paths"]["/v1/info"]["get"];
    // Any token passes; a gate capability does not (403: ticket operations only).
    assert!(info["responses"]["401"].is_object() && info["responses"]["403"].is_object());
    for e in api::endpoints() {
        let path = e.path().replace("{*key}", "{key}");
        let op = &doc["paths"][path.as_str()][e.method()];
        assert_eq!(
            op["x-lockstep-access"],
            e.access_rule().unwrap_or(Access::Admin).as_str(),
            "{} {path}",
            e.method()
        );
    }
}
