//! Transactions (SPEC §5): compare several things, then apply one branch of
//! operations atomically, etcd-style. Parsed straight from the request body.

use crate::command::RowKey;
use crate::record::{self, PatchDoc};
use crate::{json, Error, Limits, Millis, Record};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{compare, success, failure}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Txn {
    /// Conditions evaluated together.
    #[serde(default)]
    pub compare: Vec<Compare>,
    /// Applied when every compare holds.
    #[serde(default)]
    pub success: Vec<Op>,
    /// Applied otherwise.
    #[serde(default)]
    pub failure: Vec<Op>,
}

/// One condition of a transaction. On the wire it is an object whose members
/// tell the variant (see each); it serializes to exactly what it parses from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub enum Compare {
    /// `{key, version: N}`: the live version is N (0 = absent).
    Version {
        /// Record key.
        key: String,
        /// Expected version.
        version: u64,
    },
    /// `{key, exists: bool}`.
    Exists {
        /// Record key.
        key: String,
        /// Whether it must exist.
        exists: bool,
    },
    /// `{key, value: JSON}`: the live value equals it (absent never equals).
    Value {
        /// Record key.
        key: String,
        /// Expected value.
        value: Value,
    },
    /// `{lease: name, token: T}`: T is the live holder's token now.
    Lease {
        /// Lease name.
        name: String,
        /// Owner token.
        token: String,
    },
    /// `{fence: {resource: R, token: N}}`: N is at least the highest fence recorded
    /// for R; applying the success branch records N.
    Fence {
        /// The fenced resource.
        resource: String,
        /// The caller's fence.
        token: u64,
    },
}

impl TryFrom<Map<String, Value>> for Compare {
    type Error = String;

    fn try_from(mut m: Map<String, Value>) -> Result<Self, String> {
        if m.contains_key("lease") {
            return match (m.remove("lease"), m.remove("token"), m.is_empty()) {
                (Some(Value::String(name)), Some(Value::String(token)), true) if !token.is_empty() => {
                    Ok(Compare::Lease { name, token })
                }
                _ => Err("a lease compare is {lease: name, token: non-empty string}".into()),
            };
        }
        if m.contains_key("fence") {
            let bad =
                || "a fence compare is {fence: {resource: string, token: non-negative integer}}".to_owned();
            let (Some(Value::Object(mut f)), true) = (m.remove("fence"), m.is_empty()) else {
                return Err(bad());
            };
            return match (f.remove("resource"), f.remove("token"), f.is_empty()) {
                (Some(Value::String(resource)), Some(Value::Number(n)), true) => n
                    .as_u64()
                    .map(|token| Compare::Fence { resource, token })
                    .ok_or_else(bad),
                _ => Err(bad()),
            };
        }
        let key = match m.remove("key") {
            Some(Value::String(k)) => k,
            Some(_) => return Err("compare `key` must be a string".into()),
            None => return Err("a compare needs a `key`, a `lease` or a `fence`".into()),
        };
        let (name, target) = match (m.len(), m.into_iter().next()) {
            (1, Some(pair)) => pair,
            _ => return Err("a compare has `key` and exactly one of `version`, `exists`, `value`".into()),
        };
        match (name.as_str(), target) {
            ("version", Value::Number(n)) => n
                .as_u64()
                .map(|version| Compare::Version { key, version })
                .ok_or_else(|| "compare `version` must be a non-negative integer".into()),
            ("exists", Value::Bool(exists)) => Ok(Compare::Exists { key, exists }),
            ("value", value) => Ok(Compare::Value { key, value }),
            ("version", _) => Err("compare `version` must be a non-negative integer".into()),
            ("exists", _) => Err("compare `exists` must be a boolean".into()),
            (other, _) => Err(format!("unknown compare field `{other}`")),
        }
    }
}

impl Serialize for Compare {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        match self {
            Compare::Version { key, version } => {
                m.serialize_entry("key", key)?;
                m.serialize_entry("version", version)?;
            }
            Compare::Exists { key, exists } => {
                m.serialize_entry("key", key)?;
                m.serialize_entry("exists", exists)?;
            }
            Compare::Value { key, value } => {
                m.serialize_entry("key", key)?;
                m.serialize_entry("value", value)?;
            }
            Compare::Lease { name, token } => {
                m.serialize_entry("lease", name)?;
                m.serialize_entry("token", token)?;
            }
            Compare::Fence { resource, token } => {
                m.serialize_entry(
                    "fence",
                    &FenceWire {
                        resource,
                        token: *token,
                    },
                )?;
            }
        }
        m.end()
    }
}

