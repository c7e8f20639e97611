//! Listing (prefixes, byte order, paging) and namespace isolation.

use super::*;

// ---------------------------------------------------------------------------
// 7. Listing: prefixes, byte order, paging.

const LIST_KEYS: &[&str] = &[
    "a",
    "a/b",
    "a/b/c",
    "a:c",
    "a0",
    "aB",
    "ab",
    "abc",
    "abd",
    "ac",
    "b",
    "z",
    "x",
    "é",
    "éa",
    "ü",
    "日本",
    "日本語",
    "😀",
    "x\u{10FFFF}",
    "x\u{10FFFF}a",
    "y",
    "Z",
    " space",
    "~",
];

async fn list_order_and_paging(env: Env) {
    let s = &env.store;
    let mut versions = BTreeMap::new();
    for k in LIST_KEYS {
        let (r, _) = put_outcome(&exec(s, put(k, json!({ "key": k }))).await);
        versions.insert(k.to_string(), r.version);
    }
    let mut sorted: Vec<String> = LIST_KEYS.iter().map(|k| k.to_string()).collect();
    sorted.sort(); // byte order of UTF-8 = code point order
    let all = list(s, "", None, 1000).await;
    assert_eq!(keys(&all), sorted, "listing is in byte order");
    for r in &all {
        assert_eq!(r.value, json!({ "key": r.key }));
        assert_eq!(Some(&r.version), versions.get(&r.key));
    }

    // Every prefix of every key (by characters), and a few more.
    let mut prefixes: BTreeSet<String> = BTreeSet::new();
    for k in LIST_KEYS {
        let chars: Vec<char> = k.chars().collect();
        for n in 0..=chars.len() {
            prefixes.insert(chars[..n].iter().collect());
        }
    }
    prefixes.extend(["q", "a/", "a:", "aa", "abcd", "\u{10FFFF}", "日", "x\u{10FFFE}"].map(String::from));
    for p in &prefixes {
        let want: Vec<String> = sorted
            .iter()
            .filter(|k| k.starts_with(p.as_str()))
            .cloned()
            .collect();
        assert_eq!(keys(&list(s, p, None, 1000).await), want, "prefix {p:?}");
    }
    assert_eq!(
        keys(&list(s, "ab", None, 100).await),
        ["ab", "abc", "abd"],
        "\"ab\" is exact"
    );
    assert_eq!(keys(&list(s, "abc", None, 100).await), ["abc"]);
    assert_eq!(keys(&list(s, "ac", None, 100).await), ["ac"]);
    assert_eq!(keys(&list(s, "a/", None, 100).await), ["a/b", "a/b/c"]);
    assert_eq!(
        keys(&list(s, "x\u{10FFFF}", None, 100).await),
        ["x\u{10FFFF}", "x\u{10FFFF}a"]
    );

    // Paging with `after` yields every record exactly once, in order.
    for p in ["", "a", "ab", "x", "日本", "é"] {
        let want: Vec<String> = sorted.iter().filter(|k| k.starts_with(p)).cloned().collect();
        for limit in [1, 2, 3, 7, 1000] {
            let mut got = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = list(s, p, after.as_deref(), limit).await;
                assert!(page.len() <= limit, "a page holds at most `limit` records");
                got.extend(keys(&page));
                match page.last() {
                    Some(last) if page.len() == limit => after = Some(last.key.clone()),
                    _ => break,
                }
                assert!(
                    got.len() <= want.len(),
                    "paging must terminate (prefix {p:?}, limit {limit})"
                );
            }
            assert_eq!(got, want, "paging prefix {p:?} by {limit}");
        }
    }

    // `after` outside the prefix's range, or between keys.
    assert_eq!(
        keys(&list(s, "ab", Some("a"), 100).await),
        ["ab", "abc", "abd"],
        "after before the prefix"
    );
    assert_eq!(keys(&list(s, "ab", Some("ab"), 100).await), ["abc", "abd"]);
    assert_eq!(
        keys(&list(s, "ab", Some("abb"), 100).await),
        ["abc", "abd"],
        "after that is not a key"
    );
    assert!(
        list(s, "ab", Some("ac"), 100).await.is_empty(),
        "after past the prefix"
    );
    assert_eq!(
        keys(&list(s, "", Some("é"), 100).await),
        sorted
            .iter()
            .filter(|k| k.as_str() > "é")
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(list(s, "", Some("\u{10FFFF}"), 100).await.is_empty());

    // Deleted records vanish from listings; the rest keep their place.
    exec(s, delete("abc", Precondition::None)).await;
    assert_eq!(keys(&list(s, "ab", None, 100).await), ["ab", "abd"]);
}

// ---------------------------------------------------------------------------
// 9. Namespaces are isolated.

async fn namespaces(env: Env) {
    let s = &env.store;
    let x = |ns: &'static str, cmd| {
        let s = s.clone();
        async move { s.execute(ns, cmd, ACTOR).await }
    };
    let (ra, _) = put_outcome(&ok(x("app", put("k", json!("in app"))).await));
    let (rb, created) = put_outcome(&ok(x("app2", put("k", json!("in app2"))).await));
    assert!(created, "the same key in another namespace is another record");
    ok(x("app", put("only-app", json!(1))).await);
    ok(x("app-x", put("k", json!("in app-x"))).await);
    assert_ne!(ra.version, rb.version);
    assert_eq!(
        s.get("app", "k").await.expect("get").map(|r| r.value),
        Some(json!("in app"))
    );
    assert_eq!(
        s.get("app2", "k").await.expect("get").map(|r| r.value),
        Some(json!("in app2"))
    );
    assert_eq!(s.get("app2", "only-app").await.expect("get"), None);
    let l = s.list("app2", "", None, 100).await.expect("list");
    assert_eq!(keys(&l), ["k"]);

    // Preconditions see only their own namespace.
    match x(
        "app2",
        put_if("k", json!(0), Precondition::ExpectedVersion(ra.version)),
    )
    .await
    {
        Err(Error::Core(CoreError::VersionMismatch { current: Some(c), .. })) => {
            assert_eq!(c.version, rb.version)
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    ok(x("app2", delete("k", Precondition::None)).await);
    assert_eq!(
        s.get("app", "k").await.expect("get").map(|r| r.version),
        Some(ra.version)
    );
    ok(x("app2", put("k", json!("back"))).await);

    // delete_namespace removes its own records only.
    assert_eq!(s.delete_namespace("app").await.expect("delete_namespace"), 2);
    assert_eq!(s.get("app", "k").await.expect("get"), None);
    assert!(s.list("app", "", None, 100).await.expect("list").is_empty());
    assert_eq!(
        s.get("app2", "k").await.expect("get").map(|r| r.value),
        Some(json!("back"))
    );
    assert_eq!(
        s.get("app-x", "k").await.expect("get").map(|r| r.value),
        Some(json!("in app-x"))
    );
    assert_eq!(
        s.delete_namespace("app").await.expect("delete_namespace"),
        0,
        "a second delete removes nothing"
    );
    assert_eq!(
        s.delete_namespace("never-used").await.expect("delete_namespace"),
        0
    );

    // The namespace comes back on the next write, with a fresh, larger version.
    let (again, created) = put_outcome(&ok(x("app", put("k", json!("new"))).await));
    assert!(created);
    assert!(again.version > rb.version && again.version > ra.version);
}

lockstep_testkit::backends!(
    crate::common::run;
    list_order_and_paging,
    namespaces,
);
