//! CORS (SPEC §11): browsers on the configured origins call the API directly,
//! typically the ticket routes with a capability. Preflight `OPTIONS` requests
//! are answered by tower-http's layer as the Fetch standard says; with no
//! origin configured no CORS header is ever sent.

use axum::http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The request headers a browser may send.
const ALLOWED_HEADERS: [&str; 8] = [
    "authorization",
    "content-type",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "last-event-id",
    "x-request-id",
    "accept",
];

/// The answer headers a browser's script may read.
const EXPOSED_HEADERS: [&str; 5] = [
    "etag",
    "idempotent-replayed",
    "retry-after",
    "x-request-id",
    "www-authenticate",
];

/// The CORS layer for `origins` (`*` allows any origin); `None` when none is
/// configured. An origin that is not a valid header value is an error.
pub fn layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| format!("cors.allowed_origins: {o:?} is not an origin"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    let names = |list: &[&str]| -> Vec<HeaderName> {
        list.iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect()
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(names(&ALLOWED_HEADERS))
            .expose_headers(names(&EXPOSED_HEADERS))
            .max_age(std::time::Duration::from_secs(600))
            .vary([header::ORIGIN]),
    ))
}
