//! seeds/001: uploads race a revoke. Every upload is a ticket of the upload
//! gate: admit, commit (the file is stored), finalize with the feed entry in
//! the same transaction. Once the revoke has answered, no ticket of the old
//! epoch finalizes, and the feed holds exactly the finalized uploads.

use futures_util::TryStreamExt;
use lockstep_client::api::gates::{AdmitBody, AppendSpec, FinalizeBody, PutGateBody};
use lockstep_client::{Error, TicketOp, Transition};
use lockstep_examples::{connect, invariant, Outcome};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Outcome {
    let ns = connect("receive-lifecycle")?;
    let gate = "upload-session-1";
    ns.put_gate(gate, &PutGateBody::default()).await?;
    let revoked = Arc::new(AtomicBool::new(false));
    let (finalized_tx, mut finalized_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let uploads: Vec<_> = (0..32)
        .map(|i| {
            let (ns, revoked, finalized_tx) = (ns.clone(), revoked.clone(), finalized_tx.clone());
            tokio::spawn(async move {
                let admit = AdmitBody {
                    ticket_id: Some(format!("u{i}")),
                    meta: None,
                };
                let t = match ns.admit(gate, &admit).await {
                    Ok(t) => t.ticket.ticket_id,
                    Err(e) if e.status() == Some(410) => return Ok((false, false)),
                    Err(e) => return Err(e),
                };
                ns.ticket(gate, &t, TicketOp::Commit, &FinalizeBody::default())
                    .await
                    .ok();
                let after_revoke = revoked.load(Ordering::SeqCst);
                let finalize = FinalizeBody {
                    append: Some(AppendSpec {
                        feed: "uploads".into(),
                        data: json!({"file": format!("{t}.bin")}),
                    }),
                };
                match ns.ticket(gate, &t, TicketOp::Finalize, &finalize).await {
                    Ok(_) => {
                        let _ = finalized_tx.send(());
                        Ok((true, after_revoke))
                    }
                    Err(e) if matches!(e.status(), Some(409 | 410 | 423)) => Ok((false, after_revoke)),
                    Err(e) => Err::<_, Error>(e),
                }
            })
        })
        .collect();
    // The revoke lands in the middle of the uploads: after the 8th finalized.
    drop(finalized_tx);
    for _ in 0..8 {
        finalized_rx.recv().await;
    }
    let r = ns.transition(gate, Transition::Revoke).await?;
    revoked.store(true, Ordering::SeqCst);
    println!(
        "  revoke: voided {} open tickets, {} committed pending",
        r.voided, r.pending
    );
    let (mut finalized, mut late) = (0, 0);
    for u in uploads {
        let (ok, started_after_revoke) = u.await??;
        finalized += usize::from(ok);
        late += usize::from(ok && started_after_revoke);
    }
    println!("  {finalized} uploads finalized, {late} of them after the revoke answered");
    invariant(late == 0, "no stale ticket finalized after the revoke")?;
    let feed: Vec<_> = ns.entries("uploads", Default::default()).try_collect().await?;
    invariant(
        feed.len() == finalized,
        "the feed holds exactly the finalized uploads",
    )?;
    let after = ns.admit(gate, &AdmitBody::default()).await;
    invariant(
        matches!(after, Err(e) if e.status() == Some(410)),
        "a revoked gate admits nobody",
    )
}
