//! Ordering, paging and the legacy array import.

#![allow(clippy::unwrap_used)]

use super::*;

// 4. Order by (at, id), byte order of ids (ties broken by id), paging by
//    position in both orders yields every entry exactly once.

pub(super) async fn order_and_paging(env: Env) {
    let s = &env.store;
    let feed = "ordered";
    let t0 = system_now().0 - OLD_MS;
    let specs: Vec<(i64, &str)> = vec![
        (t0 + 5, "b"),
        (t0, "ba"),
        (t0, "B"),
        (t0, "a"),
        (t0, "ab"),
        (t0, "a-b"),
        (t0, "a:b"),
        (t0, "é"),
        (t0 + 1, "z"),
        (t0 - 3, "zz"),
        (t0 + 5, "A"),
        (t0 + 5, "c/d"),
        (t0 + 2, "Ω"),
        (t0 + 2, "0"),
        (t0 + 7, "m"),
    ];
    for (at, id) in &specs {
        let (e, created, _) = append_on(s, feed, id, json!({"at": at}), Some(Millis(*at))).await;
        assert!(created);
        assert_eq!(e.at, Millis(*at), "an explicit `at` is kept");
    }
    let mut want: Vec<(i64, String)> = specs.iter().map(|(a, i)| (*a, (*i).to_owned())).collect();
    want.sort(); // Rust's String order is byte order, like SQLite BINARY and COLLATE "C".
    let asc = all_entries(s, feed, false, 1000).await;
    let got: Vec<(i64, String)> = asc.iter().map(|e| (e.at.0, e.id.clone())).collect();
    assert_eq!(got, want, "ascending order is (at, id)");
    let desc = all_entries(s, feed, true, 1000).await;
    let mut rev = want.clone();
    rev.reverse();
    let got: Vec<(i64, String)> = desc.iter().map(|e| (e.at.0, e.id.clone())).collect();
    assert_eq!(got, rev, "descending order is the reverse");

    for limit in [1, 2, 3, 4, 7, 14, 15, 16] {
        for desc in [false, true] {
            let paged = all_entries(s, feed, desc, limit).await;
            let got: Vec<(i64, String)> = paged.iter().map(|e| (e.at.0, e.id.clone())).collect();
            let expected = if desc { &rev } else { &want };
            assert_eq!(
                &got, expected,
                "paged {limit} at a time (desc: {desc}): each entry once, in order"
            );
        }
    }

    // A position between entries (one that names no entry) pages from there.
    let p = page(s, feed, false, Some((Millis(t0), "a0".to_owned())), 100).await;
    let expected: Vec<String> = want
        .iter()
        .filter(|(a, i)| (*a, i.as_str()) > (t0, "a0"))
        .map(|(_, i)| i.clone())
        .collect();
    assert_eq!(ids(&p.entries), expected);
    let p = page(s, feed, true, Some((Millis(t0 + 2), "1".to_owned())), 100).await;
    let expected: Vec<String> = rev
        .iter()
        .filter(|(a, i)| (*a, i.as_str()) < (t0 + 2, "1"))
        .map(|(_, i)| i.clone())
        .collect();
    assert_eq!(ids(&p.entries), expected);
    assert_eq!(
        p.unread_count,
        specs.len() as u64,
        "unread_count is the whole feed's"
    );
}

// ---------------------------------------------------------------------------
// 5. Legacy import: duplicates within the array and ids already present are
//    skipped; importing twice changes nothing.

pub(super) fn import_cmd(feed: &str, items: &Value) -> Command {
    let entries = items
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            LegacyFields::default()
                .read(v.clone(), &Limits::default())
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    Command::Import {
        feed: feed.to_owned(),
        entries,
    }
}

pub(super) fn imported(c: &Committed) -> (usize, usize) {
    match &c.outcome {
        Outcome::Imported { imported, skipped } => (*imported, *skipped),
        other => panic!("expected an import outcome, got {other:?}"),
    }
}

pub(super) async fn import_legacy(env: Env) {
    let s = &env.store;
    let feed = "recentReceives:owner@example.com";
    let (present, _, _) = append_on(s, feed, "r2", json!({"live": true}), None).await;
    let legacy = json!([
        {"id": "r1", "at": "2026-01-01T00:00:01Z", "ip": "10.0.0.1", "amount": 1},
        {"id": "r2", "at": "2026-01-01T00:00:02Z", "amount": 2},
        {"id": "r3", "at": "2026-01-01T00:00:03.5Z", "data": {"amount": 3}},
        {"id": "r1", "at": "2026-01-01T00:00:09Z", "amount": 100},
        {"id": "r4", "data": {"amount": 4}, "note": "kept"},
        {"id": "r5"}
    ]);
    let c = exec(s, import_cmd(feed, &legacy)).await;
    assert_eq!(
        imported(&c),
        (4, 2),
        "r1, r3, r4, r5 imported; r2 (present) and the second r1 skipped"
    );
    let listed = all_entries(s, feed, false, 100).await;
    assert_eq!(listed.len(), 5);
    let by = |id: &str| listed.iter().find(|e| e.id == id).unwrap().clone();
    let r1 = by("r1");
    assert_eq!(r1.at, Millis::parse_rfc3339("2026-01-01T00:00:01Z").unwrap());
    assert_eq!(
        r1.data,
        json!({"ip": "10.0.0.1", "amount": 1})
            .as_object()
            .cloned()
            .unwrap(),
        "the first occurrence in the array wins; the other fields are the data"
    );
    assert_eq!(by("r2"), present, "an id already present keeps its entry");
    assert_eq!(
        by("r3").at,
        Millis(Millis::parse_rfc3339("2026-01-01T00:00:03Z").unwrap().0 + 500)
    );
    assert_eq!(by("r3").data, json!({"amount": 3}).as_object().cloned().unwrap());
    assert_eq!(
        by("r4").data,
        json!({"amount": 4}).as_object().cloned().unwrap(),
        "with a `data` member, the data is `data` (docs/feeds.md)"
    );
    assert!(by("r5").data.is_empty());
    assert_eq!(
        by("r1").revision,
        c.revision,
        "imported entries carry the import's revision"
    );
    assert!(listed.iter().all(|e| !e.read));
    assert_eq!(unread(s, feed).await, 5);

    let again = exec(s, import_cmd(feed, &legacy)).await;
    assert_eq!(imported(&again), (0, 6), "importing twice imports nothing");
    assert_eq!(again.revision, c.revision, "and writes nothing");
    assert_eq!(all_entries(s, feed, false, 100).await, listed, "nothing changed");
}
