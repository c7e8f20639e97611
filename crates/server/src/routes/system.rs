//! Service endpoints: info, health, readiness, metrics, OpenAPI.

use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use lockstep_api::system::{HealthStatus as Status, Info};

/// `GET /v1/info`.
pub async fn info(State(st): State<AppState>) -> Response {
    axum::Json(Info {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: st.store.backend().to_owned(),
        durability: st.store.durability().to_owned(),
    })
    .into_response()
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Response {
    axum::Json(Status {
        status: "ok".to_owned(),
        backend: None,
    })
    .into_response()
}

/// `GET /readyz`: storage is reachable.
pub async fn readyz(State(st): State<AppState>) -> Result<Response, ApiError> {
    st.store.ping().await?;
    let body = Status {
        status: "ready".to_owned(),
        backend: Some(st.store.backend().to_owned()),
    };
    Ok(axum::Json(body).into_response())
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(st): State<AppState>) -> Response {
    let mut out = String::new();
    st.http.render(&mut out);
    st.store.metrics().render(&mut out);
    let (waiting, watches) = st.quotas.totals();
    let mut gauges = st.store.gauges();
    gauges.push((
        "lockstep_lease_waiters",
        "Acquires waiting in lease queues through this instance.",
        u64::try_from(waiting).unwrap_or(u64::MAX),
    ));
    gauges.push((
        "lockstep_watches_open",
        "Change watches open on this instance.",
        u64::try_from(watches).unwrap_or(u64::MAX),
    ));
    for (name, help, value) in gauges {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    axum::Json(crate::api::openapi()).into_response()
}
