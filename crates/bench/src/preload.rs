//! Fills a lockstep namespace with many records and feed entries through the
//! public API (transactions of puts, legacy feed imports), so the scale run
//! (`scripts/bench-scale`) can measure the workloads over a large store.

use crate::error::Error;
use crate::http::Conn;
use crate::workload;
use hyper::Method;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What to store, and how.
#[derive(clap::Args)]
pub struct Plan {
    /// The namespace to fill.
    #[arg(long, default_value = "scale")]
    pub ns: String,
    /// Records `r/00000000`… with small integer values.
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// Feed entries of 200 bytes, spread evenly over `feeds` feeds `s0`….
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: u64,
    /// Feeds the entries go to.
    #[arg(long, default_value_t = 100)]
    pub feeds: u64,
    /// Puts per transaction (at most the server's `txn_items_max`).
    #[arg(long, default_value_t = 64)]
    pub batch: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
}

/// Entries per import request (the server's default `import_entries_max`).
const IMPORT_BATCH: u64 = 1_000;

/// Stores everything `p` asks for; prints progress to stderr.
pub async fn run(addr: SocketAddr, p: Plan) -> Result<(), Error> {
    if p.batch == 0 || p.clients == 0 || (p.entries > 0 && p.feeds == 0) {
        return Err(Error::Usage(
            "--batch, --clients and --feeds must be positive".into(),
        ));
    }
    let p = Arc::new(p);
    let record_jobs = p.records.div_ceil(p.batch);
    // Every feed gets the same count (the total rounds up to a multiple).
    let per_feed = p.entries.div_ceil(p.feeds.max(1));
    let imports_per_feed = per_feed.div_ceil(IMPORT_BATCH);
    let jobs = record_jobs + imports_per_feed * p.feeds;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(p.clients);
    for _ in 0..p.clients {
        let (p, next) = (p.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let data = workload::entry_data();
            loop {
                let job = next.fetch_add(1, Ordering::Relaxed);
                if job >= jobs {
                    return Ok::<(), Error>(());
                }
                let (path, body) = if job < record_jobs {
                    (format!("/v1/ns/{}/txn", p.ns), puts(job, &p))
                } else {
                    let i = job - record_jobs;
                    let (feed, part) = (i / imports_per_feed, i % imports_per_feed);
                    let from = part * IMPORT_BATCH;
                    let until = ((part + 1) * IMPORT_BATCH).min(per_feed);
                    (
                        format!("/v1/ns/{}/feeds/s{feed}/import", p.ns),
                        import(from, until, &data),
                    )
                };
                let a = conn.send(Method::POST, &path, Some(body), &[]).await?;
                if !a.status.is_success() {
                    return Err(a.unexpected(&path));
                }
                if (job + 1) % (jobs / 10).max(1) == 0 {
                    eprintln!(
                        "preload: {}% after {:.0} s",
                        (job + 1) * 100 / jobs,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Error::Unexpected(format!("a preload task panicked: {e}")))??;
    }
    eprintln!(
        "preload: {} records and {} entries in {:.0} s",
        p.records,
        per_feed * p.feeds,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The body of transaction `job`: puts of its slice of the records.
fn puts(job: u64, p: &Plan) -> String {
    let from = job * p.batch;
    let until = (from + p.batch).min(p.records);
    let mut body = String::from(r#"{"success":["#);
    for i in from..until {
        if i > from {
            body.push(',');
        }
        let _ = write!(body, r#"{{"put":{{"key":"r/{i:08}","value":{i}}}}}"#);
    }
    body.push_str("]}");
    body
}

/// A legacy import of entries `e{from}`..`e{until}` with the 200-byte data.
fn import(from: u64, until: u64, data: &str) -> String {
    let mut body = String::from("[");
    for i in from..until {
        if i > from {
            body.push(',');
        }
        let _ = write!(body, r#"{{"id":"e{i}","data":{data}}}"#);
    }
    body.push(']');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_of_the_right_size() {
        let p = Plan {
            ns: "n".into(),
            records: 10,
            entries: 0,
            feeds: 1,
            batch: 4,
            clients: 1,
        };
        let last: serde_json::Value = serde_json::from_str(&puts(2, &p)).unwrap_or_default();
        assert_eq!(last["success"].as_array().map(Vec::len), Some(2));
        assert_eq!(last["success"][1]["put"]["key"], "r/00000009");
        let entries: serde_json::Value =
            serde_json::from_str(&import(5, 8, &workload::entry_data())).unwrap_or_default();
        assert_eq!(entries.as_array().map(Vec::len), Some(3));
        assert_eq!(entries[0]["id"], "e5");
    }
}
