//! Leases (SPEC §6): answers built from core types.

use super::time;
use lockstep_api::leases::{Lease as Held, LeaseState as State};
use lockstep_core::lease::Lease;
use lockstep_core::Millis;

/// The answer of acquire and renew (an acquire commits at its fence).
pub fn held(l: &Lease, revision: u64) -> Held {
    Held {
        name: l.name.clone(),
        token: l.token.clone(),
        fence: l.fence,
        holder: l.holder.clone(),
        acquired_at: time(l.acquired_at),
        expires_at: time(l.expires_at),
        revision,
    }
}

/// The state of lease `name` at `now`: held by a live token, or free with
/// its last fence (null when it never was held).
pub fn state(name: &str, lease: Option<&Lease>, now: Millis) -> State {
    match lease {
        Some(l) if l.live_token(now).is_some() => State {
            name: name.to_owned(),
            held: true,
            holder: l.holder.clone(),
            acquired_at: Some(time(l.acquired_at)),
            expires_at: Some(time(l.expires_at)),
            fence: Some(l.fence),
        },
        other => State {
            name: name.to_owned(),
            held: false,
            holder: None,
            acquired_at: None,
            expires_at: None,
            fence: other.map(|l| l.fence),
        },
    }
}
