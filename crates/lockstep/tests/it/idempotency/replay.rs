//! Case 4: replay semantics per endpoint, and the fingerprint.

#![allow(clippy::unwrap_used)]

use super::*;

pub(super) async fn replay_semantics_per_endpoint(url: String) {
    let server = Server::start(&url);
    let h = Http::new(&server.url);

    // PUT of a record: 201 replayed with the same ETag and body; applied once.
    let body = json!({"value": {"a": 1}});
    let first = keyed(&h, "PUT", &rec("r1"), "put-1", &body).await;
    assert_fresh(&first, 201, "keyed PUT");
    let version = first.u64("version");
    assert_eq!(first.header("etag"), Some(format!("\"{version}\"").as_str()));
    let again = keyed(&h, "PUT", &rec("r1"), "put-1", &body).await;
    assert_replay_of(&again, &first, "PUT replay");
    assert_eq!(h.get(&rec("r1")).await.u64("version"), version, "applied once");

    // The same key with a different body: 422, nothing applied.
    let r = keyed(&h, "PUT", &rec("r1"), "put-1", &json!({"value": {"a": 2}})).await;
    assert_problem(&r, 422, "idempotency_key_reused", "another body");
    assert_eq!(h.get(&rec("r1")).await.body["value"], json!({"a": 1}));

    // The same key on another path, or with another method: another scope.
    let r = keyed(&h, "PUT", &rec("r2"), "put-1", &body).await;
    assert_fresh(&r, 201, "the same key on another path");
    let r = keyed_empty(&h, "DELETE", &rec("r2"), "put-1").await;
    assert_fresh(&r, 200, "the same key with another method");
    assert_eq!(h.get(&rec("r2")).await.status, 404);

    // A 409 version_mismatch is stored and replayed, even once the request
    // would now succeed.
    let vm = json!({"value": "v2", "expected_version": 0});
    let first = keyed(&h, "PUT", &rec("r1"), "vm-1", &vm).await;
    assert_problem(
        &first,
        409,
        "version_mismatch",
        "expected_version 0 on an existing record",
    );
    assert_eq!(first.body["current"]["version"], json!(version));
    assert_eq!(h.send(h.req("DELETE", &rec("r1"))).await.status, 200);
    let again = keyed(&h, "PUT", &rec("r1"), "vm-1", &vm).await;
    assert_replay_of(&again, &first, "version_mismatch replay");
    assert_eq!(again.code(), Some("version_mismatch"));
    assert_eq!(h.get(&rec("r1")).await.status, 404, "the replay applied nothing");

    // A 404 is stored too.
    let first = keyed_empty(&h, "DELETE", &rec("nope"), "del-404").await;
    assert_problem(&first, 404, "not_found", "keyed DELETE of an absent record");
    assert_eq!(
        h.json("PUT", &rec("nope"), &json!({"value": 1})).await.status,
        201
    );
    let again = keyed_empty(&h, "DELETE", &rec("nope"), "del-404").await;
    assert_replay_of(&again, &first, "404 replay");
    assert_eq!(
        h.get(&rec("nope")).await.status,
        200,
        "the replay deleted nothing"
    );

    // A PATCH replays, applying once.
    assert_eq!(h.json("PUT", &rec("p"), &json!({"value": [1]})).await.status, 201);
    let patch = json!([{"op": "add", "path": "/-", "value": 2}]);
    let patch_req = |key: &str| {
        h.req("PATCH", &rec("p"))
            .header("content-type", "application/json-patch+json")
            .header("idempotency-key", key)
            .body(patch.to_string())
    };
    let first = h.send(patch_req("patch-1")).await;
    assert_fresh(&first, 200, "keyed PATCH");
    let again = h.send(patch_req("patch-1")).await;
    assert_replay_of(&again, &first, "PATCH replay");
    assert_eq!(
        h.get(&rec("p")).await.body["value"],
        json!([1, 2]),
        "applied once"
    );

    // The structured-field string and the bare form name the same key.
    let first = keyed(&h, "PUT", &rec("r3"), "\"sf-1\"", &body).await;
    assert_fresh(&first, 201, "a structured-field key");
    let again = keyed(&h, "PUT", &rec("r3"), "sf-1", &body).await;
    assert_replay_of(&again, &first, "the bare form of the same key");
    let r = keyed(&h, "PUT", &rec("r5"), r#""with \"escaped\" quotes""#, &body).await;
    assert_fresh(&r, 201, "a structured-field key with escapes");

    // Malformed keys: 400, nothing applied.
    let long = "x".repeat(256);
    for bad in [
        "\"unterminated",
        "with space",
        long.as_str(),
        "\"\"",
        "\"",
        "a\"b",
        "\"bad \\n escape\"",
        "caf\u{e9}",
        "\u{96e8}",
    ] {
        let r = keyed(&h, "PUT", &rec("bad"), bad, &json!({"value": 1})).await;
        assert_problem(&r, 400, "invalid_request", &format!("Idempotency-Key {bad:?}"));
    }
    assert_eq!(
        h.get(&rec("bad")).await.status,
        404,
        "malformed keys apply nothing"
    );
    // 255 characters are accepted, bare and as a string.
    let max = "y".repeat(255);
    let first = keyed(&h, "PUT", &rec("r4"), &max, &body).await;
    assert_fresh(&first, 201, "a 255-character key");
    let again = keyed(&h, "PUT", &rec("r4"), &format!("\"{max}\""), &body).await;
    assert_replay_of(&again, &first, "a 255-character key, replayed");
    // Reads ignore the header.
    let r = h
        .send(h.req("GET", &rec("r3")).header("idempotency-key", "with space"))
        .await;
    assert_eq!(r.status, 200, "a GET ignores Idempotency-Key: {}", r.text);

    // Lease acquire: the replay is the same grant (token and fence).
    let acquire = json!({"ttl_ms": 60_000, "holder": "worker-1"});
    let lease = path("/leases/job/acquire");
    let first = keyed(&h, "POST", &lease, "acq-1", &acquire).await;
    assert_fresh(&first, 200, "keyed acquire");
    let again = keyed(&h, "POST", &lease, "acq-1", &acquire).await;
    assert_replay_of(&again, &first, "acquire replay");
    assert_eq!(again.body["token"], first.body["token"]);
    assert_eq!(again.body["fence"], first.body["fence"]);
    let other = h.json("POST", &lease, &json!({"ttl_ms": 60_000})).await;
    assert_problem(&other, 409, "lease_held", "an unkeyed acquire");
    let r = keyed(&h, "POST", &lease, "acq-1", &json!({"ttl_ms": 30_000})).await;
    assert_problem(&r, 422, "idempotency_key_reused", "another acquire body");
    let state = h.get(&path("/leases/job")).await;
    assert_eq!(state.body["fence"], first.body["fence"], "{}", state.text);

    // A waiting keyed acquire keeps its key in use while it waits; the grant
    // is stored; a wait that runs out stores its 409 lease_held.
    let holder = h
        .json("POST", &path("/leases/w/acquire"), &json!({"ttl_ms": 60_000}))
        .await;
    assert_eq!(holder.status, 200, "{}", holder.text);
    let wait = json!({"ttl_ms": 60_000, "wait_ms": 10_000});
    let waiter = {
        let h = h.clone();
        let wait = wait.clone();
        tokio::spawn(async move { keyed(&h, "POST", &path("/leases/w/acquire"), "wait-1", &wait).await })
    };
    // Once it waits in the queue (an unkeyed probe counts it), its key is in use.
    poll(Duration::from_secs(10), "the keyed acquire to wait", || async {
        let probe = h
            .json("POST", &path("/leases/w/acquire"), &json!({"ttl_ms": 1000}))
            .await;
        assert_problem(&probe, 409, "lease_held", "a probe while the holder holds");
        (probe.u64("waiters") == 1).then_some(())
    })
    .await;
    let r = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-1", &wait).await;
    assert_problem(
        &r,
        409,
        "idempotency_key_in_use",
        "the same key while its acquire waits",
    );
    assert_eq!(
        r.header("retry-after"),
        Some("1"),
        "idempotency_key_in_use is retryable and says when"
    );
    let released = h
        .json(
            "POST",
            &path("/leases/w/release"),
            &json!({"token": holder.body["token"]}),
        )
        .await;
    assert_eq!(released.body["released"], json!(true), "{}", released.text);
    let granted = waiter.await.unwrap();
    assert_fresh(&granted, 200, "the waiting keyed acquire");
    let again = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-1", &wait).await;
    assert_replay_of(&again, &granted, "the waited grant, replayed");
    let short = json!({"ttl_ms": 60_000, "wait_ms": 200});
    let first = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-2", &short).await;
    assert_problem(&first, 409, "lease_held", "a keyed wait that runs out");
    let again = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-2", &short).await;
    assert_replay_of(&again, &first, "the timed-out wait, replayed");

    // A client that goes away while its keyed acquire waits gives the key up:
    // its retry runs (and waits, here in vain) instead of answering
    // idempotency_key_in_use until the key's 90 s lock runs out.
    let long = json!({"ttl_ms": 60_000, "wait_ms": 2_000});
    let gone = try_send(
        keyed_req(&h, "POST", &path("/leases/w/acquire"), "wait-3", &long)
            .timeout(Duration::from_millis(300)),
    )
    .await;
    assert!(gone.is_err(), "the client gave up waiting");
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = keyed(&h, "POST", &path("/leases/w/acquire"), "wait-3", &long).await;
        if r.code() != Some("idempotency_key_in_use") || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_problem(&r, 409, "lease_held", "the retry of an abandoned keyed wait runs");

    // Feed append: the replay is the 201 of the first append (an unkeyed
    // repeat is the idempotent 200 created: false).
    let entries = path("/feeds/inbox/entries");
    let entry = json!({"id": "e1", "data": {"n": 1}});
    let first = keyed(&h, "POST", &entries, "app-1", &entry).await;
    assert_fresh(&first, 201, "keyed append");
    let again = keyed(&h, "POST", &entries, "app-1", &entry).await;
    assert_replay_of(&again, &first, "append replay");
    let plain = h.json("POST", &entries, &entry).await;
    assert_eq!(
        (plain.status, &plain.body["created"]),
        (200, &json!(false)),
        "{}",
        plain.text
    );
    let list = h.get(&entries).await;
    assert_eq!(
        list.body["entries"].as_array().map(Vec::len),
        Some(1),
        "{}",
        list.text
    );

    // Gate ticket finalize with an append: replayed, finalized and appended once.
    assert_eq!(h.json("PUT", &path("/gates/g"), &json!({})).await.status, 201);
    let admit = path("/gates/g/tickets");
    let first = keyed(&h, "POST", &admit, "adm-1", &json!({"ticket_id": "t1"})).await;
    assert_fresh(&first, 201, "keyed admit");
    let again = keyed(&h, "POST", &admit, "adm-1", &json!({"ticket_id": "t1"})).await;
    assert_replay_of(&again, &first, "admit replay");
    let commit = h.send(h.req("POST", &path("/gates/g/tickets/t1/commit"))).await;
    assert_eq!(commit.status, 200, "{}", commit.text);
    let fin = json!({"append": {"feed": "done", "data": {"ok": true}}});
    let finalize = path("/gates/g/tickets/t1/finalize");
    let first = keyed(&h, "POST", &finalize, "fin-1", &fin).await;
    assert_fresh(&first, 200, "keyed finalize");
    assert_eq!(first.body["state"], json!("finalized"), "{}", first.text);
    let again = keyed(&h, "POST", &finalize, "fin-1", &fin).await;
    assert_replay_of(&again, &first, "finalize replay");
    let r = keyed(&h, "POST", &finalize, "fin-1", &json!({})).await;
    assert_problem(&r, 422, "idempotency_key_reused", "another finalize body");
    let list = h.get(&path("/feeds/done/entries")).await;
    assert_eq!(
        list.body["entries"].as_array().map(Vec::len),
        Some(1),
        "{}",
        list.text
    );

    // 423 gate_paused is not stored: after resume the same key executes.
    assert_eq!(h.json("PUT", &path("/gates/g2"), &json!({})).await.status, 201);
    let paused = h.send(h.req("POST", &path("/gates/g2/pause"))).await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let admit2 = path("/gates/g2/tickets");
    let r = keyed(&h, "POST", &admit2, "adm-2", &json!({"ticket_id": "t2"})).await;
    assert_problem(&r, 423, "gate_paused", "admit while paused");
    let resumed = h.send(h.req("POST", &path("/gates/g2/resume"))).await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    let first = keyed(&h, "POST", &admit2, "adm-2", &json!({"ticket_id": "t2"})).await;
    assert_fresh(&first, 201, "the same key after resume executes");
    let again = keyed(&h, "POST", &admit2, "adm-2", &json!({"ticket_id": "t2"})).await;
    assert_replay_of(&again, &first, "admit replay after resume");

    // Deleting the namespace forgets its keys with everything else.
    let r = h.send(h.req("DELETE", &path(""))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = keyed(&h, "PUT", &rec("r1"), "put-1", &body).await;
    assert_fresh(&r, 201, "a key of a deleted namespace executes afresh");
}

/// A request that differs only in its query (`?expected_version=`) or in a
/// precondition header (`If-Match`) is a different request: with the same key
/// it is 422 `idempotency_key_reused` (SPEC §9: "a different request with the
/// same key"), never the replay of the other request's answer (which would tell
/// the client about a precondition it did not send).
pub(super) async fn fingerprint_covers_query_and_preconditions(url: String) {
    let server = Server::start(&url);
    let h = Http::new(&server.url);
    let put = h.json("PUT", &rec("x"), &json!({"value": 1})).await;
    assert_eq!(put.status, 201, "{}", put.text);
    let v = put.u64("version");

    let first = keyed_empty(
        &h,
        "DELETE",
        &format!("{}?expected_version={}", rec("x"), v + 1_000),
        "q-1",
    )
    .await;
    assert_problem(&first, 409, "version_mismatch", "DELETE at a wrong version");
    let other = keyed_empty(&h, "DELETE", &format!("{}?expected_version={v}", rec("x")), "q-1").await;
    assert_problem(
        &other,
        422,
        "idempotency_key_reused",
        "the same key on a DELETE with another ?expected_version= (got the first request's answer)",
    );

    let body = json!({"value": 2});
    let put_if = |etag: String| {
        h.req("PUT", &rec("x"))
            .header("content-type", "application/json")
            .header("if-match", etag)
            .header("idempotency-key", "h-1")
            .body(body.to_string())
    };
    let first = h.send(put_if(format!("\"{}\"", v + 1_000))).await;
    assert_problem(&first, 412, "precondition_failed", "PUT with a wrong If-Match");
    let other = h.send(put_if(format!("\"{v}\""))).await;
    assert_problem(
        &other,
        422,
        "idempotency_key_reused",
        "the same key on a PUT with another If-Match (got the first request's answer)",
    );
}
