//! Row codecs, once for both backends: stored column values ↔ the core's
//! types (records, changes, idempotency entries, feed configurations), and the
//! integer conversions every read and write goes through. A stored integer that
//! cannot be what it stands for (a negative revision, fence, count or id) is
//! corrupt data, answered as an internal error, never silently 0.

use crate::Error;
use lockstep_core::feed::{Entry, FeedConfig};
use lockstep_core::gate::{Gate, GateState, Pending, Policy, Ticket, TicketState};
use lockstep_core::idempotency::IdemEntry;
use lockstep_core::lease::{Lease, Waiter};
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

/// A gate's columns, in the order of [`GateParts`].
pub(crate) const GATE_COLUMNS: &str = "id, state, epoch, pending, meta, created_at, updated_at, revision";
/// A ticket's columns, in the order of [`TicketParts`].
pub(crate) const TICKET_COLUMNS: &str =
    "id, gate, epoch, state, meta, recovered, finalized_revision, created_at, updated_at, revision";

/// A gate's stored columns, in `GATE_COLUMNS` order.
pub(crate) type GateParts = (String, String, i64, String, String, i64, i64, i64);
/// A ticket's stored columns, in `TICKET_COLUMNS` order.
pub(crate) type TicketParts = (
    String,
    String,
    i64,
    String,
    String,
    bool,
    Option<i64>,
    i64,
    i64,
    i64,
);

/// Parses stored JSON text.
fn json(s: &str) -> Result<serde_json::Value, Error> {
    crate::parse_stored(s)
}

/// The stored text of a JSON value.
pub(crate) fn json_text(v: &serde_json::Value) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}

/// A stored enumeration value this binary does not know.
fn bad(what: &str, v: &str) -> Error {
    Error::Internal(format!("stored {what} {v:?} is unknown"))
}

/// Builds a gate from its stored columns.
pub(crate) fn gate_from(p: GateParts) -> Result<Gate, Error> {
    Ok(Gate {
        state: GateState::parse(&p.1).ok_or_else(|| bad("gate state", &p.1))?,
        epoch: stored_u64("gate epoch", p.2)?,
        policy: Policy {
            pending: match p.3.as_str() {
                "recover" => Pending::Recover,
                "reject" => Pending::Reject,
                other => return Err(bad("pending policy", other)),
            },
        },
        meta: json(&p.4)?,
        created_at: Millis(p.5),
        updated_at: Millis(p.6),
        revision: stored_u64("gate revision", p.7)?,
        id: p.0,
    })
}

/// Builds a ticket from its stored columns.
pub(crate) fn ticket_from(p: TicketParts) -> Result<Ticket, Error> {
    Ok(Ticket {
        gate: p.1,
        epoch: stored_u64("ticket epoch", p.2)?,
        state: TicketState::parse(&p.3).ok_or_else(|| bad("ticket state", &p.3))?,
        meta: json(&p.4)?,
        recovered: p.5,
        finalized_revision: p.6.map(|r| stored_u64("finalized revision", r)).transpose()?,
        created_at: Millis(p.7),
        updated_at: Millis(p.8),
        revision: stored_u64("ticket revision", p.9)?,
        id: p.0,
    })
}

/// The stored text of a pending policy.
pub(crate) fn pending_text(p: Pending) -> &'static str {
    match p {
        Pending::Reject => "reject",
        Pending::Recover => "recover",
    }
}

/// A lease's columns after its name, in the order of [`lease_from`].
pub(crate) const LEASE_COLUMNS: &str = "token, holder, fence, acquired_at, expires_at, last_waiter";

/// Builds a lease from its stored columns ([`LEASE_COLUMNS`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn lease_from(
    name: String,
    token: Option<String>,
    holder: Option<String>,
    fence: i64,
    acquired_at: i64,
    expires_at: i64,
    last_waiter: i64,
) -> Result<Lease, Error> {
    Ok(Lease {
        name,
        token,
        holder,
        fence: stored_u64("fence", fence)?,
        acquired_at: Millis(acquired_at),
        expires_at: Millis(expires_at),
        last_waiter: stored_u64("last waiter id", last_waiter)?,
    })
}

/// Builds a waiter from its stored columns.
pub(crate) fn waiter_from(id: i64, alive_until: i64) -> Result<Waiter, Error> {
    Ok(Waiter {
        id: stored_u64("waiter id", id)?,
        alive_until: Millis(alive_until),
    })
}

/// A feed entry's columns, in the order of [`feed_entry_from`].
pub(crate) const ENTRY_COLUMNS: &str = "id, at, data, revision, read, scrubbed";

/// Builds a feed entry of `feed` from its stored columns.
pub(crate) fn feed_entry_from(
    feed: &str,
    id: String,
    at: i64,
    data: &str,
    revision: i64,
    read: bool,
    scrubbed: bool,
) -> Result<Entry, Error> {
    Ok(Entry {
        feed: feed.to_owned(),
        id,
        at: Millis(at),
        data: parse_stored(data)?,
        revision: stored_u64("entry revision", revision)?,
        read,
        scrubbed,
    })
}
