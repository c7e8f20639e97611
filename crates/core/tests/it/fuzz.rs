//! Property tests (proptest) over hostile input to the parsing and validation of
//! the core: names, cursors, `Idempotency-Key`, JSON depth, merge patch and JSON
//! Patch. Nothing panics on any input, and each function keeps the property its
//! documentation states. `PROPTEST_CASES` overrides every case count.

#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_core::idempotency::parse_key;
use lockstep_core::json::{text_depth, value_depth};
use lockstep_core::names::{
    prefix_upper_bound, validate_key, validate_namespace, validate_revision, validate_text, REVISION_MAX,
};
use lockstep_core::record::{apply_patch, PatchDoc};
use lockstep_core::{cursor, Error, Limits};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `PROPTEST_CASES` when set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Characters that break parsers: ASCII punctuation and controls, NUL, DEL,
/// separators, non-characters, surrogate neighbours, the largest code point.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        3 => proptest::char::range(' ', '~'),
        2 => prop::sample::select(vec![
            '\0', '\n', '\r', '\t', '\u{7f}', '\u{80}', '\u{9f}', '\u{a0}', '\u{200b}', '\u{2028}',
            '\u{feff}', '\u{d7ff}', '\u{e000}', '\u{fffd}', '\u{ffff}', '\u{10ffff}', '"', '\\',
            '/', '%', ':', ',', '*', '~', '.', '-', '_', 'W', '{', '[', '}', ']',
        ]),
        2 => proptest::char::range('a', 'z'),
    ]
}

fn hostile_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(hostile_char(), 0..max).prop_map(String::from_iter)
}

/// A string with a long run in it, to reach the length limits.
fn long_string() -> impl Strategy<Value = String> {
    (hostile_string(8), hostile_char(), 0usize..700, hostile_string(8))
        .prop_map(|(a, c, n, b)| format!("{a}{}{b}", String::from(c).repeat(n)))
}

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![4 => hostile_string(40), 1 => long_string()]
}

/// Arbitrary JSON values, keys drawn from a small set so that patches and
/// documents share members.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        hostile_string(6).prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((member_name(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["a", "b", "c", "0", "1", "-", "~", "/", "~0", "~1", ""])
            .prop_map(str::to_owned),
        1 => hostile_string(4),
    ]
}

// ---------------------------------------------------------------------------
// Names.

