//! `/v1/ns/{ns}/leases/{name}`: leases with owner tokens, compare-and-clear
//! release, fencing and first-come-first-served waiting (SPEC §6).

use crate::extract::{Caller, Json, Name, Ns};
use crate::idempotency::{self, render, run, Idem, Reply};
use crate::{wire, ApiError, AppState};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
pub use lockstep_api::leases::{AcquireBody, ReleaseBody, RenewBody};
use lockstep_core::command::answer::{AcquireAnswer, Broken, Released};
use lockstep_core::lease::{AcquireReq, Lease};
use lockstep_core::{Command, Outcome};
use std::time::Duration;
use tokio::time::Instant;

/// How often a waiting acquire retries when no local release wakes it (a
/// release on another instance, or an expiry).
pub const WAIT_POLL: Duration = Duration::from_millis(25);

/// A fresh random 128-bit identifier, URL-safe: owner tokens, ticket ids.
pub fn random_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
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
            if let Err(e) = self
                .st
                .store
                .execute(&self.ns, cmd, lockstep_core::change::SYSTEM_ACTOR)
                .await
            {
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
                    .execute(
                        &ns,
                        Command::LeaveQueue { name, waiter },
                        lockstep_core::change::SYSTEM_ACTOR,
                    )
                    .await;
            });
        }
    }
}

/// `POST /leases/{name}/acquire`. With `wait_ms` the request queues and retries
/// each time a local release wakes it or every [`WAIT_POLL`]; with an
/// `Idempotency-Key` the granting attempt stores the answer atomically.
pub async fn acquire(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(name): Name,
    caller: Caller,
    Idem(idem): Idem,
    Json(body): Json<AcquireBody>,
) -> Result<Response, ApiError> {
    if body.wait_ms > st.limits.lease_wait_ms_max {
        return Err(ApiError::invalid(format!(
            "wait_ms must be within 0..={}",
            st.limits.lease_wait_ms_max
        )));
    }
    // A waiting acquire counts against its token's waiting acquires.
    let _slot = match body.wait_ms {
        0 => None,
        _ => Some(
            st.quotas
                .waiting(&caller.name, st.limits.token_waiting_acquires_max)?,
        ),
    };
    let keyed = match &idem {
        None => None,
        Some(r) => match idempotency::begin(&st, &ns, &caller.name, r).await? {
            Ok(token) => Some((r.clone(), token)),
            Err(replayed) => return Ok(replayed),
        },
    };
    // If the client goes away while it waits, the key is given up at once.
    let mut key_guard = keyed.as_ref().map(|(r, token)| KeyRelease {
        st: st.clone(),
        ns: ns.clone(),
        caller: caller.name.clone(),
        req: r.clone(),
        token: token.clone(),
        armed: true,
    });
    // An acquire commits at its fence.
    let answer = render(|l: Lease, _| Reply::ok(wire::leases::held(&l, l.fence)));
    // A queued attempt is an intermediate step: the key stays started.
    let completion = keyed.as_ref().map(|(r, token)| {
        idempotency::completion(&caller.name, r, token.clone(), answer.clone(), |o| {
            matches!(o, Outcome::Queued { .. })
        })
    });
    let result = acquire_waiting(&st, &ns, &name, &caller.name, body, completion).await;
    if let Some(g) = key_guard.as_mut() {
        g.armed = false; // answered below: the key is completed or released there
    }
    match result {
        Ok(l) => Ok(answer(&lockstep_store::Committed {
            outcome: Outcome::from(l),
            revision: 0,
        })?
        .into_response()),
        Err(waited) => Err(refused(&st, &ns, &caller.name, keyed, waited).await),
    }
}

/// The refusal of an acquire that ended without the lease; a keyed one's key
/// stores a final refusal, or is given up after a storage failure.
async fn refused(
    st: &AppState,
    ns: &str,
    caller: &str,
    keyed: Option<(idempotency::IdemRequest, String)>,
    waited: Waited,
) -> ApiError {
    match (waited, keyed) {
        (Waited::TimedOut(held), Some((r, token))) => {
            // The final refusal was decided outside a transaction: store it now.
            let e = ApiError::from(held);
            let cmd = Command::IdemComplete {
                scope: idempotency::scope(caller, &r),
                key: r.key.clone(),
                token,
                response: e.stored(),
                app: false,
            };
            let _ = st.store.execute(ns, cmd, caller).await;
            e
        }
        (Waited::TimedOut(held), None) => held.into(),
        (Waited::Failed(e), keyed) => {
            if let (Some((r, token)), "unavailable" | "internal") = (keyed, e.catalogue().1) {
                idempotency::release(st, ns, caller, &r, token).await;
            }
            e
        }
    }
}

/// Gives a keyed acquire's `Idempotency-Key` up when the request ends without
/// an answer (its client went away while it waited), so that a retry with the
/// same key runs at once instead of answering `idempotency_key_in_use` until
/// the key's lock runs out. A key completed meanwhile (the lease was granted
/// as the client left) is not given up: only a started key can be.
struct KeyRelease {
    st: AppState,
    ns: String,
    caller: String,
    req: idempotency::IdemRequest,
    token: String,
    armed: bool,
}

