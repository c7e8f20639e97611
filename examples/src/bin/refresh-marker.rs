//! seeds/003: a cron run and a user's refresh share one in-flight marker. The
//! cron run's marker lapsed, the user's refresh set its own, and the cron
//! run's late "clear" wiped it. With a lease as the marker, the clear is a
//! compare-and-clear release with the owner token: the late clear clears
//! nothing, and the fence tells the two runs apart.

use lockstep_client::api::leases::AcquireBody;
use lockstep_examples::{connect, invariant, Outcome};
use std::time::Duration;

#[tokio::main]
async fn main() -> Outcome {
    let ns = connect("refresh-marker")?;
    let marker = "collection-in-flight";
    let acquire = |holder: &str, ttl_ms| AcquireBody {
        ttl_ms,
        holder: Some(holder.into()),
        wait_ms: 0,
    };
    let cron = ns.acquire_lease(marker, &acquire("cron", 300)).await?;
    println!("  cron run holds the marker (fence {})", cron.fence);
    // The cron run is slow: its marker lapses (the seed's 5-minute window, shortened).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let user = ns.acquire_lease(marker, &acquire("user-refresh", 30_000)).await?;
    println!("  the user's refresh holds it (fence {})", user.fence);
    invariant(user.fence > cron.fence, "the newer holder has the higher fence")?;
    let cron_token = cron.token.unwrap_or_default();
    let late = ns.release_lease(marker, &cron_token).await?;
    println!("  the cron run's late clear: released = {}", late.released);
    invariant(!late.released, "the late clear cleared nothing")?;
    let state = ns.lease(marker).await?;
    invariant(
        state.held && state.holder.as_deref() == Some("user-refresh"),
        "the user's marker is still there",
    )?;
    let mine = ns.release_lease(marker, &user.token.unwrap_or_default()).await?;
    invariant(mine.released, "its owner clears it")
}
