//! The single entry point of the write path: a [`Command`] applied to the rows
//! it touches ([`Snapshot`]) at a revision and an instant gives an [`Effect`]:
//! the answer, the rows to persist and the change entries, or a typed refusal.
//! Backends call [`execute`] inside their storage transaction; [`execute`]
//! hands each command to the module of its primitive.

pub mod answer;
mod effect;
mod feeds;
mod gates;
mod idempotency;
mod leases;
mod outcome;
mod records;
mod rows;
#[cfg(test)]
mod tests;
mod txn;

pub use answer::Answer;
pub use effect::{Effect, Mutation};
pub use outcome::Outcome;
pub use rows::{feed_config, idem_entry, idem_scope, Row, RowKey, Snapshot};

use crate::capability::CapabilityCheck;
use crate::feed::{FeedConfig, NewEntry, ReadSelector};
use crate::gate::{Policy, TicketOp, Transition};
use crate::idempotency::{Begin, StoredResponse};
use crate::lease::AcquireReq;
use crate::record::{PatchDoc, Precondition, PutRecord};
use crate::txn::Txn;
use crate::{Error, Limits, Millis};

/// A write request against one namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `PUT /records/{key}`.
    Put {
        /// Record key.
        key: String,
        /// The request.
        req: PutRecord,
    },
    /// `PATCH /records/{key}`.
    Patch {
        /// Record key.
        key: String,
        /// The patch document.
        doc: PatchDoc,
        /// The precondition.
        precondition: Precondition,
    },
    /// `DELETE /records/{key}`.
    Delete {
        /// Record key.
        key: String,
        /// The precondition.
        precondition: Precondition,
    },
    /// `POST /txn`.
    Txn(Txn),
    /// Purge a record whose TTL ran out (background sweeper).
    Expire {
        /// Record key.
        key: String,
    },
    /// `POST /leases/{name}/acquire` (one attempt; waiting repeats it).
    Acquire {
        /// Lease name.
        name: String,
        /// The request.
        req: AcquireReq,
    },
    /// `POST /leases/{name}/renew`.
    Renew {
        /// Lease name.
        name: String,
        /// Owner token.
        token: String,
        /// New TTL from now.
        ttl_ms: u64,
    },
    /// `POST /leases/{name}/release`.
    Release {
        /// Lease name.
        name: String,
        /// Owner token.
        token: String,
    },
    /// `POST /leases/{name}/break` (admin).
    Break {
        /// Lease name.
        name: String,
    },
    /// Free an expired lease with an `expire` change (background sweeper).
    ExpireLease {
        /// Lease name.
        name: String,
    },
    /// A waiter gives up its place (timeout or disconnect).
    LeaveQueue {
        /// Lease name.
        name: String,
        /// The waiter's id.
        waiter: u64,
    },
    /// `POST /feeds/{feed}/entries`: idempotent append.
    Append {
        /// Feed name.
        feed: String,
        /// The entry.
        entry: NewEntry,
    },
    /// `POST /feeds/{feed}/import`: a legacy array, each id once.
    Import {
        /// Feed name.
        feed: String,
        /// The entries in array order.
        entries: Vec<NewEntry>,
    },
    /// `POST /feeds/{feed}/read`.
    MarkRead {
        /// Feed name.
        feed: String,
        /// Which entries.
        selector: ReadSelector,
    },
    /// `DELETE /feeds/{feed}/entries/{id}`.
    DeleteEntry {
        /// Feed name.
        feed: String,
        /// Entry id.
        id: String,
    },
    /// `PUT /feeds/{feed}` (or the namespace default with `feed == ""`).
    Configure {
        /// Feed name, `""` for the namespace default.
        feed: String,
        /// The configuration.
        config: FeedConfig,
    },
    /// Retention (sweeper): delete these entries if they are still out of the
    /// window: past the age, or older than `before` (the cap boundary the sweeper
    /// saw; an entry appended again since is newer and is spared).
    PurgeEntries {
        /// Feed name.
        feed: String,
        /// Entry ids.
        ids: Vec<String>,
        /// The oldest `(at, id)` the cap kept when the sweeper looked.
        before: Option<(Millis, String)>,
    },
    /// Retention (sweeper): remove scrub fields on disk from these entries.
    ScrubEntries {
        /// Feed name.
        feed: String,
        /// Entry ids.
        ids: Vec<String>,
    },
    /// `PUT /gates/{id}`: create, or update policy and meta.
    PutGate {
        /// Gate id.
        id: String,
        /// New policy, if given.
        policy: Option<Policy>,
        /// New meta, if given.
        meta: Option<serde_json::Value>,
    },
    /// `POST /gates/{id}/{transition}`.
    Transition {
        /// Gate id.
        id: String,
        /// The transition.
        transition: Transition,
    },
    /// `POST /gates/{id}/tickets`.
    Admit {
        /// Gate id.
        gate: String,
        /// Ticket id (made by the shell when the caller gives none).
        ticket: String,
        /// Caller's metadata.
        meta: Option<serde_json::Value>,
        /// Made with a capability: what must still hold in this transaction.
        capability: Option<CapabilityCheck>,
    },
    /// Starts an idempotency key (or replays / refuses).
    IdemBegin {
        /// Scope.
        scope: String,
        /// Key.
        key: String,
        /// The request.
        req: Begin,
        /// Whether this is the application store (its writes are changes).
        app: bool,
    },
    /// The owner stores its response.
    IdemComplete {
        /// Scope.
        scope: String,
        /// Key.
        key: String,
        /// Owner token.
        token: String,
        /// The response.
        response: StoredResponse,
        /// Whether this is the application store.
        app: bool,
    },
    /// The owner gives the key up.
    IdemRelease {
        /// Scope.
        scope: String,
        /// Key.
        key: String,
        /// Owner token.
        token: String,
        /// Whether this is the application store.
        app: bool,
    },
    /// Forget an expired idempotency entry (background sweeper).
    ExpireIdem {
        /// Scope.
        scope: String,
        /// Key.
        key: String,
    },
    /// `POST /gates/{id}/tickets/{t}/{op}`.
    Ticket {
        /// Gate id.
        gate: String,
        /// Ticket id.
        ticket: String,
        /// The operation.
        op: TicketOp,
        /// Finalize only: the feed entry (id = ticket id) appended in the same step.
        append: Option<(String, NewEntry)>,
        /// Made with a capability: what must still hold in this transaction.
        capability: Option<CapabilityCheck>,
    },
}

