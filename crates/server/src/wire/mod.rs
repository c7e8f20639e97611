//! Wire shapes: how core types are written as JSON. Only the server knows them.

use axum::http::HeaderValue;
use lockstep_core::txn::{OpResult, TxnResult};
use lockstep_core::{Millis, Record};
use serde_json::{json, Value};

fn time(t: Millis) -> Value {
    Value::from(t.to_rfc3339())
}

/// `{key, value, version, created_at, updated_at, expires_at}`.
pub fn record(r: &Record) -> Value {
    json!({
        "key": r.key,
        "value": r.value,
        "version": r.version,
        "created_at": time(r.created_at),
        "updated_at": time(r.updated_at),
        "expires_at": r.expires_at.map(time),
    })
}

/// The strong entity tag of a version: `"N"`.
pub fn etag(version: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// `{succeeded, failed, results, revision}` (SPEC §5, §15).
pub fn txn(t: &TxnResult, revision: u64) -> Value {
    let results: Vec<Value> = t
        .results
        .iter()
        .map(|r| match r {
            OpResult::Get(None) => Value::Null,
            OpResult::Get(Some(r)) | OpResult::Written(r) => {
                json!({"key": r.key, "value": r.value, "version": r.version})
            }
            OpResult::Delete { key, deleted } => json!({"key": key, "deleted": deleted}),
        })
        .collect();
    json!({"succeeded": t.succeeded, "failed": t.failed, "results": results, "revision": revision})
}
