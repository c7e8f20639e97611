//! The answers of the API conform to `/openapi.json` with tokens configured:
//! the conformance conversation as an admin; every operation as a caller the
//! door refuses (no token, an unknown one, a role or namespace too small:
//! 401 and 403) or lets in; and gate capabilities, on the ticket operations
//! they allow and on every other operation (403), expired or forged (401).
//! Each answer's status is listed for its operation, and its body matches the
//! documented schema. Also the helpers the status probes share.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::common::{ask, Ask, Seen};
use crate::openapi_schemas::{check, conversation};
use lockstep_core::capability::{self, CapOp, Claims};
use lockstep_core::Limits;
use lockstep_server::auth::{secret_sha256_hex, Auth, Role, TokenSet, TokenSpec};
use lockstep_server::{api, AppState};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) const ADMIN: &str = "admin-secret";
pub(crate) const WRITER: &str = "writer-secret";
const READER: &str = "reader-secret";
const OTHER: &str = "other-secret";
const UNKNOWN: &str = "lst_not-a-token-of-this-server";

/// A state over a fresh SQLite store with four tokens: a reader and a writer
/// of `app`, an admin of everything, a writer of `other-*`.
pub(crate) async fn token_state(dir: &tempfile::TempDir, limits: Limits) -> AppState {
    let spec = |name: &str, role, ns: &str, secret: &str| TokenSpec {
        name: name.into(),
        role,
        namespaces: vec![ns.into()],
        secret_sha256: secret_sha256_hex(secret),
    };
    let set = TokenSet::from_specs(&[
        spec("reader", Role::Reader, "app", READER),
        spec("writer", Role::Writer, "app", WRITER),
        spec("admin", Role::Admin, "*", ADMIN),
        spec("other", Role::Writer, "other-*", OTHER),
    ])
    .unwrap();
    common::sqlite_state(dir, limits)
        .await
        .with_auth(Arc::new(Auth::new(set, false)))
}

/// The document's path item of a route template.
pub(crate) fn path_item<'a>(doc: &'a Value, template: &str) -> &'a Value {
    &doc["paths"][template.replace("{*key}", "{key}")]
}

