//! What a step answered, in a shape both sides can produce: the core's
//! [`Effect`] (or refusal) normalized, and the model's prediction.

use lockstep_core::gate::{GateState, Policy, Ticket, TicketState};
use lockstep_core::idempotency::{Began, StoredResponse};
use lockstep_core::txn::OpResult;
use lockstep_core::{Change, Effect, Error, Outcome, Record};
use serde_json::{Map, Value};

/// A record as an answer names it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub value: Value,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
}

impl From<&Record> for RecordView {
    fn from(r: &Record) -> Self {
        RecordView {
            value: r.value.clone(),
            version: r.version,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            expires_at: r.expires_at.map(|m| m.0),
        }
    }
}

/// One result of a transaction's applied branch.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnItem {
    Get(Option<RecordView>),
    Written(RecordView),
    Delete(bool),
}

/// A ticket as an answer (or a listing) names it.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketView {
    pub id: String,
    pub gate: String,
    pub epoch: u64,
    pub state: TicketState,
    pub meta: Value,
    pub recovered: bool,
    pub finalized_revision: Option<u64>,
    pub revision: u64,
}

impl From<&Ticket> for TicketView {
    fn from(t: &Ticket) -> Self {
        TicketView {
            id: t.id.clone(),
            gate: t.gate.clone(),
            epoch: t.epoch,
            state: t.state,
            meta: t.meta.clone(),
            recovered: t.recovered,
            finalized_revision: t.finalized_revision,
            revision: t.revision,
        }
    }
}

/// A gate as an answer names it.
#[derive(Debug, Clone, PartialEq)]
pub struct GateView {
    pub state: GateState,
    pub epoch: u64,
    pub policy: Policy,
    pub meta: Value,
    pub revision: u64,
}

/// The normalized answer of one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Refused, by its stable code; for conflicts on records, the current version.
    Refused(String),
    Record {
        record: RecordView,
        created: Option<bool>,
    },
    Deleted,
    Txn {
        succeeded: bool,
        failed: Vec<usize>,
        results: Vec<TxnItem>,
    },
    Expired(bool),
    Lease {
        token: Option<String>,
        holder: Option<String>,
        fence: u64,
        acquired_at: i64,
        expires_at: i64,
    },
    Queued {
        id: u64,
    },
    Released(bool),
    Broken(bool),
    LeaseExpired(bool),
    LeftQueue,
    Appended {
        created: bool,
        at: i64,
        revision: u64,
        data: Map<String, Value>,
        read: bool,
    },
    Imported {
        imported: usize,
        skipped: usize,
    },
    MarkedRead,
    EntryDeleted,
    Configured,
    Retained(usize),
    GatePut {
        gate: GateView,
        created: bool,
    },
    Transitioned {
        gate: GateView,
        changed: bool,
        voided: usize,
        pending: usize,
    },
    Admitted {
        ticket: TicketView,
        created: bool,
    },
    TicketDone(TicketView),
    /// Finalize under `reject`: the ticket is voided (a write) and the caller told 410.
    TicketVoided,
    IdemStarted {
        token: String,
        locked_until: i64,
        expires_at: i64,
    },
    IdemReplay(StoredResponse),
    IdemCompleted,
    IdemReleased,
}

/// A change entry without what the step fixes for all of them (revision, at).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSig {
    pub kind: &'static str,
    pub key: String,
    pub op: &'static str,
    pub system: bool,
    pub forced: bool,
}

impl ChangeSig {
    pub fn new(kind: &'static str, key: impl Into<String>, op: &'static str) -> Self {
        ChangeSig {
            kind,
            key: key.into(),
            op,
            system: false,
            forced: false,
        }
    }
}

impl From<&Change> for ChangeSig {
    fn from(c: &Change) -> Self {
        ChangeSig {
            kind: c.kind.as_str(),
            key: c.key.clone(),
            op: c.op.as_str(),
            system: c.actor == lockstep_core::change::SYSTEM_ACTOR,
            forced: c.forced,
        }
    }
}

