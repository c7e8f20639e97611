//! Keyed requests: a `txn` incrementing one counter, sent with an
//! `Idempotency-Key` and retried with the same key on another instance —
//! every third time the first attempt and a retry race each other.

use super::{back_off, txn_body, Worker, KEYED_COUNTER};
use crate::check::caller::request;
use crate::check::history::Kind;
use lockstep_client::api::{Op, Txn};

/// Retries of an answer `idempotency_key_in_use` before giving up.
const IN_USE_RETRIES: usize = 50;

/// One keyed increment, then its replays.
pub async fn step(w: &mut Worker, n: usize) {
    let key = format!("{}-c{}-{n}", w.run, w.client());
    let body = txn_body(&Txn {
        success: vec![Op::incr(KEYED_COUNTER, 1)],
        ..Txn::default()
    });
    let here = w.caller.instance;
    let there = here + 1;
    if n % 3 == 2 {
        let t = w.caller.target().clone();
        let c = w.client();
        let (a, b) = tokio::join!(
            request(
                &t,
                c,
                here,
                Kind::Keyed,
                "POST",
                "/txn",
                Some(body.clone()),
                Some(&key)
            ),
            request(
                &t,
                c,
                there,
                Kind::Keyed,
                "POST",
                "/txn",
                Some(body.clone()),
                Some(&key)
            ),
        );
        w.caller.record(a);
        w.caller.record(b);
    } else {
        w.caller
            .send(here, Kind::Keyed, "POST", "/txn", Some(body.clone()), Some(&key))
            .await;
    }
    for _ in 0..IN_USE_RETRIES {
        let op = w
            .caller
            .send(there, Kind::Keyed, "POST", "/txn", Some(body.clone()), Some(&key))
            .await;
        if op.code() != Some("idempotency_key_in_use") {
            return;
        }
        back_off().await;
    }
}
