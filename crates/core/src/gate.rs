//! Gates (SPEC §7): a lifecycle state with an epoch, and tickets admitted under
//! an epoch. Every ticket answer is a pure function of (gate, ticket, operation),
//! so the same history always gives the same status codes; `docs/gates.md`
//! tabulates [`ticket_op`] for every pair and a test keeps the two in step.

use crate::{Error, Millis};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A gate's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    /// Tickets may be admitted and progress.
    Open,
    /// Ticket steps answer 423 until resumed; tickets survive.
    Paused,
    /// Terminal (until `reopen`): the old epoch's tickets are closed.
    Revoked,
    /// Final.
    Deleted,
}

impl GateState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GateState::Open => "open",
            GateState::Paused => "paused",
            GateState::Revoked => "revoked",
            GateState::Deleted => "deleted",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<GateState> {
        [
            GateState::Open,
            GateState::Paused,
            GateState::Revoked,
            GateState::Deleted,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }

    fn terminal(self) -> bool {
        matches!(self, GateState::Revoked | GateState::Deleted)
    }
}

/// What finalize does with a ticket committed before a terminal transition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Pending {
    /// 410 and void it (the default).
    #[default]
    Reject,
    /// Finalize it, marked `recovered`.
    Recover,
}

/// `{pending}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The pending policy.
    #[serde(default)]
    pub pending: Pending,
}

/// A stored gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Gate id.
    pub id: String,
    /// Lifecycle state.
    pub state: GateState,
    /// Incremented by every terminal transition and by `reopen`.
    pub epoch: u64,
    /// The pending policy.
    pub policy: Policy,
    /// Caller's metadata.
    pub meta: Value,
    /// The revision of its last write.
    pub revision: u64,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// A gate transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// open → paused.
    Pause,
    /// paused → open.
    Resume,
    /// open|paused → revoked (terminal, new epoch).
    Revoke,
    /// any → deleted (final, new epoch).
    Delete,
    /// revoked → open (new epoch).
    Reopen,
}

impl Transition {
    /// Parses the transition named in the URL.
    pub fn parse(s: &str) -> Result<Transition, Error> {
        Ok(match s {
            "pause" => Transition::Pause,
            "resume" => Transition::Resume,
            "revoke" => Transition::Revoke,
            "delete" => Transition::Delete,
            "reopen" => Transition::Reopen,
            other => {
                return Err(Error::invalid(format!(
                    "unknown transition {other:?}: pause, resume, revoke, delete or reopen"
                )))
            }
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Pause => "pause",
            Transition::Resume => "resume",
            Transition::Revoke => "revoke",
            Transition::Delete => "delete",
            Transition::Reopen => "reopen",
        }
    }
}

/// Creates a gate, or updates an existing one's policy and meta.
pub fn put(
    existing: Option<&Gate>,
    id: &str,
    policy: Option<Policy>,
    meta: Option<Value>,
    revision: u64,
    now: Millis,
) -> Result<(Gate, bool), Error> {
    match existing {
        Some(g) if g.state == GateState::Deleted => Err(Error::GateClosed(format!("gate {id:?} is deleted"))),
        Some(g) => Ok((
            Gate {
                policy: policy.unwrap_or(g.policy),
                meta: meta.unwrap_or_else(|| g.meta.clone()),
                revision,
                updated_at: now,
                ..g.clone()
            },
            false,
        )),
        None => Ok((
            Gate {
                id: id.to_owned(),
                state: GateState::Open,
                epoch: 1,
                policy: policy.unwrap_or_default(),
                meta: meta.unwrap_or(Value::Null),
                revision,
                created_at: now,
                updated_at: now,
            },
            true,
        )),
    }
}

/// Applies a transition: `Ok(None)` is a no-op (the state's own transition).
pub fn transition(g: &Gate, t: Transition, revision: u64, now: Millis) -> Result<Option<Gate>, Error> {
    use GateState::*;
    use Transition::*;
    let to = |state: GateState, new_epoch: bool| {
        Ok(Some(Gate {
            state,
            epoch: g.epoch + u64::from(new_epoch),
            revision,
            updated_at: now,
            ..g.clone()
        }))
    };
    let closed = || {
        Err(Error::GateClosed(format!(
            "gate {:?} is {}",
            g.id,
            g.state.as_str()
        )))
    };
    match (g.state, t) {
        (Open, Pause) => to(Paused, false),
        (Paused, Resume) => to(Open, false),
        (Open, Resume) | (Paused, Pause) | (Open, Reopen) | (Revoked, Revoke) | (Deleted, Delete) => Ok(None),
        (Open | Paused, Revoke) => to(Revoked, true),
        (Open | Paused | Revoked, Delete) => to(Deleted, true),
        (Revoked, Reopen) => to(Open, true),
        (Paused, Reopen) => Err(Error::InvalidTransition(format!(
            "gate {:?} is paused: resume it instead",
            g.id
        ))),
        (Revoked | Deleted, _) => closed(),
    }
}

/// Whether a transition is terminal (closes the old epoch's tickets).
pub fn closes_epoch(t: Transition) -> bool {
    matches!(t, Transition::Revoke | Transition::Delete)
}

/// A ticket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// Admitted; `check` and `commit` allowed.
    Open,
    /// The side effect happened; awaiting `finalize`.
    Committed,
    /// Done (exactly once).
    Finalized,
    /// Closed by a terminal transition (or by `reject` at finalize).
    Voided,
    /// Given up by the caller.
    Aborted,
}

