//! Feeds, gates and tickets, idempotency keys.

use crate::common::Ctx;
use futures_util::TryStreamExt;
use lockstep_client::api::feeds::{AppendBody, EntriesQuery, ReadBody};
use lockstep_client::api::gates::{AdmitBody, TicketsQuery};
use lockstep_client::api::idempotency::{BeginBody, Begun};
use lockstep_client::api::GateState;
use lockstep_client::{Client, Retry, TicketOp, Transition};
use serde_json::json;

lockstep_testkit::backends!(crate::common::run; feed_pages, gate_tickets, idempotency_keys);

async fn feed_pages(c: Ctx) {
    for i in 0..7 {
        let body = AppendBody {
            id: format!("e/{i}"),
            data: json!({"i": i}),
            at: None,
        };
        assert!(c.app.append("photos/a", &body).await.unwrap().created);
    }
    let again = AppendBody {
        id: "e/0".into(),
        data: json!({"i": 99}),
        at: None,
    };
    assert!(!c.app.append("photos/a", &again).await.unwrap().created);
    let q = EntriesQuery {
        limit: Some(3),
        order: Some("asc".into()),
        cursor: None,
    };
    let ids: Vec<String> = c
        .app
        .entries("photos/a", q)
        .map_ok(|e| e.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids.len(), 7);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7);
    assert_eq!(c.app.feed("photos/a").await.unwrap().unread_count, 7);
    let read = ReadBody {
        all: Some(true),
        ..Default::default()
    };
    c.app.mark_read("photos/a", &read).await.unwrap();
    assert_eq!(c.app.feed("photos/a").await.unwrap().unread_count, 0);
    c.app.delete_entry("photos/a", "e/3").await.unwrap();
    let feeds: Vec<_> = c.app.feeds(Default::default()).try_collect().await.unwrap();
    assert_eq!(feeds.len(), 1);
    assert_eq!(feeds[0].entries, 6);
}

async fn gate_tickets(c: Ctx) {
    let g = c.app.put_gate("upload/1", &Default::default()).await.unwrap();
    assert_eq!(g.state, GateState::Open);
    for i in 0..3 {
        let body = AdmitBody {
            ticket_id: Some(format!("t{i}")),
            meta: None,
        };
        assert!(c.app.admit("upload/1", &body).await.unwrap().created);
    }
    c.app
        .ticket("upload/1", "t0", TicketOp::Commit, &Default::default())
        .await
        .unwrap();
    let t = c
        .app
        .ticket("upload/1", "t0", TicketOp::Finalize, &Default::default())
        .await
        .unwrap();
    assert!(t.finalized_revision.is_some());
    let q = TicketsQuery {
        limit: Some(2),
        ..Default::default()
    };
    let all: Vec<_> = c.app.tickets("upload/1", q).try_collect().await.unwrap();
    assert_eq!(all.len(), 3);
    let r = c.app.transition("upload/1", Transition::Revoke).await.unwrap();
    assert_eq!(r.voided, 2);
    assert_eq!(r.gate.state, GateState::Revoked);
    let late = AdmitBody {
        ticket_id: Some("late".into()),
        meta: None,
    };
    let e = c.app.admit("upload/1", &late).await.unwrap_err();
    assert_eq!(e.code(), Some("gate_closed"));
    assert_eq!(e.status(), Some(410));
}

async fn idempotency_keys(c: Ctx) {
    let body = BeginBody {
        fingerprint: "charge:42".into(),
        lock_ms: 30_000,
    };
    let Begun::Started(s) = c
        .app
        .begin_idempotent("charges", "order/42", &body)
        .await
        .unwrap()
    else {
        panic!("not started");
    };
    // A second owner is refused while the key is in use (no retries here).
    let once = Client::builder(c.server.url.as_str())
        .retry(Retry::none())
        .build()
        .unwrap()
        .ns("app");
    let e = once
        .begin_idempotent("charges", "order/42", &body)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("idempotency_key_in_use"));
    assert!(e.is_retryable());
    c.app
        .complete_idempotent("charges", "order/42", &s.token, &json!({"ok": true}))
        .await
        .unwrap();
    match c
        .app
        .begin_idempotent("charges", "order/42", &body)
        .await
        .unwrap()
    {
        Begun::Completed(r) => assert_eq!(r.response, json!({"ok": true})),
        other => panic!("not a replay: {other:?}"),
    }
    let k = c.app.idempotency_key("charges", "order/42").await.unwrap();
    assert_eq!(k.key, "order/42");
}
