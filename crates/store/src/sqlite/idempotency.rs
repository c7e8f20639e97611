//! Idempotency entries on SQLite.

use crate::codec::{entry_from, response_text};
use crate::{sql, Error};
use lockstep_core::idempotency::IdemEntry;
use lockstep_core::{Command, Millis};
use rusqlite::{params, Connection, OptionalExtension};

/// Loads an entry.
pub fn load(c: &Connection, ns: &str, scope: &str, key: &str) -> Result<Option<IdemEntry>, Error> {
    let row = c
        .prepare_cached(
            "SELECT fingerprint, token, response, locked_until, expires_at FROM idempotency
             WHERE ns = ?1 AND scope = ?2 AND key = ?3",
        )?
        .query_row(params![ns, scope, key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    row.map(|(f, t, resp, l, x)| entry_from(scope.to_owned(), key.to_owned(), f, t, resp, l, x))
        .transpose()
}

/// Writes an entry.
pub fn put(c: &Connection, ns: &str, e: &IdemEntry) -> Result<(), Error> {
    c.prepare_cached(&sql::sqlite(sql::UPSERT_IDEMPOTENCY))?
        .execute(params![
            ns,
            e.scope,
            e.key,
            e.fingerprint,
            e.token,
            response_text(e)?,
            e.locked_until.0,
            e.expires_at.0
        ])?;
    Ok(())
}

/// Sweeper commands for expired entries.
pub fn expired(c: &Connection, batch: usize, now: Millis) -> Result<Vec<(String, Command)>, Error> {
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let mut stmt = c.prepare_cached(
        "SELECT ns, scope, key FROM idempotency WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now.0, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.map(|r| {
        let (ns, scope, key): (String, String, String) = r?;
        Ok((ns, Command::ExpireIdem { scope, key }))
    })
    .collect()
}
