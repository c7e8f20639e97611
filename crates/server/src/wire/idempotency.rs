//! The application's idempotency store (SPEC §9): answers built from core
//! types.

use lockstep_api::idempotency::{
    Completed, IdempotencyCompleted, IdempotencyKey, IdempotencyKeyState, IdempotencyReplayed,
    IdempotencyStarted, Started,
};
use lockstep_core::idempotency::{IdemEntry, StoredResponse};
use lockstep_core::Millis;
use serde_json::Value;

/// The body of a stored response as JSON (null if it is not JSON).
fn response_json(r: &StoredResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}

/// The key is this caller's now.
pub fn started(token: &str, revision: u64) -> IdempotencyStarted {
    IdempotencyStarted {
        state: Started::Started,
        token: token.to_owned(),
        revision,
    }
}

/// The stored response, replayed.
pub fn replayed(r: &StoredResponse) -> IdempotencyReplayed {
    IdempotencyReplayed {
        state: Completed::Completed,
        response: response_json(r),
    }
}

/// The state of an entry at `now`.
pub fn key(scope: &str, key: &str, entry: &IdemEntry, now: Millis) -> IdempotencyKey {
    let state = match &entry.response {
        Some(r) => IdempotencyKeyState::Completed {
            response: response_json(r),
        },
        None => IdempotencyKeyState::Started {
            locked_until: entry.locked_until.to_rfc3339(),
            stale: entry.locked_until <= now,
        },
    };
    IdempotencyKey {
        scope: scope.to_owned(),
        key: key.to_owned(),
        expires_at: entry.expires_at.to_rfc3339(),
        state,
    }
}

/// The key was completed at `revision`.
pub fn completed(revision: u64) -> IdempotencyCompleted {
    IdempotencyCompleted {
        state: Completed::Completed,
        revision,
    }
}
