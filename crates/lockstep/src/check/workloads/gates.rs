//! Gates: tickets admitted, committed and finalized (appending to the gate's
//! feed) while other clients of the same gate revoke and reopen it.

use super::{gate_feed, gate_id, Worker, GATES};
use crate::check::history::Kind;
use serde_json::json;

/// Every this many gate steps a client revokes and reopens its gate.
const REVOKE_EVERY: usize = 5;

/// One gate step: a ticket's admit → commit → finalize, or a revoke + reopen.
pub async fn step(w: &mut Worker, n: usize) {
    let g = w.client() % GATES;
    let gate = gate_id(g);
    if n % REVOKE_EVERY == REVOKE_EVERY - 1 {
        w.caller
            .call(Kind::GateRevoke, "POST", &format!("/gates/{gate}/revoke"), None)
            .await;
        w.caller
            .call(Kind::GateReopen, "POST", &format!("/gates/{gate}/reopen"), None)
            .await;
        return;
    }
    let ticket = format!("{}-c{}-{n}", w.run, w.client());
    let admit = w
        .caller
        .call(
            Kind::TicketAdmit,
            "POST",
            &format!("/gates/{gate}/tickets"),
            Some(json!({"ticket_id": ticket})),
        )
        .await;
    if !admit.ok() {
        return;
    }
    let base = format!("/gates/{gate}/tickets/{ticket}");
    // Commit even when it may fail: the commit racing a revoke is the point.
    let commit = w
        .caller
        .call(Kind::TicketCommit, "POST", &format!("{base}/commit"), None)
        .await;
    if commit.status == 0 {
        return;
    }
    let body = json!({"append": {"feed": gate_feed(g), "data": {"client": w.client()}}});
    w.caller
        .call(
            Kind::TicketFinalize,
            "POST",
            &format!("{base}/finalize"),
            Some(body),
        )
        .await;
}
