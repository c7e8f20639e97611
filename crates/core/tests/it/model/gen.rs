//! Random commands over a small key space, so that steps collide: a few record
//! keys, lease names, feeds, entry ids, idempotency keys, gates and tickets;
//! tokens both current and stale; TTLs short enough for time steps to cross.

use super::spec::Model;
use lockstep_core::capability::CapabilityCheck;
use lockstep_core::feed::{FeedConfig, NewEntry, ReadSelector, Scrub};
use lockstep_core::gate::{Pending, Policy, TicketOp, Transition};
use lockstep_core::idempotency::{Begin, StoredResponse};
use lockstep_core::lease::AcquireReq;
use lockstep_core::record::{EtagMatch, PatchDoc, Precondition, PutRecord};
use lockstep_core::txn::{Compare, IncrOp, KeyOp, Op, PatchOp, PutOp, Txn};
use lockstep_core::{Command, Millis};
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde_json::{json, Map, Value};

const KEYS: [&str; 3] = ["a", "b", "c"];
const LEASES: [&str; 2] = ["L1", "L2"];
const RESOURCES: [&str; 2] = ["db", "L1"];
const FEEDS: [&str; 2] = ["f", "g"];
const ENTRY_IDS: [&str; 3] = ["e1", "e2", "e3"];
const IDEM_KEYS: [&str; 2] = ["k1", "k2"];
const GATES: [&str; 3] = ["G1", "G2", "G3"];
const TICKETS: [&str; 3] = ["t1", "t2", "t3"];

/// A seeded source of choices (proptest's ChaCha `TestRng`).
pub struct Rand(TestRng);

impl Rand {
    pub fn new(seed: u64) -> Rand {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..16].copy_from_slice(&seed.rotate_left(29).to_le_bytes());
        Rand(TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.0.next_u64() % (n as u64)).unwrap_or(0)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.0.next_u64() % 100 < pct
    }

    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

/// One step of a history: advance the clock, then run the command.
#[derive(Debug, Clone)]
pub struct Step {
    pub advance_ms: i64,
    pub cmd: Command,
}

/// What the generator remembers across steps (beyond the model): tokens and
/// ids it handed out, so that later steps can use them, stale or not.
#[derive(Debug, Default)]
pub struct Gen {
    counter: u64,
    /// (lease, token) of every acquire attempt.
    lease_tokens: Vec<(String, String)>,
    /// (scope, key, app, token) of every begin.
    idem_tokens: Vec<(String, String, bool, String)>,
    /// Waiter ids seen, per lease.
    waiters: Vec<(String, u64)>,
    /// Gate epochs seen (for capabilities).
    epochs: Vec<u64>,
    /// Ticket ids admitted (or tried).
    tickets: Vec<String>,
}

fn small_value(r: &mut Rand) -> Value {
    match r.below(5) {
        0 => json!(r.below(4)),
        1 => json!("s"),
        2 => json!({"n": r.below(3)}),
        3 => json!({"n": r.below(3), "m": [1]}),
        _ => json!(null),
    }
}

fn etag(r: &mut Rand, versions: &[u64]) -> EtagMatch {
    if r.chance(40) {
        EtagMatch::Any
    } else {
        EtagMatch::Versions(vec![r.pick(versions)])
    }
}

impl Gen {
    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// Versions worth naming in preconditions: the live one, 0, and a stale or future one.
    fn versions(model: &Model, key: &str, now: i64, revision: u64) -> Vec<u64> {
        let mut v = vec![0, revision.saturating_sub(1), revision + 1];
        if let Some(live) = model.record_version(key, now) {
            v.extend([live, live]);
        }
        v
    }

    fn precondition(r: &mut Rand, versions: &[u64]) -> Precondition {
        match r.below(8) {
            0..=3 => Precondition::None,
            4 | 5 => Precondition::ExpectedVersion(r.pick(versions)),
            6 => Precondition::IfMatch(etag(r, versions)),
            _ => Precondition::IfNoneMatch(etag(r, versions)),
        }
    }

