//! Wire shapes: the server's side of the `lockstep-api` types. Each module
//! builds the answers of one resource from core types; the types themselves
//! (and the request bodies) live in `lockstep-api`, shared with the client.
//! problem+json documents are filled in by `error.rs` alone.

pub mod changes;
pub mod feeds;
pub mod gates;
pub mod idempotency;
pub mod leases;
pub mod openapi;
pub mod records;

pub use lockstep_api::Page;

use crate::ApiError;
use axum::http::HeaderValue;
use lockstep_core::Millis;
use serde::Serialize;
use serde_json::Value;

/// A time as RFC 3339 text.
pub fn time(t: Millis) -> String {
    t.to_rfc3339()
}

/// The strong entity tag of a version: `"N"`.
pub fn etag(version: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// A wire shape as a JSON value (what a keyed request stores).
pub fn to_value(body: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(body).map_err(|e| ApiError::Internal(format!("an answer did not serialize: {e}")))
}
