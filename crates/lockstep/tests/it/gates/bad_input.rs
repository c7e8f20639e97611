//! Malformed or misdirected ticket requests: 400/404/409 with nothing changed.

use super::*;

// ---------------------------------------------------------------------------
// 4. Bad input.

async fn bad_input(cl: &Cluster) {
    let label = cl.label;
    let h = cl.http(0);
    put_gate(&h, "a", "reject").await;
    put_gate(&h, "b", "reject").await;
    expect(&admit(&h, "a", "t1").await, 201, None, "admit");
    expect(&admit(&h, "a", "t2").await, 201, None, "admit");
    expect_ticket(&ticket_op(&h, "a", "t2", "commit").await, "committed", "commit");
    let before = list_tickets(&h, "a").await;
    let gate_before = h.get(&gate_path("a")).await.body;
    let what = |s: &str| format!("[{label}] {s}");

    // Transitions.
    expect(
        &transition(&h, "a", "close").await,
        400,
        Some("invalid_request"),
        &what("unknown transition"),
    );
    expect(
        &transition(&h, "a", "Pause").await,
        400,
        Some("invalid_request"),
        &what("transitions are lower case"),
    );
    expect(
        &transition(&h, "nope", "pause").await,
        404,
        Some("not_found"),
        &what("transition of a missing gate"),
    );
    expect(
        &h.get(&gate_path("nope")).await,
        404,
        Some("not_found"),
        &what("GET a missing gate"),
    );
    expect(
        &admit(&h, "nope", "x").await,
        404,
        Some("not_found"),
        &what("admit to a missing gate"),
    );

    // A ticket of another gate (or none) is not found there, for every operation.
    for op in ["check", "commit", "finalize", "abort"] {
        expect(
            &ticket_op(&h, "b", "t1", op).await,
            404,
            Some("not_found"),
            &what(&format!("{op} via gate b")),
        );
        expect(
            &ticket_op(&h, "a", "zz", op).await,
            404,
            Some("not_found"),
            &what(&format!("{op} of no ticket")),
        );
    }
    expect(
        &finalize_append(&h, "b", "t2").await,
        404,
        Some("not_found"),
        &what("finalize+append via gate b"),
    );
    // Admitting another gate's ticket id is a conflict.
    expect(
        &admit(&h, "b", "t1").await,
        409,
        Some("ticket_conflict"),
        &what("admit gate a's id to b"),
    );
    // Finalize of an open ticket.
    expect(
        &ticket_op(&h, "a", "t1", "finalize").await,
        409,
        Some("ticket_conflict"),
        &what("finalize of an open ticket"),
    );
    expect(
        &finalize_append(&h, "a", "t1").await,
        409,
        Some("ticket_conflict"),
        &what("finalize+append of an open ticket"),
    );
    // Unknown ticket operations.
    for op in ["complete", "Commit", "void", "finalise"] {
        expect(
            &ticket_op(&h, "a", "t1", op).await,
            400,
            Some("invalid_request"),
            &what(&format!("op {op}")),
        );
    }
    // append with another operation.
    let append = json!({"append": {"feed": "recv/a", "data": {"x": 1}}});
    for op in ["check", "commit", "abort"] {
        let r = post(&h, &ticket_path("a", "t2", op), Some(&append)).await;
        expect(
            &r,
            400,
            Some("invalid_request"),
            &what(&format!("append with {op}")),
        );
    }
    // append data that is not an object, and other malformed finalize bodies.
    for body in [
        json!({"append": {"feed": "recv/a", "data": [1, 2]}}),
        json!({"append": {"feed": "recv/a", "data": "x"}}),
        json!({"append": {"feed": "recv/a", "data": 5}}),
        json!({"append": {"feed": "recv/a", "data": null}}),
        json!({"append": {"feed": "recv/a"}}),
        json!({"append": {"data": {"x": 1}}}),
        json!({"append": {"feed": "", "data": {"x": 1}}}),
        json!({"append": {"feed": "recv/a", "data": {"x": 1}, "id": "other"}}),
        json!({"append": [1]}),
        json!({"extra": 1}),
        json!([1]),
        json!([null]),
    ] {
        let r = post(&h, &ticket_path("a", "t2", "finalize"), Some(&body)).await;
        expect(
            &r,
            400,
            Some("invalid_request"),
            &what(&format!("finalize with {body}")),
        );
    }
    // Admission bodies.
    for body in [
        json!({"ticket_id": ""}),
        json!({"ticket_id": 5}),
        json!({"ticket_id": "x\u{1}y"}),
        json!({"ticket": "x"}),
    ] {
        let r = post(&h, &tickets_path("a"), Some(&body)).await;
        expect(&r, 400, Some("invalid_request"), &what(&format!("admit {body}")));
    }
    // Gate bodies and listings.
    for body in [
        json!({"policy": {"pending": "drop"}}),
        json!({"policy": {"pending": "reject", "x": 1}}),
        json!({"state": "open"}),
    ] {
        let r = h.json("PUT", &gate_path("a"), &body).await;
        expect(
            &r,
            400,
            Some("invalid_request"),
            &what(&format!("PUT gate {body}")),
        );
    }
    for q in ["state=bogus", "cursor=garbage", "limit=0", "color=red"] {
        let r = h.get(&format!("{}?{q}", tickets_path("a"))).await;
        expect(&r, 400, Some("invalid_request"), &what(&format!("list ?{q}")));
    }
    // Nothing changed; the tickets still work.
    assert_eq!(
        list_tickets(&h, "a").await,
        before,
        "{}",
        what("tickets unchanged")
    );
    assert_eq!(
        h.get(&gate_path("a")).await.body,
        gate_before,
        "{}",
        what("gate unchanged")
    );
    assert!(
        feed_entries(&h, "recv/a").await.is_empty(),
        "{}",
        what("no entry")
    );
    expect_ticket(
        &finalize_append(&h, "a", "t2").await,
        "finalized",
        &what("finalize after all that"),
    );
    // A ticket id with a `/` is addressed percent-encoded.
    expect(&admit(&h, "a", "dir/t3").await, 201, None, &what("admit dir/t3"));
    expect_ticket(
        &ticket_op(&h, "a", "dir/t3", "commit").await,
        "committed",
        &what("commit dir/t3"),
    );
    assert_eq!(list_tickets(&h, "a").await["dir/t3"]["state"], json!("committed"));
    // An abort after finalize is a conflict; a filtered listing shows it.
    expect(
        &ticket_op(&h, "a", "t2", "abort").await,
        409,
        Some("ticket_conflict"),
        &what("abort after finalize"),
    );
    let r = h.get(&format!("{}?state=finalized", tickets_path("a"))).await;
    expect(&r, 200, None, "filtered listing");
    assert_eq!(r.body["tickets"].as_array().unwrap().len(), 1, "{}", r.text);
    // A cursor is bound to its listing: another state filter or gate is 400.
    let r = h.get(&format!("{}?limit=1", tickets_path("a"))).await;
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = h
        .get(&format!("{}?limit=1&cursor={}", tickets_path("a"), enc(&cursor)))
        .await;
    expect(&r, 200, None, &what("the cursor on its own listing"));
    for path in [
        format!("{}?state=open&cursor={}", tickets_path("a"), enc(&cursor)),
        format!("{}?cursor={}", tickets_path("b"), enc(&cursor)),
    ] {
        expect(
            &h.get(&path).await,
            400,
            Some("invalid_request"),
            &what(&format!("foreign cursor {path}")),
        );
    }
    // The deleted gate: PUT 410, transitions 410 but delete.
    expect(&transition(&h, "b", "delete").await, 200, None, "delete b");
    expect(
        &h.json("PUT", &gate_path("b"), &json!({})).await,
        410,
        Some("gate_closed"),
        &what("PUT deleted"),
    );
    expect(
        &transition(&h, "b", "reopen").await,
        410,
        Some("gate_closed"),
        &what("reopen deleted"),
    );
    let r = transition(&h, "b", "delete").await;
    expect(&r, 200, None, "delete deleted");
    assert_eq!(r.body["changed"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_sqlite() {
    let cl = sqlite_cluster();
    bounded("bad_input on sqlite", bad_input(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_postgres() {
    let Some(cl) = pg_cluster(1).await else { return };
    bounded("bad_input on postgres", bad_input(&cl)).await;
}
