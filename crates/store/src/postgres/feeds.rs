//! Feed rows and feed queries on PostgreSQL: entries ordered by `(at, id)`,
//! read marks, configuration, the visibility window and retention candidates.

use super::{now_sql, pg_error, Failure};
use crate::codec::{config_from, feed_entry_from, ENTRY_COLUMNS};
use crate::query::{EntryPage, NamePage};
use crate::sweep::{FeedScan, Ids, RetentionReads};
use crate::{rev_i64, sql, Error, FeedPage, FeedSummary};
use deadpool_postgres::GenericClient;
use lockstep_core::feed::{self, Entry, FeedConfig, ReadSelector, Window};
use lockstep_core::retention::Configs;
use lockstep_core::Millis;

fn entry_from_row(feed: &str, r: &tokio_postgres::Row) -> Result<Entry, Error> {
    let data: String = r.try_get(2).map_err(pg_error)?;
    feed_entry_from(
        feed,
        r.try_get(0).map_err(pg_error)?,
        r.try_get(1).map_err(pg_error)?,
        &data,
        r.try_get(3).map_err(pg_error)?,
        r.try_get(4).map_err(pg_error)?,
        r.try_get(5).map_err(pg_error)?,
    )
}

/// Loads entries `ids` of `feed`.
pub async fn load_entries(
    c: &impl GenericClient,
    ns: &str,
    feed: &str,
    ids: &[&str],
) -> Result<Vec<Entry>, Failure> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT x.* FROM unnest($3::text[]) AS w(id) CROSS JOIN LATERAL (
               SELECT {ENTRY_COLUMNS} FROM feed_entries WHERE ns = $1 AND feed = $2 AND id = w.id OFFSET 0) AS x"
        ))
        .await?;
    let rows = c.query(&stmt, &[&ns, &feed, &ids]).await?;
    Ok(rows
        .iter()
        .map(|r| entry_from_row(feed, r))
        .collect::<Result<_, _>>()?)
}

/// Loads feed configurations by feed name (`""` = namespace default).
pub async fn load_configs(
    c: &impl GenericClient,
    ns: &str,
    feeds: &[&str],
) -> Result<Vec<(String, FeedConfig)>, Failure> {
    let stmt = c
        .prepare_cached(
            "SELECT x.* FROM unnest($2::text[]) AS w(feed) CROSS JOIN LATERAL (
               SELECT feed, config FROM feed_configs WHERE ns = $1 AND feed = w.feed OFFSET 0) AS x",
        )
        .await?;
    let mut out = Vec::new();
    for r in c.query(&stmt, &[&ns, &feeds]).await? {
        let raw: String = r.try_get(1)?;
        out.push((r.try_get(0)?, config_from(&raw)?));
    }
    Ok(out)
}

/// Writes one entry.
pub async fn put_entry(c: &impl GenericClient, ns: &str, e: &Entry) -> Result<(), Failure> {
    let data = serde_json::to_string(&e.data).map_err(|err| Error::Internal(err.to_string()))?;
    let stmt = c.prepare_cached(sql::UPSERT_FEED_ENTRIES).await?;
    let rev = rev_i64(e.revision)?;
    c.execute(
        &stmt,
        &[&ns, &e.feed, &e.id, &e.at.0, &data, &rev, &e.read, &e.scrubbed],
    )
    .await?;
    Ok(())
}

/// Writes a feed's configuration.
pub async fn put_config(
    c: &impl GenericClient,
    ns: &str,
    feed: &str,
    config: &FeedConfig,
) -> Result<(), Failure> {
    let raw = serde_json::to_string(config).map_err(|e| Error::Internal(e.to_string()))?;
    let stmt = c.prepare_cached(sql::UPSERT_FEED_CONFIGS).await?;
    c.execute(&stmt, &[&ns, &feed, &raw]).await?;
    Ok(())
}

/// Clears the on-disk scrub marks of a feed (`""`: the whole namespace).
pub async fn reset_scrubbed(c: &impl GenericClient, ns: &str, feed: &str) -> Result<(), Failure> {
    let stmt = c
        .prepare_cached(
            "UPDATE feed_entries SET scrubbed = false WHERE ns = $1 AND ($2 = '' OR feed = $2) AND scrubbed",
        )
        .await?;
    c.execute(&stmt, &[&ns, &feed]).await?;
    Ok(())
}

