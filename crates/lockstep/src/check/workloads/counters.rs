//! Counters incremented with compare-and-set: read the record, write
//! `value + 1` with `expected_version` = the version read, retry on 409.
//!
//! Every 4th step (the first included) forces the lost-update interleaving instead of waiting for
//! it by chance: read, let a whole other increment happen, then write from
//! the stale read. A correct deployment refuses that write (409) and the
//! increment is retried; a deployment that ignores the precondition loses
//! the other increment, and the counter checker sees it.

use super::{back_off, counter_key, Worker, COUNTERS};
use crate::check::history::Kind;
use serde_json::json;

/// Attempts before one increment gives up (it is then simply not acknowledged).
const ATTEMPTS: usize = 50;

/// One step: an increment of a counter, every 4th (from the first) with a
/// forced stale write.
pub async fn step(w: &mut Worker, n: usize) {
    let key = counter_key((w.client() + n) % COUNTERS);
    let path = format!("/records/{key}");
    if n.is_multiple_of(4) {
        let Some((value, version)) = read(w, &path).await else {
            return;
        };
        increment(w, &path).await;
        let body = json!({"value": value + 1, "expected_version": version});
        let write = w.caller.call(Kind::CounterWrite, "PUT", &path, Some(body)).await;
        if !matches!(write.status, 409 | 412) {
            return;
        }
    }
    increment(w, &path).await;
}

/// The counter's value and version (0, 0 when absent); None on an error.
async fn read(w: &mut Worker, path: &str) -> Option<(i64, u64)> {
    let read = w.caller.call(Kind::CounterRead, "GET", path, None).await;
    match read.status {
        200 => Some((
            read.answer.get("value").and_then(|v| v.as_i64()).unwrap_or(0),
            read.u64("version").unwrap_or(0),
        )),
        404 => Some((0, 0)),
        _ => None,
    }
}

/// Read, write `value + 1` from the version read; retried on a conflict.
async fn increment(w: &mut Worker, path: &str) {
    for _ in 0..ATTEMPTS {
        let Some((value, version)) = read(w, path).await else {
            return;
        };
        let body = json!({"value": value + 1, "expected_version": version});
        let write = w.caller.call(Kind::CounterWrite, "PUT", path, Some(body)).await;
        match write.status {
            409 | 412 => back_off().await,
            _ => return,
        }
    }
}
