//! Mutual exclusion under load: several clients (and server processes) contend for leases; no two holders overlap.

#![allow(clippy::unwrap_used)]

use super::*;

#[derive(Debug, Clone, Copy)]
pub(super) enum Event {
    /// Logged after the acquire answered.
    Acquired(u64),
    /// Logged before the release is sent.
    Releasing(u64),
}

#[derive(Debug, Clone)]
pub(super) struct Hold {
    client: usize,
    fence: u64,
    acquired_at: Millis,
    expires_at: Millis,
    released_at_revision: Option<u64>,
}

#[derive(Debug, Clone)]
pub(super) struct Write {
    client: usize,
    revision: u64,
    fence: u64,
    seen_last: Option<u64>,
}

#[derive(Default)]
pub(super) struct Logs {
    events: Vec<Event>,
    holds: Vec<Hold>,
    writes: Vec<Write>,
    lost_writes: usize,
    timeouts: usize,
}

pub(super) async fn mutual_exclusion(servers: &[Http], clients: usize, run_for: Duration) {
    let name = "mx";
    let logs = Arc::new(Mutex::new(Logs::default()));
    let deadline = Instant::now() + run_for;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let h = servers[client % servers.len()].clone();
        let logs = logs.clone();
        tasks.push(tokio::spawn(async move {
            let holder = format!("client-{client}");
            while Instant::now() < deadline {
                let body = json!({"ttl_ms": 2000, "wait_ms": 2000, "holder": holder});
                let r = post(&h, name, "acquire", body).await;
                if r.status == 409 {
                    assert_problem(&r, 409, "lease_held", "a waiting acquire that timed out");
                    logs.lock().unwrap().timeouts += 1;
                    continue;
                }
                let held = granted(&r, name, Some(&holder), 2000);
                logs.lock().unwrap().events.push(Event::Acquired(held.fence));
                let t = run_txn(
                    &h,
                    json!({
                        "compare": [
                            {"lease": name, "token": held.token},
                            {"fence": {"resource": "log", "token": held.fence}},
                        ],
                        "success": [
                            {"get": {"key": "last"}},
                            {"put": {"key": "last", "value": held.fence}},
                            {"put": {"key": format!("log/{:012}", held.fence), "value": client}},
                        ],
                    }),
                )
                .await;
                let (succeeded, _) = txn_failed(&t);
                {
                    let mut l = logs.lock().unwrap();
                    if succeeded {
                        let seen_last = match &t.body["results"][0] {
                            Value::Null => None,
                            rec => Some(rec["value"].as_u64().unwrap()),
                        };
                        l.writes.push(Write {
                            client,
                            revision: t.u64("revision"),
                            fence: held.fence,
                            seen_last,
                        });
                    } else {
                        l.lost_writes += 1;
                    }
                    l.events.push(Event::Releasing(held.fence));
                }
                let (released, revision) = release(&h, name, &held.token).await;
                logs.lock().unwrap().holds.push(Hold {
                    client,
                    fence: held.fence,
                    acquired_at: held.acquired_at,
                    expires_at: held.expires_at,
                    released_at_revision: released.then_some(revision),
                });
            }
        }));
    }
    for t in tasks {
        t.await.expect("a client panicked");
    }
    let mut logs = Arc::try_unwrap(logs).ok().unwrap().into_inner().unwrap();
    println!(
        "{} servers, {clients} clients: {} acquisitions, {} fenced writes, {} lost, {} wait timeouts",
        servers.len(),
        logs.holds.len(),
        logs.writes.len(),
        logs.lost_writes,
        logs.timeouts
    );
    assert!(
        logs.holds.len() >= 20,
        "too few acquisitions to say anything: {}",
        logs.holds.len()
    );

    // No acquisition was granted while another live token held the name: the
    // holding intervals, ordered by fence, do not overlap.
    logs.holds.sort_by_key(|h| h.fence);
    for pair in logs.holds.windows(2) {
        let (p, n) = (&pair[0], &pair[1]);
        assert!(n.fence > p.fence, "fences are unique: {p:?} {n:?}");
        match p.released_at_revision {
            Some(rev) => assert!(
                rev < n.fence,
                "{n:?} was granted before the previous holder released ({p:?})"
            ),
            None => assert!(
                n.acquired_at >= p.expires_at,
                "{n:?} was granted while the previous lease was live ({p:?})"
            ),
        }
    }
    let lapsed = logs
        .holds
        .iter()
        .filter(|h| h.released_at_revision.is_none())
        .count();
    assert!(
        logs.lost_writes <= lapsed,
        "{} fenced writes failed but only {lapsed} leases lapsed",
        logs.lost_writes
    );
    // The shared log: no acquisition between a holder's "acquired" and
    // "releasing" entries (when that holder's release cleared the lease).
    let released: BTreeSet<u64> = logs
        .holds
        .iter()
        .filter(|h| h.released_at_revision.is_some())
        .map(|h| h.fence)
        .collect();
    let mut holding: Option<u64> = None;
    for e in &logs.events {
        match *e {
            Event::Acquired(f) => {
                if let Some(h) = holding {
                    assert!(
                        !released.contains(&h),
                        "fence {f} was acquired while {h} held the lease"
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

    // Fenced writes, in the order their revisions committed: fences strictly
    // increase and each saw the previous one as "last".
    logs.writes.sort_by_key(|w| w.revision);
    let mut prev: Option<u64> = None;
    for w in &logs.writes {
        assert!(w.seen_last < Some(w.fence), "{w:?} saw a later fence");
        assert_eq!(w.seen_last, prev, "{w:?}: last is the previous write's fence");
        prev = Some(w.fence);
    }
    let by_fence: BTreeMap<u64, usize> = logs.writes.iter().map(|w| (w.fence, w.client)).collect();
    assert_eq!(by_fence.len(), logs.writes.len());
    for h in &logs.holds {
        if let Some(c) = by_fence.get(&h.fence) {
            assert_eq!(*c, h.client, "the fence's writer is its holder");
        }
    }

    // What is stored: one log/<fence> record per successful write, by its client.
    let h = &servers[0];
    let mut stored = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/ns/{NS}/records?prefix=log/&limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = h.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for rec in r.body["records"].as_array().unwrap() {
            let fence: u64 = rec["key"].as_str().unwrap()["log/".len()..].parse().unwrap();
            stored.insert(fence, rec["value"].as_u64().unwrap() as usize);
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(stored, by_fence, "the stored log is what the clients wrote");
    let last = h.get(&format!("/v1/ns/{NS}/records/last")).await;
    assert_eq!(last.body["value"], json!(prev), "{}", last.text);
}
