//! Service endpoints: info, health, readiness.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GET /v1/info`: `{version, backend, durability}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Info {
    /// The server's version.
    pub version: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// What an acknowledged write survives.
    pub durability: String,
}

/// `GET /healthz` and `GET /readyz`: `{status}`, with the backend once ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthStatus {
    /// `ok` or `ready`.
    pub status: String,
    /// The backend (readiness only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}
