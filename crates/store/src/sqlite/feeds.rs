//! Feed rows and feed queries on SQLite: entries ordered by `(at, id)`, read
//! marks, configuration, the visibility window and retention candidates.

use crate::codec::{config_from, feed_entry_from, ENTRY_COLUMNS};
use crate::query::{EntryPage, NamePage};
use crate::sweep::{FeedScan, Ids, RetentionReads};
use crate::{rev_i64, sql, Error, FeedPage, FeedSummary};
use lockstep_core::feed::{self, Entry, FeedConfig, ReadSelector, Window};
use lockstep_core::retention::Configs;
use lockstep_core::{Millis, Row};
use rusqlite::{params, Connection, OptionalExtension};

/// An entry's stored columns, in `ENTRY_COLUMNS` order.
type EntryParts = (String, i64, String, i64, bool, bool);

fn entry_parts(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntryParts> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn entry_from(feed: &str, (id, at, data, revision, read, scrubbed): EntryParts) -> Result<Entry, Error> {
    feed_entry_from(feed, id, at, &data, revision, read, scrubbed)
}

/// Loads one entry.
pub fn load_entry(c: &Connection, ns: &str, feed: &str, id: &str) -> Result<Option<Row>, Error> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM feed_entries WHERE ns = ?1 AND feed = ?2 AND id = ?3");
    let got = c
        .prepare_cached(&sql)?
        .query_row(params![ns, feed, id], entry_parts)
        .optional()?;
    got.map(|p| entry_from(feed, p))
        .transpose()
        .map(|e| e.map(Row::FeedEntry))
}

/// Loads one feed's own configuration (`""` = the namespace default).
pub fn load_config(c: &Connection, ns: &str, feed: &str) -> Result<Option<FeedConfig>, Error> {
    let raw: Option<String> = c
        .prepare_cached("SELECT config FROM feed_configs WHERE ns = ?1 AND feed = ?2")?
        .query_row(params![ns, feed], |r| r.get(0))
        .optional()?;
    raw.as_deref().map(config_from).transpose()
}

/// Writes one entry.
pub fn put_entry(c: &Connection, ns: &str, e: &Entry) -> Result<(), Error> {
    let data = serde_json::to_string(&e.data).map_err(|err| Error::Internal(err.to_string()))?;
    c.prepare_cached(&sql::sqlite(sql::UPSERT_FEED_ENTRIES))?
        .execute(params![
            ns,
            e.feed,
            e.id,
            e.at.0,
            data,
            rev_i64(e.revision)?,
            e.read,
            e.scrubbed
        ])?;
    Ok(())
}

/// Writes a feed's configuration.
pub fn put_config(c: &Connection, ns: &str, feed: &str, config: &FeedConfig) -> Result<(), Error> {
    let raw = serde_json::to_string(config).map_err(|e| Error::Internal(e.to_string()))?;
    c.prepare_cached(&sql::sqlite(sql::UPSERT_FEED_CONFIGS))?
        .execute(params![ns, feed, raw])?;
    Ok(())
}

/// Clears the on-disk scrub marks of a feed (`""`: the whole namespace).
pub fn reset_scrubbed(c: &Connection, ns: &str, feed: &str) -> Result<(), Error> {
    c.prepare_cached(
        "UPDATE feed_entries SET scrubbed = 0 WHERE ns = ?1 AND (?2 = '' OR feed = ?2) AND scrubbed = 1",
    )?
    .execute(params![ns, feed])?;
    Ok(())
}

/// Sets read marks.
pub fn mark_read(c: &Connection, ns: &str, feed: &str, selector: &ReadSelector) -> Result<(), Error> {
    match selector {
        ReadSelector::Ids(ids) => {
            let mut stmt = c.prepare_cached(
                "UPDATE feed_entries SET read = 1 WHERE ns = ?1 AND feed = ?2 AND id = ?3 AND read = 0",
            )?;
            for id in ids {
                stmt.execute(params![ns, feed, id])?;
            }
        }
        ReadSelector::UpTo(at, id) => {
            c.prepare_cached(
                "UPDATE feed_entries SET read = 1
                 WHERE ns = ?1 AND feed = ?2 AND (at, id) <= (?3, ?4) AND read = 0",
            )?
            .execute(params![ns, feed, at.0, id])?;
        }
        ReadSelector::All => {
            c.prepare_cached("UPDATE feed_entries SET read = 1 WHERE ns = ?1 AND feed = ?2 AND read = 0")?
                .execute(params![ns, feed])?;
        }
    }
    Ok(())
}

/// The configuration in force: the feed's own, else the namespace default.
pub fn effective_config(c: &Connection, ns: &str, feed: &str) -> Result<FeedConfig, Error> {
    Ok(match load_config(c, ns, feed)? {
        Some(cfg) => cfg,
        None => load_config(c, ns, "")?.unwrap_or_default(),
    })
}

