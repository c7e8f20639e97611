//! Each checker on small hand-made histories: a clean one passes, and a
//! planted violation of its invariant is reported.

#![allow(clippy::unwrap_used)]

use super::history::{History, Kind, Op};
use super::snapshot::{FeedState, Snapshot};
use super::verify;
use lockstep_api::changes::Change;
use lockstep_api::feeds::Entry;
use lockstep_api::{ChangeKind, ChangeOp};
use serde_json::{json, Value};

fn op(kind: Kind, path: &str, at: (u64, u64), status: u16, request: Value, answer: Value) -> Op {
    Op {
        client: 0,
        kind,
        method: "POST",
        path: path.to_owned(),
        instance: 0,
        idempotency_key: None,
        request,
        start_us: at.0,
        end_us: at.1,
        status,
        answer,
        replayed: false,
    }
}

fn history(ops: Vec<Op>) -> History {
    History { ops }
}

fn entry(id: &str, read: bool) -> Entry {
    Entry {
        id: id.to_owned(),
        at: "2026-01-01T00:00:00Z".into(),
        data: json!({"n": 1}).as_object().cloned().unwrap(),
        read,
        revision: 1,
        cursor: String::new(),
    }
}

fn change(revision: u64, index: u32) -> Change {
    Change {
        revision,
        index,
        kind: ChangeKind::Record,
        key: "k".into(),
        op: ChangeOp::Put,
        actor: "anonymous".into(),
        forced: false,
        at: "2026-01-01T00:00:00Z".into(),
    }
}

fn cas(at: (u64, u64), from: u64, version: u64) -> Op {
    op(
        Kind::CounterWrite,
        "/records/counter-0",
        at,
        200,
        json!({"value": 1, "expected_version": from}),
        json!({"key": "counter-0", "version": version, "revision": version}),
    )
}

#[test]
fn counters_catch_a_lost_update() {
    let mut s = Snapshot::default();
    s.counters.insert("counter-0".into(), 2);
    let h = history(vec![cas((0, 1), 0, 5), cas((2, 3), 5, 7)]);
    assert!(verify::counters(&h, &s).violations.is_empty());
    // Two writes from version 5, and the counter shows only two of three.
    let h = history(vec![cas((0, 1), 0, 5), cas((2, 3), 5, 7), cas((2, 4), 5, 8)]);
    let inv = verify::counters(&h, &s);
    assert_eq!(inv.violations.len(), 2, "{:?}", inv.violations);
}

fn acquire(at: (u64, u64), token: &str, fence: u64) -> Op {
    op(
        Kind::LeaseAcquire,
        "/leases/lock-0/acquire",
        at,
        200,
        json!({}),
        json!({"token": token, "fence": fence}),
    )
}

fn release(at: (u64, u64), token: &str) -> Op {
    op(
        Kind::LeaseRelease,
        "/leases/lock-0/release",
        at,
        200,
        json!({"token": token}),
        json!({"released": true}),
    )
}

#[test]
fn leases_catch_overlapping_holders_and_a_smaller_fence() {
    let clean = history(vec![
        acquire((0, 1), "a", 10),
        release((5, 6), "a"),
        acquire((4, 7), "b", 12),
        release((9, 10), "b"),
    ]);
    assert!(verify::leases(&clean).violations.is_empty());
    // b held from 3, a until 5: both surely held at 4.
    let overlap = history(vec![
        acquire((0, 1), "a", 10),
        release((5, 6), "a"),
        acquire((2, 3), "b", 12),
        release((9, 10), "b"),
    ]);
    assert_eq!(verify::leases(&overlap).violations.len(), 1);
    // c acquired after a's acquire was answered, with a smaller fence.
    let fences = history(vec![
        acquire((0, 1), "a", 10),
        release((2, 3), "a"),
        acquire((4, 5), "c", 9),
        release((6, 7), "c"),
    ]);
    assert_eq!(verify::leases(&fences).violations.len(), 1);
}

fn ticket(kind: Kind, step: &str, at: (u64, u64), status: u16, answer: Value) -> Op {
    let path = match kind {
        Kind::TicketAdmit => "/gates/gate-1/tickets".to_owned(),
        _ => format!("/gates/gate-1/tickets/t1/{step}"),
    };
    op(kind, &path, at, status, json!({}), answer)
}

