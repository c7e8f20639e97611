//! Gate and ticket rows on PostgreSQL (decoded by `crate::codec`).

use super::{pg_error, Failure};
use crate::codec::{gate_from, json_text, pending_text, ticket_from, GATE_COLUMNS, TICKET_COLUMNS};
use crate::query::TicketPage;
use crate::{rev_i64, sql, Error};
use deadpool_postgres::GenericClient;
use lockstep_core::gate::{Gate, Ticket};

fn gate_row(r: &tokio_postgres::Row) -> Result<Gate, Error> {
    let g = |i| r.try_get::<_, String>(i).map_err(pg_error);
    let n = |i| r.try_get::<_, i64>(i).map_err(pg_error);
    gate_from((g(0)?, g(1)?, n(2)?, g(3)?, g(4)?, n(5)?, n(6)?, n(7)?))
}

fn ticket_row(r: &tokio_postgres::Row) -> Result<Ticket, Error> {
    let g = |i| r.try_get::<_, String>(i).map_err(pg_error);
    let n = |i| r.try_get::<_, i64>(i).map_err(pg_error);
    let recovered: bool = r.try_get(5).map_err(pg_error)?;
    let finalized: Option<i64> = r.try_get(6).map_err(pg_error)?;
    ticket_from((
        g(0)?,
        g(1)?,
        n(2)?,
        g(3)?,
        g(4)?,
        recovered,
        finalized,
        n(7)?,
        n(8)?,
        n(9)?,
    ))
}

/// Loads gates by id.
pub async fn load_gates(c: &impl GenericClient, ns: &str, ids: &[&str]) -> Result<Vec<Gate>, Failure> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT x.* FROM unnest($2::text[]) AS w(id) CROSS JOIN LATERAL (
               SELECT {GATE_COLUMNS} FROM gates WHERE ns = $1 AND id = w.id OFFSET 0) AS x"
        ))
        .await?;
    Ok(c.query(&stmt, &[&ns, &ids])
        .await?
        .iter()
        .map(gate_row)
        .collect::<Result<_, _>>()?)
}

/// Loads tickets by id.
pub async fn load_tickets(c: &impl GenericClient, ns: &str, ids: &[&str]) -> Result<Vec<Ticket>, Failure> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT x.* FROM unnest($2::text[]) AS w(id) CROSS JOIN LATERAL (
               SELECT {TICKET_COLUMNS} FROM tickets WHERE ns = $1 AND id = w.id OFFSET 0) AS x"
        ))
        .await?;
    Ok(c.query(&stmt, &[&ns, &ids])
        .await?
        .iter()
        .map(ticket_row)
        .collect::<Result<_, _>>()?)
}

/// Loads the unfinished tickets of a gate.
pub async fn load_unfinished(c: &impl GenericClient, ns: &str, gate: &str) -> Result<Vec<Ticket>, Failure> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE ns = $1 AND gate = $2 AND state IN ('open', 'committed')"
        ))
        .await?;
    Ok(c.query(&stmt, &[&ns, &gate])
        .await?
        .iter()
        .map(ticket_row)
        .collect::<Result<_, _>>()?)
}

/// Writes a gate.
pub async fn put_gate(c: &impl GenericClient, ns: &str, g: &Gate) -> Result<(), Failure> {
    let stmt = c.prepare_cached(sql::UPSERT_GATES).await?;
    let meta = json_text(&g.meta)?;
    let epoch = rev_i64(g.epoch)?;
    let revision = rev_i64(g.revision)?;
    c.execute(
        &stmt,
        &[
            &ns,
            &g.id,
            &g.state.as_str(),
            &epoch,
            &pending_text(g.policy.pending),
            &meta,
            &g.created_at.0,
            &g.updated_at.0,
            &revision,
        ],
    )
    .await?;
    Ok(())
}

/// Writes a ticket.
pub async fn put_ticket(c: &impl GenericClient, ns: &str, t: &Ticket) -> Result<(), Failure> {
    let stmt = c.prepare_cached(sql::UPSERT_TICKETS).await?;
    let meta = json_text(&t.meta)?;
    let epoch = rev_i64(t.epoch)?;
    let finalized = t.finalized_revision.map(rev_i64).transpose()?;
    let revision = rev_i64(t.revision)?;
    c.execute(
        &stmt,
        &[
            &ns,
            &t.id,
            &t.gate,
            &epoch,
            &t.state.as_str(),
            &meta,
            &t.recovered,
            &finalized,
            &t.created_at.0,
            &t.updated_at.0,
            &revision,
        ],
    )
    .await?;
    Ok(())
}

/// Tickets of a gate by id, optionally of one state, after `after`.
pub async fn list_tickets(c: &impl GenericClient, q: &TicketPage) -> Result<Vec<Ticket>, Failure> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE ns = $1 AND gate = $2 AND ($3::text IS NULL OR state = $3::text)
               AND ($4::text IS NULL OR id > $4::text) ORDER BY id LIMIT $5"
        ))
        .await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&q.ns, &q.gate, &q.state_name(), &q.after, &q.sql_limit()];
    Ok(c.query(&stmt, &params)
        .await?
        .iter()
        .map(ticket_row)
        .collect::<Result<_, _>>()?)
}