impl TicketState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Open => "open",
            TicketState::Committed => "committed",
            TicketState::Finalized => "finalized",
            TicketState::Voided => "voided",
            TicketState::Aborted => "aborted",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<TicketState> {
        ALL_TICKET_STATES.into_iter().find(|t| t.as_str() == s)
    }
}

/// Every ticket state, for tables and tests.
pub const ALL_TICKET_STATES: [TicketState; 5] = [
    TicketState::Open,
    TicketState::Committed,
    TicketState::Finalized,
    TicketState::Voided,
    TicketState::Aborted,
];

/// A stored ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// Ticket id (unique in the namespace).
    pub id: String,
    /// Its gate.
    pub gate: String,
    /// The epoch it was admitted under.
    pub epoch: u64,
    /// Its state.
    pub state: TicketState,
    /// Caller's metadata.
    pub meta: Value,
    /// Finalized under the `recover` policy.
    pub recovered: bool,
    /// The revision of its finalization.
    pub finalized_revision: Option<u64>,
    /// The revision of its last write (admission or state change): what every
    /// answer about it names, also a repeat that changes nothing.
    pub revision: u64,
    /// Admission time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// A ticket operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketOp {
    /// Before an external side effect.
    Check,
    /// After the side effect.
    Commit,
    /// Exactly once, after commit.
    Finalize,
    /// Give the ticket up.
    Abort,
}

impl TicketOp {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketOp::Check => "check",
            TicketOp::Commit => "commit",
            TicketOp::Finalize => "finalize",
            TicketOp::Abort => "abort",
        }
    }
}

/// Admits a ticket: 201 when open; an existing id of the same gate still open is
/// returned (`created: false`); any other existing id is 409.
pub fn admit(
    g: &Gate,
    existing: Option<&Ticket>,
    id: &str,
    meta: Option<Value>,
    revision: u64,
    now: Millis,
) -> Result<(Ticket, bool), Error> {
    if let Some(t) = existing {
        return if t.gate == g.id && t.state == TicketState::Open && t.epoch == g.epoch {
            Ok((t.clone(), false))
        } else {
            Err(Error::TicketConflict(format!("ticket id {id:?} is already used")))
        };
    }
    match g.state {
        GateState::Open => Ok((
            Ticket {
                id: id.to_owned(),
                gate: g.id.clone(),
                epoch: g.epoch,
                state: TicketState::Open,
                meta: meta.unwrap_or(Value::Null),
                recovered: false,
                finalized_revision: None,
                revision,
                created_at: now,
                updated_at: now,
            },
            true,
        )),
        GateState::Paused => Err(Error::GatePaused(format!("gate {:?} is paused", g.id))),
        GateState::Revoked | GateState::Deleted => Err(Error::GateClosed(format!(
            "gate {:?} is {}",
            g.id,
            g.state.as_str()
        ))),
    }
}

