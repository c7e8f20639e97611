//! The workloads: one module per primitive, each a `step` a client runs in
//! turn with the others until the run's deadline. The names of the objects
//! they touch are here, so the checkers find them.

pub mod counters;
pub mod feeds;
pub mod gates;
pub mod idempotency;
pub mod leases;

use super::caller::Caller;
use lockstep_client::api::Txn;
use serde_json::Value;
use std::time::Duration;

/// Counters incremented with CAS (`counter-0`…).
pub const COUNTERS: usize = 4;
/// Leases contended for (`lock-0`…).
pub const LEASES: usize = 2;
/// Gates (`gate-0` with policy `reject`, `gate-1` with `recover`).
pub const GATES: usize = 2;
/// The gate paused and resumed while tickets race it (policy `reject`, never
/// revoked, so its epoch stays 1).
pub const PAUSE_GATE: &str = "gate-paused";
/// The feed appended to.
pub const FEED: &str = "events";
/// The feed with a retention cap of [`CAPPED_MAX`] entries.
pub const CAPPED_FEED: &str = "events-capped";
/// The capped feed's `max_entries`: small, so a short run exceeds it.
pub const CAPPED_MAX: usize = 10;
/// The record the keyed requests increment.
pub const KEYED_COUNTER: &str = "keyed-counter";

/// The key of counter `i`.
pub fn counter_key(i: usize) -> String {
    format!("counter-{i}")
}

/// The name of lease `i`.
pub fn lease_name(i: usize) -> String {
    format!("lock-{i}")
}

/// The id of gate `i`.
pub fn gate_id(i: usize) -> String {
    format!("gate-{i}")
}

/// The policy of gate `i`: `reject` for even, `recover` for odd.
pub fn gate_policy(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "reject"
    } else {
        "recover"
    }
}

/// The feed gate `i`'s finalizations append to.
pub fn gate_feed(i: usize) -> String {
    format!("gate-{i}-done")
}

/// One client's state across its steps.
pub struct Worker {
    /// Its caller (and recorded history).
    pub caller: Caller,
    /// Tags the run's idempotency keys and ids (unique per run).
    pub run: String,
    /// Steps taken per primitive.
    pub steps: [usize; 5],
    /// Feed entry ids this client appended and got acknowledged.
    pub appended: Vec<String>,
}

impl Worker {
    /// A worker over `caller`.
    pub fn new(caller: Caller, run: String) -> Worker {
        Worker {
            caller,
            run,
            steps: [0; 5],
            appended: Vec::new(),
        }
    }

    /// The client id.
    pub fn client(&self) -> usize {
        self.caller.client
    }

    /// Runs one step of each primitive in turn (starting at a different one
    /// per client) until `until` says stop — but at least one of each, so
    /// every checker has something to check even on a very short run.
    pub async fn run(mut self, until: impl Fn() -> bool) -> Caller {
        let first = self.client();
        let mut i = first;
        while i < first + 5 || !until() {
            let p = i % 5;
            let n = self.steps[p];
            self.steps[p] += 1;
            match p {
                0 => counters::step(&mut self, n).await,
                1 => feeds::step(&mut self, n).await,
                2 => leases::step(&mut self, n).await,
                3 => gates::step(&mut self, n).await,
                _ => idempotency::step(&mut self, n).await,
            }
            i += 1;
        }
        self.caller
    }
}

/// The request body of a typed transaction. A `Txn` holds only strings,
/// numbers and JSON values, so it always serializes.
pub fn txn_body(txn: &Txn) -> Value {
    serde_json::to_value(txn).unwrap_or_default()
}

/// A short pause before trying a busy resource again (not a synchronization:
/// the checkers never rely on timing, only on recorded instants).
pub async fn back_off() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}