/// The `operationId` of `method template`.
pub(crate) fn op_id(doc: &Value, method: &str, template: &str) -> String {
    path_item(doc, template)[method]["operationId"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {template} is not in the document"))
        .to_owned()
}

/// A request of `method template` with a minimal body of the first media
/// type the document gives it, if it takes one.
pub(crate) fn minimal(doc: &Value, method: &str, template: &str, gate: &str) -> Ask {
    let a = Ask::new(method, common::concrete(template, gate));
    let content = &path_item(doc, template)[method]["requestBody"]["content"];
    match content.as_object().and_then(|c| c.keys().next()) {
        Some(ct) if ct == "application/json-patch+json" => a.body(ct, "[]"),
        Some(ct) => a.body(ct, "{}"),
        None => a,
    }
}

/// Every answer that does not match the document, one line each.
pub(crate) fn mismatches(doc: &Value, seen: &[Seen]) -> Vec<String> {
    seen.iter().filter_map(|s| check(doc, s).err()).collect()
}

/// How many answers had each status.
pub(crate) fn by_status(seen: &[Seen]) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for s in seen {
        *m.entry(s.status.as_u16()).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn answers_with_tokens_match_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let st = token_state(&dir, Limits::default()).await;
    let doc = api::openapi();
    // The conversation of the open-mode test, as the admin.
    let mut seen = conversation(&st, Some(ADMIN)).await;
    let conversed = seen.len();
    // Every operation, as each kind of caller.
    for e in api::endpoints() {
        let op = op_id(&doc, e.method(), e.path());
        for who in [None, Some(UNKNOWN), Some(READER), Some(OTHER), Some(WRITER)] {
            let a = minimal(&doc, e.method(), e.path(), "g").bearer(who);
            seen.push(ask(&st, &op, a).await);
        }
    }
    let problems = mismatches(&doc, &seen);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let counts = by_status(&seen);
    assert!(conversed > 80, "{conversed} answers in the conversation");
    assert!(
        counts[&401] >= 2 * (api::endpoints().len() - 3) && counts[&403] >= 20,
        "{counts:?}"
    );
    // The admin's conversation went past the door everywhere.
    let refused: Vec<_> = seen[..conversed]
        .iter()
        .filter(|s| matches!(s.status.as_u16(), 401 | 403))
        .map(|s| format!("{} {}", s.op, s.status))
        .collect();
    assert!(refused.is_empty(), "the admin was refused: {refused:?}");
}

/// A capability of gate `g` with `ops`, signed with the server's key,
/// expiring at `exp` (milliseconds).
async fn signed(st: &AppState, ops: Vec<CapOp>, exp: i64) -> String {
    let keys = st.capability_keys.get(&st.store).await.unwrap();
    let claims = Claims {
        ns: "app".into(),
        gate: "g".into(),
        epoch: 1,
        ops,
        exp,
    };
    capability::sign(&claims, &keys[0]).unwrap()
}

#[tokio::test]
async fn answers_to_capabilities_match_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let st = token_state(&dir, Limits::default()).await;
    let doc = api::openapi();
    let mut seen = Vec::new();
    let gates = "/v1/ns/app/gates/g";
    let tickets = format!("{gates}/tickets");
    let put = Ask::new("PUT", gates).bearer(Some(WRITER)).json(json!({}));
    seen.push(ask(&st, "putGate", put).await);
    let mint = Ask::new("POST", format!("{gates}/capabilities"))
        .bearer(Some(WRITER))
        .json(json!({"ttl_ms": 60_000}));
    let minted = ask(&st, "mintCapability", mint).await;
    let secret = minted.body["capability"].as_str().unwrap().to_owned();
    seen.push(minted);
    let cap = Some(secret.as_str());
    // A capability does not mint.
    let mint = Ask::new("POST", format!("{gates}/capabilities"))
        .bearer(cap)
        .json(json!({"ttl_ms": 60_000}));
    seen.push(ask(&st, "mintCapability", mint).await);
    // The ticket operations it allows, successes and refusals.
    for (op, method, path, body) in [
        ("admitTicket", "POST", tickets.clone(), json!({"ticket_id": "u1"})),
        ("admitTicket", "POST", tickets.clone(), json!({"ticket_id": "u1"})),
        ("ticketOp", "POST", format!("{tickets}/u1/check"), json!({})),
        ("ticketOp", "POST", format!("{tickets}/u1/commit"), json!({})),
        (
            "ticketOp",
            "POST",
            format!("{tickets}/u1/finalize"),
            json!({"append": {"feed": "f", "data": {"ok": true}}}),
        ),
        ("ticketOp", "POST", format!("{tickets}/u1/abort"), json!({})),
        ("ticketOp", "POST", format!("{tickets}/none/check"), json!({})),
        ("ticketOp", "POST", format!("{tickets}/u1/frob"), json!({})),
        (
            "admitTicket",
            "POST",
            tickets.clone(),
            json!({"ticket_id": "u2", "nope": 1}),
        ),
    ] {
        seen.push(ask(&st, op, Ask::new(method, path).bearer(cap).json(body)).await);
    }
    // Outside its gate and operations: 403 everywhere but the open routes.
    for e in api::endpoints() {
        let op = op_id(&doc, e.method(), e.path());
        let a = minimal(&doc, e.method(), e.path(), "h").bearer(cap);
        seen.push(ask(&st, &op, a).await);
    }
    let check_only = signed(&st, vec![CapOp::Check], i64::MAX).await;
    let a = Ask::new("POST", format!("{tickets}/u1/commit"))
        .bearer(Some(&check_only))
        .json(json!({}));
    seen.push(ask(&st, "ticketOp", a).await);
    // Expired, or forged: 401.
    let expired = signed(&st, CapOp::ALL.to_vec(), 1).await;
    let forged = format!("{secret}x");
    for bad in [&expired, &forged] {
        let a = Ask::new("POST", tickets.clone())
            .bearer(Some(bad))
            .json(json!({}));
        seen.push(ask(&st, "admitTicket", a).await);
    }
    // Paused (423), then revoked (410).
    for (transition, status) in [("pause", 423), ("revoke", 410)] {
        let a = Ask::new("POST", format!("{gates}/{transition}")).bearer(Some(WRITER));
        seen.push(ask(&st, "transitionGate", a).await);
        let a = Ask::new("POST", tickets.clone()).bearer(cap).json(json!({}));
        let s = ask(&st, "admitTicket", a).await;
        assert_eq!(s.status.as_u16(), status, "{}", s.body);
        seen.push(s);
    }
    let problems = mismatches(&doc, &seen);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let counts = by_status(&seen);
    for status in [200, 201, 400, 401, 403, 404, 409, 410, 423] {
        assert!(counts.contains_key(&status), "no {status}: {counts:?}");
    }
    assert!(counts[&403] >= api::endpoints().len() - 3, "{counts:?}");
}
