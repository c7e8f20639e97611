//! Leases: acquire (waiting briefly), a write guarded by the lease and fence
//! compares in one `txn`, release. The TTL is far above the hold time, so a
//! holder never loses its lease to expiry during a run.

use super::{back_off, lease_name, txn_body, Worker, LEASES};
use crate::check::history::Kind;
use lockstep_client::api::{Compare, Op, Txn};
use serde_json::json;

/// The lease TTL: far above any hold.
pub const TTL_MS: u64 = 30_000;
/// How long an acquire waits in the queue.
const WAIT_MS: u64 = 500;

/// One acquire → fenced write → release cycle.
pub async fn step(w: &mut Worker, n: usize) {
    let name = lease_name((w.client() + n) % LEASES);
    let body = json!({"ttl_ms": TTL_MS, "holder": format!("check-c{}", w.client()), "wait_ms": WAIT_MS});
    let acq = w
        .caller
        .call(
            Kind::LeaseAcquire,
            "POST",
            &format!("/leases/{name}/acquire"),
            Some(body),
        )
        .await;
    if !acq.ok() {
        back_off().await;
        return;
    }
    let (Some(token), Some(fence)) = (acq.str("token").map(str::to_owned), acq.u64("fence")) else {
        return;
    };
    let txn = Txn {
        compare: vec![
            Compare::Lease {
                name: name.clone(),
                token: token.clone(),
            },
            Compare::Fence {
                resource: format!("{name}-resource"),
                token: fence,
            },
        ],
        success: vec![Op::put(
            format!("{name}-owner"),
            json!({"fence": fence, "client": w.client()}),
        )],
        failure: vec![],
    };
    w.caller
        .call(Kind::LeaseWrite, "POST", "/txn", Some(txn_body(&txn)))
        .await;
    w.caller
        .call(
            Kind::LeaseRelease,
            "POST",
            &format!("/leases/{name}/release"),
            Some(json!({"token": token})),
        )
        .await;
}