impl Drop for KeyRelease {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (st, ns, caller) = (self.st.clone(), self.ns.clone(), self.caller.clone());
        let (req, token) = (self.req.clone(), self.token.clone());
        tokio::spawn(async move { idempotency::release(&st, &ns, &caller, &req, token).await });
    }
}

/// Why a waiting acquire ended without the lease.
enum Waited {
    /// The wait ran out: the last `lease_held` refusal.
    TimedOut(lockstep_core::Error),
    /// Any other answer (stored with the key when it has one).
    Failed(ApiError),
}

async fn acquire_waiting(
    st: &AppState,
    ns: &str,
    name: &str,
    actor: &str,
    body: AcquireBody,
    completion: Option<lockstep_store::Completion>,
) -> Result<Lease, Waited> {
    let failed = |e: lockstep_store::Error| Waited::Failed(e.into());
    let waits = body.wait_ms > 0;
    let mut req = AcquireReq {
        ttl_ms: body.ttl_ms,
        holder: body.holder,
        token: random_id().map_err(Waited::Failed)?,
        wait: waits.then_some(None),
    };
    let deadline = Instant::now() + Duration::from_millis(body.wait_ms);
    let cmd = |req: &AcquireReq| Command::Acquire {
        name: name.to_owned(),
        req: req.clone(),
    };
    let first = st
        .store
        .execute_completing_as::<AcquireAnswer>(ns, cmd(&req), actor, completion.clone())
        .await
        .map_err(failed)?;
    let (id, mut last) = match first.answer {
        AcquireAnswer::Granted(l) => return Ok(l),
        AcquireAnswer::Queued { id, held } => (id, held),
    };
    let guard = QueueGuard {
        st: st.clone(),
        ns: ns.to_owned(),
        name: name.to_owned(),
        id: Some(id),
    };
    req.wait = Some(Some(id));
    loop {
        let now = Instant::now();
        if now >= deadline {
            guard.leave().await;
            return Err(Waited::TimedOut(last));
        }
        let freed = st.lease_freed.notified();
        tokio::select! {
            _ = freed => {}
            _ = tokio::time::sleep(WAIT_POLL.min(deadline - now)) => {}
        }
        let c = st
            .store
            .execute_completing_as(ns, cmd(&req), actor, completion.clone())
            .await
            .map_err(failed)?;
        match c.answer {
            AcquireAnswer::Granted(l) => {
                let mut guard = guard;
                guard.id = None; // acquiring removed it from the queue
                return Ok(l);
            }
            AcquireAnswer::Queued { held, .. } => last = held,
        }
    }
}

/// `POST /leases/{name}/renew`: 409 `lease_lost` unless the token holds it.
pub async fn renew(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(name): Name,
    caller: Caller,
    Idem(idem): Idem,
    Json(body): Json<RenewBody>,
) -> Result<Response, ApiError> {
    let cmd = Command::Renew {
        name,
        token: body.token,
        ttl_ms: body.ttl_ms,
    };
    let answer = render(|l: Lease, revision| Reply::ok(wire::leases::held(&l, revision)));
    run(&st, &ns, &caller.name, idem, cmd, answer).await
}

/// `POST /leases/{name}/release`: compare-and-clear.
pub async fn release(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(name): Name,
    caller: Caller,
    Idem(idem): Idem,
    Json(body): Json<ReleaseBody>,
) -> Result<Response, ApiError> {
    let answer = render(|Released { released }, revision| {
        Reply::ok(lockstep_api::leases::LeaseReleased { released, revision })
    });
    let resp = run(
        &st,
        &ns,
        &caller.name,
        idem,
        Command::Release {
            name,
            token: body.token,
        },
        answer,
    )
    .await;
    // Local waiters retry at once (a spurious wake-up costs one poll).
    st.lease_freed.notify_waiters();
    resp
}

/// `POST /leases/{name}/break` (admin): clears a live lease whatever its token.
pub async fn break_lease(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(name): Name,
    caller: Caller,
    Idem(idem): Idem,
) -> Result<Response, ApiError> {
    if !caller.admin {
        return Err(lockstep_core::Error::Forbidden("breaking a lease needs the admin role".into()).into());
    }
    let answer = render(|Broken { broken }, revision| {
        Reply::ok(lockstep_api::leases::LeaseBroken { broken, revision })
    });
    let resp = run(&st, &ns, &caller.name, idem, Command::Break { name }, answer).await;
    st.lease_freed.notify_waiters();
    resp
}

/// `GET /leases/{name}`: `{held, holder, acquired_at, expires_at, fence}`.
pub async fn get(State(st): State<AppState>, Ns(ns): Ns, Name(name): Name) -> Result<Response, ApiError> {
    let (lease, now) = st.store.get_lease(&ns, &name).await?;
    Ok(axum::Json(wire::leases::state(&name, lease.as_ref(), now)).into_response())
}
