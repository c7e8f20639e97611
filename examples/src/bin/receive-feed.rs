//! seeds/000: a Worker finalizes uploads concurrently and each one appends to
//! the user's feed. Rewriting a JSON array lost entries; a feed append never
//! does. Also: retried finalizations (duplicates), a legacy array imported
//! once, and the unread count.

use futures_util::TryStreamExt;
use lockstep_client::api::feeds::{AppendBody, EntriesQuery, ImportQuery, ReadBody};
use lockstep_examples::{connect, invariant, Outcome};
use serde_json::json;

#[tokio::main]
async fn main() -> Outcome {
    let ns = connect("receive-feed")?;
    let feed = "inbox/user-1";
    // The legacy array, stored before lockstep: imported once, by id.
    let legacy: Vec<_> = (0..20)
        .map(|i| json!({"reservationId": format!("legacy-{i}"), "createdAt": "2026-01-01T00:00:00Z", "note": i}))
        .collect();
    let q = ImportQuery {
        id_field: Some("reservationId".into()),
        at_field: Some("createdAt".into()),
        data_field: None,
    };
    let first = ns.import(feed, &q, &legacy).await?;
    let again = ns.import(feed, &q, &legacy).await?;
    println!(
        "  import: {} imported, then {} skipped",
        first.imported, again.skipped
    );
    invariant(
        first.imported == 20 && again.imported == 0,
        "a second import adds nothing",
    )?;
    // 64 concurrent finalizations, each retried once (the duplicate a retry makes).
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let ns = ns.clone();
            tokio::spawn(async move {
                let body = AppendBody {
                    id: format!("upload-{i}"),
                    data: json!({"photo": format!("p{i}.jpg")}),
                    at: None,
                };
                let a = ns.append(feed, &body).await?;
                let b = ns.append(feed, &body).await?;
                Ok::<_, lockstep_client::Error>((a.created, b.created))
            })
        })
        .collect();
    let mut created = 0;
    let mut duplicates_created = 0;
    for t in tasks {
        let (a, b) = t.await??;
        created += usize::from(a);
        duplicates_created += usize::from(b);
    }
    println!("  64 finalizations: {created} created, {duplicates_created} duplicates created");
    invariant(
        created == 64 && duplicates_created == 0,
        "each finalization appended exactly once",
    )?;
    let entries: Vec<_> = ns.entries(feed, EntriesQuery::default()).try_collect().await?;
    let info = ns.feed(feed).await?;
    println!(
        "  the feed holds {} entries, {} unread",
        entries.len(),
        info.unread_count
    );
    invariant(entries.len() == 84, "no entry lost: 64 uploads + 20 legacy")?;
    let read = ReadBody {
        ids: Some((0..10).map(|i| format!("upload-{i}")).collect()),
        ..Default::default()
    };
    ns.mark_read(feed, &read).await?;
    let unread = ns.feed(feed).await?.unread_count;
    println!("  after reading 10: {unread} unread");
    invariant(unread == 74, "the unread count follows the read marks")
}
