//! Capabilities: a ticket command made with one checks, in its own transaction,
//! that the gate is still at the capability's epoch and has not expired.

use super::*;

// ---------------------------------------------------------------------------
// Capabilities: a ticket command made with one checks, in its own transaction,
// that the gate is still at the capability's epoch and that it has not expired.

async fn capability_checks(env: Env) {
    use lockstep_core::capability::CapabilityCheck;
    let s = &env.store;
    let g = create_gate(s, "cap", Pending::Reject).await;
    let far = Millis(i64::MAX);
    let with = |cmd: Command, check: CapabilityCheck| match cmd {
        Command::Admit {
            gate, ticket, meta, ..
        } => Command::Admit {
            gate,
            ticket,
            meta,
            capability: Some(check),
        },
        Command::Ticket {
            gate,
            ticket,
            op,
            append,
            ..
        } => Command::Ticket {
            gate,
            ticket,
            op,
            append,
            capability: Some(check),
        },
        other => other,
    };
    let current = CapabilityCheck {
        epoch: g.epoch,
        expires_at: far,
    };
    exec(s, with(admit_cmd("cap", "t1"), current)).await;
    exec(s, with(ticket_cmd("cap", "t1", TicketOp::Commit, None), current)).await;
    // Expired: 401, nothing written.
    let expired = CapabilityCheck {
        epoch: g.epoch,
        expires_at: Millis(0),
    };
    let e = refused(s, with(admit_cmd("cap", "t2"), expired)).await;
    assert!(matches!(e, CoreError::Unauthorized(_)), "{e:?}");
    assert!(!tickets_of(s, "cap").await.contains_key("t2"));
    // The epoch moved on (revoke, then reopen): the old capability is 410 at
    // once, even for a ticket admitted under it; a new one works.
    transition(s, "cap", Transition::Revoke).await;
    let (reopened, ..) = transition(s, "cap", Transition::Reopen).await;
    for cmd in [
        admit_cmd("cap", "t3"),
        ticket_cmd("cap", "t1", TicketOp::Finalize, None),
    ] {
        let e = refused(s, with(cmd, current)).await;
        assert!(matches!(e, CoreError::GateClosed(_)), "{e:?}");
    }
    let fresh = CapabilityCheck {
        epoch: reopened.epoch,
        expires_at: far,
    };
    exec(s, with(admit_cmd("cap", "t3"), fresh)).await;
}

lockstep_testkit::backends!(
    crate::common::run;
    capability_checks,
);
