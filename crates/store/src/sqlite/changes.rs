//! The change log on SQLite: paging it in (revision, index) order with prefix
//! and kind filters, its bounds, and compaction (retention by age and count).
//!
//! The single writer commits revisions in order and a reader sees whole
//! commits, so `revision > after` never misses a change that commits later.
//! Compaction deletes the oldest whole revisions in bounded batches and records
//! the highest revision deleted (the horizon) in the same transaction; a reader
//! checks the horizon after reading its rows, so it can never take a page with
//! compacted holes for a complete one.

use super::SqliteStore;
use crate::changelog::{whole_revisions, with_whole_revision, Fetched};
use crate::codec::change_from_parts;
use crate::kernel::complete_now;
use crate::query::ChangeQuery;
use crate::sweep::{compact, Batch, Compaction};
use crate::{rev_i64, sql, stored_u64, ChangeBounds, ChangePage, Error};
use lockstep_core::compaction::Cutoffs;
use lockstep_core::Millis;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

const COLUMNS: &str = "revision, idx, kind, key, op, actor, forced, at";

/// One stored change row, before its kind and op are parsed.
type RawChange = (i64, i64, String, String, String, String, bool, i64);

fn raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawChange> {
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

/// The `WHERE` clause of a page query (SQLite numbering).
const FILTER: &str = "ns = ?1 AND (?2 IS NULL OR kind = ?2) AND key >= ?3 AND (?4 IS NULL OR key < ?4)";

fn latest(c: &Connection) -> Result<u64, Error> {
    let v: i64 = c
        .prepare_cached("SELECT coalesce(max(revision), 0) FROM changes")?
        .query_row([], |r| r.get(0))?;
    stored_u64("revision", v)
}

fn horizon(c: &Connection) -> Result<u64, Error> {
    let v: Option<i64> = c
        .prepare_cached("SELECT revision FROM change_horizon WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    stored_u64(
        "horizon",
        v.ok_or_else(|| Error::Internal("the change_horizon row is missing".into()))?,
    )
}

fn list(c: &Connection, q: &ChangeQuery) -> Result<ChangePage, Error> {
    let (ns, after, prefix, kind, limit) = (&q.ns, q.after, &q.prefix, &q.kind, q.limit);
    let upper = q.upper();
    // One read transaction: the rows, the latest revision and the horizon come
    // from one snapshot.
    let tx = c.unchecked_transaction()?;
    let latest = latest(&tx)?;
    let fetch = q.sql_fetch();
    let rows = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM changes WHERE {FILTER} AND revision > ?5 ORDER BY revision, idx LIMIT ?6"
        ))?
        .query_map(params![ns, kind, prefix, upper, rev_i64(after)?, fetch], raw)?
        .map(|r| {
            r.map_err(Error::from)
                .and_then(|r| change_from_parts(r.0, r.1, &r.2, r.3, &r.4, r.5, r.6, r.7))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let horizon = horizon(&tx)?;
    let fetched = Fetched {
        rows,
        latest,
        horizon,
    };
    let (page, whole) = whole_revisions(fetched, after, limit)?;
    let page = match whole {
        None => page,
        Some(rev) => {
            let rows = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM changes WHERE {FILTER} AND revision = ?5 ORDER BY idx"
                ))?
                .query_map(params![ns, kind, prefix, upper, rev_i64(rev)?], raw)?
                .map(|r| {
                    r.map_err(Error::from)
                        .and_then(|r| change_from_parts(r.0, r.1, &r.2, r.3, &r.4, r.5, r.6, r.7))
                })
                .collect::<Result<Vec<_>, _>>()?;
            with_whole_revision(page, rev, rows)
        }
    };
    tx.finish()?;
    Ok(page)
}

/// Compaction on a connection of its own beside the writer (synchronous: the
/// futures never wait).
struct Compactor<'a> {
    c: &'a Connection,
    now: Millis,
}

impl Compaction for Compactor<'_> {
    type Fail = Error;

    async fn start(&mut self, offset: i64) -> Result<(Millis, Option<i64>), Error> {
        let count_cutoff = self
            .c
            .prepare_cached(
                "SELECT revision FROM changes ORDER BY revision DESC, idx DESC LIMIT 1 OFFSET ?1",
            )?
            .query_row(params![offset], |r| r.get(0))
            .optional()?;
        Ok((self.now, count_cutoff))
    }

    async fn batch(&mut self, cutoffs: &Cutoffs, limit: i64) -> Result<Option<Batch>, Error> {
        // BEGIN IMMEDIATE: the write lock first, so the rows looked at are the ones deleted.
        let tx = rusqlite::Transaction::new_unchecked(self.c, TransactionBehavior::Immediate)?;
        let oldest: Vec<(i64, i64)> = tx
            .prepare_cached("SELECT revision, at FROM changes ORDER BY revision, idx LIMIT ?1")?
            .query_map(params![limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let end = cutoffs.deletable_through(&oldest);
        let mut deleted = 0;
        if let Some(end) = end {
            deleted = tx
                .prepare_cached(&sql::sqlite(sql::DELETE_CHANGES_THROUGH))?
                .execute(params![end])? as u64;
            tx.prepare_cached(&sql::sqlite(sql::RAISE_HORIZON))?
                .execute(params![end])?;
        }
        tx.commit()?;
        Ok(Some(Batch { oldest, end, deleted }))
    }
}

impl SqliteStore {
    /// One page of the change log of `ns` after `after` (see [`crate::Store::list_changes`]).
    pub async fn list_changes(&self, q: ChangeQuery) -> Result<ChangePage, Error> {
        self.read(move |c| list(c, &q)).await
    }

    /// The compaction horizon and the latest committed revision.
    pub async fn change_bounds(&self) -> Result<ChangeBounds, Error> {
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let bounds = ChangeBounds {
                latest: latest(&tx)?,
                horizon: horizon(&tx)?,
            };
            tx.finish()?;
            Ok(ChangeBounds {
                latest: bounds.latest.max(bounds.horizon),
                ..bounds
            })
        })
        .await
    }

    /// Compacts the change log (see [`crate::Store::compact_changes`]). Runs on
    /// a connection of its own beside the writer; SQLite's write lock (with the
    /// busy timeout) serializes the two.
    pub async fn compact_changes(&self, keep_ms: u64, keep_count: u64) -> Result<u64, Error> {
        let clock = self.inner.clock.clone();
        self.read(move |c| {
            let mut compactor = Compactor { c, now: clock.now() };
            complete_now(compact(&mut compactor, keep_ms, keep_count))
        })
        .await
    }
}
