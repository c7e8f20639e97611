//! seeds/004: two editors change one subscription. A blind write lost the
//! other's change; here every write names the version it read. One editor's
//! conflict is retried automatically (`update_with` re-reads and re-applies);
//! another merges by hand from its local change and the remote record that
//! the 409 carries.

use lockstep_client::api::records::PutRecordBody;
use lockstep_examples::{connect, invariant, Outcome};
use serde_json::{json, Value};

/// `base` with `field` set to `value`.
fn with(base: Option<&Value>, field: &str, value: Value) -> Value {
    let mut v = base.cloned().unwrap_or_else(|| json!({}));
    v[field] = value;
    v
}

#[tokio::main]
async fn main() -> Outcome {
    let ns = connect("subscription-occ")?;
    let key = "subscription/42";
    ns.put(
        key,
        &PutRecordBody::new(json!({"plan": "basic", "seats": 1})).expected_version(0),
    )
    .await?;
    // Both editors read version v; the plan editor writes first.
    let read = ns.get(key).await?.ok_or("the subscription is gone")?;
    let plan = with(Some(&read.value), "plan", json!("pro"));
    ns.put(key, &PutRecordBody::new(plan).expected_version(read.version))
        .await?;
    // The seats editor's write at v is refused, not applied over the plan change…
    let stale = with(Some(&read.value), "seats", json!(5));
    let refused = ns
        .put(key, &PutRecordBody::new(stale).expected_version(read.version))
        .await;
    invariant(
        matches!(&refused, Err(e) if e.code() == Some("version_mismatch")),
        "a write from a stale read is refused (409 version_mismatch)",
    )?;
    // …and update_with re-reads and re-applies it on the current value.
    let w = ns.update_with(key, |cur| with(cur, "seats", json!(5)), 5).await?;
    println!("  seats editor retried automatically: version {}", w.put.version);
    // A third editor edited from an old read while billing changed: its
    // write is refused with the current record, and it merges by hand.
    let old = ns.get(key).await?.ok_or("the subscription is gone")?;
    ns.put(
        key,
        &PutRecordBody::new(with(Some(&old.value), "billing", json!("yearly"))),
    )
    .await?;
    let local = with(Some(&old.value), "coupon", json!("SPRING"));
    let refused = ns
        .put(
            key,
            &PutRecordBody::new(local.clone()).expected_version(old.version),
        )
        .await;
    let merged = match refused.as_ref().err().and_then(|e| e.current()).flatten() {
        Some(remote) => {
            println!("  conflict: local {local}, remote {}", remote.value);
            let m = with(Some(&remote.value), "coupon", local["coupon"].clone());
            ns.put(key, &PutRecordBody::new(m).expected_version(remote.version))
                .await?;
            true
        }
        None => return Err(format!("expected a conflict with the current record, got {refused:?}").into()),
    };
    invariant(merged, "the manual merge wrote at the version it merged from")?;
    let end = ns.get(key).await?.ok_or("the subscription is gone")?.value;
    println!("  final: {end}");
    invariant(
        end == json!({"plan": "pro", "seats": 5, "billing": "yearly", "coupon": "SPRING"}),
        "no editor's change was lost",
    )
}
