//! Bad input to the lease routes: 4xx problems, nothing written.

#![allow(clippy::unwrap_used)]

use super::*;

pub(super) async fn bad_input(h: &Http) {
    let name = "bad";
    let h257 = format!("{}x", "é".repeat(128));
    for body in [
        json!({"ttl_ms": 0}),
        json!({"ttl_ms": 99}),
        json!({"ttl_ms": 86_400_001}),
        json!({"ttl_ms": -1}),
        json!({"ttl_ms": "1000"}),
        json!({"ttl_ms": 1000.5}),
        json!({"ttl_ms": 1e30}),
        json!({}),
        json!({"ttl_ms": 1000, "holder": h257}),
        json!({"ttl_ms": 1000, "holder": 7}),
        json!({"ttl_ms": 1000, "wait_ms": 60_001}),
        json!({"ttl_ms": 1000, "wait_ms": -5}),
        json!({"ttl_ms": 1000, "token": "mine"}),
        json!({"ttl_ms": 1000, "unknown": true}),
    ] {
        let r = post(h, name, "acquire", body.clone()).await;
        assert_problem(&r, 400, "invalid_request", &format!("acquire {body}"));
    }
    assert_eq!(
        get_lease(h, name).await.body["fence"],
        Value::Null,
        "refused acquires write nothing"
    );
    // The limits themselves are fine.
    let l = acquire(h, name, 100, Some(&"é".repeat(128))).await;
    assert!(release(h, name, &l.token).await.0);
    let l = acquire(h, name, 86_400_000, None).await;

    for (action, body) in [
        ("renew", json!({"ttl_ms": 1000})),
        ("renew", json!({"token": "", "ttl_ms": 1000})),
        ("renew", json!({"token": 12345, "ttl_ms": 1000})),
        ("renew", json!({"token": null, "ttl_ms": 1000})),
        ("renew", json!({"token": l.token, "ttl_ms": 0})),
        ("renew", json!({"token": l.token, "ttl_ms": 86_400_001})),
        ("renew", json!({"token": l.token})),
        ("renew", json!({"token": l.token, "ttl_ms": 1000, "extra": 1})),
        ("release", json!({})),
        ("release", json!({"token": ""})),
        ("release", json!({"token": 12345})),
        ("release", json!({"token": ["a"]})),
        ("release", json!({"token": l.token, "force": true})),
        ("release", json!({"token": "t".repeat(257)})),
        ("renew", json!({"token": "t".repeat(257), "ttl_ms": 1000})),
    ] {
        let r = post(h, name, action, body.clone()).await;
        assert_problem(&r, 400, "invalid_request", &format!("{action} {body}"));
    }
    // Malformed JSON.
    let r = h
        .send(
            h.req("POST", &action_path(name, "release"))
                .header("content-type", "application/json")
                .body("{\"token\": "),
        )
        .await;
    assert_problem(&r, 400, "invalid_request", "truncated JSON");

    // A well-formed token that never held it.
    let random = "q0Lk3vB9xW2mN7pR4tY6zA";
    let r = post(h, name, "release", json!({"token": random})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["released"], json!(false), "{}", r.text);
    let r = post(h, name, "renew", json!({"token": random, "ttl_ms": 1000})).await;
    assert_problem(&r, 409, "lease_lost", "renew with a random token");
    let r = post(h, "never-held", "release", json!({"token": random})).await;
    assert_eq!(r.body["released"], json!(false), "{}", r.text);
    let r = post(h, "never-held", "renew", json!({"token": random, "ttl_ms": 1000})).await;
    assert_problem(&r, 409, "lease_lost", "renew of a never-held name");

    // Nothing of that touched the holder's lease; the holder renews and releases.
    let g = get_lease(h, name).await;
    assert_eq!(g.body["held"], json!(true));
    assert_eq!(g.body["expires_at"], l.body["expires_at"]);
    let r = post(h, name, "renew", json!({"token": l.token, "ttl_ms": 5000})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["fence"], json!(l.fence));
    assert!(
        r.u64("revision") > l.fence,
        "a renew names its own revision: {}",
        r.text
    );
    assert!(
        time_of(&r.body["expires_at"]) < l.expires_at,
        "renewing sets the expiry from now"
    );
    assert!(release(h, name, &l.token).await.0);
}
