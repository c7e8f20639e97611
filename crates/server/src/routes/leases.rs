//! `/v1/ns/{ns}/leases/{name}`: leases with owner tokens, compare-and-clear
//! release, fencing and first-come-first-served waiting (SPEC §6).

use crate::extract::{Caller, Json, Name, Ns};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_core::lease::{AcquireReq, Lease};
use lockstep_core::{Command, Millis, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// How often a waiting acquire retries when no local release wakes it (a
/// release on another instance, or an expiry).
pub const WAIT_POLL: Duration = Duration::from_millis(25);

/// `acquire` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    ttl_ms: u64,
    holder: Option<String>,
    #[serde(default)]
    wait_ms: u64,
}

/// `renew` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    token: String,
    ttl_ms: u64,
}

/// `release` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    token: String,
}

/// A fresh random 128-bit identifier, URL-safe: owner tokens, ticket ids.
pub fn random_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn time(t: Millis) -> Value {
    Value::from(t.to_rfc3339())
}

/// The answer of acquire and renew.
fn held_json(l: &Lease) -> Value {
    json!({
        "name": l.name, "token": l.token, "fence": l.fence, "holder": l.holder,
        "acquired_at": time(l.acquired_at), "expires_at": time(l.expires_at),
    })
}

/// Leaves the queue if the waiting request ends any other way than acquiring:
/// its deadline passed, it failed, or the client went away (the handler future
/// is dropped). A waiter that cannot leave (crash) lapses after its alive window.
struct QueueGuard {
    st: AppState,
    ns: String,
    name: String,
    id: Option<u64>,
}

impl QueueGuard {
    async fn leave(mut self) {
        if let Some(waiter) = self.id.take() {
            let cmd = Command::LeaveQueue {
                name: self.name.clone(),
                waiter,
            };
            if let Err(e) = self.st.store.execute(&self.ns, cmd, "system").await {
                tracing::warn!(error = %e, "leaving a lease queue failed; the entry will lapse");
            }
        }
    }
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        if let Some(waiter) = self.id.take() {
            let (store, ns, name) = (self.st.store.clone(), self.ns.clone(), self.name.clone());
            tokio::spawn(async move {
                let _ = store
                    .execute(&ns, Command::LeaveQueue { name, waiter }, "system")
                    .await;
            });
        }
    }
}

/// `POST /leases/{name}/acquire`.
pub async fn acquire(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(name): Name,
    caller: Caller,
    Json(body): Json<AcquireBody>,
) -> Result<Response, ApiError> {
    if body.wait_ms > st.limits.lease_wait_ms_max {
        return Err(ApiError::invalid(format!(
            "wait_ms must be within 0..={}",
            st.limits.lease_wait_ms_max
        )));
    }
    let waits = body.wait_ms > 0;
    let mut req = AcquireReq {
        ttl_ms: body.ttl_ms,
        holder: body.holder,
        token: random_id()?,
        wait: waits.then_some(None),
    };
    let deadline = Instant::now() + Duration::from_millis(body.wait_ms);
    let first = st
        .store
        .execute(
            &ns,
            Command::Acquire {
                name: name.clone(),
                req: req.clone(),
            },
            &caller.name,
        )
        .await?;
    let (id, mut last) = match first.outcome {
        Outcome::Lease(l) => return Ok(axum::Json(held_json(&l)).into_response()),
        Outcome::Queued { id, held } => (id, held),
        other => return Err(ApiError::Internal(format!("unexpected outcome {other:?}"))),
    };
    let guard = QueueGuard {
        st: st.clone(),
        ns: ns.clone(),
        name: name.clone(),
        id: Some(id),
    };
    req.wait = Some(Some(id));
    loop {
        let now = Instant::now();
        if now >= deadline {
            guard.leave().await;
            return Err(last.into());
        }
        let freed = st.lease_freed.notified();
        tokio::select! {
            _ = freed => {}
            _ = tokio::time::sleep(WAIT_POLL.min(deadline - now)) => {}
        }
        let c = st
            .store
            .execute(
                &ns,
                Command::Acquire {
                    name: name.clone(),
                    req: req.clone(),
                },
                &caller.name,
            )
            .await?;
        match c.outcome {
            Outcome::Lease(l) => {
                let mut guard = guard;
                guard.id = None; // acquiring removed it from the queue
                return Ok(axum::Json(held_json(&l)).into_response());
            }
            Outcome::Queued { held, .. } => last = held,
            other => return Err(ApiError::Internal(format!("unexpected outcome {other:?}"))),
        }
    }
}

/// `POST /leases/{name}/renew`: 409 `lease_lost` unless the token holds it.
pub async fn renew(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(name): Name,
    caller: Caller,
    Json(body): Json<RenewBody>,
) -> Result<Response, ApiError> {
    let cmd = Command::Renew {
        name,
        token: body.token,
        ttl_ms: body.ttl_ms,
    };
    match st.store.execute(&ns, cmd, &caller.name).await?.outcome {
        Outcome::Lease(l) => Ok(axum::Json(held_json(&l)).into_response()),
        other => Err(ApiError::Internal(format!("unexpected outcome {other:?}"))),
    }
}

/// `POST /leases/{name}/release`: compare-and-clear.
pub async fn release(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(name): Name,
    caller: Caller,
    Json(body): Json<ReleaseBody>,
) -> Result<Response, ApiError> {
    let c = st
        .store
        .execute(
            &ns,
            Command::Release {
                name,
                token: body.token,
            },
            &caller.name,
        )
        .await?;
    match c.outcome {
        Outcome::Released { released } => {
            if released {
                st.lease_freed.notify_waiters();
            }
            Ok(axum::Json(json!({"released": released, "revision": c.revision})).into_response())
        }
        other => Err(ApiError::Internal(format!("unexpected outcome {other:?}"))),
    }
}

/// `POST /leases/{name}/break` (admin): clears a live lease whatever its token.
pub async fn break_lease(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(name): Name,
    caller: Caller,
) -> Result<Response, ApiError> {
    if !caller.admin {
        return Err(lockstep_core::Error::Forbidden("breaking a lease needs the admin role".into()).into());
    }
    let c = st
        .store
        .execute(&ns, Command::Break { name }, &caller.name)
        .await?;
    match c.outcome {
        Outcome::Broken { broken } => {
            if broken {
                st.lease_freed.notify_waiters();
            }
            Ok(axum::Json(json!({"broken": broken, "revision": c.revision})).into_response())
        }
        other => Err(ApiError::Internal(format!("unexpected outcome {other:?}"))),
    }
}

/// `GET /leases/{name}`: `{held, holder, acquired_at, expires_at, fence}`.
pub async fn get(State(st): State<AppState>, Ns(ns): Ns, Name(name): Name) -> Result<Response, ApiError> {
    let (lease, now) = st.store.get_lease(&ns, &name).await?;
    let body = match lease {
        Some(l) if l.live_token(now).is_some() => json!({
            "name": name, "held": true, "holder": l.holder, "acquired_at": time(l.acquired_at),
            "expires_at": time(l.expires_at), "fence": l.fence,
        }),
        other => json!({
            "name": name, "held": false, "holder": null, "acquired_at": null, "expires_at": null,
            "fence": other.map(|l| l.fence),
        }),
    };
    Ok(axum::Json(body).into_response())
}
