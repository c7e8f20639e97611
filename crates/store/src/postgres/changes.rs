//! The change log on PostgreSQL: paging it in (revision, index) order with
//! prefix and kind filters, its bounds, and compaction (retention by age and
//! count).
//!
//! Sequence values commit out of order, so a page only reads up to the
//! *visible* revision: the sequence's value, read before waiting for every
//! writer mark held at that moment (each writer holds its connection's mark
//! from before it allocates a revision until its commit, see
//! `super::WRITER_MARK`), below which every revision has committed or never
//! will. `revision > after` therefore never misses a change that commits later.
//! A page reads its rows, the latest revision and the compaction horizon in one
//! statement, hence in one snapshot.

use super::{now_sql, pg_error, PgStore, QUERY_TIMEOUT};
use crate::changelog::{whole_revisions, with_whole_revision, Fetched};
use crate::codec::change_from_parts;
use crate::query::ChangeQuery;
use crate::sweep::{compact, Batch, Compaction};
use crate::{rev_i64, sql, stored_u64, ChangeBounds, ChangePage, Error};
use deadpool_postgres::GenericClient;
use lockstep_core::compaction::Cutoffs;
use lockstep_core::{Change, Millis};

/// Transaction-scoped advisory lock of a compaction batch: one instance
/// compacts at a time, the others skip.
const COMPACT_LOCK: i64 = 0x6c6f_636b_6368_6763; // "lockchgc"

const FILTER: &str = "ns = $1 AND ($2::text IS NULL OR kind = $2::text) AND key >= $3::text
    AND ($4::text IS NULL OR key < $4::text)";

fn row_change(r: &tokio_postgres::Row, at: usize) -> Result<Change, Error> {
    let get_err = pg_error;
    let kind: String = r.try_get(at + 2).map_err(get_err)?;
    let op: String = r.try_get(at + 4).map_err(get_err)?;
    change_from_parts(
        r.try_get(at).map_err(get_err)?,
        i64::from(r.try_get::<_, i32>(at + 1).map_err(get_err)?),
        &kind,
        r.try_get(at + 3).map_err(get_err)?,
        &op,
        r.try_get(at + 5).map_err(get_err)?,
        r.try_get(at + 6).map_err(get_err)?,
        r.try_get(at + 7).map_err(get_err)?,
    )
}