#[test]
fn gates_catch_a_stale_ticket_accepted() {
    let mut s = Snapshot::default();
    s.gate_feeds.insert(1, FeedState::default());
    let admit = ticket(
        Kind::TicketAdmit,
        "",
        (0, 1),
        201,
        json!({"ticket_id": "t1", "epoch": 1}),
    );
    let revoke = op(
        Kind::GateRevoke,
        "/gates/gate-1/revoke",
        (2, 3),
        200,
        json!(null),
        json!({"id": "gate-1", "epoch": 2, "changed": true}),
    );
    // A commit that started after the revoke's answer succeeded: stale.
    let commit = ticket(Kind::TicketCommit, "commit", (4, 5), 200, json!({}));
    let h = history(vec![admit.clone(), revoke.clone(), commit]);
    assert_eq!(verify::gates(&h, &s).violations.len(), 1);
    // Refused (410): fine. Committed before, then finalized with
    // `recovered: true` under gate-1's `recover` policy: allowed.
    let refused = ticket(Kind::TicketCommit, "commit", (4, 5), 410, json!({}));
    assert!(
        verify::gates(&history(vec![admit.clone(), revoke.clone(), refused]), &s)
            .violations
            .is_empty()
    );
    let early = ticket(Kind::TicketCommit, "commit", (1, 2), 200, json!({}));
    let recovered = ticket(
        Kind::TicketFinalize,
        "finalize",
        (4, 5),
        200,
        json!({"recovered": true}),
    );
    s.gate_feeds.get_mut(&1).unwrap().entries.push(entry("t1", false));
    let h = history(vec![admit, revoke, early, recovered]);
    assert!(
        verify::gates(&h, &s).violations.is_empty(),
        "{:?}",
        verify::gates(&h, &s).violations
    );
}

fn keyed(status: u16, answer: Value, replayed: bool) -> Op {
    let mut o = op(Kind::Keyed, "/txn", (0, 1), status, json!({}), answer);
    o.idempotency_key = Some("k1".into());
    o.replayed = replayed;
    o
}

#[test]
fn idempotency_catches_a_different_replay_and_a_double_execution() {
    let mut s = Snapshot {
        keyed_counter: 1,
        ..Snapshot::default()
    };
    let a = json!({"succeeded": true, "revision": 4});
    let clean = history(vec![keyed(200, a.clone(), false), keyed(200, a.clone(), true)]);
    assert!(verify::idempotency(&clean, &s).violations.is_empty());
    let other = history(vec![
        keyed(200, a.clone(), false),
        keyed(200, json!({"succeeded": true, "revision": 5}), false),
    ]);
    s.keyed_counter = 2;
    // Different bodies, executed twice, and the counter moved twice.
    assert_eq!(verify::idempotency(&other, &s).violations.len(), 3);
}

#[test]
fn changes_catch_a_gap_and_disorder() {
    let mut s = Snapshot {
        changes: vec![change(5, 0), change(7, 0), change(7, 1)],
        ..Snapshot::default()
    };
    let h = history(vec![cas((0, 1), 0, 5), cas((2, 3), 5, 7)]);
    assert!(verify::changes(&h, &s).violations.is_empty());
    let h = history(vec![cas((0, 1), 0, 5), cas((2, 3), 5, 7), cas((4, 5), 7, 9)]);
    assert_eq!(
        verify::changes(&h, &s).violations.len(),
        1,
        "revision 9 is missing"
    );
    s.changes.swap(1, 2);
    assert_eq!(verify::changes(&h, &s).violations.len(), 2);
}

fn append(id: &str, status: u16, created: bool) -> Op {
    op(
        Kind::FeedAppend,
        "/feeds/events/entries",
        (0, 1),
        status,
        json!({"id": id, "data": {"n": 1}}),
        json!({"id": id, "created": created}),
    )
}

#[test]
fn feeds_catch_missing_duplicate_and_foreign_entries() {
    let mut s = Snapshot {
        run: "r-".into(),
        ..Snapshot::default()
    };
    s.feed = FeedState {
        entries: vec![entry("r-a", false), entry("r-b", false)],
        unread_count: 2,
    };
    let h = history(vec![append("r-a", 201, true), append("r-b", 201, true)]);
    assert!(verify::feeds(&h, &s).violations.is_empty());
    // r-b twice, r-x never appended, r-c acknowledged but missing, and the
    // unread count is off.
    s.feed.entries.push(entry("r-b", false));
    s.feed.entries.push(entry("r-x", false));
    let h = history(vec![
        append("r-a", 201, true),
        append("r-b", 201, true),
        append("r-c", 201, true),
    ]);
    let inv = verify::feeds(&h, &s);
    assert_eq!(inv.violations.len(), 4, "{:?}", inv.violations);
}

