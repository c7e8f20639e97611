//! Records: put, patch, delete, and the sweeper's purge of an expired record.

use super::effect::change;
use super::rows::{live, record_row};
use super::{Ctx, Effect, Mutation, Outcome, Row, RowKey, Snapshot};
use crate::record::{self, PatchDoc, Precondition, PutRecord};
use crate::{ChangeKind, ChangeOp, Error};

/// The one record change of a record command.
fn record_write(ctx: &Ctx, key: &str, op: ChangeOp, forced: bool, m: Mutation, outcome: Outcome) -> Effect {
    Effect {
        changes: vec![change(ctx, 0, ChangeKind::Record, key, op, forced)],
        mutations: vec![m],
        outcome,
    }
}

/// `PUT`: create or replace under the precondition.
pub(super) fn put(key: &str, req: &PutRecord, snapshot: &Snapshot, ctx: &Ctx) -> Result<Effect, Error> {
    let cur = live(snapshot, key, ctx.now);
    let (record, created) = record::put(key, cur.as_ref(), req, ctx.revision, ctx.now, ctx.limits)?;
    let forced = req.force && req.precondition != Precondition::None;
    let m = Mutation::Put(Row::Record(record.clone()));
    Ok(record_write(
        ctx,
        key,
        ChangeOp::Put,
        forced,
        m,
        Outcome::Put { record, created },
    ))
}

/// `PATCH`: merge patch or JSON Patch of a live record.
pub(super) fn patch(
    key: &str,
    doc: &PatchDoc,
    precondition: &Precondition,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect, Error> {
    let cur = live(snapshot, key, ctx.now);
    let record = record::patch(
        key,
        cur.as_ref(),
        doc,
        precondition,
        ctx.revision,
        ctx.now,
        ctx.limits,
    )?;
    let m = Mutation::Put(Row::Record(record.clone()));
    Ok(record_write(
        ctx,
        key,
        ChangeOp::Patch,
        false,
        m,
        Outcome::Patch { record },
    ))
}

/// `DELETE` of a live record.
pub(super) fn delete(
    key: &str,
    precondition: &Precondition,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect, Error> {
    let cur = live(snapshot, key, ctx.now);
    record::delete(key, cur.as_ref(), precondition)?;
    let m = Mutation::Delete(RowKey::Record(key.to_owned()));
    Ok(record_write(
        ctx,
        key,
        ChangeOp::Delete,
        false,
        m,
        Outcome::Delete { key: key.to_owned() },
    ))
}

/// The sweeper's purge: removes the record only if its TTL indeed ran out.
pub(super) fn expire(key: &str, snapshot: &Snapshot, ctx: &Ctx) -> Result<Effect, Error> {
    let expired = record_row(snapshot, key).is_some_and(|r| !r.is_live(ctx.now));
    if !expired {
        return Ok(Effect::answer(Outcome::Expire { expired }));
    }
    let m = Mutation::Delete(RowKey::Record(key.to_owned()));
    Ok(record_write(
        ctx,
        key,
        ChangeOp::Expire,
        false,
        m,
        Outcome::Expire { expired },
    ))
}