/// Sets read marks.
pub async fn mark_read(
    c: &impl GenericClient,
    ns: &str,
    feed: &str,
    selector: &ReadSelector,
) -> Result<(), Failure> {
    match selector {
        ReadSelector::Ids(ids) => {
            let stmt = c
                .prepare_cached(
                    "UPDATE feed_entries SET read = true
                     WHERE ns = $1 AND feed = $2 AND id = ANY($3::text[]) AND NOT read",
                )
                .await?;
            c.execute(&stmt, &[&ns, &feed, ids]).await?;
        }
        ReadSelector::UpTo(at, id) => {
            let stmt = c
                .prepare_cached(
                    "UPDATE feed_entries SET read = true
                     WHERE ns = $1 AND feed = $2 AND (at, id) <= ($3, $4::text) AND NOT read",
                )
                .await?;
            c.execute(&stmt, &[&ns, &feed, &at.0, id]).await?;
        }
        ReadSelector::All => {
            let stmt = c
                .prepare_cached(
                    "UPDATE feed_entries SET read = true WHERE ns = $1 AND feed = $2 AND NOT read",
                )
                .await?;
            c.execute(&stmt, &[&ns, &feed]).await?;
        }
    }
    Ok(())
}

async fn effective_config(c: &impl GenericClient, ns: &str, feed: &str) -> Result<FeedConfig, Failure> {
    let configs = load_configs(c, ns, &[feed, ""]).await?;
    let get = |f: &str| configs.iter().find(|(n, _)| n == f).map(|(_, c)| c.clone());
    Ok(get(feed).or_else(|| get("")).unwrap_or_default())
}

async fn cap_boundary(
    c: &impl GenericClient,
    ns: &str,
    feed: &str,
    w: &Window,
) -> Result<(i64, String), Failure> {
    let none = (i64::MIN, String::new());
    let Some(cap) = w.max_entries else { return Ok(none) };
    let offset = i64::try_from(cap.saturating_sub(1)).unwrap_or(i64::MAX);
    let stmt = c
        .prepare_cached(
            "SELECT at, id FROM feed_entries WHERE ns = $1 AND feed = $2 AND at > $3
             ORDER BY at DESC, id DESC LIMIT 1 OFFSET $4",
        )
        .await?;
    Ok(
        match c.query_opt(&stmt, &[&ns, &feed, &w.age_cut.0, &offset]).await? {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => none,
        },
    )
}

/// Visible entries (at or after the window's age cut and cap boundary), or
/// only the unread ones, counted in the order index (it holds `read`, so
/// PostgreSQL can answer from the index alone).
async fn count(
    c: &impl GenericClient,
    ns: &str,
    feed: &str,
    cut: i64,
    (b_at, b_id): &(i64, String),
    unread_only: bool,
) -> Result<u64, Failure> {
    let sql = if unread_only {
        "SELECT count(*) FROM feed_entries
         WHERE ns = $1 AND feed = $2 AND NOT read AND at > $3 AND (at, id) >= ($4, $5::text)"
    } else {
        "SELECT count(*) FROM feed_entries
         WHERE ns = $1 AND feed = $2 AND at > $3 AND (at, id) >= ($4, $5::text)"
    };
    let stmt = c.prepare_cached(sql).await?;
    let n: i64 = c
        .query_one(&stmt, &[&ns, &feed, &cut, b_at, b_id])
        .await?
        .try_get(0)?;
    Ok(crate::stored_u64("count", n)?)
}

/// The storage clock's time (`fixed`: a manual clock's).
pub async fn storage_now(c: &impl GenericClient, fixed: Option<i64>) -> Result<Millis, Failure> {
    let stmt = c.prepare_cached(&format!("SELECT {}", now_sql(1))).await?;
    Ok(Millis(c.query_one(&stmt, &[&fixed]).await?.try_get(0)?))
}

