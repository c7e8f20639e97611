//! The change log (SPEC §10): answers built from core types.

use lockstep_api::changes::Change as ChangeBody;
use lockstep_core::Change;

/// A change entry.
pub fn change(c: &Change) -> ChangeBody {
    ChangeBody {
        revision: c.revision,
        index: c.index,
        kind: c.kind,
        key: c.key.clone(),
        op: c.op,
        actor: c.actor.clone(),
        forced: c.forced,
        at: c.at.to_rfc3339(),
    }
}
