//! Every status the server answers is listed in `/openapi.json` for the
//! operation that answered it: each operation of the route table is probed
//! with what can go wrong whatever its handler does (a bad path, query,
//! media type, body, `Idempotency-Key` or precondition; storage down; a
//! token over its rate), and each answer's status, content type and body
//! are checked against the document. The methods a path does not have
//! answer 405 (or a refusal at the door), exactly as its
//! `x-lockstep-other-methods` member says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{ask, Ask, Seen};
use crate::openapi_auth::{by_status, minimal, mismatches, op_id, path_item, token_state, ADMIN, WRITER};
use crate::openapi_schemas::check_in;
use lockstep_core::Limits;
use lockstep_server::wire::openapi::{OTHER_METHODS, PATH_ITEM_METHODS};
use lockstep_server::{api, AppState};
use serde_json::Value;
use std::collections::BTreeSet;

/// A small body limit, so a body over it is cheap to send.
fn limits() -> Limits {
    Limits {
        body_bytes_max: 4096,
        ..Limits::default()
    }
}

/// A body over [`limits`]'s limit.
fn oversized() -> Vec<u8> {
    format!("{{\"value\": \"{}\"}}", "x".repeat(8192)).into_bytes()
}

/// The template with one path parameter replaced by `bad` (the namespace by
/// a name its pattern refuses).
fn bad_paths(template: &str) -> Vec<String> {
    let segs: Vec<&str> = template.split('/').collect();
    let mut out = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        if !seg.starts_with('{') {
            continue;
        }
        let bads: &[&str] = if *seg == "{ns}" {
            &["Bad!", "-x"]
        } else {
            &["%01", "%7F"]
        };
        for bad in bads {
            let mut s: Vec<String> = segs.iter().map(|s| (*s).to_owned()).collect();
            s[i] = (*bad).to_owned();
            out.push(crate::common::concrete(&s.join("/"), "g"));
        }
        let mut s: Vec<String> = segs.iter().map(|s| (*s).to_owned()).collect();
        s[i] = "k".repeat(600);
        out.push(crate::common::concrete(&s.join("/"), "g"));
    }
    out
}

/// The query parameters of an operation in the document.
fn query_params(op: &Value) -> Vec<String> {
    op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Whatever can go wrong with a request of `method template` whatever its
/// handler does, sent as the admin.
async fn probe(st: &AppState, doc: &Value, method: &str, template: &str) -> Vec<Seen> {
    let op = op_id(doc, method, template);
    let operation = &path_item(doc, template)[method];
    let has_body = operation.get("requestBody").is_some();
    let path = crate::common::concrete(template, "g");
    let mut asks = vec![
        minimal(doc, method, template, "g"),
        minimal(doc, method, template, "g").header("if-match", "\"999\""),
        minimal(doc, method, template, "g").header("if-none-match", "*"),
        minimal(doc, method, template, "g").header("if-match", "nonsense"),
        Ask::new(method, format!("{path}?zz=1")),
        Ask::new(method, format!("{path}?%ZZ")),
    ];
    for bad in bad_paths(template) {
        asks.push(Ask::new(method, bad));
    }
    for q in query_params(operation) {
        for bad in ["", "0", "x%01", "-1", "99999999999999999999"] {
            asks.push(Ask::new(method, format!("{path}?{q}={bad}")));
        }
    }
    if has_body {
        asks.push(Ask::new(method, path.clone()));
        asks.push(Ask::new(method, path.clone()).body("text/plain", "{}"));
        asks.push(Ask::new(method, path.clone()).body("application/json", "{"));
        asks.push(Ask::new(method, path.clone()).body("application/json", "[1]"));
        asks.push(Ask::new(method, path.clone()).body("application/json", oversized()));
    }
    if matches!(method, "post" | "put" | "patch" | "delete") {
        asks.push(minimal(doc, method, template, "g").header("idempotency-key", "a key"));
        asks.push(
            Ask::new(method, path.clone())
                .header("idempotency-key", "k-oversized")
                .body("application/json", oversized()),
        );
    }
    let mut seen = Vec::new();
    for a in asks {
        seen.push(ask(st, &op, a.bearer(Some(ADMIN))).await);
    }
    seen
}

#[tokio::test]
async fn every_status_answered_to_a_probe_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let st = token_state(&dir, limits()).await;
    let doc = api::openapi();
    let mut seen = Vec::new();
    for e in api::endpoints() {
        seen.extend(probe(&st, &doc, e.method(), e.path()).await);
    }
    let problems = mismatches(&doc, &seen);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let counts = by_status(&seen);
    for status in [400, 404, 413, 415] {
        assert!(counts.contains_key(&status), "no {status}: {counts:?}");
    }
    assert!(seen.len() > 500, "only {} probes", seen.len());
}

