//! Gates, tickets and capabilities (SPEC §7).
//!
//! ```
//! use lockstep_api::{gates::Gate, GateState};
//! let g: Gate = serde_json::from_value(serde_json::json!({
//!     "id": "upload-1", "state": "revoked", "epoch": 2,
//!     "policy": {"pending": "reject"}, "meta": {}, "revision": 5,
//!     "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"})).unwrap();
//! assert_eq!(g.state, GateState::Revoked);
//! ```

use lockstep_core::capability::CapOp;
use lockstep_core::gate::{GateState, Policy, TicketState};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A gate as read: `{id, state, epoch, policy, meta, revision, created_at, updated_at}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Gate {
    /// The gate id.
    pub id: String,
    /// Its lifecycle state.
    pub state: GateState,
    /// Its lifecycle epoch: +1 on every reopen.
    pub epoch: u64,
    /// What happens to committed tickets on a terminal transition.
    pub policy: Policy,
    /// The caller's metadata.
    pub meta: Value,
    /// The revision of its last write.
    pub revision: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A transition: the gate with `changed`, `voided` and `pending`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateTransitioned {
    /// The gate after it.
    #[serde(flatten)]
    pub gate: Gate,
    /// Whether anything changed.
    pub changed: bool,
    /// Open tickets of the old epoch voided by it.
    pub voided: usize,
    /// Committed, unfinalized tickets of the old epoch.
    pub pending: usize,
}

/// A ticket as read: `{ticket_id, gate, epoch, state, meta, recovered,
/// finalized_revision, revision, created_at, updated_at}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ticket {
    /// The ticket id.
    pub ticket_id: String,
    /// Its gate.
    pub gate: String,
    /// The gate epoch it was admitted in.
    pub epoch: u64,
    /// Its state.
    pub state: TicketState,
    /// The caller's metadata.
    pub meta: Value,
    /// Whether it was finalized after a terminal transition (policy `recover`).
    pub recovered: bool,
    /// The revision of its finalization, once finalized.
    pub finalized_revision: Option<u64>,
    /// The revision of its last write.
    pub revision: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// An admission: the ticket with `created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketAdmitted {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: Ticket,
    /// Whether it is new.
    pub created: bool,
}

/// `{tickets: [...]}` of a listing page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tickets {
    /// The tickets.
    pub tickets: Vec<Ticket>,
}

/// A minted capability: `{capability, expires_at, epoch, gate, ops}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Capability {
    /// The bearer string.
    pub capability: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// The epoch it is bound to.
    pub epoch: u64,
    /// The gate it names.
    pub gate: String,
    /// The ticket operations it allows.
    pub ops: Vec<CapOp>,
}

/// `PUT /gates/{id}` body: `{policy?, meta?}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutGateBody {
    /// The policy (default: a ticket committed before a revoke is refused at finalize).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// The caller's metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// `POST /gates/{id}/tickets` body: `{ticket_id?, meta?}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmitBody {
    /// The ticket id (a repeated admit of it recovers the ticket); generated
    /// when absent.
    #[schemars(length(min = 1, max = 512))]
    #[schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// The caller's metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// The feed entry a finalization appends: `{feed, data}` (the entry id is
/// the ticket id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendSpec {
    /// The feed.
    #[schemars(length(min = 1, max = 512))]
    #[schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    pub feed: String,
    /// The entry's object.
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub data: Value,
}

/// `POST .../finalize` body: `{append?}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalizeBody {
    /// A feed entry appended in the same transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append: Option<AppendSpec>,
}

/// `GET /gates/{id}/tickets?state=&limit=&cursor=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketsQuery {
    /// Only tickets in this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `POST /gates/{id}/capabilities` body: `{ttl_ms, ops?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MintBody {
    /// How long the capability is valid.
    #[schemars(range(min = 1000, max = 2_592_000_000_u64))]
    pub ttl_ms: u64,
    /// The ticket operations it allows (default: all).
    #[schemars(length(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<CapOp>>,
}
