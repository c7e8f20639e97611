//! [`Outcome`]: the type-erased answer of any command, as the store carries
//! it. Each command's own typed answer is in [`super::answer`].

use crate::feed::{Entry, FeedConfig};
use crate::gate::{Gate, Ticket};
use crate::idempotency::Began;
use crate::lease::Lease;
use crate::txn::TxnResult;
use crate::{Error, Record};

/// The answer of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A PUT: the record and whether it was created.
    Put {
        /// As written.
        record: Record,
        /// 201 vs 200.
        created: bool,
    },
    /// A PATCH: the record as written.
    Patch {
        /// As written.
        record: Record,
    },
    /// A DELETE.
    Delete {
        /// The key.
        key: String,
    },
    /// A transaction.
    Txn(TxnResult),
    /// The sweeper's purge: whether the record was indeed expired.
    Expire {
        /// Whether a row was removed.
        expired: bool,
    },
    /// Acquired or renewed: the lease as held now.
    Lease(Lease),
    /// A waiting acquire is queued as waiter `id`.
    Queued {
        /// The waiter id.
        id: u64,
        /// The refusal to answer if it stops waiting now.
        held: Error,
    },
    /// Release: whether the token held the lease.
    Released {
        /// Compare-and-clear result.
        released: bool,
    },
    /// Break: whether a live lease was broken.
    Broken {
        /// Whether anything was cleared.
        broken: bool,
    },
    /// The sweeper freed an expired lease (or found nothing to do).
    LeaseExpired {
        /// Whether a lease was freed.
        expired: bool,
    },
    /// A waiter left the queue.
    LeftQueue,
    /// An append: the entry (the original one when `created` is false).
    Appended {
        /// The entry as stored.
        entry: Entry,
        /// Whether it is new.
        created: bool,
    },
    /// An import.
    Imported {
        /// Entries added.
        imported: usize,
        /// Entries skipped: already present, repeated in the array, or already past the feed's age.
        skipped: usize,
    },
    /// Read marks were set.
    MarkedRead,
    /// An entry was deleted.
    EntryDeleted,
    /// A feed was configured.
    Configured(FeedConfig),
    /// Retention removed or scrubbed this many entries.
    Retained {
        /// How many entries changed.
        count: usize,
    },
    /// A gate was created or updated.
    GatePut {
        /// As stored.
        gate: Gate,
        /// 201 vs 200.
        created: bool,
    },
    /// A gate transition.
    Transitioned {
        /// The gate after it.
        gate: Gate,
        /// Whether anything changed (false: a no-op repeat).
        changed: bool,
        /// Open tickets of the old epoch voided by it.
        voided: usize,
        /// Committed, unfinalized tickets of the old epoch.
        pending: usize,
    },
    /// A ticket admission.
    Admitted {
        /// The ticket.
        ticket: Ticket,
        /// 201 vs 200.
        created: bool,
    },
    /// A ticket operation that succeeded: the ticket as it is now.
    TicketDone {
        /// The ticket.
        ticket: Ticket,
    },
    /// An idempotency key was begun.
    IdemBegun(Began),
    /// An idempotency key was completed.
    IdemCompleted,
    /// An idempotency key was given up (or forgotten by the sweeper).
    IdemReleased,
    /// A committed refusal: the ticket was voided (`reject` policy at finalize)
    /// and the caller is told 410.
    TicketVoided {
        /// Why.
        detail: String,
    },
}
