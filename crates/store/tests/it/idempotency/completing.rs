//! execute_completing: a command and its idempotency entry in one transaction.

#![allow(clippy::unwrap_used)]

use super::*;

/// The effect and the stored answer commit together: after the call both are
/// visible, and the stored answer is the rendering of the committed outcome.
pub(super) async fn completing_commits_effect_and_response(env: Env) {
    let s = &env.store;
    let token = owned(begin(s, "k", "fp").await);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let render: lockstep_store::Render = {
        let seen = seen.clone();
        Arc::new(move |answer: &Result<Committed, Error>| {
            let c = answer.as_ref().unwrap_or_else(|e| panic!("{e:?}"));
            let (record, created) = put_outcome(c);
            let body = json!({"key": record.key, "version": record.version, "created": created});
            seen.lock().unwrap().push(body.to_string());
            Finish::Store(StoredResponse {
                status: 201,
                content_type: "application/json".into(),
                etag: Some(format!("\"{}\"", record.version)),
                body: body.to_string(),
            })
        })
    };
    let c = ok(s
        .execute_completing(
            NS,
            put("rec", json!({"v": 1})),
            ACTOR,
            Some(completion("k", &token, render)),
        )
        .await);
    let (record, created) = put_outcome(&c);
    assert!(created);
    assert_eq!(get_some(s, "rec").await, record);
    let stored = replayed(begin(s, "k", "fp").await);
    assert_eq!(stored.status, 201);
    assert_eq!(stored.etag, Some(format!("\"{}\"", record.version)));
    let rendered = seen.lock().unwrap().clone();
    assert_eq!(
        rendered,
        vec![stored.body.clone()],
        "rendered once, and that is what is stored"
    );
    let body: Value = serde_json::from_str(&stored.body).unwrap();
    assert_eq!(
        body,
        json!({"key": "rec", "version": record.version, "created": true})
    );
    // The same on another handle (a restarted process on SQLite, another
    // instance on PostgreSQL): both survived together.
    let env = env.reopen().await;
    let s = &env.store;
    assert_eq!(get_some(s, "rec").await, record);
    assert_eq!(replayed(begin(s, "k", "fp").await), stored);
    // The completed key is not owned any more: a second keyed run is refused
    // and applies nothing.
    let calls = Arc::new(AtomicUsize::new(0));
    let again = s
        .execute_completing(
            NS,
            put("rec", json!({"v": 2})),
            ACTOR,
            Some(completion("k", &token, renderer(calls.clone()))),
        )
        .await;
    assert!(
        matches!(again, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "{again:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a refused owner renders nothing");
    assert_eq!(get_some(s, "rec").await, record, "nothing applied");
    assert_eq!(replayed(begin(s, "k", "fp").await), stored, "nothing changed");
}

/// Recognizes the expected refusal.
pub(super) type IsRefusal = fn(&CoreError) -> bool;

/// A refused command (version mismatch, not found, invalid patch) stores the
/// refusal with the key and applies nothing; the refusal is answered.
pub(super) async fn completing_refusal_stores_it_and_applies_nothing(env: Env) {
    let s = &env.store;
    let (existing, _) = put_outcome(&exec(s, put("rec", json!("v1"))).await);
    exec(s, put("text", json!("not a number"))).await;
    let before = revision_now(s).await;
    let cases: Vec<(&str, Command, IsRefusal)> = vec![
        (
            "vm",
            put_if(
                "rec",
                json!("v2"),
                Precondition::ExpectedVersion(existing.version + 1_000),
            ),
            |e| matches!(e, CoreError::VersionMismatch { .. }),
        ),
        ("nf", delete("absent", Precondition::None), |e| {
            matches!(e, CoreError::NotFound(_))
        }),
        (
            "ip",
            txn(json!({"success": [
                {"put": {"key": "side", "value": 1}},
                {"incr": {"key": "text", "by": 1}}]})),
            |e| matches!(e, CoreError::InvalidPatch(_)),
        ),
    ];
    for (key, cmd, expected) in cases {
        let token = owned(begin(s, key, "fp").await);
        let calls = Arc::new(AtomicUsize::new(0));
        let r = s
            .execute_completing(
                NS,
                cmd,
                ACTOR,
                Some(completion(key, &token, renderer(calls.clone()))),
            )
            .await;
        match &r {
            Err(Error::Core(e)) if expected(e) => {}
            other => panic!("{key}: expected the refusal, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{key}: the refusal is rendered");
        let stored = replayed(begin(s, key, "fp").await);
        assert_eq!(stored.status, 409, "{key}");
        let Err(Error::Core(e)) = r else { unreachable!() };
        assert_eq!(
            serde_json::from_str::<Value>(&stored.body).unwrap(),
            json!({"refused": e.to_string()}),
            "{key}: the stored answer is the refusal"
        );
    }
    assert_eq!(get_some(s, "rec").await, existing, "nothing applied");
    assert_eq!(
        get(s, "side").await,
        None,
        "a refused transaction applies nothing"
    );
    assert_eq!(get_some(s, "text").await.value, json!("not a number"));
    assert_eq!(revision_now(s).await, before, "refusals consume no revision");
}

/// A request whose key was taken over (its lock ran out) must not apply its
/// command: the answer is `idempotency_key_in_use` and the new owner's run
/// applies exactly once.
pub(super) async fn stale_owner_applies_nothing(env: Env) {
    let s = &env.store;
    let stale = owned(begin_with(s, "k", "fp", 150, LONG_MS).await);
    env.clock.advance(150);
    let fresh = owned(begin(s, "k", "fp").await);
    let calls = Arc::new(AtomicUsize::new(0));
    let r = s
        .execute_completing(
            NS,
            incr("c"),
            ACTOR,
            Some(completion("k", &stale, renderer(calls.clone()))),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "the stale owner is refused with in_use, got {r:?}"
    );
    assert_eq!(
        counter(s, "c").await,
        0,
        "the stale owner's command was not applied"
    );
    in_use(begin(s, "k", "fp").await);
    // The stale owner's refusal did not give the new owner's key up.
    ok(s.execute_completing(
        NS,
        incr("c"),
        ACTOR,
        Some(completion("k", &fresh, renderer(calls.clone()))),
    )
    .await);
    assert_eq!(counter(s, "c").await, 1);
    let stored = replayed(begin(s, "k", "fp").await);
    assert_eq!(stored.status, 200);
    // And after completion the stale owner is still refused.
    let r = s
        .execute_completing(
            NS,
            incr("c"),
            ACTOR,
            Some(completion("k", &stale, renderer(calls))),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "{r:?}"
    );
    assert_eq!(counter(s, "c").await, 1);
    assert_eq!(replayed(begin(s, "k", "fp").await), stored);
}

/// `Finish::Release` gives the key up with the command (a retry owns it at
/// once); `Finish::Keep` leaves it started (an intermediate step).
pub(super) async fn completing_release_and_keep(env: Env) {
    let s = &env.store;
    let release: lockstep_store::Render = Arc::new(|_: &Result<Committed, Error>| Finish::Release);
    let keep: lockstep_store::Render = Arc::new(|_: &Result<Committed, Error>| Finish::Keep);

    let t = owned(begin(s, "rel", "fp").await);
    ok(
        s.execute_completing(NS, incr("c"), ACTOR, Some(completion("rel", &t, release.clone())))
            .await,
    );
    assert_eq!(counter(s, "c").await, 1, "the command applied");
    let t2 = owned(begin(s, "rel", "fp").await);
    assert_ne!(t, t2);

    let t = owned(begin(s, "keep", "fp").await);
    ok(
        s.execute_completing(NS, incr("c"), ACTOR, Some(completion("keep", &t, keep)))
            .await,
    );
    assert_eq!(counter(s, "c").await, 2);
    in_use(begin(s, "keep", "fp").await);
    // The owner still owns it and may finish later.
    let calls = Arc::new(AtomicUsize::new(0));
    ok(s.execute_completing(
        NS,
        incr("c"),
        ACTOR,
        Some(completion("keep", &t, renderer(calls))),
    )
    .await);
    assert_eq!(counter(s, "c").await, 3);
    assert_eq!(replayed(begin(s, "keep", "fp").await).status, 200);

    // A refusal with Release: nothing applied, the key is free again.
    let t = owned(begin(s, "relref", "fp").await);
    let r = s
        .execute_completing(
            NS,
            delete("absent", Precondition::None),
            ACTOR,
            Some(completion("relref", &t, release)),
        )
        .await;
    assert!(matches!(r, Err(Error::Core(CoreError::NotFound(_)))), "{r:?}");
    owned(begin(s, "relref", "fp").await);
}

/// A completion for a key that was never begun (or was given up) applies
/// nothing: the request does not own it.
pub(super) async fn completing_without_owning_applies_nothing(env: Env) {
    let s = &env.store;
    let calls = Arc::new(AtomicUsize::new(0));
    let r = s
        .execute_completing(
            NS,
            incr("c"),
            ACTOR,
            Some(completion("never", &new_token(), renderer(calls.clone()))),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "{r:?}"
    );
    let t = owned(begin(s, "gone", "fp").await);
    exec(s, release_cmd("gone", &t, false)).await;
    let r = s
        .execute_completing(
            NS,
            incr("c"),
            ACTOR,
            Some(completion("gone", &t, renderer(calls.clone()))),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Core(CoreError::IdempotencyKeyInUse(_)))),
        "{r:?}"
    );
    assert_eq!(counter(s, "c").await, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    owned(begin(s, "never", "fp").await);
    owned(begin(s, "gone", "fp").await);
}

/// Keyed increments from many concurrent callers, each key used by several
/// callers at once and retried on in_use: every key applies exactly once.
pub(super) async fn keyed_increments_apply_once_under_contention(env: Env) {
    const KEYS: usize = 12;
    const CALLERS_PER_KEY: usize = 4;
    let stores = env.instances(3).await;
    let mut tasks = Vec::new();
    for k in 0..KEYS {
        for c in 0..CALLERS_PER_KEY {
            let s = stores[(k + c) % stores.len()].clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("key-{k}");
                let counter_key = format!("c/{k}");
                for _ in 0..500 {
                    match begin(&s, &key, "fp").await {
                        Ok((Began::Started(_), token)) => {
                            let cp = completion(&key, &token, renderer(Arc::default()));
                            ok(s.execute_completing(NS, incr(&counter_key), ACTOR, Some(cp))
                                .await);
                            return;
                        }
                        Ok((Began::Replay(r), _)) => {
                            assert_eq!(r.status, 200);
                            return;
                        }
                        Err(CoreError::IdempotencyKeyInUse(_)) => {
                            // Backs off while another caller owns the key
                            // (pacing only: owners complete, no lock runs out).
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
                panic!("{key}: still in use after 500 retries");
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    for k in 0..KEYS {
        assert_eq!(counter(&env.store, &format!("c/{k}")).await, 1, "key {k}");
    }
}

/// Scopes as the server builds them: `http\u{1f}{caller}\u{1f}{method} {path}`
/// for the `Idempotency-Key` header (`app: false`, completed with the command)
/// and the caller's own scope for the application store (`app: true`, kept apart
/// by the core). Every backend stores them, and an application entry never
/// collides with a header entry of the same scope text and key.
pub(super) async fn server_shaped_scopes(env: Env) {
    let s = &env.store;
    let scope = "http\u{1f}tester\u{1f}POST /v1/ns/conf/txn";
    let begin_in = |app: bool, fingerprint: &str| {
        let token = new_token();
        let cmd = Command::IdemBegin {
            scope: scope.to_owned(),
            key: "k".to_owned(),
            req: Begin {
                fingerprint: fingerprint.to_owned(),
                token: token.clone(),
                lock_ms: LONG_MS,
                ttl_ms: LONG_MS,
            },
            app,
        };
        async move {
            match s.execute(NS, cmd, ACTOR).await {
                Ok(Committed {
                    outcome: Outcome::IdemBegun(b),
                    ..
                }) => Ok((b, token)),
                Ok(other) => panic!("unexpected outcome {other:?}"),
                Err(Error::Core(e)) => Err(e),
                Err(e) => panic!("IdemBegin with the scope {scope:?} (app: {app}): storage error {e:?}"),
            }
        }
    };
    // The header's entry, completed with its command.
    let token = owned(begin_in(false, "fp-http").await);
    let cp = Completion {
        scope: scope.to_owned(),
        key: "k".to_owned(),
        token,
        begin: None,
        render: renderer(Arc::default()),
    };
    ok(s.execute_completing(NS, incr("c/http"), ACTOR, Some(cp)).await);
    let http_answer = replayed(begin_in(false, "fp-http").await);
    assert_eq!(counter(s, "c/http").await, 1);
    // The application store's entry of the same scope text and key is another
    // entry: another fingerprint starts it instead of being refused as reused.
    let app_token = owned(begin_in(true, "fp-app").await);
    in_use(begin_in(true, "fp-app").await);
    let app_answer = response(200, json!({"app": true}));
    let cmd = Command::IdemComplete {
        scope: scope.to_owned(),
        key: "k".to_owned(),
        token: app_token,
        response: app_answer.clone(),
        app: true,
    };
    exec(s, cmd).await;
    assert_eq!(replayed(begin_in(true, "fp-app").await), app_answer);
    assert_eq!(replayed(begin_in(false, "fp-http").await), http_answer);
    reused(begin_in(false, "fp-app").await);
    reused(begin_in(true, "fp-http").await);
}
