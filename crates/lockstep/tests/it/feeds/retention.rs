//! Retention and IP scrubbing: in reads at once, on disk once the sweeper ran,
//! and in the entry a duplicate append answers. Through `lockstep_client`.

use super::*;
use futures_util::TryStreamExt;
use lockstep_client::api::feeds::{FeedSummary, FeedsQuery};
use lockstep_client::api::Scrub;

// ---------------------------------------------------------------------------
// 4. Retention and scrubbing: in reads at once, on disk once the sweeper ran.

/// `{max_entries}`.
fn cap(n: u64) -> FeedConfig {
    FeedConfig {
        max_entries: Some(n),
        ..FeedConfig::default()
    }
}

/// Scrub `ip` after a minute.
fn scrub_ip() -> FeedConfig {
    FeedConfig {
        scrub: Some(Scrub {
            fields: vec!["ip".into()],
            after_ms: 60_000,
        }),
        ..FeedConfig::default()
    }
}

async fn retention(cl: &Cluster) {
    let label = cl.label;
    let apps: Vec<Ns> = (0..cl.urls.len()).map(|i| cl.ns(i, NS)).collect();
    let app = &apps[0];
    let now = system_now().0;

    // Cap: 150 appends under max_entries 100.
    let capped = "capped";
    set_config(app, capped, cap(100)).await;
    let mut tasks = Vec::new();
    for c in 0..10 {
        let app = cl.ns(c, NS);
        tasks.push(tokio::spawn(async move {
            for k in 0..15 {
                let i = c * 15 + k;
                add_new(&app, capped, &format!("c{i:03}"), json!({"i": i}), None).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let one_page = EntriesQuery {
        limit: Some(1000),
        cursor: None,
        order: Some("desc".into()),
    };
    for a in &apps {
        let p = a.entries_page(capped, &one_page).await.unwrap();
        assert_eq!(p.items.entries.len(), 100, "[{label}] the cap shows 100");
        assert_eq!(p.items.unread_count, 100, "[{label}]");
        assert_eq!(p.next_cursor, None, "[{label}]");
    }
    let visible: BTreeSet<String> = app
        .entries_page(capped, &one_page)
        .await
        .unwrap()
        .items
        .entries
        .into_iter()
        .map(|e| e.id)
        .collect();
    let rows = until_on_disk(&cl.disk, capped, "the sweeper to apply the cap on disk", |r| {
        r.len() == 100
    })
    .await;
    let stored: BTreeSet<String> = rows.keys().cloned().collect();
    assert_eq!(
        stored, visible,
        "[{label}] what is left on disk is what was visible"
    );

    // Age: old entries hidden at once, deleted by the sweeper.
    let aged = "aged";
    for i in 0..5 {
        let at = rfc3339(now - OLD_MS - i);
        add_new(app, aged, &format!("old{i}"), json!({}), Some(at)).await;
        add_new(app, aged, &format!("new{i}"), json!({}), None).await;
    }
    assert_eq!(all_entries(&apps, aged, "desc", 100).await.0.len(), 10);
    let by_age = FeedConfig {
        max_age_ms: Some(60_000),
        ..FeedConfig::default()
    };
    set_config(app, aged, by_age).await;
    let (entries, unread) = all_entries(&apps, aged, "desc", 3).await;
    let got: BTreeSet<String> = entries.iter().map(|e| e.id.clone()).collect();
    let new_ids: BTreeSet<String> = (0..5).map(|i| format!("new{i}")).collect();
    assert_eq!(got, new_ids, "[{label}] old entries are hidden at once");
    assert_eq!(unread, 5);
    until_on_disk(&cl.disk, aged, "the sweeper to delete aged entries", |r| {
        r.keys().cloned().collect::<BTreeSet<_>>() == new_ids
    })
    .await;
    // A purged id may be appended again, as new.
    let again = AppendBody {
        id: "old0".into(),
        data: json!({"again": true}),
        at: None,
    };
    let r = app.append(aged, &again).await.unwrap();
    assert!(r.created, "[{label}] a purged id is appended again as new: {r:?}");

    // Scrub: `ip` removed from entries older than the window.
    let scrubbed = "scrubbed";
    for i in 0..5 {
        let data = json!({"ip": format!("10.0.0.{i}"), "amount": i});
        let at = rfc3339(now - OLD_MS + i);
        add_new(app, scrubbed, &format!("old{i}"), data.clone(), Some(at)).await;
        add_new(app, scrubbed, &format!("new{i}"), data, None).await;
    }
    let check = |entries: &[Entry], what: &str| {
        assert_eq!(entries.len(), 10, "[{label}] {what}: scrubbing hides no entry");
        for e in entries {
            let i = e.data["amount"].as_u64().unwrap();
            let want = if e.id.starts_with("old") {
                json!({"amount": i})
            } else {
                json!({"amount": i, "ip": format!("10.0.0.{i}")})
            };
            assert_eq!(data_of(e), want, "[{label}] {what}: {}", e.id);
        }
    };
    set_config(app, scrubbed, scrub_ip()).await;
    check(
        &all_entries(&apps, scrubbed, "desc", 4).await.0,
        "in reads at once",
    );
    let rows = until_on_disk(&cl.disk, scrubbed, "the sweeper to scrub ip on disk", |r| {
        r.iter()
            .filter(|(id, _)| id.starts_with("old"))
            .all(|(_, d)| d.get("ip").is_none())
    })
    .await;
    for (id, data) in &rows {
        assert_eq!(
            data.get("ip").is_some(),
            id.starts_with("new"),
            "[{label}] on disk, only the recent entries keep ip: {id} {data}"
        );
    }
    // Scrubbing off: the field stays gone from the old entries.
    set_config(app, scrubbed, FeedConfig::default()).await;
    check(
        &all_entries(&apps, scrubbed, "desc", 4).await.0,
        "with scrubbing off",
    );

    // The namespace default applies to feeds without their own configuration.
    let r = app.configure_feed_defaults(&cap(2)).await.unwrap();
    assert_eq!((r.feed.as_str(), &r.config), ("", &cap(2)), "{r:?}");
    let defaulted = "defaulted";
    for i in 0..4 {
        let at = rfc3339(now - 1000 + i);
        add_new(app, defaulted, &format!("d{i}"), json!({}), Some(at)).await;
    }
    let (entries, unread) = all_entries(&apps, defaulted, "asc", 10).await;
    assert_eq!(
        entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["d2", "d3"],
        "[{label}] default cap"
    );
    assert_eq!(unread, 2);
    assert_eq!(
        all_entries(&apps, scrubbed, "asc", 100).await.0.len(),
        10,
        "own config wins"
    );
    until_on_disk(&cl.disk, defaulted, "the sweeper to apply the default cap", |r| {
        r.len() == 2
    })
    .await;

    let feeds: Vec<FeedSummary> = app.feeds(FeedsQuery::default()).try_collect().await.unwrap();
    let listed: BTreeMap<String, (u64, u64)> = feeds
        .into_iter()
        .map(|f| (f.feed, (f.entries, f.unread_count)))
        .collect();
    let want: BTreeMap<String, (u64, u64)> = [
        (aged, (6, 6)),
        (capped, (100, 100)),
        (defaulted, (2, 2)),
        (scrubbed, (10, 10)),
    ]
    .into_iter()
    .map(|(f, c)| (f.to_owned(), c))
    .collect();
    assert_eq!(listed, want, "[{label}] GET /feeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_sqlite() {
    let cl = sqlite_cluster();
    bounded("retention on SQLite", retention(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("retention on 3 PostgreSQL processes", retention(&cl)).await;
}

// ---------------------------------------------------------------------------
// 5. The original entry a duplicate append answers is what readers see: with
//    the scrubbed fields removed once it is old enough (the sweeper may not
//    have run yet).

async fn duplicate_answer_scrubbed(cl: &Cluster) {
    let label = cl.label;
    let app = cl.ns(0, NS);
    let feed = "dup-scrub";
    let old = rfc3339(system_now().0 - OLD_MS);
    add_new(&app, feed, "r1", json!({"ip": "10.0.0.1", "n": 1}), Some(old)).await;
    set_config(&app, feed, scrub_ip()).await;
    let dup = AppendBody {
        id: "r1".into(),
        data: json!({"ip": "10.9.9.9", "n": 2}),
        at: None,
    };
    let r = app.append(feed, &dup).await.unwrap();
    assert!(!r.created, "[{label}] a duplicate: {r:?}");
    let q = EntriesQuery {
        limit: Some(10),
        cursor: None,
        order: Some("desc".into()),
    };
    let listed = app.entries_page(feed, &q).await.unwrap().items.entries;
    assert_eq!(data_of(&listed[0]), json!({"n": 1}), "[{label}] {listed:?}");
    assert_eq!(
        data_of(&r.entry),
        json!({"n": 1}),
        "[{label}] a duplicate append answers the original entry as readers see it, without the scrubbed ip"
    );
    assert_eq!(
        (&r.entry.id, &r.entry.at, r.entry.revision),
        (&listed[0].id, &listed[0].at, listed[0].revision),
        "[{label}] the duplicate answers the entry as listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_answer_scrubbed_sqlite() {
    let cl = sqlite_cluster();
    bounded("duplicate answer on SQLite", duplicate_answer_scrubbed(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_answer_scrubbed_postgres() {
    let Some(cl) = pg_cluster(1).await else { return };
    bounded("duplicate answer on PostgreSQL", duplicate_answer_scrubbed(&cl)).await;
}
