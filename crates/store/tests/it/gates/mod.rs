//! Gate conformance (SPEC §7, §15 "Gates", docs/gates.md): the same cases run
//! against every backend of `lockstep_store::Store`, like `conformance.rs`. Each
//! case is an `async fn case_name(env: Env)`; the `backends!` list at the bottom
//! of each topic module generates `<topic>::sqlite::case_name` and
//! `<topic>::postgres::case_name`.
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

mod admission;
mod capabilities;
mod decision_table;
mod races;
mod transitions;

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
