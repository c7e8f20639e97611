//! Gates: tickets admitted, committed and finalized (appending to the gate's
//! feed) while other clients of the same gate revoke and reopen it.
//!
//! Every 5th step forces the stale-ticket case instead of waiting for the
//! race: admit a ticket (and, every other time, commit it), revoke the gate,
//! then try the ticket's remaining steps — a correct gate refuses them, or,
//! under policy `recover`, finalizes the committed ticket with
//! `recovered: true` — and reopen.

use super::{gate_feed, gate_id, Worker, GATES};
use crate::check::history::{Kind, Op};
use serde_json::json;

/// Every this many gate steps a client revokes and reopens its gate.
const REVOKE_EVERY: usize = 5;

/// One gate step: a ticket's admit → commit → finalize, or a ticket caught
/// by a revoke.
pub async fn step(w: &mut Worker, n: usize) {
    let g = w.client() % GATES;
    let ticket = format!("{}-c{}-{n}", w.run, w.client());
    if n % REVOKE_EVERY != REVOKE_EVERY - 1 {
        if admit(w, g, &ticket).await.ok() && run(w, g, &ticket, Kind::TicketCommit).await.status != 0 {
            run(w, g, &ticket, Kind::TicketFinalize).await;
        }
        return;
    }
    let gate = gate_id(g);
    let admitted = admit(w, g, &ticket).await.ok();
    let commit_first = (n / REVOKE_EVERY) % 2 == 1;
    if admitted && commit_first {
        run(w, g, &ticket, Kind::TicketCommit).await;
    }
    w.caller
        .call(Kind::GateRevoke, "POST", &format!("/gates/{gate}/revoke"), None)
        .await;
    if admitted {
        if !commit_first {
            run(w, g, &ticket, Kind::TicketCommit).await;
        }
        run(w, g, &ticket, Kind::TicketFinalize).await;
    }
    w.caller
        .call(Kind::GateReopen, "POST", &format!("/gates/{gate}/reopen"), None)
        .await;
}

/// Admits `ticket` at gate `g`.
async fn admit(w: &mut Worker, g: usize, ticket: &str) -> Op {
    let path = format!("/gates/{}/tickets", gate_id(g));
    w.caller
        .call(
            Kind::TicketAdmit,
            "POST",
            &path,
            Some(json!({"ticket_id": ticket})),
        )
        .await
}

/// Commits or finalizes (appending to the gate's feed) `ticket` at gate `g`.
async fn run(w: &mut Worker, g: usize, ticket: &str, kind: Kind) -> Op {
    let base = format!("/gates/{}/tickets/{ticket}", gate_id(g));
    match kind {
        Kind::TicketFinalize => {
            let body = json!({"append": {"feed": gate_feed(g), "data": {"client": w.client()}}});
            w.caller
                .call(kind, "POST", &format!("{base}/finalize"), Some(body))
                .await
        }
        _ => w.caller.call(kind, "POST", &format!("{base}/commit"), None).await,
    }
}
