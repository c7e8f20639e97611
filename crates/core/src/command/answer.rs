//! The typed answers of commands: one per command (or per family of commands,
//! such as an acquire that is granted or queued), each convertible into the
//! erased [`Outcome`] and back. The conversions are generated in one place
//! (the `answers!` table below); a caller that expects one answer type gets it
//! with `TryFrom<Outcome>`, or the outcome back when the command answered
//! something else.

use crate::feed::{Entry, FeedConfig};
use crate::gate::{Gate, Ticket};
use crate::idempotency::Began;
use crate::lease::Lease;
use crate::txn::TxnResult;
use crate::{Error, Record};

use super::Outcome;

/// A typed answer of a command: what one command (or one family of commands)
/// answers, convertible into the erased [`Outcome`] the store carries and back.
/// Converting back gives the outcome itself when it is another command's answer.
pub trait Answer: Into<Outcome> + TryFrom<Outcome, Error = Outcome> {}

/// The conversions of every typed answer, in one place: an answer struct with
/// the fields of its `Outcome` variant, a unit answer, or an existing type
/// carried by a one-field variant.
macro_rules! answers {
    ($($answer:ident => $variant:ident $({ $($field:ident),+ })? $(($inner:ident))?;)+) => {
        $(answers!(@one $answer => $variant $({ $($field),+ })? $(($inner))?);)+
    };
    (@one $answer:ident => $variant:ident { $($field:ident),+ }) => {
        impl From<$answer> for Outcome {
            fn from(a: $answer) -> Outcome {
                Outcome::$variant { $($field: a.$field),+ }
            }
        }
        impl TryFrom<Outcome> for $answer {
            type Error = Outcome;
            fn try_from(o: Outcome) -> Result<Self, Outcome> {
                match o {
                    Outcome::$variant { $($field),+ } => Ok($answer { $($field),+ }),
                    other => Err(other),
                }
            }
        }
        impl Answer for $answer {}
    };
    (@one $answer:ident => $variant:ident ($inner:ident)) => {
        impl From<$answer> for Outcome {
            fn from(a: $answer) -> Outcome {
                Outcome::$variant(a)
            }
        }
        impl TryFrom<Outcome> for $answer {
            type Error = Outcome;
            fn try_from(o: Outcome) -> Result<Self, Outcome> {
                match o {
                    Outcome::$variant(a) => Ok(a),
                    other => Err(other),
                }
            }
        }
        impl Answer for $answer {}
    };
    (@one $answer:ident => $variant:ident) => {
        impl From<$answer> for Outcome {
            fn from(_: $answer) -> Outcome {
                Outcome::$variant
            }
        }
        impl TryFrom<Outcome> for $answer {
            type Error = Outcome;
            fn try_from(o: Outcome) -> Result<Self, Outcome> {
                match o {
                    Outcome::$variant => Ok($answer),
                    other => Err(other),
                }
            }
        }
        impl Answer for $answer {}
    };
}

answers! {
    RecordPut => Put { record, created };
    RecordPatched => Patch { record };
    RecordDeleted => Delete { key };
    RecordExpired => Expire { expired };
    TxnResult => Txn(TxnResult);
    Lease => Lease(Lease);
    Released => Released { released };
    Broken => Broken { broken };
    LeaseExpired => LeaseExpired { expired };
    LeftQueue => LeftQueue;
    Appended => Appended { entry, created };
    Imported => Imported { imported, skipped };
    MarkedRead => MarkedRead;
    EntryDeleted => EntryDeleted;
    FeedConfig => Configured(FeedConfig);
    Retained => Retained { count };
    GatePut => GatePut { gate, created };
    Transitioned => Transitioned { gate, changed, voided, pending };
    Admitted => Admitted { ticket, created };
    Began => IdemBegun(Began);
    IdemCompleted => IdemCompleted;
    IdemReleased => IdemReleased;
}

/// `PUT /records/{key}`: the record as written and whether it was created.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPut {
    /// As written.
    pub record: Record,
    /// 201 vs 200.
    pub created: bool,
}

/// `PATCH /records/{key}`: the record as written.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPatched {
    /// As written.
    pub record: Record,
}

