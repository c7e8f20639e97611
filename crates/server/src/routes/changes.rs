//! `/v1/ns/{ns}/changes` and `/v1/ns/{ns}/watch`: the change log, paged and
//! streamed as Server-Sent Events (SPEC §10, §15 "Changes and watch"); and its
//! compaction, run by the background sweeper.
//!
//! A watch polls the store every [`POLL_INTERVAL`] for changes after the last
//! revision it sent, and at once (at most every [`MIN_GAP`]) after a write
//! through this instance; it emits one event per revision (`id:` = revision,
//! `event: change`, `data: {revision, changes}`). Revisions become visible in
//! commit order on both backends, so "after the last sent" never skips one.
//! A revision with no matching change is skipped; comments keep the
//! connection alive every [`KEEP_ALIVE`].

use crate::extract::{Caller, Ns, Query};
use crate::{wire, ApiError, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
pub use lockstep_api::changes::{ChangesQuery, WatchQuery};
use lockstep_core::{ChangeKind, Limits};
use lockstep_store::{ChangePage, Store};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often a watch looks for new changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The shortest time between two reads of one watch woken by local writes.
pub const MIN_GAP: Duration = Duration::from_millis(5);

/// How often an idle watch sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The sweeper compacts the change log once every this many sweeps.
pub const COMPACT_EVERY_SWEEPS: u64 = 10;

/// What the open watches of this instance share: a counter of writes through
/// this instance (wakes them early) and a flag closed at shutdown, so that
/// graceful shutdown does not wait for streams that never end.
#[derive(Debug)]
pub struct Watches {
    written: watch::Sender<u64>,
    closed: watch::Sender<bool>,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            written: watch::channel(0).0,
            closed: watch::channel(false).0,
        }
    }
}

impl Watches {
    /// Ends every open watch (their clients resume with `Last-Event-ID`).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Wakes every open watch: something may have been written.
    pub fn wake(&self) {
        self.written.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// After a write request through this instance has been answered (so
/// committed, if it wrote), wakes the open watches. Called by
/// [`crate::metrics::track`] for every request.
pub fn wake_watches(st: &AppState, method: &Method, resp: &Response) {
    let writes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && resp.status().is_success() {
        st.watches.wake();
    }
}

/// The validated filters of a read.
#[derive(Debug, Clone)]
struct Filter {
    prefix: Option<String>,
    kind: Option<String>,
}

impl Filter {
    fn new(prefix: Option<String>, kind: Option<String>, limits: &Limits) -> Result<Filter, ApiError> {
        if let Some(p) = &prefix {
            if p.len() > limits.key_bytes_max {
                return Err(ApiError::invalid(format!(
                    "prefix is longer than {} bytes",
                    limits.key_bytes_max
                )));
            }
        }
        if let Some(k) = &kind {
            if ChangeKind::parse(k).is_none() {
                return Err(ApiError::invalid(format!(
                    "kind must be record, lease, feed, gate or idempotency, not {k:?}"
                )));
            }
        }
        Ok(Filter {
            prefix: prefix.filter(|p| !p.is_empty()),
            kind,
        })
    }

    async fn read(&self, store: &Store, ns: &str, after: u64, limit: usize) -> Result<ChangePage, ApiError> {
        Ok(store
            .list_changes(ns, after, self.prefix.as_deref(), self.kind.as_deref(), limit)
            .await?)
    }
}

/// Parses a revision given as `after`, `cursor` or `Last-Event-ID`: decimal
/// digits of a number that can be a revision.
fn parse_revision(what: &str, s: &str) -> Result<u64, ApiError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(format!(
            "{what} must be a revision number, not {s:?}"
        )));
    }
    let n = s
        .parse()
        .map_err(|_| ApiError::invalid(format!("{what} {s:?} is out of range")))?;
    Ok(lockstep_core::names::validate_revision(what, n)?)
}

/// `GET /changes?after=&prefix=&kind=&limit=` → `{changes, next_cursor}`. Without
/// `after` the page starts at the oldest change kept; `next_cursor` (the last
/// revision of the page) is the `after` of the next page, null once caught up.
pub async fn list(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, ApiError> {
    let limit = st.limits.page_size(q.limit)?;
    let after = match (q.after.as_deref(), q.cursor.as_deref()) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("give after or cursor, not both")),
        (Some(a), None) => Some(parse_revision("after", a)?),
        (None, Some(c)) => Some(parse_revision("cursor", c)?),
        (None, None) => None,
    };
    let filter = Filter::new(q.prefix, q.kind, &st.limits)?;
    let page = match after {
        Some(after) => filter.read(&st.store, &ns, after, limit).await?,
        None => from_oldest(&st.store, &ns, &filter, limit).await?,
    };
    let items = lockstep_api::changes::Changes {
        changes: page.changes.iter().map(wire::changes::change).collect(),
    };
    let next_cursor = page.more.then(|| page.through.to_string());
    Ok(axum::Json(wire::Page { items, next_cursor }).into_response())
}

