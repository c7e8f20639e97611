//! `/v1/ns/{ns}/idempotency/{scope}/{key}`: the idempotency store for the
//! application's own endpoints (SPEC §9, seeds/002): begin (own the key, replay,
//! or be told it is in progress or reused), complete with a response, or give
//! the key up so a retry may run. A started key whose `lock_ms` ran out is taken
//! over by the next caller, and the stale owner's complete/give-up is refused.

use crate::extract::{Caller, Json, Ns, Path};
use crate::routes::leases::random_id;
use crate::{wire, ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use lockstep_api::idempotency::{BeginBody, CompleteBody, GiveUpBody};
use lockstep_core::command::answer::{IdemCompleted, IdemReleased};
use lockstep_core::idempotency::{Began, Begin, StoredResponse};
use lockstep_core::{names, Command, RowKey};

fn target(st: &AppState, scope: &str, key: &str) -> Result<(String, String), ApiError> {
    names::validate_key(scope, &st.limits)?;
    names::validate_key(key, &st.limits)?;
    Ok((scope.to_owned(), key.to_owned()))
}

fn check_token(token: &str) -> Result<(), ApiError> {
    Ok(lockstep_core::lease::check_token(token)?)
}

/// `POST .../{scope}/{key}` `{fingerprint, lock_ms}`.
pub async fn begin(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Path((_, scope, key)): Path<(String, String, String)>,
    caller: Caller,
    Json(body): Json<BeginBody>,
) -> Result<Response, ApiError> {
    let (scope, key) = target(&st, &scope, &key)?;
    let max = st.limits.idempotency_fingerprint_bytes_max;
    if body.fingerprint.is_empty() || body.fingerprint.len() > max {
        return Err(ApiError::invalid(format!("fingerprint must be 1..={max} bytes")));
    }
    lockstep_core::lease::check_ttl(body.lock_ms, &st.limits).map_err(|_| {
        ApiError::invalid(format!(
            "lock_ms must be within {}..={}",
            st.limits.lease_ttl_ms_min, st.limits.lease_ttl_ms_max
        ))
    })?;
    let req = Begin {
        fingerprint: body.fingerprint,
        token: random_id()?,
        lock_ms: body.lock_ms,
        ttl_ms: st.limits.idempotency_ttl_ms,
    };
    let c = st
        .store
        .execute_as::<Began>(
            &ns,
            Command::IdemBegin {
                scope,
                key,
                req,
                app: true,
            },
            &caller.name,
        )
        .await?;
    Ok(match c.answer {
        Began::Started(e) => (
            StatusCode::CREATED,
            axum::Json(wire::idempotency::started(&e.token, c.revision)),
        )
            .into_response(),
        Began::Replay(r) => axum::Json(wire::idempotency::replayed(&r)).into_response(),
    })
}

/// `GET .../{scope}/{key}`: the key's state (`started` with `locked_until`,
/// or `completed` with the stored `response`), never the owner's token; 404
/// when absent, given up or expired.
pub async fn get(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Path((_, scope, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (scope, key) = target(&st, &scope, &key)?;
    let stored = lockstep_core::command::idem_scope(&scope, true);
    let (snapshot, now) = st
        .store
        .read_rows(&ns, vec![RowKey::Idem(stored.clone(), key.clone())])
        .await?;
    let entry = lockstep_core::command::idem_entry(&snapshot, &stored, &key)
        .filter(|e| e.expires_at > now)
        .ok_or_else(|| {
            lockstep_core::Error::NotFound(format!("idempotency key {key:?} of scope {scope:?} is not known"))
        })?;
    Ok(axum::Json(wire::idempotency::key(&scope, &key, &entry, now)).into_response())
}

/// `PUT .../{scope}/{key}` `{token, response}`.
pub async fn complete(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Path((_, scope, key)): Path<(String, String, String)>,
    caller: Caller,
    Json(body): Json<CompleteBody>,
) -> Result<Response, ApiError> {
    let (scope, key) = target(&st, &scope, &key)?;
    check_token(&body.token)?;
    lockstep_core::json::check_value(&body.response, &st.limits)?;
    let response = StoredResponse {
        status: 200,
        content_type: "application/json".into(),
        etag: None,
        body: body.response.to_string(),
    };
    let cmd = Command::IdemComplete {
        scope,
        key,
        token: body.token,
        response,
        app: true,
    };
    let c = st
        .store
        .execute_as::<IdemCompleted>(&ns, cmd, &caller.name)
        .await?;
    Ok(axum::Json(wire::idempotency::completed(c.revision)).into_response())
}

/// `DELETE .../{scope}/{key}` `{token}`: give the key up.
pub async fn give_up(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Path((_, scope, key)): Path<(String, String, String)>,
    caller: Caller,
    Json(body): Json<GiveUpBody>,
) -> Result<Response, ApiError> {
    let (scope, key) = target(&st, &scope, &key)?;
    check_token(&body.token)?;
    let cmd = Command::IdemRelease {
        scope,
        key,
        token: body.token,
        app: true,
    };
    let c = st
        .store
        .execute_as::<IdemReleased>(&ns, cmd, &caller.name)
        .await?;
    let body = lockstep_api::idempotency::IdempotencyGivenUp {
        released: true,
        revision: c.revision,
    };
    Ok(axum::Json(body).into_response())
}
