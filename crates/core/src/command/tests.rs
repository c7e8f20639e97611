//! Unit tests of `execute` over hand-built snapshots.

use super::*;
use crate::lease::{AcquireReq, Lease};
use crate::record::{Precondition, PutRecord};
use crate::txn::Txn;
use crate::{ChangeKind, ChangeOp, Limits, Millis};
use serde_json::json;

fn ctx(revision: u64, now: i64, limits: &Limits) -> Ctx<'_> {
    Ctx {
        revision,
        now: Millis(now),
        actor: "t",
        limits,
    }
}

fn rk(k: &str) -> RowKey {
    RowKey::Record(k.into())
}

#[test]
fn expired_rows_read_as_absent_and_are_purged_once() {
    let l = Limits::default();
    let put = Command::Put {
        key: "k".into(),
        req: PutRecord {
            value: json!(1),
            precondition: Precondition::None,
            ttl_ms: Some(10),
            force: false,
        },
    };
    let mut snap = Snapshot::from([(rk("k"), None)]);
    let e = execute(&put, &snap, &ctx(1, 100, &l)).unwrap_or_else(|e| panic!("{e}"));
    let Mutation::Put(r) = &e.mutations[0] else {
        panic!()
    };
    snap.insert(rk("k"), Some(r.clone()));
    // At 110 it is expired: expected_version 0 holds, and PUT creates.
    let create = Command::Put {
        key: "k".into(),
        req: PutRecord {
            value: json!(2),
            precondition: Precondition::ExpectedVersion(0),
            ttl_ms: None,
            force: false,
        },
    };
    let e2 = execute(&create, &snap, &ctx(2, 110, &l)).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(e2.outcome, Outcome::Put { created: true, .. }));
    let exp = Command::Expire { key: "k".into() };
    assert!(!execute(&exp, &snap, &ctx(3, 105, &l))
        .unwrap_or_else(|e| panic!("{e}"))
        .writes());
    let e3 = execute(&exp, &snap, &ctx(3, 110, &l)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e3.changes[0].op, ChangeOp::Expire);
}