/// The inner object of a fence compare, `{resource, token}`.
#[derive(Serialize)]
struct FenceWire<'a> {
    resource: &'a str,
    token: u64,
}

/// The request schema of a compare: one of its five object shapes.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Compare {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Compare".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Keys, lease names and resources are names (SPEC §3).
        let name = |description: &str| {
            serde_json::json!({"type": "string", "minLength": 1, "maxLength": 512,
                "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$", "description": description})
        };
        let key = name("Record key.");
        let uint = |description: &str| {
            serde_json::json!({"type": "integer", "minimum": 0, "format": "uint64",
            "description": description})
        };
        let shape = |description: &str, props: Value, required: [&str; 2]| {
            serde_json::json!({"type": "object", "description": description, "properties": props,
                "required": required, "additionalProperties": false})
        };
        schemars::json_schema!({
            "description": "One condition of a transaction.",
            "oneOf": [
                shape("The live version is `version` (0 = absent).",
                    serde_json::json!({"key": key, "version": uint("Expected version.")}), ["key", "version"]),
                shape("The record exists, or does not.",
                    serde_json::json!({"key": key, "exists": {"type": "boolean"}}), ["key", "exists"]),
                shape("The live value equals `value` (absent never equals).",
                    serde_json::json!({"key": key, "value": {"description": "Expected value (any JSON)."}}),
                    ["key", "value"]),
                shape("`token` is the live holder's token of lease `lease` now.",
                    serde_json::json!({"lease": name("Lease name."),
                        "token": {"type": "string", "minLength": 1, "description": "Owner token."}}),
                    ["lease", "token"]),
                {"type": "object", "required": ["fence"], "additionalProperties": false,
                 "description": "`token` is at least the highest fence recorded for `resource`; applying the success branch records it.",
                 "properties": {"fence": shape("The fenced resource and the caller's fence.",
                    serde_json::json!({"resource": name("The fenced resource."), "token": uint("The caller's fence.")}),
                    ["resource", "token"])}},
            ]
        })
    }
}

/// What compares read besides records: leases and recorded fences.
#[derive(Debug, Clone, Default)]
pub struct Guards {
    /// Live holder token of each lease named by a compare.
    pub lease_tokens: std::collections::BTreeMap<String, Option<String>>,
    /// Highest recorded fence of each resource named by a compare.
    pub fences: std::collections::BTreeMap<String, u64>,
}

impl Compare {
    /// The row it reads.
    pub fn row(&self) -> RowKey {
        match self {
            Compare::Version { key, .. } | Compare::Exists { key, .. } | Compare::Value { key, .. } => {
                RowKey::Record(key.clone())
            }
            Compare::Lease { name, .. } => RowKey::Lease(name.clone()),
            Compare::Fence { resource, .. } => RowKey::Fence(resource.clone()),
        }
    }

    fn holds(&self, working: &Working, guards: &Guards) -> bool {
        let live = |key: &str| working.get(key).and_then(Option::as_ref);
        match self {
            Compare::Version { key, version } => live(key).map_or(0, |r| r.version) == *version,
            Compare::Exists { key, exists } => live(key).is_some() == *exists,
            Compare::Value { key, value } => live(key).is_some_and(|r| &r.value == value),
            Compare::Lease { name, token } => {
                guards.lease_tokens.get(name).and_then(Option::as_deref) == Some(token.as_str())
            }
            Compare::Fence { resource, token } => guards.fences.get(resource).is_none_or(|f| token >= f),
        }
    }
}

/// `{key}`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyOp {
    /// Record key.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 512)))]
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))
    )]
    pub key: String,
}

/// `{key, value, ttl_ms?}`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PutOp {
    /// Record key.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 512)))]
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))
    )]
    pub key: String,
    /// New value.
    pub value: Value,
    /// Optional TTL.
    pub ttl_ms: Option<u64>,
}

/// `{key, merge}`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PatchOp {
    /// Record key.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 512)))]
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))
    )]
    pub key: String,
    /// RFC 7396 merge patch.
    pub merge: Value,
}

/// `{key, by}`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IncrOp {
    /// Record key.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 512)))]
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))
    )]
    pub key: String,
    /// Amount to add (may be negative).
    pub by: i64,
}

