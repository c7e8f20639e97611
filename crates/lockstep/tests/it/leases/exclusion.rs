//! Mutual exclusion under load: several clients (and server processes) contend for leases; no two holders overlap.
//! Through `lockstep_client`.

#![allow(clippy::unwrap_used)]

use super::*;
use futures_util::TryStreamExt;
use lockstep_client::api::leases::AcquireBody;
use lockstep_client::api::records::{ListQuery, TxnOpResult};
use lockstep_client::api::{Compare, Op, Txn};
use lockstep_client::Ns;

/// Fewer acquisitions than this say nothing about exclusion.
const MIN_ACQUISITIONS: usize = 20;

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

pub(super) async fn mutual_exclusion(servers: &[Ns], clients: usize, run_for: Duration) {
    let name = "mx";
    let logs = Arc::new(Mutex::new(Logs::default()));
    let deadline = Instant::now() + run_for;
    // On a loaded machine the clients go on past `run_for` until there are
    // enough acquisitions to say anything (bounded: a hang still fails).
    let overtime = deadline + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let app = servers[client % servers.len()].clone();
        let logs = logs.clone();
        tasks.push(tokio::spawn(async move {
            let holder = format!("client-{client}");
            let more = |logs: &Mutex<Logs>| {
                let now = Instant::now();
                now < deadline || (now < overtime && logs.lock().unwrap().holds.len() < MIN_ACQUISITIONS)
            };
            while more(&logs) {
                let body = AcquireBody {
                    ttl_ms: 2000,
                    holder: Some(holder.clone()),
                    wait_ms: 2000,
                };
                let lease = match app.acquire_lease(name, &body).await {
                    Ok(l) => l,
                    Err(e) if e.status() == Some(409) => {
                        assert_eq!(
                            e.code(),
                            Some("lease_held"),
                            "a waiting acquire that timed out: {e:?}"
                        );
                        logs.lock().unwrap().timeouts += 1;
                        continue;
                    }
                    Err(e) => panic!("acquire {name}: {e:?}"),
                };
                let held = granted_lease(&lease, name, Some(&holder), 2000);
                logs.lock().unwrap().events.push(Event::Acquired(held.fence));
                let t = app
                    .txn(&Txn {
                        compare: vec![
                            Compare::Lease {
                                name: name.into(),
                                token: held.token.clone(),
                            },
                            Compare::Fence {
                                resource: "log".into(),
                                token: held.fence,
                            },
                        ],
                        success: vec![
                            Op::get("last"),
                            Op::put("last", json!(held.fence)),
                            Op::put(format!("log/{:012}", held.fence), json!(client)),
                        ],
                        failure: vec![],
                    })
                    .await
                    .unwrap_or_else(|e| panic!("the fenced txn: {e:?}"));
                {
                    let mut l = logs.lock().unwrap();
                    if t.succeeded {
                        let seen_last = match &t.results[0] {
                            TxnOpResult::Missing => None,
                            TxnOpResult::Record { value, .. } => Some(value.as_u64().unwrap()),
                            other => panic!("a get answered {other:?}"),
                        };
                        l.writes.push(Write {
                            client,
                            revision: t.revision,
                            fence: held.fence,
                            seen_last,
                        });
                    } else {
                        assert!(t.results.is_empty(), "an empty failure branch: {t:?}");
                        l.lost_writes += 1;
                    }
                    l.events.push(Event::Releasing(held.fence));
                }
                let r = app
                    .release_lease(name, &held.token)
                    .await
                    .unwrap_or_else(|e| panic!("release {name}: {e:?}"));
                logs.lock().unwrap().holds.push(Hold {
                    client,
                    fence: held.fence,
                    acquired_at: held.acquired_at,
                    expires_at: held.expires_at,
                    released_at_revision: r.released.then_some(r.revision),
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
        logs.holds.len() >= MIN_ACQUISITIONS,
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
    let app = &servers[0];
    let q = ListQuery {
        prefix: "log/".into(),
        limit: Some(1000),
        cursor: None,
    };
    let stored: BTreeMap<u64, usize> = app
        .records(q)
        .map_ok(|rec| {
            let fence: u64 = rec.key["log/".len()..].parse().unwrap();
            (fence, rec.value.as_u64().unwrap() as usize)
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stored, by_fence, "the stored log is what the clients wrote");
    let last = app.get("last").await.unwrap().map(|r| r.value);
    assert_eq!(last, prev.map(|p| json!(p)), "the last fenced write's fence");
}
