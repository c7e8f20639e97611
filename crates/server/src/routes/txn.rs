//! `POST /v1/ns/{ns}/txn`: compare, then one branch atomically (SPEC §5).

use crate::extract::{Caller, Json, Ns};
use crate::{wire, ApiError, AppState};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use lockstep_core::txn::Txn;
use lockstep_core::{Command, Outcome};

/// Runs a transaction.
pub async fn txn(
    State(st): State<AppState>,
    Ns(ns): Ns,
    caller: Caller,
    Json(t): Json<Txn>,
) -> Result<Response, ApiError> {
    t.validate(&st.limits)?;
    let c = st.store.execute(&ns, Command::Txn(t), &caller.name).await?;
    match c.outcome {
        Outcome::Txn(result) => Ok(axum::Json(wire::txn(&result, c.revision)).into_response()),
        other => Err(ApiError::Internal(format!("unexpected outcome {other:?}"))),
    }
}
