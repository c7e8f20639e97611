//! Change-log compaction planning (SPEC §10): the oldest whole revisions go
//! once they are older than the age limit or beyond the newest `keep_count`
//! changes, in bounded batches. The storage runs only the queries and deletes
//! the plan asks for.

use crate::Millis;

/// Rows examined and deleted per compaction transaction.
pub const BATCH: usize = 5_000;

/// What may go: a revision whose changes are older than `at`, or at most
/// `revision` (the newest revision beyond the kept count; 0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Changes written before this time may go.
    pub at: i64,
    /// Revisions up to this one may go.
    pub revision: i64,
}

impl Cutoffs {
    /// The cutoffs at `now` keeping `keep_ms` of history; `count_cutoff` is
    /// the revision of the change `keep_count` places from the newest, if the
    /// log is that long.
    pub fn new(now: Millis, keep_ms: u64, count_cutoff: Option<i64>) -> Cutoffs {
        Cutoffs {
            at: now.0.saturating_sub(i64::try_from(keep_ms).unwrap_or(i64::MAX)),
            // No change that far back: the count keeps everything.
            revision: count_cutoff.unwrap_or(0),
        }
    }

    /// The highest revision of the oldest rows `(revision, at)` (in order)
    /// such that it and every revision before it may go. All changes of one
    /// revision share their `at`.
    pub fn deletable_through(&self, oldest: &[(i64, i64)]) -> Option<i64> {
        let mut end = None;
        for &(rev, at) in oldest {
            if rev <= self.revision || at < self.at {
                end = Some(rev);
            } else {
                break;
            }
        }
        end
    }
}

/// Whether another batch may find more after deleting through `end` from
/// the `oldest` rows examined: only when the batch was full and all of it went.
pub fn more_after(oldest: &[(i64, i64)], end: i64) -> bool {
    oldest.len() >= BATCH && oldest.last().is_some_and(|&(rev, _)| rev == end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletable_prefix() {
        let rows = [(1, 10), (1, 10), (2, 20), (3, 30), (4, 5)];
        let by_age = |at| Cutoffs { at, revision: 0 };
        assert_eq!(by_age(25).deletable_through(&rows), Some(2));
        assert_eq!(Cutoffs { at: 0, revision: 3 }.deletable_through(&rows), Some(3));
        assert_eq!(by_age(5).deletable_through(&rows), None);
        assert_eq!(by_age(100).deletable_through(&rows), Some(4));
    }

    #[test]
    fn cutoffs_from_the_limits() {
        let c = Cutoffs::new(Millis(10_000), 3_000, None);
        assert_eq!(
            c,
            Cutoffs {
                at: 7_000,
                revision: 0
            }
        );
        assert_eq!(Cutoffs::new(Millis(0), u64::MAX, Some(9)).revision, 9);
    }

    #[test]
    fn another_batch_only_after_a_full_one_went_whole() {
        let full: Vec<(i64, i64)> = (1..=BATCH as i64).map(|r| (r, 0)).collect();
        assert!(more_after(&full, BATCH as i64));
        assert!(!more_after(&full, 3));
        assert!(!more_after(&full[..10], 10));
    }
}
