//! Idempotency keys: begin (start, replay or refuse), complete, give up, and
//! the sweeper's forgetting of expired entries. Keys of the application store
//! (`app`) have change entries; the `Idempotency-Key` header's do not.

use super::answer::{IdemCompleted, IdemReleased};
use super::effect::change;
use super::rows::{idem_entry, idem_scope};
use super::{Ctx, Effect, Mutation, Row, RowKey, Snapshot};
use crate::idempotency::{self, Began, Begin, StoredResponse};
use crate::{ChangeKind, ChangeOp, Error};

/// The change of an application key, if it is one.
fn app_change<A>(effect: &mut Effect<A>, app: bool, ctx: &Ctx, scope: &str, key: &str, op: ChangeOp) {
    if app {
        let k = format!("{scope}/{key}");
        effect
            .changes
            .push(change(ctx, 0, ChangeKind::Idempotency, &k, op, false));
    }
}

/// Begin: a new (or stale) key is started and owned; a completed one replays.
pub(super) fn begin(
    scope: &str,
    key: &str,
    req: &Begin,
    app: bool,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<Began>, Error> {
    let stored_scope = idem_scope(scope, app);
    let existing = idem_entry(snapshot, &stored_scope, key);
    let began = idempotency::begin(existing.as_ref(), &stored_scope, key, req, ctx.now)?;
    let mut effect = Effect::answer(began.clone());
    if let Began::Started(e) = began {
        effect.mutations.push(Mutation::Put(Row::Idem(e)));
        app_change(&mut effect, app, ctx, scope, key, ChangeOp::Start);
    }
    Ok(effect)
}

/// Complete: the owner stores its response.
pub(super) fn complete(
    scope: &str,
    key: &str,
    token: &str,
    response: &StoredResponse,
    app: bool,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<IdemCompleted>, Error> {
    let existing = idem_entry(snapshot, &idem_scope(scope, app), key);
    let done = idempotency::complete(existing.as_ref(), token, response.clone(), ctx.now)?;
    let mut effect = Effect::answer(IdemCompleted);
    effect.mutations.push(Mutation::Put(Row::Idem(done)));
    app_change(&mut effect, app, ctx, scope, key, ChangeOp::Complete);
    Ok(effect)
}

/// Give up: the owner deletes its started key so a retry may run.
pub(super) fn release(
    scope: &str,
    key: &str,
    token: &str,
    app: bool,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<IdemReleased>, Error> {
    let stored_scope = idem_scope(scope, app);
    idempotency::release(idem_entry(snapshot, &stored_scope, key).as_ref(), token, ctx.now)?;
    let mut effect = Effect::answer(IdemReleased);
    effect
        .mutations
        .push(Mutation::Delete(RowKey::Idem(stored_scope, key.to_owned())));
    app_change(&mut effect, app, ctx, scope, key, ChangeOp::Release);
    Ok(effect)
}

/// The sweeper forgets an entry whose TTL ran out (`scope` is the stored one).
pub(super) fn expire(
    scope: &str,
    key: &str,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<IdemReleased>, Error> {
    let expired = idem_entry(snapshot, scope, key).is_some_and(|e| e.expires_at <= ctx.now);
    let mut effect = Effect::answer(IdemReleased);
    if expired {
        effect
            .mutations
            .push(Mutation::Delete(RowKey::Idem(scope.to_owned(), key.to_owned())));
    }
    Ok(effect)
}
