//! Concurrency through `lockstep_client`: compare-and-swap increments lose no
//! update, and a create race has exactly one winner, on the embedded server
//! (SQLite) and on three `lockstep serve` processes sharing one PostgreSQL
//! schema.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{client, fresh_pg, ns, sqlite_db, tempdir, Http, Process, Server};
use lockstep_client::api::records::{PutRecordBody, Record};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

const NS: &str = "conc";
const CLIENTS: usize = 32;
const INCREMENTS: u64 = 50;
const RACERS: usize = 50;
const RACE_ROUNDS: usize = 4;
/// Bound on one scenario, so a deadlock fails instead of hanging.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(150);

fn rec(key: &str) -> String {
    format!("/v1/ns/{NS}/records/{key}")
}

/// One client's successful increments: (version written, value written).
type Successes = Vec<(u64, u64)>;

/// Performs `INCREMENTS` successful compare-and-swap increments of `key`: read,
/// PUT value+1 with `expected_version`, and on 409 retry from the `current` of
/// the answer (`reread == false`) or from a new GET (`reread == true`).
async fn cas_client(h: Http, key: String, reread: bool) -> (Successes, u64) {
    let mut done = Vec::new();
    let mut conflicts = 0u64;
    let read = |h: Http, key: String| async move {
        let r = h.get(&rec(&key)).await;
        assert_eq!(r.status, 200, "GET {key}: {}", r.text);
        (r.body["value"].as_u64().unwrap(), r.u64("version"))
    };
    let (mut value, mut version) = read(h.clone(), key.clone()).await;
    while (done.len() as u64) < INCREMENTS {
        let r = h
            .json(
                "PUT",
                &rec(&key),
                &json!({"value": value + 1, "expected_version": version}),
            )
            .await;
        match r.status {
            200 => {
                let written = r.u64("version");
                assert_eq!(r.u64("revision"), written);
                assert!(written > version, "version {written} after {version}");
                done.push((written, value + 1));
                (value, version) = if reread {
                    read(h.clone(), key.clone()).await
                } else {
                    (value + 1, written)
                };
            }
            409 => {
                assert_eq!(r.code(), Some("version_mismatch"), "{}", r.text);
                conflicts += 1;
                (value, version) = if reread {
                    read(h.clone(), key.clone()).await
                } else {
                    let cur = &r.body["current"];
                    let v = cur["version"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("current: {}", r.text));
                    assert_ne!(v, version, "a mismatch reports another version: {}", r.text);
                    (cur["value"].as_u64().unwrap(), v)
                };
            }
            other => panic!("CAS PUT answered {other}: {}", r.text),
        }
    }
    (done, conflicts)
}

/// 32 clients × 50 successful CAS increments of one key, spread round-robin
/// over `urls`: the final value is the number of successful writes, and the
/// successful writes, in version order, wrote 1, 2, 3, … (no lost update).
///
/// Raw HTTP without `Idempotency-Key`, not `lockstep_client`: the client keys
/// every write, and a keyed refusal is stored like an answer, so each of the
/// ~25 000 refused CAS writes would become a write of its own (the run on three
/// PostgreSQL processes takes over 150 s instead of ~30 s); this measures CAS.
async fn cas_increments(urls: &[String], label: &str) {
    let key = "counter";
    let first = Http::new(&urls[0]);
    let r = first
        .json("PUT", &rec(key), &json!({"value": 0, "expected_version": 0}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        // A client (and connection pool) of its own per task.
        let h = Http::new(&urls[i % urls.len()]);
        tasks.push(tokio::spawn(cas_client(h, key.to_owned(), i % 2 == 1)));
    }
    let mut all: Successes = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let (done, c) = t.await.unwrap();
        all.extend(done);
        conflicts += c;
    }
    let total = CLIENTS as u64 * INCREMENTS;
    assert_eq!(all.len() as u64, total, "[{label}] successful PUTs");
    all.sort_unstable();
    for (i, (version, value)) in all.iter().enumerate() {
        assert_eq!(
            *value,
            i as u64 + 1,
            "[{label}] the successful write at version {version} is number {} in version order",
            i + 1
        );
    }
    let versions: std::collections::BTreeSet<u64> = all.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions.len() as u64,
        total,
        "[{label}] every successful write has its own version"
    );
    for url in urls {
        let r = Http::new(url).get(&rec(key)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.body["value"],
            json!(total),
            "[{label}] final value seen through {url}"
        );
        assert_eq!(r.u64("version"), all.last().unwrap().0, "[{label}] final version");
    }
    println!("[{label}] {total} increments by {CLIENTS} clients with {conflicts} conflicts");
}

