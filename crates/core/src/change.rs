//! Change-log entries: every committed write appends one per object it touched,
//! in the same storage transaction.

use crate::Millis;

/// The primitive a change belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A versioned record (§4).
    Record,
    /// A lease (§6).
    Lease,
    /// A feed or one of its entries (§8).
    Feed,
}

impl ChangeKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Record => "record",
            ChangeKind::Lease => "lease",
            ChangeKind::Feed => "feed",
        }
    }
}

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// Created or replaced.
    Put,
    /// Patched in place.
    Patch,
    /// Deleted by a caller.
    Delete,
    /// Removed (or, for a lease, freed) because its TTL ran out.
    Expire,
    /// A lease was acquired.
    Acquire,
    /// A lease was renewed.
    Renew,
    /// A lease was released by its holder.
    Release,
    /// A lease was broken by an admin.
    Break,
    /// A feed entry was appended.
    Append,
    /// Feed entries were marked read.
    Read,
    /// A feed was configured.
    Configure,
    /// Fields were scrubbed from a feed entry on disk.
    Scrub,
}

impl ChangeOp {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Put => "put",
            ChangeOp::Patch => "patch",
            ChangeOp::Delete => "delete",
            ChangeOp::Expire => "expire",
            ChangeOp::Acquire => "acquire",
            ChangeOp::Renew => "renew",
            ChangeOp::Release => "release",
            ChangeOp::Break => "break",
            ChangeOp::Append => "append",
            ChangeOp::Read => "read",
            ChangeOp::Configure => "configure",
            ChangeOp::Scrub => "scrub",
        }
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The revision the write committed at.
    pub revision: u64,
    /// Position within the revision (a transaction writes several objects).
    pub index: u32,
    /// The primitive.
    pub kind: ChangeKind,
    /// The object's key or name.
    pub key: String,
    /// What happened.
    pub op: ChangeOp,
    /// The token name of the caller.
    pub actor: String,
    /// Whether a precondition was skipped with `force`.
    pub forced: bool,
    /// When (storage clock).
    pub at: Millis,
}