impl Command {
    /// Every row the command touches, sorted and unique: the rows a backend must
    /// lock (present or not) and load before calling [`execute`].
    pub fn rows(&self) -> Vec<RowKey> {
        match self {
            Command::Put { key, .. }
            | Command::Patch { key, .. }
            | Command::Delete { key, .. }
            | Command::Expire { key } => vec![RowKey::Record(key.clone())],
            Command::Txn(t) => t.rows(),
            Command::Acquire { name, .. } => vec![RowKey::Lease(name.clone()), RowKey::Waiters(name.clone())],
            Command::Renew { name, .. }
            | Command::Release { name, .. }
            | Command::Break { name }
            | Command::ExpireLease { name } => vec![RowKey::Lease(name.clone())],
            Command::LeaveQueue { name, .. } => vec![RowKey::Waiters(name.clone())],
            Command::Append { feed, entry } => feed_rows(feed, std::iter::once(&entry.id)),
            Command::Import { feed, entries } => feed_rows(feed, entries.iter().map(|e| &e.id)),
            Command::PurgeEntries { feed, ids, .. } | Command::ScrubEntries { feed, ids } => {
                feed_rows(feed, ids.iter())
            }
            Command::DeleteEntry { feed, id } => feed_rows(feed, std::iter::once(id)),
            Command::MarkRead { .. } => vec![],
            Command::Configure { feed, .. } => vec![RowKey::FeedConfig(feed.clone())],
            Command::PutGate { id, .. } => vec![RowKey::Gate(id.clone())],
            Command::IdemBegin { scope, key, app, .. }
            | Command::IdemComplete { scope, key, app, .. }
            | Command::IdemRelease { scope, key, app, .. } => {
                vec![RowKey::Idem(idem_scope(scope, *app), key.clone())]
            }
            Command::ExpireIdem { scope, key } => vec![RowKey::Idem(scope.clone(), key.clone())],
            Command::Transition { id, .. } => vec![RowKey::Gate(id.clone()), RowKey::GateTickets(id.clone())],
            Command::Admit { gate, ticket, .. } => {
                vec![RowKey::Gate(gate.clone()), RowKey::Ticket(ticket.clone())]
            }
            Command::Ticket {
                gate, ticket, append, ..
            } => {
                let mut rows = vec![RowKey::Gate(gate.clone()), RowKey::Ticket(ticket.clone())];
                if let Some((feed, entry)) = append {
                    rows.extend(feed_rows(feed, std::iter::once(&entry.id)));
                }
                rows.sort();
                rows.dedup();
                rows
            }
        }
    }
}

