//! seeds/002: two instances settle the same stream. A process-local lock
//! serialized nothing across instances; here the settlement runs under a
//! lease (`with_lock`) and an idempotency key, so it applies once and both
//! callers get the same answer. The activity feed is read with cursors.

use futures_util::TryStreamExt;
use lockstep_client::api::feeds::{AppendBody, EntriesQuery};
use lockstep_client::api::idempotency::{BeginBody, Begun};
use lockstep_client::api::records::PutRecordBody;
use lockstep_client::{LockOptions, Ns};
use lockstep_examples::{connect, invariant, Outcome};
use serde_json::{json, Value};

/// Settles period 1 of stream 7 once: the first caller does the work, a
/// later one gets the stored answer.
async fn settle(ns: Ns, worker: &'static str) -> Result<Value, lockstep_client::Error> {
    let opts = LockOptions {
        wait: std::time::Duration::from_secs(10),
        holder: Some(worker.into()),
        ..Default::default()
    };
    let inner = ns.clone();
    ns.with_lock("stream-7", &opts, |held| async move {
        let begin = BeginBody {
            fingerprint: "settle stream-7 period-1".into(),
            lock_ms: 30_000,
        };
        match inner
            .begin_idempotent("settle", "stream-7:period-1", &begin)
            .await?
        {
            Begun::Completed(done) => Ok(done.response),
            Begun::Started(owned) => {
                let balance = inner
                    .get("balance/stream-7")
                    .await?
                    .map_or(0, |r| r.value.as_i64().unwrap_or(0));
                inner
                    .put("balance/stream-7", &PutRecordBody::new(json!(balance + 100)))
                    .await?;
                let answer = json!({"settled_by": worker, "fence": held.fence(), "amount": 100});
                inner
                    .complete_idempotent("settle", "stream-7:period-1", &owned.token, &answer)
                    .await?;
                Ok(answer)
            }
        }
    })
    .await
}

#[tokio::main]
async fn main() -> Outcome {
    let ns = connect("stream-settle")?;
    let (a, b) = tokio::join!(settle(ns.clone(), "instance-a"), settle(ns.clone(), "instance-b"));
    let (a, b) = (a?, b?);
    println!("  instance-a got {a}\n  instance-b got {b}");
    invariant(a == b, "both callers got the same settlement")?;
    let balance = ns.get("balance/stream-7").await?.map(|r| r.value);
    invariant(balance == Some(json!(100)), "the settlement applied once")?;
    // Activity events, paged 10 at a time with cursors, oldest first.
    for i in 0..25 {
        let body = AppendBody {
            id: format!("event-{i:02}"),
            data: json!({"stream": 7, "n": i}),
            at: None,
        };
        ns.append("activity/stream-7", &body).await?;
    }
    let q = EntriesQuery {
        limit: Some(10),
        order: Some("asc".into()),
        ..Default::default()
    };
    let ids: Vec<String> = ns
        .entries("activity/stream-7", q)
        .map_ok(|e| e.id)
        .try_collect()
        .await?;
    let expected: Vec<String> = (0..25).map(|i| format!("event-{i:02}")).collect();
    println!("  paged {} events in pages of 10", ids.len());
    invariant(ids == expected, "paging with cursors repeats and skips nothing")
}
