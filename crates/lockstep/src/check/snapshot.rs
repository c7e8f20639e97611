//! The reads at the end of a run, once every client stopped: the counters,
//! the feeds paged whole, and the change log paged from the run's start.

use super::caller::Caller;
use super::history::Kind;
use super::workloads::{counter_key, gate_feed, CAPPED_FEED, COUNTERS, FEED, GATES, KEYED_COUNTER};
use anyhow::{bail, Context};
use lockstep_api::changes::Change;
use lockstep_api::feeds::Entry;
use std::collections::BTreeMap;

/// Largest page asked for.
const PAGE: usize = 1000;

/// A feed as read at the end.
#[derive(Debug, Default)]
pub struct FeedState {
    /// Every visible entry, oldest first.
    pub entries: Vec<Entry>,
    /// `unread_count` of the first page.
    pub unread_count: u64,
}

/// The final state the checkers compare the history with.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The run's tag: the ids of its feed entries and tickets start with it
    /// (entries of earlier runs in the same namespace are not its business).
    pub run: String,
    /// How much each counter moved during the run (absent: 0).
    pub counters: BTreeMap<String, i64>,
    /// The feed appended to.
    pub feed: FeedState,
    /// The feed with a retention cap.
    pub capped: FeedState,
    /// Each gate's finalization feed.
    pub gate_feeds: BTreeMap<usize, FeedState>,
    /// How much the keyed requests' counter moved during the run.
    pub keyed_counter: i64,
    /// Every change after the run's start revision.
    pub changes: Vec<Change>,
}

/// The values of the counters and of the keyed counter (absent: 0).
pub async fn counters(c: &mut Caller) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for key in (0..COUNTERS).map(counter_key).chain([KEYED_COUNTER.to_owned()]) {
        let v = record_value(c, &key).await?;
        out.insert(key, v);
    }
    Ok(out)
}

/// Reads the final state: `start` is the revision the run started after,
/// `before` the counters' values then, `run` the run's tag.
pub async fn read(
    c: &mut Caller,
    start: u64,
    before: &BTreeMap<String, i64>,
    run: &str,
) -> anyhow::Result<Snapshot> {
    let mut s = Snapshot {
        run: format!("{run}-"),
        ..Snapshot::default()
    };
    for (key, v) in counters(c).await? {
        let moved = v.saturating_sub(before.get(&key).copied().unwrap_or(0));
        if key == KEYED_COUNTER {
            s.keyed_counter = moved;
        } else {
            s.counters.insert(key, moved);
        }
    }
    s.feed = feed(c, FEED).await?;
    s.capped = feed(c, CAPPED_FEED).await?;
    for g in 0..GATES {
        s.gate_feeds.insert(g, feed(c, &gate_feed(g)).await?);
    }
    s.changes = changes(c, start).await?;
    Ok(s)
}

async fn record_value(c: &mut Caller, key: &str) -> anyhow::Result<i64> {
    let op = c.call(Kind::Final, "GET", &format!("/records/{key}"), None).await;
    match op.status {
        200 => Ok(op.answer.get("value").and_then(|v| v.as_i64()).unwrap_or(0)),
        404 => Ok(0),
        _ => bail!("reading record {key}: {}", op.describe()),
    }
}

async fn feed(c: &mut Caller, feed: &str) -> anyhow::Result<FeedState> {
    let mut state = FeedState::default();
    let mut cursor: Option<String> = None;
    let mut first = true;
    loop {
        let mut path = format!("/feeds/{feed}/entries?order=asc&limit={PAGE}");
        if let Some(cur) = &cursor {
            path.push_str(&format!("&cursor={}", encode(cur)));
        }
        let op = c.call(Kind::Final, "GET", &path, None).await;
        if op.status != 200 {
            bail!("paging feed {feed}: {}", op.describe());
        }
        let page: lockstep_api::Page<lockstep_api::feeds::Entries> =
            serde_json::from_value(op.answer.clone()).with_context(|| format!("paging feed {feed}"))?;
        if first {
            state.unread_count = page.items.unread_count;
            first = false;
        }
        state.entries.extend(page.items.entries);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(state),
        }
    }
}

async fn changes(c: &mut Caller, start: u64) -> anyhow::Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut path = format!("/changes?after={start}&limit={PAGE}");
    loop {
        let op = c.call(Kind::Final, "GET", &path, None).await;
        if op.status != 200 {
            bail!("paging the change log: {}", op.describe());
        }
        let page: lockstep_api::Page<lockstep_api::changes::Changes> =
            serde_json::from_value(op.answer.clone()).context("paging the change log")?;
        out.extend(page.items.changes);
        match page.next_cursor {
            Some(next) => path = format!("/changes?cursor={}&limit={PAGE}", encode(&next)),
            None => return Ok(out),
        }
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
