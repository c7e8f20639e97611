//! Service endpoints: info, health, readiness.

use schemars::JsonSchema;
use serde::Serialize;

/// `GET /v1/info`: `{version, backend, durability}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Info {
    /// The server's version.
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// What an acknowledged write survives.
    pub durability: &'static str,
}

/// `GET /healthz` and `GET /readyz`: `{status}`, with the backend once ready.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "HealthStatus")]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// The backend (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'static str>,
}
