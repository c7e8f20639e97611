//! Races over several store instances: duplicate finalizes with append, and a
//! revoke racing ticket steps.

use super::*;

// ---------------------------------------------------------------------------
// 4. Duplicate finalize with append.

const RACERS: usize = 20;

/// `RACERS` finalizes with `append` of `ticket` at once, spread over `stores`.
async fn finalize_race(
    stores: &[Store],
    gate: &str,
    ticket: &str,
    feed: &str,
) -> Vec<Result<Committed, Error>> {
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let store = stores[i % stores.len()].clone();
        let barrier = barrier.clone();
        let cmd = ticket_cmd(
            gate,
            ticket,
            TicketOp::Finalize,
            Some((feed, json!({"racer": i}))),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.execute(NS, cmd, ACTOR).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn duplicate_finalize(env: Env) {
    let stores = env.instances(3).await;
    let s = &env.store;
    let feed = "recv/dup";
    for policy in [Pending::Reject, Pending::Recover] {
        let gate = format!("dup-{}", pending_name(policy));
        create_gate(s, &gate, policy).await;
        // Live gate: finalized once by the first, the same answer for all.
        for round in 0..3 {
            let ticket = format!("{gate}-{round}");
            admit(s, &gate, &ticket).await;
            ticket_ok(s, &gate, &ticket, TicketOp::Commit).await;
            let results = finalize_race(&stores, &gate, &ticket, feed).await;
            let tickets: Vec<Ticket> = results
                .iter()
                .map(|r| match r {
                    Ok(Committed {
                        outcome: Outcome::TicketDone { ticket },
                        ..
                    }) => ticket.clone(),
                    other => panic!("{ticket}: every duplicate finalize succeeds, got {other:?}"),
                })
                .collect();
            let first = &tickets[0];
            assert_eq!(first.state, TicketState::Finalized);
            assert!(!first.recovered);
            let fin_rev = first.finalized_revision.unwrap();
            for t in &tickets {
                assert_eq!(t, first, "{ticket}: every answer is the same ticket");
            }
            let writers: Vec<u64> = results
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|c| c.revision)
                .filter(|r| *r == fin_rev)
                .collect();
            assert!(!writers.is_empty(), "the finalization's revision is reported");
            assert_eq!(tickets_of(s, &gate).await[&ticket], *first);
        }
        // Pending after a revoke: recovered once (recover), or voided once (reject).
        let ticket = format!("{gate}-pending");
        admit(s, &gate, &ticket).await;
        ticket_ok(s, &gate, &ticket, TicketOp::Commit).await;
        let (_, _, _, pending) = transition(s, &gate, Transition::Revoke).await;
        assert_eq!(pending, 1);
        let results = finalize_race(&stores, &gate, &ticket, feed).await;
        let stored = tickets_of(s, &gate).await[&ticket].clone();
        match policy {
            Pending::Recover => {
                for r in &results {
                    match r {
                        Ok(Committed {
                            outcome: Outcome::TicketDone { ticket: t },
                            ..
                        }) => assert_eq!(*t, stored, "every recovery answers the same ticket"),
                        other => panic!("{ticket}: every recovering finalize succeeds, got {other:?}"),
                    }
                }
                assert_eq!((stored.state, stored.recovered), (TicketState::Finalized, true));
            }
            Pending::Reject => {
                let voiding = results
                    .iter()
                    .filter(|r| {
                        matches!(
                            r,
                            Ok(Committed {
                                outcome: Outcome::TicketVoided { .. },
                                ..
                            })
                        )
                    })
                    .count();
                let closed = results
                    .iter()
                    .filter(|r| matches!(r, Err(Error::Core(CoreError::GateClosed(_)))))
                    .count();
                assert_eq!(
                    (voiding, closed),
                    (1, RACERS - 1),
                    "one finalize voids, the others find it voided: {results:?}"
                );
                assert_eq!(stored.state, TicketState::Voided);
            }
        }
    }
    // Exactly one entry per finalized ticket, at its finalization's revision.
    let mut finalized: BTreeMap<String, u64> = BTreeMap::new();
    for gate in ["dup-reject", "dup-recover"] {
        for (id, t) in tickets_of(s, gate).await {
            if t.state == TicketState::Finalized {
                finalized.insert(id, t.finalized_revision.unwrap());
            }
        }
    }
    assert_eq!(finalized.len(), 7, "3 + 3 live, 1 recovered");
    let entries = feed_entries(s, feed).await;
    let got: BTreeMap<String, u64> = entries.iter().map(|e| (e.id.clone(), e.revision)).collect();
    assert_eq!(got.len(), entries.len(), "one entry per id");
    assert_eq!(got, finalized, "finalized once ⇔ appended once");
    for e in &entries {
        let racer = e.data["racer"].as_u64().unwrap();
        assert!(racer < RACERS as u64, "{e:?}");
    }
}

// ---------------------------------------------------------------------------
// 5. A revoke racing ticket steps.

const RACE_TICKETS: usize = 40;

async fn terminal_race(env: Env) {
    let stores = env.instances(3).await;
    let s = &env.store;
    for policy in [Pending::Reject, Pending::Recover] {
        let gate = format!("race-{}", pending_name(policy));
        let feed = format!("recv/{gate}");
        create_gate(s, &gate, policy).await;
        for i in 0..RACE_TICKETS {
            admit(s, &gate, &format!("{gate}-{i:02}")).await;
        }
        let barrier = Arc::new(Barrier::new(RACE_TICKETS + 1));
        let commits = Arc::new(AtomicUsize::new(0));
        let revoked = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for i in 0..RACE_TICKETS {
            let store = stores[i % stores.len()].clone();
            let (barrier, commits, revoked) = (barrier.clone(), commits.clone(), revoked.clone());
            let (gate, feed) = (gate.clone(), feed.clone());
            let id = format!("{gate}-{i:02}");
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                // Staggered by progress: ticket i starts after i/2 commits (or
                // the revoke), so the revoke lands among tickets in every stage.
                while commits.load(Ordering::SeqCst) < i / 2 && !revoked.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let commit = store
                    .execute(NS, ticket_cmd(&gate, &id, TicketOp::Commit, None), ACTOR)
                    .await;
                if commit.is_err() {
                    return (id, commit, None);
                }
                commits.fetch_add(1, Ordering::SeqCst);
                let fin = store
                    .execute(
                        NS,
                        ticket_cmd(&gate, &id, TicketOp::Finalize, Some((&feed, json!({"i": i})))),
                        ACTOR,
                    )
                    .await;
                (id, commit, Some(fin))
            }));
        }
        let revoker = {
            let (store, gate, barrier) = (stores[1].clone(), gate.clone(), barrier.clone());
            let (commits, revoked) = (commits.clone(), revoked.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                // Revoke in the middle of the run: once a quarter of the tickets
                // committed (the checks below hold wherever it lands).
                while commits.load(Ordering::SeqCst) < RACE_TICKETS / 4 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let r = store
                    .execute(NS, transition_cmd(&gate, Transition::Revoke), ACTOR)
                    .await;
                revoked.store(true, Ordering::SeqCst);
                r
            })
        };
        let mut refused_commits = 0;
        let mut fin_voided = 0;
        let mut fin_recovered = 0;
        let mut fin_live = 0;
        let mut answers = BTreeMap::new();
        for t in tasks {
            let (id, commit, fin) = t.await.unwrap();
            match (&commit, &fin) {
                (Err(Error::Core(CoreError::GateClosed(_))), None) => refused_commits += 1,
                (Ok(_), Some(Ok(c))) => match &c.outcome {
                    Outcome::TicketVoided { .. } => fin_voided += 1,
                    Outcome::TicketDone { ticket } if ticket.recovered => fin_recovered += 1,
                    Outcome::TicketDone { ticket } => {
                        assert_eq!(ticket.state, TicketState::Finalized);
                        fin_live += 1;
                    }
                    other => panic!("{id}: finalize answered {other:?}"),
                },
                (Ok(_), Some(Err(Error::Core(CoreError::GateClosed(_))))) if policy == Pending::Reject => {
                    panic!("{id}: the only finalize of a committed ticket voids it (TicketVoided), got a plain refusal")
                }
                other => panic!("{id}: unexpected answers {other:?}"),
            }
            answers.insert(id, (commit, fin));
        }
        let revoke = revoker.await.unwrap();
        let Ok(Committed {
            outcome:
                Outcome::Transitioned {
                    voided,
                    pending,
                    gate: g,
                    ..
                },
            revision: revoke_rev,
        }) = revoke
        else {
            panic!("revoke: {revoke:?}")
        };
        assert_eq!((g.state, g.epoch), (GateState::Revoked, 2));
        // Open at the revoke ⇔ commit refused; committed at the revoke ⇔ its
        // finalize came after it (voided or recovered).
        assert_eq!(voided, refused_commits, "[{gate}] voided = commits refused");
        let late = match policy {
            Pending::Reject => fin_voided,
            Pending::Recover => fin_recovered,
        };
        assert_eq!(pending, late, "[{gate}] pending = finalizes after the revoke");
        assert_eq!(
            refused_commits + fin_voided + fin_recovered + fin_live,
            RACE_TICKETS
        );
        println!(
            "[{gate}] revoke at {revoke_rev}: {refused_commits} commits refused (voided {voided}), \
             {fin_live} finalized before, pending {pending}: {fin_voided} voided, {fin_recovered} recovered"
        );
        let stored = tickets_of(s, &gate).await;
        let mut entries: BTreeMap<String, u64> = BTreeMap::new();
        for e in feed_entries(s, &feed).await {
            assert!(
                entries.insert(e.id.clone(), e.revision).is_none(),
                "{} twice",
                e.id
            );
        }
        for (id, t) in &stored {
            let (commit, fin) = &answers[id];
            match t.state {
                TicketState::Voided => assert!(
                    commit.is_err()
                        || matches!(
                            fin,
                            Some(Ok(Committed {
                                outcome: Outcome::TicketVoided { .. },
                                ..
                            }))
                        ),
                    "{id}"
                ),
                TicketState::Finalized => {
                    let r = t.finalized_revision.unwrap();
                    assert_eq!(
                        t.recovered,
                        r > revoke_rev,
                        "{id}: recovered ⇔ finalized after the revoke"
                    );
                    if r > revoke_rev {
                        assert_eq!(
                            policy,
                            Pending::Recover,
                            "{id}: finalized after the revoke under reject"
                        );
                    }
                    assert_eq!(entries.get(id), Some(&r), "{id}: its entry, at its revision");
                }
                other => panic!("{id}: left {other:?}"),
            }
        }
        let finalized = stored
            .values()
            .filter(|t| t.state == TicketState::Finalized)
            .count();
        assert_eq!(
            entries.len(),
            finalized,
            "[{gate}] no entry without a finalization"
        );
    }
}

lockstep_testkit::backends!(
    crate::common::run;
    duplicate_finalize,
    terminal_race,
);
