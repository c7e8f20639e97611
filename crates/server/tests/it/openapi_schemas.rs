//! The answers of the API conform to `/openapi.json`: representative requests
//! of every operation, successes and refusals, each answer validated against
//! the document's schema for that operation, status and content type; and a
//! mismatch planted in the document is caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, ask, Ask, Seen};
use axum::http::StatusCode;
use lockstep_core::Limits;
use lockstep_server::{api, AppState};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Sends one request with a body of the given media type (JSON when `None`),
/// with `Authorization: Bearer {bearer}` when given.
async fn send(
    st: &AppState,
    bearer: Option<&str>,
    op: &str,
    method: &str,
    path: &str,
    body: Option<(&str, Value)>,
) -> Seen {
    let a = Ask::new(method, path).bearer(bearer);
    let a = match body {
        Some((ct, b)) => a.body(ct, b.to_string()),
        None => a,
    };
    ask(st, op, a).await
}

/// Drives every operation through successes and refusals as an admin (in
/// open mode, `bearer` is `None`) and returns what was answered.
pub(crate) async fn conversation(st: &AppState, bearer: Option<&str>) -> Vec<Seen> {
    const J: &str = "application/json";
    let mut seen = Vec::new();
    macro_rules! go {
        ($op:literal, $m:literal, $p:expr) => {{
            let s = send(st, bearer, $op, $m, &$p, None).await;
            let b = s.body.clone();
            seen.push(s);
            b
        }};
        ($op:literal, $m:literal, $p:expr, $ct:expr, $b:expr) => {{
            let s = send(st, bearer, $op, $m, &$p, Some(($ct, $b))).await;
            let b = s.body.clone();
            seen.push(s);
            b
        }};
    }
    let ns = "/v1/ns/app";
    // System.
    go!("info", "GET", "/v1/info");
    go!("healthz", "GET", "/healthz");
    go!("readyz", "GET", "/readyz");
    go!("metrics", "GET", "/metrics");
    go!("openapi", "GET", "/openapi.json");
    // Records.
    go!(
        "putRecord",
        "PUT",
        format!("{ns}/records/k"),
        J,
        json!({"value": {"n": 1}})
    );
    go!(
        "putRecord",
        "PUT",
        format!("{ns}/records/k"),
        J,
        json!({"value": {"n": 2}, "ttl_ms": 60000})
    );
    go!(
        "putRecord",
        "PUT",
        format!("{ns}/records/k"),
        J,
        json!({"value": 1, "expected_version": 9})
    );
    go!(
        "putRecord",
        "PUT",
        format!("{ns}/records/k"),
        "text/plain",
        json!({"value": 1})
    );
    go!(
        "putRecord",
        "PUT",
        format!("{ns}/records/k"),
        J,
        json!({"value": 1, "nope": 1})
    );
    go!("getRecord", "GET", format!("{ns}/records/k"));
    go!("getRecord", "GET", format!("{ns}/records/absent"));
    go!(
        "patchRecord",
        "PATCH",
        format!("{ns}/records/k"),
        "application/merge-patch+json",
        json!({"m": true})
    );
    go!(
        "patchRecord",
        "PATCH",
        format!("{ns}/records/k"),
        "application/json-patch+json",
        json!([{"op": "test", "path": "/n", "value": 99}])
    );
    go!("listRecords", "GET", format!("{ns}/records?prefix=k&limit=10"));
    go!("listRecords", "GET", format!("{ns}/records?limit=0"));
    go!("listRecords", "GET", format!("{ns}/records?unknown=1"));
    go!(
        "txn",
        "POST",
        format!("{ns}/txn"),
        J,
        json!({
        "compare": [{"key": "k", "exists": true}],
        "success": [{"get": {"key": "k"}}, {"put": {"key": "t", "value": 1}}, {"incr": {"key": "c", "by": 2}},
                    {"delete": {"key": "t"}}, {"get": {"key": "absent"}}],
        "failure": []})
    );
    go!(
        "txn",
        "POST",
        format!("{ns}/txn"),
        J,
        json!({"success": [{"frob": {"key": "k"}}]})
    );
    go!(
        "deleteRecord",
        "DELETE",
        format!("{ns}/records/k?expected_version=1")
    );
    go!("deleteRecord", "DELETE", format!("{ns}/records/k"));
    go!("deleteRecord", "DELETE", format!("{ns}/records/k"));
    // Leases.
    let lease = go!(
        "acquireLease",
        "POST",
        format!("{ns}/leases/l/acquire"),
        J,
        json!({"ttl_ms": 60000, "holder": "me"})
    );
    let token = lease["token"].as_str().unwrap().to_owned();
    go!(
        "acquireLease",
        "POST",
        format!("{ns}/leases/l/acquire"),
        J,
        json!({"ttl_ms": 60000})
    );
    go!(
        "acquireLease",
        "POST",
        format!("{ns}/leases/l/acquire"),
        J,
        json!({"ttl_ms": 1})
    );
    go!(
        "renewLease",
        "POST",
        format!("{ns}/leases/l/renew"),
        J,
        json!({"token": token, "ttl_ms": 60000})
    );
    go!(
        "renewLease",
        "POST",
        format!("{ns}/leases/l/renew"),
        J,
        json!({"token": "wrong", "ttl_ms": 60000})
    );
    go!("getLease", "GET", format!("{ns}/leases/l"));
    go!(
        "releaseLease",
        "POST",
        format!("{ns}/leases/l/release"),
        J,
        json!({"token": token})
    );
    go!("getLease", "GET", format!("{ns}/leases/l"));
    go!("getLease", "GET", format!("{ns}/leases/never"));
    go!(
        "acquireLease",
        "POST",
        format!("{ns}/leases/l/acquire"),
        J,
        json!({"ttl_ms": 60000})
    );
    go!("breakLease", "POST", format!("{ns}/leases/l/break"));
    // Feeds.
    go!(
        "appendEntry",
        "POST",
        format!("{ns}/feeds/f/entries"),
        J,
        json!({"id": "e1", "data": {"a": 1}})
    );
    go!(
        "appendEntry",
        "POST",
        format!("{ns}/feeds/f/entries"),
        J,
        json!({"id": "e1", "data": {"a": 1}})
    );
    go!(
        "appendEntry",
        "POST",
        format!("{ns}/feeds/f/entries"),
        J,
        json!({"id": "e2", "data": 5})
    );
    go!(
        "listEntries",
        "GET",
        format!("{ns}/feeds/f/entries?order=asc&limit=5")
    );
    go!("getFeed", "GET", format!("{ns}/feeds/f"));
    go!(
        "configureFeed",
        "PUT",
        format!("{ns}/feeds/f"),
        J,
        json!({"max_entries": 10, "scrub": {"fields": ["a"], "after_ms": 1000}})
    );
    go!(
        "configureFeed",
        "PUT",
        format!("{ns}/feeds/f"),
        J,
        json!({"max_entries": 0})
    );
    go!(
        "configureFeedDefaults",
        "PUT",
        format!("{ns}/feed-defaults"),
        J,
        json!({"max_age_ms": 60000})
    );
    go!(
        "markRead",
        "POST",
        format!("{ns}/feeds/f/read"),
        J,
        json!({"all": true})
    );
    go!("markRead", "POST", format!("{ns}/feeds/f/read"), J, json!({}));
    go!(
        "importFeed",
        "POST",
        format!("{ns}/feeds/f/import"),
        J,
        json!([{"id": "e3", "data": {"b": 2}, "at": 1700000000000_u64}])
    );
    go!(
        "importFeed",
        "POST",
        format!("{ns}/feeds/f/import"),
        J,
        json!([{"data": {}}])
    );
    go!("listFeeds", "GET", format!("{ns}/feeds"));
    go!("deleteEntry", "DELETE", format!("{ns}/feeds/f/entries/e1"));
    // Gates, tickets, capabilities.
    go!(
        "putGate",
        "PUT",
        format!("{ns}/gates/g"),
        J,
        json!({"meta": {"x": 1}})
    );
    go!(
        "putGate",
        "PUT",
        format!("{ns}/gates/g"),
        J,
        json!({"policy": {"pending": "recover"}})
    );
    go!("getGate", "GET", format!("{ns}/gates/g"));
    go!("getGate", "GET", format!("{ns}/gates/none"));
    let t = go!(
        "admitTicket",
        "POST",
        format!("{ns}/gates/g/tickets"),
        J,
        json!({"meta": {"who": "a"}})
    );
    let ticket = t["ticket_id"].as_str().unwrap().to_owned();
    go!(
        "admitTicket",
        "POST",
        format!("{ns}/gates/g/tickets"),
        J,
        json!({"ticket_id": ticket})
    );
    go!(
        "ticketOp",
        "POST",
        format!("{ns}/gates/g/tickets/{ticket}/check"),
        J,
        json!({})
    );
    go!(
        "mintCapability",
        "POST",
        format!("{ns}/gates/g/capabilities"),
        J,
        json!({"ttl_ms": 60000, "ops": ["check"]})
    );
    go!(
        "mintCapability",
        "POST",
        format!("{ns}/gates/g/capabilities"),
        J,
        json!({"ttl_ms": 1})
    );
    go!("listTickets", "GET", format!("{ns}/gates/g/tickets?state=open"));
    go!("transitionGate", "POST", format!("{ns}/gates/g/pause"));
    go!(
        "admitTicket",
        "POST",
        format!("{ns}/gates/g/tickets"),
        J,
        json!({})
    );
    go!("transitionGate", "POST", format!("{ns}/gates/g/resume"));
    go!("transitionGate", "POST", format!("{ns}/gates/g/frob"));
    go!(
        "ticketOp",
        "POST",
        format!("{ns}/gates/g/tickets/{ticket}/commit"),
        J,
        json!({})
    );
    go!(
        "ticketOp",
        "POST",
        format!("{ns}/gates/g/tickets/{ticket}/finalize"),
        J,
        json!({"append": {"feed": "f", "data": {"done": true}}})
    );
    go!(
        "ticketOp",
        "POST",
        format!("{ns}/gates/g/tickets/{ticket}/commit"),
        J,
        json!({})
    );
    go!("deleteGate", "DELETE", format!("{ns}/gates/g"));
    go!("putGate", "PUT", format!("{ns}/gates/g"), J, json!({}));
    // The application's idempotency store.
    let idem = format!("{ns}/idempotency/s/k1");
    let b = go!(
        "beginIdempotency",
        "POST",
        idem,
        J,
        json!({"fingerprint": "f", "lock_ms": 60000})
    );
    let owner = b["token"].as_str().unwrap().to_owned();
    go!(
        "beginIdempotency",
        "POST",
        idem,
        J,
        json!({"fingerprint": "f", "lock_ms": 60000})
    );
    go!(
        "beginIdempotency",
        "POST",
        idem,
        J,
        json!({"fingerprint": "other", "lock_ms": 60000})
    );
    go!("getIdempotency", "GET", idem);
    go!(
        "completeIdempotency",
        "PUT",
        idem,
        J,
        json!({"token": "wrong", "response": {}})
    );
    go!(
        "completeIdempotency",
        "PUT",
        idem,
        J,
        json!({"token": owner, "response": {"ok": true}})
    );
    go!(
        "beginIdempotency",
        "POST",
        idem,
        J,
        json!({"fingerprint": "f", "lock_ms": 60000})
    );
    go!("getIdempotency", "GET", idem);
    go!("getIdempotency", "GET", format!("{ns}/idempotency/s/none"));
    let idem2 = format!("{ns}/idempotency/s/k2");
    let b = go!(
        "beginIdempotency",
        "POST",
        idem2,
        J,
        json!({"fingerprint": "f", "lock_ms": 60000})
    );
    let owner = b["token"].as_str().unwrap().to_owned();
    go!("giveUpIdempotency", "DELETE", idem2, J, json!({"token": owner}));
    go!("giveUpIdempotency", "DELETE", idem2, J, json!({"token": "wrong"}));
    // The change log.
    go!("listChanges", "GET", format!("{ns}/changes?limit=5&kind=record"));
    go!("listChanges", "GET", format!("{ns}/changes?after=x"));
    go!("watchChanges", "GET", format!("{ns}/watch?after=0"));
    go!("watchChanges", "GET", format!("{ns}/watch?kind=nope"));
    // Namespaces (admin).
    go!("listNamespaces", "GET", "/v1/namespaces?limit=10");
    go!("listNamespaces", "GET", "/v1/namespaces?cursor=bad");
    go!("deleteNamespace", "DELETE", ns);
    go!("deleteNamespace", "DELETE", "/v1/ns/Bad!");
    seen
}

