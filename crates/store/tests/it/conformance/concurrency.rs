//! Real concurrency: compare-and-swap increments and create races.

use super::*;

// ---------------------------------------------------------------------------
// 10. Real concurrency: compare-and-swap increments lose no update. On
//     PostgreSQL the tasks are spread over three store instances (three
//     processes, three pools).

const CAS_TASKS: usize = 32;
const CAS_INCREMENTS: usize = 50;

async fn concurrent_cas(env: Env) {
    let stores = env.instances(3).await;
    let (start, _) = put_outcome(&exec(&env.store, put("counter", json!(0))).await);
    let retries = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(CAS_TASKS));
    let mut tasks = Vec::new();
    for t in 0..CAS_TASKS {
        let store = stores[t % stores.len()].clone();
        let (retries, barrier) = (retries.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // (version written, value written) of every successful swap.
            let mut wins = Vec::with_capacity(CAS_INCREMENTS);
            let mut cur = get_some(&store, "counter").await.current();
            while wins.len() < CAS_INCREMENTS {
                let n = cur.value.as_i64().expect("the counter holds an integer");
                let cmd = put_if(
                    "counter",
                    json!(n + 1),
                    Precondition::ExpectedVersion(cur.version),
                );
                match store.execute(NS, cmd, ACTOR).await {
                    Ok(c) => {
                        let (r, created) = put_outcome(&c);
                        assert!(!created);
                        wins.push((r.version, n + 1));
                        cur = r.current();
                    }
                    Err(Error::Core(CoreError::VersionMismatch { expected, current })) => {
                        retries.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(expected, cur.version);
                        let now = current.expect("the counter exists");
                        assert!(now.version > cur.version, "a mismatch reports a newer version");
                        // Half the tasks merge from the conflict answer, half re-read.
                        cur = if t % 2 == 0 {
                            now
                        } else {
                            get_some(&store, "counter").await.current()
                        };
                    }
                    Err(e) => panic!("unexpected error in task {t}: {e:?}"),
                }
            }
            wins
        }));
    }
    let mut wins = Vec::new();
    for task in tasks {
        wins.extend(task.await.expect("a CAS task panicked"));
    }
    let total = CAS_TASKS * CAS_INCREMENTS;
    assert_eq!(wins.len(), total);
    let last = get_some(&env.store, "counter").await;
    assert_eq!(
        last.value,
        json!(total),
        "no lost update: final value == successful swaps"
    );
    // Linearizable: ordered by version, the successful swaps wrote 1, 2, 3, …
    wins.sort_unstable();
    let versions: BTreeSet<u64> = wins.iter().map(|w| w.0).collect();
    assert_eq!(
        versions.len(),
        total,
        "every successful write has its own version"
    );
    assert!(wins[0].0 > start.version);
    for (i, (_, v)) in wins.iter().enumerate() {
        assert_eq!(
            *v,
            i64::try_from(i + 1).expect("small"),
            "the {i}-th swap by version"
        );
    }
    assert_eq!(last.version, wins[total - 1].0);
    for store in &stores {
        assert_eq!(
            get_some(store, "counter").await,
            last,
            "every instance reads the same record"
        );
    }
    println!(
        "{}: {total} swaps, {} retries",
        env.store.backend(),
        retries.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------------------
// 11. Create race: exactly one of 50 concurrent `expected_version: 0` PUTs wins.

async fn create_race(env: Env) {
    const RACERS: usize = 50;
    let stores = env.instances(3).await;
    for round in 0..5 {
        let key = format!("race/{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let store = stores[i % stores.len()].clone();
            let (key, barrier) = (key.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store
                    .execute(
                        NS,
                        put_if(&key, json!(i), Precondition::ExpectedVersion(0)),
                        ACTOR,
                    )
                    .await
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            match task.await.expect("a racer panicked") {
                Ok(c) => winners.push(put_outcome(&c)),
                Err(Error::Core(CoreError::VersionMismatch {
                    expected: 0,
                    current: Some(cur),
                })) => losers.push(cur),
                Err(e) => panic!("unexpected answer in the create race: {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one create wins (round {round})");
        assert_eq!(losers.len(), RACERS - 1);
        let (won, created) = winners.pop().expect("one winner");
        assert!(created);
        for cur in &losers {
            assert_eq!(cur, &won.current(), "losers see the winner's record");
        }
        assert_eq!(get_some(&env.store, &key).await, won);
    }
}

lockstep_testkit::backends!(
    crate::common::run;
    concurrent_cas,
    create_race,
);
