//! Retention: the cap, max age, scrubbing, the namespace default config.

#![allow(clippy::unwrap_used)]

use super::*;

// 6. Cap: 150 appends under max_entries 100 show the newest 100 at once; the
//    sweeper deletes the rest on disk.

pub(super) async fn cap(env: Env) {
    let feed = "capped";
    configure(&env.store, feed, json!({"max_entries": 100})).await;
    let t0 = system_now().0 - OLD_MS;
    let stores = env.instances(3).await;
    let mut tasks = Vec::new();
    for i in 0..150i64 {
        let store = stores[i as usize % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("e{i:03}");
            append_on(&store, feed, &id, json!({"i": i}), Some(Millis(t0 + i))).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().1);
    }
    let s = &env.store;
    let want: Vec<String> = (50..150).map(|i| format!("e{i:03}")).collect();
    let listed = all_entries(s, feed, false, 37).await;
    assert_eq!(ids(&listed), want, "only the newest 100 are visible, at once");
    let p = page(s, feed, true, None, 1000).await;
    assert_eq!(p.entries.len(), 100);
    assert_eq!(p.unread_count, 100, "unread counts visible entries only");
    assert_eq!(feeds(s, "", None, 10).await, vec![summary(feed, 100, 100)]);

    let purged = sweep_all(s).await;
    assert_eq!(purged, 50, "the sweeper purges the 50 oldest");
    // Lift the cap: what the sweeper deleted stays gone.
    configure(s, feed, json!({})).await;
    assert_eq!(
        ids(&all_entries(s, feed, false, 1000).await),
        want,
        "deleted on disk"
    );
    assert_eq!(unread(s, feed).await, 100);
}

// ---------------------------------------------------------------------------
// 7. Maximum age hides old entries at once; the sweeper deletes them on disk.

pub(super) async fn max_age(env: Env) {
    let s = &env.store;
    let feed = "aged";
    let now = system_now().0;
    for i in 0..5 {
        append_on(
            s,
            feed,
            &format!("old{i}"),
            json!({"i": i}),
            Some(Millis(now - OLD_MS - i)),
        )
        .await;
        append_on(s, feed, &format!("new{i}"), json!({"i": i}), None).await;
    }
    assert_eq!(all_entries(s, feed, true, 100).await.len(), 10);
    configure(s, feed, json!({"max_age_ms": 60_000})).await;
    let listed = all_entries(s, feed, true, 100).await;
    let got: BTreeSet<String> = ids(&listed).into_iter().collect();
    let want: BTreeSet<String> = (0..5).map(|i| format!("new{i}")).collect();
    assert_eq!(got, want, "old entries are hidden at once");
    assert_eq!(unread(s, feed).await, 5);
    assert_eq!(feeds(s, "", None, 10).await, vec![summary(feed, 5, 5)]);

    assert_eq!(sweep_all(s).await, 5, "the sweeper purges the 5 old entries");
    configure(s, feed, json!({})).await;
    let got: BTreeSet<String> = ids(&all_entries(s, feed, true, 100).await).into_iter().collect();
    assert_eq!(got, want, "the old entries are gone on disk");
}

// ---------------------------------------------------------------------------
// 8. Scrub: the named fields disappear from old entries in reads at once, and
//    on disk once the sweeper ran.

pub(super) async fn scrub(env: Env) {
    let s = &env.store;
    let feed = "scrubbed";
    let now = system_now().0;
    for i in 0..3 {
        let data = json!({"ip": format!("10.0.0.{i}"), "amount": i});
        append_on(
            s,
            feed,
            &format!("old{i}"),
            data.clone(),
            Some(Millis(now - OLD_MS + i)),
        )
        .await;
        append_on(s, feed, &format!("new{i}"), data, None).await;
    }
    configure(
        s,
        feed,
        json!({"scrub": {"fields": ["ip", "absent"], "after_ms": 60_000}}),
    )
    .await;
    let check = |entries: &[Entry], what: &str| {
        assert_eq!(entries.len(), 6, "{what}: scrubbing hides no entry");
        for e in entries {
            let i = e.data["amount"].as_u64().unwrap();
            assert!(e.data.contains_key("amount"), "{what}: other fields stay");
            if e.id.starts_with("old") {
                assert_eq!(e.data.get("ip"), None, "{what}: {} is scrubbed", e.id);
            } else {
                assert_eq!(
                    e.data.get("ip"),
                    Some(&json!(format!("10.0.0.{i}"))),
                    "{what}: {} keeps ip",
                    e.id
                );
            }
        }
    };
    check(&all_entries(s, feed, true, 100).await, "in reads at once");
    assert_eq!(sweep_all(s).await, 3, "the sweeper scrubs the 3 old entries");
    check(&all_entries(s, feed, true, 100).await, "after the sweep");
    // Scrubbing off: the raw rows show what is on disk.
    configure(s, feed, json!({})).await;
    check(&all_entries(s, feed, true, 100).await, "on disk");
    assert_eq!(unread(s, feed).await, 6, "scrubbing does not touch read marks");
}

