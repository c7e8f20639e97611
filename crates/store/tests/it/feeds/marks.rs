//! Read marks, deleting entries, purged ids appended again.

#![allow(clippy::unwrap_used)]

use super::*;

pub(super) async fn read_marks(env: Env) {
    let s = &env.store;
    let feed = "marks";
    let t0 = system_now().0 - OLD_MS;
    for i in 0..10 {
        append_on(s, feed, &format!("e{i:02}"), json!({}), Some(Millis(t0 + i))).await;
    }
    assert_eq!(unread(s, feed).await, 10);
    let read_ids = |entries: Vec<Entry>| -> Vec<String> {
        entries.into_iter().filter(|e| e.read).map(|e| e.id).collect()
    };

    let sel = || ReadSelector::Ids(vec!["e01".into(), "e03".into(), "missing".into()]);
    let r1 = mark(s, feed, sel()).await;
    assert_eq!(unread(s, feed).await, 8);
    assert_eq!(read_ids(all_entries(s, feed, false, 100).await), ["e01", "e03"]);
    let r2 = mark(s, feed, sel()).await;
    assert!(r2 > r1, "a read mark is a write with a change");
    assert_eq!(unread(s, feed).await, 8, "marking again changes nothing");

    let up_to = || ReadSelector::UpTo(Millis(t0 + 5), "e05".into());
    mark(s, feed, up_to()).await;
    assert_eq!(unread(s, feed).await, 4, "e00..=e05 are read");
    assert_eq!(
        read_ids(all_entries(s, feed, false, 100).await),
        ["e00", "e01", "e02", "e03", "e04", "e05"]
    );
    mark(s, feed, up_to()).await;
    assert_eq!(unread(s, feed).await, 4);
    // A position naming no entry: every entry at or before it.
    mark(s, feed, ReadSelector::UpTo(Millis(t0 + 6), "e06~".into())).await;
    assert_eq!(unread(s, feed).await, 3);
    mark(s, feed, ReadSelector::Ids(vec!["e08".into()])).await;
    assert_eq!(unread(s, feed).await, 2);
    assert_eq!(
        read_ids(all_entries(s, feed, false, 100).await),
        ["e00", "e01", "e02", "e03", "e04", "e05", "e06", "e08"]
    );
    mark(s, feed, ReadSelector::All).await;
    assert_eq!(unread(s, feed).await, 0);
    mark(s, feed, ReadSelector::All).await;
    assert_eq!(unread(s, feed).await, 0);
    assert_eq!(read_ids(all_entries(s, feed, false, 100).await).len(), 10);

    // A new entry is unread; a duplicate append keeps the original's read mark.
    append_on(s, feed, "e10", json!({}), Some(Millis(t0 + 10))).await;
    assert_eq!(unread(s, feed).await, 1);
    let (dup, created, _) = append_on(s, feed, "e03", json!({}), None).await;
    assert!(!created && dup.read, "the duplicate answers the original, read");
    assert_eq!(unread(s, feed).await, 1);
    // Marks of another feed do not leak.
    append_on(s, "other", "e00", json!({}), None).await;
    assert_eq!(unread(s, "other").await, 1);
    // The unread count covers visible entries only.
    configure(s, feed, json!({"max_entries": 2})).await;
    assert_eq!(
        unread(s, feed).await,
        1,
        "e09 (read) and e10 (unread) are visible"
    );
    assert_eq!(
        feeds(s, "", None, 10).await,
        vec![summary(feed, 2, 1), summary("other", 1, 1)]
    );
}

// ---------------------------------------------------------------------------
// 12. Delete: an absent entry is NotFound; a deleted id may be appended again.

