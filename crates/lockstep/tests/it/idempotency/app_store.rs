//! Case 5: the application idempotency store.

#![allow(clippy::unwrap_used)]

use super::*;

pub(super) fn app(scope: &str, key: &str) -> String {
    path(&format!("/idempotency/{scope}/{key}"))
}

#[track_caller]
pub(super) fn started_token(r: &Resp, what: &str) -> String {
    assert_eq!(r.status, 201, "{what}: {}", r.text);
    assert_eq!(r.body["state"], json!("started"), "{what}: {}", r.text);
    let token = r.body["token"].as_str().unwrap_or_default().to_owned();
    assert!(!token.is_empty(), "{what}: a token: {}", r.text);
    token
}

pub(super) async fn application_store(url: String) {
    let server = Server::start_manual(&url);
    let h = Http::new(&server.url);
    let k1 = app("checkout", "order-1");
    let f1 = json!({"fingerprint": "sha256:aaa", "lock_ms": 30_000});
    let f2 = json!({"fingerprint": "sha256:bbb", "lock_ms": 30_000});

    let token = started_token(&h.json("POST", &k1, &f1).await, "first begin");
    // Reading a key tells its state, never the owner's token.
    let r = h.get(&k1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.body["state"], &r.body["stale"]),
        (&json!("started"), &json!(false)),
        "{}",
        r.text
    );
    assert!(r.body["locked_until"].is_string(), "{}", r.text);
    assert!(
        !r.text.contains(&token),
        "the owner's token is never shown: {}",
        r.text
    );
    assert_problem(
        &h.get(&app("checkout", "never")).await,
        404,
        "not_found",
        "an unknown key",
    );
    assert_problem(
        &h.json("POST", &k1, &f1).await,
        409,
        "idempotency_key_in_use",
        "begin while started",
    );
    assert_problem(
        &h.json("POST", &k1, &f2).await,
        422,
        "idempotency_key_reused",
        "another fingerprint while started",
    );
    assert_problem(
        &h.json("PUT", &k1, &json!({"token": "not-the-owner", "response": {}}))
            .await,
        409,
        "lease_lost",
        "complete by a stranger",
    );
    assert_problem(
        &h.json("DELETE", &k1, &json!({"token": "not-the-owner"})).await,
        409,
        "lease_lost",
        "give up by a stranger",
    );
    let stored = json!({"order": 42, "lines": [1, 2], "note": null});
    let r = h
        .json("PUT", &k1, &json!({"token": token, "response": stored}))
        .await;
    assert_eq!(r.status, 200, "complete: {}", r.text);
    assert_eq!(r.body["state"], json!("completed"), "{}", r.text);
    let r = h.get(&k1).await;
    assert_eq!(
        (&r.body["state"], &r.body["response"]),
        (&json!("completed"), &stored),
        "{}",
        r.text
    );
    for _ in 0..2 {
        let r = h.json("POST", &k1, &f1).await;
        assert_eq!(r.status, 200, "replay: {}", r.text);
        assert_eq!(r.body["state"], json!("completed"), "{}", r.text);
        assert_eq!(r.body["response"], stored, "{}", r.text);
    }
    assert_problem(
        &h.json("POST", &k1, &f2).await,
        422,
        "idempotency_key_reused",
        "another fingerprint once completed",
    );
    assert_problem(
        &h.json("PUT", &k1, &json!({"token": token, "response": {"again": 1}}))
            .await,
        409,
        "lease_lost",
        "complete twice",
    );
    assert_problem(
        &h.json("DELETE", &k1, &json!({"token": token})).await,
        409,
        "lease_lost",
        "give up once completed",
    );
    assert_eq!(
        h.json("POST", &k1, &f1).await.body["response"],
        stored,
        "refusals change nothing"
    );
    // Scopes are independent, and independent of the header's scopes.
    started_token(
        &h.json("POST", &app("refunds", "order-1"), &f2).await,
        "the same key in another scope",
    );

    // Takeover once lock_ms ran out; the stale owner is refused.
    let k2 = app("checkout", "order-2");
    let short = json!({"fingerprint": "sha256:aaa", "lock_ms": 200});
    let stale = started_token(&h.json("POST", &k2, &short).await, "short lock");
    assert_problem(
        &h.json("POST", &k2, &short).await,
        409,
        "idempotency_key_in_use",
        "within the lock",
    );
    // The store's clock (manual) reaches the end of the lock: in use until then.
    server.clock.advance(199);
    assert_problem(
        &h.json("POST", &k2, &short).await,
        409,
        "idempotency_key_in_use",
        "a millisecond before the lock runs out",
    );
    server.clock.advance(1);
    let fresh = started_token(&h.json("POST", &k2, &short).await, "takeover");
    assert_ne!(stale, fresh, "the new owner has a new token");
    assert_problem(
        &h.json("PUT", &k2, &json!({"token": stale, "response": "stale"}))
            .await,
        409,
        "lease_lost",
        "the stale owner completes",
    );
    assert_problem(
        &h.json("DELETE", &k2, &json!({"token": stale})).await,
        409,
        "lease_lost",
        "the stale owner gives up",
    );
    let r = h
        .json("PUT", &k2, &json!({"token": fresh, "response": "fresh"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.json("POST", &k2, &short).await.body["response"], json!("fresh"));

    // Give up, then a retry owns the key again.
    let k3 = app("checkout", "order-3");
    let t1 = started_token(&h.json("POST", &k3, &f1).await, "begin");
    let r = h.json("DELETE", &k3, &json!({"token": t1})).await;
    assert_eq!(r.status, 200, "give up: {}", r.text);
    assert_eq!(r.body["released"], json!(true), "{}", r.text);
    let t2 = started_token(&h.json("POST", &k3, &f1).await, "retry after give up");
    assert_ne!(t1, t2);
    assert_problem(
        &h.json("DELETE", &k3, &json!({"token": t1})).await,
        409,
        "lease_lost",
        "giving up twice",
    );

    // The application store's writes are changes of kind idempotency, keyed
    // by the caller's scope and key.
    let changes = h
        .get(&path("/changes?kind=idempotency&prefix=checkout/order-"))
        .await;
    assert_eq!(changes.status, 200, "{}", changes.text);
    let seen: Vec<(String, String)> = changes.body["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", changes.text))
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["op"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("order-1", "start"),
        ("order-1", "complete"),
        ("order-2", "start"),
        ("order-2", "start"),
        ("order-2", "complete"),
        ("order-3", "start"),
        ("order-3", "release"),
        ("order-3", "start"),
    ]
    .iter()
    .map(|(k, op)| (format!("checkout/{k}"), (*op).to_owned()))
    .collect();
    assert_eq!(seen, expected, "{}", changes.text);

    // Bad input: 400, and nothing started.
    let kb = app("checkout", "bad");
    for (what, method, body) in [
        ("missing fingerprint", "POST", json!({"lock_ms": 1000})),
        ("missing lock_ms", "POST", json!({"fingerprint": "f"})),
        ("lock_ms 0", "POST", json!({"fingerprint": "f", "lock_ms": 0})),
        ("lock_ms 99", "POST", json!({"fingerprint": "f", "lock_ms": 99})),
        (
            "lock_ms over a day",
            "POST",
            json!({"fingerprint": "f", "lock_ms": 86_400_001u64}),
        ),
        (
            "empty fingerprint",
            "POST",
            json!({"fingerprint": "", "lock_ms": 1000}),
        ),
        (
            "unknown field",
            "POST",
            json!({"fingerprint": "f", "lock_ms": 1000, "ttl_ms": 5}),
        ),
        ("not an object", "POST", json!(["f", 1000])),
        ("empty token", "PUT", json!({"token": "", "response": 1})),
        ("missing response", "PUT", json!({"token": "abc"})),
        (
            "unknown field",
            "PUT",
            json!({"token": "abc", "response": 1, "status": 200}),
        ),
        ("empty token", "DELETE", json!({"token": ""})),
        ("unknown field", "DELETE", json!({"token": "abc", "why": "x"})),
        ("missing token", "DELETE", json!({})),
    ] {
        let r = h.json(method, &kb, &body).await;
        assert_problem(&r, 400, "invalid_request", &format!("{method} with {what}"));
    }
    let r = h
        .send(
            h.req("POST", &kb)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_problem(&r, 400, "invalid_request", "malformed JSON");
    // The smallest lock is accepted; the bad requests started nothing.
    started_token(
        &h.json("POST", &kb, &json!({"fingerprint": "f", "lock_ms": 100}))
            .await,
        "lock_ms 100 after the bad requests",
    );
}
