//! The `Idempotency-Key` header on every mutating endpoint (SPEC §9), and the
//! one executor every mutating handler calls.
//!
//! A keyed request runs in **one storage transaction** (a [`Completion`] with
//! `begin`): it locks the key, begins it (new → started and owned by this
//! request; completed with the same fingerprint → replay, the command does not
//! run; started by another → 409 `idempotency_key_in_use`; another request →
//! 422 `idempotency_key_reused`), runs its command and writes the rendered
//! answer into the key **in the same transaction as the command's effect**.
//! That is why a crash between effect and response cannot happen: both commit
//! or neither does, and after a crash the retry finds neither. Only a waiting
//! lease acquire, which spans several transactions, begins its key on its own
//! first; a key it leaves started (its process died) is taken over by a retry
//! once the lock (90 s) runs out.

use crate::{ApiError, AppState};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lockstep_core::command::Answer;
use lockstep_core::idempotency::{self, Began, Begin, StoredResponse};
use lockstep_core::{Command, Outcome};
use lockstep_store::{Committed, Completion, Finish};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A keyed request, found by [`fingerprint`] before the handler runs.
#[derive(Debug, Clone)]
pub struct IdemRequest {
    /// The parsed key.
    pub key: String,
    /// SHA-256 of method, path, query, precondition headers, media type and body.
    pub fingerprint: String,
    /// Method and concrete path (the scope's endpoint).
    pub endpoint: String,
}

/// A successful answer, as handlers build it and keys store it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Value,
    /// `ETag` version, for records.
    pub etag: Option<u64>,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: impl Serialize) -> Result<Reply, ApiError> {
        Reply::with(StatusCode::OK, body)
    }

    /// 201 when `created`, else 200, with `body`.
    pub fn created(created: bool, body: impl Serialize) -> Result<Reply, ApiError> {
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Reply::with(status, body)
    }

    fn with(status: StatusCode, body: impl Serialize) -> Result<Reply, ApiError> {
        Ok(Reply {
            status,
            body: crate::wire::to_value(&body)?,
            etag: None,
        })
    }

    /// The same answer with `ETag` of `version`.
    pub fn with_etag(self, version: u64) -> Reply {
        Reply {
            etag: Some(version),
            ..self
        }
    }

    fn stored(&self) -> StoredResponse {
        StoredResponse {
            status: self.status.as_u16(),
            content_type: "application/json".into(),
            etag: self.etag.map(|v| format!("\"{v}\"")),
            body: self.body.to_string(),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some(v) = self.etag {
            resp.headers_mut().insert(header::ETAG, crate::wire::etag(v));
        }
        resp
    }
}

/// How a handler turns its command's outcome into an answer.
pub type Renderer = Arc<dyn Fn(&Committed) -> Result<Reply, ApiError> + Send + Sync>;

/// The renderer of a command whose typed answer is `A`: `f` gets the answer
/// and the revision it committed at. An answer of another type is an internal
/// error, decided in one place (`lockstep_store::answer`).
pub fn render<A: Answer>(f: impl Fn(A, u64) -> Result<Reply, ApiError> + Send + Sync + 'static) -> Renderer {
    Arc::new(move |c: &Committed| f(c.answer::<A>()?, c.revision))
}

/// Answers that applied nothing and invite a retry are not stored (SPEC §15).
fn storable(e: &ApiError) -> bool {
    let (status, code, _) = e.catalogue();
    status.as_u16() < 500 && code != "idempotency_key_in_use" && code != "gate_paused"
}

fn replay(r: StoredResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, r.body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&r.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(Ok(v)) = r.etag.as_deref().map(HeaderValue::from_str) {
        h.insert(header::ETAG, v);
    }
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// The extension extractor: the keyed request, if the header was sent.
pub struct Idem(pub Option<IdemRequest>);

impl FromRequestParts<AppState> for Idem {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Ok(Idem(parts.extensions.get::<IdemRequest>().cloned()))
    }
}

