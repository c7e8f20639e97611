//! Request extractors that enforce the HTTP conventions of SPEC §3: content type,
//! body size, JSON depth, unknown fields and query parameters, names in paths.
//! Every rejection is an [`ApiError`], so it answers problem+json.

use crate::{ApiError, AppState};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap};
use bytes::Bytes;
use lockstep_core::{names, Limits};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether the request's `Content-Type` is `expected` (parameters ignored).
pub fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(expected))
}

/// Reads the whole body, refusing more than the body limit with 413.
pub async fn read_body(req: Request, limits: &Limits) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limits.body_bytes_max)
        .await
        .map_err(|_| {
            ApiError::Core(lockstep_core::Error::PayloadTooLarge(format!(
                "request body is over the limit of {} bytes",
                limits.body_bytes_max
            )))
        })
}

/// Parses JSON with the nesting depth measured first, so exactly
/// `json_depth_max` levels of value are accepted inside a request wrapper.
pub fn parse_json<T: DeserializeOwned + Serialize>(bytes: &[u8], limits: &Limits) -> Result<T, ApiError> {
    // A request wraps the value in a few levels of its own (a txn op: body,
    // branch list, op, operation): allow for them here; the value itself is
    // checked exactly by the core.
    const WRAPPER_DEPTH: usize = 4;
    if lockstep_core::json::text_depth(bytes) > limits.json_depth_max + WRAPPER_DEPTH {
        return Err(ApiError::invalid(format!(
            "JSON nesting is deeper than {}",
            limits.json_depth_max
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let raw =
        Value::deserialize(&mut de).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    de.end()
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    let invalid = |e: serde_json::Error| ApiError::invalid(format!("invalid JSON body: {e}"));
    // serde lets a struct be written as an array of its fields; our API takes
    // objects only. Where the parsed request is an object, the input must be
    // too. Text without a `[` holds no array: nothing to compare.
    if !bytes.contains(&b'[') {
        return T::deserialize(raw).map_err(invalid);
    }
    let parsed = T::deserialize(&raw).map_err(invalid)?;
    if let Ok(shape) = serde_json::to_value(&parsed) {
        if let Some(path) = array_for_object(&raw, &shape, String::new()) {
            return Err(ApiError::invalid(format!(
                "invalid JSON body: expected an object at {path:?}"
            )));
        }
    }
    Ok(parsed)
}

/// The JSON pointer of the first place where `input` has an array and `parsed`
/// (the request re-serialized) has an object.
fn array_for_object(input: &Value, parsed: &Value, at: String) -> Option<String> {
    match (input, parsed) {
        (Value::Array(_), Value::Object(_)) => Some(if at.is_empty() { "/".into() } else { at }),
        (Value::Object(i), Value::Object(p)) => i.iter().find_map(|(k, v)| {
            p.get(k)
                .and_then(|pv| array_for_object(v, pv, format!("{at}/{k}")))
        }),
        (Value::Array(i), Value::Array(p)) => i
            .iter()
            .zip(p)
            .enumerate()
            .find_map(|(n, (iv, pv))| array_for_object(iv, pv, format!("{at}/{n}"))),
        _ => None,
    }
}

/// A JSON body (`Content-Type: application/json`) with unknown fields refused.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Serialize> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !content_type_is(req.headers(), "application/json") {
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        let bytes = read_body(req, &state.limits).await?;
        parse_json(&bytes, &state.limits).map(Json)
    }
}

/// Query parameters, unknown ones refused (400).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(q)
            .map(Query)
            .map_err(|e| ApiError::invalid(format!("invalid query: {e}")))
    }
}

/// Path parameters, decoded, with a rejection that answers 400.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::invalid(format!("invalid path: {e}")))
    }
}

/// A validated namespace from the path.
pub struct Ns(pub String);

impl FromRequestParts<AppState> for Ns {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let ns = path_param(parts, "ns").await?.unwrap_or_default();
        names::validate_namespace(&ns)?;
        Ok(Ns(ns))
    }
}

/// The percent-decoded path parameter `name` of the matched route, if it has one.
pub async fn path_param(parts: &mut Parts, name: &str) -> Result<Option<String>, ApiError> {
    let params = axum::extract::RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|e| ApiError::invalid(format!("invalid path: {e}")))?;
    let Some((_, raw)) = params.iter().find(|(k, _)| *k == name) else {
        return Ok(None);
    };
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| Some(s.into_owned()))
        .map_err(|_| ApiError::invalid(format!("invalid path: {name} is not UTF-8")))
}

async fn path_name(parts: &mut Parts, state: &AppState, param: &str) -> Result<String, ApiError> {
    let name = path_param(parts, param).await?.unwrap_or_default();
    names::validate_key(&name, &state.limits)?;
    Ok(name)
}

/// A validated record key from the path (raw or percent-encoded).
pub struct Key(pub String);

impl FromRequestParts<AppState> for Key {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        path_name(parts, state, "key").await.map(Key)
    }
}

/// A validated lease, gate or feed name from the path (percent-encoded).
pub struct Name(pub String);

impl FromRequestParts<AppState> for Name {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        path_name(parts, state, "name").await.map(Name)
    }
}

/// Who is calling: the token the auth middleware ([`crate::auth::check`])
/// accepted, or in open mode (no tokens, loopback only) an admin named
/// `anonymous` (SPEC §15).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token name recorded in the change log.
    pub name: String,
    /// Whether the caller may use admin-only features (`force`, namespace delete).
    pub admin: bool,
    /// The claims of the capability the caller presented, if it is one: its
    /// ticket operations carry the capability's epoch and expiry.
    pub capability: Option<lockstep_core::capability::Claims>,
}

impl Caller {
    /// What a ticket command must still check for the caller's capability.
    pub fn capability_check(&self) -> Option<lockstep_core::capability::CapabilityCheck> {
        self.capability
            .as_ref()
            .map(lockstep_core::capability::Claims::check)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        // Every route that names a caller has an access rule, so the middleware
        // has put one here; without it the request is refused, never let in.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("this request needs a bearer token".into()))
    }
}
