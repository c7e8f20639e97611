//! Records: put, patch, delete, and the sweeper's purge of an expired record.

use super::answer::{RecordDeleted, RecordExpired, RecordPatched, RecordPut};
use super::effect::change;
use super::rows::{live, record_row};
use super::{Ctx, Effect, Mutation, Row, RowKey, Snapshot};
use crate::record::{self, PatchDoc, Precondition, PutRecord};
use crate::{ChangeKind, ChangeOp, Error};

/// The one record change of a record command.
fn record_write<A>(ctx: &Ctx, key: &str, op: ChangeOp, forced: bool, m: Mutation, outcome: A) -> Effect<A> {
    Effect {
        changes: vec![change(ctx, 0, ChangeKind::Record, key, op, forced)],
        mutations: vec![m],
        outcome,
    }
}

/// `PUT`: create or replace under the precondition.
pub(super) fn put(
    key: &str,
    req: &PutRecord,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<RecordPut>, Error> {
    let cur = live(snapshot, key, ctx.now);
    let (record, created) = record::put(key, cur.as_ref(), req, ctx.revision, ctx.now, ctx.limits)?;
    // Every `force` write is marked, with or without a precondition to skip.
    let forced = req.force;
    let m = Mutation::Put(Row::Record(record.clone()));
    Ok(record_write(
        ctx,
        key,
        ChangeOp::Put,
        forced,
        m,
        RecordPut { record, created },
    ))
}

/// `PATCH`: merge patch or JSON Patch of a live record.
pub(super) fn patch(
    key: &str,
    doc: &PatchDoc,
    precondition: &Precondition,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<RecordPatched>, Error> {
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
        RecordPatched { record },
    ))
}

/// `DELETE` of a live record.
pub(super) fn delete(
    key: &str,
    precondition: &Precondition,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<RecordDeleted>, Error> {
    let cur = live(snapshot, key, ctx.now);
    record::delete(key, cur.as_ref(), precondition)?;
    let m = Mutation::Delete(RowKey::Record(key.to_owned()));
    Ok(record_write(
        ctx,
        key,
        ChangeOp::Delete,
        false,
        m,
        RecordDeleted { key: key.to_owned() },
    ))
}

/// The sweeper's purge: removes the record only if its TTL indeed ran out.
pub(super) fn expire(key: &str, snapshot: &Snapshot, ctx: &Ctx) -> Result<Effect<RecordExpired>, Error> {
    let expired = record_row(snapshot, key).is_some_and(|r| !r.is_live(ctx.now));
    if !expired {
        return Ok(Effect::answer(RecordExpired { expired }));
    }
    let m = Mutation::Delete(RowKey::Record(key.to_owned()));
    Ok(record_write(
        ctx,
        key,
        ChangeOp::Expire,
        false,
        m,
        RecordExpired { expired },
    ))
}
