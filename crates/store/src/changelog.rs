//! Paging the change log, once for both backends: a page never ends inside a
//! revision, and a read after the compaction horizon is refused.

use crate::{ChangePage, Error};
use lockstep_core::Change;

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lockstep_core::{ChangeKind, ChangeOp, Millis};

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
}
