//! HTTP metrics and the request log: every request is counted and timed under
//! its route template (never its concrete path, which holds keys), refusals at
//! the door are counted by token name, and one structured log line says what
//! was served. `X-Request-Id` is taken from the request (or made) and echoed.

use crate::extract::Caller;
use crate::routes::leases::random_id;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use lockstep_store::metrics::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Upper bounds of the latency histogram, in microseconds.
const LATENCY_US: &[u64] = &[
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000,
];

/// Who a response was for: the caller's name, put on the response by the
/// authentication middleware (absent when no token was accepted).
#[derive(Debug, Clone)]
pub struct ServedTo(pub String);

/// Request counters, latencies and refusals.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// By route template. Looked up by `&str`: counting a request of a route
    /// seen before allocates nothing.
    routes: Mutex<BTreeMap<String, RouteStats>>,
    refused: Mutex<BTreeMap<(u16, String), u64>>,
    in_flight: AtomicI64,
}

/// What one route template has served.
#[derive(Debug, Default)]
struct RouteStats {
    /// Requests by method and status (a handful per route: scanned).
    counts: Vec<(String, u16, u64)>,
    /// Latency by status class.
    latency: BTreeMap<&'static str, Histogram>,
}

impl RouteStats {
    fn count(&mut self, method: &str, status: u16) {
        match self
            .counts
            .iter_mut()
            .find(|(m, s, _)| *s == status && m == method)
        {
            Some((_, _, n)) => *n += 1,
            None => self.counts.push((method.to_owned(), status, 1)),
        }
    }
}

fn class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl HttpMetrics {
    fn record(&self, method: &str, route: &str, status: u16, micros: u64, token: &str) {
        if let Ok(mut m) = self.routes.lock() {
            if !m.contains_key(route) {
                m.insert(route.to_owned(), RouteStats::default());
            }
            if let Some(stats) = m.get_mut(route) {
                stats.count(method, status);
                stats
                    .latency
                    .entry(class(status))
                    .or_insert_with(|| Histogram::new(LATENCY_US))
                    .observe(micros);
            }
        }
        if matches!(status, 401 | 403 | 429) {
            if let Ok(mut m) = self.refused.lock() {
                *m.entry((status, token.to_owned())).or_default() += 1;
            }
        }
    }

    /// Appends the Prometheus text of the HTTP metrics.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP lockstep_http_requests_total HTTP requests by route and status.\n# TYPE lockstep_http_requests_total counter"
        );
        if let Ok(m) = self.routes.lock() {
            // By method, route and status, as they always were listed.
            let mut rows: Vec<(&str, &str, u16, u64)> = m
                .iter()
                .flat_map(|(route, s)| {
                    s.counts
                        .iter()
                        .map(move |(method, status, n)| (method.as_str(), route.as_str(), *status, *n))
                })
                .collect();
            rows.sort_unstable();
            for (method, route, status, n) in rows {
                let _ = writeln!(
                    out,
                    "lockstep_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let name = "lockstep_http_request_duration_microseconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer a request, by route template and status class.\n# TYPE {name} histogram"
        );
        if let Ok(m) = self.routes.lock() {
            for (route, s) in m.iter() {
                for (class, h) in &s.latency {
                    h.render_series(name, &format!("route=\"{route}\",status=\"{class}\""), out);
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP lockstep_http_refused_total Requests refused with 401, 403 or 429, by token name.\n# TYPE lockstep_http_refused_total counter"
        );
        if let Ok(m) = self.refused.lock() {
            for ((status, token), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "lockstep_http_refused_total{{status=\"{status}\",token=\"{}\"}} {n}",
                    token.replace(['"', '\\', '\n'], "_")
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP lockstep_http_requests_in_flight Requests being answered now.\n# TYPE lockstep_http_requests_in_flight gauge\nlockstep_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
    }
}

/// The request id: the caller's, when it is a short visible string, else a new one.
fn request_id(req: &Request) -> HeaderValue {
    req.headers()
        .get(&REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic()))
        .cloned()
        .or_else(|| random_id().ok().and_then(|id| HeaderValue::from_str(&id).ok()))
        .unwrap_or_else(|| HeaderValue::from_static("-"))
}

/// Middleware (outermost but CORS): counts, times and logs every request under
/// its route template, and echoes its `X-Request-Id`.
pub async fn track(State(st): State<crate::AppState>, mut req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let id = request_id(&req);
    req.headers_mut().insert(REQUEST_ID, id.clone());
    st.http.in_flight.fetch_add(1, Ordering::Relaxed);
    let started = tokio::time::Instant::now();
    let mut resp = crate::quota::within_timeout(&st, next.run(req)).await;
    crate::routes::changes::wake_watches(&st, &method, &resp);
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    st.http.in_flight.fetch_sub(1, Ordering::Relaxed);
    let status = resp.status().as_u16();
    let served = resp.extensions_mut().remove::<ServedTo>();
    let token = served.as_ref().map_or("-", |t| t.0.as_str());
    st.http.record(method.as_str(), route, status, micros, token);
    tracing::info!(
        target: "lockstep::request",
        method = %method,
        route = %route,
        status,
        latency_us = micros,
        token = %token,
        request_id = %id.to_str().unwrap_or("-"),
        "request"
    );
    resp.headers_mut().insert(REQUEST_ID, id);
    resp
}

impl ServedTo {
    /// The name to put on a response for `caller`.
    pub fn of(caller: &Caller) -> ServedTo {
        ServedTo(caller.name.clone())
    }
}
