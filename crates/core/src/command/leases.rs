//! Leases: acquire (granted or queued), renew, release, break, the sweeper's
//! expiry, and a waiter leaving the queue.

use super::answer::{AcquireAnswer, Broken, LeaseExpired, LeftQueue, Released};
use super::effect::change;
use super::rows::{lease_row, waiters_row};
use super::{Ctx, Effect, Mutation, Row, RowKey, Snapshot};
use crate::lease::{self, AcquireReq, Acquired, Lease, Waiter};
use crate::{Change, ChangeKind, ChangeOp, Error};

/// A write of the lease row with its one change.
fn lease_write<A>(ctx: &Ctx, lease: Lease, op: ChangeOp, outcome: A) -> Effect<A> {
    Effect {
        changes: vec![change(ctx, 0, ChangeKind::Lease, &lease.name, op, false)],
        mutations: vec![Mutation::Put(Row::Lease(lease))],
        outcome,
    }
}

/// The queue written as a unit; an empty queue is no row.
fn waiters_put(name: &str, waiters: Vec<Waiter>) -> Mutation {
    if waiters.is_empty() {
        Mutation::Delete(RowKey::Waiters(name.to_owned()))
    } else {
        Mutation::Put(Row::Waiters {
            name: name.to_owned(),
            waiters,
        })
    }
}

/// One acquire attempt: granted, or queued (a waiting acquire), or refused.
pub(super) fn acquire(
    name: &str,
    req: &AcquireReq,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<AcquireAnswer>, Error> {
    let (now, limits) = (ctx.now, ctx.limits);
    lease::check_acquire(req, limits)?;
    let current = lease_row(snapshot, name);
    let mut waiters = waiters_row(snapshot, name);
    if req.wait == Some(None) && lease::live_waiters(&waiters, now).len() >= limits.lease_waiters_max {
        return Err(Error::LeaseHeld {
            holder: current.as_ref().and_then(|l| l.holder.clone()),
            expires_at: current.as_ref().map(|l| l.expires_at),
            waiters: limits.lease_waiters_max,
        });
    }
    match lease::acquire(name, current.as_ref(), &waiters, req, ctx.revision, now)? {
        Acquired::Granted(lease) => {
            let mut effect = lease_write(
                ctx,
                lease.clone(),
                ChangeOp::Acquire,
                AcquireAnswer::Granted(lease),
            );
            if lease::expire(current.as_ref(), now).is_some() {
                // The last holder's lease ran out before the sweeper saw it:
                // its expiry is logged first, by the system, in this step.
                let expired = Change {
                    actor: crate::change::SYSTEM_ACTOR.to_owned(),
                    ..change(ctx, 0, ChangeKind::Lease, name, ChangeOp::Expire, false)
                };
                effect.changes.insert(0, expired);
                effect.changes[1].index = 1;
            }
            // The new holder leaves the queue; dead waiters are dropped with it.
            let before = waiters.len();
            waiters.retain(|w| w.alive_until > now && Some(Some(w.id)) != req.wait);
            if waiters.len() != before {
                effect.mutations.push(waiters_put(name, waiters));
            }
            Ok(effect)
        }
        Acquired::Queued {
            id,
            refresh,
            lease,
            held,
        } => {
            let mut effect = Effect::answer(AcquireAnswer::Queued { id, held });
            // A waiter's bookkeeping: no change entry.
            if let Some(l) = lease {
                effect.mutations.push(Mutation::Put(Row::Lease(l)));
            }
            if let Some(w) = refresh {
                waiters.retain(|x| x.id != w.id && x.alive_until > now);
                waiters.push(w);
                effect.mutations.push(waiters_put(name, waiters));
            }
            Ok(effect)
        }
    }
}

/// Renew: only the holder's token extends its lease.
pub(super) fn renew(
    name: &str,
    token: &str,
    ttl_ms: u64,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<Lease>, Error> {
    lease::check_token(token)?;
    lease::check_ttl(ttl_ms, ctx.limits)?;
    let lease = lease::renew(lease_row(snapshot, name).as_ref(), token, ttl_ms, ctx.now)?;
    Ok(lease_write(ctx, lease.clone(), ChangeOp::Renew, lease))
}

/// Release: compare-and-clear by token.
pub(super) fn release(
    name: &str,
    token: &str,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<Released>, Error> {
    lease::check_token(token)?;
    Ok(
        match lease::release(lease_row(snapshot, name).as_ref(), token, ctx.now) {
            Some(l) => lease_write(ctx, l, ChangeOp::Release, Released { released: true }),
            None => Effect::answer(Released { released: false }),
        },
    )
}

/// Break (admin): clears a live lease whatever its token.
pub(super) fn break_lease(name: &str, snapshot: &Snapshot, ctx: &Ctx) -> Result<Effect<Broken>, Error> {
    Ok(
        match lease::break_lease(lease_row(snapshot, name).as_ref(), ctx.now) {
            Some(l) => lease_write(ctx, l, ChangeOp::Break, Broken { broken: true }),
            None => Effect::answer(Broken { broken: false }),
        },
    )
}

/// The sweeper frees an expired lease with an `expire` change.
pub(super) fn expire(name: &str, snapshot: &Snapshot, ctx: &Ctx) -> Result<Effect<LeaseExpired>, Error> {
    Ok(match lease::expire(lease_row(snapshot, name).as_ref(), ctx.now) {
        Some(l) => lease_write(ctx, l, ChangeOp::Expire, LeaseExpired { expired: true }),
        None => Effect::answer(LeaseExpired { expired: false }),
    })
}

/// A waiter gives up its place (dead waiters are dropped with it).
pub(super) fn leave_queue(
    name: &str,
    waiter: u64,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<LeftQueue>, Error> {
    let mut waiters = waiters_row(snapshot, name);
    let before = waiters.len();
    waiters.retain(|w| w.id != waiter && w.alive_until > ctx.now);
    let mut effect = Effect::answer(LeftQueue);
    if waiters.len() != before {
        effect.mutations.push(waiters_put(name, waiters));
    }
    Ok(effect)
}
