//! The workloads and the shapes they share across targets: key counts, lease
//! names, feeds, the 200-byte entry, and a tiny per-client random sequence.

use crate::error::Error;

/// Keys of `cas_spread`.
pub const SPREAD_KEYS: u64 = 10_000;
/// Lease names of `lease_cycle`.
pub const LEASE_NAMES: usize = 100;
/// Feeds of `feed_append`.
pub const FEEDS: u64 = 100;
/// Bytes of the JSON `data` of an appended entry.
pub const ENTRY_BYTES: usize = 200;
/// TTL of a lease in `lease_cycle` (far longer than a cycle: never expires).
pub const LEASE_TTL_MS: u64 = 10_000;
/// Feeds of `feed_page`, each filled before the cell starts.
pub const PAGE_FEEDS: usize = 10;
/// Entries of each `feed_page` feed (imported in one request each).
pub const PAGE_FEED_ENTRIES: usize = 1_000;
/// Entries per page read by `feed_page`.
pub const PAGE_SIZE: usize = 100;

/// One closed-loop workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Read + conditional write of one key, retried on conflict.
    CasHot,
    /// Read + conditional write of one of 10,000 keys, retried on conflict.
    CasSpread,
    /// Acquire one of 100 leases with an owner token, then compare-and-clear release.
    LeaseCycle,
    /// Append a 200-byte entry with a unique id to one of 100 feeds.
    FeedAppend,
    /// lockstep only: read one page of 100 entries of a 1,000-entry feed,
    /// following the cursor; a pass must see every entry exactly once.
    FeedPage,
    /// lockstep only: admit, commit, finalize with append.
    GateCycle,
    /// lockstep only: a record write with an `Idempotency-Key`.
    KeyedWrite,
    /// The HTTP ceiling: a JSON POST to a no-op endpoint.
    Noop,
}

impl Workload {
    /// Every workload, in the order of the report.
    pub const ALL: [Workload; 8] = [
        Workload::CasHot,
        Workload::CasSpread,
        Workload::LeaseCycle,
        Workload::FeedAppend,
        Workload::FeedPage,
        Workload::GateCycle,
        Workload::KeyedWrite,
        Workload::Noop,
    ];

    /// The workload's name on the command line and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Workload::CasHot => "cas_hot",
            Workload::CasSpread => "cas_spread",
            Workload::LeaseCycle => "lease_cycle",
            Workload::FeedAppend => "feed_append",
            Workload::FeedPage => "feed_page",
            Workload::GateCycle => "gate_cycle",
            Workload::KeyedWrite => "keyed_write",
            Workload::Noop => "noop",
        }
    }

    /// Parses a comma-separated list; `all` is every workload the caller
    /// then filters by target.
    pub fn parse_list(s: &str) -> Result<Vec<Workload>, Error> {
        if s == "all" {
            return Ok(Workload::ALL.to_vec());
        }
        s.split(',')
            .map(|w| {
                Workload::ALL
                    .into_iter()
                    .find(|x| x.name() == w.trim())
                    .ok_or_else(|| Error::Usage(format!("unknown workload {w:?}")))
            })
            .collect()
    }
}

/// The `data` of an entry: a JSON object of exactly [`ENTRY_BYTES`] bytes.
pub fn entry_data() -> String {
    let pad = ENTRY_BYTES - r#"{"p":""}"#.len();
    format!(r#"{{"p":"{}"}}"#, "x".repeat(pad))
}

/// A xorshift sequence: each client draws keys and names from its own, so the
/// clients spread without sharing state.
pub struct Rng(u64);

impl Rng {
    /// A sequence seeded from the client's index (never zero).
    pub fn new(client: usize) -> Self {
        Rng((client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_200_bytes_of_json() {
        let d = entry_data();
        assert_eq!(d.len(), ENTRY_BYTES);
        assert!(serde_json::from_str::<serde_json::Value>(&d).is_ok_and(|v| v.is_object()));
    }

    #[test]
    fn names_round_trip() {
        let all = Workload::parse_list("all").unwrap_or_default();
        let names: Vec<_> = all.iter().map(|w| w.name()).collect();
        assert_eq!(Workload::parse_list(&names.join(",")).unwrap_or_default(), all);
        assert!(Workload::parse_list("cas,nope").is_err());
    }

    #[test]
    fn draws_stay_below_the_bound() {
        let mut r = Rng::new(3);
        assert!((0..1000).all(|_| r.below(100) < 100));
    }
}
