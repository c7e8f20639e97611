//! Leases (SPEC §6).

use super::time;
use lockstep_core::lease::Lease;
use lockstep_core::Millis;
use schemars::JsonSchema;
use serde::Serialize;

/// Acquire and renew: the lease as held, with the revision it committed at.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Lease")]
pub struct Held<'a> {
    name: &'a str,
    token: Option<&'a str>,
    fence: u64,
    holder: Option<&'a str>,
    acquired_at: String,
    expires_at: String,
    revision: u64,
}

/// The answer of acquire and renew (an acquire commits at its fence).
pub fn held(l: &Lease, revision: u64) -> Held<'_> {
    Held {
        name: &l.name,
        token: l.token.as_deref(),
        fence: l.fence,
        holder: l.holder.as_deref(),
        acquired_at: time(l.acquired_at),
        expires_at: time(l.expires_at),
        revision,
    }
}

/// `{released, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "LeaseReleased")]
pub struct Released {
    /// Whether the token held the lease.
    pub released: bool,
    /// The revision of the write (the current one when nothing was released).
    pub revision: u64,
}

/// `{broken, revision}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "LeaseBroken")]
pub struct Broken {
    /// Whether a live lease was broken.
    pub broken: bool,
    /// The revision of the write.
    pub revision: u64,
}

/// `GET /leases/{name}`: `{name, held, holder, acquired_at, expires_at, fence}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "LeaseState")]
pub struct State<'a> {
    name: &'a str,
    held: bool,
    holder: Option<&'a str>,
    acquired_at: Option<String>,
    expires_at: Option<String>,
    fence: Option<u64>,
}

/// The state of lease `name` at `now`: held by a live token, or free with
/// its last fence (null when it never was held).
pub fn state<'a>(name: &'a str, lease: Option<&'a Lease>, now: Millis) -> State<'a> {
    match lease {
        Some(l) if l.live_token(now).is_some() => State {
            name,
            held: true,
            holder: l.holder.as_deref(),
            acquired_at: Some(time(l.acquired_at)),
            expires_at: Some(time(l.expires_at)),
            fence: Some(l.fence),
        },
        other => State {
            name,
            held: false,
            holder: None,
            acquired_at: None,
            expires_at: None,
            fence: other.map(|l| l.fence),
        },
    }
}
