//! The sweeper's storage work, once for both backends: feed retention and
//! change-log compaction follow the plans of `lockstep_core::retention` and
//! `lockstep_core::compaction`; a backend implements only the queries.

use crate::Error;
use lockstep_core::compaction::{self, Cutoffs};
use lockstep_core::feed::Window;
use lockstep_core::retention::{self, Configs, Found};
use lockstep_core::{Command, Millis};
use std::time::{Duration, Instant};

/// One feed a retention query scans, and how many ids it may answer.
pub(crate) struct FeedScan<'a> {
    /// Namespace.
    pub ns: &'a str,
    /// Feed name.
    pub feed: &'a str,
    /// Most ids answered.
    pub limit: i64,
}

/// The queries feed retention runs.
pub(crate) trait RetentionReads {
    /// The backend's failure.
    type Fail: From<Error>;

    /// Every stored feed configuration.
    async fn configs(&mut self) -> Result<Configs, Self::Fail>;

    /// Every `(namespace, feed)` that has entries.
    async fn feeds(&mut self) -> Result<Vec<(String, String)>, Self::Fail>;

    /// The oldest position the entry cap keeps, when it cuts anything.
    async fn cap_boundary(
        &mut self,
        ns: &str,
        feed: &str,
        w: &Window,
    ) -> Result<Option<(i64, String)>, Self::Fail>;

    /// Entries at or before `age_cut` or before `boundary`.
    async fn purge_ids(
        &mut self,
        s: &FeedScan<'_>,
        age_cut: i64,
        boundary: &(i64, String),
    ) -> Ids<Self::Fail>;

    /// Unscrubbed entries at or before `due`.
    async fn scrub_ids(&mut self, s: &FeedScan<'_>, due: i64) -> Ids<Self::Fail>;
}

/// Entry ids a retention query found, or the backend's failure.
pub(crate) type Ids<F> = Result<Vec<String>, F>;

/// Retention work for the sweeper: for every feed under a retention policy,
/// the entries that fell out of its window and those due for scrubbing.
pub(crate) async fn retention<R: RetentionReads>(
    r: &mut R,
    batch: usize,
    now: Millis,
) -> Result<Vec<(String, Command)>, R::Fail> {
    let configs = r.configs().await?;
    if !retention::any_retention(&configs) {
        return Ok(vec![]);
    }
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for (ns, feed) in r.feeds().await? {
        let Some(cfg) = retention::config_for(&configs, &ns, &feed) else {
            continue;
        };
        let plan = retention::plan(cfg, now);
        let boundary = r
            .cap_boundary(&ns, &feed, &plan.window)
            .await?
            .filter(|(at, _)| *at > i64::MIN);
        let cut = boundary.clone().unwrap_or((i64::MIN, String::new()));
        let scan = FeedScan {
            ns: &ns,
            feed: &feed,
            limit,
        };
        let purge = r.purge_ids(&scan, plan.window.age_cut.0, &cut).await?;
        let scrub = match plan.scrub_due {
            Some(due) => r.scrub_ids(&scan, due.0).await?,
            None => vec![],
        };
        let found = Found {
            boundary: boundary.map(|(at, id)| (Millis(at), id)),
            purge,
            scrub,
        };
        out.extend(retention::commands(&ns, &feed, found));
    }
    Ok(out)
}

/// The longest one compaction call keeps deleting (it resumes at the next call).
const COMPACT_BUDGET: Duration = Duration::from_secs(2);

/// What one compaction batch did.
pub(crate) struct Batch {
    /// The oldest rows `(revision, at)` it examined, in order.
    pub oldest: Vec<(i64, i64)>,
    /// The revision it deleted through, if any.
    pub end: Option<i64>,
    /// How many changes it deleted.
    pub deleted: u64,
}

/// The queries and deletes change-log compaction runs.
pub(crate) trait Compaction {
    /// The backend's failure.
    type Fail: From<Error>;

    /// The storage clock's time, and the revision of the change `offset`
    /// places from the newest, if the log is that long.
    async fn start(&mut self, offset: i64) -> Result<(Millis, Option<i64>), Self::Fail>;

    /// In one transaction: examines the oldest `limit` rows, deletes every
    /// revision `cutoffs` allows and raises the horizon to the last one.
    /// `None` when another instance is compacting.
    async fn batch(&mut self, cutoffs: &Cutoffs, limit: i64) -> Result<Option<Batch>, Self::Fail>;
}

/// Deletes the oldest whole revisions older than `keep_ms` or beyond the newest
/// `keep_count` changes, in bounded batches; returns how many changes went.
pub(crate) async fn compact<C: Compaction>(c: &mut C, keep_ms: u64, keep_count: u64) -> Result<u64, C::Fail> {
    let started = Instant::now();
    let (now, count_cutoff) = c.start(i64::try_from(keep_count).unwrap_or(i64::MAX)).await?;
    let cutoffs = Cutoffs::new(now, keep_ms, count_cutoff);
    let limit = i64::try_from(compaction::BATCH).unwrap_or(i64::MAX);
    let mut deleted = 0u64;
    while let Some(batch) = c.batch(&cutoffs, limit).await? {
        deleted += batch.deleted;
        let more = batch
            .end
            .is_some_and(|end| compaction::more_after(&batch.oldest, end));
        if !more || started.elapsed() > COMPACT_BUDGET {
            break;
        }
    }
    Ok(deleted)
}