#[tokio::test]
async fn every_status_answered_with_storage_down_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let st = token_state(&dir, limits()).await;
    let doc = api::openapi();
    st.store.close().await.unwrap();
    let mut seen = Vec::new();
    for e in api::endpoints() {
        let op = op_id(&doc, e.method(), e.path());
        let a = minimal(&doc, e.method(), e.path(), "g").bearer(Some(ADMIN));
        seen.push(ask(&st, &op, a).await);
    }
    let problems = mismatches(&doc, &seen);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let counts = by_status(&seen);
    assert!(counts[&503] >= api::endpoints().len() / 2, "{counts:?}");
}

#[tokio::test]
async fn every_status_answered_over_the_rate_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        token_requests_per_s: 1,
        ..limits()
    };
    let st = token_state(&dir, limits).await;
    let doc = api::openapi();
    let mut seen = Vec::new();
    for e in api::endpoints() {
        let op = op_id(&doc, e.method(), e.path());
        // Spend the second's request, then ask again at once: 429, unless a
        // whole second went by in between (then whatever answers is checked).
        let _ = st.quotas.request("writer", 1);
        let a = minimal(&doc, e.method(), e.path(), "g").bearer(Some(WRITER));
        seen.push(ask(&st, &op, a).await);
    }
    let problems = mismatches(&doc, &seen);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(by_status(&seen).contains_key(&429), "{:?}", by_status(&seen));
}

#[tokio::test]
async fn other_methods_answer_what_the_path_item_says() {
    let dir = tempfile::tempdir().unwrap();
    let st = token_state(&dir, limits()).await;
    let (failures, seen) = other_methods(&st, &api::openapi()).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let counts = by_status(&seen);
    for status in [400, 401, 405, 413] {
        assert!(counts.contains_key(&status), "no {status}: {counts:?}");
    }
}

#[tokio::test]
async fn a_method_or_status_missing_from_the_path_item_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let st = token_state(&dir, limits()).await;
    let mut doc = api::openapi();
    let other = &mut doc["paths"]["/healthz"][OTHER_METHODS];
    other["methods"].as_array_mut().unwrap().retain(|m| m != "delete");
    other["responses"].as_object_mut().unwrap().remove("401");
    let (failures, _) = other_methods(&st, &doc).await;
    let text = failures.join("\n");
    assert!(
        text.contains("/healthz: delete is neither served nor listed"),
        "{text}"
    );
    assert!(text.contains("/healthz: status not in the document"), "{text}");
}

/// Sends every method each path does not have (as the admin, without a
/// token, with an unknown one, with a forged capability, with a bad
/// `Idempotency-Key` or a body over the limit) and checks the answers against
/// the path item's `x-lockstep-other-methods`; returns what is wrong and
/// every answer.
async fn other_methods(st: &AppState, doc: &Value) -> (Vec<String>, Vec<Seen>) {
    let templates: BTreeSet<&str> = api::endpoints().iter().map(|e| e.path()).collect();
    let mut seen = Vec::new();
    let mut failures = Vec::new();
    for template in &templates {
        let item = path_item(doc, template);
        let other = &item[OTHER_METHODS];
        let listed: BTreeSet<&str> = other["methods"]
            .as_array()
            .unwrap_or_else(|| panic!("{template}: no {OTHER_METHODS}"))
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        let path = crate::common::concrete(template, "g");
        let start = seen.len();
        for method in PATH_ITEM_METHODS {
            let served = item.get(method).is_some() || (method == "head" && item.get("get").is_some());
            if served {
                if listed.contains(method) {
                    failures.push(format!("{template}: {method} is served and listed as other"));
                }
                continue;
            }
            if !listed.contains(method) {
                failures.push(format!("{template}: {method} is neither served nor listed"));
            }
            let name = format!("{method} {template}");
            let admin = ask(st, &name, Ask::new(method, path.clone()).bearer(Some(ADMIN))).await;
            // A HEAD answer has no body.
            let code_ok = method == "head" || admin.body["code"] == "method_not_allowed";
            if admin.status.as_u16() != 405 || !code_ok {
                failures.push(format!("{name} as the admin: {} {}", admin.status, admin.body));
            }
            seen.push(admin);
            let query = Ask::new(method, format!("{path}?zz=1")).bearer(Some(ADMIN));
            seen.push(ask(st, &name, query).await);
            for who in [None, Some("lst_unknown"), Some("lsc_not-a-capability")] {
                seen.push(ask(st, &name, Ask::new(method, path.clone()).bearer(who)).await);
            }
            if matches!(method, "post" | "put" | "patch" | "delete") {
                let bad_key = Ask::new(method, path.clone())
                    .bearer(Some(ADMIN))
                    .header("idempotency-key", "a key");
                seen.push(ask(st, &name, bad_key).await);
                let big = Ask::new(method, path.clone())
                    .bearer(Some(ADMIN))
                    .header("idempotency-key", "k")
                    .body("application/json", oversized());
                seen.push(ask(st, &name, big).await);
            }
        }
        for s in &seen[start..] {
            if let Err(e) = check_in(doc, &other["responses"], &s.op, s) {
                failures.push(e);
            }
        }
    }
    (failures, seen)
}
