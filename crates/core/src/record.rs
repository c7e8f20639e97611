//! Versioned records (SPEC §4): the record type, preconditions and the pure
//! semantics of put, patch and delete.

use crate::{json, Current, Error, Limits, Millis};
use serde_json::Value;

/// A stored record. `version` is the revision of its last write.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The key.
    pub key: String,
    /// Any JSON value.
    pub value: Value,
    /// Revision of the last write; never reused.
    pub version: u64,
    /// When the record was created (storage clock).
    pub created_at: Millis,
    /// When it was last written.
    pub updated_at: Millis,
    /// When it expires, if it has a TTL.
    pub expires_at: Option<Millis>,
}

impl Record {
    /// Whether the record is visible at `now` (not past its TTL).
    pub fn is_live(&self, now: Millis) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    /// The version and value, as reported with conflicts.
    pub fn current(&self) -> Current {
        Current {
            version: self.version,
            value: self.value.clone(),
        }
    }
}

/// Which versions an `If-Match` / `If-None-Match` header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagMatch {
    /// `*`
    Any,
    /// A list of `"N"` entity tags.
    Versions(Vec<u64>),
}

impl EtagMatch {
    fn matches(&self, current: Option<&Record>) -> bool {
        match (self, current) {
            (_, None) => false,
            (EtagMatch::Any, Some(_)) => true,
            (EtagMatch::Versions(vs), Some(r)) => vs.contains(&r.version),
        }
    }
}

/// A write precondition. Body/query preconditions answer 409 with the current
/// state; header preconditions answer 412 (RFC 9110).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Unconditional: last writer wins.
    #[default]
    None,
    /// `expected_version: N`; `0` means "must not exist".
    ExpectedVersion(u64),
    /// `If-Match`.
    IfMatch(EtagMatch),
    /// `If-None-Match`.
    IfNoneMatch(EtagMatch),
}

impl Precondition {
    /// Checks the precondition against the live record.
    pub fn check(&self, current: Option<&Record>) -> Result<(), Error> {
        match self {
            Precondition::None => Ok(()),
            Precondition::ExpectedVersion(expected) => {
                let actual = current.map_or(0, |r| r.version);
                if actual == *expected {
                    Ok(())
                } else {
                    Err(Error::VersionMismatch {
                        expected: *expected,
                        current: current.map(Record::current),
                    })
                }
            }
            Precondition::IfMatch(m) if m.matches(current) => Ok(()),
            Precondition::IfMatch(_) => Err(Error::PreconditionFailed {
                detail: "If-Match does not match the current version".into(),
                current: current.map(Record::current),
            }),
            Precondition::IfNoneMatch(m) if !m.matches(current) => Ok(()),
            Precondition::IfNoneMatch(_) => Err(Error::PreconditionFailed {
                detail: "If-None-Match matches the current version".into(),
                current: current.map(Record::current),
            }),
        }
    }
}

/// A PUT of a whole value.
#[derive(Debug, Clone, PartialEq)]
pub struct PutRecord {
    /// The new value.
    pub value: Value,
    /// The precondition to hold.
    pub precondition: Precondition,
    /// Time to live from now; `None` clears any TTL.
    pub ttl_ms: Option<u64>,
    /// Skip the precondition (admin only; checked by the server).
    pub force: bool,
}

/// A server-side patch document.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchDoc {
    /// RFC 7396 JSON Merge Patch.
    Merge(Value),
    /// RFC 6902 JSON Patch (its `test` operations are value preconditions).
    Json(json_patch::Patch),
}

/// Checks a TTL against its limits.
pub fn check_ttl(ttl_ms: Option<u64>, limits: &Limits) -> Result<(), Error> {
    match ttl_ms {
        Some(0) => Err(Error::invalid("ttl_ms must be at least 1")),
        Some(t) if t > limits.record_ttl_ms_max => Err(Error::invalid(format!(
            "ttl_ms {t} is over the limit {}",
            limits.record_ttl_ms_max
        ))),
        _ => Ok(()),
    }
}

/// A new record state written at `revision`, keeping `created_at` of a live record.
pub fn written(
    key: &str,
    current: Option<&Record>,
    value: Value,
    expires_at: Option<Millis>,
    revision: u64,
    now: Millis,
) -> Record {
    Record {
        key: key.to_owned(),
        value,
        version: revision,
        created_at: current.map_or(now, |r| r.created_at),
        updated_at: now,
        expires_at,
    }
}

/// PUT semantics: returns the new record and whether it was created.
pub fn put(
    key: &str,
    current: Option<&Record>,
    req: &PutRecord,
    revision: u64,
    now: Millis,
    limits: &Limits,
) -> Result<(Record, bool), Error> {
    json::check_value(&req.value, limits)?;
    check_ttl(req.ttl_ms, limits)?;
    if !req.force {
        req.precondition.check(current)?;
    }
    let expires_at = req.ttl_ms.map(|t| now.plus_ms(t));
    let rec = written(key, current, req.value.clone(), expires_at, revision, now);
    Ok((rec, current.is_none()))
}

