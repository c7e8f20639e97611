//! Mutual exclusion under load: 16 tasks over 3 store instances.

#![allow(clippy::unwrap_used)]

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// Logged after the acquisition committed.
    Acquired(u64),
    /// Logged before the release is sent.
    Releasing(u64),
}

#[derive(Debug, Clone)]
pub(super) struct Hold {
    fence: u64,
    acquired_at: Millis,
    expires_at: Millis,
    /// The revision of the release when it cleared the lease; `None` when the
    /// release found the lease lost (expired).
    released_at_revision: Option<u64>,
}

#[derive(Debug, Clone)]
pub(super) struct FencedWrite {
    revision: u64,
    fence: u64,
    seen_last: Option<u64>,
}

pub(super) async fn mutual_exclusion_under_load(env: Env) {
    const TASKS: usize = 16;
    const NAME: &str = "mx";
    let stores = env.instances(3).await;
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let holds = Arc::new(Mutex::new(Vec::<Hold>::new()));
    let writes = Arc::new(Mutex::new(Vec::<FencedWrite>::new()));
    let lost_writes = Arc::new(Mutex::new(0usize));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let s = stores[i % stores.len()].clone();
        let (events, holds, writes, lost_writes) =
            (events.clone(), holds.clone(), writes.clone(), lost_writes.clone());
        tasks.push(tokio::spawn(async move {
            let holder = format!("task-{i}");
            while Instant::now() < deadline {
                let token = new_token();
                let c = match s
                    .execute(NS, acquire_cmd(NAME, 2_000, Some(&holder), &token, None), ACTOR)
                    .await
                {
                    Ok(c) => c,
                    Err(Error::Core(CoreError::LeaseHeld { .. })) => {
                        // Backs off under contention (pacing only: holders
                        // release, no TTL is waited for).
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    Err(e) => panic!("acquire failed: {e:?}"),
                };
                let l = lease_outcome(&c);
                assert_eq!(l.fence, c.revision);
                events.lock().unwrap().push(Event::Acquired(l.fence));
                let body = json!({
                    "compare": [
                        {"lease": NAME, "token": token},
                        {"fence": {"resource": "r", "token": l.fence}},
                    ],
                    "success": [
                        {"get": {"key": "last"}},
                        {"put": {"key": "last", "value": l.fence}},
                    ],
                });
                let tc = s.execute(NS, txn(body), ACTOR).await.unwrap();
                let r = txn_outcome(&tc);
                if r.succeeded {
                    let seen_last = match &r.results[0] {
                        OpResult::Get(rec) => rec.as_ref().map(|rec| rec.value.as_u64().unwrap()),
                        other => panic!("{other:?}"),
                    };
                    writes.lock().unwrap().push(FencedWrite {
                        revision: tc.revision,
                        fence: l.fence,
                        seen_last,
                    });
                } else {
                    *lost_writes.lock().unwrap() += 1;
                }
                events.lock().unwrap().push(Event::Releasing(l.fence));
                let rc = s.execute(NS, release_cmd(NAME, &token), ACTOR).await.unwrap();
                let released = match rc.outcome {
                    Outcome::Released { released } => released,
                    other => panic!("{other:?}"),
                };
                holds.lock().unwrap().push(Hold {
                    fence: l.fence,
                    acquired_at: l.acquired_at,
                    expires_at: l.expires_at,
                    released_at_revision: released.then_some(rc.revision),
                });
            }
        }));
    }
    for t in tasks {
        t.await.expect("a task panicked");
    }
    let events = events.lock().unwrap().clone();
    let mut holds = holds.lock().unwrap().clone();
    let mut writes = writes.lock().unwrap().clone();
    let lost_writes = *lost_writes.lock().unwrap();
    println!(
        "[{:?}] {} acquisitions, {} fenced writes, {lost_writes} lost",
        env.backend(),
        holds.len(),
        writes.len()
    );
    assert!(
        holds.len() >= 10,
        "too few acquisitions to say anything: {}",
        holds.len()
    );

    // Fences: unique, and the holding intervals [fence, release revision] (or,
    // for a lease that lapsed, [acquired_at, expires_at]) do not overlap.
    holds.sort_by_key(|h| h.fence);
    for pair in holds.windows(2) {
        let (p, n) = (&pair[0], &pair[1]);
        assert!(n.fence > p.fence, "fences are unique: {p:?} {n:?}");
        match p.released_at_revision {
            Some(rev) => assert!(
                rev < n.fence,
                "acquisition {n:?} was granted before the previous holder released ({p:?})"
            ),
            None => assert!(
                n.acquired_at >= p.expires_at,
                "acquisition {n:?} was granted while the previous lease was live ({p:?})"
            ),
        }
    }
    let lapsed = holds.iter().filter(|h| h.released_at_revision.is_none()).count();
    assert!(
        lost_writes <= lapsed,
        "{lost_writes} fenced writes failed but only {lapsed} leases lapsed"
    );

    // The shared log: between a holder's "acquired" and "releasing" entries no
    // other acquisition appears (each is logged after its commit, each release
    // before it is sent, so an overlap in time cannot hide as a non-overlap here
    // for leases released by their holder).
    let released: BTreeSet<u64> = holds
        .iter()
        .filter(|h| h.released_at_revision.is_some())
        .map(|h| h.fence)
        .collect();
    let mut holding: Option<u64> = None;
    for e in &events {
        match *e {
            Event::Acquired(f) => {
                if let Some(h) = holding {
                    assert!(
                        !released.contains(&h),
                        "fence {f} was acquired while {h} still held the lease"
                    );
                }
                holding = Some(f);
            }
            Event::Releasing(f) => {
                if holding == Some(f) {
                    holding = None;
                }
            }
        }
    }

    // Fenced writes: in commit (revision) order the fences strictly increase, and
    // each write saw the previous write's fence as "last".
    writes.sort_by_key(|w| w.revision);
    let mut prev: Option<u64> = None;
    for w in &writes {
        assert!(w.seen_last < Some(w.fence), "{w:?} saw a later or equal fence");
        assert_eq!(w.seen_last, prev, "{w:?}: last is the previous write's fence");
        prev = Some(w.fence);
    }
    assert!(writes.len() + lost_writes == holds.len());
    assert_eq!(
        get(&env.store, "last").await.map(|r| r.value),
        prev.map(Value::from)
    );
}
