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

impl Model {
    fn live(&self, key: &str, now: i64) -> Option<&Rec> {
        self.records.get(key).filter(|r| r.live(now))
    }

    fn write(&self, key: &str, value: Value, expires_at: Option<i64>, rev: u64, now: i64) -> Rec {
        Rec {
            value,
            version: rev,
            created_at: self.live(key, now).map_or(now, |r| r.created_at),
            updated_at: now,
            expires_at,
        }
    }

    fn config(&self, feed: &str) -> FeedConfig {
        self.configs
            .get(feed)
            .or_else(|| self.configs.get(""))
            .cloned()
            .unwrap_or_default()
    }

    /// SPEC §8: past `max_age_ms` (from `at`) an entry is hidden.
    fn aged_out(&self, feed: &str, at: i64, now: i64) -> bool {
        self.config(feed)
            .max_age_ms
            .is_some_and(|a| at <= now.saturating_sub(ms(a)))
    }

    /// The entry as readers see it: scrub fields gone once `after_ms` old.
    fn shown(&self, feed: &str, e: &EntryRow, now: i64) -> Map<String, Value> {
        let mut data = e.data.clone();
        if let Some(s) = self.config(feed).scrub {
            if now.saturating_sub(e.at) >= ms(s.after_ms) {
                for f in &s.fields {
                    data.remove(f);
                }
            }
        }
        data
    }

    fn visible_entry(&self, feed: &str, id: &str, now: i64) -> Option<&EntryRow> {
        self.entries
            .get(&(feed.to_owned(), id.to_owned()))
            .filter(|e| !self.aged_out(feed, e.at, now))
    }

    /// The id a new waiter of `name` must be above: every id handed out before,
    /// also once the queue emptied (a late `LeaveQueue` of an old id must never
    /// remove a newer waiter).
    pub fn waiter_id_floor(&self, name: &str) -> u64 {
        self.waiter_ids.get(name).copied().unwrap_or(0)
    }

    /// Versions of the live record of `key`, and every version seen, for the generator.
    pub fn record_version(&self, key: &str, now: i64) -> Option<u64> {
        self.live(key, now).map(|r| r.version)
    }

    /// The recorded fence of a resource and the last fence of a lease, for the generator.
    pub fn fences(&self) -> Vec<u64> {
        self.fences
            .values()
            .copied()
            .chain(self.leases.values().map(|l| l.fence))
            .collect()
    }

    /// The ids of the stored tickets, for the generator.
    pub fn ticket_ids(&self) -> Vec<String> {
        self.tickets.keys().cloned().collect()
    }

    /// The ids of the stored gates, for the generator.
    pub fn gate_ids(&self) -> Vec<String> {
        self.gates.keys().cloned().collect()
    }

    /// The live holder's token of a lease, for the generator.
    pub fn lease_holder(&self, name: &str, now: i64) -> Option<String> {
        self.leases
            .get(name)
            .and_then(|l| l.holder_token(now))
            .map(str::to_owned)
    }

    /// The gate of a ticket, for the generator.
    pub fn ticket_gate(&self, ticket: &str) -> Option<String> {
        self.tickets.get(ticket).map(|t| t.gate.clone())
    }

