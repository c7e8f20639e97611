//! Cases 1 and 2: concurrent identical requests with one key, on one server and on three processes over PostgreSQL.

#![allow(clippy::unwrap_used)]

use super::*;

/// `n` identical keyed increments at once, spread round-robin over `urls`:
/// the counter rises by exactly one; every answer is the one stored response
/// (200, same body; all but the executing one are replays) or 409
/// `idempotency_key_in_use`; afterwards every replay gets the stored response.
pub(super) async fn concurrent_identical(urls: &[String], n: usize, key: &str) {
    let body = json!({"success": [{"incr": {"key": "c", "by": 1}}]});
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let h = Http::new(&urls[i % urls.len()]);
        let barrier = barrier.clone();
        let body = body.clone();
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            keyed(&h, "POST", &path("/txn"), &key, &body).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let mut fresh: Vec<&Resp> = Vec::new();
    let mut replays: Vec<&Resp> = Vec::new();
    let mut in_use = 0;
    for r in &answers {
        match (r.status, is_replay(r)) {
            (200, false) => fresh.push(r),
            (200, true) => replays.push(r),
            (409, false) if r.code() == Some("idempotency_key_in_use") => in_use += 1,
            _ => panic!(
                "every answer is the stored one or idempotency_key_in_use; got {} {:?} {}",
                r.status, r.headers, r.text
            ),
        }
    }
    println!(
        "{n} concurrent identical keyed txns over {} server(s): 1 executed, {} replayed, {in_use} in use",
        urls.len(),
        replays.len()
    );
    assert_eq!(
        fresh.len(),
        1,
        "exactly one request executes: {:?}",
        fresh.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let stored = fresh[0];
    assert_eq!(stored.body["succeeded"], json!(true), "{}", stored.text);
    assert_eq!(stored.body["results"][0]["value"], json!(1), "{}", stored.text);
    for r in &replays {
        assert_replay_of(r, stored, "a concurrent replay");
    }
    let h = Http::new(&urls[0]);
    assert_eq!(
        int_value(&h, "c").await,
        Some(1),
        "the counter rose by exactly one"
    );
    // Afterwards every retry, on every server, replays the stored response.
    for (i, url) in urls.iter().enumerate().cycle().take(n) {
        let r = keyed(&Http::new(url), "POST", &path("/txn"), key, &body).await;
        assert_replay_of(&r, stored, &format!("a later replay on server {i}"));
    }
    for url in urls {
        assert_eq!(int_value(&Http::new(url), "c").await, Some(1));
    }
}

pub(super) async fn concurrent_identical_requests(url: String) {
    let server = Server::start(&url);
    concurrent_identical(std::slice::from_ref(&server.url), 50, "conc-key-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(super) async fn postgres_three_processes_concurrent_identical_requests() {
    with_db(Backend::Postgres, |url| async move {
        let servers: Vec<Process> = (0..3).map(|_| Process::start(&url)).collect();
        let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
        concurrent_identical(&urls, 60, "\"conc-key-3\"").await;
    })
    .await;
}
