//! The shape of an RFC 9457 problem document (SPEC §3). Which refusal gets
//! which status, code, detail and members is the server's decision alone.
//!
//! ```
//! use lockstep_api::problem::{Extensions, Problem};
//! let p: Problem = serde_json::from_value(serde_json::json!({
//!     "type": "urn:lockstep:problem:version_mismatch", "title": "Version mismatch",
//!     "status": 409, "detail": "expected version 1, found 2", "code": "version_mismatch",
//!     "current": {"version": 2, "value": "x"}})).unwrap();
//! assert!(matches!(p.extensions, Some(Extensions::Current { current: Some(c) }) if c.version == 2));
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `{type, title, status, detail, code}` and the refusal's extension members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Problem {
    /// The problem type: the URN of the code.
    #[serde(rename = "type")]
    pub kind: String,
    /// The code's title.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// The stable code: one of [`CODES`].
    #[schemars(schema_with = "code_schema")]
    pub code: String,
    /// Members of some refusals.
    #[serde(flatten)]
    pub extensions: Option<Extensions>,
}

/// `code`: one of [`CODES`].
fn code_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": CODES})
}

/// The extension members of a refusal that has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Extensions {
    /// A held lease: who holds it, until when, and how many wait.
    LeaseHeld {
        /// The holder's label.
        holder: Option<String>,
        /// RFC 3339.
        expires_at: Option<String>,
        /// The waiters limit that refused a place, or the queue length.
        waiters: usize,
    },
    /// A failed precondition: the current record, or null when absent.
    Current {
        /// `{version, value}` or null.
        #[serde(deserialize_with = "present")]
        current: Option<Current>,
    },
}

/// A member that must be present, even when null.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Current>, D::Error> {
    Option::<Current>::deserialize(d)
}

/// `{version, value}` of the current record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Current {
    /// Its version.
    pub version: u64,
    /// Its value.
    pub value: Value,
}

/// Every stable `code` a problem can carry (SPEC §3): the enum of `code` in
/// the OpenAPI document.
pub const CODES: &[&str] = &[
    "invalid_request",
    "unauthorized",
    "too_many_requests",
    "forbidden",
    "not_found",
    "version_mismatch",
    "patch_test_failed",
    "precondition_failed",
    "payload_too_large",
    "invalid_patch",
    "lease_held",
    "lease_lost",
    "ticket_conflict",
    "invalid_transition",
    "gate_closed",
    "gate_paused",
    "compacted",
    "idempotency_key_in_use",
    "idempotency_key_reused",
    "unavailable",
    "internal",
    "unsupported_media_type",
    "method_not_allowed",
];
