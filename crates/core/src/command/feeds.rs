//! Feeds: idempotent append, import, read marks, entry deletion,
//! configuration, and the sweeper's retention (purge and scrub).

use super::answer::{Appended, EntryDeleted, Imported, MarkedRead, Retained};
use super::effect::change;
use super::rows::{feed_config, feed_entry};
use super::{Ctx, Effect, Mutation, Row, RowKey, Snapshot};
use crate::feed::{self, FeedConfig, NewEntry, ReadSelector};
use crate::{ChangeKind, ChangeOp, Error, Millis};
use std::collections::BTreeSet;

/// Append: a new id is written once; a known id answers the original entry.
pub(super) fn append(
    feed: &str,
    entry: &NewEntry,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<Appended>, Error> {
    let config = feed_config(snapshot, feed);
    let existing = feed_entry(snapshot, feed, &entry.id);
    let (stored, created) = feed::append(feed, existing.as_ref(), &config, entry, ctx.revision, ctx.now);
    // The answer is the entry as readers see it (scrubbed when old enough).
    let shown = feed::present(stored.clone(), &config, ctx.now);
    let outcome = Appended {
        entry: shown,
        created,
    };
    if !created {
        return Ok(Effect::answer(outcome));
    }
    let key = format!("{feed}/{}", stored.id);
    Ok(Effect {
        changes: vec![change(ctx, 0, ChangeKind::Feed, &key, ChangeOp::Append, false)],
        mutations: vec![Mutation::Put(Row::FeedEntry(stored))],
        outcome,
    })
}

/// Import: each id of the array appended once; known or repeated ids are
/// skipped, and so is an entry already past the feed's age (it would be hidden
/// at once, and stored again by every retry).
pub(super) fn import(
    feed: &str,
    entries: &[NewEntry],
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<Imported>, Error> {
    let config = feed_config(snapshot, feed);
    let mut seen = BTreeSet::new();
    let mut effect = Effect::answer(Imported {
        imported: 0,
        skipped: 0,
    });
    let mut skipped = 0;
    for entry in entries {
        let existing = feed_entry(snapshot, feed, &entry.id);
        let (stored, created) = feed::append(feed, existing.as_ref(), &config, entry, ctx.revision, ctx.now);
        if !created || !seen.insert(entry.id.clone()) || feed::aged_out(stored.at, &config, ctx.now) {
            skipped += 1;
            continue;
        }
        let key = format!("{feed}/{}", stored.id);
        let i = effect.changes.len();
        effect
            .changes
            .push(change(ctx, i, ChangeKind::Feed, &key, ChangeOp::Append, false));
        effect.mutations.push(Mutation::Put(Row::FeedEntry(stored)));
    }
    effect.outcome = Imported {
        imported: effect.mutations.len(),
        skipped,
    };
    Ok(effect)
}

/// Read marks: the backend selects the entries.
pub(super) fn mark_read(feed: &str, selector: &ReadSelector, ctx: &Ctx) -> Result<Effect<MarkedRead>, Error> {
    Ok(Effect {
        changes: vec![change(ctx, 0, ChangeKind::Feed, feed, ChangeOp::Read, false)],
        mutations: vec![Mutation::MarkRead {
            feed: feed.to_owned(),
            selector: selector.clone(),
        }],
        outcome: MarkedRead,
    })
}

/// Deletes one entry (404 when absent). An entry hidden by age is absent, as
/// for an append of its id; one hidden by the cap is not (it still blocks an
/// append of its id until the sweeper purges it).
pub(super) fn delete_entry(
    feed: &str,
    id: &str,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<EntryDeleted>, Error> {
    let config = feed_config(snapshot, feed);
    let present = feed_entry(snapshot, feed, id).filter(|e| !feed::aged_out(e.at, &config, ctx.now));
    if present.is_none() {
        return Err(Error::NotFound(format!(
            "entry {id:?} of feed {feed:?} does not exist"
        )));
    }
    let key = format!("{feed}/{id}");
    Ok(Effect {
        changes: vec![change(ctx, 0, ChangeKind::Feed, &key, ChangeOp::Delete, false)],
        mutations: vec![Mutation::Delete(RowKey::FeedEntry(
            feed.to_owned(),
            id.to_owned(),
        ))],
        outcome: EntryDeleted,
    })
}

/// Sets a feed's configuration (`""`: the namespace default).
pub(super) fn configure(feed: &str, config: &FeedConfig, ctx: &Ctx) -> Result<Effect<FeedConfig>, Error> {
    config.validate()?;
    Ok(Effect {
        changes: vec![change(ctx, 0, ChangeKind::Feed, feed, ChangeOp::Configure, false)],
        mutations: vec![
            Mutation::Put(Row::FeedConfig {
                feed: feed.to_owned(),
                config: config.clone(),
            }),
            // The scrub fields may have changed: the sweeper looks at every entry again.
            Mutation::ResetScrubbed {
                feed: feed.to_owned(),
            },
        ],
        outcome: config.clone(),
    })
}

/// Retention: with `purge` (the cap boundary the sweeper saw), deletes the
/// entries still out of the window; without, scrubs them on disk.
pub(super) fn retain(
    feed: &str,
    ids: &[String],
    purge: Option<&Option<(Millis, String)>>,
    snapshot: &Snapshot,
    ctx: &Ctx,
) -> Result<Effect<Retained>, Error> {
    let config = feed_config(snapshot, feed);
    let mut effect = Effect::answer(Retained { count: 0 });
    for id in ids {
        let Some(e) = feed_entry(snapshot, feed, id) else {
            continue;
        };
        let out_of_window = |before: &Option<(Millis, String)>| {
            feed::aged_out(e.at, &config, ctx.now)
                || before
                    .as_ref()
                    .is_some_and(|(at, bid)| (e.at, e.id.as_str()) < (*at, bid.as_str()))
        };
        let (m, op) = match purge {
            Some(before) if !out_of_window(before) => continue,
            Some(_) => (
                Mutation::Delete(RowKey::FeedEntry(feed.to_owned(), id.clone())),
                ChangeOp::Expire,
            ),
            None => match feed::scrub_on_disk(&e, &config, ctx.now) {
                Some(s) => (Mutation::Put(Row::FeedEntry(s)), ChangeOp::Scrub),
                None => continue,
            },
        };
        let i = effect.changes.len();
        let key = format!("{feed}/{id}");
        effect
            .changes
            .push(change(ctx, i, ChangeKind::Feed, &key, op, false));
        effect.mutations.push(m);
    }
    effect.outcome = Retained {
        count: effect.mutations.len(),
    };
    Ok(effect)
}
