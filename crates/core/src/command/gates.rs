//! Gates and tickets: create/update, lifecycle transitions (closing an epoch
//! voids its open tickets), admission, and the ticket operations (a finalize
//! may append a feed entry in the same step).

use super::answer::{Admitted, GatePut, TicketAnswer, Transitioned};
use super::effect::change;
use super::rows::{feed_config, feed_entry, gate_row, ticket_row};
use super::{Ctx, Effect, Mutation, Row, RowKey, Snapshot};
use crate::capability::CapabilityCheck;
use crate::feed::{self, NewEntry};
use crate::gate::{self, Gate, Policy, Ticket, TicketOp, TicketState, Transition};
use crate::{ChangeKind, ChangeOp, Error};

/// `PUT /gates/{id}`: create open at epoch 1, or update policy and meta.
pub(super) fn put(
    id: &str,
    policy: Option<Policy>,
    meta: &Option<serde_json::Value>,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<GatePut>, Error> {
    let existing = gate_row(snapshot, id).ok();
    let (g, created) = gate::put(existing.as_ref(), id, policy, meta.clone(), ctx.revision, ctx.now)?;
    let op = if created {
        ChangeOp::Create
    } else {
        ChangeOp::Update
    };
    Ok(Effect {
        changes: vec![change(ctx, 0, ChangeKind::Gate, id, op, false)],
        mutations: vec![Mutation::Put(Row::Gate(g.clone()))],
        outcome: GatePut { gate: g, created },
    })
}

/// A transition; one that closes the epoch voids the epoch's open tickets.
pub(super) fn transition(
    id: &str,
    transition: Transition,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<Transitioned>, Error> {
    let g = gate_row(snapshot, id)?;
    let Some(after) = gate::transition(&g, transition, ctx.revision, ctx.now)? else {
        return Ok(Effect::answer(transitioned(g, false, 0, 0)));
    };
    let op = ChangeOp::from_transition(transition);
    let mut effect = Effect {
        changes: vec![change(ctx, 0, ChangeKind::Gate, id, op, false)],
        mutations: vec![Mutation::Put(Row::Gate(after.clone()))],
        outcome: transitioned(after.clone(), true, 0, 0),
    };
    if gate::closes_epoch(transition) {
        let tickets = match snapshot.get(&RowKey::GateTickets(id.to_owned())) {
            Some(Some(Row::GateTickets { tickets, .. })) => tickets.clone(),
            _ => vec![],
        };
        let (voided, pending) = gate::close_epoch(&tickets, g.epoch, ctx.revision, ctx.now);
        let n = voided.len();
        effect
            .mutations
            .extend(voided.into_iter().map(|t| Mutation::Put(Row::Ticket(t))));
        effect.outcome = transitioned(after, true, n, pending);
    }
    Ok(effect)
}

fn transitioned(gate: Gate, changed: bool, voided: usize, pending: usize) -> Transitioned {
    Transitioned {
        gate,
        changed,
        voided,
        pending,
    }
}

/// Admits a ticket under the gate's current epoch (a known id answers it again).
pub(super) fn admit(
    gate_id: &str,
    ticket: &str,
    meta: &Option<serde_json::Value>,
    capability: Option<&CapabilityCheck>,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<Admitted>, Error> {
    let g = gate_row(snapshot, gate_id)?;
    if let Some(c) = capability {
        c.check(gate_id, g.epoch, ctx.now)?;
    }
    let existing = ticket_row(snapshot, ticket);
    let (t, created) = gate::admit(&g, existing.as_ref(), ticket, meta.clone(), ctx.revision, ctx.now)?;
    if !created {
        return Ok(Effect::answer(Admitted { ticket: t, created }));
    }
    Ok(Effect {
        changes: vec![change(ctx, 0, ChangeKind::Gate, gate_id, ChangeOp::Admit, false)],
        mutations: vec![Mutation::Put(Row::Ticket(t.clone()))],
        outcome: Admitted { ticket: t, created },
    })
}

/// A ticket operation (check, commit, finalize, abort) by the decision table.
pub(super) fn ticket(
    gate_id: &str,
    ticket: &str,
    op: TicketOp,
    append: Option<&(String, NewEntry)>,
    capability: Option<&CapabilityCheck>,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<TicketAnswer>, Error> {
    let g = gate_row(snapshot, gate_id)?;
    if let Some(c) = capability {
        c.check(gate_id, g.epoch, ctx.now)?;
    }
    let t = ticket_row(snapshot, ticket)
        .filter(|t| t.gate == gate_id)
        .ok_or_else(|| Error::NotFound(format!("ticket {ticket:?} of gate {gate_id:?} does not exist")))?;
    let Some(after) = gate::ticket_op(&g, &t, op, ctx.revision, ctx.now)? else {
        return Ok(Effect::answer(TicketAnswer::Done(t)));
    };
    let change_op = match after.state {
        TicketState::Committed => ChangeOp::Commit,
        TicketState::Finalized => ChangeOp::Finalize,
        TicketState::Aborted => ChangeOp::Abort,
        TicketState::Voided | TicketState::Open => ChangeOp::Void,
    };
    let outcome = match after.state {
        TicketState::Voided => TicketAnswer::Voided {
            detail: voided_detail(&g, &t),
        },
        _ => TicketAnswer::Done(after.clone()),
    };
    let mut effect = Effect {
        changes: vec![change(ctx, 0, ChangeKind::Gate, gate_id, change_op, false)],
        mutations: vec![Mutation::Put(Row::Ticket(after.clone()))],
        outcome,
    };
    if let (TicketState::Finalized, Some((feed, entry))) = (after.state, append) {
        append_finalized(&mut effect, feed, entry, snapshot, ctx);
    }
    Ok(effect)
}

/// Why a committed ticket was voided at finalize (`reject` pending policy).
fn voided_detail(g: &Gate, t: &Ticket) -> String {
    format!(
        "ticket {:?} was committed under epoch {} and gate {:?} is {} at epoch {}: \
         rejected by the pending policy and voided",
        t.id,
        t.epoch,
        g.id,
        g.state.as_str(),
        g.epoch
    )
}

/// Finalized once <=> appended once: the entry commits with the finalization.
fn append_finalized(
    effect: &mut Effect<TicketAnswer>,
    feed: &str,
    entry: &NewEntry,
    snapshot: &Snapshot,
    ctx: &Ctx,
) {
    let config = feed_config(snapshot, feed);
    let existing = feed_entry(snapshot, feed, &entry.id);
    let (stored, created) = feed::append(feed, existing.as_ref(), &config, entry, ctx.revision, ctx.now);
    if created {
        let key = format!("{feed}/{}", stored.id);
        effect
            .changes
            .push(change(ctx, 1, ChangeKind::Feed, &key, ChangeOp::Append, false));
        effect.mutations.push(Mutation::Put(Row::FeedEntry(stored)));
    }
}
