//! The change log (SPEC §10): the pager of `/changes` and the `/watch` stream,
//! which resumes with `Last-Event-ID` and never yields a revision twice.

use crate::http::{problem_of, Req};
use crate::paging::{pager, Pager};
use crate::sse::{Item, Parser};
use crate::{Error, Ns};
use futures_util::stream::{self, StreamExt};
use lockstep_api::changes::{Change, Changes, ChangesQuery, WatchEvent, WatchQuery};
use lockstep_api::problem::Problem;
use lockstep_api::Page;
use std::time::Duration;
use tokio::sync::mpsc;

impl Ns {
    /// The change log in (revision, index) order, from after `q.after`
    /// (default: the oldest kept); 410 `compacted` when that is gone.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// use lockstep_client::api::changes::ChangesQuery;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let q = ChangesQuery { after: Some("10".into()), ..Default::default() };
    /// let changes: Vec<_> = app.changes(q).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn changes(&self, q: ChangesQuery) -> Pager<Change> {
        let ns = self.clone();
        pager(move |cursor| {
            let (ns, mut q) = (ns.clone(), q.clone());
            async move {
                if cursor.is_some() {
                    q.after = None;
                    q.cursor = cursor;
                }
                let req = Req::get(ns.at("changes")).query(&q)?;
                let p: Page<Changes> = ns.t().send(&req).await?.body;
                Ok((p.items.changes, p.next_cursor))
            }
        })
    }

    /// Streams one event per revision (`{revision, changes}`) from after
    /// `q.after` (default: from now). A dropped connection, an end of stream
    /// or a retryable refusal reconnects with `Last-Event-ID` set to the last
    /// revision yielded, and a revision already yielded is skipped. A refusal
    /// that is not retryable (e.g. 410 `compacted`) is yielded and ends the
    /// stream, as do `attempts` failed connections in a row. Dropping the
    /// stream closes the connection.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let mut events = app.watch(Default::default());
    /// while let Some(ev) = events.try_next().await? {
    ///     println!("revision {}: {} changes", ev.revision, ev.changes.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch(&self, q: WatchQuery) -> Pager<WatchEvent> {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(run_watch(self.clone(), q, tx));
        stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) }).boxed()
    }
}

type Tx = mpsc::Sender<Result<WatchEvent, Error>>;

/// How one connection ended.
enum Ended {
    /// The receiver is gone: stop.
    Closed,
    /// A failure: retry it if it is retryable.
    Failed(Error, Option<Duration>),
}

/// The watch loop: connect, read, reconnect.
async fn run_watch(ns: Ns, q: WatchQuery, tx: Tx) {
    let policy = ns.t().retry;
    let mut last: Option<u64> = match q.after.as_deref().map(str::parse) {
        Some(Ok(n)) => Some(n),
        _ => None,
    };
    let mut failures: u32 = 0;
    loop {
        let (e, ra) = match connection(&ns, &q, &mut last, &mut failures, &tx).await {
            Ended::Closed => return,
            Ended::Failed(e, ra) => (e, ra),
        };
        failures += 1;
        if !e.is_retryable() || failures >= policy.attempts.max(1) {
            let _ = tx.send(Err(e)).await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(policy.delay(failures - 1, ra)) => {}
            _ = tx.closed() => return,
        }
    }
}

/// One connection: yields its new revisions until it ends.
async fn connection(ns: &Ns, q: &WatchQuery, last: &mut Option<u64>, failures: &mut u32, tx: &Tx) -> Ended {
    let t = ns.t();
    let mut rb = t
        .http
        .get(t.url(&ns.at("watch")))
        .header(reqwest::header::ACCEPT, "text/event-stream");
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(l) = last {
        query.push(("after", l.to_string()));
        rb = rb.header("last-event-id", l.to_string());
    } else if let Some(a) = &q.after {
        query.push(("after", a.clone()));
    }
    if let Some(p) = &q.prefix {
        query.push(("prefix", p.clone()));
    }
    if let Some(k) = &q.kind {
        query.push(("kind", k.clone()));
    }
    let resp = tokio::select! {
        r = rb.query(&query).send() => r,
        _ = tx.closed() => return Ended::Closed,
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return Ended::Failed(Error::from_reqwest(e), None),
    };
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let ra = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.unwrap_or_default();
        return Ended::Failed(problem_of(status, &bytes), ra);
    }
    *failures = 0;
    let mut body = resp.bytes_stream();
    let mut parser = Parser::default();
    loop {
        let chunk = tokio::select! {
            c = body.next() => c,
            _ = tx.closed() => return Ended::Closed,
        };
        let chunk = match chunk {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Ended::Failed(Error::from_reqwest(e), None),
            None => return Ended::Failed(Error::Transport("the watch stream ended".into()), None),
        };
        for item in parser.push(&chunk) {
            match item {
                Item::Comment(c) => {
                    // Without `after` the server starts from now: remember
                    // where, so a reconnection before any event resumes there.
                    if let Some(n) = c.strip_prefix("watching after revision ") {
                        if last.is_none() {
                            *last = n.trim().parse().ok();
                        }
                    }
                }
                Item::Event { event, data, .. } if event == "error" => {
                    return match serde_json::from_str::<Problem>(&data) {
                        Ok(p) => Ended::Failed(
                            Error::Api {
                                status: p.status,
                                problem: Box::new(p),
                            },
                            None,
                        ),
                        Err(e) => Ended::Failed(Error::Decode(format!("watch error event: {e}")), None),
                    };
                }
                Item::Event { event, data, .. } if event == "change" => {
                    let ev: WatchEvent = match serde_json::from_str(&data) {
                        Ok(ev) => ev,
                        Err(e) => return Ended::Failed(Error::Decode(format!("watch event: {e}")), None),
                    };
                    if last.is_some_and(|l| ev.revision <= l) {
                        continue;
                    }
                    *last = Some(ev.revision);
                    if tx.send(Ok(ev)).await.is_err() {
                        return Ended::Closed;
                    }
                }
                Item::Event { .. } => {}
            }
        }
    }
}