pub(super) async fn delete_entry(env: Env) {
    let s = &env.store;
    let feed = "deletes";
    let del = |id: &str| Command::DeleteEntry {
        feed: feed.to_owned(),
        id: id.to_owned(),
    };
    let e = refused(s, del("nope")).await;
    assert!(matches!(e, CoreError::NotFound(_)), "{e:?}");
    let (first, _, _) = append_on(s, feed, "x", json!({"v": 1}), None).await;
    append_on(s, feed, "y", json!({"v": 1}), None).await;
    // The same id in another feed is another entry.
    let e = refused(
        s,
        Command::DeleteEntry {
            feed: "elsewhere".into(),
            id: "x".into(),
        },
    )
    .await;
    assert!(matches!(e, CoreError::NotFound(_)), "{e:?}");
    let c = exec(s, del("x")).await;
    assert_eq!(c.outcome, Outcome::EntryDeleted);
    assert!(c.revision > first.revision);
    assert_eq!(ids(&all_entries(s, feed, true, 10).await), ["y"]);
    assert_eq!(unread(s, feed).await, 1);
    let e = refused(s, del("x")).await;
    assert!(matches!(e, CoreError::NotFound(_)), "deleting twice: {e:?}");
    let (again, created, _) = append_on(s, feed, "x", json!({"v": 2}), None).await;
    assert!(created, "a deleted id may be appended again");
    assert!(again.revision > first.revision);
    assert_eq!(again.data, json!({"v": 2}).as_object().cloned().unwrap());
}

// ---------------------------------------------------------------------------
// 13. An id purged by retention (age) may be appended again as new, both once
//     the sweeper deleted it and while it is only hidden.

pub(super) async fn purged_id_appended_again(env: Env) {
    let s = &env.store;
    let feed = "reappend";
    let old = Millis(system_now().0 - OLD_MS);
    let (swept, _, _) = append_on(s, feed, "swept", json!({"v": 1}), Some(old)).await;
    let (hidden, _, _) = append_on(s, feed, "hidden", json!({"v": 1}), Some(old)).await;
    mark(s, feed, ReadSelector::All).await;
    configure(s, feed, json!({"max_age_ms": 60_000})).await;
    assert!(all_entries(s, feed, true, 10).await.is_empty());
    assert_eq!(unread(s, feed).await, 0);

    // Hidden, not yet swept: appended again as new.
    let (e, created, _) = append_on(s, feed, "hidden", json!({"v": 2}), None).await;
    assert!(created, "an aged-out id is appended again as new");
    assert!(e.revision > hidden.revision);
    assert!(!e.read, "as a new, unread entry");
    assert_eq!(e.data, json!({"v": 2}).as_object().cloned().unwrap());

    assert_eq!(sweep_all(s).await, 1, "the sweeper purges the old `swept` only");
    let (e, created, _) = append_on(s, feed, "swept", json!({"v": 2}), None).await;
    assert!(created, "a purged id is appended again as new");
    assert!(e.revision > swept.revision && !e.read);
    let listed = all_entries(s, feed, false, 10).await;
    let got: BTreeSet<String> = ids(&listed).into_iter().collect();
    assert_eq!(got, BTreeSet::from(["hidden".to_owned(), "swept".to_owned()]));
    assert_eq!(unread(s, feed).await, 2);
    // And now they are live again: duplicates are refused as usual.
    let (_, created, _) = append_on(s, feed, "swept", json!({"v": 3}), None).await;
    assert!(!created);
}

// ---------------------------------------------------------------------------
// 14. The sweeper picks aged-out ids, then purges them in a later transaction.
//     An id appended again as new in between (which the previous case shows
//     is allowed) must survive that stale purge.

pub(super) async fn stale_purge_spares_reappended(env: Env) {
    let s = &env.store;
    let feed = "purge-race";
    let old = Millis(system_now().0 - OLD_MS);
    append_on(s, feed, "r1", json!({"v": 1}), Some(old)).await;
    configure(s, feed, json!({"max_age_ms": 60_000})).await;
    // What the sweeper decided (its candidate query ran here) ...
    let stale = Command::PurgeEntries {
        feed: feed.to_owned(),
        ids: vec!["r1".to_owned()],
        before: None,
    };
    // ... then a new append of the same id commits ...
    let (e, created, _) = append_on(s, feed, "r1", json!({"v": 2}), None).await;
    assert!(created);
    // ... then the sweeper's purge runs.
    exec(s, stale).await;
    let listed = all_entries(s, feed, true, 10).await;
    assert_eq!(
        listed,
        vec![e],
        "the live entry appended after the sweeper chose the aged-out one must not be purged"
    );
}
