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
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// The items, under the listing's name.
    #[serde(flatten)]
    pub items: T,
    /// The cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }

    /// JSON shapes are built in `wire/` only, and problem documents are
    /// rendered in `error.rs` only.
    #[test]
    fn shapes_live_in_wire_and_problems_in_error_rs() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        for f in files {
            let rel = f
                .strip_prefix(&src)
                .unwrap_or(&f)
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{rel}: {e}"));
            if !rel.starts_with("wire/") {
                assert!(
                    !text.contains(concat!("json", "!")),
                    "{rel} builds JSON outside wire/"
                );
            }
            if rel != "error.rs" {
                let problem = concat!("urn:lockstep:", "problem");
                assert!(
                    !text.contains(problem),
                    "{rel} renders a problem outside error.rs"
                );
            }
        }
    }
}
