//! Change-log entries: every committed write appends one per object it touched,
//! in the same storage transaction.

use crate::Millis;

/// The primitive a change belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A versioned record (§4).
    Record,
    /// A lease (§6).
    Lease,
    /// A feed or one of its entries (§8).
    Feed,
    /// A gate or one of its tickets (§7).
    Gate,
    /// An entry of the application idempotency store (§9).
    Idempotency,
}

impl ChangeKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Record => "record",
            ChangeKind::Lease => "lease",
            ChangeKind::Feed => "feed",
            ChangeKind::Gate => "gate",
            ChangeKind::Idempotency => "idempotency",
        }
    }
}

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
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
    /// A gate was created.
    Create,
    /// A gate's policy or meta changed.
    Update,
    /// A gate was paused.
    Pause,
    /// A gate was resumed.
    Resume,
    /// A gate was revoked.
    Revoke,
    /// A gate was reopened.
    Reopen,
    /// A ticket was admitted.
    Admit,
    /// A ticket was committed.
    Commit,
    /// A ticket was finalized.
    Finalize,
    /// A ticket was aborted.
    Abort,
    /// A ticket was voided.
    Void,
    /// An idempotency key was started.
    Start,
    /// An idempotency key was completed.
    Complete,
    /// A transaction recorded a higher fence for a resource (kind `lease`,
    /// key = the resource).
    Fence,
}

impl ChangeOp {
    /// The change op of a gate transition.
    pub fn from_transition(t: crate::gate::Transition) -> ChangeOp {
        use crate::gate::Transition as T;
        match t {
            T::Pause => ChangeOp::Pause,
            T::Resume => ChangeOp::Resume,
            T::Revoke => ChangeOp::Revoke,
            T::Delete => ChangeOp::Delete,
            T::Reopen => ChangeOp::Reopen,
        }
    }
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
            ChangeOp::Create => "create",
            ChangeOp::Update => "update",
            ChangeOp::Pause => "pause",
            ChangeOp::Resume => "resume",
            ChangeOp::Revoke => "revoke",
            ChangeOp::Reopen => "reopen",
            ChangeOp::Admit => "admit",
            ChangeOp::Commit => "commit",
            ChangeOp::Finalize => "finalize",
            ChangeOp::Abort => "abort",
            ChangeOp::Void => "void",
            ChangeOp::Start => "start",
            ChangeOp::Complete => "complete",
            ChangeOp::Fence => "fence",
        }
    }
}

/// The actor of the writes the storage makes by itself: expiries, sweeps.
pub const SYSTEM_ACTOR: &str = "system";

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
    /// Whether it was a `force` write (admin: any precondition skipped).
    pub forced: bool,
    /// When (storage clock).
    pub at: Millis,
}

impl ChangeKind {
    /// Parses a wire name (the inverse of [`ChangeKind::as_str`]).
    pub fn parse(s: &str) -> Option<ChangeKind> {
        [
            ChangeKind::Record,
            ChangeKind::Lease,
            ChangeKind::Feed,
            ChangeKind::Gate,
            ChangeKind::Idempotency,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl ChangeOp {
    /// Parses a wire name (the inverse of [`ChangeOp::as_str`]).
    pub fn parse(s: &str) -> Option<ChangeOp> {
        use ChangeOp::*;
        [
            Put, Patch, Delete, Expire, Acquire, Renew, Release, Break, Append, Read, Configure, Scrub,
            Create, Update, Pause, Resume, Revoke, Reopen, Admit, Commit, Finalize, Abort, Void, Start,
            Complete, Fence,
        ]
        .into_iter()
        .find(|op| op.as_str() == s)
    }
}