    /// The live waiters of a lease, for the generator.
    pub fn waiter_ids(&self, name: &str) -> Vec<u64> {
        self.queues
            .get(name)
            .map(|q| q.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Applies `cmd` at revision `rev` and instant `now`. `queued_id` is the
    /// id the core handed a new waiter (any id above every earlier one is
    /// right; the driver checks that).
    pub fn step(
        &mut self,
        cmd: &Command,
        rev: u64,
        now: i64,
        limits: &Limits,
        queued_id: Option<u64>,
    ) -> Expect {
        match cmd {
            Command::Put { key, req } => {
                if req.ttl_ms == Some(0) {
                    return refused("invalid_request");
                }
                let live = self.live(key, now);
                if !req.force {
                    if let Err(code) = precondition(&req.precondition, live) {
                        return refused(code);
                    }
                }
                let created = live.is_none();
                let rec = self.write(key, req.value.clone(), req.ttl_ms.map(|t| now + ms(t)), rev, now);
                let view = rec.view();
                self.records.insert(key.clone(), rec);
                let mut sig = record_sig(key, "put");
                // SPEC §4, docs/records.md and docs/changes.md: every `force`
                // write is marked `forced`, with or without a precondition.
                sig.forced = req.force;
                wrote(
                    Answer::Record {
                        record: view,
                        created: Some(created),
                    },
                    vec![sig],
                )
            }
            Command::Patch {
                key,
                doc,
                precondition: pre,
            } => {
                let live = self.live(key, now);
                if let Err(code) = precondition(pre, live) {
                    return refused(code);
                }
                // SPEC §15: PATCH of an absent record is 404.
                let Some(cur) = live else {
                    return refused("not_found");
                };
                let value = match doc {
                    PatchDoc::Merge(m) => merge_patch(&cur.value, m),
                    PatchDoc::Json(p) => {
                        let ops = serde_json::to_value(p).unwrap_or(Value::Null);
                        match json_patch(&cur.value, &ops) {
                            Ok(v) => v,
                            Err(true) => return refused(format!("patch_test_failed@{}", current(Some(cur)))),
                            Err(false) => return refused("invalid_patch"),
                        }
                    }
                };
                // A patch keeps the TTL.
                let rec = self.write(key, value, cur.expires_at, rev, now);
                let view = rec.view();
                self.records.insert(key.clone(), rec);
                wrote(
                    Answer::Record {
                        record: view,
                        created: None,
                    },
                    vec![record_sig(key, "patch")],
                )
            }
            Command::Delete {
                key,
                precondition: pre,
            } => {
                let live = self.live(key, now);
                if let Err(code) = precondition(pre, live) {
                    return refused(code);
                }
                if live.is_none() {
                    return refused("not_found");
                }
                self.records.remove(key);
                wrote(Answer::Deleted, vec![record_sig(key, "delete")])
            }
            Command::Expire { key } => {
                // SPEC §15: an expired record is reported as a change when it is purged.
                if self.records.get(key).is_some_and(|r| !r.live(now)) {
                    self.records.remove(key);
                    wrote(Answer::Expired(true), vec![record_sig(key, "expire")])
                } else {
                    answer(Answer::Expired(false))
                }
            }
            Command::Txn(t) => self.txn(t, rev, now, limits),
            Command::Acquire { name, req } => {
                if !(limits.lease_ttl_ms_min..=limits.lease_ttl_ms_max).contains(&req.ttl_ms) {
                    return refused("invalid_request");
                }
                let live_waiters: Vec<u64> = self
                    .queues
                    .get(name)
                    .map(|q| q.iter().filter(|(_, a)| **a > now).map(|(id, _)| *id).collect())
                    .unwrap_or_default();
                let lease = self.leases.get(name);
                let held = lease.and_then(|l| l.holder_token(now)).is_some();
                // SPEC §15: while anyone waits, a newcomer is refused; waiters go in order.
                let first = match req.wait {
                    None | Some(None) => live_waiters.is_empty(),
                    Some(Some(id)) => live_waiters.first() == Some(&id),
                };
                if !held && first {
                    let mut changes = vec![];
                    if lease.is_some_and(|l| l.token.is_some() && l.expires_at <= now) {
                        // The unswept expiry of the last holder is logged first, by the system.
                        let mut sig = ChangeSig::new("lease", name.clone(), "expire");
                        sig.system = true;
                        changes.push(sig);
                    }
                    changes.push(ChangeSig::new("lease", name.clone(), "acquire"));
                    let row = LeaseRow {
                        token: Some(req.token.clone()),
                        holder: req.holder.clone(),
                        fence: rev,
                        acquired_at: now,
                        expires_at: now + ms(req.ttl_ms),
                    };
                    if let (Some(Some(id)), Some(q)) = (req.wait, self.queues.get_mut(name)) {
                        q.remove(&id);
                    }
                    let a = Answer::Lease {
                        token: row.token.clone(),
                        holder: row.holder.clone(),
                        fence: row.fence,
                        acquired_at: row.acquired_at,
                        expires_at: row.expires_at,
                    };
                    self.leases.insert(name.clone(), row);
                    return wrote(a, changes);
                }
                let holder = lease.filter(|l| l.holder_token(now).is_some());
                let alive = now + ms(WAITER_ALIVE_MS);
                match req.wait {
                    None => refused(format!(
                        "lease_held by {:?} until {:?} with {} waiting",
                        holder.and_then(|l| l.holder.clone()),
                        holder.map(|l| l.expires_at),
                        live_waiters.len()
                    )),
                    Some(None) => {
                        let id = queued_id.unwrap_or(u64::MAX);
                        self.queues.entry(name.clone()).or_default().insert(id, alive);
                        self.waiter_ids.insert(name.clone(), id);
                        answer(Answer::Queued { id })
                    }
                    Some(Some(id)) => {
                        // A waiter refreshes its row once less than the refresh margin remains.
                        let q = self.queues.entry(name.clone()).or_default();
                        if q.get(&id).is_none_or(|a| a - now <= ms(WAITER_REFRESH_MS)) {
                            q.insert(id, alive);
                        }
                        answer(Answer::Queued { id })
                    }
                }
            }
            Command::Renew { name, token, ttl_ms } => {
                if !(limits.lease_ttl_ms_min..=limits.lease_ttl_ms_max).contains(ttl_ms) {
                    return refused("invalid_request");
                }
                match self.leases.get_mut(name) {
                    Some(l) if l.holder_token(now) == Some(token) => {
                        l.expires_at = now + ms(*ttl_ms);
                        let a = Answer::Lease {
                            token: l.token.clone(),
                            holder: l.holder.clone(),
                            fence: l.fence,
                            acquired_at: l.acquired_at,
                            expires_at: l.expires_at,
                        };
                        wrote(a, vec![ChangeSig::new("lease", name.clone(), "renew")])
                    }
                    // SPEC §6: a token that does not hold the lease cannot renew.
                    _ => refused("lease_lost"),
                }
            }
            Command::Release { name, token } => match self.leases.get_mut(name) {
                Some(l) if l.holder_token(now) == Some(token) => {
                    l.token = None;
                    l.expires_at = now;
                    wrote(
                        Answer::Released(true),
                        vec![ChangeSig::new("lease", name.clone(), "release")],
                    )
                }
                _ => answer(Answer::Released(false)),
            },
            Command::Break { name } => match self.leases.get_mut(name) {
                Some(l) if l.holder_token(now).is_some() => {
                    l.token = None;
                    l.expires_at = now;
                    wrote(
                        Answer::Broken(true),
                        vec![ChangeSig::new("lease", name.clone(), "break")],
                    )
                }
                _ => answer(Answer::Broken(false)),
            },
            Command::ExpireLease { name } => match self.leases.get_mut(name) {
                Some(l) if l.token.is_some() && l.expires_at <= now => {
                    l.token = None;
                    wrote(
                        Answer::LeaseExpired(true),
                        vec![ChangeSig::new("lease", name.clone(), "expire")],
                    )
                }
                _ => answer(Answer::LeaseExpired(false)),
            },
            Command::LeaveQueue { name, waiter } => {
                if let Some(q) = self.queues.get_mut(name) {
                    q.remove(waiter);
                }
                answer(Answer::LeftQueue)
            }
            Command::Append { feed, entry } => {
                let key = (feed.clone(), entry.id.clone());
                if let Some(e) = self.visible_entry(feed, &entry.id, now) {
                    // SPEC §8: an existing id answers the original entry.
                    return answer(Answer::Appended {
                        created: false,
                        at: e.at,
                        revision: e.revision,
                        data: self.shown(feed, e, now),
                        read: e.read,
                    });
                }
                let row = EntryRow {
                    at: entry.at.map_or(now, |a| a.0),
                    data: entry.data.clone(),
                    revision: rev,
                    read: false,
                    scrubbed: false,
                };
                let a = Answer::Appended {
                    created: true,
                    at: row.at,
                    revision: rev,
                    data: self.shown(feed, &row, now),
                    read: false,
                };
                self.entries.insert(key, row);
                wrote(
                    a,
                    vec![ChangeSig::new("feed", format!("{feed}/{}", entry.id), "append")],
                )
            }
            Command::Import { feed, entries } => {
                let mut seen = BTreeSet::new();
                let (mut imported, mut skipped, mut changes) = (0, 0, vec![]);
                let mut added = vec![];
                for e in entries {
                    // docs/feeds.md: an entry already past the feed's age is
                    // skipped (never stored), so importing twice changes nothing.
                    let at = e.at.map_or(now, |a| a.0);
                    if !seen.insert(e.id.clone())
                        || self.visible_entry(feed, &e.id, now).is_some()
                        || self.aged_out(feed, at, now)
                    {
                        skipped += 1;
                        continue;
                    }
                    imported += 1;
                    changes.push(ChangeSig::new("feed", format!("{feed}/{}", e.id), "append"));
                    added.push((
                        (feed.clone(), e.id.clone()),
                        EntryRow {
                            at: e.at.map_or(now, |a| a.0),
                            data: e.data.clone(),
                            revision: rev,
                            read: false,
                            scrubbed: false,
                        },
                    ));
                }
                self.entries.extend(added);
                wrote(Answer::Imported { imported, skipped }, changes)
            }
            Command::MarkRead { feed, selector } => {
                for ((f, id), e) in self.entries.iter_mut() {
                    let hit = match selector {
                        ReadSelector::Ids(ids) => ids.contains(id),
                        ReadSelector::UpTo(at, upto) => (e.at, id.as_str()) <= (at.0, upto.as_str()),
                        ReadSelector::All => true,
                    };
                    if f == feed && hit {
                        e.read = true;
                    }
                }
                // SPEC §15: read marks are writes, one change per request keyed by the feed.
                wrote(
                    Answer::MarkedRead,
                    vec![ChangeSig::new("feed", feed.clone(), "read")],
                )
            }
            Command::DeleteEntry { feed, id } => {
                // SPEC §8 hides an entry past the feed's age at once, so to a
                // reader it does not exist and DELETE is 404 (as for an expired
                // record, §4), consistent with an append of its id. An entry
                // hidden by the cap still exists until purged (docs/feeds.md).
                if self.visible_entry(feed, id, now).is_none() {
                    return refused("not_found");
                }
                self.entries.remove(&(feed.clone(), id.clone()));
                wrote(
                    Answer::EntryDeleted,
                    vec![ChangeSig::new("feed", format!("{feed}/{id}"), "delete")],
                )
            }
            Command::Configure { feed, config } => {
                let bad_scrub = config
                    .scrub
                    .as_ref()
                    .is_some_and(|s| s.fields.is_empty() || s.fields.iter().any(String::is_empty));
                if config.max_entries == Some(0) || config.max_age_ms == Some(0) || bad_scrub {
                    return refused("invalid_request");
                }
                self.configs.insert(feed.clone(), config.clone());
                // A changed scrub configuration is applied on disk again by the sweeper.
                for ((f, _), e) in self.entries.iter_mut() {
                    if feed.is_empty() || f == feed {
                        e.scrubbed = false;
                    }
                }
                wrote(
                    Answer::Configured,
                    vec![ChangeSig::new("feed", feed.clone(), "configure")],
                )
            }
            Command::PurgeEntries { feed, ids, before } => {
                let mut changes = vec![];
                for id in ids {
                    let key = (feed.clone(), id.clone());
                    let Some(e) = self.entries.get(&key) else { continue };
                    let capped = before
                        .as_ref()
                        .is_some_and(|(at, bid)| (e.at, id.as_str()) < (at.0, bid.as_str()));
                    if self.aged_out(feed, e.at, now) || capped {
                        self.entries.remove(&key);
                        changes.push(ChangeSig::new("feed", format!("{feed}/{id}"), "expire"));
                    }
                }
                wrote(Answer::Retained(changes.len()), changes)
            }
            Command::ScrubEntries { feed, ids } => {
                let mut changes = vec![];
                let cfg = self.config(feed);
                for id in ids {
                    let key = (feed.clone(), id.clone());
                    let Some(s) = &cfg.scrub else { break };
                    let Some(e) = self.entries.get_mut(&key) else {
                        continue;
                    };
                    if e.scrubbed || now.saturating_sub(e.at) < ms(s.after_ms) {
                        continue;
                    }
                    for f in &s.fields {
                        e.data.remove(f);
                    }
                    e.scrubbed = true;
                    changes.push(ChangeSig::new("feed", format!("{feed}/{id}"), "scrub"));
                }
                wrote(Answer::Retained(changes.len()), changes)
            }
            Command::IdemBegin { scope, key, req, app } => {
                let k = (stored_scope(scope, *app), key.clone());
                let started = IdemRow {
                    fingerprint: req.fingerprint.clone(),
                    token: req.token.clone(),
                    response: None,
                    locked_until: now + ms(req.lock_ms),
                    expires_at: now + ms(req.ttl_ms),
                };
                match self.idem.get(&k).filter(|e| e.expires_at > now) {
                    // SPEC §15: a different fingerprint is 422 even while in progress.
                    Some(e) if e.fingerprint != req.fingerprint => return refused("idempotency_key_reused"),
                    Some(IdemRow {
                        response: Some(r), ..
                    }) => return answer(Answer::IdemReplay(r.clone())),
                    Some(e) if e.locked_until > now => return refused("idempotency_key_in_use"),
                    // New, expired, or a started entry whose lock ran out: taken over.
                    _ => {}
                }
                let a = Answer::IdemStarted {
                    token: started.token.clone(),
                    locked_until: started.locked_until,
                    expires_at: started.expires_at,
                };
                self.idem.insert(k, started);
                // Only the application store's entries are changes (§10 kind `idempotency`).
                let changes = if *app {
                    vec![ChangeSig::new("idempotency", format!("{scope}/{key}"), "start")]
                } else {
                    vec![]
                };
                wrote(a, changes)
            }
            Command::IdemComplete {
                scope,
                key,
                token,
                response,
                app,
            } => {
                let k = (stored_scope(scope, *app), key.clone());
                match self.idem.get_mut(&k) {
                    Some(e) if e.expires_at > now && e.response.is_none() && &e.token == token => {
                        e.response = Some(response.clone());
                        let changes = if *app {
                            vec![ChangeSig::new(
                                "idempotency",
                                format!("{scope}/{key}"),
                                "complete",
                            )]
                        } else {
                            vec![]
                        };
                        wrote(Answer::IdemCompleted, changes)
                    }
                    // SPEC §15: a stale owner's PUT/DELETE is 409 lease_lost.
                    _ => refused("lease_lost"),
                }
            }
            Command::IdemRelease {
                scope,
                key,
                token,
                app,
            } => {
                let k = (stored_scope(scope, *app), key.clone());
                match self.idem.get(&k) {
                    Some(e) if e.expires_at > now && e.response.is_none() && &e.token == token => {
                        self.idem.remove(&k);
                        let changes = if *app {
                            vec![ChangeSig::new("idempotency", format!("{scope}/{key}"), "release")]
                        } else {
                            vec![]
                        };
                        wrote(Answer::IdemReleased, changes)
                    }
                    _ => refused("lease_lost"),
                }
            }
            Command::ExpireIdem { scope, key } => {
                let k = (scope.clone(), key.clone());
                if self.idem.get(&k).is_some_and(|e| e.expires_at <= now) {
                    self.idem.remove(&k);
                }
                answer(Answer::IdemReleased)
            }
            Command::PutGate { id, policy, meta } => match self.gates.get_mut(id) {
                // docs/gates.md: PUT of a deleted gate is 410.
                Some(g) if g.state == GateState::Deleted => refused("gate_closed"),
                Some(g) => {
                    if let Some(p) = policy {
                        g.policy = *p;
                    }
                    if let Some(m) = meta {
                        g.meta = m.clone();
                    }
                    g.revision = rev;
                    wrote(
                        Answer::GatePut {
                            gate: g.view(),
                            created: false,
                        },
                        vec![ChangeSig::new("gate", id.clone(), "update")],
                    )
                }
                None => {
                    let g = GateRow {
                        state: GateState::Open,
                        epoch: 1,
                        policy: policy.unwrap_or_default(),
                        meta: meta.clone().unwrap_or(Value::Null),
                        revision: rev,
                    };
                    let a = Answer::GatePut {
                        gate: g.view(),
                        created: true,
                    };
                    self.gates.insert(id.clone(), g);
                    wrote(a, vec![ChangeSig::new("gate", id.clone(), "create")])
                }
            },
            Command::Transition { id, transition } => self.transition(id, *transition, rev),
            Command::Admit {
                gate,
                ticket,
                meta,
                capability,
            } => {
                let Some(g) = self.gates.get(gate) else {
                    return refused("not_found");
                };
                if let Some(c) = capability {
                    // SPEC §11: expired is 401; bound to the epoch at minting, else 410.
                    if now >= c.expires_at.0 {
                        return refused("unauthorized");
                    }
                    if c.epoch != g.epoch {
                        return refused("gate_closed");
                    }
                }
                if let Some(t) = self.tickets.get(ticket) {
                    // SPEC §15: an existing id of the same gate, still open, is returned.
                    return if &t.gate == gate && t.state == TicketState::Open && t.epoch == g.epoch {
                        answer(Answer::Admitted {
                            ticket: t.clone(),
                            created: false,
                        })
                    } else {
                        refused("ticket_conflict")
                    };
                }
                match g.state {
                    GateState::Paused => refused("gate_paused"),
                    GateState::Revoked | GateState::Deleted => refused("gate_closed"),
                    GateState::Open => {
                        let t = TicketView {
                            id: ticket.clone(),
                            gate: gate.clone(),
                            epoch: g.epoch,
                            state: TicketState::Open,
                            meta: meta.clone().unwrap_or(Value::Null),
                            recovered: false,
                            finalized_revision: None,
                            revision: rev,
                        };
                        self.tickets.insert(ticket.clone(), t.clone());
                        wrote(
                            Answer::Admitted {
                                ticket: t,
                                created: true,
                            },
                            vec![ChangeSig::new("gate", gate.clone(), "admit")],
                        )
                    }
                }
            }
            Command::Ticket {
                gate,
                ticket,
                op,
                append,
                capability,
            } => {
                let Some(g) = self.gates.get(gate).cloned() else {
                    return refused("not_found");
                };
                if let Some(c) = capability {
                    if now >= c.expires_at.0 {
                        return refused("unauthorized");
                    }
                    if c.epoch != g.epoch {
                        return refused("gate_closed");
                    }
                }
                let Some(t) = self.tickets.get(ticket).filter(|t| &t.gate == gate).cloned() else {
                    return refused("not_found");
                };
                let mut e = self.ticket_op(&g, &t, *op, rev);
                let finalized_now = e.changes.first().is_some_and(|c| c.op == "finalize");
                if let (true, Some((feed, entry))) = (finalized_now, append) {
                    // Finalized once <=> appended once: in the same step.
                    let appended = self.step(
                        &Command::Append {
                            feed: feed.clone(),
                            entry: entry.clone(),
                        },
                        rev,
                        now,
                        limits,
                        None,
                    );
                    e.changes.extend(appended.changes);
                }
                e
            }
        }
    }

    fn txn(&mut self, t: &lockstep_core::txn::Txn, rev: u64, now: i64, limits: &Limits) -> Expect {
        if t.compare.len() + t.success.len() + t.failure.len() > limits.txn_items_max {
            return refused("payload_too_large");
        }
        if t.success.iter().chain(&t.failure).any(|op| match op {
            Op::Put(p) => p.ttl_ms == Some(0),
            _ => false,
        }) {
            return refused("invalid_request");
        }
        let failed: Vec<usize> = t
            .compare
            .iter()
            .enumerate()
            .filter(|(_, c)| !self.holds(c, now))
            .map(|(i, _)| i)
            .collect();
        let succeeded = failed.is_empty();
        // The branch works on a copy of the live records, in order.
        let mut work: BTreeMap<String, Option<Rec>> = BTreeMap::new();
        let mut results = vec![];
        let mut changes = vec![];
        for op in if succeeded { &t.success } else { &t.failure } {
            let key = match op {
                Op::Get(o) | Op::Delete(o) => o.key.clone(),
                Op::Put(o) => o.key.clone(),
                Op::Patch(o) => o.key.clone(),
                Op::Incr(o) => o.key.clone(),
            };
            let cur = work
                .get(&key)
                .cloned()
                .unwrap_or_else(|| self.live(&key, now).cloned());
            let written = |value: Value, expires_at: Option<i64>| Rec {
                value,
                version: rev,
                created_at: cur.as_ref().map_or(now, |r| r.created_at),
                updated_at: now,
                expires_at,
            };
            let (item, state, op_name) = match op {
                Op::Get(_) => (TxnItem::Get(cur.as_ref().map(Rec::view)), None, None),
                Op::Put(p) => {
                    let r = written(p.value.clone(), p.ttl_ms.map(|t| now + ms(t)));
                    (TxnItem::Written(r.view()), Some(Some(r)), Some("put"))
                }
                Op::Delete(_) if cur.is_some() => (TxnItem::Delete(true), Some(None), Some("delete")),
                Op::Delete(_) => (TxnItem::Delete(false), None, None),
                Op::Patch(p) => {
                    let Some(c) = &cur else {
                        return refused("not_found");
                    };
                    let r = written(merge_patch(&c.value, &p.merge), c.expires_at);
                    (TxnItem::Written(r.view()), Some(Some(r)), Some("patch"))
                }
                Op::Incr(i) => {
                    // SPEC §5: absent counts as 0; a non-integer is 422 invalid_patch.
                    let base = match &cur {
                        None => 0,
                        Some(c) => match c.value.as_i64() {
                            Some(n) => n,
                            None => return refused("invalid_patch"),
                        },
                    };
                    let Some(sum) = base.checked_add(i.by) else {
                        return refused("invalid_patch");
                    };
                    let r = written(Value::from(sum), cur.as_ref().and_then(|c| c.expires_at));
                    (TxnItem::Written(r.view()), Some(Some(r)), Some("patch"))
                }
            };
            if let Some(s) = state {
                work.insert(key.clone(), s);
            }
            if let Some(o) = op_name {
                changes.push(record_sig(&key, o));
            }
            results.push(item);
        }
        // SPEC §15: a fence compare records its token only when the success branch applies.
        let mut to_record: BTreeMap<String, u64> = BTreeMap::new();
        if succeeded {
            for c in &t.compare {
                if let Compare::Fence { resource, token } = c {
                    let e = to_record.entry(resource.clone()).or_insert(*token);
                    *e = (*e).max(*token);
                }
            }
            to_record.retain(|r, tok| self.fences.get(r).is_none_or(|f| *tok > *f));
        }
        for (key, state) in work {
            match state {
                Some(r) => self.records.insert(key, r),
                None => self.records.remove(&key),
            };
        }
        for (resource, token) in to_record {
            changes.push(ChangeSig::new("lease", resource.clone(), "fence"));
            self.fences.insert(resource, token);
        }
        wrote(
            Answer::Txn {
                succeeded,
                failed,
                results,
            },
            changes,
        )
    }

    fn holds(&self, c: &Compare, now: i64) -> bool {
        match c {
            Compare::Version { key, version } => self.live(key, now).map_or(0, |r| r.version) == *version,
            Compare::Exists { key, exists } => self.live(key, now).is_some() == *exists,
            Compare::Value { key, value } => self.live(key, now).is_some_and(|r| &r.value == value),
            Compare::Lease { name, token } => {
                self.leases.get(name).and_then(|l| l.holder_token(now)) == Some(token.as_str())
            }
            Compare::Fence { resource, token } => self.fences.get(resource).is_none_or(|f| token >= f),
        }
    }

    /// docs/gates.md, "Gate transitions".
    fn transition(&mut self, id: &str, t: Transition, rev: u64) -> Expect {
        use GateState as S;
        use Transition as T;
        let Some(g) = self.gates.get(id).cloned() else {
            return refused("not_found");
        };
        let (to, new_epoch) = match (g.state, t) {
            (S::Open, T::Resume) | (S::Paused, T::Pause) | (S::Open, T::Reopen) => (None, false),
            (S::Revoked, T::Revoke) | (S::Deleted, T::Delete) => (None, false),
            (S::Open, T::Pause) => (Some(S::Paused), false),
            (S::Paused, T::Resume) => (Some(S::Open), false),
            (S::Open | S::Paused, T::Revoke) => (Some(S::Revoked), true),
            (S::Open | S::Paused | S::Revoked, T::Delete) => (Some(S::Deleted), true),
            (S::Revoked, T::Reopen) => (Some(S::Open), true),
            (S::Paused, T::Reopen) => return refused("invalid_transition"),
            (S::Revoked | S::Deleted, _) => return refused("gate_closed"),
        };
        let Some(state) = to else {
            return answer(Answer::Transitioned {
                gate: g.view(),
                changed: false,
                voided: 0,
                pending: 0,
            });
        };
        let terminal = matches!(t, T::Revoke | T::Delete);
        let (mut voided, mut pending) = (0, 0);
        if terminal {
            // SPEC §7: every open ticket of the old epoch is voided in the same step.
            for tk in self.tickets.values_mut() {
                if tk.gate == id && tk.epoch == g.epoch {
                    match tk.state {
                        TicketState::Open => {
                            tk.state = TicketState::Voided;
                            tk.revision = rev;
                            voided += 1;
                        }
                        TicketState::Committed => pending += 1,
                        _ => {}
                    }
                }
            }
        }
        let after = GateRow {
            state,
            epoch: g.epoch + u64::from(new_epoch),
            revision: rev,
            ..g
        };
        let a = Answer::Transitioned {
            gate: after.view(),
            changed: true,
            voided,
            pending,
        };
        self.gates.insert(id.to_owned(), after);
        wrote(a, vec![ChangeSig::new("gate", id, t.as_str())])
    }

    /// SPEC §7 and §15 for one ticket step.
    fn ticket_op(&mut self, g: &GateRow, t: &TicketView, op: TicketOp, rev: u64) -> Expect {
        use TicketOp as O;
        use TicketState as S;
        let same_epoch_live = !g.terminal() && g.epoch == t.epoch;
        let unchanged = || answer(Answer::TicketDone(t.clone()));
        let to = |this: &mut Model, state: S, recovered: bool, op_name: &'static str| {
            let after = TicketView {
                state,
                recovered,
                finalized_revision: (state == S::Finalized).then_some(rev),
                revision: rev,
                ..t.clone()
            };
            this.tickets.insert(t.id.clone(), after.clone());
            wrote(
                Answer::TicketDone(after),
                vec![ChangeSig::new("gate", t.gate.clone(), op_name)],
            )
        };
        match (op, t.state) {
            // A voided ticket answers 410; an aborted one 409, a repeated abort 200.
            (_, S::Voided) => refused("gate_closed"),
            (O::Abort, S::Aborted) => unchanged(),
            (_, S::Aborted) => refused("ticket_conflict"),
            (O::Abort, S::Open | S::Committed) => to(self, S::Aborted, false, "abort"),
            (O::Abort, S::Finalized) => refused("ticket_conflict"),
            // Finalize happens exactly once; repeats answer the same.
            (O::Finalize, S::Finalized) => unchanged(),
            (O::Check | O::Commit, S::Finalized) | (O::Finalize, S::Open) => refused("ticket_conflict"),
            (O::Check | O::Commit, S::Open | S::Committed) => {
                if !same_epoch_live {
                    refused("gate_closed")
                } else if g.state == GateState::Paused {
                    refused("gate_paused")
                } else if op == O::Commit && t.state == S::Open {
                    to(self, S::Committed, false, "commit")
                } else {
                    unchanged()
                }
            }
            (O::Finalize, S::Committed) => {
                if same_epoch_live && g.state == GateState::Paused {
                    refused("gate_paused")
                } else if same_epoch_live {
                    to(self, S::Finalized, false, "finalize")
                } else if g.policy.pending == Pending::Recover {
                    to(self, S::Finalized, true, "finalize")
                } else {
                    let mut e = to(self, S::Voided, false, "void");
                    e.answer = Answer::TicketVoided;
                    e
                }
            }
        }
    }

    /// What a reader sees at `now`.
    pub fn view(&self, now: i64) -> View {
        View {
            records: self
                .records
                .iter()
                .filter(|(_, r)| r.live(now))
                .map(|(k, r)| (k.clone(), r.view()))
                .collect(),
            leases: self
                .leases
                .iter()
                .map(|(n, l)| {
                    let held = l.holder_token(now).is_some();
                    let v = LeaseView {
                        token: l.holder_token(now).map(str::to_owned),
                        holder: l.holder.clone().filter(|_| held),
                        expires_at: held.then_some(l.expires_at),
                        fence: l.fence,
                    };
                    (n.clone(), v)
                })
                .collect(),
            waiters: self
                .queues
                .iter()
                .map(|(n, q)| {
                    let live: Vec<(u64, i64)> = q
                        .iter()
                        .filter(|(_, a)| **a > now)
                        .map(|(i, a)| (*i, *a))
                        .collect();
                    (n.clone(), live)
                })
                .filter(|(_, q)| !q.is_empty())
                .collect(),
            fences: self.fences.clone(),
            entries: self
                .entries
                .iter()
                .filter(|((f, _), e)| !self.aged_out(f, e.at, now))
                .map(|((f, id), e)| {
                    let v = EntryView {
                        at: e.at,
                        shown: self.shown(f, e, now),
                        stored: e.data.clone(),
                        revision: e.revision,
                        read: e.read,
                        scrubbed: e.scrubbed,
                    };
                    ((f.clone(), id.clone()), v)
                })
                .collect(),
            configs: self.configs.clone(),
            idem: self
                .idem
                .iter()
                .filter(|(_, e)| e.expires_at > now)
                .map(|(k, e)| {
                    let v = IdemView {
                        fingerprint: e.fingerprint.clone(),
                        token: e.token.clone(),
                        response: e.response.clone(),
                        locked_until: e.locked_until,
                        expires_at: e.expires_at,
                    };
                    (k.clone(), v)
                })
                .collect(),
            gates: self.gates.iter().map(|(k, g)| (k.clone(), g.view())).collect(),
            tickets: self.tickets.clone(),
        }
    }
}

/// The application store's scopes are kept apart from the header's.
fn stored_scope(scope: &str, app: bool) -> String {
    lockstep_core::command::idem_scope(scope, app)
}
