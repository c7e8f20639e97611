//! A ticket admitted before a pause commits after resume; during the pause its
//! steps and new admissions answer 423. Driven through `lockstep_client`; the
//! refusals (423, 409) and the keyed retry (`Idempotent-Replayed`, the
//! replayed body) are checked on the wire.

use super::*;

// ---------------------------------------------------------------------------
// 2. Pause and resume are backward compatible.

async fn pause_resume(cl: &Cluster) {
    let label = cl.label;
    let hs: Vec<Http> = (0..3).map(|i| cl.http(i)).collect();
    let apps: Vec<Ns> = (0..3).map(|i| cl.ns(i, NS)).collect();
    let g = "upload-session";
    open_gate(&apps[0], g, Pending::Reject).await;
    for (i, t) in ["before", "committed", "finalized", "given-up"]
        .iter()
        .enumerate()
    {
        let a = admit_ticket(&apps[i % 3], g, t)
            .await
            .unwrap_or_else(|e| panic!("admit {t}: {e:?}"));
        assert!(a.created, "{a:?}");
        assert_eq!((a.ticket.state, a.ticket.epoch), (TicketState::Open, 1), "{a:?}");
    }
    ticket_in(
        on_ticket(&apps[1], g, "committed", TicketOp::Commit).await,
        TicketState::Committed,
        "commit",
    );
    ticket_in(
        on_ticket(&apps[2], g, "finalized", TicketOp::Commit).await,
        TicketState::Committed,
        "commit",
    );
    ticket_in(
        finalize_appending(&apps[0], g, "finalized").await,
        TicketState::Finalized,
        "finalize",
    );
    let before = tickets_of(&apps[0], g).await;

    let p = apps[1].transition(g, Transition::Pause).await.unwrap();
    assert_eq!((p.gate.state, p.gate.epoch), (GateState::Paused, 1), "{p:?}");
    assert!(p.changed, "{p:?}");
    // Repeated pause: a no-op.
    let again = apps[2].transition(g, Transition::Pause).await.unwrap();
    assert!(!again.changed, "pause again: {again:?}");
    assert_eq!(again.gate.revision, p.gate.revision, "pause again wrote nothing");
    assert_eq!(apps[0].gate(g).await.unwrap().state, GateState::Paused);

    // The refusals while paused, on the wire: status, problem+json, code.
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
    ticket_in(
        on_ticket(&apps[0], g, "finalized", TicketOp::Finalize).await,
        TicketState::Finalized,
        "finalize finalized",
    );
    ticket_in(
        on_ticket(&apps[1], g, "given-up", TicketOp::Abort).await,
        TicketState::Aborted,
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
    let during = tickets_of(&apps[0], g).await;
    for (id, t) in &before {
        if id != "given-up" {
            assert_eq!(&during[id], t, "[{label}] {id} survives the pause unchanged");
        }
    }
    assert_eq!(during["given-up"].state, TicketState::Aborted);

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

    let r = apps[0].transition(g, Transition::Resume).await.unwrap();
    assert_eq!(
        (r.gate.state, r.gate.epoch),
        (GateState::Open, 1),
        "resume: {r:?}"
    );
    assert!(r.changed, "{r:?}");
    // The ticket admitted before the pause goes on, same epoch.
    ticket_in(
        on_ticket(&apps[1], g, "before", TicketOp::Check).await,
        TicketState::Open,
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
    let f = ticket_in(
        finalize_appending(&apps[0], g, "before").await,
        TicketState::Finalized,
        "finalize after resume",
    );
    assert!(!f.recovered, "{f:?}");
    assert_eq!(f.epoch, 1, "{f:?}");
    ticket_in(
        finalize_appending(&apps[1], g, "committed").await,
        TicketState::Finalized,
        "finalize after resume",
    );
    let a = admit_ticket(&apps[2], g, "after").await.unwrap();
    assert!(a.created, "admit after resume: {a:?}");
    // Feed: one entry per finalized ticket.
    let ids = feed_ids(&apps[0], &feed_of(g)).await;
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<String>>(),
        ["before", "committed", "finalized"]
            .into_iter()
            .map(String::from)
            .collect(),
        "[{label}] {ids:?}"
    );
    assert_eq!(ids.len(), 3, "[{label}] one entry each: {ids:?}");
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
