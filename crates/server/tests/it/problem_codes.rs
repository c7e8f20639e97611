//! The `code` enum of the problem schema (`error::CODES`) is exactly the set
//! of codes the server can answer: one refusal of every variant of `ApiError`
//! (and of the core's error inside it) is rendered, and its code is listed;
//! every listed code is answered by some variant; the catalogue of
//! docs/errors.md (SPEC §3, plus `internal`) says the same statuses and codes;
//! and each rendering matches the document's `Problem` schema.
//!
//! The samples come from one macro that also writes an exhaustive `match`: a
//! variant added to either enum stops this test from compiling until it has
//! a sample here, and then its code must be listed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use lockstep_core::Error as C;
use lockstep_server::error::CODES;
use lockstep_server::{api, ApiError};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// `variants! { pattern => sample, … }`: `variant(e)` is the index of the
/// arm `e` matches (no wildcard, so the match is exhaustive), and
/// `samples()` holds one sample per arm, in order.
macro_rules! variants {
    ($($pat:pat => $sample:expr,)*) => {
        fn variant(e: &ApiError) -> usize {
            let mut i = 0usize;
            $(
                if matches!(e, $pat) {
                    return i;
                }
                i += 1;
            )*
            unreachable!("{e:?} matched no arm of {i}")
        }

        /// Exhaustiveness: this compiles only while every variant has an arm.
        #[allow(dead_code)]
        fn exhaustive(e: &ApiError) {
            match e {
                $($pat => {})*
            }
        }

        fn samples() -> Vec<ApiError> {
            vec![$($sample),*]
        }
    };
}

fn current() -> Option<lockstep_core::error::Current> {
    Some(lockstep_core::error::Current {
        version: 3,
        value: json!({"n": 1}),
    })
}

variants! {
    ApiError::Core(C::InvalidRequest(_)) => ApiError::invalid("bad"),
    ApiError::Core(C::Unauthorized(_)) => ApiError::Core(C::Unauthorized("expired".into())),
    ApiError::Core(C::TooManyRequests(_)) => ApiError::Core(C::TooManyRequests("rate".into())),
    ApiError::Core(C::Forbidden(_)) => ApiError::Core(C::Forbidden("role".into())),
    ApiError::Core(C::NotFound(_)) => ApiError::Core(C::NotFound("k".into())),
    ApiError::Core(C::VersionMismatch { .. }) => ApiError::Core(C::VersionMismatch { expected: 2, current: current() }),
    ApiError::Core(C::PatchTestFailed { .. }) => ApiError::Core(C::PatchTestFailed { detail: "test".into(), current: None }),
    ApiError::Core(C::PreconditionFailed { .. }) => ApiError::Core(C::PreconditionFailed { detail: "If-Match".into(), current: current() }),
    ApiError::Core(C::PayloadTooLarge(_)) => ApiError::Core(C::PayloadTooLarge("body".into())),
    ApiError::Core(C::InvalidPatch(_)) => ApiError::Core(C::InvalidPatch("incr".into())),
    ApiError::Core(C::LeaseHeld { .. }) => ApiError::Core(C::LeaseHeld { holder: Some("me".into()), expires_at: None, waiters: 2 }),
    ApiError::Core(C::LeaseLost(_)) => ApiError::Core(C::LeaseLost("stale".into())),
    ApiError::Core(C::TicketConflict(_)) => ApiError::Core(C::TicketConflict("finalized".into())),
    ApiError::Core(C::InvalidTransition(_)) => ApiError::Core(C::InvalidTransition("paused".into())),
    ApiError::Core(C::GateClosed(_)) => ApiError::Core(C::GateClosed("revoked".into())),
    ApiError::Core(C::GatePaused(_)) => ApiError::Core(C::GatePaused("paused".into())),
    ApiError::Core(C::IdempotencyKeyInUse(_)) => ApiError::Core(C::IdempotencyKeyInUse("k".into())),
    ApiError::Core(C::IdempotencyKeyReused(_)) => ApiError::Core(C::IdempotencyKeyReused("k".into())),
    ApiError::Core(C::Compacted { .. }) => ApiError::Core(C::Compacted { after: 1, horizon: 5 }),
    ApiError::Unauthorized(_) => ApiError::Unauthorized("no token".into()),
    ApiError::Unavailable(_) => ApiError::Unavailable("down".into()),
    ApiError::Internal(_) => ApiError::Internal("bug".into()),
    ApiError::UnsupportedMediaType(_) => ApiError::UnsupportedMediaType("text/plain".into()),
    ApiError::MethodNotAllowed => ApiError::MethodNotAllowed,
    ApiError::NoRoute => ApiError::NoRoute,
}

/// `(status, code)` of every sample, after checking each sample is of its own arm.
fn answered() -> BTreeSet<(u16, &'static str)> {
    samples()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            assert_eq!(variant(e), i, "sample {i} ({e:?}) is not of arm {i}");
            let (status, code, _) = e.catalogue();
            (status.as_u16(), code)
        })
        .collect()
}

#[test]
fn codes_lists_exactly_the_codes_the_catalogue_answers() {
    let answered: BTreeSet<&str> = answered().into_iter().map(|(_, c)| c).collect();
    let listed: BTreeSet<&str> = CODES.iter().copied().collect();
    assert_eq!(listed.len(), CODES.len(), "a code is listed twice: {CODES:?}");
    let unlisted: Vec<_> = answered.difference(&listed).collect();
    assert!(unlisted.is_empty(), "answered, not in CODES: {unlisted:?}");
    let never: Vec<_> = listed.difference(&answered).collect();
    assert!(never.is_empty(), "in CODES, never answered: {never:?}");
}

/// The `| status | `code` | …` rows of docs/errors.md.
fn catalogue_of_the_docs() -> BTreeSet<(u16, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let status = cells.next()?.parse::<u16>().ok()?;
            let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            Some((status, code.to_owned()))
        })
        .collect()
}

#[test]
fn the_docs_catalogue_says_the_same_statuses_and_codes() {
    let docs = catalogue_of_the_docs();
    let answered: BTreeSet<(u16, String)> = answered().into_iter().map(|(s, c)| (s, c.to_owned())).collect();
    assert!(docs.len() >= 20, "docs/errors.md: only {docs:?}");
    let undocumented: Vec<_> = answered.difference(&docs).collect();
    assert!(
        undocumented.is_empty(),
        "answered, not in docs/errors.md: {undocumented:?}"
    );
    let never: Vec<_> = docs.difference(&answered).collect();
    assert!(never.is_empty(), "in docs/errors.md, never answered: {never:?}");
}

#[test]
fn every_rendering_matches_the_problem_schema_of_the_document() {
    let doc = api::openapi();
    let code = &doc["components"]["schemas"]["Problem"]["properties"]["code"];
    let in_doc: Vec<&str> = code["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("Problem.code has no enum: {code}"))
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(in_doc, CODES, "the document's enum is CODES, in order");
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "$ref": "#/components/schemas/Problem",
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    for e in samples() {
        let (status, body) = e.problem_json();
        let body: Value = serde_json::from_str(&body).unwrap();
        let errors: Vec<String> = validator.iter_errors(&body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{e:?}: {errors:?}\n{body}");
        assert_eq!(body["status"], status.as_u16());
        assert_eq!(
            body["type"],
            format!("urn:lockstep:problem:{}", body["code"].as_str().unwrap())
        );
    }
}