#[test]
fn durations_parse() {
    use super::parse_duration;
    use std::time::Duration;
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
    assert!(parse_duration("x").is_err());
    assert!(parse_duration("3h").is_err());
}

fn capped(n: u64, status: u16) -> Op {
    let id = format!("r-{n:02}");
    op(
        Kind::CappedAppend,
        "/feeds/events-capped/entries",
        (n * 2, n * 2 + 1),
        status,
        json!({"id": id, "data": {"n": 1}}),
        json!({"id": id, "created": true, "at": format!("2026-01-01T00:00:{n:02}.000Z")}),
    )
}

#[test]
fn retention_catches_an_overfull_feed_and_a_missing_recent_entry() {
    use super::workloads::CAPPED_MAX;
    let total = CAPPED_MAX as u64 + 5;
    let h = history((0..total).map(|n| capped(n, 201)).collect());
    let newest = |k: u64| -> Vec<Entry> {
        (total - k..total)
            .map(|n| entry(&format!("r-{n:02}"), false))
            .collect()
    };
    let mut s = Snapshot {
        run: "r-".into(),
        ..Snapshot::default()
    };
    s.capped = FeedState {
        entries: newest(CAPPED_MAX as u64),
        unread_count: CAPPED_MAX as u64,
    };
    let inv = verify::retention(&h, &s);
    assert!(inv.violations.is_empty(), "{:?}", inv.violations);
    assert_eq!(inv.provoked, "5 appended past the cap");
    // One entry too many: over the cap.
    s.capped.entries = newest(CAPPED_MAX as u64 + 1);
    s.capped.unread_count += 1;
    assert_eq!(verify::retention(&h, &s).violations.len(), 1);
    // The newest entry missing (an older one kept instead).
    s.capped.entries = newest(CAPPED_MAX as u64 + 1);
    s.capped.entries.pop();
    s.capped.unread_count -= 1;
    let inv = verify::retention(&h, &s);
    assert_eq!(inv.violations.len(), 1, "{:?}", inv.violations);
    assert!(inv.violations[0].contains("0 newer"), "{:?}", inv.violations);
    // With that append unanswered instead, its absence is no violation.
    let mut h = h;
    if let Some(last) = h.ops.last_mut() {
        last.status = 0;
    }
    assert!(verify::retention(&h, &s).violations.is_empty());
}

fn paused(kind: Kind, step: &str, at: (u64, u64), status: u16, answer: Value) -> Op {
    let path = match kind {
        Kind::GatePause | Kind::GateResume => format!("/gates/gate-paused/{step}"),
        Kind::TicketAdmit => "/gates/gate-paused/tickets".to_owned(),
        _ => format!("/gates/gate-paused/tickets/t1/{step}"),
    };
    op(kind, &path, at, status, json!({}), answer)
}

#[test]
fn pauses_catch_a_ticket_accepted_while_paused_and_a_lost_ticket() {
    let pause = paused(
        Kind::GatePause,
        "pause",
        (0, 2),
        200,
        json!({"state": "paused", "changed": true}),
    );
    let resume = paused(
        Kind::GateResume,
        "resume",
        (10, 11),
        200,
        json!({"state": "open", "changed": true}),
    );
    let refused = json!({"code": "gate_paused"});
    let clean = history(vec![
        pause.clone(),
        paused(Kind::TicketCommit, "commit", (3, 4), 423, refused.clone()),
        paused(Kind::TicketAdmit, "", (5, 6), 423, refused.clone()),
        resume.clone(),
        paused(Kind::TicketCommit, "commit", (12, 13), 200, json!({})),
    ]);
    let inv = verify::pauses(&clean);
    assert!(inv.violations.is_empty(), "{:?}", inv.violations);
    assert_eq!(inv.provoked, "2 ticket steps while surely paused");
    // Accepted while surely paused; and a ticket refused 410 after resume.
    let h = history(vec![
        pause.clone(),
        paused(Kind::TicketCommit, "commit", (3, 4), 200, json!({})),
        resume.clone(),
        paused(
            Kind::TicketCommit,
            "commit",
            (12, 13),
            410,
            json!({"code": "gate_closed"}),
        ),
    ]);
    assert_eq!(verify::pauses(&h).violations.len(), 2);
    // A resume that overlapped the pause may have come after it: no window.
    let racing = paused(
        Kind::GateResume,
        "resume",
        (1, 3),
        200,
        json!({"state": "open", "changed": true}),
    );
    let h = history(vec![
        pause,
        racing,
        paused(Kind::TicketCommit, "commit", (5, 6), 200, json!({})),
        resume,
    ]);
    assert!(verify::pauses(&h).violations.is_empty());
}
