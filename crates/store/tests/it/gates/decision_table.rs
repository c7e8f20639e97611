//! The decision table of docs/gates.md, state by state: every (gate view ×
//! ticket state × operation × policy), each state reached through the API.

use super::*;

// ---------------------------------------------------------------------------
// 1. The decision table of docs/gates.md, state by state.

/// How a gate is brought into a view after its tickets reached their states.
#[derive(Debug, Clone, Copy)]
enum Setup {
    Live,
    Paused,
    /// revoke, reopen.
    Reopened,
    /// revoke, reopen, pause.
    ReopenedPaused,
    Revoked,
    Deleted,
    /// revoke, delete.
    RevokedDeleted,
}

const SETUPS: [Setup; 7] = [
    Setup::Live,
    Setup::Paused,
    Setup::Reopened,
    Setup::ReopenedPaused,
    Setup::Revoked,
    Setup::Deleted,
    Setup::RevokedDeleted,
];

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Live => "live",
            Setup::Paused => "paused",
            Setup::Reopened => "reopened",
            Setup::ReopenedPaused => "reopened-paused",
            Setup::Revoked => "revoked",
            Setup::Deleted => "deleted",
            Setup::RevokedDeleted => "revoked-deleted",
        }
    }

    fn transitions(self) -> &'static [Transition] {
        use Transition::*;
        match self {
            Setup::Live => &[],
            Setup::Paused => &[Pause],
            Setup::Reopened => &[Revoke, Reopen],
            Setup::ReopenedPaused => &[Revoke, Reopen, Pause],
            Setup::Revoked => &[Revoke],
            Setup::Deleted => &[Delete],
            Setup::RevokedDeleted => &[Revoke, Delete],
        }
    }

    fn view(self) -> GateView {
        match self {
            Setup::Live => GateView::Live,
            Setup::Paused => GateView::Paused,
            Setup::Reopened | Setup::ReopenedPaused => GateView::EpochMoved,
            Setup::Revoked | Setup::Deleted | Setup::RevokedDeleted => GateView::Closed,
        }
    }
}

/// The (view, state) pairs no history reaches.
fn unreachable_pairs() -> BTreeSet<(String, TicketState)> {
    [
        (GateView::Live, TicketState::Voided),
        (GateView::Paused, TicketState::Voided),
        (GateView::EpochMoved, TicketState::Open),
        (GateView::Closed, TicketState::Open),
    ]
    .into_iter()
    .map(|(v, s)| (format!("{v:?}"), s))
    .collect()
}

fn table_gate(policy: Pending, setup: Setup) -> String {
    format!("table-{}-{}", pending_name(policy), setup.name())
}

fn table_ticket(gate: &str, state: TicketState, op: TicketOp) -> String {
    format!("{gate}/{}/{}", state.as_str(), op.as_str())
}

fn table_feed(gate: &str) -> String {
    format!("recv/{gate}")
}

/// One gate of the table: 20 tickets (state × op) brought to their state, then
/// the gate brought into the setup's view.
async fn set_up_table_gate(store: Store, policy: Pending, setup: Setup) -> Gate {
    let gate = table_gate(policy, setup);
    create_gate(&store, &gate, policy).await;
    for state in ALL_TICKET_STATES {
        for op in OPS {
            let id = table_ticket(&gate, state, op);
            admit(&store, &gate, &id).await;
            prepare(&store, &gate, &id, state).await;
        }
    }
    for t in setup.transitions() {
        let (_, changed, _, _) = transition(&store, &gate, *t).await;
        assert!(changed, "{t:?} on {gate}");
    }
    get_gate(&store, &gate).await.unwrap()
}