/// One page of visible entries with the feed's unread count, from one snapshot.
pub async fn list_entries(
    c: &mut deadpool_postgres::Object,
    q: &EntryPage,
    fixed_now: Option<i64>,
) -> Result<FeedPage, Failure> {
    let (ns, feed) = (q.ns.as_str(), q.feed.as_str());
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let now = storage_now(&tx, fixed_now).await?;
    let config = effective_config(&tx, ns, feed).await?;
    let w = feed::window(&config, now);
    let (b_at, b_id) = cap_boundary(&tx, ns, feed, &w).await?;
    let (cmp, order, (c_at, c_id)) = q.cursor();
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM feed_entries
             WHERE ns = $1 AND feed = $2 AND at > $3 AND (at, id) >= ($4, $5::text) AND (at, id) {cmp} ($6, $7::text)
             ORDER BY at {order}, id {order} LIMIT $8"
        ))
        .await?;
    let rows = tx
        .query(
            &stmt,
            &[
                &ns,
                &feed,
                &w.age_cut.0,
                &b_at,
                &b_id,
                &c_at,
                &c_id,
                &q.sql_limit(),
            ],
        )
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in &rows {
        entries.push(feed::present(entry_from_row(feed, r)?, &config, now));
    }
    let unread_count = count(&tx, ns, feed, w.age_cut.0, &(b_at, b_id), true).await?;
    tx.commit().await?;
    Ok(FeedPage {
        entries,
        unread_count,
    })
}

/// Feeds of a namespace by name with their visible and unread counts.
pub async fn list_feeds(
    c: &mut deadpool_postgres::Object,
    q: &NamePage,
    fixed_now: Option<i64>,
) -> Result<Vec<FeedSummary>, Failure> {
    let ns = q.ns.as_str();
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let now = storage_now(&tx, fixed_now).await?;
    let r = q.range();
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT DISTINCT feed FROM feed_entries
             WHERE ns = $1 AND feed {} $2 AND ($3::text IS NULL OR feed < $3::text) ORDER BY feed LIMIT $4",
            r.op
        ))
        .await?;
    let names: Vec<String> = tx
        .query(&stmt, &[&ns, &r.lower, &r.upper, &q.sql_limit()])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for feed in names {
        let w = feed::window(&effective_config(&tx, ns, &feed).await?, now);
        let boundary = cap_boundary(&tx, ns, &feed, &w).await?;
        out.push(FeedSummary {
            entries: count(&tx, ns, &feed, w.age_cut.0, &boundary, false).await?,
            unread_count: count(&tx, ns, &feed, w.age_cut.0, &boundary, true).await?,
            feed,
        });
    }
    tx.commit().await?;
    Ok(out)
}

/// The retention queries on one client.
pub(crate) struct Retention<'a, C>(pub &'a C);

impl<C: GenericClient> RetentionReads for Retention<'_, C> {
    type Fail = Failure;

    async fn configs(&mut self) -> Result<Configs, Failure> {
        let c = self.0;
        let stmt = c
            .prepare_cached("SELECT ns, feed, config FROM feed_configs")
            .await?;
        let mut configs = Configs::new();
        for r in c.query(&stmt, &[]).await? {
            let raw: String = r.try_get(2)?;
            configs.insert((r.try_get(0)?, r.try_get(1)?), config_from(&raw)?);
        }
        Ok(configs)
    }

    async fn feeds(&mut self) -> Result<Vec<(String, String)>, Failure> {
        let c = self.0;
        let stmt = c
            .prepare_cached("SELECT DISTINCT ns, feed FROM feed_entries")
            .await?;
        let rows = c.query(&stmt, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?)
    }

    async fn cap_boundary(
        &mut self,
        ns: &str,
        feed: &str,
        w: &Window,
    ) -> Result<Option<(i64, String)>, Failure> {
        let b = cap_boundary(self.0, ns, feed, w).await?;
        Ok((b.0 > i64::MIN).then_some(b))
    }

    async fn purge_ids(
        &mut self,
        s: &FeedScan<'_>,
        age_cut: i64,
        (b_at, b_id): &(i64, String),
    ) -> Ids<Failure> {
        let c = self.0;
        let stmt = c
            .prepare_cached(
                "SELECT id FROM feed_entries WHERE ns = $1 AND feed = $2 AND (at <= $3 OR (at, id) < ($4, $5::text))
                 LIMIT $6",
            )
            .await?;
        ids(c
            .query(&stmt, &[&s.ns, &s.feed, &age_cut, b_at, b_id, &s.limit])
            .await?)
    }

    async fn scrub_ids(&mut self, s: &FeedScan<'_>, due: i64) -> Ids<Failure> {
        let c = self.0;
        let stmt = c
            .prepare_cached(
                "SELECT id FROM feed_entries WHERE ns = $1 AND feed = $2 AND NOT scrubbed AND at <= $3 LIMIT $4",
            )
            .await?;
        ids(c.query(&stmt, &[&s.ns, &s.feed, &due, &s.limit]).await?)
    }
}

fn ids(rows: Vec<tokio_postgres::Row>) -> Result<Vec<String>, Failure> {
    Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
}
