//! The clock a store is given, and the one place that reads the process clock.
//!
//! Production runs on [`Clock::System`]: the process clock in embedded mode,
//! PostgreSQL's `clock_timestamp()` in shared mode (so every instance over one
//! database agrees). Tests run on a [`Clock::manual`] clock they move by hand;
//! in shared mode its time is passed to PostgreSQL as a parameter.

use lockstep_core::Millis;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a store's time for TTLs, expiry and retention comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The storage's own clock (process clock or `clock_timestamp()`).
    #[default]
    System,
    /// A clock that moves only when told (tests). Clones share one time.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start`.
    pub fn manual(start: Millis) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves a manual clock forward by `ms` (no effect on the system clock).
    pub fn advance(&self, ms: u64) {
        if let Clock::Manual(t) = self {
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            // `fetch_update` never fails with a closure that always answers.
            let _ = t.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(v.saturating_add(ms)));
        }
    }

    /// Sets a manual clock to `now` (no effect on the system clock).
    pub fn set(&self, now: Millis) {
        if let Clock::Manual(t) = self {
            t.store(now.0, Ordering::SeqCst);
        }
    }

    /// The time now: the manual time, or the process clock.
    pub fn now(&self) -> Millis {
        self.fixed().unwrap_or_else(system_now)
    }

    /// The manual time, if this clock is manual (PostgreSQL then takes it as a
    /// parameter in place of its own clock).
    pub(crate) fn fixed(&self) -> Option<Millis> {
        match self {
            Clock::System => None,
            Clock::Manual(t) => Some(Millis(t.load(Ordering::SeqCst))),
        }
    }
}

/// Milliseconds since the epoch by the process clock.
#[allow(clippy::disallowed_methods)] // the one place that reads the process clock
pub fn system_now() -> Millis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The storage clock in PostgreSQL's SQL, with parameter `$n`: a manual
/// clock's time when bound (tests), else PostgreSQL's `clock_timestamp()` (so
/// that every instance over one database agrees).
pub(crate) fn pg_now_sql(n: usize) -> String {
    format!("coalesce(${n}::int8, (extract(epoch from clock_timestamp()) * 1000)::int8)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = Clock::manual(Millis(1_000));
        let shared = c.clone();
        assert_eq!(c.now(), Millis(1_000));
        shared.advance(500);
        assert_eq!(c.now(), Millis(1_500));
        c.set(Millis(10));
        assert_eq!(shared.now(), Millis(10));
        assert_eq!(Clock::System.fixed(), None);
    }
}
