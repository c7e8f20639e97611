//! Row codecs, once for both backends: stored column values ↔ the core's
//! types (records, changes, idempotency entries, feed configurations), and the
//! integer conversions every read and write goes through. A stored integer that
//! cannot be what it stands for (a negative revision, fence, count or id) is
//! corrupt data, answered as an internal error, never silently 0.

use crate::Error;
use lockstep_core::feed::FeedConfig;
use lockstep_core::idempotency::IdemEntry;
use lockstep_core::{Change, ChangeKind, ChangeOp, Millis, Record};

/// Reads a stored row into a [`Record`] (shared by both backends).
pub(crate) fn record_from_parts(
    key: String,
    value: &str,
    version: i64,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
) -> Result<Record, Error> {
    Ok(Record {
        key,
        value: parse_stored(value)?,
        version: u64::try_from(version).map_err(|_| Error::Internal("negative version".into()))?,
        created_at: Millis(created_at),
        updated_at: Millis(updated_at),
        expires_at: expires_at.map(Millis),
    })
}

/// Parses JSON text this store wrote. Values were checked against the depth
/// limit before they were stored, so the parser's own recursion limit (which
/// would refuse a value of exactly the allowed depth inside its wrapper) is off.
pub(crate) fn parse_stored<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let v =
        T::deserialize(&mut de).map_err(|e| Error::Internal(format!("stored JSON is unreadable: {e}")))?;
    de.end()
        .map_err(|e| Error::Internal(format!("stored JSON is unreadable: {e}")))?;
    Ok(v)
}

/// A stored non-negative integer (a revision, fence, epoch or id) read back:
/// a negative one is corrupt data, answered as an internal error, never 0.
pub(crate) fn stored_u64(what: &str, v: i64) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::Internal(format!("stored {what} {v} is negative")))
}

/// The same inside a SQLite row mapper: column `col` is out of range.
pub(crate) fn sqlite_u64(col: usize, v: i64) -> rusqlite::Result<u64> {
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(col, v))
}

/// A revision (or fence, id) as stored: SQL has signed 64-bit integers.
pub(crate) fn rev_i64(revision: u64) -> Result<i64, Error> {
    i64::try_from(revision).map_err(|_| Error::Internal("revision overflow".into()))
}

/// Builds a [`Change`] from its stored columns.
#[allow(clippy::too_many_arguments)]
pub(crate) fn change_from_parts(
    revision: i64,
    index: i64,
    kind: &str,
    key: String,
    op: &str,
    actor: String,
    forced: bool,
    at: i64,
) -> Result<Change, Error> {
    let bad = |what: &str| Error::Internal(format!("stored change has {what}"));
    Ok(Change {
        revision: u64::try_from(revision).map_err(|_| bad("a negative revision"))?,
        index: u32::try_from(index).map_err(|_| bad("a bad index"))?,
        kind: ChangeKind::parse(kind).ok_or_else(|| bad(&format!("the unknown kind {kind:?}")))?,
        key,
        op: ChangeOp::parse(op).ok_or_else(|| bad(&format!("the unknown op {op:?}")))?,
        actor,
        forced,
        at: Millis(at),
    })
}

/// Builds an entry from its stored columns.
pub fn entry_from(
    scope: String,
    key: String,
    fingerprint: String,
    token: String,
    response: Option<String>,
    locked_until: i64,
    expires_at: i64,
) -> Result<IdemEntry, Error> {
    Ok(IdemEntry {
        scope,
        key,
        fingerprint,
        token,
        response: response.map(|r| parse_stored(&r)).transpose()?,
        locked_until: Millis(locked_until),
        expires_at: Millis(expires_at),
    })
}

/// The stored text of an entry's response.
pub fn response_text(e: &IdemEntry) -> Result<Option<String>, Error> {
    e.response
        .as_ref()
        .map(|r| serde_json::to_string(r).map_err(|err| Error::Internal(err.to_string())))
        .transpose()
}

/// Parses a stored feed configuration.
pub(crate) fn config_from(raw: &str) -> Result<FeedConfig, Error> {
    serde_json::from_str(raw).map_err(|e| Error::Internal(format!("stored feed config: {e}")))
}
