//! Leases (SPEC §6).
//!
//! ```
//! use lockstep_api::leases::Lease;
//! let l: Lease = serde_json::from_value(serde_json::json!({
//!     "name": "settle", "token": "t1", "fence": 7, "holder": "worker-a",
//!     "acquired_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T00:00:30Z",
//!     "revision": 7})).unwrap();
//! assert_eq!(l.fence, 7);
//!
//! use lockstep_api::leases::AcquireBody;
//! let b = AcquireBody { ttl_ms: 30_000, holder: Some("worker-a".into()), wait_ms: 0 };
//! assert_eq!(serde_json::to_value(&b).unwrap()["ttl_ms"], 30_000);
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Acquire and renew: the lease as held, with the revision it committed at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Lease {
    /// The lease name.
    pub name: String,
    /// The owner token (release and renew need it).
    pub token: Option<String>,
    /// The fencing token: strictly greater for every new holder.
    pub fence: u64,
    /// The holder's label.
    pub holder: Option<String>,
    /// RFC 3339.
    pub acquired_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The revision of the write.
    pub revision: u64,
}

/// `{released, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseReleased {
    /// Whether the token held the lease.
    pub released: bool,
    /// The revision of the write (the current one when nothing was released).
    pub revision: u64,
}

/// `{broken, revision}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseBroken {
    /// Whether a live lease was broken.
    pub broken: bool,
    /// The revision of the write.
    pub revision: u64,
}

/// `GET /leases/{name}`: `{name, held, holder, acquired_at, expires_at, fence}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseState {
    /// The lease name.
    pub name: String,
    /// Whether a live token holds it.
    pub held: bool,
    /// The holder's label, while held.
    pub holder: Option<String>,
    /// RFC 3339, while held.
    pub acquired_at: Option<String>,
    /// RFC 3339, while held.
    pub expires_at: Option<String>,
    /// The current or last fence; null when it never was held.
    pub fence: Option<u64>,
}

/// `POST /leases/{name}/acquire` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    /// How long the lease lives without a renewal.
    #[schemars(range(min = 100, max = 86_400_000))]
    pub ttl_ms: u64,
    /// A label for people (who holds it).
    #[schemars(length(max = 256))]
    #[schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Wait up to this long for a held lease (0: answer 409 at once).
    #[serde(default)]
    #[schemars(range(max = 60_000))]
    pub wait_ms: u64,
}

/// `POST /leases/{name}/renew` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// The owner token.
    #[schemars(length(min = 1))]
    #[schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    pub token: String,
    /// The new time to live, from now.
    #[schemars(range(min = 100, max = 86_400_000))]
    pub ttl_ms: u64,
}

/// `POST /leases/{name}/release` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The owner token.
    #[schemars(length(min = 1))]
    #[schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    pub token: String,
}
