//! Gate conformance (SPEC §7, §15 "Gates", docs/gates.md): the same cases run
//! against every backend of `lockstep_store::Store`, like `conformance.rs`. Each
//! case is an `async fn case_name(env: Env)`; the `backends!` list at the bottom
//! generates `sqlite::case_name` and `postgres::case_name`.
//!
//! The story behind them (seeds/001): owner actions (pause, resume, revoke,
//! delete) raced anonymous upload steps on other instances, and late steps of
//! an old epoch slipped in after a revoke. Here every ticket answer must be
//! what `lockstep_core::gate::decide` (the table of docs/gates.md) says for the
//! state the store actually holds, and a terminal transition closes the old
//! epoch atomically.
//!
//! - `decision_table`: every (gate view × ticket state × operation × policy) of
//!   docs/gates.md, each state reached through the API's own operations. Four
//!   (view, state) pairs cannot be reached and are asserted unreachable: a
//!   voided ticket never sees its own epoch open or paused (voiding always comes
//!   with a new epoch), and an open ticket never sees a newer epoch or a
//!   terminal gate (the terminal transition voids it in the same step).
//! - `transition_table`: every (gate state × transition) of "Gate transitions",
//!   with the `voided`/`pending` counts of terminal ones.
//! - `admission`, `put_gate_rules`: admitting and `PUT` rules of §15.
//! - `duplicate_finalize`: 20 concurrent finalizes with `append` over 3 store
//!   instances: one finalization, one feed entry, the same answer for all.
//! - `terminal_race`: a revoke races commits and finalizes of 40 tickets on 3
//!   instances; its `voided`/`pending` counts equal what the tickets were told.
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep-store --test it gates:: -- --test-threads=4
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use lockstep_core::feed::{Entry, NewEntry};
use lockstep_core::gate::{
    self, Effect as GateEffect, Gate, GateState, GateView, Pending, Policy, Refusal, Ticket, TicketOp,
    TicketState, Transition, ALL_GATE_VIEWS, ALL_TICKET_STATES,
};
use lockstep_core::{Command, Error as CoreError, Limits, Millis, Outcome};
use lockstep_store::{Committed, Error, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

// ---------------------------------------------------------------------------
// Helpers.

const OPS: [TicketOp; 4] = [
    TicketOp::Check,
    TicketOp::Commit,
    TicketOp::Finalize,
    TicketOp::Abort,
];

const TRANSITIONS: [Transition; 5] = [
    Transition::Pause,
    Transition::Resume,
    Transition::Revoke,
    Transition::Delete,
    Transition::Reopen,
];

fn pending_name(p: Pending) -> &'static str {
    match p {
        Pending::Reject => "reject",
        Pending::Recover => "recover",
    }
}

fn put_gate_cmd(id: &str, pending: Option<Pending>, meta: Option<Value>) -> Command {
    Command::PutGate {
        id: id.to_owned(),
        policy: pending.map(|pending| Policy { pending }),
        meta,
    }
}

fn transition_cmd(id: &str, transition: Transition) -> Command {
    Command::Transition {
        id: id.to_owned(),
        transition,
    }
}

fn admit_cmd(gate: &str, ticket: &str) -> Command {
    Command::Admit {
        gate: gate.to_owned(),
        ticket: ticket.to_owned(),
        meta: Some(json!({"by": "tester"})),
        capability: None,
    }
}

/// A ticket operation; `append` (finalize only) appends `{feed, data}` with the
/// ticket's id, as the HTTP shell builds it.
fn ticket_cmd(gate: &str, ticket: &str, op: TicketOp, append: Option<(&str, Value)>) -> Command {
    Command::Ticket {
        gate: gate.to_owned(),
        ticket: ticket.to_owned(),
        op,
        append: append.map(|(feed, data)| {
            let entry = NewEntry::new(ticket.to_owned(), data, None, &Limits::default())
                .unwrap_or_else(|e| panic!("bad entry in the test: {e}"));
            (feed.to_owned(), entry)
        }),
        capability: None,
    }
}