/// The stable code of a refusal (SPEC §3), with the current version of a
/// record conflict, and the holder of a held lease.
pub fn refusal(e: &Error) -> String {
    // SPEC §3: the conflict carries `current: {version, value}`, or null when absent.
    let version = |c: &Option<lockstep_core::Current>| match c {
        Some(c) => format!("{}={}", c.version, c.value),
        None => "null".to_owned(),
    };
    match e {
        Error::InvalidRequest(_) => "invalid_request".into(),
        Error::Unauthorized(_) => "unauthorized".into(),
        Error::TooManyRequests(_) => "too_many_requests".into(),
        Error::Forbidden(_) => "forbidden".into(),
        Error::NotFound(_) => "not_found".into(),
        Error::VersionMismatch { current, .. } => format!("version_mismatch@{}", version(current)),
        Error::PatchTestFailed { current, .. } => format!("patch_test_failed@{}", version(current)),
        Error::PreconditionFailed { current, .. } => format!("precondition_failed@{}", version(current)),
        Error::PayloadTooLarge(_) => "payload_too_large".into(),
        Error::InvalidPatch(_) => "invalid_patch".into(),
        Error::LeaseHeld {
            holder,
            expires_at,
            waiters,
        } => format!(
            "lease_held by {holder:?} until {:?} with {waiters} waiting",
            expires_at.map(|m| m.0)
        ),
        Error::LeaseLost(_) => "lease_lost".into(),
        Error::TicketConflict(_) => "ticket_conflict".into(),
        Error::InvalidTransition(_) => "invalid_transition".into(),
        Error::GateClosed(_) => "gate_closed".into(),
        Error::GatePaused(_) => "gate_paused".into(),
        Error::IdempotencyKeyInUse(_) => "idempotency_key_in_use".into(),
        Error::IdempotencyKeyReused(_) => "idempotency_key_reused".into(),
        Error::Compacted { .. } => "compacted".into(),
    }
}

fn gate_view(g: &lockstep_core::gate::Gate) -> GateView {
    GateView {
        state: g.state,
        epoch: g.epoch,
        policy: g.policy,
        meta: g.meta.clone(),
        revision: g.revision,
    }
}

/// The core's answer, normalized.
pub fn of_core(result: &Result<Effect, Error>) -> (Answer, Vec<ChangeSig>) {
    let effect = match result {
        Err(e) => return (Answer::Refused(refusal(e)), vec![]),
        Ok(effect) => effect,
    };
    let answer = match &effect.outcome {
        Outcome::Put { record, created } => Answer::Record {
            record: record.into(),
            created: Some(*created),
        },
        Outcome::Patch { record } => Answer::Record {
            record: record.into(),
            created: None,
        },
        Outcome::Delete { .. } => Answer::Deleted,
        Outcome::Txn(r) => Answer::Txn {
            succeeded: r.succeeded,
            failed: r.failed.clone(),
            results: r
                .results
                .iter()
                .map(|o| match o {
                    OpResult::Get(r) => TxnItem::Get(r.as_ref().map(RecordView::from)),
                    OpResult::Written(r) => TxnItem::Written(r.into()),
                    OpResult::Delete { deleted, .. } => TxnItem::Delete(*deleted),
                })
                .collect(),
        },
        Outcome::Expire { expired } => Answer::Expired(*expired),
        Outcome::Lease(l) => Answer::Lease {
            token: l.token.clone(),
            holder: l.holder.clone(),
            fence: l.fence,
            acquired_at: l.acquired_at.0,
            expires_at: l.expires_at.0,
        },
        Outcome::Queued { id, .. } => Answer::Queued { id: *id },
        Outcome::Released { released } => Answer::Released(*released),
        Outcome::Broken { broken } => Answer::Broken(*broken),
        Outcome::LeaseExpired { expired } => Answer::LeaseExpired(*expired),
        Outcome::LeftQueue => Answer::LeftQueue,
        Outcome::Appended { entry, created } => Answer::Appended {
            created: *created,
            at: entry.at.0,
            revision: entry.revision,
            data: entry.data.clone(),
            read: entry.read,
        },
        Outcome::Imported { imported, skipped } => Answer::Imported {
            imported: *imported,
            skipped: *skipped,
        },
        Outcome::MarkedRead => Answer::MarkedRead,
        Outcome::EntryDeleted => Answer::EntryDeleted,
        Outcome::Configured(_) => Answer::Configured,
        Outcome::Retained { count } => Answer::Retained(*count),
        Outcome::GatePut { gate, created } => Answer::GatePut {
            gate: gate_view(gate),
            created: *created,
        },
        Outcome::Transitioned {
            gate,
            changed,
            voided,
            pending,
        } => Answer::Transitioned {
            gate: gate_view(gate),
            changed: *changed,
            voided: *voided,
            pending: *pending,
        },
        Outcome::Admitted { ticket, created } => Answer::Admitted {
            ticket: ticket.into(),
            created: *created,
        },
        Outcome::TicketDone { ticket } => Answer::TicketDone(ticket.into()),
        Outcome::TicketVoided { .. } => Answer::TicketVoided,
        Outcome::IdemBegun(Began::Started(e)) => Answer::IdemStarted {
            token: e.token.clone(),
            locked_until: e.locked_until.0,
            expires_at: e.expires_at.0,
        },
        Outcome::IdemBegun(Began::Replay(r)) => Answer::IdemReplay(r.clone()),
        Outcome::IdemCompleted => Answer::IdemCompleted,
        Outcome::IdemReleased => Answer::IdemReleased,
    };
    (answer, effect.changes.iter().map(ChangeSig::from).collect())
}
