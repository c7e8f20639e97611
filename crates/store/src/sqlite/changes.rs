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
use crate::{rev_i64, sql, ChangeBounds, ChangePage, Error};
use lockstep_core::{Change, ChangeKind, ChangeOp, Millis};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::time::{Duration, Instant};

/// Rows examined and deleted per compaction transaction.
const COMPACT_BATCH: usize = 5_000;

/// The longest one compaction call keeps deleting (it resumes at the next call).
const COMPACT_BUDGET: Duration = Duration::from_secs(2);

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

/// Builds a [`Change`] from its stored columns (shared with PostgreSQL).
#[allow(clippy::too_many_arguments)]
pub(crate) fn change_from_parts(
    revision: i64,
    index: i64,
    kind: &str,
    key: String,
    op: &str,
    actor: String,
    forced: bool,
    at: i64,
) -> Result<Change, Error> {
    let bad = |what: &str| Error::Internal(format!("stored change has {what}"));
    Ok(Change {
        revision: u64::try_from(revision).map_err(|_| bad("a negative revision"))?,
        index: u32::try_from(index).map_err(|_| bad("a bad index"))?,
        kind: ChangeKind::parse(kind).ok_or_else(|| bad(&format!("the unknown kind {kind:?}")))?,
        key,
        op: ChangeOp::parse(op).ok_or_else(|| bad(&format!("the unknown op {op:?}")))?,
        actor,
        forced,
        at: Millis(at),
    })
}

fn to_change(r: RawChange) -> Result<Change, Error> {
    change_from_parts(r.0, r.1, &r.2, r.3, &r.4, r.5, r.6, r.7)
}

/// A stored revision as `u64`.
pub(crate) fn rev_u64(revision: i64) -> Result<u64, Error> {
    u64::try_from(revision).map_err(|_| Error::Internal("negative revision in the change log".into()))
}

/// What a page query found: at most `limit + 1` rows in (revision, index) order.
pub(crate) struct Fetched {
    /// The rows.
    pub rows: Vec<Change>,
    /// The highest committed revision, read in the same snapshot as the rows.
    pub latest: u64,
    /// The compaction horizon, read in the same snapshot as the rows.
    pub horizon: u64,
}

/// Turns `limit + 1` fetched rows into a page of whole revisions: a page never
/// ends inside a revision, because the next page starts after the last revision
/// of this one. Returns the page and, when the first revision alone has more than
/// `limit` matching rows, that revision (the caller then fetches it whole).
pub(crate) fn whole_revisions(
    mut f: Fetched,
    after: u64,
    limit: usize,
) -> Result<(ChangePage, Option<u64>), Error> {
    if f.horizon > after {
        return Err(lockstep_core::Error::Compacted {
            after,
            horizon: f.horizon,
        }
        .into());
    }
    if f.rows.len() <= limit {
        let last = f.rows.last().map_or(0, |c| c.revision);
        let page = ChangePage {
            changes: f.rows,
            more: false,
            // Revisions commit in order: every matching change up to `latest`
            // was visible to this read.
            through: after.max(f.latest).max(last),
        };
        return Ok((page, None));
    }
    let cut = f.rows[limit].revision;
    f.rows.truncate(limit);
    f.rows.retain(|c| c.revision != cut);
    let through = f.rows.last().map_or(after, |c| c.revision);
    let whole = f.rows.is_empty().then_some(cut);
    let page = ChangePage {
        changes: f.rows,
        more: true,
        through,
    };
    Ok((page, whole))
}

/// Completes a page whose first revision had more than `limit` rows: the page
/// becomes that whole revision.
pub(crate) fn with_whole_revision(mut page: ChangePage, revision: u64, rows: Vec<Change>) -> ChangePage {
    page.changes = rows;
    page.through = revision;
    page
}

/// The `WHERE` clause of a page query (SQLite numbering).
const FILTER: &str = "ns = ?1 AND (?2 IS NULL OR kind = ?2) AND key >= ?3 AND (?4 IS NULL OR key < ?4)";

fn latest(c: &Connection) -> Result<u64, Error> {
    let v: i64 = c
        .prepare_cached("SELECT coalesce(max(revision), 0) FROM changes")?
        .query_row([], |r| r.get(0))?;
    rev_u64(v)
}

fn horizon(c: &Connection) -> Result<u64, Error> {
    let v: Option<i64> = c
        .prepare_cached("SELECT revision FROM change_horizon WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    rev_u64(v.unwrap_or(0))
}

fn list(
    c: &Connection,
    ns: &str,
    after: u64,
    prefix: &str,
    kind: Option<&str>,
    limit: usize,
) -> Result<ChangePage, Error> {
    let upper = lockstep_core::names::prefix_upper_bound(prefix);
    // One read transaction: the rows, the latest revision and the horizon come
    // from one snapshot.
    let tx = c.unchecked_transaction()?;
    let latest = latest(&tx)?;
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let rows = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM changes WHERE {FILTER} AND revision > ?5 ORDER BY revision, idx LIMIT ?6"
        ))?
        .query_map(params![ns, kind, prefix, upper, rev_i64(after)?, fetch], raw)?
        .map(|r| r.map_err(Error::from).and_then(to_change))
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
                .map(|r| r.map_err(Error::from).and_then(to_change))
                .collect::<Result<Vec<_>, _>>()?;
            with_whole_revision(page, rev, rows)
        }
    };
    tx.finish()?;
    Ok(page)
}