/// Creates a gate; it must be created open at epoch 1.
async fn create_gate(store: &Store, id: &str, pending: Pending) -> Gate {
    let c = exec(
        store,
        put_gate_cmd(id, Some(pending), Some(json!({"owner": "o"}))),
    )
    .await;
    match c.outcome {
        Outcome::GatePut { gate, created } => {
            assert!(created, "gate {id} is new");
            assert_eq!((gate.state, gate.epoch), (GateState::Open, 1), "{gate:?}");
            assert_eq!(gate.policy.pending, pending);
            gate
        }
        other => panic!("PUT gate {id}: {other:?}"),
    }
}

/// Applies a transition that must succeed: the gate after it and the answer.
async fn transition(store: &Store, id: &str, t: Transition) -> (Gate, bool, usize, usize) {
    let c = exec(store, transition_cmd(id, t)).await;
    match c.outcome {
        Outcome::Transitioned {
            gate,
            changed,
            voided,
            pending,
        } => (gate, changed, voided, pending),
        other => panic!("{t:?} on {id}: {other:?}"),
    }
}

/// Admits a new ticket.
async fn admit(store: &Store, gate: &str, ticket: &str) -> Ticket {
    let c = exec(store, admit_cmd(gate, ticket)).await;
    match c.outcome {
        Outcome::Admitted { ticket: t, created } => {
            assert!(created, "ticket {ticket} is new");
            assert_eq!(t.state, TicketState::Open);
            t
        }
        other => panic!("admit {ticket}: {other:?}"),
    }
}

/// A ticket operation that must succeed with a ticket.
async fn ticket_ok(store: &Store, gate: &str, ticket: &str, op: TicketOp) -> Ticket {
    let c = exec(store, ticket_cmd(gate, ticket, op, None)).await;
    match c.outcome {
        Outcome::TicketDone { ticket } => ticket,
        other => panic!("{op:?} on {ticket}: {other:?}"),
    }
}

async fn get_gate(store: &Store, id: &str) -> Option<Gate> {
    store
        .get_gate(NS, id)
        .await
        .unwrap_or_else(|e| panic!("get gate {id}: {e:?}"))
}

/// Every ticket of a gate by id, paged 7 at a time (paging is part of the test).
async fn tickets_of(store: &Store, gate: &str) -> BTreeMap<String, Ticket> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_tickets(NS, gate, None, after.as_deref(), 7)
            .await
            .unwrap_or_else(|e| panic!("list tickets of {gate}: {e:?}"));
        for t in &page {
            assert_eq!(t.gate, gate, "listing of {gate} holds {t:?}");
            if let Some(a) = &after {
                assert!(&t.id > a, "tickets list in id order");
            }
            assert!(
                out.insert(t.id.clone(), t.clone()).is_none(),
                "{} listed twice",
                t.id
            );
        }
        match page.last() {
            Some(last) if page.len() == 7 => after = Some(last.id.clone()),
            _ => return out,
        }
    }
}

/// Every entry of a feed, oldest first.
async fn feed_entries(store: &Store, feed: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    loop {
        let after = out.last().map(|e| (e.at, e.id.clone()));
        let page = store
            .list_entries(NS, feed, false, after, 100)
            .await
            .unwrap_or_else(|e| panic!("list entries of {feed}: {e:?}"));
        let n = page.entries.len();
        out.extend(page.entries);
        if n < 100 {
            return out;
        }
    }
}

/// A fresh write: the current revision.
async fn probe_revision(store: &Store) -> u64 {
    let c = exec(store, put("probe", json!(1))).await;
    c.revision
}

/// The refusal of a store error as the table names it.
fn refusal_of(e: &Error) -> Option<Refusal> {
    match e {
        Error::Core(CoreError::GateClosed(_)) => Some(Refusal::Closed),
        Error::Core(CoreError::GatePaused(_)) => Some(Refusal::Paused),
        Error::Core(CoreError::TicketConflict(_)) => Some(Refusal::Conflict),
        _ => None,
    }
}

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