/// `DELETE /records/{key}`: the key deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordDeleted {
    /// The key.
    pub key: String,
}

/// The sweeper's purge of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordExpired {
    /// Whether the record was indeed expired and removed.
    pub expired: bool,
}

/// One acquire attempt: the lease, or a place in its queue.
#[derive(Debug, Clone, PartialEq)]
pub enum AcquireAnswer {
    /// The lease as held now.
    Granted(Lease),
    /// Queued as waiter `id`.
    Queued {
        /// The waiter id.
        id: u64,
        /// The refusal to answer if it stops waiting now.
        held: Error,
    },
}

impl From<AcquireAnswer> for Outcome {
    fn from(a: AcquireAnswer) -> Outcome {
        match a {
            AcquireAnswer::Granted(l) => Outcome::Lease(l),
            AcquireAnswer::Queued { id, held } => Outcome::Queued { id, held },
        }
    }
}

impl TryFrom<Outcome> for AcquireAnswer {
    type Error = Outcome;
    fn try_from(o: Outcome) -> Result<Self, Outcome> {
        match o {
            Outcome::Lease(l) => Ok(AcquireAnswer::Granted(l)),
            Outcome::Queued { id, held } => Ok(AcquireAnswer::Queued { id, held }),
            other => Err(other),
        }
    }
}

impl Answer for AcquireAnswer {}

/// Release: whether the token held the lease (compare-and-clear).
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    /// Whether the lease was released.
    pub released: bool,
}

/// Break: whether a live lease was broken.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    /// Whether anything was cleared.
    pub broken: bool,
}

/// The sweeper's expiry of a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseExpired {
    /// Whether a lease was freed.
    pub expired: bool,
}

/// A waiter left its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftQueue;

/// An append: the entry (the original one when not created).
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The entry as readers see it.
    pub entry: Entry,
    /// Whether it is new.
    pub created: bool,
}

/// An import.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// Entries added.
    pub imported: usize,
    /// Entries skipped: already present, repeated in the array, or already past the feed's age.
    pub skipped: usize,
}

/// Read marks were set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkedRead;

/// A feed entry was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryDeleted;

/// Retention removed or scrubbed this many entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Retained {
    /// How many entries changed.
    pub count: usize,
}

/// A gate was created or updated.
#[derive(Debug, Clone, PartialEq)]
pub struct GatePut {
    /// As stored.
    pub gate: Gate,
    /// 201 vs 200.
    pub created: bool,
}

/// A gate transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Transitioned {
    /// The gate after it.
    pub gate: Gate,
    /// Whether anything changed (false: a no-op repeat).
    pub changed: bool,
    /// Open tickets of the old epoch voided by it.
    pub voided: usize,
    /// Committed, unfinalized tickets of the old epoch.
    pub pending: usize,
}

/// A ticket admission.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// The ticket.
    pub ticket: Ticket,
    /// 201 vs 200.
    pub created: bool,
}

/// A ticket operation: the ticket as it is now, or voided by it.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketAnswer {
    /// It succeeded: the ticket as it is now.
    Done(Ticket),
    /// A committed refusal: the ticket was voided (`reject` policy at
    /// finalize) and the caller is told 410.
    Voided {
        /// Why.
        detail: String,
    },
}

impl From<TicketAnswer> for Outcome {
    fn from(a: TicketAnswer) -> Outcome {
        match a {
            TicketAnswer::Done(ticket) => Outcome::TicketDone { ticket },
            TicketAnswer::Voided { detail } => Outcome::TicketVoided { detail },
        }
    }
}

impl TryFrom<Outcome> for TicketAnswer {
    type Error = Outcome;
    fn try_from(o: Outcome) -> Result<Self, Outcome> {
        match o {
            Outcome::TicketDone { ticket } => Ok(TicketAnswer::Done(ticket)),
            Outcome::TicketVoided { detail } => Ok(TicketAnswer::Voided { detail }),
            other => Err(other),
        }
    }
}

impl Answer for TicketAnswer {}

/// An idempotency key was completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdemCompleted;

/// An idempotency key was given up (or forgotten by the sweeper).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdemReleased;
