//! lockstep-core: the types, validation and pure semantics of every lockstep primitive.
//!
//! Nothing in this crate performs I/O, reads a clock or makes randomness: every
//! function takes the current state, the request, the revision to commit at and
//! `now`, and returns the new state and an answer, or a typed refusal. Backends
//! (lockstep-store) load, lock, call these functions and persist what they return.

pub mod admission;
pub mod capability;
pub mod change;
pub mod command;
pub mod compaction;
pub mod cursor;
pub mod error;
pub mod feed;
pub mod gate;
pub mod idempotency;
pub mod json;
pub mod lease;
pub mod limits;
pub mod names;
pub mod record;
pub mod retention;
pub mod time;
pub mod txn;

pub use change::{Change, ChangeKind, ChangeOp};
pub use command::{execute, Command, Ctx, Effect, Mutation, Outcome, Row, RowKey, Snapshot};
pub use error::{Current, Error};
pub use limits::Limits;
pub use record::{Precondition, Record};
pub use time::Millis;
