//! The rows a command reads and writes: their identities ([`RowKey`]), their
//! contents ([`Row`]), the loaded [`Snapshot`] and its typed accessors.

use crate::feed::{Entry, FeedConfig};
use crate::gate::{Gate, Ticket};
use crate::idempotency::IdemEntry;
use crate::lease::{Lease, Waiter};
use crate::{Error, Millis, Record};
use std::collections::BTreeMap;

/// The identity of one stored row a command may read or write. Backends lock
/// every row of [`Command::rows`](super::Command::rows) (present or not) before loading them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowKey {
    /// A record by key.
    Record(String),
    /// A lease by name.
    Lease(String),
    /// The waiter queue of a lease, by lease name.
    Waiters(String),
    /// The highest fence recorded for a resource.
    Fence(String),
    /// A feed entry: `(feed, id)`.
    FeedEntry(String, String),
    /// A feed's configuration; `""` is the namespace default. Never locked:
    /// configuration is last-writer-wins and read as of the statement.
    FeedConfig(String),
    /// A gate by id.
    Gate(String),
    /// The unfinished (open or committed) tickets of a gate, by gate id.
    GateTickets(String),
    /// A ticket by id (unique in the namespace).
    Ticket(String),
    /// An idempotency entry: `(scope, key)`.
    Idem(String, String),
}

impl RowKey {
    /// The (primary) name inside the key: for a feed entry, its id.
    pub fn name(&self) -> &str {
        match self {
            RowKey::Record(n)
            | RowKey::Lease(n)
            | RowKey::Waiters(n)
            | RowKey::Fence(n)
            | RowKey::FeedEntry(_, n)
            | RowKey::FeedConfig(n)
            | RowKey::Gate(n)
            | RowKey::GateTickets(n)
            | RowKey::Ticket(n)
            | RowKey::Idem(_, n) => n,
        }
    }

    /// The lock family and name: rows of one family and name share one lock (a
    /// lease and its queue are one unit); `None` for rows that are never locked.
    pub fn lock(&self) -> Option<(&'static str, String)> {
        match self {
            RowKey::Record(n) => Some(("record", n.clone())),
            RowKey::Lease(n) | RowKey::Waiters(n) => Some(("lease", n.clone())),
            RowKey::Fence(n) => Some(("fence", n.clone())),
            RowKey::FeedEntry(f, id) => Some(("feed-entry", format!("{f}\0{id}"))),
            RowKey::FeedConfig(_) => None,
            RowKey::Gate(n) | RowKey::GateTickets(n) => Some(("gate", n.clone())),
            RowKey::Ticket(n) => Some(("ticket", n.clone())),
            RowKey::Idem(scope, key) => Some(("idempotency", format!("{scope}\0{key}"))),
        }
    }
}

/// A stored row.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A record.
    Record(Record),
    /// A lease.
    Lease(Lease),
    /// The whole waiter queue of a lease (written as a unit).
    Waiters {
        /// Lease name.
        name: String,
        /// The queue.
        waiters: Vec<Waiter>,
    },
    /// A recorded fence.
    Fence {
        /// The resource.
        resource: String,
        /// The highest fence presented.
        fence: u64,
    },
    /// A feed entry.
    FeedEntry(Entry),
    /// A feed's configuration (`""` = namespace default).
    FeedConfig {
        /// Feed name.
        feed: String,
        /// The configuration.
        config: FeedConfig,
    },
    /// A gate.
    Gate(Gate),
    /// A ticket.
    Ticket(Ticket),
    /// The unfinished tickets of a gate (read only; written ticket by ticket).
    GateTickets {
        /// Gate id.
        gate: String,
        /// Open and committed tickets.
        tickets: Vec<Ticket>,
    },
    /// An idempotency entry.
    Idem(IdemEntry),
}

