//! Gate and ticket rows on SQLite (decoded by `crate::codec`).

use crate::codec::{
    gate_from, json_text, pending_text, ticket_from, GateParts, TicketParts, GATE_COLUMNS, TICKET_COLUMNS,
};
use crate::query::TicketPage;
use crate::{rev_i64, sql, Error};
use lockstep_core::gate::{Gate, Ticket};
use lockstep_core::Row;
use rusqlite::{params, Connection, OptionalExtension};

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
    c.prepare_cached(&sql::sqlite(sql::UPSERT_GATES))?
        .execute(params![
            ns,
            g.id,
            g.state.as_str(),
            rev_i64(g.epoch)?,
            pending_text(g.policy.pending),
            json_text(&g.meta)?,
            g.created_at.0,
            g.updated_at.0,
            rev_i64(g.revision)?
        ])?;
    Ok(())
}

/// Writes a ticket.
pub fn put_ticket(c: &Connection, ns: &str, t: &Ticket) -> Result<(), Error> {
    let finalized = t.finalized_revision.map(rev_i64).transpose()?;
    c.prepare_cached(&sql::sqlite(sql::UPSERT_TICKETS))?
        .execute(params![
            ns,
            t.id,
            t.gate,
            rev_i64(t.epoch)?,
            t.state.as_str(),
            json_text(&t.meta)?,
            t.recovered,
            finalized,
            t.created_at.0,
            t.updated_at.0,
            rev_i64(t.revision)?
        ])?;
    Ok(())
}

/// Tickets of a gate by id, optionally of one state, after `after`.
pub fn list_tickets(c: &Connection, q: &TicketPage) -> Result<Vec<Ticket>, Error> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE ns = ?1 AND gate = ?2 AND (?3 IS NULL OR state = ?3)
           AND (?4 IS NULL OR id > ?4) ORDER BY id LIMIT ?5"
    );
    c.prepare_cached(&sql)?
        .query_map(
            params![q.ns, q.gate, q.state_name(), q.after, q.sql_limit()],
            ticket_parts,
        )?
        .map(|r| r.map_err(Error::from).and_then(ticket_from))
        .collect()
}