/// One operation of a branch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Read a record.
    Get(KeyOp),
    /// Write a whole value.
    Put(PutOp),
    /// Delete a record (absent is not an error: `deleted: false`).
    Delete(KeyOp),
    /// Merge-patch a record (absent is 404).
    Patch(PatchOp),
    /// Add to an integer (absent counts as 0).
    Incr(IncrOp),
}

impl Op {
    /// `{get: {key}}`.
    pub fn get(key: impl Into<String>) -> Op {
        Op::Get(KeyOp { key: key.into() })
    }

    /// `{put: {key, value}}` (no TTL).
    pub fn put(key: impl Into<String>, value: Value) -> Op {
        Op::Put(PutOp {
            key: key.into(),
            value,
            ttl_ms: None,
        })
    }

    /// `{delete: {key}}`.
    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete(KeyOp { key: key.into() })
    }

    /// `{patch: {key, merge}}`.
    pub fn patch(key: impl Into<String>, merge: Value) -> Op {
        Op::Patch(PatchOp {
            key: key.into(),
            merge,
        })
    }

    /// `{incr: {key, by}}`.
    pub fn incr(key: impl Into<String>, by: i64) -> Op {
        Op::Incr(IncrOp { key: key.into(), by })
    }

    /// The record key it touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Get(o) | Op::Delete(o) => &o.key,
            Op::Put(o) => &o.key,
            Op::Patch(o) => &o.key,
            Op::Incr(o) => &o.key,
        }
    }
}

/// The answer of one operation, aligned with the applied branch.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// `get`: the record, or `None` when absent.
    Get(Option<Record>),
    /// `put`, `patch`, `incr`: the record as written.
    Written(Record),
    /// `delete`: whether something was deleted.
    Delete {
        /// The key.
        key: String,
        /// Whether a live record was removed.
        deleted: bool,
    },
}

/// What a transaction answered (the revision is added by the shell).
#[derive(Debug, Clone, PartialEq)]
pub struct TxnResult {
    /// Whether every compare held.
    pub succeeded: bool,
    /// Indexes of the compares that did not hold.
    pub failed: Vec<usize>,
    /// One result per operation of the applied branch.
    pub results: Vec<OpResult>,
}