/// 50 concurrent `PUT expected_version: 0` of one key, repeated over a few
/// keys: exactly one 201 per key, 49 × 409 reporting the winner's write.
async fn create_race(urls: &[String], label: &str) {
    for round in 0..RACE_ROUNDS {
        let key = format!("race{round}");
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let client = client(&urls[i % urls.len()]);
            let barrier = barrier.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                // Warm the connection up, so the PUTs start together.
                client.server_info().await.unwrap();
                barrier.wait().await;
                let body = PutRecordBody::new(json!({"racer": i})).expected_version(0);
                (i, client.ns(NS).put(&key, &body).await)
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (i, Ok(w)) => {
                    assert!(w.created, "[{label}] racer {i}: {w:?}");
                    winners.push((i, w));
                }
                (_, Err(e)) if e.status() == Some(409) => {
                    assert_eq!(e.code(), Some("version_mismatch"), "{e}");
                    losers.push(e);
                }
                (i, Err(e)) => panic!("[{label}] racer {i} got {e:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "[{label}] exactly one creator of {key}: {winners:?}"
        );
        assert_eq!(losers.len(), RACERS - 1, "[{label}] the others get 409");
        let (winner, w) = &winners[0];
        let version = w.put.version;
        for e in &losers {
            let cur = e.current().flatten().unwrap_or_else(|| panic!("current: {e:?}"));
            assert_eq!(
                (cur.version, &cur.value),
                (version, &json!({"racer": winner})),
                "[{label}] a loser sees the winner's write"
            );
        }
        let r = ns(&urls[round % urls.len()], NS)
            .get(&key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.value, json!({"racer": winner}));
        assert_eq!(r.version, version);
    }
}

async fn bounded(what: &str, fut: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(SCENARIO_TIMEOUT, fut).await.is_err() {
        panic!("{what} did not finish within {SCENARIO_TIMEOUT:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_increments_sqlite() {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    bounded(
        "CAS increments on SQLite",
        cas_increments(std::slice::from_ref(&server.url), "sqlite"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_increments_postgres_three_processes() {
    let Some(pg) = fresh_pg().await else { return };
    let servers: Vec<Process> = (0..3).map(|_| Process::start(&pg.url)).collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    bounded(
        "CAS increments on 3 PostgreSQL processes",
        cas_increments(&urls, "postgres×3"),
    )
    .await;
    drop(servers);
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_race_sqlite() {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    bounded(
        "the create race on SQLite",
        create_race(std::slice::from_ref(&server.url), "sqlite"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_race_postgres_three_processes() {
    let Some(pg) = fresh_pg().await else { return };
    let servers: Vec<Process> = (0..3).map(|_| Process::start(&pg.url)).collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    bounded(
        "the create race on 3 PostgreSQL processes",
        create_race(&urls, "postgres×3"),
    )
    .await;
    // The same row through every process.
    let seen: Vec<Record> = {
        let mut v = Vec::new();
        for url in &urls {
            v.push(ns(url, NS).get("race0").await.unwrap().unwrap());
        }
        v
    };
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "every process reads the same record: {seen:?}"
    );
    drop(servers);
    drop(pg);
}
