//! Gate transitions: every (gate state × transition) of "Gate transitions",
//! with the `voided`/`pending` counts of terminal ones.

use super::*;

// ---------------------------------------------------------------------------
// 2. Gate transitions.

#[derive(Debug, Clone, Copy, PartialEq)]
enum WantTransition {
    /// 200, changed, to this state, with the epoch incremented or not.
    To(GateState, bool),
    /// 200, changed: false.
    Noop,
    /// 409 `invalid_transition`.
    Invalid,
    /// 410 `gate_closed`.
    Closed,
}

/// docs/gates.md "Gate transitions", row by row.
fn docs_transition(from: GateState, t: Transition) -> WantTransition {
    use GateState::*;
    use Transition::*;
    use WantTransition as W;
    match (from, t) {
        (Open, Pause) => W::To(Paused, false),
        (Open, Resume) | (Open, Reopen) => W::Noop,
        (Open, Revoke) | (Paused, Revoke) => W::To(Revoked, true),
        (Open, Delete) | (Paused, Delete) | (Revoked, Delete) => W::To(Deleted, true),
        (Paused, Pause) => W::Noop,
        (Paused, Resume) => W::To(Open, false),
        (Paused, Reopen) => W::Invalid,
        (Revoked, Pause) | (Revoked, Resume) => W::Closed,
        (Revoked, Revoke) => W::Noop,
        (Revoked, Reopen) => W::To(Open, true),
        (Deleted, Delete) => W::Noop,
        (Deleted, _) => W::Closed,
    }
}

/// Tickets for the transition cases, in the gate's first epoch.
const TR_OPEN: [&str; 2] = ["open-1", "open-2"];
const TR_COMMITTED: &str = "committed";
const TR_FINALIZED: &str = "finalized";
const TR_ABORTED: &str = "aborted";

async fn transition_case(store: Store, from: GateState, t: Transition) -> Result<(), String> {
    let id = format!("tr-{}-{}", from.as_str(), t.as_str());
    create_gate(&store, &id, Pending::Reject).await;
    let tid = |n: &str| format!("{id}/{n}");
    for n in TR_OPEN {
        admit(&store, &id, &tid(n)).await;
    }
    for n in [TR_COMMITTED, TR_FINALIZED, TR_ABORTED] {
        admit(&store, &id, &tid(n)).await;
    }
    prepare(&store, &id, &tid(TR_COMMITTED), TicketState::Committed).await;
    prepare(&store, &id, &tid(TR_FINALIZED), TicketState::Finalized).await;
    prepare(&store, &id, &tid(TR_ABORTED), TicketState::Aborted).await;
    let reach: &[Transition] = match from {
        GateState::Open => &[],
        GateState::Paused => &[Transition::Pause],
        GateState::Revoked => &[Transition::Revoke],
        GateState::Deleted => &[Transition::Delete],
    };
    for r in reach {
        transition(&store, &id, *r).await;
    }
    let before = get_gate(&store, &id).await.unwrap();
    assert_eq!(before.state, from);
    let tickets_before = tickets_of(&store, &id).await;
    let want = docs_transition(from, t);
    let got = store.execute(NS, transition_cmd(&id, t), ACTOR).await;
    let what = format!("{} → {}: want {want:?}, got {got:?}", from.as_str(), t.as_str());
    let after = get_gate(&store, &id).await.unwrap();
    let tickets_after = tickets_of(&store, &id).await;
    let unchanged = |why: &str| -> Result<(), String> {
        if after != before {
            return Err(format!("{what}: {why}, but the gate became {after:?}"));
        }
        if tickets_after != tickets_before {
            return Err(format!("{what}: {why}, but tickets changed"));
        }
        Ok(())
    };
    match (want, got) {
        (WantTransition::To(state, new_epoch), Ok(Committed { outcome, revision })) => {
            let Outcome::Transitioned {
                gate: g,
                changed,
                voided,
                pending,
            } = outcome
            else {
                return Err(format!("{what}: outcome"));
            };
            let epoch = before.epoch + u64::from(new_epoch);
            if !changed || g.state != state || g.epoch != epoch {
                return Err(format!("{what}: want changed to {state:?} at epoch {epoch}"));
            }
            if g != after {
                return Err(format!("{what}: answered {g:?}, stored {after:?}"));
            }
            if after.policy != before.policy
                || after.meta != before.meta
                || after.created_at != before.created_at
            {
                return Err(format!("{what}: a transition changes state and epoch only"));
            }
            // Terminal from open/paused closes epoch 1, which holds 2 open and 1
            // committed ticket; from revoked the old epoch (2) holds none.
            let terminal = matches!(t, Transition::Revoke | Transition::Delete);
            let closes_first_epoch = terminal && before.epoch == 1;
            let (want_voided, want_pending) = if closes_first_epoch { (2, 1) } else { (0, 0) };
            if (voided, pending) != (want_voided, want_pending) {
                return Err(format!(
                    "{what}: voided {voided}, pending {pending}; want {want_voided}, {want_pending}"
                ));
            }
            for (tid_, t_before) in &tickets_before {
                let t_after = &tickets_after[tid_];
                let voids = closes_first_epoch && t_before.state == TicketState::Open;
                let want_state = if voids {
                    TicketState::Voided
                } else {
                    t_before.state
                };
                if t_after.state != want_state {
                    return Err(format!(
                        "{what}: ticket {tid_} is {:?}, want {want_state:?}",
                        t_after.state
                    ));
                }
                if !voids && t_after != t_before {
                    return Err(format!("{what}: ticket {tid_} changed: {t_after:?}"));
                }
            }
            if revision == 0 {
                return Err(format!("{what}: a change reports revision 0"));
            }
            Ok(())
        }
        (WantTransition::Noop, Ok(c)) => match c.outcome {
            Outcome::Transitioned {
                gate: g,
                changed: false,
                voided: 0,
                pending: 0,
            } if g == before => unchanged("a no-op"),
            other => Err(format!("{what}: want a no-op answer, got {other:?}")),
        },
        (WantTransition::Invalid, Err(Error::Core(CoreError::InvalidTransition(_)))) => unchanged("refused"),
        (WantTransition::Closed, Err(Error::Core(CoreError::GateClosed(_)))) => unchanged("refused"),
        _ => Err(format!("{what}: mismatch")),
    }
}

