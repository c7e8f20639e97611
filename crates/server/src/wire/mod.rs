//! Wire shapes: every JSON body the server answers is built here, from core
//! types, as `#[derive(Serialize)]` structs (one module per resource). Only
//! the server knows them; problem+json documents are shaped here and filled in
//! by `error.rs` alone.

pub mod changes;
pub mod feeds;
pub mod gates;
pub mod idempotency;
pub mod leases;
pub mod openapi;
pub mod problem;
pub mod records;
pub mod system;

use crate::ApiError;
use axum::http::HeaderValue;
use lockstep_core::Millis;
use schemars::JsonSchema;
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

/// `{…, next_cursor}`: one page of a listing, its items under their name.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    /// The items, under the listing's name.
    #[serde(flatten)]
    pub items: T,
    /// The cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}