fn namespace_reference(ns: &str) -> bool {
    let b = ns.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

fn namespace_like() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        8 => proptest::char::range('a', 'z'),
        2 => proptest::char::range('0', '9'),
        2 => prop::sample::select(vec!['.', '_', '-']),
        1 => hostile_char(),
    ];
    prop::collection::vec(c, 0..70).prop_map(String::from_iter)
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn namespace_validation_is_the_grammar(ns in prop_oneof![namespace_like(), any_string()]) {
        prop_assert_eq!(validate_namespace(&ns).is_ok(), namespace_reference(&ns), "{:?}", ns);
    }

    #[test]
    fn key_validation_is_the_rule(key in any_string(), max in prop_oneof![Just(512usize), 0usize..40]) {
        let limits = Limits { key_bytes_max: max, ..Limits::default() };
        let expected = !key.is_empty() && key.len() <= max && !key.chars().any(char::is_control);
        let got = validate_key(&key, &limits);
        prop_assert_eq!(got.is_ok(), expected, "{:?}: {:?}", key, got);
        prop_assert_eq!(validate_text("x", &key).is_ok(), !key.chars().any(char::is_control));
    }

    #[test]
    fn revisions_fit_in_i64(n in prop_oneof![any::<u64>(), Just(REVISION_MAX), Just(REVISION_MAX + 1)]) {
        prop_assert_eq!(validate_revision("v", n).is_ok(), i64::try_from(n).is_ok());
    }

    #[test]
    fn prefix_upper_bound_bounds_every_extension(prefix in any_string(), suffix in hostile_string(6)) {
        match prefix_upper_bound(&prefix) {
            Some(bound) => {
                let extended = format!("{prefix}{suffix}");
                prop_assert!(extended.as_str() < bound.as_str(), "{:?} >= {:?}", extended, bound);
                prop_assert!(prefix.as_str() < bound.as_str());
            }
            // Only a prefix made entirely of U+10FFFF (or empty) has no bound.
            None => {
                let all_max = prefix.chars().all(|c| c == '\u{10ffff}');
                prop_assert!(all_max, "no bound for {:?}", prefix);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Cursors.

/// The checksum `cursor` puts in front of its payload (not a secret: a client
/// can forge one, so decoding must survive any payload with a valid checksum).
fn forge(payload: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"lockstep-cursor-v1\0");
    h.update(payload);
    let mut bytes = h.finalize()[..8].to_vec();
    bytes.extend_from_slice(payload);
    URL_SAFE_NO_PAD.encode(bytes)
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn cursor_round_trips(scope in any_string(), position in any_string()) {
        let c = cursor::encode(&scope, &position);
        prop_assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "URL-safe: {}", c);
        let decoded = cursor::decode(&c, &scope);
        // Positions are keys and names, which never hold control characters: a
        // cursor naming such a position was forged and is refused.
        if position.chars().any(char::is_control) {
            prop_assert!(decoded.is_err());
        } else {
            prop_assert_eq!(decoded, Ok(position));
        }
    }

    #[test]
    fn cursor_of_another_listing_is_refused(scope in any_string(), other in any_string(), position in any_string()) {
        prop_assume!(scope != other);
        let c = cursor::encode(&scope, &position);
        prop_assert!(cursor::decode(&c, &other).is_err());
    }

    #[test]
    fn tampered_cursor_is_refused(
        scope in hostile_string(12),
        position in hostile_string(12),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cut in any::<prop::sample::Index>(),
        extra in hostile_string(4),
    ) {
        let c = cursor::encode(&scope, &position);
        let mut raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        let i = at.index(raw.len());
        raw[i] ^= 1 << bit;
        prop_assert!(cursor::decode(&URL_SAFE_NO_PAD.encode(&raw), &scope).is_err(), "bit {} of byte {}", bit, i);
        // Truncated or extended text is refused too (or decodes to another
        // listing's nothing): never the original position by accident.
        let truncated = &c[..cut.index(c.len())];
        prop_assert!(cursor::decode(truncated, &scope).is_err());
        if !extra.is_empty() {
            let longer = format!("{c}{extra}");
            prop_assert!(cursor::decode(&longer, &scope).is_err(), "{:?}", longer);
        }
    }

    #[test]
    fn random_cursor_text_is_refused(text in prop_oneof![
        any_string(),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
    ], scope in hostile_string(8)) {
        prop_assert!(cursor::decode(&text, &scope).is_err(), "{:?}", text);
    }

    #[test]
    fn forged_checksum_never_panics(
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            (any_string(), any_string(), any_string())
                .prop_map(|(a, b, c)| serde_json::json!([a, b, c]).to_string().into_bytes()),
            any_string().prop_map(|p| serde_json::json!(["s", p]).to_string().into_bytes()),
        ],
        scope in prop_oneof![Just("s".to_owned()), hostile_string(8)],
    ) {
        // A forged payload decodes only when it is the pair [scope, position].
        if let Ok(p) = cursor::decode(&forge(&payload), &scope) {
            let (s, q): (String, String) = serde_json::from_slice(&payload).unwrap();
            prop_assert_eq!(s, scope);
            prop_assert!(!q.chars().any(char::is_control), "{:?}", q);
            prop_assert_eq!(q, p);
        }
    }
}

// ---------------------------------------------------------------------------
// Idempotency-Key.

fn sf_quote(key: &str) -> String {
    let mut out = String::from("\"");
    for c in key.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn idempotency_key_never_panics(header in prop_oneof![
        any_string(),
        any_string().prop_map(|s| format!("\"{s}")),
        any_string().prop_map(|s| format!("\"{s}\"")),
    ]) {
        if let Ok(key) = parse_key(&header) {
            prop_assert!((1..=255).contains(&key.len()), "{:?} -> {:?}", header, key);
            prop_assert!(key.chars().all(|c| (' '..='~').contains(&c)), "{:?} -> {:?}", header, key);
        }
    }

    #[test]
    fn bare_idempotency_key_is_itself(key in prop::collection::vec(proptest::char::range('!', '~'), 0..300)
        .prop_map(|cs| cs.into_iter().filter(|c| *c != '"').collect::<String>())) {
        let expected = !key.is_empty() && key.len() <= 255;
        let got = parse_key(&key);
        prop_assert_eq!(got.is_ok(), expected, "{:?}: {:?}", key, got);
        if expected {
            prop_assert_eq!(got.unwrap(), key);
        }
    }

    #[test]
    fn quoted_idempotency_key_round_trips(key in prop::collection::vec(proptest::char::range(' ', '~'), 1..256)
        .prop_map(String::from_iter)) {
        prop_assert_eq!(parse_key(&sf_quote(&key)), Ok(key));
    }
}