/// The first page from the oldest change kept (compaction may move it while we
/// read: then read again from the new horizon).
async fn from_oldest(store: &Store, ns: &str, filter: &Filter, limit: usize) -> Result<ChangePage, ApiError> {
    let mut attempts = 0;
    loop {
        let horizon = store.change_bounds().await?.horizon;
        match filter.read(store, ns, horizon, limit).await {
            Err(ApiError::Core(lockstep_core::Error::Compacted { .. })) if attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

/// `GET /watch?after=&prefix=&kind=` → `text/event-stream`, one `change` event
/// per revision. `Last-Event-ID` overrides `after`; without either the watch
/// starts from now. A start older than what is kept answers 410 `compacted`
/// before any event.
pub async fn watch(
    State(st): State<AppState>,
    Ns(ns): Ns,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    // Counted while the stream is open: the slot lives in the watcher.
    let slot = st.quotas.watch(&caller.name, st.limits.token_watches_max)?;
    let after = q
        .after
        .as_deref()
        .map(|a| parse_revision("after", a))
        .transpose()?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| ApiError::invalid("Last-Event-ID must be a revision number"))?;
            Some(parse_revision("Last-Event-ID", s.trim())?)
        }
    };
    let filter = Filter::new(q.prefix, q.kind, &st.limits)?;
    let after = match last_event_id.or(after) {
        Some(a) => a,
        None => st.store.change_bounds().await?.latest,
    };
    // The first read happens now, so a compacted start is a plain 410.
    let first = filter
        .read(&st.store, &ns, after, st.limits.watch_read_changes_max)
        .await?;
    let mut w = Watcher {
        store: st.store.clone(),
        read_max: st.limits.watch_read_changes_max,
        ns,
        filter,
        after,
        more: false,
        pending: VecDeque::new(),
        closed: st.watches.closed.subscribe(),
        written: st.watches.written.subscribe(),
        last_read: Instant::now(),
        done: false,
        _slot: slot,
    };
    w.pending
        .push_back(Event::default().comment(format!("watching after revision {after}")));
    w.absorb(first);
    let stream = futures_util::stream::unfold(w, |mut w| async move {
        let event = w.next_event().await?;
        Some((Ok::<Event, Infallible>(event), w))
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Ask proxies not to buffer the stream.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// One open watch.
struct Watcher {
    /// This watch in its token's count of open watches.
    _slot: crate::quota::Slot,
    store: Store,
    /// Most changes read at once.
    read_max: usize,
    ns: String,
    filter: Filter,
    /// Every matching change up to here was read.
    after: u64,
    /// More changes were committed than the last read returned.
    more: bool,
    /// Events read and not sent yet.
    pending: VecDeque<Event>,
    closed: watch::Receiver<bool>,
    /// Local writes since the last read.
    written: watch::Receiver<u64>,
    /// When the last read started.
    last_read: Instant,
    /// Nothing more to send once `pending` is empty.
    done: bool,
}

impl Watcher {
    /// Queues one event per revision of `page`.
    fn absorb(&mut self, page: ChangePage) {
        for of_revision in page.changes.chunk_by(|a, b| a.revision == b.revision) {
            let revision = of_revision[0].revision;
            let data = lockstep_api::changes::WatchEvent {
                revision,
                changes: of_revision.iter().map(wire::changes::change).collect(),
            };
            let event = Event::default().id(revision.to_string()).event("change");
            // An event that does not serialize (never: strings and numbers)
            // ends the stream with an error event.
            match event.json_data(&data) {
                Ok(event) => self.pending.push_back(event),
                Err(e) => {
                    let e = ApiError::Internal(format!("a change event did not serialize: {e}"));
                    self.pending.push_back(error_event(&e));
                    self.done = true;
                    break;
                }
            }
        }
        self.after = self.after.max(page.through);
        self.more = page.more;
    }

    /// The next event to send; `None` ends the stream (shutdown, or after an
    /// `error` event).
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if *self.closed.borrow() {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            if !self.more {
                let woken = tokio::select! {
                    _ = tokio::time::sleep(POLL_INTERVAL) => false,
                    r = self.written.changed() => {
                        if r.is_err() {
                            // No instance to wake us any more: plain polling.
                            tokio::time::sleep(POLL_INTERVAL).await;
                        }
                        r.is_ok()
                    }
                    _ = self.closed.changed() => return None,
                };
                let since = self.last_read.elapsed();
                if woken && since < MIN_GAP {
                    tokio::time::sleep(MIN_GAP - since).await;
                }
            }
            // Writes from now on wake the next wait.
            self.written.borrow_and_update();
            self.last_read = Instant::now();
            match self
                .filter
                .read(&self.store, &self.ns, self.after, self.read_max)
                .await
            {
                Ok(page) => self.absorb(page),
                Err(e) => {
                    // The client resumes with Last-Event-ID (and gets a plain
                    // 410 if its revision was compacted away meanwhile).
                    self.pending.push_back(error_event(&e));
                    self.done = true;
                }
            }
        }
    }
}

/// An `error` event carrying the problem document of `e`, as `error.rs`
/// renders it.
fn error_event(e: &ApiError) -> Event {
    Event::default().event("error").data(e.problem_json().1)
}

/// Compacts the change log by the retention in `limits` (the sweeper calls it).
pub async fn compact(store: &Store, limits: &Limits) {
    match store
        .compact_changes(limits.changes_keep_ms, limits.changes_keep_count)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::debug!(deleted = n, "compacted the change log"),
        Err(e) => tracing::warn!(error = %e, "compacting the change log failed"),
    }
}