/// Deletes the oldest revisions older than `keep_ms` (by `at`) or beyond the
/// newest `keep_count` rows, in batches, each with the horizon update.
fn compact(c: &Connection, keep_ms: u64, keep_count: u64, now: Millis) -> Result<u64, Error> {
    let started = Instant::now();
    let cutoff_at = now.0.saturating_sub(i64::try_from(keep_ms).unwrap_or(i64::MAX));
    let offset = i64::try_from(keep_count).unwrap_or(i64::MAX);
    let count_cutoff: i64 = c
        .prepare_cached("SELECT revision FROM changes ORDER BY revision DESC, idx DESC LIMIT 1 OFFSET ?1")?
        .query_row(params![offset], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let batch = i64::try_from(COMPACT_BATCH).unwrap_or(i64::MAX);
    let mut deleted = 0u64;
    loop {
        // BEGIN IMMEDIATE: the write lock first, so the rows looked at are the ones deleted.
        let tx = rusqlite::Transaction::new_unchecked(c, TransactionBehavior::Immediate)?;
        let oldest: Vec<(i64, i64)> = tx
            .prepare_cached("SELECT revision, at FROM changes ORDER BY revision, idx LIMIT ?1")?
            .query_map(params![batch], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let end = deletable_through(&oldest, cutoff_at, count_cutoff);
        let Some(end) = end else {
            tx.finish()?;
            return Ok(deleted);
        };
        let n = tx
            .prepare_cached(&sql::sqlite(sql::DELETE_CHANGES_THROUGH))?
            .execute(params![end])?;
        tx.prepare_cached(&sql::sqlite(sql::RAISE_HORIZON))?
            .execute(params![end])?;
        tx.commit()?;
        deleted += n as u64;
        let stopped_early = oldest.last().is_some_and(|&(rev, _)| rev != end);
        if oldest.len() < COMPACT_BATCH || stopped_early || started.elapsed() > COMPACT_BUDGET {
            return Ok(deleted);
        }
    }
}

/// The highest revision of the oldest rows `(revision, at)` (in order) such
/// that it and every revision before it may go: older than `cutoff_at`, or at
/// most `count_cutoff`. All changes of one revision share their `at`.
pub(crate) fn deletable_through(oldest: &[(i64, i64)], cutoff_at: i64, count_cutoff: i64) -> Option<i64> {
    let mut end = None;
    for &(rev, at) in oldest {
        if rev <= count_cutoff || at < cutoff_at {
            end = Some(rev);
        } else {
            break;
        }
    }
    end
}

impl SqliteStore {
    /// One page of the change log of `ns` after `after` (see [`crate::Store::list_changes`]).
    pub async fn list_changes(
        &self,
        ns: &str,
        after: u64,
        prefix: Option<&str>,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<ChangePage, Error> {
        let (ns, prefix, kind) = (
            ns.to_owned(),
            prefix.unwrap_or_default().to_owned(),
            kind.map(str::to_owned),
        );
        self.read(move |c| list(c, &ns, after, &prefix, kind.as_deref(), limit))
            .await
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
        self.read(move |c| compact(c, keep_ms, keep_count, clock.now()))
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ch(revision: u64, index: u32) -> Change {
        Change {
            revision,
            index,
            kind: ChangeKind::Record,
            key: format!("k{revision}.{index}"),
            op: ChangeOp::Put,
            actor: "t".into(),
            forced: false,
            at: Millis(0),
        }
    }

    fn fetched(rows: Vec<Change>) -> Fetched {
        Fetched {
            rows,
            latest: 100,
            horizon: 0,
        }
    }

    #[test]
    fn pages_end_on_revision_boundaries() {
        let rows = vec![ch(1, 0), ch(2, 0), ch(2, 1), ch(3, 0)];
        // Room for 2 rows: revision 2 would be cut, so the page is revision 1.
        let (p, whole) = whole_revisions(fetched(rows[..3].to_vec()), 0, 2).unwrap();
        assert_eq!(p.changes, vec![ch(1, 0)]);
        assert!(p.more);
        assert_eq!(p.through, 1);
        assert_eq!(whole, None);
        // Room for 3: revisions 1 and 2 whole.
        let (p, whole) = whole_revisions(fetched(rows.clone()), 0, 3).unwrap();
        assert_eq!(p.changes.len(), 3);
        assert_eq!((p.more, p.through, whole), (true, 2, None));
        // Everything fits: the page is complete through the latest revision.
        let (p, _) = whole_revisions(fetched(rows.clone()), 0, 10).unwrap();
        assert_eq!((p.more, p.through), (false, 100));
        // One revision larger than the page: fetched whole by the caller.
        let (p, whole) = whole_revisions(fetched(vec![ch(2, 0), ch(2, 1)]), 1, 1).unwrap();
        assert!(p.changes.is_empty());
        assert_eq!(whole, Some(2));
    }

    #[test]
    fn compacted_reads_are_refused() {
        let f = Fetched {
            rows: vec![],
            latest: 10,
            horizon: 5,
        };
        let e = whole_revisions(f, 4, 10).unwrap_err();
        assert!(matches!(
            e,
            Error::Core(lockstep_core::Error::Compacted { after: 4, horizon: 5 })
        ));
    }

    #[test]
    fn deletable_prefix() {
        let rows = [(1, 10), (1, 10), (2, 20), (3, 30), (4, 5)];
        assert_eq!(deletable_through(&rows, 25, 0), Some(2));
        assert_eq!(deletable_through(&rows, 0, 3), Some(3));
        assert_eq!(deletable_through(&rows, 5, 0), None);
        assert_eq!(deletable_through(&rows, 100, 0), Some(4));
    }
}
