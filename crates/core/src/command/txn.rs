//! Transactions: compare, then one branch atomically; a succeeding
//! transaction also records the higher fences it presented.

use super::effect::change;
use super::rows::{fence_row, lease_row, live};

use super::{Ctx, Effect, Mutation, Row, RowKey, Snapshot};
use crate::txn::{self, Guards, Txn, TxnResult, Working};
use crate::{Change, ChangeKind, ChangeOp, Error};

/// `POST /txn`.
pub(super) fn execute(t: &Txn, snapshot: &Snapshot, ctx: &Ctx) -> Result<Effect<TxnResult>, Error> {
    t.validate(ctx.limits)?;
    let (mut working, guards) = load(t, snapshot, ctx);
    let (result, writes) = txn::apply(t, &mut working, &guards, ctx.revision, ctx.now, ctx.limits)?;
    let mut touched: Vec<&str> = writes.iter().map(|w| w.key.as_str()).collect();
    touched.sort_unstable();
    touched.dedup();
    let mut mutations: Vec<Mutation> = touched
        .into_iter()
        .map(|k| match working.get(k).cloned().flatten() {
            Some(r) => Mutation::Put(Row::Record(r)),
            None => Mutation::Delete(RowKey::Record(k.to_owned())),
        })
        .collect();
    let mut changes: Vec<Change> = writes
        .iter()
        .enumerate()
        .map(|(i, w)| change(ctx, i, ChangeKind::Record, &w.key, w.op, false))
        .collect();
    if result.succeeded {
        // Recording a higher fence is a lasting write: it has its change.
        for (resource, fence) in t.fences_to_record(&guards) {
            let i = changes.len();
            changes.push(change(
                ctx,
                i,
                ChangeKind::Lease,
                &resource,
                ChangeOp::Fence,
                false,
            ));
            mutations.push(Mutation::Put(Row::Fence { resource, fence }));
        }
    }
    Ok(Effect {
        outcome: result,
        mutations,
        changes,
    })
}

/// The live records the transaction reads, and the lease tokens and fences its
/// compares check.
fn load(t: &Txn, snapshot: &Snapshot, ctx: &Ctx) -> (Working, Guards) {
    let mut working = Working::new();
    let mut guards = Guards::default();
    for row in t.rows() {
        match row {
            RowKey::Record(k) => {
                let r = live(snapshot, &k, ctx.now);
                working.insert(k, r);
            }
            RowKey::Lease(n) => {
                let token = lease_row(snapshot, &n).and_then(|l| l.live_token(ctx.now).map(str::to_owned));
                guards.lease_tokens.insert(n, token);
            }
            RowKey::Fence(r) => {
                if let Some(f) = fence_row(snapshot, &r) {
                    guards.fences.insert(r, f);
                }
            }
            RowKey::Waiters(_)
            | RowKey::FeedEntry(..)
            | RowKey::FeedConfig(_)
            | RowKey::Gate(_)
            | RowKey::GateTickets(_)
            | RowKey::Ticket(_)
            | RowKey::Idem(..) => {}
        }
    }
    (working, guards)
}
