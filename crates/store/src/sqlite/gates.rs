//! Gate and ticket rows on SQLite.

use crate::{rev_i64, stored_u64, Error};
use lockstep_core::gate::{Gate, GateState, Pending, Policy, Ticket, TicketState};
use lockstep_core::{Millis, Row};
use rusqlite::{params, Connection, OptionalExtension};

fn json(s: &str) -> Result<serde_json::Value, Error> {
    crate::parse_stored(s)
}

fn text(v: &serde_json::Value) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}

fn bad(what: &str, v: &str) -> Error {
    Error::Internal(format!("stored {what} {v:?} is unknown"))
}

const GATE_COLUMNS: &str = "id, state, epoch, pending, meta, created_at, updated_at, revision";
const TICKET_COLUMNS: &str =
    "id, gate, epoch, state, meta, recovered, finalized_revision, created_at, updated_at, revision";

/// A gate's stored columns, in `GATE_COLUMNS` order.
pub type GateParts = (String, String, i64, String, String, i64, i64, i64);
/// A ticket's stored columns, in `TICKET_COLUMNS` order.
pub type TicketParts = (
    String,
    String,
    i64,
    String,
    String,
    bool,
    Option<i64>,
    i64,
    i64,
    i64,
);

fn gate_parts(r: &rusqlite::Row<'_>) -> rusqlite::Result<GateParts> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn ticket_parts(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketParts> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

/// Builds a gate from its stored columns (shared with PostgreSQL).
pub fn gate_from(p: GateParts) -> Result<Gate, Error> {
    Ok(Gate {
        state: GateState::parse(&p.1).ok_or_else(|| bad("gate state", &p.1))?,
        epoch: stored_u64("gate epoch", p.2)?,
        policy: Policy {
            pending: match p.3.as_str() {
                "recover" => Pending::Recover,
                "reject" => Pending::Reject,
                other => return Err(bad("pending policy", other)),
            },
        },
        meta: json(&p.4)?,
        created_at: Millis(p.5),
        updated_at: Millis(p.6),
        revision: stored_u64("gate revision", p.7)?,
        id: p.0,
    })
}

/// Builds a ticket from its stored columns (shared with PostgreSQL).
pub fn ticket_from(p: TicketParts) -> Result<Ticket, Error> {
    Ok(Ticket {
        gate: p.1,
        epoch: stored_u64("ticket epoch", p.2)?,
        state: TicketState::parse(&p.3).ok_or_else(|| bad("ticket state", &p.3))?,
        meta: json(&p.4)?,
        recovered: p.5,
        finalized_revision: p.6.map(|r| stored_u64("finalized revision", r)).transpose()?,
        created_at: Millis(p.7),
        updated_at: Millis(p.8),
        revision: stored_u64("ticket revision", p.9)?,
        id: p.0,
    })
}

/// The stored text of a pending policy.
pub fn pending_text(p: Pending) -> &'static str {
    match p {
        Pending::Reject => "reject",
        Pending::Recover => "recover",
    }
}

/// Loads a gate.
pub fn load_gate(c: &Connection, ns: &str, id: &str) -> Result<Option<Gate>, Error> {
    let sql = format!("SELECT {GATE_COLUMNS} FROM gates WHERE ns = ?1 AND id = ?2");
    c.prepare_cached(&sql)?
        .query_row(params![ns, id], gate_parts)
        .optional()?
        .map(gate_from)
        .transpose()
}

/// Loads a ticket.
pub fn load_ticket(c: &Connection, ns: &str, id: &str) -> Result<Option<Ticket>, Error> {
    let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE ns = ?1 AND id = ?2");
    c.prepare_cached(&sql)?
        .query_row(params![ns, id], ticket_parts)
        .optional()?
        .map(ticket_from)
        .transpose()
}

/// Loads the unfinished tickets of a gate.
pub fn load_unfinished(c: &Connection, ns: &str, gate: &str) -> Result<Option<Row>, Error> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE ns = ?1 AND gate = ?2 AND state IN ('open', 'committed')"
    );
    let tickets = c
        .prepare_cached(&sql)?
        .query_map(params![ns, gate], ticket_parts)?
        .map(|r| r.map_err(Error::from).and_then(ticket_from))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Row::GateTickets {
        gate: gate.to_owned(),
        tickets,
    }))
}

/// Writes a gate.
pub fn put_gate(c: &Connection, ns: &str, g: &Gate) -> Result<(), Error> {
    c.prepare_cached(
        "INSERT INTO gates (ns, id, state, epoch, pending, meta, created_at, updated_at, revision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (ns, id) DO UPDATE SET state = excluded.state, epoch = excluded.epoch,
           pending = excluded.pending, meta = excluded.meta, updated_at = excluded.updated_at,
           revision = excluded.revision",
    )?
    .execute(params![
        ns,
        g.id,
        g.state.as_str(),
        rev_i64(g.epoch)?,
        pending_text(g.policy.pending),
        text(&g.meta)?,
        g.created_at.0,
        g.updated_at.0,
        rev_i64(g.revision)?
    ])?;
    Ok(())
}

/// Writes a ticket.
pub fn put_ticket(c: &Connection, ns: &str, t: &Ticket) -> Result<(), Error> {
    let finalized = t.finalized_revision.map(rev_i64).transpose()?;
    c.prepare_cached(
        "INSERT INTO tickets (ns, id, gate, epoch, state, meta, recovered, finalized_revision, created_at, updated_at, revision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (ns, id) DO UPDATE SET state = excluded.state, recovered = excluded.recovered,
           finalized_revision = excluded.finalized_revision, updated_at = excluded.updated_at,
           revision = excluded.revision",
    )?
    .execute(params![
        ns,
        t.id,
        t.gate,
        rev_i64(t.epoch)?,
        t.state.as_str(),
        text(&t.meta)?,
        t.recovered,
        finalized,
        t.created_at.0,
        t.updated_at.0,
        rev_i64(t.revision)?
    ])?;
    Ok(())
}

/// Tickets of a gate by id, optionally of one state, after `after`.
pub fn list_tickets(
    c: &Connection,
    ns: &str,
    gate: &str,
    state: Option<TicketState>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Ticket>, Error> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE ns = ?1 AND gate = ?2 AND (?3 IS NULL OR state = ?3)
           AND (?4 IS NULL OR id > ?4) ORDER BY id LIMIT ?5"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.prepare_cached(&sql)?
        .query_map(
            params![ns, gate, state.map(TicketState::as_str), after, limit],
            ticket_parts,
        )?
        .map(|r| r.map_err(Error::from).and_then(ticket_from))
        .collect()
}