/// Applies a patch document to a value.
pub fn apply_patch(value: &Value, doc: &PatchDoc, current: Option<&Record>) -> Result<Value, Error> {
    let mut out = value.clone();
    match doc {
        PatchDoc::Merge(m) => json_patch::merge(&mut out, m),
        // `out` is a copy thrown away on error, so the patch is applied without
        // json_patch's undo, which panics when it cannot undo a `move` (e.g. a
        // move to "" followed by a failing operation).
        PatchDoc::Json(p) => json_patch::patch_unsafe(&mut out, &p.0).map_err(|e| match e.kind {
            json_patch::PatchErrorKind::TestFailed => Error::PatchTestFailed {
                detail: format!("test operation {} failed at {:?}", e.operation, e.path.as_str()),
                current: current.map(Record::current),
            },
            _ => Error::InvalidPatch(e.to_string()),
        })?,
    }
    Ok(out)
}

/// PATCH semantics: 404 when absent (after the precondition), TTL kept.
pub fn patch(
    key: &str,
    current: Option<&Record>,
    doc: &PatchDoc,
    precondition: &Precondition,
    revision: u64,
    now: Millis,
    limits: &Limits,
) -> Result<Record, Error> {
    precondition.check(current)?;
    let cur = current.ok_or_else(|| Error::NotFound(format!("record {key:?} does not exist")))?;
    let value = apply_patch(&cur.value, doc, current)?;
    json::check_value(&value, limits)?;
    Ok(written(key, current, value, cur.expires_at, revision, now))
}

/// DELETE semantics: 404 when absent (after the precondition).
pub fn delete(key: &str, current: Option<&Record>, precondition: &Precondition) -> Result<(), Error> {
    precondition.check(current)?;
    match current {
        Some(_) => Ok(()),
        None => Err(Error::NotFound(format!("record {key:?} does not exist"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(version: u64, value: Value) -> Record {
        Record {
            key: "k".into(),
            value,
            version,
            created_at: Millis(1),
            updated_at: Millis(1),
            expires_at: None,
        }
    }

    fn check(pre: Precondition, current: Option<&Record>, ok: bool, code: &str) {
        let got = pre.check(current);
        assert_eq!(got.is_ok(), ok, "{pre:?} on {current:?}: {got:?}");
        if let Err(e) = got {
            let name = match e {
                Error::VersionMismatch { .. } => "version_mismatch",
                Error::PreconditionFailed { .. } => "precondition_failed",
                _ => "other",
            };
            assert_eq!(name, code);
        }
    }

    #[test]
    fn preconditions() {
        let r = rec(7, json!(1));
        use EtagMatch::*;
        use Precondition::*;
        check(None, Option::None, true, "");
        check(ExpectedVersion(0), Option::None, true, "");
        check(ExpectedVersion(0), Some(&r), false, "version_mismatch");
        check(ExpectedVersion(7), Some(&r), true, "");
        check(ExpectedVersion(6), Some(&r), false, "version_mismatch");
        check(ExpectedVersion(7), Option::None, false, "version_mismatch");
        check(IfMatch(Any), Some(&r), true, "");
        check(IfMatch(Any), Option::None, false, "precondition_failed");
        check(IfMatch(Versions(vec![1, 7])), Some(&r), true, "");
        check(IfMatch(Versions(vec![6])), Some(&r), false, "precondition_failed");
        check(IfNoneMatch(Any), Option::None, true, "");
        check(IfNoneMatch(Any), Some(&r), false, "precondition_failed");
        check(
            IfNoneMatch(Versions(vec![7])),
            Some(&r),
            false,
            "precondition_failed",
        );
    }

    #[test]
    fn put_keeps_created_at_and_sets_ttl() {
        let l = Limits::default();
        let cur = rec(3, json!(1));
        let req = PutRecord {
            value: json!(2),
            precondition: Precondition::ExpectedVersion(3),
            ttl_ms: Some(1000),
            force: false,
        };
        let (r, created) = put("k", Some(&cur), &req, 9, Millis(50), &l).unwrap_or_else(|e| panic!("{e}"));
        assert!(!created);
        assert_eq!(
            (r.version, r.created_at, r.updated_at, r.expires_at),
            (9, Millis(1), Millis(50), Some(Millis(1050)))
        );
        let forced = PutRecord {
            precondition: Precondition::ExpectedVersion(1),
            force: true,
            ..req
        };
        assert!(put("k", Some(&cur), &forced, 10, Millis(60), &l).is_ok());
    }

    #[test]
    fn patches() {
        let cur = rec(3, json!({"a": 1, "b": {"c": 2}}));
        let merged = apply_patch(
            &cur.value,
            &PatchDoc::Merge(json!({"b": {"c": null}, "d": 4})),
            Some(&cur),
        );
        assert_eq!(merged, Ok(json!({"a": 1, "b": {}, "d": 4})));
        let p: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/a", "value": 2}]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            apply_patch(&cur.value, &PatchDoc::Json(p), Some(&cur)),
            Err(Error::PatchTestFailed { .. })
        ));
        // Found by fuzzing: json_patch's undo of a move to the root panicked.
        let p: json_patch::Patch = serde_json::from_value(json!([
            {"op": "move", "from": "/a", "path": ""},
            {"op": "remove", "path": "/zz"}
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            apply_patch(&cur.value, &PatchDoc::Json(p), Some(&cur)),
            Err(Error::InvalidPatch(_))
        ));
        let p: json_patch::Patch = serde_json::from_value(json!([{"op": "remove", "path": "/zz"}]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            apply_patch(&cur.value, &PatchDoc::Json(p), Some(&cur)),
            Err(Error::InvalidPatch(_))
        ));
    }
}