// ---------------------------------------------------------------------------
// 9. Changing which fields are scrubbed: the newly named ones go on disk too
//    (an entry scrubbed once for `ip` must still lose `ua` when `ua` is named).

pub(super) async fn scrub_fields_change(env: Env) {
    let s = &env.store;
    let feed = "scrub-change";
    let old = Millis(system_now().0 - OLD_MS);
    append_on(
        s,
        feed,
        "r1",
        json!({"ip": "10.0.0.1", "ua": "curl", "n": 1}),
        Some(old),
    )
    .await;
    configure(s, feed, json!({"scrub": {"fields": ["ip"], "after_ms": 60_000}})).await;
    assert_eq!(sweep_all(s).await, 1);
    configure(s, feed, json!({"scrub": {"fields": ["ua"], "after_ms": 60_000}})).await;
    let e = &all_entries(s, feed, true, 10).await[0];
    assert_eq!(
        e.data,
        json!({"n": 1}).as_object().cloned().unwrap(),
        "ua hidden in reads at once"
    );
    sweep_all(s).await;
    configure(s, feed, json!({})).await;
    let e = &all_entries(s, feed, true, 10).await[0];
    assert_eq!(
        e.data,
        json!({"n": 1}).as_object().cloned().unwrap(),
        "after the sweeper ran under scrub [ua], ua must be gone on disk too"
    );
}

// ---------------------------------------------------------------------------
// 10. The namespace default applies to feeds without a configuration of their
//     own, in reads and in the sweeper.

pub(super) async fn namespace_default(env: Env) {
    let s = &env.store;
    configure(s, "", json!({"max_entries": 3})).await;
    configure(s, "own-empty", json!({})).await;
    configure(s, "own-cap", json!({"max_entries": 4})).await;
    let t0 = system_now().0 - OLD_MS;
    for feed in ["defaulted", "own-empty", "own-cap"] {
        for i in 0..5 {
            append_on(s, feed, &format!("e{i}"), json!({}), Some(Millis(t0 + i))).await;
        }
    }
    let visible = |n: usize| (5 - n..5).map(|i| format!("e{i}")).collect::<Vec<_>>();
    assert_eq!(ids(&all_entries(s, "defaulted", false, 10).await), visible(3));
    assert_eq!(ids(&all_entries(s, "own-empty", false, 10).await), visible(5));
    assert_eq!(ids(&all_entries(s, "own-cap", false, 10).await), visible(4));
    assert_eq!(
        feeds(s, "", None, 10).await,
        vec![
            summary("defaulted", 3, 3),
            summary("own-cap", 4, 4),
            summary("own-empty", 5, 5)
        ]
    );
    assert_eq!(sweep_all(s).await, 3, "2 from the defaulted feed, 1 from own-cap");
    configure(s, "defaulted", json!({})).await;
    configure(s, "own-cap", json!({})).await;
    assert_eq!(ids(&all_entries(s, "defaulted", false, 10).await), visible(3));
    assert_eq!(ids(&all_entries(s, "own-cap", false, 10).await), visible(4));
    assert_eq!(ids(&all_entries(s, "own-empty", false, 10).await), visible(5));
}

// ---------------------------------------------------------------------------
// 11. Read marks: by ids, up to a position, all; the unread count is derived
//     from them, and marking is idempotent.
