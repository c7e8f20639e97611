//! The process clock, read only here: embedded mode's storage clock.

use lockstep_core::Millis;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch by the process clock.
#[allow(clippy::disallowed_methods)] // the one place that reads the process clock
pub fn system_now() -> Millis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Millis(i64::try_from(ms).unwrap_or(i64::MAX))
}
