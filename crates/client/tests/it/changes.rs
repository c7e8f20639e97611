//! The change log pager and the watch stream's resumption.

use crate::common::Ctx;
use crate::proxy::Proxy;
use futures_util::TryStreamExt;
use lockstep_client::api::changes::{ChangesQuery, WatchQuery};
use lockstep_client::api::records::PutRecordBody;
use lockstep_client::api::ChangeOp;
use lockstep_client::Client;
use serde_json::json;
use std::time::Duration;

lockstep_testkit::backends!(crate::common::run; changes_page_in_order, watch_resumes_without_repeats);

async fn changes_page_in_order(c: Ctx) {
    for i in 0..6 {
        c.app
            .put(&format!("k{i}"), &PutRecordBody::new(json!(i)))
            .await
            .unwrap();
    }
    let q = ChangesQuery {
        after: Some("0".into()),
        limit: Some(2),
        ..Default::default()
    };
    let changes: Vec<_> = c.app.changes(q).try_collect().await.unwrap();
    assert_eq!(changes.len(), 6);
    assert!(changes.windows(2).all(|w| w[0].revision < w[1].revision));
    assert!(changes.iter().all(|ch| ch.op == ChangeOp::Put));
}

async fn watch_resumes_without_repeats(c: Ctx) {
    let proxy = Proxy::start(&c.server.url).await;
    let through = Client::new(&proxy.url).unwrap().ns("app");
    let q = WatchQuery {
        after: Some("0".into()),
        ..Default::default()
    };
    let mut events = through.watch(q);
    let mut seen = Vec::new();
    for i in 0..3 {
        c.app
            .put(&format!("a{i}"), &PutRecordBody::new(json!(i)))
            .await
            .unwrap();
    }
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(ev.revision);
    }
    // The connection drops; writes go on meanwhile; the stream resumes.
    proxy.cut_all();
    for i in 0..3 {
        c.app
            .put(&format!("b{i}"), &PutRecordBody::new(json!(i)))
            .await
            .unwrap();
    }
    while seen.len() < 6 {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ev.changes.len(), 1);
        seen.push(ev.revision);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let log: Vec<u64> = c
        .app
        .changes(ChangesQuery {
            after: Some("0".into()),
            ..Default::default()
        })
        .map_ok(|ch| ch.revision)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(seen, log);
}
