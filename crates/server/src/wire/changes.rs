//! The change log and watch events (SPEC §10).

use lockstep_core::Change;
use schemars::JsonSchema;
use serde::Serialize;

/// `{revision, index, kind, key, op, actor, forced, at}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Change")]
pub struct ChangeBody<'a> {
    revision: u64,
    index: u32,
    kind: &'static str,
    key: &'a str,
    op: &'static str,
    actor: &'a str,
    forced: bool,
    at: String,
}

/// A change entry.
pub fn change(c: &Change) -> ChangeBody<'_> {
    ChangeBody {
        revision: c.revision,
        index: c.index,
        kind: c.kind.as_str(),
        key: &c.key,
        op: c.op.as_str(),
        actor: &c.actor,
        forced: c.forced,
        at: c.at.to_rfc3339(),
    }
}

/// `{changes: [...]}` of a page of the log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Changes<'a> {
    /// The changes, in (revision, index) order.
    pub changes: Vec<ChangeBody<'a>>,
}

/// The data of one `change` event of a watch: `{revision, changes}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "WatchEvent")]
pub struct Event<'a> {
    /// The revision.
    pub revision: u64,
    /// Its matching changes.
    pub changes: Vec<ChangeBody<'a>>,
}
