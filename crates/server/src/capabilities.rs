//! Capability keys and minting (SPEC §11, seeds/001): `POST
//! /v1/ns/{ns}/gates/{id}/capabilities` signs a capability for one gate at its
//! current epoch. The keys come from the config (`[capabilities] keys`, the
//! first signs, all verify); without any, one key is generated once and
//! stored in the database, so every instance over one PostgreSQL shares it.

use crate::extract::{Caller, Json, Name, Ns};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
pub use lockstep_api::gates::MintBody;
use lockstep_core::capability::{self, CapOp, Claims};
use lockstep_core::gate::GateState;
use lockstep_core::{Row, RowKey};
use lockstep_store::Store;

/// The name of the generated key in the database's settings.
const STORED_KEY: &str = "capability_key";

/// The keys capabilities are signed and verified with.
#[derive(Debug, Default)]
pub struct CapabilityKeys {
    configured: Vec<Vec<u8>>,
    stored: tokio::sync::OnceCell<Vec<u8>>,
}

impl CapabilityKeys {
    /// Keys from the config; each must be at least
    /// [`capability::KEY_BYTES_MIN`] bytes. None configured: the stored key.
    pub fn new(configured: &[String]) -> Result<CapabilityKeys, String> {
        if let Some(short) = configured
            .iter()
            .position(|k| k.len() < capability::KEY_BYTES_MIN)
        {
            return Err(format!(
                "capabilities.keys[{short}] is shorter than {} bytes; make one with `openssl rand -base64 48`",
                capability::KEY_BYTES_MIN
            ));
        }
        Ok(CapabilityKeys {
            configured: configured.iter().map(|k| k.as_bytes().to_vec()).collect(),
            stored: tokio::sync::OnceCell::new(),
        })
    }

    /// The keys in force, the signing one first.
    pub async fn get(&self, store: &Store) -> Result<Vec<Vec<u8>>, ApiError> {
        if !self.configured.is_empty() {
            return Ok(self.configured.clone());
        }
        let key = self
            .stored
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
                let stored = store
                    .setting_or_insert(STORED_KEY, &URL_SAFE_NO_PAD.encode(fresh))
                    .await?;
                URL_SAFE_NO_PAD
                    .decode(stored)
                    .map_err(|_| ApiError::Internal("the stored capability key is not base64url".into()))
            })
            .await?;
        Ok(vec![key.clone()])
    }
}

/// `POST /gates/{id}/capabilities {ttl_ms, ops?}` (writer): 201 `{capability,
/// expires_at, epoch, gate, ops}`. 404 for a missing gate, 410 for a revoked or
/// deleted one. Minting writes nothing.
pub async fn mint(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(gate): Name,
    caller: Caller,
    Json(body): Json<MintBody>,
) -> Result<Response, ApiError> {
    if caller.capability.is_some() {
        return Err(lockstep_core::Error::Forbidden("a capability cannot mint capabilities".into()).into());
    }
    let max = st.limits.capability_ttl_ms_max;
    if !(1_000..=max).contains(&body.ttl_ms) {
        return Err(ApiError::invalid(format!("ttl_ms must be within 1000..={max}")));
    }
    let mut ops = body.ops.unwrap_or_else(|| CapOp::ALL.to_vec());
    ops.sort();
    ops.dedup();
    if ops.is_empty() {
        return Err(ApiError::invalid("ops must name at least one ticket operation"));
    }
    let key = RowKey::Gate(gate.clone());
    let (snapshot, now) = st.store.read_rows(&ns, vec![key.clone()]).await?;
    let g = match snapshot.get(&key) {
        Some(Some(Row::Gate(g))) => g.clone(),
        _ => return Err(lockstep_core::Error::NotFound(format!("gate {gate:?} does not exist")).into()),
    };
    if matches!(g.state, GateState::Revoked | GateState::Deleted) {
        return Err(
            lockstep_core::Error::GateClosed(format!("gate {gate:?} is {}", g.state.as_str())).into(),
        );
    }
    let expires_at = now.plus_ms(body.ttl_ms);
    let claims = Claims {
        ns,
        gate,
        epoch: g.epoch,
        ops,
        exp: expires_at.0,
    };
    let keys = st.capability_keys.get(&st.store).await?;
    let signing = keys
        .first()
        .ok_or_else(|| ApiError::Internal("no capability key".into()))?;
    let token = capability::sign(&claims, signing)?;
    let answer = lockstep_api::gates::Capability {
        capability: token,
        expires_at: expires_at.to_rfc3339(),
        epoch: claims.epoch,
        ops: claims.ops,
        gate: claims.gate,
    };
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}