/// The oldest visible position under the cap, if the cap cuts anything.
fn cap_boundary(c: &Connection, ns: &str, feed: &str, w: &Window) -> Result<Option<(i64, String)>, Error> {
    let Some(cap) = w.max_entries else { return Ok(None) };
    let offset = i64::try_from(cap.saturating_sub(1)).unwrap_or(i64::MAX);
    Ok(c.prepare_cached(
        "SELECT at, id FROM feed_entries WHERE ns = ?1 AND feed = ?2 AND at > ?3
         ORDER BY at DESC, id DESC LIMIT 1 OFFSET ?4",
    )?
    .query_row(params![ns, feed, w.age_cut.0, offset], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()?)
}

/// The window's lower edge: its age cut and the cap's boundary.
type Edge = (i64, (i64, String));

fn edge(c: &Connection, ns: &str, feed: &str, w: &Window) -> Result<Edge, Error> {
    let boundary = cap_boundary(c, ns, feed, w)?.unwrap_or((i64::MIN, String::new()));
    Ok((w.age_cut.0, boundary))
}

/// Visible entries, or only the unread ones, counted in the order index
/// alone (it holds `read`): no entry is read from the table.
fn count(
    c: &Connection,
    ns: &str,
    feed: &str,
    (cut, (b_at, b_id)): &Edge,
    unread_only: bool,
) -> Result<u64, Error> {
    let sql = if unread_only {
        "SELECT count(*) FROM feed_entries
         WHERE ns = ?1 AND feed = ?2 AND read = 0 AND at > ?3 AND (at, id) >= (?4, ?5)"
    } else {
        "SELECT count(*) FROM feed_entries
         WHERE ns = ?1 AND feed = ?2 AND at > ?3 AND (at, id) >= (?4, ?5)"
    };
    let n: i64 = c
        .prepare_cached(sql)?
        .query_row(params![ns, feed, cut, b_at, b_id], |r| r.get(0))?;
    crate::stored_u64("count", n)
}

/// One page of visible entries after `after` in the given order, with the
/// feed's unread count, all from one read transaction.
pub fn list_entries(c: &Connection, q: &EntryPage, now: Millis) -> Result<FeedPage, Error> {
    let (ns, feed) = (q.ns.as_str(), q.feed.as_str());
    let tx = c.unchecked_transaction()?;
    let config = effective_config(&tx, ns, feed)?;
    let w = feed::window(&config, now);
    let edge = edge(&tx, ns, feed, &w)?;
    let (cut, (b_at, b_id)) = &edge;
    let (cmp, order, (c_at, c_id)) = q.cursor();
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM feed_entries
         WHERE ns = ?1 AND feed = ?2 AND at > ?3 AND (at, id) >= (?4, ?5) AND (at, id) {cmp} (?6, ?7)
         ORDER BY at {order}, id {order} LIMIT ?8"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![ns, feed, cut, b_at, b_id, c_at, c_id, q.sql_limit()],
        entry_parts,
    )?;
    let mut entries = Vec::new();
    for row in rows {
        entries.push(feed::present(entry_from(feed, row?)?, &config, now));
    }
    drop(stmt);
    let unread_count = count(&tx, ns, feed, &edge, true)?;
    tx.commit()?;
    Ok(FeedPage {
        entries,
        unread_count,
    })
}

/// Feeds of a namespace by name with their visible and unread counts.
pub fn list_feeds(c: &Connection, q: &NamePage, now: Millis) -> Result<Vec<FeedSummary>, Error> {
    let ns = q.ns.as_str();
    let tx = c.unchecked_transaction()?;
    let r = q.range();
    let sql = format!(
        "SELECT DISTINCT feed FROM feed_entries WHERE ns = ?1 AND feed {} ?2 AND (?3 IS NULL OR feed < ?3)
         ORDER BY feed LIMIT ?4",
        r.op
    );
    let names: Vec<String> = tx
        .prepare_cached(&sql)?
        .query_map(params![ns, r.lower, r.upper, q.sql_limit()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for feed in names {
        let w = feed::window(&effective_config(&tx, ns, &feed)?, now);
        let edge = edge(&tx, ns, &feed, &w)?;
        out.push(FeedSummary {
            entries: count(&tx, ns, &feed, &edge, false)?,
            unread_count: count(&tx, ns, &feed, &edge, true)?,
            feed,
        });
    }
    tx.commit()?;
    Ok(out)
}

/// The retention queries on one connection (synchronous: the futures never wait).
pub struct Retention<'a>(pub &'a Connection);

impl RetentionReads for Retention<'_> {
    type Fail = Error;

    async fn configs(&mut self) -> Result<Configs, Error> {
        let mut configs = Configs::new();
        let mut stmt = self
            .0
            .prepare_cached("SELECT ns, feed, config FROM feed_configs")?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?)))? {
            let (ns, feed, raw) = row?;
            configs.insert((ns, feed), config_from(&raw)?);
        }
        Ok(configs)
    }

    async fn feeds(&mut self) -> Result<Vec<(String, String)>, Error> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT DISTINCT ns, feed FROM feed_entries")?;
        let pairs = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(pairs.collect::<Result<_, _>>()?)
    }

    async fn cap_boundary(
        &mut self,
        ns: &str,
        feed: &str,
        w: &Window,
    ) -> Result<Option<(i64, String)>, Error> {
        cap_boundary(self.0, ns, feed, w)
    }

    async fn purge_ids(
        &mut self,
        s: &FeedScan<'_>,
        age_cut: i64,
        (b_at, b_id): &(i64, String),
    ) -> Ids<Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id FROM feed_entries WHERE ns = ?1 AND feed = ?2 AND (at <= ?3 OR (at, id) < (?4, ?5))
             LIMIT ?6",
        )?;
        let ids = stmt.query_map(params![s.ns, s.feed, age_cut, b_at, b_id, s.limit], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    async fn scrub_ids(&mut self, s: &FeedScan<'_>, due: i64) -> Ids<Error> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id FROM feed_entries WHERE ns = ?1 AND feed = ?2 AND scrubbed = 0 AND at <= ?3 LIMIT ?4",
        )?;
        let ids = stmt.query_map(params![s.ns, s.feed, due, s.limit], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }
}