// ---------------------------------------------------------------------------
// JSON depth.

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn text_depth_never_panics(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(prop::sample::select(b"[]{}\"\\ ,:1a".to_vec()), 0..512),
    ]) {
        let d = text_depth(&bytes);
        let opens = bytes.iter().filter(|b| matches!(b, b'[' | b'{')).count();
        prop_assert!(d <= opens, "depth {} of {} openings", d, opens);
    }

    #[test]
    fn text_depth_is_the_value_depth(v in json_value(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
        prop_assert_eq!(text_depth(text.as_bytes()), value_depth(&v), "{}", text);
    }

    #[test]
    fn deep_nesting_is_measured(n in 0usize..5000, open in prop::sample::select(vec!["[", "{\"a\":"])) {
        let text = open.repeat(n);
        prop_assert_eq!(text_depth(text.as_bytes()), n);
    }
}

// ---------------------------------------------------------------------------
// Merge patch (RFC 7396) and JSON Patch (RFC 6902).

fn merge(doc: &Value, patch: &Value) -> Value {
    apply_patch(doc, &PatchDoc::Merge(patch.clone()), None).unwrap()
}

/// Every JSON Pointer into `v`, with a few that point nowhere.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                pointers(
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
            out.push(format!("{at}/new"));
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
            out.push(format!("{at}/-"));
            out.push(format!("{at}/{}", a.len()));
            out.push(format!("{at}/0{}", a.len()));
        }
        _ => {}
    }
}

fn hostile_pointer() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "/",
            "//",
            "a",
            "/~",
            "/~2",
            "/~01",
            "/-",
            "/-/a",
            "/00",
            "/1e3",
            "/-1",
            "/+1",
            "/99999999999999999999999",
            "/18446744073709551616",
            "/a/b/c/d",
            "/ ",
            "/\u{0}",
        ])
        .prop_map(str::to_owned),
        hostile_string(8),
    ]
}

fn json_patch_doc(doc: Value) -> impl Strategy<Value = (Value, Value)> {
    let mut ptrs = Vec::new();
    pointers(&doc, String::new(), &mut ptrs);
    let ptr = prop_oneof![3 => prop::sample::select(ptrs), 1 => hostile_pointer()];
    let op = (
        prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test", "nope"]),
        ptr.clone(),
        ptr,
        json_value(),
        0u8..8,
    )
        .prop_map(|(op, path, from, value, drop)| {
            let mut o = serde_json::json!({"op": op, "path": path, "from": from, "value": value});
            // Sometimes a member is missing or of the wrong type.
            match drop {
                0 => {
                    o.as_object_mut().unwrap().remove("path");
                }
                1 => {
                    o.as_object_mut().unwrap().remove("value");
                }
                2 => o["path"] = Value::from(1),
                _ => {}
            }
            o
        });
    (Just(doc), prop::collection::vec(op, 0..6).prop_map(Value::Array))
}

proptest! {
    #![proptest_config(config(5_000))]

    #[test]
    fn merge_patch_obeys_rfc7396(doc in json_value(), patch in json_value()) {
        let once = merge(&doc, &patch);
        // Applying the same merge patch again changes nothing.
        prop_assert_eq!(&merge(&once, &patch), &once);
        match &patch {
            Value::Object(members) => {
                let out = once.as_object().unwrap();
                for (k, v) in members {
                    match v {
                        // null removes the member.
                        Value::Null => prop_assert!(!out.contains_key(k), "{} kept", k),
                        // An object merges recursively into the member.
                        Value::Object(_) => {
                            let before = doc.get(k).cloned().unwrap_or(Value::Null);
                            prop_assert_eq!(&out[k], &merge(&before, v));
                        }
                        // Anything else replaces it.
                        _ => prop_assert_eq!(&out[k], v),
                    }
                }
                // Members the patch does not name are kept as they were.
                if let Value::Object(d) = &doc {
                    for (k, v) in d {
                        if !members.contains_key(k) {
                            prop_assert_eq!(&out[k], v);
                        }
                    }
                }
            }
            // A patch that is not an object replaces the whole document.
            other => prop_assert_eq!(&once, other),
        }
    }

    #[test]
    fn json_patch_never_panics((doc, ops) in json_value().prop_flat_map(json_patch_doc)) {
        // As the server parses it: a document that is not a valid patch is refused
        // at parsing; a valid one applies or is refused by kind.
        let Ok(p) = serde_json::from_value::<json_patch::Patch>(ops) else { return Ok(()) };
        match apply_patch(&doc, &PatchDoc::Json(p.clone()), None) {
            Ok(out) => {
                // Deterministic.
                prop_assert_eq!(apply_patch(&doc, &PatchDoc::Json(p), None), Ok(out));
            }
            Err(Error::InvalidPatch(_) | Error::PatchTestFailed { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected refusal {:?}", e),
        }
    }

    #[test]
    fn json_patch_of_arbitrary_json_never_panics(doc in json_value(), ops in json_value()) {
        if let Ok(p) = serde_json::from_value::<json_patch::Patch>(ops) {
            let _ = apply_patch(&doc, &PatchDoc::Json(p), None);
        }
    }
}
