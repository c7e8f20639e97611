//! Gate transitions and ticket steps (SPEC §7, docs/gates.md).

use super::*;

impl Model {
    /// docs/gates.md, "Gate transitions".
    pub(super) fn transition(&mut self, id: &str, t: Transition, rev: u64) -> Expect {
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
    pub(super) fn ticket_op(&mut self, g: &GateRow, t: &TicketView, op: TicketOp, rev: u64) -> Expect {
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
}