#[test]
fn failed_commands_write_nothing() {
    let l = Limits::default();
    let del = Command::Delete {
        key: "k".into(),
        precondition: Precondition::None,
    };
    let snap = Snapshot::from([(rk("k"), None)]);
    assert!(matches!(
        execute(&del, &snap, &ctx(1, 0, &l)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn fenced_transactions() {
    let l = Limits::default();
    let t: Txn = serde_json::from_value(json!({
        "compare": [{"lease": "job", "token": "A"}, {"fence": {"resource": "db", "token": 7}}],
        "success": [{"put": {"key": "x", "value": 1}}]}))
    .unwrap_or_else(|e| panic!("{e}"));
    let cmd = Command::Txn(t);
    let held_by_a = Lease {
        name: "job".into(),
        token: Some("A".into()),
        holder: None,
        fence: 7,
        acquired_at: Millis(0),
        expires_at: Millis(100),
        last_waiter: 0,
    };
    let mut snap: Snapshot = cmd.rows().into_iter().map(|k| (k, None)).collect();
    snap.insert(RowKey::Lease("job".into()), Some(Row::Lease(held_by_a)));
    let e = execute(&cmd, &snap, &ctx(8, 50, &l)).unwrap_or_else(|e| panic!("{e}"));
    let Outcome::Txn(r) = &e.outcome else { panic!() };
    assert!(r.succeeded);
    assert!(e.mutations.contains(&Mutation::Put(Row::Fence {
        resource: "db".into(),
        fence: 7
    })));
    // After the lease lapsed, and once fence 9 was recorded, both compares fail.
    snap.insert(
        RowKey::Fence("db".into()),
        Some(Row::Fence {
            resource: "db".into(),
            fence: 9,
        }),
    );
    let e = execute(&cmd, &snap, &ctx(10, 150, &l)).unwrap_or_else(|e| panic!("{e}"));
    let Outcome::Txn(r) = &e.outcome else { panic!() };
    assert_eq!((r.succeeded, r.failed.clone()), (false, vec![0, 1]));
    assert!(e.mutations.is_empty());
}

fn changes_of(e: &Effect) -> Vec<(u32, ChangeKind, &str, ChangeOp, &str)> {
    e.changes
        .iter()
        .map(|c| (c.index, c.kind, c.key.as_str(), c.op, c.actor.as_str()))
        .collect()
}

#[test]
fn recording_a_fence_is_a_write_with_a_change() {
    let l = Limits::default();
    let fenced = |token: u64| {
        let t: Txn =
            serde_json::from_value(json!({"compare": [{"fence": {"resource": "db", "token": token}}]}))
                .unwrap_or_else(|e| panic!("{e}"));
        Command::Txn(t)
    };
    let recorded = |fence: u64| -> Snapshot {
        [(
            RowKey::Fence("db".into()),
            Some(Row::Fence {
                resource: "db".into(),
                fence,
            }),
        )]
        .into_iter()
        .collect()
    };
    // A first fence, and a higher one: each is a write with a `fence` change.
    for snap in [Snapshot::new(), recorded(3)] {
        let e = execute(&fenced(5), &snap, &ctx(9, 0, &l)).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.writes());
        assert_eq!(
            changes_of(&e),
            [(0, ChangeKind::Lease, "db", ChangeOp::Fence, "t")]
        );
    }
    // The same fence again records nothing new: no write.
    let e = execute(&fenced(5), &recorded(5), &ctx(9, 0, &l)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!e.writes() && e.mutations.is_empty(), "{e:?}");
}

#[test]
fn taking_over_an_unswept_expired_lease_logs_its_expiry_first() {
    let l = Limits::default();
    let cmd = Command::Acquire {
        name: "job".into(),
        req: AcquireReq {
            ttl_ms: 1000,
            holder: None,
            token: "B".into(),
            wait: None,
        },
    };
    let lapsed = Lease {
        name: "job".into(),
        token: Some("A".into()),
        holder: None,
        fence: 7,
        acquired_at: Millis(0),
        expires_at: Millis(100),
        last_waiter: 0,
    };
    let mut snap: Snapshot = cmd.rows().into_iter().map(|k| (k, None)).collect();
    snap.insert(RowKey::Lease("job".into()), Some(Row::Lease(lapsed.clone())));
    let e = execute(&cmd, &snap, &ctx(8, 150, &l)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        changes_of(&e),
        [
            (
                0,
                ChangeKind::Lease,
                "job",
                ChangeOp::Expire,
                crate::change::SYSTEM_ACTOR
            ),
            (1, ChangeKind::Lease, "job", ChangeOp::Acquire, "t"),
        ]
    );
    // Swept already (no token), or free: only the acquire.
    snap.insert(
        RowKey::Lease("job".into()),
        Some(Row::Lease(Lease {
            token: None,
            ..lapsed
        })),
    );
    let e = execute(&cmd, &snap, &ctx(8, 150, &l)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        changes_of(&e),
        [(0, ChangeKind::Lease, "job", ChangeOp::Acquire, "t")]
    );
}

#[test]
fn typed_answers_round_trip_through_the_outcome() {
    use super::answer::{AcquireAnswer, MarkedRead, RecordDeleted, Released, TicketAnswer};
    fn round_trip<A: Answer + Clone + PartialEq + std::fmt::Debug>(a: A) {
        assert_eq!(A::try_from(a.clone().into()), Ok(a));
    }
    round_trip(RecordDeleted { key: "k".into() });
    round_trip(Released { released: true });
    round_trip(MarkedRead);
    round_trip(AcquireAnswer::Queued {
        id: 3,
        held: Error::LeaseLost("x".into()),
    });
    round_trip(TicketAnswer::Voided { detail: "d".into() });
    // Another command's answer is given back, never misread.
    let other = Outcome::Released { released: false };
    assert_eq!(RecordDeleted::try_from(other.clone()), Err(other.clone()));
    assert_eq!(AcquireAnswer::try_from(other.clone()), Err(other));
}

#[test]
fn every_force_put_is_marked_forced() {
    let l = Limits::default();
    for precondition in [Precondition::None, Precondition::ExpectedVersion(12345)] {
        for force in [false, true] {
            let put = Command::Put {
                key: "k".into(),
                req: PutRecord {
                    value: json!(1),
                    precondition: precondition.clone(),
                    ttl_ms: None,
                    force,
                },
            };
            let snap = Snapshot::from([(rk("k"), None)]);
            match execute(&put, &snap, &ctx(1, 0, &l)) {
                Ok(e) => assert_eq!(e.changes[0].forced, force, "{precondition:?}"),
                // Without force, the precondition refuses the write.
                Err(e) => assert!(!force && precondition != Precondition::None, "{e}"),
            }
        }
    }
}

/// A feed `f` with `max_age_ms: 500` and, when `stored_at` is given, entry `e1` at that time.
fn aged_feed(cmd: &Command, stored_at: Option<i64>) -> Snapshot {
    use crate::feed::{Entry, FeedConfig};
    let mut snap: Snapshot = cmd.rows().into_iter().map(|k| (k, None)).collect();
    snap.insert(
        RowKey::FeedConfig("f".into()),
        Some(Row::FeedConfig {
            feed: "f".into(),
            config: FeedConfig {
                max_age_ms: Some(500),
                ..FeedConfig::default()
            },
        }),
    );
    if let Some(at) = stored_at {
        let e = Entry {
            feed: "f".into(),
            id: "e1".into(),
            at: Millis(at),
            data: serde_json::Map::new(),
            revision: 1,
            read: false,
            scrubbed: false,
        };
        snap.insert(
            RowKey::FeedEntry("f".into(), "e1".into()),
            Some(Row::FeedEntry(e)),
        );
    }
    snap
}

#[test]
fn an_entry_hidden_by_age_is_absent_to_delete() {
    let l = Limits::default();
    let del = Command::DeleteEntry {
        feed: "f".into(),
        id: "e1".into(),
    };
    let snap = aged_feed(&del, Some(1_000));
    // Visible until 500 ms old; from then on, 404 and nothing written.
    let e = execute(&del, &snap, &ctx(2, 1_499, &l)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.changes[0].op, ChangeOp::Delete);
    assert!(matches!(
        execute(&del, &snap, &ctx(2, 1_500, &l)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn an_import_element_past_the_age_is_skipped() {
    use crate::feed::NewEntry;
    let l = Limits::default();
    let entry = |id: &str, at: i64| NewEntry {
        id: id.into(),
        data: serde_json::Map::new(),
        at: Some(Millis(at)),
    };
    let import = Command::Import {
        feed: "f".into(),
        entries: vec![entry("old", 1_000), entry("new", 1_501)],
    };
    let snap = aged_feed(&import, None);
    let e = execute(&import, &snap, &ctx(2, 1_500, &l)).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        e.outcome,
        Outcome::Imported {
            imported: 1,
            skipped: 1
        }
    ));
    assert_eq!(e.changes.len(), 1);
    assert!(matches!(&e.mutations[..], [Mutation::Put(Row::FeedEntry(x))] if x.id == "new"));
}