/// The entries of `ids` with the feed's and the namespace's configuration.
fn feed_rows<'a>(feed: &str, ids: impl Iterator<Item = &'a String>) -> Vec<RowKey> {
    let mut rows: Vec<RowKey> = ids
        .map(|id| RowKey::FeedEntry(feed.to_owned(), id.clone()))
        .collect();
    rows.push(RowKey::FeedConfig(feed.to_owned()));
    rows.push(RowKey::FeedConfig(String::new()));
    rows.sort();
    rows.dedup();
    rows
}

/// What the shell passes in: the revision this command would commit at, the
/// storage clock's `now`, the caller's name and the limits.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The revision of this write, if it writes.
    pub revision: u64,
    /// The storage clock.
    pub now: Millis,
    /// The caller's token name, for the change log.
    pub actor: &'a str,
    /// Limits in force.
    pub limits: &'a Limits,
}

/// Applies `cmd` to the stored rows `snapshot` (which must hold an entry for
/// every row of [`Command::rows`]); pure: no I/O, no clock.
pub fn execute(cmd: &Command, snapshot: &Snapshot, ctx: &Ctx) -> Result<Effect, Error> {
    Ok(match cmd {
        Command::Put { key, req } => records::put(key, req, snapshot, ctx)?.erase(),
        Command::Patch {
            key,
            doc,
            precondition,
        } => records::patch(key, doc, precondition, snapshot, ctx)?.erase(),
        Command::Delete { key, precondition } => records::delete(key, precondition, snapshot, ctx)?.erase(),
        Command::Expire { key } => records::expire(key, snapshot, ctx)?.erase(),
        Command::Txn(t) => txn::execute(t, snapshot, ctx)?.erase(),
        Command::Acquire { name, req } => leases::acquire(name, req, snapshot, ctx)?.erase(),
        Command::Renew { name, token, ttl_ms } => leases::renew(name, token, *ttl_ms, snapshot, ctx)?.erase(),
        Command::Release { name, token } => leases::release(name, token, snapshot, ctx)?.erase(),
        Command::Break { name } => leases::break_lease(name, snapshot, ctx)?.erase(),
        Command::ExpireLease { name } => leases::expire(name, snapshot, ctx)?.erase(),
        Command::LeaveQueue { name, waiter } => leases::leave_queue(name, *waiter, snapshot, ctx)?.erase(),
        Command::Append { feed, entry } => feeds::append(feed, entry, snapshot, ctx)?.erase(),
        Command::Import { feed, entries } => feeds::import(feed, entries, snapshot, ctx)?.erase(),
        Command::MarkRead { feed, selector } => feeds::mark_read(feed, selector, ctx)?.erase(),
        Command::DeleteEntry { feed, id } => feeds::delete_entry(feed, id, snapshot, ctx)?.erase(),
        Command::Configure { feed, config } => feeds::configure(feed, config, ctx)?.erase(),
        Command::PurgeEntries { feed, ids, before } => {
            feeds::retain(feed, ids, Some(before), snapshot, ctx)?.erase()
        }
        Command::ScrubEntries { feed, ids } => feeds::retain(feed, ids, None, snapshot, ctx)?.erase(),
        Command::PutGate { id, policy, meta } => gates::put(id, *policy, meta, snapshot, ctx)?.erase(),
        Command::Transition { id, transition } => gates::transition(id, *transition, snapshot, ctx)?.erase(),
        Command::Admit {
            gate,
            ticket,
            meta,
            capability,
        } => gates::admit(gate, ticket, meta, capability.as_ref(), snapshot, ctx)?.erase(),
        Command::Ticket {
            gate,
            ticket,
            op,
            append,
            capability,
        } => gates::ticket(
            gate,
            ticket,
            *op,
            append.as_ref(),
            capability.as_ref(),
            snapshot,
            ctx,
        )?
        .erase(),
        Command::IdemBegin { scope, key, req, app } => {
            idempotency::begin(scope, key, req, *app, snapshot, ctx)?.erase()
        }
        Command::IdemComplete {
            scope,
            key,
            token,
            response,
            app,
        } => idempotency::complete(scope, key, token, response, *app, snapshot, ctx)?.erase(),
        Command::IdemRelease {
            scope,
            key,
            token,
            app,
        } => idempotency::release(scope, key, token, *app, snapshot, ctx)?.erase(),
        Command::ExpireIdem { scope, key } => idempotency::expire(scope, key, snapshot, ctx)?.erase(),
    })
}
