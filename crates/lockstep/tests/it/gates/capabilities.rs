//! Capabilities racing a revoke, through `lockstep_client` (the uploaders hold
//! the capability as their bearer token).

use super::*;
use lockstep_client::api::changes::{Change, ChangesQuery};
use lockstep_client::api::gates::MintBody;

// ---------------------------------------------------------------------------
// Capabilities racing a revoke (SPEC §11, seeds/001): 32 anonymous uploaders
// hold a capability minted at epoch 1 and run admit → check → commit →
// finalize while the owner revokes. Checked against the change log: no
// operation made with the old epoch's capability succeeded after the revoke's
// revision, and every success the uploaders saw is in the log before it.

const CAP_UPLOADERS: usize = 32;

async fn capabilities_race_revoke(cl: &Cluster) {
    let label = cl.label;
    let owner = cl.ns(0, NS);
    let g = "cap-race";
    open_gate(&owner, g, Pending::Reject).await;
    let minted = owner
        .mint_capability(
            g,
            &MintBody {
                ttl_ms: 600_000,
                ops: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((minted.gate.as_str(), minted.epoch), (g, 1), "{minted:?}");
    let cap = minted.capability;
    let ops_done = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CAP_UPLOADERS + 1));
    let mut tasks = Vec::new();
    for i in 0..CAP_UPLOADERS {
        let url = &cl.urls[i % cl.urls.len()];
        let app = common::client_with_token(url, &cap).ns(NS);
        let (barrier, done) = (barrier.clone(), ops_done.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // Each success: (op, revision it committed at or names).
            let mut seen: Vec<(&'static str, u64)> = Vec::new();
            let mut closed = 0;
            'uploads: for n in 0..40 {
                let t = format!("u{i}-{n}");
                for op in [
                    None,
                    Some(TicketOp::Check),
                    Some(TicketOp::Commit),
                    Some(TicketOp::Finalize),
                ] {
                    let answer = match op {
                        None => {
                            let body = AdmitBody {
                                ticket_id: Some(t.clone()),
                                meta: None,
                            };
                            app.admit(g, &body).await.map(|a| {
                                assert!(a.created, "{a:?}");
                                a.ticket
                            })
                        }
                        Some(op) => app.ticket(g, &t, op, &FinalizeBody::default()).await,
                    };
                    let name = op.map_or("admit", |op| op.as_str());
                    match answer {
                        Ok(ticket) => {
                            assert_eq!(ticket.ticket_id, t, "{ticket:?}");
                            assert_eq!(ticket.epoch, 1, "{ticket:?}");
                            seen.push((name, ticket.revision));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.status() == Some(410) => {
                            assert_eq!(e.code(), Some("gate_closed"), "{e:?}");
                            closed += 1;
                            if closed >= 3 {
                                break 'uploads;
                            }
                            continue 'uploads;
                        }
                        Err(e) => panic!("{name} {t}: unexpected {e:?}"),
                    }
                }
            }
            (seen, closed)
        }));
    }
    barrier.wait().await;
    // Revoke in the middle of the load.
    poll(Duration::from_secs(30), "uploads under way", || {
        let done = ops_done.clone();
        async move { (done.load(Ordering::Relaxed) >= 60).then_some(()) }
    })
    .await;
    let revoked = owner.transition(g, Transition::Revoke).await.unwrap();
    assert!(revoked.changed, "{revoked:?}");
    assert_eq!(revoked.gate.state, GateState::Revoked, "{revoked:?}");
    let r_revoke = revoked.gate.revision;
    let mut successes = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (seen, closed) = t.await.unwrap();
        assert!(closed > 0, "[{label}] every uploader met the revoke");
        successes.extend(seen);
        refused += closed;
    }
    // Every write the uploaders saw succeed committed before the revoke.
    let writes: Vec<&(&str, u64)> = successes.iter().filter(|(op, _)| *op != "check").collect();
    assert!(!writes.is_empty());
    for (op, rev) in &writes {
        assert!(
            *rev < r_revoke,
            "[{label}] {op} at revision {rev} after the revoke at {r_revoke}"
        );
    }
    // The log agrees: nothing by the capability after the revoke's revision
    // (every page of it).
    let q = ChangesQuery {
        kind: Some("gate".into()),
        prefix: Some(g.into()),
        limit: Some(1000),
        ..ChangesQuery::default()
    };
    let log: Vec<Change> = owner.changes(q).try_collect().await.unwrap();
    let mut by_cap = 0;
    for c in &log {
        if c.actor == format!("capability:{g}") {
            by_cap += 1;
            assert!(
                c.revision < r_revoke,
                "[{label}] {c:?} after the revoke at {r_revoke}"
            );
        }
    }
    assert_eq!(
        by_cap,
        writes.len(),
        "[{label}] the log holds exactly the writes the uploaders saw"
    );
    println!(
        "[{label}] capabilities racing a revoke: {} writes before revision {r_revoke}, {refused} refused 410, 0 accepted after",
        writes.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capabilities_race_revoke_sqlite() {
    let cl = sqlite_cluster();
    bounded(
        "capabilities racing a revoke on sqlite",
        capabilities_race_revoke(&cl),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capabilities_race_revoke_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded(
        "capabilities racing a revoke on postgres×3",
        capabilities_race_revoke(&cl),
    )
    .await;
}