    fn lease_token(&mut self, r: &mut Rand, model: &Model, name: &str, now: i64) -> String {
        if let Some(t) = model.lease_holder(name, now).filter(|_| r.chance(50)) {
            return t;
        }
        let mine: Vec<String> = self
            .lease_tokens
            .iter()
            .rev()
            .take(4)
            .filter(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .collect();
        if mine.is_empty() || r.chance(10) {
            "never-held".into()
        } else {
            r.pick(&mine)
        }
    }

    fn entry(&mut self, r: &mut Rand, id: String, now: i64) -> NewEntry {
        let mut data = Map::new();
        data.insert("n".into(), json!(r.below(3)));
        if r.chance(60) {
            data.insert("ip".into(), json!("10.0.0.1"));
        }
        let at = match r.below(6) {
            0 => Some(Millis(now - 100)),
            1 => Some(Millis(now - 3_000)),
            2 => Some(Millis(now + 200)),
            _ => None,
        };
        NewEntry { id, data, at }
    }

    fn txn(&mut self, r: &mut Rand, model: &Model, now: i64, revision: u64) -> Txn {
        let mut compare = vec![];
        for _ in 0..r.below(3) {
            let key = r.pick(&KEYS).to_owned();
            compare.push(match r.below(5) {
                0 => {
                    let versions = Self::versions(model, &key, now, revision);
                    Compare::Version {
                        version: r.pick(&versions),
                        key,
                    }
                }
                1 => Compare::Exists {
                    key,
                    exists: r.chance(50),
                },
                2 => Compare::Value {
                    key,
                    value: small_value(r),
                },
                3 => {
                    let name = r.pick(&LEASES).to_owned();
                    Compare::Lease {
                        token: self.lease_token(r, model, &name, now),
                        name,
                    }
                }
                _ => {
                    let mut fences = model.fences();
                    fences.extend([1, revision]);
                    let f = r.pick(&fences);
                    Compare::Fence {
                        resource: r.pick(&RESOURCES).to_owned(),
                        token: if r.chance(30) { f.saturating_sub(1) } else { f },
                    }
                }
            });
        }
        let branch = |r: &mut Rand| -> Vec<Op> {
            (0..r.below(4))
                .map(|_| {
                    let key = r.pick(&KEYS).to_owned();
                    match r.below(6) {
                        0 => Op::Get(KeyOp { key }),
                        1 => Op::Put(PutOp {
                            key,
                            value: small_value(r),
                            ttl_ms: r.chance(25).then_some(500),
                        }),
                        2 => Op::Delete(KeyOp { key }),
                        3 => Op::Patch(PatchOp {
                            key,
                            merge: json!({"n": r.below(3), "z": null}),
                        }),
                        _ => Op::Incr(IncrOp {
                            key,
                            by: if r.chance(5) { i64::MAX } else { 1 },
                        }),
                    }
                })
                .collect()
        };
        let mut success = branch(r);
        let failure = branch(r);
        if r.chance(2) {
            // Over the 64-item limit: 413.
            success.extend((0..64).map(|_| Op::Get(KeyOp { key: "a".into() })));
        }
        if r.chance(3) {
            success.push(Op::Put(PutOp {
                key: "a".into(),
                value: json!(1),
                ttl_ms: Some(0),
            }));
        }
        Txn {
            compare,
            success,
            failure,
        }
    }

    /// The next step.
    pub fn step(&mut self, r: &mut Rand, model: &Model, now: i64, revision: u64) -> Step {
        let advance_ms = match r.below(20) {
            0..=11 => 0,
            12 | 13 => 1,
            14 | 15 => r.pick(&[50, 99, 100, 101]),
            16 | 17 => r.pick(&[300, 499, 500, 501]),
            18 => r.pick(&[1_000, 1_500, 2_000]),
            _ => r.pick(&[3_000, 5_000]),
        };
        let now = now + advance_ms;
        let cmd = self.command(r, model, now, revision);
        Step { advance_ms, cmd }
    }

    fn command(&mut self, r: &mut Rand, model: &Model, now: i64, revision: u64) -> Command {
        let key = r.pick(&KEYS).to_owned();
        let versions = Self::versions(model, &key, now, revision);
        let lease = r.pick(&LEASES).to_owned();
        let feed = r.pick(&FEEDS).to_owned();
        let gate = r.pick(&GATES).to_owned();
        let (scope, idem_key, app) = ("s".to_owned(), r.pick(&IDEM_KEYS).to_owned(), r.chance(50));
        match r.below(100) {
            0..=9 => Command::Put {
                req: PutRecord {
                    value: small_value(r),
                    precondition: Self::precondition(r, &versions),
                    ttl_ms: match r.below(6) {
                        0 => Some(100),
                        1 => Some(1_000),
                        2 if r.chance(10) => Some(0),
                        _ => None,
                    },
                    force: r.chance(10),
                },
                key,
            },
            10..=14 => Command::Patch {
                doc: if r.chance(60) {
                    PatchDoc::Merge(json!({"n": r.below(3), "m": null}))
                } else {
                    let ops = match r.below(4) {
                        0 => {
                            json!([{"op": "test", "path": "/n", "value": r.below(3)}, {"op": "add", "path": "/t", "value": 1}])
                        }
                        1 => json!([{"op": "replace", "path": "/n", "value": 9}]),
                        2 => json!([{"op": "remove", "path": "/m"}]),
                        _ => json!([{"op": "add", "path": "/n", "value": 2}]),
                    };
                    PatchDoc::Json(serde_json::from_value(ops).unwrap_or_else(|e| panic!("{e}")))
                },
                precondition: Self::precondition(r, &versions),
                key,
            },
            15..=18 => Command::Delete {
                precondition: Self::precondition(r, &versions),
                key,
            },
            19..=20 => Command::Expire { key },
            21..=29 => Command::Txn(self.txn(r, model, now, revision)),
            30..=35 => {
                let token = self.fresh("tok");
                self.lease_tokens.push((lease.clone(), token.clone()));
                let mine: Vec<u64> = self
                    .waiters
                    .iter()
                    .filter(|(n, _)| n == &lease)
                    .map(|(_, id)| *id)
                    .collect();
                let wait = match r.below(6) {
                    0 | 1 => Some(None),
                    2 if !mine.is_empty() => Some(Some(r.pick(&mine))),
                    3 => Some(model.waiter_ids(&lease).first().copied()),
                    _ => None,
                };
                Command::Acquire {
                    req: AcquireReq {
                        ttl_ms: r.pick(&[100, 500, 2_000, 2_000, 99]),
                        holder: r.chance(70).then(|| format!("h-{token}")),
                        token,
                        wait,
                    },
                    name: lease,
                }
            }
            36..=38 => Command::Renew {
                token: self.lease_token(r, model, &lease, now),
                ttl_ms: r.pick(&[100, 1_000, 1_000, 2_000, 500, 100, 50, 1_000, 1_000, 2_000]),
                name: lease,
            },
            39..=41 => Command::Release {
                token: self.lease_token(r, model, &lease, now),
                name: lease,
            },
            42 => Command::Break { name: lease },
            43..=44 => Command::ExpireLease { name: lease },
            45 => {
                let ids = model.waiter_ids(&lease);
                Command::LeaveQueue {
                    waiter: if ids.is_empty() { 1 } else { r.pick(&ids) },
                    name: lease,
                }
            }
            46..=51 => {
                let id = r.pick(&ENTRY_IDS).to_owned();
                Command::Append {
                    entry: self.entry(r, id, now),
                    feed,
                }
            }
            52..=53 => {
                let entries = (0..r.below(4))
                    .map(|_| {
                        let id = r.pick(&ENTRY_IDS).to_owned();
                        self.entry(r, id, now)
                    })
                    .collect();
                Command::Import { feed, entries }
            }
            54..=56 => Command::MarkRead {
                selector: match r.below(3) {
                    0 => ReadSelector::Ids(vec![r.pick(&ENTRY_IDS).to_owned()]),
                    1 => ReadSelector::UpTo(
                        Millis(now - r.pick(&[0, 100, 1_000])),
                        r.pick(&ENTRY_IDS).to_owned(),
                    ),
                    _ => ReadSelector::All,
                },
                feed,
            },
            57..=59 => Command::DeleteEntry {
                id: r.pick(&ENTRY_IDS).to_owned(),
                feed,
            },
            60..=61 => Command::Configure {
                config: FeedConfig {
                    max_entries: r.chance(5).then_some(0),
                    max_age_ms: r.chance(50).then(|| r.pick(&[500, 2_000])),
                    scrub: r.chance(50).then(|| Scrub {
                        fields: vec!["ip".into()],
                        after_ms: r.pick(&[0, 300]),
                    }),
                },
                feed: if r.chance(25) { String::new() } else { feed },
            },
            62..=63 => {
                let ids = ENTRY_IDS.iter().map(|s| (*s).to_owned()).collect();
                if r.chance(50) {
                    // `before`: the oldest position the cap kept when the sweeper looked.
                    let before = r.chance(40).then(|| {
                        (
                            Millis(now - r.pick(&[0, 100, 1_000])),
                            r.pick(&ENTRY_IDS).to_owned(),
                        )
                    });
                    Command::PurgeEntries { feed, ids, before }
                } else {
                    Command::ScrubEntries { feed, ids }
                }
            }
            64..=69 => {
                let token = self.fresh("itok");
                self.idem_tokens
                    .push((scope.clone(), idem_key.clone(), app, token.clone()));
                Command::IdemBegin {
                    req: Begin {
                        fingerprint: r.pick(&["fp1", "fp1", "fp1", "fp1", "fp2"]).to_owned(),
                        token,
                        lock_ms: r.pick(&[100, 1_000]),
                        ttl_ms: r.pick(&[1_500, 5_000]),
                    },
                    scope,
                    key: idem_key,
                    app,
                }
            }
            70..=74 => {
                let mine: Vec<String> = self
                    .idem_tokens
                    .iter()
                    .filter(|(s, k, a, _)| s == &scope && k == &idem_key && *a == app)
                    .map(|(.., t)| t.clone())
                    .collect();
                let token = if mine.is_empty() {
                    "never".into()
                } else if r.chance(85) {
                    mine[mine.len() - 1].clone()
                } else {
                    r.pick(&mine)
                };
                if r.chance(70) {
                    Command::IdemComplete {
                        response: StoredResponse {
                            status: 201,
                            content_type: "application/json".into(),
                            etag: None,
                            body: format!("{{\"by\":\"{token}\"}}"),
                        },
                        scope,
                        key: idem_key,
                        token,
                        app,
                    }
                } else {
                    Command::IdemRelease {
                        scope,
                        key: idem_key,
                        token,
                        app,
                    }
                }
            }
            75 => Command::ExpireIdem {
                scope: lockstep_core::command::idem_scope(&scope, app),
                key: idem_key,
            },
            76..=78 => Command::PutGate {
                id: gate,
                policy: r.chance(50).then(|| Policy {
                    pending: if r.chance(50) {
                        Pending::Recover
                    } else {
                        Pending::Reject
                    },
                }),
                meta: r.chance(30).then(|| json!({"owner": r.below(2)})),
            },
            79..=83 => Command::Transition {
                id: if r.chance(80) && !model.gate_ids().is_empty() {
                    r.pick(&model.gate_ids())
                } else {
                    gate
                },
                transition: if r.chance(5) {
                    Transition::Delete
                } else {
                    r.pick(&[
                        Transition::Pause,
                        Transition::Resume,
                        Transition::Revoke,
                        Transition::Reopen,
                        Transition::Reopen,
                        Transition::Pause,
                        Transition::Resume,
                    ])
                },
            },
            84..=89 => self.admit(r, model, gate, now),
            _ if model.ticket_ids().is_empty() => self.admit(r, model, gate, now),
            _ => {
                let known = model.ticket_ids();
                let mut recent: Vec<String> = self.tickets.iter().rev().take(6).cloned().collect();
                recent.retain(|t| known.contains(t));
                if recent.is_empty() {
                    recent = known;
                }
                let ticket = if recent.is_empty() || r.chance(5) {
                    r.pick(&TICKETS).to_owned()
                } else {
                    r.pick(&recent)
                };
                let gate = match model.ticket_gate(&ticket) {
                    Some(g) if r.chance(90) => g,
                    _ => gate,
                };
                let op = r.pick(&[
                    TicketOp::Check,
                    TicketOp::Commit,
                    TicketOp::Commit,
                    TicketOp::Finalize,
                    TicketOp::Finalize,
                    TicketOp::Abort,
                ]);
                let append = (op == TicketOp::Finalize && r.chance(60)).then(|| {
                    let entry = self.entry(r, ticket.clone(), now);
                    (feed.clone(), entry)
                });
                Command::Ticket {
                    capability: self.capability(r, now),
                    gate,
                    ticket,
                    op,
                    append,
                }
            }
        }
    }

    fn admit(&mut self, r: &mut Rand, model: &Model, gate: String, now: i64) -> Command {
        let gates = model.gate_ids();
        let gate = if gates.is_empty() || r.chance(10) {
            gate
        } else {
            r.pick(&gates)
        };
        let ticket = if self.tickets.is_empty() || r.chance(60) {
            self.fresh("t")
        } else {
            r.pick(&self.tickets)
        };
        self.tickets.push(ticket.clone());
        Command::Admit {
            capability: self.capability(r, now),
            meta: r.chance(30).then(|| json!({"file": "a.pdf"})),
            gate,
            ticket,
        }
    }

    fn capability(&mut self, r: &mut Rand, now: i64) -> Option<CapabilityCheck> {
        if !r.chance(20) {
            return None;
        }
        if self.epochs.is_empty() || r.chance(30) {
            self.epochs.push(1 + r.below(3) as u64);
        }
        Some(CapabilityCheck {
            epoch: r.pick(&self.epochs),
            expires_at: Millis(now + r.pick(&[0, 1_000, 100_000])),
        })
    }

    /// Remembers a waiter id the core handed out.
    pub fn saw_waiter(&mut self, lease: &str, id: u64) {
        self.waiters.push((lease.to_owned(), id));
    }
}