/// The operation of `id` in the document.
pub(crate) fn operation<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .find(|op| op["operationId"] == id)
        .unwrap_or_else(|| panic!("no operation {id} in the document"))
}

/// Validates one answer against the document: the status is listed, the
/// content type is the one documented for it, and a JSON body matches its
/// schema. Returns what is wrong, if anything.
pub(crate) fn check(doc: &Value, s: &Seen) -> Result<(), String> {
    let what = format!("{} answered {}", s.op, s.status);
    let responses = &operation(doc, &s.op)["responses"];
    check_in(doc, responses, &what, s)
}

/// Validates one answer against a `responses` object of the document.
pub(crate) fn check_in(doc: &Value, responses: &Value, what: &str, s: &Seen) -> Result<(), String> {
    let response = &responses[s.status.as_str()];
    if !response.is_object() {
        return Err(format!("{what}: status not in the document"));
    }
    let media = s.content_type.split(';').next().unwrap_or_default().trim();
    let content = &response["content"][media];
    if !content.is_object() {
        return Err(format!("{what}: content type {media:?} not in the document"));
    }
    // A HEAD answer has no body.
    if !media.ends_with("json") || s.op.starts_with("head ") {
        return Ok(());
    }
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [content["schema"]],
    });
    let validator = jsonschema::validator_for(&schema).map_err(|e| format!("{what}: bad schema: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(&s.body).map(|e| e.to_string()).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: {}\nbody: {}", errors.join("; "), s.body))
    }
}

