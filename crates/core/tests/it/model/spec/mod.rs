//! The reference model: SPEC §4-§9 written out plainly over `BTreeMap`s, one
//! arm per command, without any of the core's helpers. Each step returns the
//! answer and the change entries the SPEC asks for, and updates the maps.
//!
//! Where the SPEC leaves a detail open, the model follows the documented
//! decision (`docs/*.md`, SPEC §15) and says so in a comment.

use super::answer::{Answer, ChangeSig, GateView, RecordView, TicketView, TxnItem};
use super::view::{EntryView, IdemView, LeaseView, View};
use lockstep_core::feed::{FeedConfig, ReadSelector};
use lockstep_core::gate::{GateState, Pending, Policy, TicketOp, TicketState, Transition};
use lockstep_core::idempotency::StoredResponse;
use lockstep_core::lease::{WAITER_ALIVE_MS, WAITER_REFRESH_MS};
use lockstep_core::record::{EtagMatch, PatchDoc, Precondition};
use lockstep_core::txn::{Compare, Op};
use lockstep_core::{Command, Limits};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

mod gates;
mod queries;
mod step;
mod txn;

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    value: Value,
    version: u64,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
}

impl Rec {
    fn live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    fn view(&self) -> RecordView {
        RecordView {
            value: self.value.clone(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
        }
    }
}

#[derive(Debug, Clone)]
struct LeaseRow {
    token: Option<String>,
    holder: Option<String>,
    fence: u64,
    acquired_at: i64,
    expires_at: i64,
}

impl LeaseRow {
    fn holder_token(&self, now: i64) -> Option<&str> {
        self.token.as_deref().filter(|_| self.expires_at > now)
    }
}

#[derive(Debug, Clone)]
struct EntryRow {
    at: i64,
    data: Map<String, Value>,
    revision: u64,
    read: bool,
    scrubbed: bool,
}

#[derive(Debug, Clone)]
struct IdemRow {
    fingerprint: String,
    token: String,
    response: Option<StoredResponse>,
    locked_until: i64,
    expires_at: i64,
}

#[derive(Debug, Clone)]
struct GateRow {
    state: GateState,
    epoch: u64,
    policy: Policy,
    meta: Value,
    revision: u64,
}

impl GateRow {
    fn view(&self) -> GateView {
        GateView {
            state: self.state,
            epoch: self.epoch,
            policy: self.policy,
            meta: self.meta.clone(),
            revision: self.revision,
        }
    }

    fn terminal(&self) -> bool {
        matches!(self.state, GateState::Revoked | GateState::Deleted)
    }
}

/// The model's state: every map holds what is stored, expired rows included
/// (they read as absent; sweeper commands remove them).
#[derive(Debug, Clone, Default)]
pub struct Model {
    records: BTreeMap<String, Rec>,
    leases: BTreeMap<String, LeaseRow>,
    /// Waiter id -> alive until, per lease.
    queues: BTreeMap<String, BTreeMap<u64, i64>>,
    /// Highest waiter id handed out per lease: ids are never reused.
    waiter_ids: BTreeMap<String, u64>,
    fences: BTreeMap<String, u64>,
    entries: BTreeMap<(String, String), EntryRow>,
    configs: BTreeMap<String, FeedConfig>,
    idem: BTreeMap<(String, String), IdemRow>,
    gates: BTreeMap<String, GateRow>,
    tickets: BTreeMap<String, TicketView>,
}

/// The model's prediction for one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    pub answer: Answer,
    pub changes: Vec<ChangeSig>,
}

fn refused(code: impl Into<String>) -> Expect {
    Expect {
        answer: Answer::Refused(code.into()),
        changes: vec![],
    }
}

fn answer(answer: Answer) -> Expect {
    Expect {
        answer,
        changes: vec![],
    }
}

fn wrote(answer: Answer, changes: Vec<ChangeSig>) -> Expect {
    Expect { answer, changes }
}

/// RFC 7396, written out.
fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// The JSON Patch subset the generator writes: `test`, `add`, `replace` and
/// `remove` of top-level members `/name`. `Err(true)`: a test failed.
fn json_patch(value: &Value, ops: &Value) -> Result<Value, bool> {
    let mut out = value.clone();
    for op in ops.as_array().into_iter().flatten() {
        let path = op["path"].as_str().unwrap_or_default();
        let name = path.strip_prefix('/').unwrap_or_default().to_owned();
        let Value::Object(m) = &mut out else {
            return Err(false);
        };
        match op["op"].as_str().unwrap_or_default() {
            "test" if m.get(&name) == Some(&op["value"]) => {}
            "test" => return Err(true),
            "add" => {
                m.insert(name, op["value"].clone());
            }
            "replace" if m.contains_key(&name) => {
                m.insert(name, op["value"].clone());
            }
            "remove" if m.contains_key(&name) => {
                m.remove(&name);
            }
            _ => return Err(false),
        }
    }
    Ok(out)
}

fn etag_matches(m: &EtagMatch, live: Option<&Rec>) -> bool {
    match (m, live) {
        (_, None) => false,
        (EtagMatch::Any, Some(_)) => true,
        (EtagMatch::Versions(vs), Some(r)) => vs.contains(&r.version),
    }
}

/// SPEC §4: `expected_version` answers 409 with the current version; the
/// `If-Match` / `If-None-Match` headers answer 412.
fn precondition(p: &Precondition, live: Option<&Rec>) -> Result<(), String> {
    let v = current(live);
    match p {
        Precondition::None => Ok(()),
        Precondition::ExpectedVersion(n) if *n == live.map_or(0, |r| r.version) => Ok(()),
        Precondition::ExpectedVersion(_) => Err(format!("version_mismatch@{v}")),
        Precondition::IfMatch(m) if etag_matches(m, live) => Ok(()),
        Precondition::IfNoneMatch(m) if !etag_matches(m, live) => Ok(()),
        Precondition::IfMatch(_) | Precondition::IfNoneMatch(_) => Err(format!("precondition_failed@{v}")),
    }
}

/// A record conflict's `current`: `version=value`, or `null` when absent.
fn current(live: Option<&Rec>) -> String {
    live.map_or_else(|| "null".to_owned(), |r| format!("{}={}", r.version, r.value))
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn record_sig(key: &str, op: &'static str) -> ChangeSig {
    ChangeSig::new("record", key, op)
}

/// The application store's scopes are kept apart from the header's.
fn stored_scope(scope: &str, app: bool) -> String {
    lockstep_core::command::idem_scope(scope, app)
}