impl Txn {
    /// Validates keys, sizes and the item limit before anything is loaded.
    pub fn validate(&self, limits: &Limits) -> Result<(), Error> {
        let items = self.compare.len() + self.success.len() + self.failure.len();
        if items > limits.txn_items_max {
            return Err(Error::PayloadTooLarge(format!(
                "transaction has {items} items, the limit is {}",
                limits.txn_items_max
            )));
        }
        for c in &self.compare {
            crate::names::validate_key(c.row().name(), limits)?;
            match c {
                Compare::Value { value, .. } => {
                    json::check_value(value, limits)?;
                }
                Compare::Version { version, .. } => {
                    crate::names::validate_revision("compare version", *version)?;
                }
                Compare::Fence { token, .. } => {
                    crate::names::validate_revision("fence token", *token)?;
                }
                Compare::Lease { token, .. } => {
                    crate::lease::check_token(token)?;
                }
                Compare::Exists { .. } => {}
            }
        }
        for op in self.success.iter().chain(&self.failure) {
            crate::names::validate_key(op.key(), limits)?;
            match op {
                Op::Put(p) => {
                    json::check_value(&p.value, limits)?;
                    record::check_ttl(p.ttl_ms, limits)?;
                }
                Op::Patch(p) => {
                    json::check_value(&p.merge, limits)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every row the transaction reads or writes, sorted and unique.
    pub fn rows(&self) -> Vec<RowKey> {
        let mut rows: Vec<RowKey> = self
            .compare
            .iter()
            .map(Compare::row)
            .chain(
                self.success
                    .iter()
                    .chain(&self.failure)
                    .map(|o| RowKey::Record(o.key().to_owned())),
            )
            .collect();
        rows.sort();
        rows.dedup();
        rows
    }

    /// The fences to record when the success branch applies: each fence compare's
    /// resource with its highest token, where that is above the recorded fence.
    pub fn fences_to_record(&self, guards: &Guards) -> Vec<(String, u64)> {
        let mut highest: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        for c in &self.compare {
            if let Compare::Fence { resource, token } = c {
                let e = highest.entry(resource.as_str()).or_insert(*token);
                *e = (*e).max(*token);
            }
        }
        // Only a fence above the recorded one changes anything.
        highest
            .into_iter()
            .filter(|(resource, token)| guards.fences.get(*resource).is_none_or(|r| token > r))
            .map(|(resource, token)| (resource.to_owned(), token))
            .collect()
    }
}

/// The live view a transaction works on: key → live record (or absent).
pub type Working = std::collections::BTreeMap<String, Option<Record>>;

/// One write made by an operation, for the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The key.
    pub key: String,
    /// The change op (`put`, `patch`, `delete`).
    pub op: crate::ChangeOp,
}

/// Evaluates the compares and applies the chosen branch to `working`, in order,
/// so a later operation sees an earlier one's write.
pub fn apply(
    txn: &Txn,
    working: &mut Working,
    guards: &Guards,
    revision: u64,
    now: Millis,
    limits: &Limits,
) -> Result<(TxnResult, Vec<Written>), Error> {
    let failed: Vec<usize> = txn
        .compare
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.holds(working, guards))
        .map(|(i, _)| i)
        .collect();
    let succeeded = failed.is_empty();
    let branch = if succeeded { &txn.success } else { &txn.failure };
    let mut results = Vec::with_capacity(branch.len());
    let mut writes = Vec::new();
    for op in branch {
        let key = op.key().to_owned();
        let cur = working.get(&key).cloned().flatten();
        let (result, new_state, change) = match op {
            Op::Get(_) => (OpResult::Get(cur), None, None),
            Op::Put(p) => {
                let expires = p.ttl_ms.map(|t| now.plus_ms(t));
                let r = record::written(&key, cur.as_ref(), p.value.clone(), expires, revision, now);
                (
                    OpResult::Written(r.clone()),
                    Some(Some(r)),
                    Some(crate::ChangeOp::Put),
                )
            }
            Op::Delete(_) => {
                let deleted = cur.is_some();
                let state = deleted.then_some(None);
                let change = deleted.then_some(crate::ChangeOp::Delete);
                (
                    OpResult::Delete {
                        key: key.clone(),
                        deleted,
                    },
                    state,
                    change,
                )
            }
            Op::Patch(p) => {
                let c = cur
                    .as_ref()
                    .ok_or_else(|| Error::NotFound(format!("record {key:?} does not exist")))?;
                let value = record::apply_patch(&c.value, &PatchDoc::Merge(p.merge.clone()), Some(c))?;
                json::check_value(&value, limits)?;
                let r = record::written(&key, Some(c), value, c.expires_at, revision, now);
                (
                    OpResult::Written(r.clone()),
                    Some(Some(r)),
                    Some(crate::ChangeOp::Patch),
                )
            }
            Op::Incr(i) => {
                let base = match cur.as_ref().map(|r| &r.value) {
                    None => 0,
                    Some(v) => v.as_i64().ok_or_else(|| {
                        Error::InvalidPatch(format!("incr: record {key:?} does not hold an integer"))
                    })?,
                };
                let sum = base
                    .checked_add(i.by)
                    .ok_or_else(|| Error::InvalidPatch(format!("incr: record {key:?} would overflow")))?;
                let expires = cur.as_ref().and_then(|r| r.expires_at);
                let r = record::written(&key, cur.as_ref(), Value::from(sum), expires, revision, now);
                (
                    OpResult::Written(r.clone()),
                    Some(Some(r)),
                    Some(crate::ChangeOp::Patch),
                )
            }
        };
        if let Some(state) = new_state {
            working.insert(key.clone(), state);
        }
        if let Some(op) = change {
            writes.push(Written { key, op });
        }
        results.push(result);
    }
    Ok((
        TxnResult {
            succeeded,
            failed,
            results,
        },
        writes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Txn, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_compares_and_rejects_bad_ones() {
        let t = parse(
            json!({"compare": [{"key": "a", "version": 0}, {"key": "b", "exists": true}, {"key": "c", "value": null}],
            "success": [{"put": {"key": "a", "value": 1}}, {"incr": {"key": "n", "by": -2}}]}),
        );
        assert!(t.is_ok(), "{t:?}");
        for bad in [
            json!({"compare": [{"key": "a"}]}),
            json!({"compare": [{"key": "a", "version": 1, "exists": true}]}),
            json!({"compare": [{"key": "a", "version": -1}]}),
            json!({"compare": [{"key": "a", "nope": 1}]}),
            json!({"compare": [{"lease": "a"}]}),
            json!({"compare": [{"lease": "a", "token": ""}]}),
            json!({"compare": [{"lease": "a", "token": 5}]}),
            json!({"compare": [{"fence": {"resource": "r", "token": -1}}]}),
            json!({"compare": [{"fence": {"resource": "r"}}]}),
            json!({"success": [{"put": {"key": "a"}}]}),
            json!({"success": [{"put": {"key": "a", "value": 1, "x": 2}}]}),
            json!({"success": [{"frob": {"key": "a"}}]}),
            json!({"other": []}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }

    /// Any JSON value without floats (text round trips them inexactly).
    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("\\PC{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn any_compare() -> impl Strategy<Value = Compare> {
        let name = "\\PC{0,12}";
        prop_oneof![
            (name, any::<u64>()).prop_map(|(key, version)| Compare::Version { key, version }),
            (name, any::<bool>()).prop_map(|(key, exists)| Compare::Exists { key, exists }),
            (name, any_value()).prop_map(|(key, value)| Compare::Value { key, value }),
            (name, "\\PC{1,12}").prop_map(|(name, token)| Compare::Lease { name, token }),
            (name, any::<u64>()).prop_map(|(resource, token)| Compare::Fence { resource, token }),
        ]
    }

    proptest::proptest! {
        /// Every compare serializes to the wire form it parses from, so a typed
        /// transaction sent by a client is the one the server reads.
        #[test]
        fn compare_serialize_then_parse_is_identity(c in any_compare()) {
            let text = serde_json::to_string(&c).unwrap_or_else(|e| panic!("{e}"));
            let back: Compare = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            prop_assert_eq!(&back, &c);
            let txn = Txn { compare: vec![c.clone(), c], success: vec![], failure: vec![] };
            let text = serde_json::to_string(&txn).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(parse(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))), Ok(txn));
        }
    }

    #[test]
    fn compares_serialize_to_the_documented_wire_form() {
        let cases = [
            (
                Compare::Version {
                    key: "a".into(),
                    version: 3,
                },
                json!({"key": "a", "version": 3}),
            ),
            (
                Compare::Exists {
                    key: "a".into(),
                    exists: false,
                },
                json!({"key": "a", "exists": false}),
            ),
            (
                Compare::Value {
                    key: "a".into(),
                    value: json!({"x": [1]}),
                },
                json!({"key": "a", "value": {"x": [1]}}),
            ),
            (
                Compare::Lease {
                    name: "l".into(),
                    token: "t".into(),
                },
                json!({"lease": "l", "token": "t"}),
            ),
            (
                Compare::Fence {
                    resource: "r".into(),
                    token: 7,
                },
                json!({"fence": {"resource": "r", "token": 7}}),
            ),
        ];
        for (c, wire) in cases {
            assert_eq!(serde_json::to_value(&c).unwrap_or_else(|e| panic!("{e}")), wire);
        }
    }

    #[test]
    fn applies_branch_in_order() {
        let l = Limits::default();
        let t = parse(json!({"compare": [{"key": "a", "exists": false}],
            "success": [{"incr": {"key": "a", "by": 5}}, {"incr": {"key": "a", "by": 1}}, {"get": {"key": "a"}}, {"delete": {"key": "zz"}}]}))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut w = Working::new();
        let (res, writes) =
            apply(&t, &mut w, &Guards::default(), 4, Millis(0), &l).unwrap_or_else(|e| panic!("{e}"));
        assert!(res.succeeded);
        assert_eq!(writes.len(), 2);
        match &res.results[2] {
            OpResult::Get(Some(r)) => assert_eq!((r.value.clone(), r.version), (json!(6), 4)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            res.results[3],
            OpResult::Delete {
                key: "zz".into(),
                deleted: false
            }
        );
        // Now it exists: the failure branch runs and names the failed compare.
        let (res, _) =
            apply(&t, &mut w, &Guards::default(), 5, Millis(0), &l).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((res.succeeded, res.failed), (false, vec![0]));
    }

    #[test]
    fn incr_on_non_integer_is_invalid_patch() {
        let l = Limits::default();
        let t =
            parse(json!({"success": [{"incr": {"key": "a", "by": 1}}]})).unwrap_or_else(|e| panic!("{e}"));
        let mut w = Working::new();
        w.insert(
            "a".into(),
            Some(Record {
                key: "a".into(),
                value: json!("x"),
                version: 1,
                created_at: Millis(0),
                updated_at: Millis(0),
                expires_at: None,
            }),
        );
        assert!(matches!(
            apply(&t, &mut w, &Guards::default(), 2, Millis(0), &l),
            Err(Error::InvalidPatch(_))
        ));
    }
}
