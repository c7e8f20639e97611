//! Case 3: crash safety: kill -9 in the middle of keyed writes, then every key replays.

#![allow(clippy::unwrap_used)]

use super::*;

pub(super) fn crash_body(key: &str) -> Value {
    json!({"success": [
        {"incr": {"key": format!("c/{key}"), "by": 1}},
        {"put": {"key": format!("seen/{key}"), "value": {"key": key}}}]})
}

/// What a client saw of its first request of a key.
#[derive(Debug)]
pub(super) enum First {
    /// Answered (before the crash): the answer.
    Acked(Resp),
    /// The connection failed (in flight at the crash, or sent after it).
    Unknown,
    /// Never sent.
    NeverSent,
}

/// A burst of keyed writes from several clients, each request with a key of its
/// own; SIGKILL in the middle; restart on the same file; replay every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(super) async fn sqlite_kill_9_mid_burst_then_replay_every_key() {
    const CLIENTS: usize = 12;
    const ACKS_BEFORE_KILL: usize = 300;
    let dir = tempdir();
    let db = sqlite_db(&dir);
    let mut server = Process::start(&db);
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..CLIENTS {
        let h = Http::new(&server.url);
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..5_000 {
                let key = format!("crash-{t:02}-{i:05}");
                let req = keyed_req(&h, "POST", &path("/txn"), &key, &crash_body(&key));
                match try_send(req).await {
                    Ok(r) => {
                        assert_fresh(&r, 200, &format!("first request of {key}"));
                        acked.fetch_add(1, Ordering::SeqCst);
                        seen.push((key, First::Acked(r)));
                    }
                    Err(_) => {
                        seen.push((key, First::Unknown));
                        break;
                    }
                }
            }
            seen
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < ACKS_BEFORE_KILL {
        assert!(Instant::now() < deadline, "the burst is too slow");
        // Polls until enough requests were acknowledged, then kills -9.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill9();
    let mut keys: Vec<(String, First)> = Vec::new();
    for t in tasks {
        keys.extend(t.await.unwrap());
    }
    for i in 0..5 {
        keys.push((format!("crash-never-{i}"), First::NeverSent));
    }

    let server = Process::start(&db);
    let h = Http::new(&server.url);
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut replays: Vec<(String, Resp)> = Vec::new();
    for (key, first) in &keys {
        let r = keyed(&h, "POST", &path("/txn"), key, &crash_body(key)).await;
        let count = int_value(&h, &format!("c/{key}")).await;
        let seen = h.get(&rec(&format!("seen/{key}"))).await.status;
        assert!(
            count.unwrap_or(0) <= 1,
            "{key}: applied {count:?} times ({first:?})"
        );
        let kind = match (first, r.status, is_replay(&r)) {
            (First::Acked(a), _, _) => {
                assert_replay_of(&r, a, &format!("{key} (acknowledged before the crash)"));
                "acked: replayed"
            }
            (First::Unknown, 200, true) => "in flight: completed before the crash, replayed",
            (First::Unknown, 200, false) => "in flight: not applied, executed on replay",
            (First::Unknown, 409, false) if r.code() == Some("idempotency_key_in_use") => {
                // Begun but not executed when the server died: the key stays
                // locked (90 s) and the effect must not be there.
                assert_eq!(count, None, "{key}: in use after the crash, yet applied");
                assert_eq!(seen, 404, "{key}: in use after the crash, yet applied");
                "in flight: begun, not applied (key locked)"
            }
            (First::NeverSent, 200, false) => "never sent: executed",
            _ => panic!(
                "{key} ({first:?}): unexpected replay answer {} {}",
                r.status, r.text
            ),
        };
        if r.status == 200 {
            assert_eq!(count, Some(1), "{key}: answered 200, so applied exactly once");
            assert_eq!(seen, 200, "{key}: both writes of the transaction are there");
            assert_eq!(r.body["results"][0]["value"], json!(1), "{key}: {}", r.text);
        }
        *tally.entry(kind).or_default() += 1;
        replays.push((key.clone(), r));
    }
    println!("kill -9 after {ACKS_BEFORE_KILL}+ acknowledged keyed writes; replays: {tally:#?}");
    assert!(tally.get("acked: replayed").copied().unwrap_or(0) >= ACKS_BEFORE_KILL);
    // A second round: answered keys replay what the first round answered.
    for (key, first_replay) in &replays {
        let r = keyed(&h, "POST", &path("/txn"), key, &crash_body(key)).await;
        if first_replay.status == 200 {
            assert!(is_replay(&r), "{key}: {} {}", r.status, r.text);
            assert_eq!(
                (r.status, &r.text),
                (200, &first_replay.text),
                "{key}: the stored answer"
            );
        } else {
            assert_problem(&r, 409, "idempotency_key_in_use", key);
        }
        assert!(int_value(&h, &format!("c/{key}")).await.unwrap_or(0) <= 1);
    }
}
