//! Admission and `PUT` rules of §15.

use super::*;

// ---------------------------------------------------------------------------
// 3. Admission and PUT (§15).

async fn admission(env: Env) {
    let s = &env.store;
    create_gate(s, "a", Pending::Reject).await;
    create_gate(s, "b", Pending::Reject).await;
    let t = admit(s, "a", "t1").await;
    assert_eq!((t.gate.as_str(), t.epoch), ("a", 1));
    // The same id, same gate, still open: returned as is, nothing written.
    let rev = probe_revision(s).await;
    let c = exec(s, admit_cmd("a", "t1")).await;
    assert_eq!(
        c.outcome,
        Outcome::Admitted {
            ticket: t.clone(),
            created: false
        }
    );
    assert_eq!(c.revision, rev, "a repeated admission writes nothing");
    // Ticket ids are unique per namespace: another gate's id is a conflict.
    assert!(matches!(
        refused(s, admit_cmd("b", "t1")).await,
        CoreError::TicketConflict(_)
    ));
    // A ticket of gate a addressed through gate b does not exist there.
    for op in OPS {
        assert!(
            matches!(
                refused(s, ticket_cmd("b", "t1", op, None)).await,
                CoreError::NotFound(_)
            ),
            "{op:?}"
        );
    }
    assert_eq!(tickets_of(s, "a").await["t1"], t, "untouched through gate b");
    // No longer open: a conflict.
    ticket_ok(s, "a", "t1", TicketOp::Commit).await;
    assert!(matches!(
        refused(s, admit_cmd("a", "t1")).await,
        CoreError::TicketConflict(_)
    ));
    // Paused: 423; resumed: admitted.
    transition(s, "a", Transition::Pause).await;
    assert!(matches!(
        refused(s, admit_cmd("a", "t2")).await,
        CoreError::GatePaused(_)
    ));
    // An id admitted before the pause and still open is returned, even paused.
    admit(s, "b", "b1").await;
    transition(s, "b", Transition::Pause).await;
    let c = exec(s, admit_cmd("b", "b1")).await;
    assert!(
        matches!(c.outcome, Outcome::Admitted { created: false, .. }),
        "{c:?}"
    );
    transition(s, "b", Transition::Resume).await;
    transition(s, "a", Transition::Resume).await;
    admit(s, "a", "t2").await;
    // Revoked: 410, also for the open id of the old epoch (voided now).
    transition(s, "a", Transition::Revoke).await;
    for id in ["t2", "t3"] {
        let e = refused(s, admit_cmd("a", id)).await;
        let ok = if id == "t2" {
            // t2 exists and is no longer open.
            matches!(e, CoreError::TicketConflict(_))
        } else {
            matches!(e, CoreError::GateClosed(_))
        };
        assert!(ok, "admit {id} on a revoked gate: {e:?}");
    }
    // Reopened: a new epoch; the old id stays used.
    let (g, _, _, _) = transition(s, "a", Transition::Reopen).await;
    assert_eq!(g.epoch, 3);
    let t3 = admit(s, "a", "t3").await;
    assert_eq!(t3.epoch, 3);
    assert!(matches!(
        refused(s, admit_cmd("a", "t2")).await,
        CoreError::TicketConflict(_)
    ));
    transition(s, "a", Transition::Delete).await;
    assert!(matches!(
        refused(s, admit_cmd("a", "t4")).await,
        CoreError::GateClosed(_)
    ));
}

async fn put_gate_rules(env: Env) {
    let s = &env.store;
    let g = create_gate(s, "p", Pending::Reject).await;
    transition(s, "p", Transition::Pause).await;
    // PUT of an existing gate updates policy and meta only.
    let c = exec(
        s,
        put_gate_cmd("p", Some(Pending::Recover), Some(json!({"v": 2}))),
    )
    .await;
    let Outcome::GatePut { gate, created } = c.outcome else {
        panic!("{c:?}")
    };
    assert!(!created);
    assert_eq!((gate.state, gate.epoch), (GateState::Paused, 1));
    assert_eq!(gate.policy.pending, Pending::Recover);
    assert_eq!(gate.meta, json!({"v": 2}));
    assert_eq!(gate.created_at, g.created_at);
    assert_eq!(get_gate(s, "p").await.unwrap(), gate);
    // Omitted fields keep their values.
    let c = exec(s, put_gate_cmd("p", None, None)).await;
    let Outcome::GatePut { gate: kept, .. } = c.outcome else {
        panic!("{c:?}")
    };
    assert_eq!((kept.policy, &kept.meta), (gate.policy, &gate.meta));
    // Revoked: PUT still updates; deleted: 410.
    transition(s, "p", Transition::Revoke).await;
    let c = exec(s, put_gate_cmd("p", Some(Pending::Reject), None)).await;
    assert!(matches!(c.outcome, Outcome::GatePut { created: false, .. }));
    transition(s, "p", Transition::Delete).await;
    let before = get_gate(s, "p").await.unwrap();
    assert!(matches!(
        refused(s, put_gate_cmd("p", None, Some(json!(1)))).await,
        CoreError::GateClosed(_)
    ));
    assert_eq!(get_gate(s, "p").await.unwrap(), before);
    // A default gate rejects pending tickets.
    let c = exec(s, put_gate_cmd("d", None, None)).await;
    let Outcome::GatePut { gate, created: true } = c.outcome else {
        panic!("{c:?}")
    };
    assert_eq!(gate.policy.pending, Pending::Reject);
}

lockstep_testkit::backends!(
    crate::common::run;
    admission,
    put_gate_rules,
);
