//! The shape of an RFC 9457 problem document. Which refusal gets which status,
//! code, detail and members is decided in `error.rs` alone.

use lockstep_core::Current;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// `{type, title, status, detail, code}` and the refusal's extension members.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Problem {
    /// The problem type: the URN of the code (set by `error.rs`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The code's title.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// The stable code.
    #[schemars(schema_with = "code_schema")]
    pub code: &'static str,
    /// Members of some refusals.
    #[serde(flatten)]
    pub extensions: Option<Extensions>,
}

/// `code`: one of the codes of `error.rs`.
fn code_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": crate::error::CODES})
}

/// The extension members of a refusal that has them.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Extensions {
    /// A failed precondition: the current record, or null when absent.
    Current {
        /// `{version, value}` or null.
        current: Option<CurrentBody>,
    },
    /// A held lease: who holds it, until when, and how many wait.
    LeaseHeld {
        /// The holder's label.
        holder: Option<String>,
        /// RFC 3339.
        expires_at: Option<String>,
        /// The waiters limit that refused a place, or the queue length.
        waiters: usize,
    },
}

/// `{version, value}` of the current record.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Current")]
pub struct CurrentBody {
    version: u64,
    value: Value,
}

impl From<&Current> for CurrentBody {
    fn from(c: &Current) -> Self {
        CurrentBody {
            version: c.version,
            value: c.value.clone(),
        }
    }
}
