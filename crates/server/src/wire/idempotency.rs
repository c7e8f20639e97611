//! The application's idempotency store (SPEC §9).

use lockstep_core::idempotency::{IdemEntry, StoredResponse};
use lockstep_core::Millis;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// The body of a stored response as JSON (null if it is not JSON).
fn response_json(r: &StoredResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}

/// `POST` that owns the key: `{state: "started", token, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "IdempotencyStarted")]
pub struct Started<'a> {
    state: &'static str,
    token: &'a str,
    revision: u64,
}

/// The key is this caller's now.
pub fn started(token: &str, revision: u64) -> Started<'_> {
    Started {
        state: "started",
        token,
        revision,
    }
}

/// `POST` of a completed key: `{state: "completed", response}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "IdempotencyReplayed")]
pub struct Replayed {
    state: &'static str,
    response: Value,
}

/// The stored response, replayed.
pub fn replayed(r: &StoredResponse) -> Replayed {
    Replayed {
        state: "completed",
        response: response_json(r),
    }
}

/// `GET`: `{scope, key, expires_at}` with the state's own members.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "IdempotencyKey")]
pub struct Key<'a> {
    scope: &'a str,
    key: &'a str,
    expires_at: String,
    #[serde(flatten)]
    state: KeyState,
}

/// A key's state, never its owner's token.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "IdempotencyKeyState")]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum KeyState {
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

/// The state of an entry at `now`.
pub fn key<'a>(scope: &'a str, key: &'a str, entry: &IdemEntry, now: Millis) -> Key<'a> {
    let state = match &entry.response {
        Some(r) => KeyState::Completed {
            response: response_json(r),
        },
        None => KeyState::Started {
            locked_until: entry.locked_until.to_rfc3339(),
            stale: entry.locked_until <= now,
        },
    };
    Key {
        scope,
        key,
        expires_at: entry.expires_at.to_rfc3339(),
        state,
    }
}

/// `PUT`: `{state: "completed", revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "IdempotencyCompleted")]
pub struct Completed {
    state: &'static str,
    revision: u64,
}

/// The key was completed at `revision`.
pub fn completed(revision: u64) -> Completed {
    Completed {
        state: "completed",
        revision,
    }
}

/// `DELETE`: `{released: true, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "IdempotencyGivenUp")]
pub struct GivenUp {
    /// Always true.
    pub released: bool,
    /// The revision of the write.
    pub revision: u64,
}