/// Middleware: on a mutating request with `Idempotency-Key`, parses the key and
/// fingerprints method, path and body (the body is put back for the handler).
pub async fn fingerprint(State(st): State<AppState>, req: Request, next: Next) -> Result<Response, ApiError> {
    let mutating = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let Some(raw) = req.headers().get("idempotency-key").filter(|_| mutating) else {
        return Ok(next.run(req).await);
    };
    let key = idempotency::parse_key(
        raw.to_str()
            .map_err(|_| ApiError::invalid("malformed Idempotency-Key"))?,
    )?;
    let (mut parts, body) = req.into_parts();
    // Read one byte past the limit: the handler's own extractor answers 413.
    let bytes = axum::body::to_bytes(body, st.limits.body_bytes_max + 1)
        .await
        .map_err(|_| {
            ApiError::Core(lockstep_core::Error::PayloadTooLarge(format!(
                "request body is over the limit of {} bytes",
                st.limits.body_bytes_max
            )))
        })?;
    let endpoint = format!("{} {}", parts.method, parts.uri.path());
    // Everything that changes what the request asks for: the query (e.g.
    // `expected_version`), the precondition headers, the media type, the body.
    let mut h = Sha256::new();
    h.update(endpoint.as_bytes());
    h.update([0u8]);
    h.update(parts.uri.query().unwrap_or_default().as_bytes());
    for name in [header::IF_MATCH, header::IF_NONE_MATCH, header::CONTENT_TYPE] {
        h.update([0u8]);
        h.update(
            parts
                .headers
                .get(&name)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default(),
        );
    }
    h.update([0u8]);
    h.update(&bytes);
    let fingerprint = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    parts.extensions.insert(IdemRequest {
        key,
        fingerprint,
        endpoint,
    });
    Ok(next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await)
}

/// The scope of a keyed request: namespace (the store's), token and endpoint.
pub fn scope(caller: &str, req: &IdemRequest) -> String {
    format!("http\u{1f}{caller}\u{1f}{}", req.endpoint)
}

/// Begins a keyed request: `Ok(token)` when this request owns the key now,
/// `Err(response)` to answer at once (replay or refusal).
pub async fn begin(
    st: &AppState,
    ns: &str,
    caller: &str,
    req: &IdemRequest,
) -> Result<Result<String, Response>, ApiError> {
    let token = crate::routes::leases::random_id()?;
    let cmd = Command::IdemBegin {
        scope: scope(caller, req),
        key: req.key.clone(),
        req: Begin {
            fingerprint: req.fingerprint.clone(),
            token: token.clone(),
            lock_ms: st.limits.idempotency_lock_ms,
            ttl_ms: st.limits.idempotency_ttl_ms,
        },
        app: false,
    };
    match st.store.execute_as::<Began>(ns, cmd, caller).await?.answer {
        Began::Started(_) => Ok(Ok(token)),
        Began::Replay(r) => Ok(Err(replay(r))),
    }
}

/// The completion of a keyed request whose answers come from `render`;
/// `keep` decides which successful outcomes are intermediate (not stored).
pub fn completion(
    caller: &str,
    req: &IdemRequest,
    token: String,
    render: Renderer,
    keep: fn(&Outcome) -> bool,
) -> Completion {
    Completion {
        scope: scope(caller, req),
        key: req.key.clone(),
        token,
        begin: None,
        render: Arc::new(move |answer| match answer {
            Ok(c) if keep(&c.outcome) => Finish::Keep,
            Ok(c) => match render(c) {
                Ok(reply) => Finish::Store(reply.stored()),
                Err(e) if storable(&e) => Finish::Store(e.stored()),
                Err(_) => Finish::Release,
            },
            Err(e) => {
                let e = ApiError::from_store_ref(e);
                if storable(&e) {
                    Finish::Store(e.stored())
                } else {
                    Finish::Release
                }
            }
        }),
    }
}

/// Gives a key up after an answer that was not stored with the command (a
/// storage failure): best effort, else its lock runs out.
pub async fn release(st: &AppState, ns: &str, caller: &str, req: &IdemRequest, token: String) {
    let cmd = Command::IdemRelease {
        scope: scope(caller, req),
        key: req.key.clone(),
        token,
        app: false,
    };
    let _ = st.store.execute(ns, cmd, caller).await;
}

/// Runs a mutating command: with an `Idempotency-Key`, begins the key, runs the
/// command completing the key atomically, and answers (or replays).
pub async fn run(
    st: &AppState,
    ns: &str,
    caller: &str,
    idem: Option<IdemRequest>,
    cmd: Command,
    render: Renderer,
) -> Result<Response, ApiError> {
    let Some(req) = idem else {
        let c = st.store.execute(ns, cmd, caller).await?;
        return Ok(render(&c)?.into_response());
    };
    // One transaction: begin the key, run the command, store the answer.
    let token = crate::routes::leases::random_id()?;
    let mut cp = completion(caller, &req, token.clone(), render.clone(), |_| false);
    cp.begin = Some(Begin {
        fingerprint: req.fingerprint.clone(),
        token,
        lock_ms: st.limits.idempotency_lock_ms,
        ttl_ms: st.limits.idempotency_ttl_ms,
    });
    // A failure (5xx) rolls the whole transaction back, key included: a retry
    // simply runs again.
    let c = st.store.execute_completing(ns, cmd, caller, Some(cp)).await?;
    match c.outcome {
        // The key was completed before: its stored answer, not the command's.
        Outcome::IdemBegun(Began::Replay(r)) => Ok(replay(r)),
        _ => Ok(render(&c)?.into_response()),
    }
}