/// Every (state, transition) pair of docs/gates.md "Gate transitions".
async fn transition_table(env: Env) {
    let mut tasks = Vec::new();
    for from in [
        GateState::Open,
        GateState::Paused,
        GateState::Revoked,
        GateState::Deleted,
    ] {
        for t in TRANSITIONS {
            tasks.push(tokio::spawn(transition_case(env.store.clone(), from, t)));
        }
    }
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.unwrap() {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "transitions:\n{}", failures.join("\n"));

    // A missing gate is not found for every command on it.
    let s = &env.store;
    for cmd in [
        transition_cmd("missing", Transition::Pause),
        admit_cmd("missing", "m-1"),
        ticket_cmd("missing", "m-1", TicketOp::Check, None),
    ] {
        match refused(s, cmd.clone()).await {
            CoreError::NotFound(_) => {}
            other => panic!("{cmd:?}: want not found, got {other:?}"),
        }
    }

    // Revoke, reopen, revoke again: each epoch closes its own tickets only, and
    // a committed ticket of the first epoch stays pending (not counted again).
    create_gate(s, "cycle", Pending::Recover).await;
    admit(s, "cycle", "c1-open").await;
    admit(s, "cycle", "c1-committed").await;
    ticket_ok(s, "cycle", "c1-committed", TicketOp::Commit).await;
    let (g, _, voided, pending) = transition(s, "cycle", Transition::Revoke).await;
    assert_eq!((g.epoch, voided, pending), (2, 1, 1));
    let (g, _, _, _) = transition(s, "cycle", Transition::Reopen).await;
    assert_eq!((g.state, g.epoch), (GateState::Open, 3));
    admit(s, "cycle", "c3-open").await;
    admit(s, "cycle", "c3-committed").await;
    ticket_ok(s, "cycle", "c3-committed", TicketOp::Commit).await;
    let (g, _, voided, pending) = transition(s, "cycle", Transition::Revoke).await;
    assert_eq!((g.state, g.epoch, voided, pending), (GateState::Revoked, 4, 1, 1));
    let (g, _, voided, pending) = transition(s, "cycle", Transition::Delete).await;
    assert_eq!((g.state, g.epoch, voided, pending), (GateState::Deleted, 5, 0, 0));
    let states: BTreeMap<String, TicketState> = tickets_of(s, "cycle")
        .await
        .into_iter()
        .map(|(k, t)| (k, t.state))
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([
            ("c1-committed".to_owned(), TicketState::Committed),
            ("c1-open".to_owned(), TicketState::Voided),
            ("c3-committed".to_owned(), TicketState::Committed),
            ("c3-open".to_owned(), TicketState::Voided),
        ])
    );
    // Both pending tickets are still recoverable, each once.
    for t in ["c1-committed", "c3-committed"] {
        let done = ticket_ok(s, "cycle", t, TicketOp::Finalize).await;
        assert_eq!(
            (done.state, done.recovered),
            (TicketState::Finalized, true),
            "{t}"
        );
        let again = ticket_ok(s, "cycle", t, TicketOp::Finalize).await;
        assert_eq!(again, done, "a repeated finalize answers the same ticket");
    }
}

lockstep_testkit::backends!(
    crate::common::run;
    transition_table,
);
