//! Paging by cursor, stable while other clients keep appending. Through
//! `lockstep_client`.

use super::*;
use lockstep_client::api::feeds::ImportQuery;

// ---------------------------------------------------------------------------
// 3. Paging 1,000 entries 37 at a time, both orders, while other clients keep
//    appending (now, and at times between the existing entries): every
//    pre-existing entry appears exactly once, in order.

const PRE: usize = 1000;
const PAGE: usize = 37;
const WRITERS: usize = 4;

async fn paging_under_appends(cl: &Cluster) {
    let label = cl.label;
    let apps: Vec<Ns> = (0..cl.urls.len()).map(|i| cl.ns(i, NS)).collect();
    let feed = "paged/owner@example.com";
    let base = system_now().0 - 3_600_000;
    let pre_at = |i: usize| base + 4 * i as i64;
    for chunk in 0..2 {
        let items: Vec<Value> = (chunk * 500..(chunk + 1) * 500)
            .map(|i| json!({"id": format!("p{i:04}"), "at": rfc3339(pre_at(i)), "i": i}))
            .collect();
        let r = apps[0]
            .import(feed, &ImportQuery::default(), &items)
            .await
            .unwrap();
        assert_eq!((r.imported, r.skipped), (500, 0), "{r:?}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (app, stop, written) = (cl.ns(w, NS), stop.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut between = false;
            while !stop.load(Ordering::Relaxed) {
                // In turn: now, and between two pre-existing entries.
                between = !between;
                let at = between.then(|| {
                    let k = (n * 37 + w * 101) % PRE;
                    rfc3339(base + 4 * k as i64 + 2)
                });
                add_new(&app, feed, &format!("w{w}-{n}"), json!({}), at).await;
                written.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    // Let the writers get going before the readers start.
    poll(Duration::from_secs(30), "the writers to start", || async {
        (written.load(Ordering::Relaxed) >= 8).then_some(())
    })
    .await;
    let started = written.load(Ordering::Relaxed);
    let mut readers = Vec::new();
    for order in ["desc", "asc"] {
        let apps = apps.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            for n in 0.. {
                let q = EntriesQuery {
                    limit: Some(PAGE),
                    cursor: cursor.take(),
                    order: Some(order.to_owned()),
                };
                let p = apps[n % apps.len()].entries_page(feed, &q).await.unwrap();
                assert!(p.items.entries.len() <= PAGE);
                seen.extend(p.items.entries);
                match p.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
                // Give the writers room between pages.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (order, seen)
        }));
    }
    let mut results = Vec::new();
    for r in readers {
        results.push(r.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let during = written.load(Ordering::Relaxed) - started;
    assert!(
        during > 0,
        "[{label}] the writers appended while the readers paged"
    );

    for (order, seen) in results {
        let keys: Vec<(Millis, String)> = seen
            .iter()
            .map(|e| {
                let at = Millis::parse_rfc3339(&e.at).unwrap_or_else(|err| panic!("bad at in {e:?}: {err}"));
                (at, e.id.clone())
            })
            .collect();
        let unique: BTreeSet<&String> = keys.iter().map(|(_, id)| id).collect();
        assert_eq!(
            unique.len(),
            keys.len(),
            "[{label}] no entry seen twice ({order})"
        );
        let monotone = keys
            .windows(2)
            .all(|w| if order == "asc" { w[0] < w[1] } else { w[0] > w[1] });
        assert!(monotone, "[{label}] pages are in (at, id) order ({order})");
        let pre: Vec<String> = keys
            .iter()
            .map(|(_, id)| id.clone())
            .filter(|id| id.starts_with('p'))
            .collect();
        let mut want: Vec<String> = (0..PRE).map(|i| format!("p{i:04}")).collect();
        if order == "desc" {
            want.reverse();
        }
        assert_eq!(
            pre.len(),
            PRE,
            "[{label}] every pre-existing entry is seen ({order})"
        );
        assert_eq!(
            pre, want,
            "[{label}] each pre-existing entry exactly once, in order ({order})"
        );
        println!(
            "[{label}] {order}: {} entries seen, {} appended meanwhile",
            keys.len(),
            during
        );
    }
    // Everything written is there in the end.
    let (entries, unread) = all_entries(&apps, feed, "asc", 1000).await;
    let total = PRE + written.load(Ordering::Relaxed);
    assert_eq!(entries.len(), total, "[{label}] nothing lost");
    assert_eq!(unread, total as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_under_appends_sqlite() {
    let cl = sqlite_cluster();
    bounded("paging on SQLite", paging_under_appends(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_under_appends_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("paging on 3 PostgreSQL processes", paging_under_appends(&cl)).await;
}
