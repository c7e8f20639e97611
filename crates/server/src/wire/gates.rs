//! Gates and tickets (SPEC §7): answers built from core types.

use lockstep_api::gates::{Gate as GateBody, Ticket as TicketBody};
use lockstep_core::gate::{Gate, Ticket};

/// A gate as read.
pub fn gate(g: &Gate) -> GateBody {
    GateBody {
        id: g.id.clone(),
        state: g.state,
        epoch: g.epoch,
        policy: g.policy,
        meta: g.meta.clone(),
        revision: g.revision,
        created_at: g.created_at.to_rfc3339(),
        updated_at: g.updated_at.to_rfc3339(),
    }
}

/// A ticket as read.
pub fn ticket(t: &Ticket) -> TicketBody {
    TicketBody {
        ticket_id: t.id.clone(),
        gate: t.gate.clone(),
        epoch: t.epoch,
        state: t.state,
        meta: t.meta.clone(),
        recovered: t.recovered,
        finalized_revision: t.finalized_revision,
        revision: t.revision,
        created_at: t.created_at.to_rfc3339(),
        updated_at: t.updated_at.to_rfc3339(),
    }
}
