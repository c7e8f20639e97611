//! The application's idempotency store (SPEC §9).
//!
//! ```
//! use lockstep_api::idempotency::Begun;
//! let b: Begun = serde_json::from_str(r#"{"state":"completed","response":{"ok":true}}"#).unwrap();
//! assert!(matches!(b, Begun::Completed(r) if r.response["ok"] == true));
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST` of a key that is now the caller's: `{state: "started", token, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IdempotencyStarted {
    /// Always `started`.
    pub state: Started,
    /// The owner token: complete or abandon with it.
    pub token: String,
    /// The revision of the write.
    pub revision: u64,
}

/// The `state` of a key the caller owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "IdempotencyStartedState")]
pub enum Started {
    /// Begun and locked for the caller.
    Started,
}

/// The `state` of a key with a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "IdempotencyCompletedState")]
pub enum Completed {
    /// Done: the response is stored.
    Completed,
}

/// `POST` of a completed key: `{state: "completed", response}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IdempotencyReplayed {
    /// Always `completed`.
    pub state: Completed,
    /// The stored response (null if it was not JSON).
    pub response: Value,
}

/// The answer of a begin: the key is the caller's (201), or its stored
/// response (200). Parses either body by its `state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Begun {
    /// The key is the caller's now.
    Started(IdempotencyStarted),
    /// The key was completed before.
    Completed(IdempotencyReplayed),
}

/// `GET`: `{scope, key, expires_at}` with the state's own members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IdempotencyKey {
    /// The scope.
    pub scope: String,
    /// The key.
    pub key: String,
    /// RFC 3339: when the entry is forgotten.
    pub expires_at: String,
    /// Its state.
    #[serde(flatten)]
    pub state: IdempotencyKeyState,
}

/// A key's state, never its owner's token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum IdempotencyKeyState {
    /// Completed: the stored response.
    Completed {
        /// The response as JSON.
        response: Value,
    },
    /// Started: until when it is locked, and whether the lock ran out (the
    /// next begin takes it over).
    Started {
        /// RFC 3339.
        locked_until: String,
        /// Past its lock.
        stale: bool,
    },
}

/// `PUT`: `{state: "completed", revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IdempotencyCompleted {
    /// Always `completed`.
    pub state: Completed,
    /// The revision of the write.
    pub revision: u64,
}

/// `DELETE`: `{released: true, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IdempotencyGivenUp {
    /// Always true.
    pub released: bool,
    /// The revision of the write.
    pub revision: u64,
}

/// `POST /idempotency/{scope}/{key}` body: `{fingerprint, lock_ms}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginBody {
    /// What the request was: a begin with another fingerprint is refused (422).
    #[schemars(length(min = 1, max = 1024))]
    #[schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    pub fingerprint: String,
    /// How long the key stays locked for the caller.
    #[schemars(range(min = 100, max = 86_400_000))]
    pub lock_ms: u64,
}

/// `PUT /idempotency/{scope}/{key}` body: `{token, response}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The owner token of the begin.
    #[schemars(length(min = 1))]
    #[schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    pub token: String,
    /// The response to replay.
    pub response: Value,
}

/// `DELETE /idempotency/{scope}/{key}` body: `{token}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GiveUpBody {
    /// The owner token of the begin.
    #[schemars(length(min = 1))]
    #[schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    pub token: String,
}