/// Brings an open ticket (under a live gate) towards `state` with the API's own
/// operations; `voided` is left open: the setup's terminal transition voids it.
async fn prepare(store: &Store, gate: &str, ticket: &str, state: TicketState) {
    match state {
        TicketState::Open | TicketState::Voided => {}
        TicketState::Committed => {
            ticket_ok(store, gate, ticket, TicketOp::Commit).await;
        }
        TicketState::Finalized => {
            ticket_ok(store, gate, ticket, TicketOp::Commit).await;
            let t = ticket_ok(store, gate, ticket, TicketOp::Finalize).await;
            assert_eq!(t.state, TicketState::Finalized);
        }
        TicketState::Aborted => {
            let t = ticket_ok(store, gate, ticket, TicketOp::Abort).await;
            assert_eq!(t.state, TicketState::Aborted);
        }
    }
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

// ---------------------------------------------------------------------------
// 3. Admission and PUT (§15).

async fn admission(env: Env) {
    let s = &env.store;
    create_gate(s, "a", Pending::Reject).await;
    create_gate(s, "b", Pending::Reject).await;
    let t = admit(s, "a", "t1").await;
    assert_eq!((t.gate.as_str(), t.epoch), ("a", 1));
    // The same id, same gate, still open: returned as is, nothing written.
    let rev = probe_revision(s).await;
    let c = exec(s, admit_cmd("a", "t1")).await;
    assert_eq!(
        c.outcome,
        Outcome::Admitted {
            ticket: t.clone(),
            created: false
        }
    );
    assert_eq!(c.revision, rev, "a repeated admission writes nothing");
    // Ticket ids are unique per namespace: another gate's id is a conflict.
    assert!(matches!(
        refused(s, admit_cmd("b", "t1")).await,
        CoreError::TicketConflict(_)
    ));
    // A ticket of gate a addressed through gate b does not exist there.
    for op in OPS {
        assert!(
            matches!(
                refused(s, ticket_cmd("b", "t1", op, None)).await,
                CoreError::NotFound(_)
            ),
            "{op:?}"
        );
    }
    assert_eq!(tickets_of(s, "a").await["t1"], t, "untouched through gate b");
    // No longer open: a conflict.
    ticket_ok(s, "a", "t1", TicketOp::Commit).await;
    assert!(matches!(
        refused(s, admit_cmd("a", "t1")).await,
        CoreError::TicketConflict(_)
    ));
    // Paused: 423; resumed: admitted.
    transition(s, "a", Transition::Pause).await;
    assert!(matches!(
        refused(s, admit_cmd("a", "t2")).await,
        CoreError::GatePaused(_)
    ));
    // An id admitted before the pause and still open is returned, even paused.
    admit(s, "b", "b1").await;
    transition(s, "b", Transition::Pause).await;
    let c = exec(s, admit_cmd("b", "b1")).await;
    assert!(
        matches!(c.outcome, Outcome::Admitted { created: false, .. }),
        "{c:?}"
    );
    transition(s, "b", Transition::Resume).await;
    transition(s, "a", Transition::Resume).await;
    admit(s, "a", "t2").await;
    // Revoked: 410, also for the open id of the old epoch (voided now).
    transition(s, "a", Transition::Revoke).await;
    for id in ["t2", "t3"] {
        let e = refused(s, admit_cmd("a", id)).await;
        let ok = if id == "t2" {
            // t2 exists and is no longer open.
            matches!(e, CoreError::TicketConflict(_))
        } else {
            matches!(e, CoreError::GateClosed(_))
        };
        assert!(ok, "admit {id} on a revoked gate: {e:?}");
    }
    // Reopened: a new epoch; the old id stays used.
    let (g, _, _, _) = transition(s, "a", Transition::Reopen).await;
    assert_eq!(g.epoch, 3);
    let t3 = admit(s, "a", "t3").await;
    assert_eq!(t3.epoch, 3);
    assert!(matches!(
        refused(s, admit_cmd("a", "t2")).await,
        CoreError::TicketConflict(_)
    ));
    transition(s, "a", Transition::Delete).await;
    assert!(matches!(
        refused(s, admit_cmd("a", "t4")).await,
        CoreError::GateClosed(_)
    ));
}

async fn put_gate_rules(env: Env) {
    let s = &env.store;
    let g = create_gate(s, "p", Pending::Reject).await;
    transition(s, "p", Transition::Pause).await;
    // PUT of an existing gate updates policy and meta only.
    let c = exec(
        s,
        put_gate_cmd("p", Some(Pending::Recover), Some(json!({"v": 2}))),
    )
    .await;
    let Outcome::GatePut { gate, created } = c.outcome else {
        panic!("{c:?}")
    };
    assert!(!created);
    assert_eq!((gate.state, gate.epoch), (GateState::Paused, 1));
    assert_eq!(gate.policy.pending, Pending::Recover);
    assert_eq!(gate.meta, json!({"v": 2}));
    assert_eq!(gate.created_at, g.created_at);
    assert_eq!(get_gate(s, "p").await.unwrap(), gate);
    // Omitted fields keep their values.
    let c = exec(s, put_gate_cmd("p", None, None)).await;
    let Outcome::GatePut { gate: kept, .. } = c.outcome else {
        panic!("{c:?}")
    };
    assert_eq!((kept.policy, &kept.meta), (gate.policy, &gate.meta));
    // Revoked: PUT still updates; deleted: 410.
    transition(s, "p", Transition::Revoke).await;
    let c = exec(s, put_gate_cmd("p", Some(Pending::Reject), None)).await;
    assert!(matches!(c.outcome, Outcome::GatePut { created: false, .. }));
    transition(s, "p", Transition::Delete).await;
    let before = get_gate(s, "p").await.unwrap();
    assert!(matches!(
        refused(s, put_gate_cmd("p", None, Some(json!(1)))).await,
        CoreError::GateClosed(_)
    ));
    assert_eq!(get_gate(s, "p").await.unwrap(), before);
    // A default gate rejects pending tickets.
    let c = exec(s, put_gate_cmd("d", None, None)).await;
    let Outcome::GatePut { gate, created: true } = c.outcome else {
        panic!("{c:?}")
    };
    assert_eq!(gate.policy.pending, Pending::Reject);
}

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

// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Capabilities: a ticket command made with one checks, in its own transaction,
// that the gate is still at the capability's epoch and that it has not expired.

async fn capability_checks(env: Env) {
    use lockstep_core::capability::CapabilityCheck;
    let s = &env.store;
    let g = create_gate(s, "cap", Pending::Reject).await;
    let far = Millis(i64::MAX);
    let with = |cmd: Command, check: CapabilityCheck| match cmd {
        Command::Admit {
            gate, ticket, meta, ..
        } => Command::Admit {
            gate,
            ticket,
            meta,
            capability: Some(check),
        },
        Command::Ticket {
            gate,
            ticket,
            op,
            append,
            ..
        } => Command::Ticket {
            gate,
            ticket,
            op,
            append,
            capability: Some(check),
        },
        other => other,
    };
    let current = CapabilityCheck {
        epoch: g.epoch,
        expires_at: far,
    };
    exec(s, with(admit_cmd("cap", "t1"), current)).await;
    exec(s, with(ticket_cmd("cap", "t1", TicketOp::Commit, None), current)).await;
    // Expired: 401, nothing written.
    let expired = CapabilityCheck {
        epoch: g.epoch,
        expires_at: Millis(0),
    };
    let e = refused(s, with(admit_cmd("cap", "t2"), expired)).await;
    assert!(matches!(e, CoreError::Unauthorized(_)), "{e:?}");
    assert!(!tickets_of(s, "cap").await.contains_key("t2"));
    // The epoch moved on (revoke, then reopen): the old capability is 410 at
    // once, even for a ticket admitted under it; a new one works.
    transition(s, "cap", Transition::Revoke).await;
    let (reopened, ..) = transition(s, "cap", Transition::Reopen).await;
    for cmd in [
        admit_cmd("cap", "t3"),
        ticket_cmd("cap", "t1", TicketOp::Finalize, None),
    ] {
        let e = refused(s, with(cmd, current)).await;
        assert!(matches!(e, CoreError::GateClosed(_)), "{e:?}");
    }
    let fresh = CapabilityCheck {
        epoch: reopened.epoch,
        expires_at: far,
    };
    exec(s, with(admit_cmd("cap", "t3"), fresh)).await;
}

lockstep_testkit::backends!(
    crate::common::run;
    capability_checks,
    decision_table,
    transition_table,
    admission,
    put_gate_rules,
    duplicate_finalize,
    terminal_race,
);