impl Row {
    /// The row's identity.
    pub fn key(&self) -> RowKey {
        match self {
            Row::Record(r) => RowKey::Record(r.key.clone()),
            Row::Lease(l) => RowKey::Lease(l.name.clone()),
            Row::Waiters { name, .. } => RowKey::Waiters(name.clone()),
            Row::Fence { resource, .. } => RowKey::Fence(resource.clone()),
            Row::FeedEntry(e) => RowKey::FeedEntry(e.feed.clone(), e.id.clone()),
            Row::FeedConfig { feed, .. } => RowKey::FeedConfig(feed.clone()),
            Row::Gate(g) => RowKey::Gate(g.id.clone()),
            Row::Ticket(t) => RowKey::Ticket(t.id.clone()),
            Row::GateTickets { gate, .. } => RowKey::GateTickets(gate.clone()),
            Row::Idem(e) => RowKey::Idem(e.scope.clone(), e.key.clone()),
        }
    }
}

/// The stored rows of the touched keys (expired ones included): `None` = no row.
pub type Snapshot = BTreeMap<RowKey, Option<Row>>;

pub(super) fn record_row(snapshot: &Snapshot, key: &str) -> Option<Record> {
    match snapshot.get(&RowKey::Record(key.to_owned())) {
        Some(Some(Row::Record(r))) => Some(r.clone()),
        _ => None,
    }
}

pub(super) fn live(snapshot: &Snapshot, key: &str, now: Millis) -> Option<Record> {
    record_row(snapshot, key).filter(|r| r.is_live(now))
}

pub(super) fn lease_row(snapshot: &Snapshot, name: &str) -> Option<Lease> {
    match snapshot.get(&RowKey::Lease(name.to_owned())) {
        Some(Some(Row::Lease(l))) => Some(l.clone()),
        _ => None,
    }
}

pub(super) fn waiters_row(snapshot: &Snapshot, name: &str) -> Vec<Waiter> {
    match snapshot.get(&RowKey::Waiters(name.to_owned())) {
        Some(Some(Row::Waiters { waiters, .. })) => waiters.clone(),
        _ => vec![],
    }
}

pub(super) fn fence_row(snapshot: &Snapshot, resource: &str) -> Option<u64> {
    match snapshot.get(&RowKey::Fence(resource.to_owned())) {
        Some(Some(Row::Fence { fence, .. })) => Some(*fence),
        _ => None,
    }
}

pub(super) fn feed_entry(snapshot: &Snapshot, feed: &str, id: &str) -> Option<Entry> {
    match snapshot.get(&RowKey::FeedEntry(feed.to_owned(), id.to_owned())) {
        Some(Some(Row::FeedEntry(e))) => Some(e.clone()),
        _ => None,
    }
}

pub(super) fn gate_row(snapshot: &Snapshot, id: &str) -> Result<Gate, Error> {
    match snapshot.get(&RowKey::Gate(id.to_owned())) {
        Some(Some(Row::Gate(g))) => Ok(g.clone()),
        _ => Err(Error::NotFound(format!("gate {id:?} does not exist"))),
    }
}

pub(super) fn ticket_row(snapshot: &Snapshot, id: &str) -> Option<Ticket> {
    match snapshot.get(&RowKey::Ticket(id.to_owned())) {
        Some(Some(Row::Ticket(t))) => Some(t.clone()),
        _ => None,
    }
}

/// The stored scope of an idempotency key: the application store's scopes live
/// apart from the `Idempotency-Key` header's (which the server builds).
pub fn idem_scope(scope: &str, app: bool) -> String {
    if app {
        format!("app\u{1f}{scope}")
    } else {
        scope.to_owned()
    }
}

/// The stored idempotency entry of `(scope, key)`.
pub fn idem_entry(snapshot: &Snapshot, scope: &str, key: &str) -> Option<IdemEntry> {
    match snapshot.get(&RowKey::Idem(scope.to_owned(), key.to_owned())) {
        Some(Some(Row::Idem(e))) => Some(e.clone()),
        _ => None,
    }
}

/// The configuration in force for `feed`: its own, else the namespace default.
pub fn feed_config(snapshot: &Snapshot, feed: &str) -> FeedConfig {
    let get = |f: &str| match snapshot.get(&RowKey::FeedConfig(f.to_owned())) {
        Some(Some(Row::FeedConfig { config, .. })) => Some(config.clone()),
        _ => None,
    };
    get(feed).or_else(|| get("")).unwrap_or_default()
}
