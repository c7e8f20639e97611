//! The recorded history of a run: every request `check` sent and what came
//! back, with its start and end instants, so the checkers can reason about
//! real-time order ("answered before that one started").

use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// What a request was for: the checkers select operations by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Setup of the run (gates, the start marker).
    Setup,
    /// A counter's read before its CAS write.
    CounterRead,
    /// A counter's CAS write (`PUT` with `expected_version`).
    CounterWrite,
    /// A feed append with a fresh id.
    FeedAppend,
    /// A deliberate re-append of an id already acknowledged.
    FeedReappend,
    /// A read mark of one entry.
    FeedMarkRead,
    /// An append with a fresh id to the feed with a retention cap.
    CappedAppend,
    /// A lease acquire.
    LeaseAcquire,
    /// The holder's fenced write (`txn` with the lease and fence compares).
    LeaseWrite,
    /// A lease release.
    LeaseRelease,
    /// A ticket admit.
    TicketAdmit,
    /// A ticket commit.
    TicketCommit,
    /// A ticket finalize (appending to the gate's feed).
    TicketFinalize,
    /// A gate revoke.
    GateRevoke,
    /// A gate reopen.
    GateReopen,
    /// A pause of the pause gate.
    GatePause,
    /// A resume of the pause gate.
    GateResume,
    /// A keyed request (first attempt or retry with the same `Idempotency-Key`).
    Keyed,
    /// The reads at the end of the run.
    Final,
}

/// One request and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct Op {
    /// The client that sent it (`clients` for setup and final reads).
    pub client: usize,
    /// What it was for.
    pub kind: Kind,
    /// HTTP method.
    pub method: &'static str,
    /// Path and query, relative to the instance URL.
    pub path: String,
    /// Which instance (index into the URLs).
    pub instance: usize,
    /// The `Idempotency-Key` sent, if any.
    pub idempotency_key: Option<String>,
    /// The request body.
    pub request: Value,
    /// Microseconds since the run started, when it was sent.
    pub start_us: u64,
    /// Microseconds since the run started, when the answer was read.
    pub end_us: u64,
    /// The status; 0 when no answer came (transport error: outcome unknown).
    pub status: u16,
    /// The answer body (JSON; a string for anything else).
    pub answer: Value,
    /// Whether the answer said `Idempotent-Replayed: true`.
    pub replayed: bool,
}

impl Op {
    /// A 2xx answer.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// No answer came: the request may or may not have been applied.
    pub fn unknown(&self) -> bool {
        self.status == 0
    }

    /// The problem `code` of a refusal.
    pub fn code(&self) -> Option<&str> {
        self.answer.get("code").and_then(Value::as_str)
    }

    /// An unsigned member of the answer.
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.answer.get(name).and_then(Value::as_u64)
    }

    /// A string member of the answer.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.answer.get(name).and_then(Value::as_str)
    }

    /// A string member of the request.
    pub fn req_str(&self, name: &str) -> Option<&str> {
        self.request.get(name).and_then(Value::as_str)
    }

    /// A short description for violation messages.
    pub fn describe(&self) -> String {
        format!(
            "client {} {} {} at {}..{} us → {} {}",
            self.client, self.method, self.path, self.start_us, self.end_us, self.status, self.answer
        )
    }
}

/// The clock of a run: instants as microseconds since its start.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// Starts now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Microseconds since the start.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Every operation of a run, in no particular order (each carries its instants).
#[derive(Debug, Default, Serialize)]
pub struct History {
    /// The operations.
    pub ops: Vec<Op>,
}

impl History {
    /// The operations of one kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Op> {
        self.ops.iter().filter(move |o| o.kind == kind)
    }

    /// Appends another client's operations.
    pub fn extend(&mut self, ops: Vec<Op>) {
        self.ops.extend(ops);
    }
}
