//! Gates, tickets and capabilities (SPEC §7).

use lockstep_core::gate::{Gate, Policy, Ticket};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// `{id, state, epoch, policy, meta, revision, created_at, updated_at}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Gate")]
pub struct GateBody<'a> {
    id: &'a str,
    state: &'static str,
    epoch: u64,
    policy: &'a Policy,
    meta: &'a Value,
    revision: u64,
    created_at: String,
    updated_at: String,
}

/// A gate as read.
pub fn gate(g: &Gate) -> GateBody<'_> {
    GateBody {
        id: &g.id,
        state: g.state.as_str(),
        epoch: g.epoch,
        policy: &g.policy,
        meta: &g.meta,
        revision: g.revision,
        created_at: g.created_at.to_rfc3339(),
        updated_at: g.updated_at.to_rfc3339(),
    }
}

/// A transition: the gate with `changed`, `voided` and `pending`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "GateTransitioned")]
pub struct Transitioned<'a> {
    /// The gate after it.
    #[serde(flatten)]
    pub gate: GateBody<'a>,
    /// Whether anything changed.
    pub changed: bool,
    /// Open tickets of the old epoch voided by it.
    pub voided: usize,
    /// Committed, unfinalized tickets of the old epoch.
    pub pending: usize,
}

/// `{ticket_id, gate, epoch, state, meta, recovered, finalized_revision,
/// revision, created_at, updated_at}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Ticket")]
pub struct TicketBody<'a> {
    ticket_id: &'a str,
    gate: &'a str,
    epoch: u64,
    state: &'static str,
    meta: &'a Value,
    recovered: bool,
    finalized_revision: Option<u64>,
    revision: u64,
    created_at: String,
    updated_at: String,
}

/// A ticket as read.
pub fn ticket(t: &Ticket) -> TicketBody<'_> {
    TicketBody {
        ticket_id: &t.id,
        gate: &t.gate,
        epoch: t.epoch,
        state: t.state.as_str(),
        meta: &t.meta,
        recovered: t.recovered,
        finalized_revision: t.finalized_revision,
        revision: t.revision,
        created_at: t.created_at.to_rfc3339(),
        updated_at: t.updated_at.to_rfc3339(),
    }
}

/// An admission: the ticket with `created`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "TicketAdmitted")]
pub struct Admitted<'a> {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: TicketBody<'a>,
    /// Whether it is new.
    pub created: bool,
}

/// `{tickets: [...]}` of a listing page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Tickets<'a> {
    /// The tickets.
    pub tickets: Vec<TicketBody<'a>>,
}

/// A minted capability: `{capability, expires_at, epoch, gate, ops}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Capability<'a> {
    /// The bearer string.
    pub capability: &'a str,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// The epoch it is bound to.
    pub epoch: u64,
    /// The gate it names.
    pub gate: &'a str,
    /// The ticket operations it allows.
    pub ops: Vec<&'static str>,
}
