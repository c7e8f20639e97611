//! Time as milliseconds since the Unix epoch. The core never reads a clock: `now`
//! is always passed in by the shell (the storage's clock).

use std::time::{Duration, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    /// This instant plus `ms` milliseconds, saturating.
    pub fn plus_ms(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }

    /// RFC 3339 UTC with millisecond precision, e.g. `2026-11-23T06:51:37.123Z`.
    pub fn to_rfc3339(self) -> String {
        let ms = u64::try_from(self.0).unwrap_or(0);
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    }

    /// Parses an RFC 3339 timestamp.
    pub fn parse_rfc3339(s: &str) -> Result<Millis, crate::Error> {
        let t = humantime::parse_rfc3339_weak(s)
            .map_err(|e| crate::Error::invalid(format!("bad timestamp {s:?}: {e}")))?;
        let d = t
            .duration_since(UNIX_EPOCH)
            .map_err(|_| crate::Error::invalid(format!("timestamp {s:?} is before 1970")))?;
        Ok(Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let t = Millis(1_795_000_000_123);
        let s = t.to_rfc3339();
        assert!(s.ends_with('Z'));
        assert_eq!(Millis::parse_rfc3339(&s), Ok(t));
    }
}
