//! The one error enum of the core: every refusal a primitive can answer, carrying
//! what the caller needs. The server maps each variant to its status and stable
//! `code` in exactly one place.

use serde_json::Value;

/// The current state of a record, reported with a conflict so the client can merge
/// without another round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    /// The version (revision of the last write) of the record.
    pub version: u64,
    /// The record's value.
    pub value: Value,
}

/// A typed refusal of a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Malformed input: bad JSON, unknown or missing field, bad key, bad cursor.
    #[error("{0}")]
    InvalidRequest(String),
    /// No credential, or one that is not (or no longer) valid: an expired or
    /// forged capability.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role does not allow the operation.
    #[error("{0}")]
    Forbidden(String),
    /// The addressed object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// `expected_version` did not match; `current` is `None` when the record is absent.
    #[error("expected version {expected}, found {}", current.as_ref().map_or(0, |c| c.version))]
    VersionMismatch {
        /// The version the caller expected.
        expected: u64,
        /// The record as it is now.
        current: Option<Current>,
    },
    /// A JSON Patch `test` operation failed.
    #[error("{detail}")]
    PatchTestFailed {
        /// Which operation failed.
        detail: String,
        /// The record as it is now.
        current: Option<Current>,
    },
    /// An `If-Match` / `If-None-Match` header failed; `current` as in
    /// [`Error::VersionMismatch`], so the caller can merge without a read.
    #[error("{detail}")]
    PreconditionFailed {
        /// Which header failed.
        detail: String,
        /// The record as it is now.
        current: Option<Current>,
    },
    /// A body, value or transaction is over its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A patch (or `incr`) that cannot apply to the current value.
    #[error("{0}")]
    InvalidPatch(String),
    /// Another holder's lease is live.
    #[error("the lease is held{}", holder.as_ref().map(|h| format!(" by {h:?}")).unwrap_or_default())]
    LeaseHeld {
        /// The live holder's label.
        holder: Option<String>,
        /// When its lease runs out.
        expires_at: Option<crate::Millis>,
        /// How many requests wait for it.
        waiters: usize,
    },
    /// The token does not hold the lease (any more): the caller must stop.
    #[error("{0}")]
    LeaseLost(String),
    /// A ticket operation its state forbids.
    #[error("{0}")]
    TicketConflict(String),
    /// A gate transition its state forbids.
    #[error("{0}")]
    InvalidTransition(String),
    /// The gate is revoked or deleted, or the ticket's epoch is over.
    #[error("{0}")]
    GateClosed(String),
    /// The gate is paused; retry after resume.
    #[error("{0}")]
    GatePaused(String),
    /// The same idempotency key is still being processed; retryable.
    #[error("{0}")]
    IdempotencyKeyInUse(String),
    /// The same idempotency key with a different request.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// Changes were asked after a revision no longer kept (compacted away).
    #[error("changes after revision {after} are no longer kept: compacted through revision {horizon}")]
    Compacted {
        /// The revision the caller asked to read after.
        after: u64,
        /// The highest revision compacted away; changes after it are kept.
        horizon: u64,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidRequest`].
    pub fn invalid(detail: impl Into<String>) -> Self {
        Error::InvalidRequest(detail.into())
    }
}
