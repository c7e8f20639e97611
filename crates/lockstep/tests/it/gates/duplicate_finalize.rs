//! Concurrent finalizes over three processes: one finalization, one feed entry,
//! identical answers (compared raw, byte for byte; the setup and the listing
//! checks go through `lockstep_client`).

use super::*;

// ---------------------------------------------------------------------------
// 3. Duplicate finalize.

const RACERS: usize = 20;

async fn duplicate_finalize(cl: &Cluster) {
    let label = cl.label;
    let h = cl.http(0);
    let app = cl.ns(0, NS);
    for (g, pending) in [("dup-reject", Pending::Reject), ("dup-recover", Pending::Recover)] {
        // Set up through `lockstep_client`; the racing finalizes are raw, as
        // their answers are compared byte for byte.
        open_gate(&app, g, pending).await;
        let t = &format!("{g}.upload-1");
        let a = admit_ticket(&app, g, t).await.unwrap();
        assert!(a.created, "{a:?}");
        ticket_in(
            on_ticket(&app, g, t, TicketOp::Commit).await,
            TicketState::Committed,
            "commit",
        );
        if pending == Pending::Recover {
            // The recovered path: committed, then revoked.
            let r = app.transition(g, Transition::Revoke).await.unwrap();
            assert_eq!(r.pending, 1, "{r:?}");
        }
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let (c, barrier) = (cl.http(i), barrier.clone());
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                finalize_append(&c, g, &t).await
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let first = &answers[0];
        expect_ticket(first, "finalized", &format!("[{label}] {g} finalize"));
        assert_eq!(
            first.body["recovered"],
            json!(pending == Pending::Recover),
            "{}",
            first.text
        );
        let fin_rev = first.body["finalized_revision"].as_u64().unwrap();
        assert_eq!(
            first.body["revision"],
            json!(fin_rev),
            "[{label}] {g}: a finalize names the revision it committed at"
        );
        for a in &answers {
            assert_eq!(a.status, 200, "[{label}] {g}: {}", a.text);
            assert_eq!(a.text, first.text, "[{label}] {g}: byte-identical answers");
        }
        let listed = tickets_of(&app, g).await;
        let answered: Ticket = serde_json::from_value(first.body.clone()).unwrap();
        assert_eq!(listed[t.as_str()], answered, "[{label}] {g}: the listing agrees");
        let q = EntriesQuery {
            limit: Some(100),
            cursor: None,
            order: Some("asc".into()),
        };
        let entries: Vec<Entry> = app.entries(&feed_of(g), q).try_collect().await.unwrap();
        assert_eq!(entries.len(), 1, "[{label}] {g}: one entry: {entries:?}");
        assert_eq!(&entries[0].id, t);
        assert_eq!(entries[0].revision, fin_rev, "appended with the finalization");
        let finalizes: Vec<u64> = gate_changes(&cl.disk, g)
            .await
            .into_iter()
            .filter(|(_, _, op)| op == "finalize")
            .map(|(r, _, _)| r)
            .collect();
        assert_eq!(finalizes, [fin_rev], "[{label}] {g}: one finalization in the log");
    }
    // Every ticket answer names the revision of the ticket's last write; a
    // repeat that changes nothing names the original write's.
    let g = "dup-abort";
    put_gate(&h, g, "reject").await;
    let admitted = admit(&h, g, "t-abort").await;
    expect(&admitted, 201, None, "admit");
    let again = admit(&h, g, "t-abort").await;
    assert_eq!(
        again.body["revision"], admitted.body["revision"],
        "{}",
        again.text
    );
    let check = ticket_op(&h, g, "t-abort", "check").await;
    assert_eq!(
        check.body["revision"], admitted.body["revision"],
        "{}",
        check.text
    );
    let aborted = ticket_op(&h, g, "t-abort", "abort").await;
    let rev = aborted.body["revision"].as_u64().unwrap();
    assert!(
        rev > admitted.body["revision"].as_u64().unwrap(),
        "{}",
        aborted.text
    );
    for _ in 0..3 {
        let repeat = ticket_op(&cl.http(1), g, "t-abort", "abort").await;
        assert_eq!(
            repeat.text, aborted.text,
            "[{label}] a repeated abort answers the same"
        );
    }
    let paused = transition(&h, g, "pause").await;
    let repeat = transition(&h, g, "pause").await;
    assert_eq!(
        repeat.body["revision"], paused.body["revision"],
        "{}",
        repeat.text
    );
    // DELETE /gates/{id} is the delete transition; repeating it changes nothing.
    let open = admit(&h, "dup-reject", "t-open").await;
    expect(&open, 201, None, "admit before delete");
    let deleted = h
        .send(h.req("DELETE", &format!("/v1/ns/{NS}/gates/dup-reject")))
        .await;
    expect(&deleted, 200, None, "DELETE a gate");
    assert_eq!(
        (
            &deleted.body["state"],
            &deleted.body["changed"],
            &deleted.body["voided"]
        ),
        (&json!("deleted"), &json!(true), &json!(1)),
        "{}",
        deleted.text
    );
    let again = h
        .send(h.req("DELETE", &format!("/v1/ns/{NS}/gates/dup-reject")))
        .await;
    assert_eq!(again.body["changed"], json!(false), "{}", again.text);
    assert_eq!(again.body["revision"], deleted.body["revision"], "{}", again.text);
    let r = ticket_op(&h, "dup-reject", "t-open", "check").await;
    expect(&r, 410, Some("gate_closed"), "a ticket of a deleted gate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_finalize_sqlite() {
    let cl = sqlite_cluster();
    bounded("duplicate_finalize on sqlite", duplicate_finalize(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_finalize_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("duplicate_finalize on postgres×3", duplicate_finalize(&cl)).await;
}
