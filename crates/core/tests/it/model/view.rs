//! The visible state at an instant, as a reader of the API would see it: what
//! the driver's rows and the model must agree on after every step.

use super::answer::{GateView, RecordView, TicketView};
use lockstep_core::feed::FeedConfig;
use lockstep_core::idempotency::StoredResponse;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A lease as `GET /leases/{name}` shows it: holder fields only while held.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseView {
    pub token: Option<String>,
    pub holder: Option<String>,
    pub expires_at: Option<i64>,
    pub fence: u64,
}

/// A feed entry: as shown (scrubbed in reads once old enough) and as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryView {
    pub at: i64,
    pub shown: Map<String, Value>,
    pub stored: Map<String, Value>,
    pub revision: u64,
    pub read: bool,
    pub scrubbed: bool,
}

/// An idempotency entry that is still kept.
#[derive(Debug, Clone, PartialEq)]
pub struct IdemView {
    pub fingerprint: String,
    pub token: String,
    pub response: Option<StoredResponse>,
    pub locked_until: i64,
    pub expires_at: i64,
}

/// Everything visible at `now`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct View {
    /// Live records.
    pub records: BTreeMap<String, RecordView>,
    /// Every lease name ever held.
    pub leases: BTreeMap<String, LeaseView>,
    /// Live waiters `(id, alive_until)` in id order, per lease (non-empty only).
    pub waiters: BTreeMap<String, Vec<(u64, i64)>>,
    /// Recorded fences.
    pub fences: BTreeMap<String, u64>,
    /// Entries not past their feed's age.
    pub entries: BTreeMap<(String, String), EntryView>,
    /// Feed configurations (`""`: the namespace default).
    pub configs: BTreeMap<String, FeedConfig>,
    /// Idempotency entries not yet expired, by (stored scope, key).
    pub idem: BTreeMap<(String, String), IdemView>,
    /// Gates.
    pub gates: BTreeMap<String, GateView>,
    /// Tickets.
    pub tickets: BTreeMap<String, TicketView>,
}

/// Where two views differ, one line per differing item.
pub fn diff(core: &View, model: &View) -> Vec<String> {
    fn section<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
        out: &mut Vec<String>,
        name: &str,
        a: &BTreeMap<K, V>,
        b: &BTreeMap<K, V>,
    ) {
        for (k, v) in a {
            match b.get(k) {
                Some(w) if w == v => {}
                other => out.push(format!("{name} {k:?}: core {v:?}, model {other:?}")),
            }
        }
        for (k, w) in b {
            if !a.contains_key(k) {
                out.push(format!("{name} {k:?}: core None, model {w:?}"));
            }
        }
    }
    let mut out = vec![];
    section(&mut out, "record", &core.records, &model.records);
    section(&mut out, "lease", &core.leases, &model.leases);
    section(&mut out, "waiters", &core.waiters, &model.waiters);
    section(&mut out, "fence", &core.fences, &model.fences);
    section(&mut out, "entry", &core.entries, &model.entries);
    section(&mut out, "config", &core.configs, &model.configs);
    section(&mut out, "idem", &core.idem, &model.idem);
    section(&mut out, "gate", &core.gates, &model.gates);
    section(&mut out, "ticket", &core.tickets, &model.tickets);
    out
}