/// Every (gate view, ticket state, operation, policy) through `Store::execute`,
/// compared with `gate::decide`.
async fn decision_table(env: Env) {
    let s = &env.store;
    // Set the gates up concurrently (they are independent).
    let mut setups = Vec::new();
    for policy in [Pending::Reject, Pending::Recover] {
        for setup in SETUPS {
            setups.push((
                policy,
                setup,
                tokio::spawn(set_up_table_gate(s.clone(), policy, setup)),
            ));
        }
    }
    let mut gates = Vec::new();
    for (policy, setup, task) in setups {
        gates.push((policy, setup, task.await.unwrap()));
    }

    // Then run the operations one at a time, so "nothing was written" can be
    // checked on the revision counter.
    let mut last_rev = probe_revision(s).await;
    let mut failures: Vec<String> = Vec::new();
    let mut exercised: BTreeSet<(String, TicketState, &'static str, &'static str)> = BTreeSet::new();
    let mut unreachable: BTreeSet<(String, TicketState)> = BTreeSet::new();
    for (policy, setup, g) in &gates {
        let before_all = tickets_of(s, &g.id).await;
        assert_eq!(before_all.len(), 20, "{}", g.id);
        let feed = table_feed(&g.id);
        let mut appended: BTreeMap<String, u64> = BTreeMap::new();
        for state in ALL_TICKET_STATES {
            for op in OPS {
                let id = table_ticket(&g.id, state, op);
                let t = before_all[&id].clone();
                let view = GateView::of(g, t.epoch);
                assert_eq!(view, setup.view(), "{id}: the setup gives the intended view");
                if t.state != state {
                    // Only the pairs listed in unreachable_pairs() may end here.
                    unreachable.insert((format!("{view:?}"), state));
                    continue;
                }
                exercised.insert((format!("{view:?}"), state, op.as_str(), pending_name(*policy)));
                let want = gate::decide(view, state, op, *policy);
                let append = (op == TicketOp::Finalize).then(|| (feed.as_str(), json!({"ticket": id})));
                let got = s.execute(NS, ticket_cmd(&g.id, &id, op, append), ACTOR).await;
                let what = format!(
                    "[{} policy, {}] {} ticket, {}: want {want:?}, got {got:?}",
                    pending_name(*policy),
                    view.describe(),
                    state.as_str(),
                    op.as_str()
                );
                // The ticket as it must be stored afterwards.
                let expected: Ticket = match (&want, &got) {
                    (Ok(GateEffect::Unchanged), Ok(c)) => {
                        match &c.outcome {
                            Outcome::TicketDone { ticket } if *ticket == t => {}
                            _ => failures.push(format!("{what}: the answer is not the unchanged ticket")),
                        }
                        if c.revision != last_rev {
                            failures.push(format!(
                                "{what}: an unchanged answer reports revision {} (current {last_rev})",
                                c.revision
                            ));
                        }
                        t.clone()
                    }
                    (Ok(GateEffect::To(_) | GateEffect::Recover), Ok(c)) => {
                        let (to, recovered) = match want {
                            Ok(GateEffect::To(to)) => (to, false),
                            _ => (TicketState::Finalized, true),
                        };
                        if c.revision <= last_rev {
                            failures.push(format!(
                                "{what}: a change at revision {} ≤ {last_rev}",
                                c.revision
                            ));
                        }
                        last_rev = last_rev.max(c.revision);
                        match &c.outcome {
                            Outcome::TicketDone { ticket } => {
                                let finalized_revision = (to == TicketState::Finalized).then_some(c.revision);
                                let want_ticket = Ticket {
                                    state: to,
                                    recovered,
                                    finalized_revision,
                                    revision: c.revision,
                                    updated_at: ticket.updated_at,
                                    ..t.clone()
                                };
                                if *ticket != want_ticket {
                                    failures
                                        .push(format!("{what}: answered {ticket:?}, want {want_ticket:?}"));
                                }
                                if to == TicketState::Finalized {
                                    appended.insert(id.clone(), c.revision);
                                }
                                ticket.clone()
                            }
                            other => {
                                failures.push(format!("{what}: outcome {other:?}"));
                                continue;
                            }
                        }
                    }
                    (Ok(GateEffect::VoidAndClose), Ok(c)) => {
                        if !matches!(c.outcome, Outcome::TicketVoided { .. }) {
                            failures.push(format!("{what}: expected the TicketVoided outcome"));
                        }
                        if c.revision <= last_rev {
                            failures.push(format!("{what}: voiding at revision {} ≤ {last_rev}", c.revision));
                        }
                        last_rev = last_rev.max(c.revision);
                        Ticket {
                            state: TicketState::Voided,
                            revision: c.revision,
                            ..t.clone()
                        }
                    }
                    (Err(r), Err(e)) if refusal_of(e) == Some(*r) => t.clone(),
                    _ => {
                        failures.push(format!("{what}: mismatch"));
                        continue;
                    }
                };
                // Nothing else changed, and the ticket is stored as answered.
                let stored = tickets_of(s, &g.id).await;
                let mut stored_t = stored[&id].clone();
                if matches!(want, Ok(GateEffect::VoidAndClose)) {
                    stored_t.updated_at = expected.updated_at;
                }
                if stored_t != expected {
                    failures.push(format!("{what}: stored {:?}, want {expected:?}", stored[&id]));
                }
            }
        }
        // No other ticket of the gate moved, and the gate did not either.
        let after = get_gate(s, &g.id).await.unwrap();
        assert_eq!(&after, g, "ticket operations leave the gate as it was");
        // Finalized with append ⇔ appended (id = ticket id, at the same revision).
        let entries = feed_entries(s, &feed).await;
        let got: BTreeMap<String, u64> = entries.iter().map(|e| (e.id.clone(), e.revision)).collect();
        assert_eq!(got.len(), entries.len(), "one entry per id in {feed}");
        if got != appended {
            failures.push(format!(
                "{}: feed entries {got:?}, want exactly the tickets finalized now {appended:?}",
                g.id
            ));
        }
        for e in &entries {
            assert_eq!(e.data["ticket"], json!(e.id), "{e:?}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} answers differ from docs/gates.md:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        unreachable,
        unreachable_pairs(),
        "the unreachable (view, state) pairs"
    );
    // Every reachable cell of both tables was exercised.
    for policy in ["reject", "recover"] {
        for view in ALL_GATE_VIEWS {
            for state in ALL_TICKET_STATES {
                if unreachable.contains(&(format!("{view:?}"), state)) {
                    continue;
                }
                for op in OPS {
                    assert!(
                        exercised.contains(&(format!("{view:?}"), state, op.as_str(), policy)),
                        "{policy} / {view:?} / {state:?} / {op:?} was not exercised"
                    );
                }
            }
        }
    }
    assert_eq!(exercised.len(), 2 * 16 * 4);
}

lockstep_testkit::backends!(
    crate::common::run;
    decision_table,
);
