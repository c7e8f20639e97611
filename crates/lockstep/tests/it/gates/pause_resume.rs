//! A ticket admitted before a pause commits after resume; during the pause its
//! steps and new admissions answer 423.

use super::*;

// ---------------------------------------------------------------------------
// 2. Pause and resume are backward compatible.

async fn pause_resume(cl: &Cluster) {
    let label = cl.label;
    let hs: Vec<Http> = (0..3).map(|i| cl.http(i)).collect();
    let g = "upload-session";
    put_gate(&hs[0], g, "reject").await;
    for (i, t) in ["before", "committed", "finalized", "given-up"]
        .iter()
        .enumerate()
    {
        let r = admit(&hs[i % 3], g, t).await;
        expect(&r, 201, None, t);
        assert_eq!(r.body["created"], json!(true));
    }
    expect_ticket(
        &ticket_op(&hs[1], g, "committed", "commit").await,
        "committed",
        "commit",
    );
    expect_ticket(
        &ticket_op(&hs[2], g, "finalized", "commit").await,
        "committed",
        "commit",
    );
    expect_ticket(
        &finalize_append(&hs[0], g, "finalized").await,
        "finalized",
        "finalize",
    );
    let before = list_tickets(&hs[0], g).await;

    let p = transition(&hs[1], g, "pause").await;
    expect(&p, 200, None, "pause");
    assert_eq!(
        (p.body["state"].clone(), p.body["epoch"].clone()),
        (json!("paused"), json!(1))
    );
    assert_eq!(p.body["changed"], json!(true));
    // Repeated pause: a no-op.
    let again = transition(&hs[2], g, "pause").await;
    expect(&again, 200, None, "pause again");
    assert_eq!(again.body["changed"], json!(false), "{}", again.text);
    let gate = hs[0].get(&gate_path(g)).await;
    assert_eq!(gate.body["state"], json!("paused"));

    for (i, (t, op)) in [
        ("before", "check"),
        ("before", "commit"),
        ("committed", "check"),
        ("committed", "commit"),
        ("committed", "finalize"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = if op == "finalize" {
            finalize_append(&hs[i % 3], g, t).await
        } else {
            ticket_op(&hs[i % 3], g, t, op).await
        };
        expect(
            &r,
            423,
            Some("gate_paused"),
            &format!("[{label}] {op} {t} while paused"),
        );
    }
    // Finalize of an open ticket is a conflict whatever the gate does.
    let r = ticket_op(&hs[0], g, "before", "finalize").await;
    expect(&r, 409, Some("ticket_conflict"), "finalize open while paused");
    let r = admit(&hs[1], g, "during").await;
    expect(&r, 423, Some("gate_paused"), "admit while paused");
    // Re-admitting a still-open id returns it, even while paused.
    let r = admit(&hs[2], g, "before").await;
    expect(&r, 200, None, "re-admit while paused");
    assert_eq!(r.body["created"], json!(false));
    // A finalized ticket answers as finalized; abort still works while paused.
    expect_ticket(
        &ticket_op(&hs[0], g, "finalized", "finalize").await,
        "finalized",
        "finalize finalized",
    );
    expect_ticket(
        &ticket_op(&hs[1], g, "given-up", "abort").await,
        "aborted",
        "abort while paused",
    );
    // Reopen while paused is invalid.
    expect(
        &transition(&hs[2], g, "reopen").await,
        409,
        Some("invalid_transition"),
        "reopen while paused",
    );
    // Nothing but the abort changed.
    let during = list_tickets(&hs[0], g).await;
    for (id, t) in &before {
        if id != "given-up" {
            assert_eq!(&during[id], t, "[{label}] {id} survives the pause unchanged");
        }
    }

    // A client retrying a 423 with the same Idempotency-Key (§14): the 423 is
    // not stored, so the retry after resume runs (§15 "Idempotency").
    let keyed = |h: &Http| {
        h.req("POST", &ticket_path(g, "before", "commit"))
            .header("idempotency-key", "\"commit-before-1\"")
    };
    let r = hs[0].send(keyed(&hs[0])).await;
    expect(
        &r,
        423,
        Some("gate_paused"),
        &format!("[{label}] keyed commit while paused"),
    );
    let r = hs[1].send(keyed(&hs[1])).await;
    expect(
        &r,
        423,
        Some("gate_paused"),
        &format!("[{label}] keyed commit retried while paused"),
    );
    assert_eq!(r.header("idempotent-replayed"), None, "a 423 is not replayed");

    let r = transition(&hs[0], g, "resume").await;
    expect(&r, 200, None, "resume");
    assert_eq!(
        (r.body["state"].clone(), r.body["epoch"].clone()),
        (json!("open"), json!(1))
    );
    // The ticket admitted before the pause goes on, same epoch.
    expect_ticket(
        &ticket_op(&hs[1], g, "before", "check").await,
        "open",
        "check after resume",
    );
    let c = hs[2].send(keyed(&hs[2])).await;
    expect_ticket(&c, "committed", &format!("[{label}] keyed commit after resume"));
    assert_eq!(c.header("idempotent-replayed"), None, "{}: the retry ran", c.text);
    assert_eq!(c.body["epoch"], json!(1));
    let replay = hs[0].send(keyed(&hs[0])).await;
    expect_ticket(&replay, "committed", "keyed commit replayed");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, c.body);
    let f = finalize_append(&hs[0], g, "before").await;
    expect_ticket(&f, "finalized", "finalize after resume");
    assert_eq!(f.body["recovered"], json!(false));
    expect_ticket(
        &finalize_append(&hs[1], g, "committed").await,
        "finalized",
        "finalize after resume",
    );
    let r = admit(&hs[2], g, "after").await;
    expect(&r, 201, None, "admit after resume");
    // Feed: one entry per finalized ticket.
    let ids: BTreeSet<String> = feed_entries(&hs[0], &feed_of(g))
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["before", "committed", "finalized"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    // The log: pause and resume once each (the repeats wrote nothing).
    let ops: Vec<String> = gate_changes(&cl.disk, g)
        .await
        .into_iter()
        .map(|(_, _, op)| op)
        .filter(|op| op == "pause" || op == "resume")
        .collect();
    assert_eq!(ops, ["pause", "resume"], "[{label}]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_resume_sqlite() {
    let cl = sqlite_cluster();
    bounded("pause_resume on sqlite", pause_resume(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_resume_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("pause_resume on postgres×3", pause_resume(&cl)).await;
}
