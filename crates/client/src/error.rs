//! The one error type of the client.

use lockstep_api::problem::{Current, Extensions, Problem};
use serde_json::Value;

/// A failed call.
///
/// ```
/// use lockstep_client::Error;
/// let e = Error::Timeout;
/// assert_eq!(e.code(), None);
/// assert!(e.is_retryable());
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a problem document (SPEC §3). An answer
    /// without one (e.g. a proxy's page) is described by a problem made up
    /// from its status.
    #[error("{status} {}: {}", problem.code, problem.detail)]
    Api {
        /// The HTTP status.
        status: u16,
        /// The problem document.
        problem: Box<Problem>,
    },
    /// No answer: the connection was refused, reset or closed early.
    #[error("transport: {0}")]
    Transport(String),
    /// No answer within the request's timeout.
    #[error("no answer in time")]
    Timeout,
    /// The server answered a 2xx body that does not parse as its type.
    #[error("the answer did not parse: {0}")]
    Decode(String),
    /// `update_with` gave up after its attempts: what it meant to write and
    /// the record it last found.
    #[error("conflict on {key}: the record kept changing")]
    Conflict {
        /// The record key.
        key: String,
        /// The value computed from the last state seen.
        local: Value,
        /// The current record (`None`: absent).
        remote: Option<Current>,
    },
    /// A lease guard lost its lease: a renewal was refused, or none succeeded
    /// before the lease expired.
    #[error("lease {name} lost: {reason}")]
    LeaseLost {
        /// The lease name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A setting of the client is not usable (e.g. the URL or the token).
    #[error("invalid setting: {0}")]
    Config(String),
}

impl Error {
    /// The problem `code` (e.g. `version_mismatch`), if the server answered one.
    ///
    /// ```
    /// # fn f(e: lockstep_client::Error) {
    /// if e.code() == Some("lease_held") { /* someone else has it */ }
    /// # }
    /// ```
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { problem, .. } => Some(&problem.code),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered.
    ///
    /// ```
    /// # fn f(e: lockstep_client::Error) {
    /// let not_found = e.status() == Some(404);
    /// # }
    /// ```
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem document, if the server answered one.
    ///
    /// ```
    /// # fn f(e: lockstep_client::Error) {
    /// if let Some(p) = e.problem() { eprintln!("{}", p.detail) }
    /// # }
    /// ```
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The current record of a `version_mismatch` (or of another failed
    /// precondition): `Some(None)` when the record is absent, `None` when the
    /// error carries no `current`.
    ///
    /// ```
    /// # fn f(e: lockstep_client::Error) {
    /// if let Some(Some(c)) = e.current() { println!("now at version {}", c.version) }
    /// # }
    /// ```
    pub fn current(&self) -> Option<Option<&Current>> {
        match self.problem()?.extensions.as_ref()? {
            Extensions::Current { current } => Some(current.as_ref()),
            Extensions::LeaseHeld { .. } => None,
        }
    }

    /// Whether another attempt may succeed and nothing was applied: 503, 423,
    /// 429, 409 `idempotency_key_in_use`, a connection error or a timeout.
    ///
    /// ```
    /// assert!(lockstep_client::Error::Transport("reset".into()).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, problem } => match status {
                503 | 423 | 429 => true,
                409 => problem.code == "idempotency_key_in_use",
                _ => false,
            },
            Error::Transport(_) | Error::Timeout => true,
            _ => false,
        }
    }

    /// A problem answer made up on the client's side (an answer without a
    /// problem document).
    pub(crate) fn from_status(status: u16, detail: String) -> Error {
        let code = match status {
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            429 => "too_many_requests",
            502..=504 => "unavailable",
            _ => "internal",
        };
        Error::Api {
            status,
            problem: Box::new(Problem {
                // Not the server's: the RFC 9457 default type.
                kind: "about:blank".to_owned(),
                title: code.to_owned(),
                status,
                detail,
                code: code.to_owned(),
                extensions: None,
            }),
        }
    }

    /// A transport error of reqwest: a timeout, or no (whole) answer.
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Error {
        // A body cut short is a transport failure too: the client parses
        // JSON itself, so reqwest's own decode errors are only read errors.
        if e.is_timeout() {
            Error::Timeout
        } else {
            Error::Transport(e.to_string())
        }
    }
}
