//! The server's error enum and its single mapping to RFC 9457 problem+json.
//! Every status and stable `code` of SPEC §3 is decided here and nowhere else;
//! the conversion has no side effects.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lockstep_api::problem::{Current as CurrentBody, Extensions, Problem};

/// Every refusal the HTTP API answers.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A semantic refusal from the core.
    #[error(transparent)]
    Core(#[from] lockstep_core::Error),
    /// No bearer token, or one that is not known (401, `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// Storage unreachable or overloaded.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data (logged; answered as 500 without details).
    #[error("internal error: {0}")]
    Internal(String),
    /// Wrong `Content-Type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No such route.
    #[error("no such route")]
    NoRoute,
}

impl From<lockstep_store::Error> for ApiError {
    fn from(e: lockstep_store::Error) -> Self {
        match e {
            lockstep_store::Error::Core(c) => ApiError::Core(c),
            lockstep_store::Error::Unavailable(s) => {
                // The cause (PostgreSQL's own message) goes to the log only.
                tracing::warn!(cause = %s, "storage unavailable: answering 503");
                ApiError::Unavailable(s)
            }
            lockstep_store::Error::Config(s) | lockstep_store::Error::Internal(s) => {
                tracing::error!(error = %s, "internal storage error");
                ApiError::Internal(s)
            }
        }
    }
}

impl ApiError {
    /// Shorthand for a 400 `invalid_request`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        ApiError::Core(lockstep_core::Error::invalid(detail))
    }

    /// The status, stable code and title: the catalogue of SPEC §3.
    pub fn catalogue(&self) -> (StatusCode, &'static str, &'static str) {
        use lockstep_core::Error as C;
        match self {
            ApiError::Core(c) => match c {
                C::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request", "Invalid request"),
                C::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
                C::TooManyRequests(_) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "Too many requests",
                ),
                C::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
                C::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", "Not found"),
                C::VersionMismatch { .. } => (StatusCode::CONFLICT, "version_mismatch", "Version mismatch"),
                C::PatchTestFailed { .. } => (StatusCode::CONFLICT, "patch_test_failed", "Patch test failed"),
                C::PreconditionFailed { .. } => (
                    StatusCode::PRECONDITION_FAILED,
                    "precondition_failed",
                    "Precondition failed",
                ),
                C::PayloadTooLarge(_) => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Payload too large",
                ),
                C::InvalidPatch(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_patch", "Invalid patch"),
                C::LeaseHeld { .. } => (StatusCode::CONFLICT, "lease_held", "Lease held"),
                C::LeaseLost(_) => (StatusCode::CONFLICT, "lease_lost", "Lease lost"),
                C::TicketConflict(_) => (StatusCode::CONFLICT, "ticket_conflict", "Ticket conflict"),
                C::InvalidTransition(_) => (StatusCode::CONFLICT, "invalid_transition", "Invalid transition"),
                C::GateClosed(_) => (StatusCode::GONE, "gate_closed", "Gate closed"),
                C::GatePaused(_) => (StatusCode::LOCKED, "gate_paused", "Gate paused"),
                C::Compacted { .. } => (StatusCode::GONE, "compacted", "Compacted"),
                C::IdempotencyKeyInUse(_) => (
                    StatusCode::CONFLICT,
                    "idempotency_key_in_use",
                    "Idempotency key in use",
                ),
                C::IdempotencyKeyReused(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "Idempotency key reused",
                ),
            },
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "not_found", "Not found"),
        }
    }

    /// Extension members (e.g. `current`).
    fn extensions(&self) -> Option<Extensions> {
        use lockstep_core::Error as C;
        match self {
            ApiError::Core(
                C::VersionMismatch { current: c, .. }
                | C::PatchTestFailed { current: c, .. }
                | C::PreconditionFailed { current: c, .. },
            ) => Some(Extensions::Current {
                current: c.as_ref().map(|c| CurrentBody {
                    version: c.version,
                    value: c.value.clone(),
                }),
            }),
            ApiError::Core(C::LeaseHeld {
                holder,
                expires_at,
                waiters,
            }) => Some(Extensions::LeaseHeld {
                holder: holder.clone(),
                expires_at: expires_at.map(|t| t.to_rfc3339()),
                waiters: *waiters,
            }),
            _ => None,
        }
    }
}

/// Every stable `code` a problem can carry (SPEC §3), as [`ApiError::catalogue`]
/// answers them: the enum of `code` in the OpenAPI document.
pub use lockstep_api::problem::CODES;

/// Seconds a client should wait before retrying an `unavailable` answer.
pub const RETRY_AFTER_S: u64 = 1;

impl ApiError {
    /// The status and the problem document: the one rendering of every refusal.
    pub fn problem(&self) -> (StatusCode, Problem) {
        let (status, code, title) = self.catalogue();
        let detail = match self {
            ApiError::Internal(_) => "an internal error occurred; see the server log".to_owned(),
            ApiError::Unavailable(_) => {
                "storage is unreachable or overloaded; nothing was applied; retry after Retry-After"
                    .to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            kind: format!("urn:lockstep:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            extensions: self.extensions(),
        };
        (status, problem)
    }

    /// The status and the problem+json text (also the data of a watch's
    /// `error` event).
    pub fn problem_json(&self) -> (StatusCode, String) {
        let (status, problem) = self.problem();
        // Strings, numbers and JSON values always serialize.
        let body = serde_json::to_string(&problem).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"urn:lockstep:problem:internal","status":{}}}"#,
                status.as_u16()
            )
        });
        (status, body)
    }

    /// The refusal as an idempotency key stores it.
    pub fn stored(&self) -> lockstep_core::idempotency::StoredResponse {
        let (status, body) = self.problem_json();
        lockstep_core::idempotency::StoredResponse {
            status: status.as_u16(),
            content_type: "application/problem+json".into(),
            etag: None,
            body,
        }
    }

    /// The answer of a store error seen by reference (inside a transaction).
    pub fn from_store_ref(e: &lockstep_store::Error) -> ApiError {
        match e {
            lockstep_store::Error::Core(c) => ApiError::Core(c.clone()),
            lockstep_store::Error::Unavailable(s) => ApiError::Unavailable(s.clone()),
            lockstep_store::Error::Config(s) | lockstep_store::Error::Internal(s) => {
                ApiError::Internal(s.clone())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.problem_json();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lockstep\""),
            );
        }
        // Refusals that invite a retry say when.
        if matches!(
            self.catalogue().1,
            "unavailable" | "idempotency_key_in_use" | "gate_paused" | "too_many_requests"
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
        }
        resp
    }
}
