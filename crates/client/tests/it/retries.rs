//! Retries: a write whose answer was lost is retried with the same
//! `Idempotency-Key` and applies once; refusals that are final are not retried.

use crate::common::Ctx;
use crate::proxy::Proxy;
use futures_util::TryStreamExt;
use lockstep_client::api::changes::ChangesQuery;
use lockstep_client::api::feeds::AppendBody;
use lockstep_client::api::records::PutRecordBody;
use lockstep_client::api::{Compare, Op, Txn};
use lockstep_client::{Client, Error, Method, Retry};
use serde_json::json;
use std::time::Duration;

lockstep_testkit::backends!(crate::common::run; lost_answer_applies_once, unavailable_is_retried, raw_call_is_one_attempt, final_refusals_are_not_retried, unreachable_is_transport);

async fn lost_answer_applies_once(c: Ctx) {
    let proxy = Proxy::start(&c.server.url).await;
    let app = Client::new(&proxy.url).unwrap().ns("app");
    // The server applies the write; its answer never reaches the client.
    proxy.drop_next_answer();
    let w = app.put("once", &PutRecordBody::new(json!(1))).await.unwrap();
    assert!(w.replayed, "the retry got the stored answer");
    assert!(w.created);
    // A transaction too: applied twice, its compare would fail the second time.
    c.app.put("n", &PutRecordBody::new(json!(0))).await.unwrap();
    proxy.drop_next_answer();
    let r = app
        .txn(&Txn {
            compare: vec![Compare::Value {
                key: "n".into(),
                value: json!(0),
            }],
            success: vec![Op::put("n", json!(1))],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(r.succeeded, "the replayed answer is the first attempt's");
    proxy.drop_next_answer();
    let e = app
        .append(
            "f",
            &AppendBody {
                id: "x".into(),
                data: json!({}),
                at: None,
            },
        )
        .await
        .unwrap();
    assert!(e.created);
    let puts: Vec<_> = c
        .app
        .changes(ChangesQuery {
            after: Some("0".into()),
            prefix: Some("once".into()),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(puts.len(), 1, "applied once: {puts:?}");
    assert_eq!(c.app.get("once").await.unwrap().unwrap().version, w.put.version);
}

async fn final_refusals_are_not_retried(c: Ctx) {
    c.app.put("a", &PutRecordBody::new(json!(1))).await.unwrap();
    // A version mismatch is final: answered at once, even with many attempts.
    let app = Client::builder(c.server.url.as_str())
        .retry(Retry {
            attempts: 50,
            base: Duration::from_secs(5),
            ..Retry::default()
        })
        .build()
        .unwrap()
        .ns("app");
    let started = std::time::Instant::now();
    let e = app
        .put("a", &PutRecordBody::new(json!(2)).expected_version(0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("version_mismatch"));
    assert!(!e.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(5), "no backoff happened");
    let e = app.merge_patch("absent", &json!({}), None).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
}

async fn unreachable_is_transport(_c: Ctx) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let app = Client::builder(url)
        .retry(Retry {
            attempts: 3,
            base: Duration::from_millis(1),
            ..Retry::default()
        })
        .build()
        .unwrap()
        .ns("app");
    let e = app.get("a").await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
}

async fn unavailable_is_retried(c: Ctx) {
    let proxy = Proxy::start(&c.server.url).await;
    let app = Client::new(&proxy.url).unwrap().ns("app");
    for (status, code) in [
        (503, "unavailable"),
        (429, "too_many_requests"),
        (409, "idempotency_key_in_use"),
    ] {
        proxy.answer_next(status, code);
        let w = app
            .put(code, &PutRecordBody::new(json!(1)).expected_version(0))
            .await
            .unwrap();
        assert!(
            w.created && !w.replayed,
            "{code}: the first attempt was never forwarded"
        );
    }
    // Without retries, the refusal is the caller's, decoded.
    let once = Client::builder(proxy.url.as_str())
        .retry(Retry::none())
        .build()
        .unwrap()
        .ns("app");
    proxy.answer_next(503, "unavailable");
    let e = once.put("x", &PutRecordBody::new(json!(1))).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(503), Some("unavailable")));
    assert!(e.is_retryable());
    assert!(c.app.get("x").await.unwrap().is_none());
    // A 2xx body that is not the answer's type is a decode error, not transport.
    proxy.answer_next(200, "not_a_record");
    let e = once.put("x", &PutRecordBody::new(json!(1))).await.unwrap_err();
    assert!(matches!(e, Error::Decode(_)), "{e:?}");
    assert!(!e.is_retryable());
}

async fn raw_call_is_one_attempt(c: Ctx) {
    let proxy = Proxy::start(&c.server.url).await;
    let client = Client::new(&proxy.url).unwrap();
    let body = json!({"value": 1});
    proxy.answer_next(503, "unavailable");
    let e = client
        .call(Method::PUT, "/v1/ns/app/records/r", Some(&body), None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(503));
    let (status, first) = client
        .call(Method::PUT, "/v1/ns/app/records/r", Some(&body), Some("k1"))
        .await
        .unwrap();
    assert_eq!(status, 201);
    let (status, again) = client
        .call(Method::PUT, "/v1/ns/app/records/r", Some(&body), Some("k1"))
        .await
        .unwrap();
    assert_eq!(
        (status, &again),
        (201, &first),
        "the same key replays the stored answer"
    );
    let (_, other) = client
        .call(Method::PUT, "/v1/ns/app/records/r", Some(&body), None)
        .await
        .unwrap();
    assert!(other["version"].as_u64() > first["version"].as_u64());
}
