//! Property tests of [`super::parse_etags`] (the `If-Match` / `If-None-Match`
//! lists): no panic on any text, `*` is any, and a list of tags reads back as
//! the versions of its strong numeric tags. `PROPTEST_CASES` overrides counts.

use super::parse_etags;
use lockstep_core::record::EtagMatch;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn pad() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec![' ', '\t']), 0..3).prop_map(String::from_iter)
}

fn header_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        3 => prop::sample::select(vec!['"', 'W', '/', ',', ' ', '\t', '*', '0', '1', '9', '-', '+']),
        2 => proptest::char::range(' ', '~'),
    ]
}

/// One entity tag as a client may write it.
#[derive(Debug, Clone)]
enum Tag {
    Strong(u64),
    Weak(u64),
    Opaque(String),
}

fn tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        4 => any::<u64>().prop_map(Tag::Strong),
        1 => any::<u64>().prop_map(Tag::Weak),
        // etagc without '"' and ',' (a comma splits the list).
        1 => prop::collection::vec(prop::sample::select(b"!#$%&'()*+-./0123456789:;<=>?@AZaz[]^_`{|}~".to_vec()), 0..8)
            .prop_map(|b| Tag::Opaque(String::from_utf8(b).unwrap_or_default())),
    ]
}

fn render(t: &Tag) -> String {
    match t {
        Tag::Strong(v) => format!("\"{v}\""),
        Tag::Weak(v) => format!("W/\"{v}\""),
        Tag::Opaque(s) => format!("\"{s}\""),
    }
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn any_text_never_panics(raw in prop::collection::vec(header_char(), 0..40).prop_map(String::from_iter)) {
        if let Ok(EtagMatch::Versions(vs)) = parse_etags(&raw) {
            // Every version read is written in the text.
            for v in vs {
                let quoted = format!("\"{v}\"");
                prop_assert!(raw.contains(&quoted), "{:?} in {:?}", v, raw);
            }
        }
    }

    #[test]
    fn star_is_any(pad_l in pad(), pad_r in pad()) {
        prop_assert_eq!(parse_etags(&format!("{pad_l}*{pad_r}")).ok(), Some(EtagMatch::Any));
    }

    #[test]
    fn lists_read_back(tags in prop::collection::vec(tag(), 1..6), seps in prop::collection::vec((pad(), pad()).prop_map(|(a, b)| format!("{a},{b}")), 6)) {
        let mut raw = String::new();
        for (i, t) in tags.iter().enumerate() {
            if i > 0 {
                raw.push_str(&seps[i]);
            }
            raw.push_str(&render(t));
        }
        let expected: Vec<u64> = tags
            .iter()
            .filter_map(|t| match t {
                Tag::Strong(v) => Some(*v),
                // An opaque tag that is a version as we write it is one too.
                Tag::Opaque(s) => s.parse().ok().filter(|v: &u64| v.to_string() == *s),
                Tag::Weak(_) => None,
            })
            .collect();
        prop_assert_eq!(parse_etags(&raw).ok(), Some(EtagMatch::Versions(expected)), "{:?}", raw);
    }

    #[test]
    fn only_canonical_numbers_are_versions(n in any::<u64>(), pad in prop::sample::select(vec!["0", "00", "+", "+0"])) {
        // Found by fuzzing: "05" and "+5" matched version 5.
        prop_assert_eq!(parse_etags(&format!("\"{pad}{n}\"")).ok(), Some(EtagMatch::Versions(vec![])));
        prop_assert_eq!(parse_etags(&format!("\"{n}\"")).ok(), Some(EtagMatch::Versions(vec![n])));
    }

    #[test]
    fn unquoted_tags_are_refused(n in any::<u64>(), weak in any::<bool>()) {
        let raw = if weak { format!("W/{n}") } else { n.to_string() };
        prop_assert!(parse_etags(&raw).is_err(), "{:?}", raw);
    }
}
