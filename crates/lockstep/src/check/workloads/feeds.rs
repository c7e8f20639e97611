//! Feed appends with unique ids, deliberate re-appends of acknowledged ids
//! (which must answer the original, `created: false`) and read marks; and
//! appends to a feed capped at [`CAPPED_MAX`](super::CAPPED_MAX) entries.

use super::{Worker, CAPPED_FEED, FEED};
use crate::check::history::Kind;
use serde_json::json;

/// One feed step: mostly a fresh append; every 4th a re-append of an
/// acknowledged id, every 4th (offset) a read mark of one; every 4th (the
/// first included) also a fresh append to the capped feed.
pub async fn step(w: &mut Worker, n: usize) {
    if n.is_multiple_of(4) {
        let id = format!("{}-c{}-{n}-capped", w.run, w.client());
        let body = json!({"id": id, "data": {"client": w.client(), "n": n}});
        let path = format!("/feeds/{CAPPED_FEED}/entries");
        w.caller.call(Kind::CappedAppend, "POST", &path, Some(body)).await;
    }
    let entries = format!("/feeds/{FEED}/entries");
    let pick = w
        .appended
        .get(n.wrapping_mul(7) % w.appended.len().max(1))
        .cloned();
    match (n % 4, pick) {
        (1, Some(id)) => {
            let body = json!({"id": id, "data": {"again": n}});
            w.caller
                .call(Kind::FeedReappend, "POST", &entries, Some(body))
                .await;
        }
        (3, Some(id)) => {
            let body = json!({"ids": [id]});
            let path = format!("/feeds/{FEED}/read");
            w.caller.call(Kind::FeedMarkRead, "POST", &path, Some(body)).await;
        }
        _ => {
            let id = format!("{}-c{}-{n}", w.run, w.client());
            let body = json!({"id": id, "data": {"client": w.client(), "n": n}});
            let op = w
                .caller
                .call(Kind::FeedAppend, "POST", &entries, Some(body))
                .await;
            if op.ok() {
                w.appended.push(id);
            }
        }
    }
}
