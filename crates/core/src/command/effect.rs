//! What a command does: the [`Effect`] (answer, [`Mutation`]s, change entries)
//! and the helpers that build change entries.

use super::{Ctx, Outcome, Row, RowKey};
use crate::feed::ReadSelector;
use crate::{Change, ChangeKind, ChangeOp};

/// A row to persist.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Insert or replace the row.
    Put(Row),
    /// Remove the row.
    Delete(RowKey),
    /// Clear the on-disk scrub marks of a feed (`""`: every feed of the
    /// namespace), so the sweeper applies a changed scrub configuration.
    ResetScrubbed {
        /// Feed name, `""` for all.
        feed: String,
    },
    /// Mark feed entries read (a set of rows the backend selects).
    MarkRead {
        /// Feed name.
        feed: String,
        /// Which entries.
        selector: ReadSelector,
    },
}

/// The result of [`execute`](super::execute): the answer, what to persist and
/// the change entries. Each primitive's execute gives its typed answer `O`;
/// [`execute`](super::execute) erases it into an [`Outcome`].
#[derive(Debug, Clone, PartialEq)]
pub struct Effect<O = Outcome> {
    /// The answer.
    pub outcome: O,
    /// Rows to write, one per touched row, in its final state.
    pub mutations: Vec<Mutation>,
    /// One change per write, indexed in order.
    pub changes: Vec<Change>,
}

impl<O> Effect<O> {
    /// Whether the command makes a visible write, and so consumes its revision.
    /// (Bookkeeping rows, such as a lease's waiter queue, are persisted without.)
    pub fn writes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// An answer that writes nothing.
    pub(super) fn answer(outcome: O) -> Effect<O> {
        Effect {
            outcome,
            mutations: vec![],
            changes: vec![],
        }
    }

    /// The same effect with its answer type-erased.
    pub fn erase(self) -> Effect
    where
        O: Into<Outcome>,
    {
        Effect {
            outcome: self.outcome.into(),
            mutations: self.mutations,
            changes: self.changes,
        }
    }
}

/// The change entry number `index` of this command's write.
pub(super) fn change(
    ctx: &Ctx,
    index: usize,
    kind: ChangeKind,
    key: &str,
    op: ChangeOp,
    forced: bool,
) -> Change {
    Change {
        revision: ctx.revision,
        index: u32::try_from(index).unwrap_or(u32::MAX),
        kind,
        key: key.to_owned(),
        op,
        actor: ctx.actor.to_owned(),
        forced,
        at: ctx.now,
    }
}
