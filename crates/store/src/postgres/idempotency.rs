//! Idempotency entries on PostgreSQL (decoding shared with SQLite).

use super::{now_sql, pg_error, Failure};
use crate::codec::{entry_from, response_text};
use crate::{sql, Error};
use deadpool_postgres::GenericClient;
use lockstep_core::idempotency::IdemEntry;
use lockstep_core::Command;

/// Loads entries by `(scope, key)`.
pub async fn load(
    c: &impl GenericClient,
    ns: &str,
    keys: &[(&str, &str)],
) -> Result<Vec<IdemEntry>, Failure> {
    let stmt = c
        .prepare_cached(
            "SELECT x.* FROM unnest($2::text[], $3::text[]) AS w(scope, key) CROSS JOIN LATERAL (
               SELECT scope, key, fingerprint, token, response, locked_until, expires_at FROM idempotency
               WHERE ns = $1 AND scope = w.scope AND key = w.key OFFSET 0) AS x",
        )
        .await?;
    let scopes: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let ks: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let mut out = Vec::new();
    for r in c.query(&stmt, &[&ns, &scopes, &ks]).await? {
        out.push(entry_from(
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get(6)?,
        )?);
    }
    Ok(out)
}

/// Writes an entry.
pub async fn put(c: &impl GenericClient, ns: &str, e: &IdemEntry) -> Result<(), Failure> {
    let stmt = c.prepare_cached(sql::UPSERT_IDEMPOTENCY).await?;
    let response = response_text(e)?;
    c.execute(
        &stmt,
        &[
            &ns,
            &e.scope,
            &e.key,
            &e.fingerprint,
            &e.token,
            &response,
            &e.locked_until.0,
            &e.expires_at.0,
        ],
    )
    .await?;
    Ok(())
}

/// Sweeper commands for expired entries.
pub async fn expired(
    c: &impl GenericClient,
    batch: usize,
    fixed_now: Option<i64>,
) -> Result<Vec<(String, Command)>, Error> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT ns, scope, key FROM idempotency WHERE expires_at <= {} ORDER BY expires_at LIMIT $1",
            now_sql(2)
        ))
        .await
        .map_err(pg_error)?;
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for r in c.query(&stmt, &[&limit, &fixed_now]).await.map_err(pg_error)? {
        let scope = r.try_get(1).map_err(pg_error)?;
        let key = r.try_get(2).map_err(pg_error)?;
        out.push((
            r.try_get(0).map_err(pg_error)?,
            Command::ExpireIdem { scope, key },
        ));
    }
    Ok(out)
}
