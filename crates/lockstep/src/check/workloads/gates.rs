//! Gates: tickets admitted, committed and finalized (appending to the gate's
//! feed) while other clients of the same gate revoke and reopen it.
//!
//! Every 5th step forces the stale-ticket case instead of waiting for the
//! race: admit a ticket (and, every other time, commit it), revoke the gate,
//! then try the ticket's remaining steps — a correct gate refuses them, or,
//! under policy `recover`, finalizes the committed ticket with
//! `recovered: true` — and reopen.
//!
//! Every 5th step (offset, the first one included) pauses the pause gate
//! instead: admit a ticket there, pause, try to commit it and to admit
//! another (refused with 423 while the gate is paused), resume, then commit
//! and finalize the first ticket (it survives the pause). The clients' pause
//! steps race each other's pauses, resumes, admits and commits.

use super::{gate_feed, gate_id, Worker, GATES, PAUSE_GATE};
use crate::check::history::{Kind, Op};
use serde_json::json;

/// Every this many gate steps a client revokes and reopens its gate.
const REVOKE_EVERY: usize = 5;

/// One gate step: a ticket's admit → commit → finalize, or a ticket caught
/// by a revoke.
pub async fn step(w: &mut Worker, n: usize) {
    let g = w.client() % GATES;
    let ticket = format!("{}-c{}-{n}", w.run, w.client());
    if n.is_multiple_of(REVOKE_EVERY) {
        return pause_step(w, &ticket).await;
    }
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

/// Admit → pause → commit and a second admit (refused while paused) →
/// resume → commit → finalize, at the pause gate.
async fn pause_step(w: &mut Worker, ticket: &str) {
    let base = format!("/gates/{PAUSE_GATE}");
    let admitted = admit_at(w, PAUSE_GATE, ticket).await.ok();
    w.caller
        .call(Kind::GatePause, "POST", &format!("{base}/pause"), None)
        .await;
    let commit = format!("{base}/tickets/{ticket}/commit");
    if admitted {
        w.caller.call(Kind::TicketCommit, "POST", &commit, None).await;
    }
    admit_at(w, PAUSE_GATE, &format!("{ticket}-p")).await;
    w.caller
        .call(Kind::GateResume, "POST", &format!("{base}/resume"), None)
        .await;
    if admitted
        && w.caller
            .call(Kind::TicketCommit, "POST", &commit, None)
            .await
            .ok()
    {
        let finalize = format!("{base}/tickets/{ticket}/finalize");
        w.caller
            .call(Kind::TicketFinalize, "POST", &finalize, Some(json!({})))
            .await;
    }
}

/// Admits `ticket` at gate `g`.
async fn admit(w: &mut Worker, g: usize, ticket: &str) -> Op {
    admit_at(w, &gate_id(g), ticket).await
}

/// Admits `ticket` at the gate with id `gate`.
async fn admit_at(w: &mut Worker, gate: &str, ticket: &str) -> Op {
    let path = format!("/gates/{gate}/tickets");
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
