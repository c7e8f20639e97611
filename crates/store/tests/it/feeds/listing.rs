//! Listing feeds and namespaces; deleting a namespace removes its feeds.

#![allow(clippy::unwrap_used)]

use super::*;

pub(super) async fn list_feeds(env: Env) {
    let s = &env.store;
    for (feed, n) in [("a", 1), ("b/c", 2), ("b/d", 3), ("b0", 1), ("c", 4)] {
        for i in 0..n {
            append_on(s, feed, &format!("e{i}"), json!({}), None).await;
        }
    }
    mark(s, "b/d", ReadSelector::Ids(vec!["e0".into()])).await;
    let all = feeds(s, "", None, 100).await;
    assert_eq!(
        all,
        vec![
            summary("a", 1, 1),
            summary("b/c", 2, 2),
            summary("b/d", 3, 2),
            summary("b0", 1, 1),
            summary("c", 4, 4)
        ]
    );
    assert_eq!(
        feeds(s, "b/", None, 100).await,
        vec![summary("b/c", 2, 2), summary("b/d", 3, 2)]
    );
    assert_eq!(feeds(s, "b/", Some("b/c"), 100).await, vec![summary("b/d", 3, 2)]);
    let first = feeds(s, "", None, 2).await;
    assert_eq!(first, all[..2].to_vec());
    let rest = feeds(s, "", Some(&first[1].feed), 100).await;
    assert_eq!(rest, all[2..].to_vec());
    // Another namespace sees none of them.
    assert!(s.list_feeds("other-ns", "", None, 100).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// 16. Namespaces isolate feeds of the same name.

pub(super) async fn namespaces(env: Env) {
    let s = &env.store;
    let feed = "shared-name";
    append_on(s, feed, "x", json!({"ns": NS}), None).await;
    let c = s
        .execute(
            "other",
            append_cmd(feed, "x", json!({"ns": "other"}), None),
            ACTOR,
        )
        .await
        .unwrap();
    let (e, created) = appended(&c);
    assert!(
        created,
        "the same feed and id in another namespace is another entry"
    );
    assert_eq!(e.data["ns"], json!("other"));
    s.execute(
        "other",
        Command::MarkRead {
            feed: feed.into(),
            selector: ReadSelector::All,
        },
        ACTOR,
    )
    .await
    .unwrap();
    assert_eq!(unread(s, feed).await, 1, "read marks stay in their namespace");
    let other = s.list_entries("other", feed, true, None, 10).await.unwrap();
    assert_eq!(other.unread_count, 0);
    assert_eq!(other.entries.len(), 1);
}

// ---------------------------------------------------------------------------
// 17. Deleting a namespace removes everything in it (SPEC §2), feeds and feed
//     configuration included: afterwards the namespace is as new.

pub(super) async fn delete_namespace_removes_feeds(env: Env) {
    let s = &env.store;
    let feed = "doomed";
    configure(s, "", json!({"max_entries": 1})).await;
    configure(s, feed, json!({"max_entries": 1})).await;
    append_on(s, feed, "a", json!({}), None).await;
    append_on(s, feed, "b", json!({}), None).await;
    exec(s, put("rec", json!(1))).await;
    s.delete_namespace(NS).await.unwrap();
    assert_eq!(get(s, "rec").await, None, "records are gone");
    assert!(feeds(s, "", None, 10).await.is_empty(), "the feeds are gone too");
    assert!(page(s, feed, true, None, 10).await.entries.is_empty());
    // As new: the ids append as new, with no configuration left behind.
    let (_, created, _) = append_on(s, feed, "a", json!({"v": 2}), None).await;
    assert!(created, "an id of a deleted namespace appends as new");
    append_on(s, feed, "c", json!({}), None).await;
    append_on(s, "fresh", "x", json!({}), None).await;
    append_on(s, "fresh", "y", json!({}), None).await;
    assert_eq!(
        all_entries(s, feed, true, 10).await.len(),
        2,
        "the feed's cap is gone"
    );
    assert_eq!(
        all_entries(s, "fresh", true, 10).await.len(),
        2,
        "the default cap is gone"
    );
}
