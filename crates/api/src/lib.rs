//! The wire types of the lockstep HTTP API (SPEC §3–§11): every JSON body the
//! server reads or answers, one module per resource.
//!
//! The server builds its answers from these types and parses its requests into
//! them; the OpenAPI document's schemas are derived from them (schemars); the
//! Rust client (`lockstep-client`) deserializes the same types. So the server,
//! its document and the client cannot drift apart.
//!
//! Times are RFC 3339 text, as on the wire. Types are owned and both
//! `Serialize` and `Deserialize`.
//!
//! ```
//! use lockstep_api::records::Record;
//! let r: Record = serde_json::from_str(
//!     r#"{"key":"a","value":1,"version":2,"created_at":"2026-01-01T00:00:00Z",
//!         "updated_at":"2026-01-01T00:00:00Z","expires_at":null}"#,
//! ).unwrap();
//! assert_eq!(r.version, 2);
//! ```
//!
//! ```
//! use lockstep_api::{Page, records::Namespaces};
//! let p: Page<Namespaces> =
//!     serde_json::from_str(r#"{"namespaces":["a"],"next_cursor":null}"#).unwrap();
//! assert_eq!(p.items.namespaces, ["a"]);
//! assert!(p.next_cursor.is_none());
//! ```

pub mod changes;
pub mod feeds;
pub mod gates;
pub mod idempotency;
pub mod leases;
pub mod problem;
pub mod records;
pub mod system;

pub use lockstep_core::capability::CapOp;
pub use lockstep_core::change::{ChangeKind, ChangeOp};
pub use lockstep_core::feed::{FeedConfig, Scrub};
pub use lockstep_core::gate::{GateState, Pending, Policy, TicketOp, TicketState, Transition};
pub use lockstep_core::txn::{Compare, IncrOp, KeyOp, Op, PatchOp, PutOp, Txn};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `{…, next_cursor}`: one page of a listing, its items under their name
/// (`records`, `entries`, `feeds`, `tickets`, `changes`, `namespaces`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    /// The items, under the listing's name.
    #[serde(flatten)]
    pub items: T,
    /// The cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}