/// The gate as a ticket sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateView {
    /// Open, same epoch.
    Live,
    /// Paused, same epoch.
    Paused,
    /// Open or paused, but under a newer epoch (reopened since).
    EpochMoved,
    /// Revoked or deleted.
    Closed,
}

/// Every gate view, for tables and tests.
pub const ALL_GATE_VIEWS: [GateView; 4] = [
    GateView::Live,
    GateView::Paused,
    GateView::EpochMoved,
    GateView::Closed,
];

impl GateView {
    /// How the gate looks to a ticket of `epoch`.
    pub fn of(g: &Gate, epoch: u64) -> GateView {
        if g.state.terminal() {
            GateView::Closed
        } else if g.epoch != epoch {
            GateView::EpochMoved
        } else if g.state == GateState::Paused {
            GateView::Paused
        } else {
            GateView::Live
        }
    }

    /// A description for docs and messages.
    pub fn describe(self) -> &'static str {
        match self {
            GateView::Live => "gate open, same epoch",
            GateView::Paused => "gate paused, same epoch",
            GateView::EpochMoved => "gate reopened (newer epoch)",
            GateView::Closed => "gate revoked or deleted",
        }
    }
}

/// What a ticket operation does: the new ticket state (when it changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Answer 200, change nothing.
    Unchanged,
    /// Answer 200 and move the ticket to this state.
    To(TicketState),
    /// Answer 200 and finalize under the `recover` policy.
    Recover,
    /// Void the ticket and answer 410 (`reject` policy at finalize).
    VoidAndClose,
}

/// Why an operation is refused, as its status and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 410 `gate_closed`.
    Closed,
    /// 423 `gate_paused`.
    Paused,
    /// 409 `ticket_conflict`.
    Conflict,
}

/// The decision table of ticket operations: pure in (view, state, op, policy).
pub fn decide(view: GateView, state: TicketState, op: TicketOp, policy: Pending) -> Result<Effect, Refusal> {
    use GateView as V;
    use TicketOp as O;
    use TicketState as S;
    match (op, state) {
        (_, S::Voided) => Err(Refusal::Closed),
        (O::Abort, S::Open | S::Committed) => Ok(Effect::To(S::Aborted)),
        (O::Abort, S::Aborted) => Ok(Effect::Unchanged),
        (O::Abort, S::Finalized) => Err(Refusal::Conflict),
        (_, S::Aborted) => Err(Refusal::Conflict),
        (O::Finalize, S::Finalized) => Ok(Effect::Unchanged),
        (O::Check | O::Commit, S::Finalized) | (O::Finalize, S::Open) => Err(Refusal::Conflict),
        (O::Finalize, S::Committed) => match (view, policy) {
            (V::Live, _) => Ok(Effect::To(S::Finalized)),
            (V::Paused, _) => Err(Refusal::Paused),
            (V::EpochMoved | V::Closed, Pending::Recover) => Ok(Effect::Recover),
            (V::EpochMoved | V::Closed, Pending::Reject) => Ok(Effect::VoidAndClose),
        },
        (O::Check | O::Commit, S::Open | S::Committed) => match view {
            V::Live if op == O::Commit && state == S::Open => Ok(Effect::To(S::Committed)),
            V::Live => Ok(Effect::Unchanged),
            V::Paused => Err(Refusal::Paused),
            V::EpochMoved | V::Closed => Err(Refusal::Closed),
        },
    }
}