async fn list(c: &impl GenericClient, q: &ChangeQuery, visible: u64) -> Result<ChangePage, Error> {
    let (ns, after, prefix, kind, limit) = (&q.ns, q.after, &q.prefix, &q.kind, q.limit);
    let upper = q.upper();
    let stmt = c
        .prepare_cached(&format!(
            "SELECT h.revision, m.latest, c.revision, c.idx, c.kind, c.key, c.op, c.actor, c.forced, c.at
             FROM change_horizon h
             CROSS JOIN (SELECT least(coalesce(max(revision), 0)::int8, $7) AS latest FROM changes) m
             LEFT JOIN LATERAL (
               SELECT revision, idx, kind, key, op, actor, forced, at FROM changes
               WHERE {FILTER} AND revision > $5 AND revision <= $7 ORDER BY revision, idx LIMIT $6
             ) c ON true
             WHERE h.id = 1
             ORDER BY c.revision, c.idx"
        ))
        .await
        .map_err(pg_error)?;
    let fetch = q.sql_fetch();
    let rows = c
        .query(
            &stmt,
            &[
                &ns,
                &kind,
                &prefix,
                &upper,
                &rev_i64(after)?,
                &fetch,
                &rev_i64(visible)?,
            ],
        )
        .await
        .map_err(pg_error)?;
    let mut fetched = Fetched {
        rows: Vec::with_capacity(rows.len()),
        latest: 0,
        horizon: 0,
    };
    for r in &rows {
        fetched.horizon = stored_u64("horizon", r.try_get(0).map_err(pg_error)?)?;
        // `coalesce`: an empty log's latest revision is 0.
        fetched.latest = stored_u64("revision", r.try_get(1).map_err(pg_error)?)?;
        if r.try_get::<_, Option<i64>>(2).map_err(pg_error)?.is_some() {
            fetched.rows.push(row_change(r, 2)?);
        }
    }
    if rows.is_empty() {
        return Err(Error::Internal("the change_horizon row is missing".into()));
    }
    let (page, whole) = whole_revisions(fetched, after, limit)?;
    let Some(rev) = whole else {
        return Ok(page);
    };
    let stmt = c
        .prepare_cached(&format!(
            "SELECT revision, idx, kind, key, op, actor, forced, at FROM changes
             WHERE {FILTER} AND revision = $5 ORDER BY idx"
        ))
        .await
        .map_err(pg_error)?;
    let rows = c
        .query(&stmt, &[&ns, &kind, &prefix, &upper, &rev_i64(rev)?])
        .await
        .map_err(pg_error)?;
    let rows = rows
        .iter()
        .map(|r| row_change(r, 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(with_whole_revision(page, rev, rows))
}

async fn bounds(c: &impl GenericClient) -> Result<ChangeBounds, Error> {
    let row = c
        .query_one(
            "SELECT (SELECT revision FROM change_horizon WHERE id = 1),
                    (SELECT coalesce(max(revision), 0)::int8 FROM changes)",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let horizon = row
        .try_get::<_, Option<i64>>(0)
        .map_err(pg_error)?
        .ok_or_else(|| Error::Internal("the change_horizon row is missing".into()))?;
    let horizon = stored_u64("horizon", horizon)?;
    // `coalesce`: an empty log's latest revision is 0.
    let latest = stored_u64("revision", row.try_get(1).map_err(pg_error)?)?;
    Ok(ChangeBounds {
        horizon,
        latest: latest.max(horizon),
    })
}

/// Compaction over one pooled connection.
struct Compactor<'a> {
    client: &'a mut deadpool_postgres::Object,
    fixed_now: Option<i64>,
}

impl Compaction for Compactor<'_> {
    type Fail = Error;

    async fn start(&mut self, offset: i64) -> Result<(Millis, Option<i64>), Error> {
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT {},
                            (SELECT revision FROM changes ORDER BY revision DESC, idx DESC LIMIT 1 OFFSET $1)",
                    now_sql(2)
                ),
                &[&offset, &self.fixed_now],
            )
            .await
            .map_err(pg_error)?;
        Ok((
            Millis(row.try_get(0).map_err(pg_error)?),
            row.try_get(1).map_err(pg_error)?,
        ))
    }

    async fn batch(&mut self, cutoffs: &Cutoffs, limit: i64) -> Result<Option<Batch>, Error> {
        let tx = self.client.transaction().await.map_err(pg_error)?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&COMPACT_LOCK])
            .await
            .map_err(pg_error)?
            .try_get(0)
            .map_err(pg_error)?;
        if !locked {
            return Ok(None);
        }
        let oldest: Vec<(i64, i64)> = tx
            .query(
                "SELECT revision, at FROM changes ORDER BY revision, idx LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(pg_error)?;
        let end = cutoffs.deletable_through(&oldest);
        let mut deleted = 0;
        if let Some(end) = end {
            deleted = tx
                .execute(sql::DELETE_CHANGES_THROUGH, &[&end])
                .await
                .map_err(pg_error)?;
            tx.execute(sql::RAISE_HORIZON, &[&end]).await.map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(Some(Batch { oldest, end, deleted }))
    }
}

impl PgStore {
    /// One page of the change log of `ns` after `after` (see [`crate::Store::list_changes`]).
    pub async fn list_changes(&self, q: ChangeQuery) -> Result<ChangePage, Error> {
        let visible = self.visible_revision().await?;
        let client = self.client().await?;
        bounded!(client, { list(&client, &q, visible).await })
    }

    /// The compaction horizon and the visible revision.
    pub async fn change_bounds(&self) -> Result<ChangeBounds, Error> {
        // "Now" for a watch is the visible revision: the highest committed one
        // may still have revisions in flight below it.
        let visible = self.visible_revision().await?;
        let client = self.client().await?;
        let b = bounded!(client, { bounds(&client).await })?;
        Ok(ChangeBounds {
            latest: visible.max(b.horizon),
            ..b
        })
    }

    /// Compacts the change log (see [`crate::Store::compact_changes`]).
    pub async fn compact_changes(&self, keep_ms: u64, keep_count: u64) -> Result<u64, Error> {
        let mut client = self.client().await?;
        let fixed_now = self.fixed_now();
        bounded!(client, {
            let mut compactor = Compactor {
                client: &mut client,
                fixed_now,
            };
            compact(&mut compactor, keep_ms, keep_count).await
        })
    }
}
