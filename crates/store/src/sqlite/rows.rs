//! Loading and writing the rows of the write path on SQLite, one statement per row.

use super::{feeds, gates, idempotency};
use crate::{codec, record_from_parts, rev_i64, sql, Error};
use lockstep_core::{Effect, Mutation, Record, Row, RowKey};
use rusqlite::{params, Connection, OptionalExtension};

pub(super) type Parts = (String, String, i64, i64, i64, Option<i64>);

pub(super) fn row_parts(r: &rusqlite::Row<'_>) -> rusqlite::Result<Parts> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

pub(super) fn parts_to_record(p: Parts) -> Result<Record, Error> {
    record_from_parts(p.0, &p.1, p.2, p.3, p.4, p.5)
}

pub(super) fn load(c: &Connection, ns: &str, key: &str) -> Result<Option<Record>, Error> {
    let mut stmt = c.prepare_cached(
        "SELECT key, value, version, created_at, updated_at, expires_at FROM records WHERE ns = ?1 AND key = ?2",
    )?;
    stmt.query_row(params![ns, key], row_parts)
        .optional()?
        .map(parts_to_record)
        .transpose()
}

/// Loads one stored row of any kind.
pub(super) fn load_row(c: &Connection, ns: &str, key: &RowKey) -> Result<Option<Row>, Error> {
    Ok(match key {
        RowKey::Record(k) => load(c, ns, k)?.map(Row::Record),
        RowKey::Lease(name) => c
            .prepare_cached(&format!(
                "SELECT {} FROM leases WHERE ns = ?1 AND name = ?2",
                codec::LEASE_COLUMNS
            ))?
            .query_row(params![ns, name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .optional()?
            .map(|(token, holder, fence, acquired_at, expires_at, last_waiter)| {
                codec::lease_from(
                    name.clone(),
                    token,
                    holder,
                    fence,
                    acquired_at,
                    expires_at,
                    last_waiter,
                )
            })
            .transpose()?
            .map(Row::Lease),
        RowKey::Waiters(name) => {
            let mut stmt = c.prepare_cached(
                "SELECT id, alive_until FROM lease_waiters WHERE ns = ?1 AND name = ?2 ORDER BY id",
            )?;
            let waiters = stmt
                .query_map(params![ns, name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .map(|r| {
                    r.map_err(Error::from)
                        .and_then(|(id, alive)| codec::waiter_from(id, alive))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (!waiters.is_empty()).then(|| Row::Waiters {
                name: name.clone(),
                waiters,
            })
        }
        RowKey::Fence(resource) => c
            .prepare_cached("SELECT fence FROM fences WHERE ns = ?1 AND resource = ?2")?
            .query_row(params![ns, resource], |r| r.get(0))
            .optional()?
            .map(|fence| crate::stored_u64("fence", fence))
            .transpose()?
            .map(|fence| Row::Fence {
                resource: resource.clone(),
                fence,
            }),
        RowKey::FeedEntry(feed, id) => feeds::load_entry(c, ns, feed, id)?,
        RowKey::Gate(id) => gates::load_gate(c, ns, id)?.map(Row::Gate),
        RowKey::Ticket(id) => gates::load_ticket(c, ns, id)?.map(Row::Ticket),
        RowKey::GateTickets(gate) => gates::load_unfinished(c, ns, gate)?,
        RowKey::Idem(scope, key) => idempotency::load(c, ns, scope, key)?.map(Row::Idem),
        RowKey::FeedConfig(feed) => feeds::load_config(c, ns, feed)?.map(|config| Row::FeedConfig {
            feed: feed.clone(),
            config,
        }),
    })
}

pub(super) fn persist(c: &Connection, ns: &str, effect: &Effect) -> Result<(), Error> {
    for m in &effect.mutations {
        persist_mutation(c, ns, m)?;
    }
    persist_changes(c, ns, effect)
}

pub(super) fn persist_mutation(c: &Connection, ns: &str, m: &Mutation) -> Result<(), Error> {
    {
        match m {
            Mutation::Put(Row::Record(r)) => {
                let value = serde_json::to_string(&r.value).map_err(|e| Error::Internal(e.to_string()))?;
                c.prepare_cached(
                    "INSERT INTO records (ns, key, value, version, created_at, updated_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = excluded.version,
                       created_at = excluded.created_at, updated_at = excluded.updated_at,
                       expires_at = excluded.expires_at",
                )?
                .execute(params![
                    ns,
                    r.key,
                    value,
                    rev_i64(r.version)?,
                    r.created_at.0,
                    r.updated_at.0,
                    r.expires_at.map(|e| e.0)
                ])?;
            }
            Mutation::Put(Row::Lease(l)) => {
                c.prepare_cached(&sql::sqlite(sql::UPSERT_LEASES))?
                    .execute(params![
                        ns,
                        l.name,
                        l.token,
                        l.holder,
                        rev_i64(l.fence)?,
                        l.acquired_at.0,
                        l.expires_at.0,
                        rev_i64(l.last_waiter)?
                    ])?;
            }
            Mutation::Put(Row::Waiters { name, waiters }) => {
                c.prepare_cached("DELETE FROM lease_waiters WHERE ns = ?1 AND name = ?2")?
                    .execute(params![ns, name])?;
                for w in waiters {
                    c.prepare_cached(
                        "INSERT INTO lease_waiters (ns, name, id, alive_until) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![ns, name, rev_i64(w.id)?, w.alive_until.0])?;
                }
            }
            Mutation::Put(Row::Fence { resource, fence }) => {
                c.prepare_cached(&sql::sqlite(sql::UPSERT_FENCES))?
                    .execute(params![ns, resource, rev_i64(*fence)?])?;
            }
            Mutation::Put(Row::FeedEntry(e)) => feeds::put_entry(c, ns, e)?,
            Mutation::Put(Row::FeedConfig { feed, config }) => feeds::put_config(c, ns, feed, config)?,
            Mutation::MarkRead { feed, selector } => feeds::mark_read(c, ns, feed, selector)?,
            Mutation::ResetScrubbed { feed } => feeds::reset_scrubbed(c, ns, feed)?,
            Mutation::Put(Row::Gate(g)) => gates::put_gate(c, ns, g)?,
            Mutation::Put(Row::Idem(e)) => idempotency::put(c, ns, e)?,
            Mutation::Put(Row::Ticket(t)) => gates::put_ticket(c, ns, t)?,
            Mutation::Put(Row::GateTickets { .. }) => {
                return Err(Error::Internal(
                    "a gate's ticket set is written ticket by ticket".into(),
                ))
            }
            Mutation::Delete(key) => {
                let (sql, names) = sql::delete_row(key);
                let params = std::iter::once(ns).chain(names);
                c.prepare_cached(&sql::sqlite(sql))?
                    .execute(rusqlite::params_from_iter(params))?;
            }
        }
    }
    Ok(())
}

pub(super) fn persist_changes(c: &Connection, ns: &str, effect: &Effect) -> Result<(), Error> {
    for ch in &effect.changes {
        c.prepare_cached(
            "INSERT INTO changes (revision, idx, ns, kind, key, op, actor, forced, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            rev_i64(ch.revision)?,
            ch.index,
            ns,
            ch.kind.as_str(),
            ch.key,
            ch.op.as_str(),
            ch.actor,
            ch.forced,
            ch.at.0
        ])?;
    }
    Ok(())
}