/// Applies a ticket operation: the new ticket (if it changes) or a refusal.
pub fn ticket_op(
    g: &Gate,
    t: &Ticket,
    op: TicketOp,
    revision: u64,
    now: Millis,
) -> Result<Option<Ticket>, Error> {
    let view = GateView::of(g, t.epoch);
    let msg = || {
        format!(
            "ticket {:?} ({}) cannot {}: {}",
            t.id,
            t.state.as_str(),
            op.as_str(),
            view.describe()
        )
    };
    let changed = |state: TicketState, recovered: bool| {
        let finalized_revision = (state == TicketState::Finalized).then_some(revision);
        Some(Ticket {
            state,
            recovered,
            finalized_revision,
            revision,
            updated_at: now,
            ..t.clone()
        })
    };
    match decide(view, t.state, op, g.policy.pending) {
        Ok(Effect::Unchanged) => Ok(None),
        Ok(Effect::To(state)) => Ok(changed(state, false)),
        Ok(Effect::Recover) => Ok(changed(TicketState::Finalized, true)),
        // Voiding is the change; the refusal is reported by the caller after it is written.
        Ok(Effect::VoidAndClose) => Ok(changed(TicketState::Voided, false)),
        Err(Refusal::Closed) => Err(Error::GateClosed(msg())),
        Err(Refusal::Paused) => Err(Error::GatePaused(msg())),
        Err(Refusal::Conflict) => Err(Error::TicketConflict(msg())),
    }
}

/// The tickets a terminal transition voids (every open one of the old epoch) and
/// the count of pending ones (committed, unfinalized, of the old epoch).
pub fn close_epoch(tickets: &[Ticket], old_epoch: u64, revision: u64, now: Millis) -> (Vec<Ticket>, usize) {
    let voided = tickets
        .iter()
        .filter(|t| t.epoch == old_epoch && t.state == TicketState::Open)
        .map(|t| Ticket {
            state: TicketState::Voided,
            revision,
            updated_at: now,
            ..t.clone()
        })
        .collect();
    let pending = tickets
        .iter()
        .filter(|t| t.epoch == old_epoch && t.state == TicketState::Committed)
        .count();
    (voided, pending)
}

