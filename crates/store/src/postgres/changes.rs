//! The change log on PostgreSQL: paging it in (revision, index) order with
//! prefix and kind filters, its bounds, and compaction (retention by age and
//! count).
//!
//! Sequence values commit out of order, so a page only reads up to the
//! *visible* revision: the sequence's value taken while holding the visibility
//! gate exclusively (every writer holds it shared until its commit, see
//! `super::VISIBILITY_GATE`), below which every revision has committed or never
//! will. `revision > after` therefore never misses a change that commits later.
//! A page reads its rows, the latest revision and the compaction horizon in one
//! statement, hence in one snapshot.

use super::{now_sql, pg_error, PgStore, QUERY_TIMEOUT};
use crate::sqlite::changes::{
    change_from_parts, deletable_through, rev_u64, whole_revisions, with_whole_revision, Fetched,
};
use crate::{rev_i64, sql, ChangeBounds, ChangePage, Error};
use deadpool_postgres::GenericClient;
use lockstep_core::Change;
use std::time::{Duration, Instant};

/// Rows examined and deleted per compaction transaction.
const COMPACT_BATCH: i64 = 5_000;

/// The longest one compaction call keeps deleting (it resumes at the next call).
const COMPACT_BUDGET: Duration = Duration::from_secs(2);

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

async fn list(
    c: &impl GenericClient,
    ns: &str,
    visible: u64,
    after: u64,
    prefix: &str,
    kind: Option<&str>,
    limit: usize,
) -> Result<ChangePage, Error> {
    let upper = lockstep_core::names::prefix_upper_bound(prefix);
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
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
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
        fetched.horizon = rev_u64(r.try_get(0).map_err(pg_error)?)?;
        fetched.latest = rev_u64(r.try_get(1).map_err(pg_error)?)?;
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
    let horizon = rev_u64(row.try_get::<_, Option<i64>>(0).map_err(pg_error)?.unwrap_or(0))?;
    let latest = rev_u64(row.try_get(1).map_err(pg_error)?)?;
    Ok(ChangeBounds {
        horizon,
        latest: latest.max(horizon),
    })
}

async fn compact(
    client: &mut deadpool_postgres::Object,
    keep_ms: u64,
    keep_count: u64,
    fixed_now: Option<i64>,
) -> Result<u64, Error> {
    let started = Instant::now();
    let keep_ms = i64::try_from(keep_ms).unwrap_or(i64::MAX);
    let offset = i64::try_from(keep_count).unwrap_or(i64::MAX);
    let row = client
        .query_one(
            &format!(
                "SELECT {},
                        (SELECT revision FROM changes ORDER BY revision DESC, idx DESC LIMIT 1 OFFSET $1)",
                now_sql(2)
            ),
            &[&offset, &fixed_now],
        )
        .await
        .map_err(pg_error)?;
    let now: i64 = row.try_get(0).map_err(pg_error)?;
    let count_cutoff: i64 = row.try_get::<_, Option<i64>>(1).map_err(pg_error)?.unwrap_or(0);
    let cutoff_at = now.saturating_sub(keep_ms);
    let mut deleted = 0u64;
    loop {
        let tx = client.transaction().await.map_err(pg_error)?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&COMPACT_LOCK])
            .await
            .map_err(pg_error)?
            .try_get(0)
            .map_err(pg_error)?;
        if !locked {
            return Ok(deleted);
        }
        let oldest: Vec<(i64, i64)> = tx
            .query(
                "SELECT revision, at FROM changes ORDER BY revision, idx LIMIT $1",
                &[&COMPACT_BATCH],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(pg_error)?;
        let Some(end) = deletable_through(&oldest, cutoff_at, count_cutoff) else {
            tx.commit().await.map_err(pg_error)?;
            return Ok(deleted);
        };
        let n = tx
            .execute(sql::DELETE_CHANGES_THROUGH, &[&end])
            .await
            .map_err(pg_error)?;
        tx.execute(sql::RAISE_HORIZON, &[&end]).await.map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        deleted += n;
        let stopped_early = oldest.last().is_some_and(|&(rev, _)| rev != end);
        let full = i64::try_from(oldest.len()).unwrap_or(i64::MAX) >= COMPACT_BATCH;
        if !full || stopped_early || started.elapsed() > COMPACT_BUDGET {
            return Ok(deleted);
        }
    }
}

impl PgStore {
    /// One page of the change log of `ns` after `after` (see [`crate::Store::list_changes`]).
    pub async fn list_changes(
        &self,
        ns: &str,
        after: u64,
        prefix: Option<&str>,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<ChangePage, Error> {
        let visible = self.visible_revision().await?;
        let client = self.client().await?;
        bounded!(client, {
            list(
                &client,
                ns,
                visible,
                after,
                prefix.unwrap_or_default(),
                kind,
                limit,
            )
            .await
        })
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
        bounded!(client, {
            compact(&mut client, keep_ms, keep_count, self.fixed_now()).await
        })
    }
}
