//! `POST /v1/ns/{ns}/txn`: compare, then one branch atomically (SPEC §5).

use crate::extract::{Caller, Json, Ns};
use crate::idempotency::{render, run, Idem, Reply};
use crate::{wire, ApiError, AppState};
use axum::extract::State;
use axum::response::Response;
use lockstep_core::txn::Txn;
use lockstep_core::txn::TxnResult;
use lockstep_core::Command;

/// Runs a transaction.
pub async fn txn(
    State(st): State<AppState>,
    Ns(ns): Ns,
    caller: Caller,
    Idem(idem): Idem,
    Json(t): Json<Txn>,
) -> Result<Response, ApiError> {
    t.validate(&st.limits)?;
    let answer = render(|result: TxnResult, revision| Reply::ok(wire::records::txn(&result, revision)));
    run(&st, &ns, &caller.name, idem, Command::Txn(t), answer).await
}