/// The decision table of every (gate view, ticket state, operation) as
/// Markdown, one table per pending policy: what `docs/gates.md` shows.
pub fn decision_table_markdown() -> String {
    use std::fmt::Write;
    let answer = |r: Result<Effect, Refusal>| match r {
        Ok(Effect::Unchanged) => "200, unchanged".to_owned(),
        Ok(Effect::To(s)) => format!("200 → {}", s.as_str()),
        Ok(Effect::Recover) => "200 → finalized, `recovered: true`".to_owned(),
        Ok(Effect::VoidAndClose) => "410 `gate_closed` → voided".to_owned(),
        Err(Refusal::Closed) => "410 `gate_closed`, unchanged".to_owned(),
        Err(Refusal::Paused) => "423 `gate_paused`, unchanged".to_owned(),
        Err(Refusal::Conflict) => "409 `ticket_conflict`, unchanged".to_owned(),
    };
    let ops = [
        TicketOp::Check,
        TicketOp::Commit,
        TicketOp::Finalize,
        TicketOp::Abort,
    ];
    let mut out = String::new();
    for policy in [Pending::Reject, Pending::Recover] {
        let name = match policy {
            Pending::Reject => "reject",
            Pending::Recover => "recover",
        };
        let _ = writeln!(out, "\nPolicy `pending: {name}`:\n");
        let _ = writeln!(out, "| gate | ticket | check | commit | finalize | abort |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for view in ALL_GATE_VIEWS {
            for state in ALL_TICKET_STATES {
                let cells: Vec<String> = ops
                    .iter()
                    .map(|op| answer(decide(view, state, *op, policy)))
                    .collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    view.describe(),
                    state.as_str(),
                    cells.join(" | ")
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_table_is_the_decision_table() {
        let docs = include_str!("../../../docs/gates.md");
        let begin = "<!-- decision-table:begin -->";
        let end = "<!-- decision-table:end -->";
        let (Some(a), Some(b)) = (docs.find(begin), docs.find(end)) else {
            panic!("docs/gates.md lacks the decision-table markers");
        };
        let table = &docs[a + begin.len()..b];
        assert_eq!(
            table.trim(),
            decision_table_markdown().trim(),
            "docs/gates.md is out of date; paste decision_table_markdown() between the markers"
        );
    }

    fn gate(state: GateState, epoch: u64) -> Gate {
        Gate {
            id: "g".into(),
            state,
            epoch,
            policy: Policy::default(),
            meta: Value::Null,
            revision: 1,
            created_at: Millis(0),
            updated_at: Millis(0),
        }
    }

    #[test]
    fn transitions() {
        use GateState::*;
        use Transition::*;
        type Want = Result<Option<(GateState, u64)>, &'static str>;
        let cases: &[(GateState, Transition, Want)] = &[
            (Open, Pause, Ok(Some((Paused, 1)))),
            (Open, Resume, Ok(None)),
            (Open, Reopen, Ok(None)),
            (Open, Revoke, Ok(Some((Revoked, 2)))),
            (Open, Delete, Ok(Some((Deleted, 2)))),
            (Paused, Pause, Ok(None)),
            (Paused, Resume, Ok(Some((Open, 1)))),
            (Paused, Revoke, Ok(Some((Revoked, 2)))),
            (Paused, Delete, Ok(Some((Deleted, 2)))),
            (Paused, Reopen, Err("invalid_transition")),
            (Revoked, Revoke, Ok(None)),
            (Revoked, Reopen, Ok(Some((Open, 2)))),
            (Revoked, Delete, Ok(Some((Deleted, 2)))),
            (Revoked, Pause, Err("gate_closed")),
            (Revoked, Resume, Err("gate_closed")),
            (Deleted, Delete, Ok(None)),
            (Deleted, Reopen, Err("gate_closed")),
            (Deleted, Revoke, Err("gate_closed")),
            (Deleted, Pause, Err("gate_closed")),
        ];
        for (from, t, want) in cases {
            let got = transition(&gate(*from, 1), *t, 2, Millis(1));
            let got = match got {
                Ok(g) => Ok(g.map(|g| (g.state, g.epoch))),
                Err(Error::InvalidTransition(_)) => Err("invalid_transition"),
                Err(Error::GateClosed(_)) => Err("gate_closed"),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(&got, want, "{from:?} {t:?}");
        }
    }

    #[test]
    fn pause_is_backward_compatible_and_terminal_closes() {
        let open = gate(GateState::Open, 1);
        let (t, created) = admit(&open, None, "t1", None, 1, Millis(0)).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        let paused = gate(GateState::Paused, 1);
        assert!(matches!(
            ticket_op(&paused, &t, TicketOp::Commit, 2, Millis(1)),
            Err(Error::GatePaused(_))
        ));
        let committed = ticket_op(&open, &t, TicketOp::Commit, 3, Millis(2))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("changed"));
        let revoked = gate(GateState::Revoked, 2);
        let voided = ticket_op(&revoked, &committed, TicketOp::Finalize, 4, Millis(3));
        assert!(matches!(
            voided,
            Ok(Some(Ticket {
                state: TicketState::Voided,
                ..
            }))
        ));
        let recover = Gate {
            policy: Policy {
                pending: Pending::Recover,
            },
            ..revoked
        };
        let fin = ticket_op(&recover, &committed, TicketOp::Finalize, 5, Millis(3));
        assert!(matches!(
            fin,
            Ok(Some(Ticket {
                state: TicketState::Finalized,
                recovered: true,
                ..
            }))
        ));
        let (voided, pending) = close_epoch(&[t.clone(), committed], 1, 8, Millis(4));
        assert_eq!((voided.len(), pending), (1, 1));
        assert!(matches!(
            admit(&gate(GateState::Deleted, 2), None, "t2", None, 6, Millis(0)),
            Err(Error::GateClosed(_))
        ));
        assert!(matches!(
            admit(&open, Some(&t), "t1", None, 7, Millis(0)),
            Ok((_, false))
        ));
    }
}