async fn document_and_answers() -> (Value, Vec<Seen>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let st = common::sqlite_state(&dir, Limits::default()).await;
    let doc = send(&st, None, "openapi", "GET", "/openapi.json", None)
        .await
        .body;
    let seen = conversation(&st, None).await;
    (doc, seen, dir)
}

#[tokio::test]
async fn every_answer_matches_the_documents_schema() {
    let (doc, seen, _dir) = document_and_answers().await;
    let problems: Vec<String> = seen.iter().filter_map(|s| check(&doc, s).err()).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every operation was exercised, with a success and a refusal where one
    // can be provoked.
    let asked: BTreeSet<&str> = seen.iter().map(|s| s.op.as_str()).collect();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().iter())
        .filter(|(k, _)| !k.starts_with("x-"))
        .map(|(_, op)| op["operationId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(documented.len(), api::endpoints().len());
    let missing: Vec<&String> = documented
        .iter()
        .filter(|id| !asked.contains(id.as_str()))
        .collect();
    assert!(missing.is_empty(), "operations not exercised: {missing:?}");
    let successes = seen.iter().filter(|s| s.status.is_success()).count();
    let refusals = seen.iter().filter(|s| s.status.is_client_error()).count();
    assert!(
        successes > 40 && refusals > 20,
        "{successes} successes, {refusals} refusals"
    );
}

#[tokio::test]
async fn a_mismatch_planted_in_the_document_is_caught() {
    let (mut doc, seen, _dir) = document_and_answers().await;
    // The document says a put's version is a string; the server sends a number.
    doc["components"]["schemas"]["RecordPut"]["properties"]["version"] = json!({"type": "string"});
    // And that a problem's code is never `not_found`.
    let codes = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
        .as_array_mut()
        .unwrap();
    codes.retain(|c| c != "not_found");
    let put = seen
        .iter()
        .find(|s| s.op == "putRecord" && s.status == StatusCode::CREATED)
        .unwrap();
    let err = check(&doc, put).unwrap_err();
    assert!(err.contains("version"), "{err}");
    let missing = seen
        .iter()
        .find(|s| s.op == "getRecord" && s.status == StatusCode::NOT_FOUND)
        .unwrap();
    assert!(check(&doc, missing).is_err());
    // An undocumented status is caught too.
    doc["paths"]["/v1/ns/{ns}/records/{key}"]["get"]["responses"]
        .as_object_mut()
        .unwrap()
        .remove("404");
    assert!(check(&doc, missing)
        .unwrap_err()
        .contains("status not in the document"));
}

#[test]
fn the_txn_schema_takes_every_compare_and_refuses_what_the_server_refuses() {
    use lockstep_core::txn::{Compare, Op, Txn};
    let doc = api::openapi();
    let body = &doc["paths"]["/v1/ns/{ns}/txn"]["post"]["requestBody"]["content"]["application/json"];
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [body["schema"]],
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    // A typed transaction with every kind of compare, as a client sends it.
    let typed = Txn {
        compare: vec![
            Compare::Version {
                key: "a".into(),
                version: 0,
            },
            Compare::Exists {
                key: "a".into(),
                exists: true,
            },
            Compare::Value {
                key: "a".into(),
                value: json!({"x": [null]}),
            },
            Compare::Lease {
                name: "l".into(),
                token: "t".into(),
            },
            Compare::Fence {
                resource: "r".into(),
                token: 3,
            },
        ],
        success: vec![Op::put("a", json!(1)), Op::incr("n", -1), Op::delete("b")],
        failure: vec![Op::get("a"), Op::patch("a", json!({"y": 2}))],
    };
    let wire = serde_json::to_value(&typed).unwrap();
    let errors: Vec<String> = validator.iter_errors(&wire).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{wire}");
    assert_eq!(serde_json::from_value::<Txn>(wire).unwrap(), typed);
    // What the server's parse refuses, the schema refuses.
    for bad in [
        json!({"key": "a"}),
        json!({"key": "a", "version": 1, "exists": true}),
        json!({"key": "a", "version": -1}),
        json!({"key": "a", "exists": "yes"}),
        json!({"key": "a", "nope": 1}),
        json!({"key": 1, "value": 1}),
        json!({"lease": "a"}),
        json!({"lease": "a", "token": ""}),
        json!({"lease": "a", "token": 5}),
        json!({"fence": {"resource": "r", "token": -1}}),
        json!({"fence": {"resource": "r"}}),
        json!({"fence": {"resource": "r", "token": 1}, "key": "a"}),
    ] {
        let txn = json!({"compare": [bad]});
        assert!(serde_json::from_value::<Txn>(txn.clone()).is_err(), "{txn}");
        assert!(!validator.is_valid(&txn), "{txn}");
    }
}
