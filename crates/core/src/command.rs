//! The single entry point of the write path: a [`Command`] applied to the rows
//! it touches ([`Snapshot`]) at a revision and an instant gives an [`Effect`]:
//! the answer, the rows to persist and the change entries, or a typed refusal.
//! Backends call [`execute`] inside their storage transaction.

use crate::capability::CapabilityCheck;
use crate::feed::{self, Entry, FeedConfig, NewEntry, ReadSelector};
use crate::gate::{self, Gate, Policy, Ticket, TicketOp, TicketState, Transition};
use crate::idempotency::{self, Began, Begin, IdemEntry, StoredResponse};
use crate::lease::{self, AcquireReq, Acquired, Lease, Waiter};
use crate::record::{self, PatchDoc, Precondition, PutRecord};
use crate::txn::{self, Guards, Txn, TxnResult, Working};
use crate::{Change, ChangeKind, ChangeOp, Error, Limits, Millis, Record};
use std::collections::BTreeMap;

/// The identity of one stored row a command may read or write. Backends lock
/// every row of [`Command::rows`] (present or not) before loading them.
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
            Command::DeleteEntry { feed, id } => vec![RowKey::FeedEntry(feed.clone(), id.clone())],
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

/// The stored rows of the touched keys (expired ones included): `None` = no row.
pub type Snapshot = BTreeMap<RowKey, Option<Row>>;

/// A row to persist.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Insert or replace the row.
    Put(Row),
    /// Remove the row.
    Delete(RowKey),
    /// Clear the on-disk scrub marks of a feed (`""`: every feed of the
    /// namespace), so the sweeper applies a changed scrub configuration.
    ResetScrubbed {
        /// Feed name, `""` for all.
        feed: String,
    },
    /// Mark feed entries read (a set of rows the backend selects).
    MarkRead {
        /// Feed name.
        feed: String,
        /// Which entries.
        selector: ReadSelector,
    },
}

/// The answer of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A PUT: the record and whether it was created.
    Put {
        /// As written.
        record: Record,
        /// 201 vs 200.
        created: bool,
    },
    /// A PATCH: the record as written.
    Patch {
        /// As written.
        record: Record,
    },
    /// A DELETE.
    Delete {
        /// The key.
        key: String,
    },
    /// A transaction.
    Txn(TxnResult),
    /// The sweeper's purge: whether the record was indeed expired.
    Expire {
        /// Whether a row was removed.
        expired: bool,
    },
    /// Acquired or renewed: the lease as held now.
    Lease(Lease),
    /// A waiting acquire is queued as waiter `id`.
    Queued {
        /// The waiter id.
        id: u64,
        /// The refusal to answer if it stops waiting now.
        held: Error,
    },
    /// Release: whether the token held the lease.
    Released {
        /// Compare-and-clear result.
        released: bool,
    },
    /// Break: whether a live lease was broken.
    Broken {
        /// Whether anything was cleared.
        broken: bool,
    },
    /// The sweeper freed an expired lease (or found nothing to do).
    LeaseExpired {
        /// Whether a lease was freed.
        expired: bool,
    },
    /// A waiter left the queue.
    LeftQueue,
    /// An append: the entry (the original one when `created` is false).
    Appended {
        /// The entry as stored.
        entry: Entry,
        /// Whether it is new.
        created: bool,
    },
    /// An import.
    Imported {
        /// Entries added.
        imported: usize,
        /// Entries already present (or repeated in the array).
        skipped: usize,
    },
    /// Read marks were set.
    MarkedRead,
    /// An entry was deleted.
    EntryDeleted,
    /// A feed was configured.
    Configured(FeedConfig),
    /// Retention removed or scrubbed this many entries.
    Retained {
        /// How many entries changed.
        count: usize,
    },
    /// A gate was created or updated.
    GatePut {
        /// As stored.
        gate: Gate,
        /// 201 vs 200.
        created: bool,
    },
    /// A gate transition.
    Transitioned {
        /// The gate after it.
        gate: Gate,
        /// Whether anything changed (false: a no-op repeat).
        changed: bool,
        /// Open tickets of the old epoch voided by it.
        voided: usize,
        /// Committed, unfinalized tickets of the old epoch.
        pending: usize,
    },
    /// A ticket admission.
    Admitted {
        /// The ticket.
        ticket: Ticket,
        /// 201 vs 200.
        created: bool,
    },
    /// A ticket operation that succeeded: the ticket as it is now.
    TicketDone {
        /// The ticket.
        ticket: Ticket,
    },
    /// An idempotency key was begun.
    IdemBegun(Began),
    /// An idempotency key was completed.
    IdemCompleted,
    /// An idempotency key was given up (or forgotten by the sweeper).
    IdemReleased,
    /// A committed refusal: the ticket was voided (`reject` policy at finalize)
    /// and the caller is told 410.
    TicketVoided {
        /// Why.
        detail: String,
    },
}

/// The result of [`execute`]: the answer, what to persist and the change entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// The answer.
    pub outcome: Outcome,
    /// Rows to write, one per touched row, in its final state.
    pub mutations: Vec<Mutation>,
    /// One change per write, indexed in order.
    pub changes: Vec<Change>,
}

impl Effect {
    /// Whether the command makes a visible write, and so consumes its revision.
    /// (Bookkeeping rows, such as a lease's waiter queue, are persisted without.)
    pub fn writes(&self) -> bool {
        !self.changes.is_empty()
    }

    fn answer(outcome: Outcome) -> Effect {
        Effect {
            outcome,
            mutations: vec![],
            changes: vec![],
        }
    }
}

fn record_row(snapshot: &Snapshot, key: &str) -> Option<Record> {
    match snapshot.get(&RowKey::Record(key.to_owned())) {
        Some(Some(Row::Record(r))) => Some(r.clone()),
        _ => None,
    }
}

fn live(snapshot: &Snapshot, key: &str, now: Millis) -> Option<Record> {
    record_row(snapshot, key).filter(|r| r.is_live(now))
}

fn lease_row(snapshot: &Snapshot, name: &str) -> Option<Lease> {
    match snapshot.get(&RowKey::Lease(name.to_owned())) {
        Some(Some(Row::Lease(l))) => Some(l.clone()),
        _ => None,
    }
}

fn waiters_row(snapshot: &Snapshot, name: &str) -> Vec<Waiter> {
    match snapshot.get(&RowKey::Waiters(name.to_owned())) {
        Some(Some(Row::Waiters { waiters, .. })) => waiters.clone(),
        _ => vec![],
    }
}

fn fence_row(snapshot: &Snapshot, resource: &str) -> Option<u64> {
    match snapshot.get(&RowKey::Fence(resource.to_owned())) {
        Some(Some(Row::Fence { fence, .. })) => Some(*fence),
        _ => None,
    }
}

fn feed_entry(snapshot: &Snapshot, feed: &str, id: &str) -> Option<Entry> {
    match snapshot.get(&RowKey::FeedEntry(feed.to_owned(), id.to_owned())) {
        Some(Some(Row::FeedEntry(e))) => Some(e.clone()),
        _ => None,
    }
}

fn gate_row(snapshot: &Snapshot, id: &str) -> Result<Gate, Error> {
    match snapshot.get(&RowKey::Gate(id.to_owned())) {
        Some(Some(Row::Gate(g))) => Ok(g.clone()),
        _ => Err(Error::NotFound(format!("gate {id:?} does not exist"))),
    }
}

fn ticket_row(snapshot: &Snapshot, id: &str) -> Option<Ticket> {
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

fn change(ctx: &Ctx, index: usize, kind: ChangeKind, key: &str, op: ChangeOp, forced: bool) -> Change {
    Change {
        revision: ctx.revision,
        index: u32::try_from(index).unwrap_or(u32::MAX),
        kind,
        key: key.to_owned(),
        op,
        actor: ctx.actor.to_owned(),
        forced,
        at: ctx.now,
    }
}

fn lease_write(ctx: &Ctx, lease: Lease, op: ChangeOp, outcome: Outcome) -> Effect {
    Effect {
        changes: vec![change(ctx, 0, ChangeKind::Lease, &lease.name, op, false)],
        mutations: vec![Mutation::Put(Row::Lease(lease))],
        outcome,
    }
}

fn waiters_put(name: &str, waiters: Vec<Waiter>) -> Mutation {
    if waiters.is_empty() {
        Mutation::Delete(RowKey::Waiters(name.to_owned()))
    } else {
        Mutation::Put(Row::Waiters {
            name: name.to_owned(),
            waiters,
        })
    }
}

/// Applies `cmd` to the stored rows `snapshot` (which must hold an entry for
/// every row of [`Command::rows`]); pure: no I/O, no clock.
pub fn execute(cmd: &Command, snapshot: &Snapshot, ctx: &Ctx) -> Result<Effect, Error> {
    let (rev, now, limits) = (ctx.revision, ctx.now, ctx.limits);
    let record_change = |i, key: &str, op, forced| change(ctx, i, ChangeKind::Record, key, op, forced);
    match cmd {
        Command::Put { key, req } => {
            let cur = live(snapshot, key, now);
            let (record, created) = record::put(key, cur.as_ref(), req, rev, now, limits)?;
            let forced = req.force && req.precondition != Precondition::None;
            Ok(Effect {
                changes: vec![record_change(0, key, ChangeOp::Put, forced)],
                mutations: vec![Mutation::Put(Row::Record(record.clone()))],
                outcome: Outcome::Put { record, created },
            })
        }
        Command::Patch {
            key,
            doc,
            precondition,
        } => {
            let cur = live(snapshot, key, now);
            let record = record::patch(key, cur.as_ref(), doc, precondition, rev, now, limits)?;
            Ok(Effect {
                changes: vec![record_change(0, key, ChangeOp::Patch, false)],
                mutations: vec![Mutation::Put(Row::Record(record.clone()))],
                outcome: Outcome::Patch { record },
            })
        }
        Command::Delete { key, precondition } => {
            let cur = live(snapshot, key, now);
            record::delete(key, cur.as_ref(), precondition)?;
            Ok(Effect {
                changes: vec![record_change(0, key, ChangeOp::Delete, false)],
                mutations: vec![Mutation::Delete(RowKey::Record(key.clone()))],
                outcome: Outcome::Delete { key: key.clone() },
            })
        }
        Command::Txn(t) => {
            t.validate(limits)?;
            let mut working = Working::new();
            let mut guards = Guards::default();
            for row in t.rows() {
                match row {
                    RowKey::Record(k) => {
                        let r = live(snapshot, &k, now);
                        working.insert(k, r);
                    }
                    RowKey::Lease(n) => {
                        let token =
                            lease_row(snapshot, &n).and_then(|l| l.live_token(now).map(str::to_owned));
                        guards.lease_tokens.insert(n, token);
                    }
                    RowKey::Fence(r) => {
                        if let Some(f) = fence_row(snapshot, &r) {
                            guards.fences.insert(r, f);
                        }
                    }
                    RowKey::Waiters(_)
                    | RowKey::FeedEntry(..)
                    | RowKey::FeedConfig(_)
                    | RowKey::Gate(_)
                    | RowKey::GateTickets(_)
                    | RowKey::Ticket(_)
                    | RowKey::Idem(..) => {}
                }
            }
            let (result, writes) = txn::apply(t, &mut working, &guards, rev, now, limits)?;
            let mut touched: Vec<&str> = writes.iter().map(|w| w.key.as_str()).collect();
            touched.sort_unstable();
            touched.dedup();
            let mut mutations: Vec<Mutation> = touched
                .into_iter()
                .map(|k| match working.get(k).cloned().flatten() {
                    Some(r) => Mutation::Put(Row::Record(r)),
                    None => Mutation::Delete(RowKey::Record(k.to_owned())),
                })
                .collect();
            let mut changes: Vec<Change> = writes
                .iter()
                .enumerate()
                .map(|(i, w)| record_change(i, &w.key, w.op, false))
                .collect();
            if result.succeeded {
                // Recording a higher fence is a lasting write: it has its change.
                for (resource, fence) in t.fences_to_record(&guards) {
                    let i = changes.len();
                    changes.push(change(
                        ctx,
                        i,
                        ChangeKind::Lease,
                        &resource,
                        ChangeOp::Fence,
                        false,
                    ));
                    mutations.push(Mutation::Put(Row::Fence { resource, fence }));
                }
            }
            Ok(Effect {
                outcome: Outcome::Txn(result),
                mutations,
                changes,
            })
        }
        Command::Expire { key } => {
            let expired = record_row(snapshot, key).is_some_and(|r| !r.is_live(now));
            if !expired {
                return Ok(Effect::answer(Outcome::Expire { expired }));
            }
            Ok(Effect {
                outcome: Outcome::Expire { expired },
                mutations: vec![Mutation::Delete(RowKey::Record(key.clone()))],
                changes: vec![record_change(0, key, ChangeOp::Expire, false)],
            })
        }
        Command::Acquire { name, req } => {
            lease::check_acquire(req, limits)?;
            let current = lease_row(snapshot, name);
            let mut waiters = waiters_row(snapshot, name);
            if req.wait == Some(None) && lease::live_waiters(&waiters, now).len() >= limits.lease_waiters_max
            {
                return Err(Error::LeaseHeld {
                    holder: current.as_ref().and_then(|l| l.holder.clone()),
                    expires_at: current.as_ref().map(|l| l.expires_at),
                    waiters: limits.lease_waiters_max,
                });
            }
            match lease::acquire(name, current.as_ref(), &waiters, req, rev, now)? {
                Acquired::Granted(lease) => {
                    let mut effect =
                        lease_write(ctx, lease.clone(), ChangeOp::Acquire, Outcome::Lease(lease));
                    if lease::expire(current.as_ref(), now).is_some() {
                        // The last holder's lease ran out before the sweeper saw it:
                        // its expiry is logged first, by the system, in this step.
                        let expired = Change {
                            actor: crate::change::SYSTEM_ACTOR.to_owned(),
                            ..change(ctx, 0, ChangeKind::Lease, name, ChangeOp::Expire, false)
                        };
                        effect.changes.insert(0, expired);
                        effect.changes[1].index = 1;
                    }
                    // The new holder leaves the queue; dead waiters are dropped with it.
                    let before = waiters.len();
                    waiters.retain(|w| w.alive_until > now && Some(Some(w.id)) != req.wait);
                    if waiters.len() != before {
                        effect.mutations.push(waiters_put(name, waiters));
                    }
                    Ok(effect)
                }
                Acquired::Queued { id, refresh, held } => {
                    let mut effect = Effect::answer(Outcome::Queued { id, held });
                    if let Some(w) = refresh {
                        waiters.retain(|x| x.id != w.id && x.alive_until > now);
                        waiters.push(w);
                        effect.mutations.push(waiters_put(name, waiters));
                    }
                    Ok(effect)
                }
            }
        }
        Command::Renew { name, token, ttl_ms } => {
            lease::check_token(token)?;
            lease::check_ttl(*ttl_ms, limits)?;
            let lease = lease::renew(lease_row(snapshot, name).as_ref(), token, *ttl_ms, now)?;
            Ok(lease_write(
                ctx,
                lease.clone(),
                ChangeOp::Renew,
                Outcome::Lease(lease),
            ))
        }
        Command::Release { name, token } => {
            lease::check_token(token)?;
            Ok(
                match lease::release(lease_row(snapshot, name).as_ref(), token, now) {
                    Some(l) => lease_write(ctx, l, ChangeOp::Release, Outcome::Released { released: true }),
                    None => Effect::answer(Outcome::Released { released: false }),
                },
            )
        }
        Command::Break { name } => Ok(
            match lease::break_lease(lease_row(snapshot, name).as_ref(), now) {
                Some(l) => lease_write(ctx, l, ChangeOp::Break, Outcome::Broken { broken: true }),
                None => Effect::answer(Outcome::Broken { broken: false }),
            },
        ),
        Command::ExpireLease { name } => Ok(match lease::expire(lease_row(snapshot, name).as_ref(), now) {
            Some(l) => lease_write(ctx, l, ChangeOp::Expire, Outcome::LeaseExpired { expired: true }),
            None => Effect::answer(Outcome::LeaseExpired { expired: false }),
        }),
        Command::Append { feed, entry } => {
            let config = feed_config(snapshot, feed);
            let existing = feed_entry(snapshot, feed, &entry.id);
            let (stored, created) = feed::append(feed, existing.as_ref(), &config, entry, rev, now);
            // The answer is the entry as readers see it (scrubbed when old enough).
            let shown = feed::present(stored.clone(), &config, now);
            if !created {
                return Ok(Effect::answer(Outcome::Appended {
                    entry: shown,
                    created,
                }));
            }
            let key = format!("{feed}/{}", stored.id);
            Ok(Effect {
                changes: vec![change(ctx, 0, ChangeKind::Feed, &key, ChangeOp::Append, false)],
                mutations: vec![Mutation::Put(Row::FeedEntry(stored))],
                outcome: Outcome::Appended {
                    entry: shown,
                    created,
                },
            })
        }
        Command::Import { feed, entries } => {
            let config = feed_config(snapshot, feed);
            let mut seen = std::collections::BTreeSet::new();
            let mut effect = Effect::answer(Outcome::Imported {
                imported: 0,
                skipped: 0,
            });
            let mut skipped = 0;
            for entry in entries {
                let existing = feed_entry(snapshot, feed, &entry.id);
                let (stored, created) = feed::append(feed, existing.as_ref(), &config, entry, rev, now);
                if !created || !seen.insert(entry.id.clone()) {
                    skipped += 1;
                    continue;
                }
                let key = format!("{feed}/{}", stored.id);
                let i = effect.changes.len();
                effect
                    .changes
                    .push(change(ctx, i, ChangeKind::Feed, &key, ChangeOp::Append, false));
                effect.mutations.push(Mutation::Put(Row::FeedEntry(stored)));
            }
            effect.outcome = Outcome::Imported {
                imported: effect.mutations.len(),
                skipped,
            };
            Ok(effect)
        }
        Command::MarkRead { feed, selector } => Ok(Effect {
            changes: vec![change(ctx, 0, ChangeKind::Feed, feed, ChangeOp::Read, false)],
            mutations: vec![Mutation::MarkRead {
                feed: feed.clone(),
                selector: selector.clone(),
            }],
            outcome: Outcome::MarkedRead,
        }),
        Command::DeleteEntry { feed, id } => {
            if feed_entry(snapshot, feed, id).is_none() {
                return Err(Error::NotFound(format!(
                    "entry {id:?} of feed {feed:?} does not exist"
                )));
            }
            Ok(Effect {
                changes: vec![change(
                    ctx,
                    0,
                    ChangeKind::Feed,
                    &format!("{feed}/{id}"),
                    ChangeOp::Delete,
                    false,
                )],
                mutations: vec![Mutation::Delete(RowKey::FeedEntry(feed.clone(), id.clone()))],
                outcome: Outcome::EntryDeleted,
            })
        }
        Command::Configure { feed, config } => {
            config.validate()?;
            Ok(Effect {
                changes: vec![change(ctx, 0, ChangeKind::Feed, feed, ChangeOp::Configure, false)],
                mutations: vec![
                    Mutation::Put(Row::FeedConfig {
                        feed: feed.clone(),
                        config: config.clone(),
                    }),
                    // The scrub fields may have changed: the sweeper looks at every entry again.
                    Mutation::ResetScrubbed { feed: feed.clone() },
                ],
                outcome: Outcome::Configured(config.clone()),
            })
        }
        Command::PurgeEntries { feed, ids, .. } | Command::ScrubEntries { feed, ids } => {
            let before = match cmd {
                Command::PurgeEntries { before, .. } => Some(before),
                _ => None,
            };
            let purge = before.is_some();
            let config = feed_config(snapshot, feed);
            let mut effect = Effect::answer(Outcome::Retained { count: 0 });
            for id in ids {
                let Some(e) = feed_entry(snapshot, feed, id) else {
                    continue;
                };
                let out_of_window = |before: &Option<(Millis, String)>| {
                    feed::aged_out(e.at, &config, now)
                        || before
                            .as_ref()
                            .is_some_and(|(at, bid)| (e.at, e.id.as_str()) < (*at, bid.as_str()))
                };
                if before.is_some_and(|b| !out_of_window(b)) {
                    continue;
                }
                let (m, op) = if purge {
                    (
                        Mutation::Delete(RowKey::FeedEntry(feed.clone(), id.clone())),
                        ChangeOp::Expire,
                    )
                } else {
                    match feed::scrub_on_disk(&e, &config, now) {
                        Some(s) => (Mutation::Put(Row::FeedEntry(s)), ChangeOp::Scrub),
                        None => continue,
                    }
                };
                let i = effect.changes.len();
                effect.changes.push(change(
                    ctx,
                    i,
                    ChangeKind::Feed,
                    &format!("{feed}/{id}"),
                    op,
                    false,
                ));
                effect.mutations.push(m);
            }
            effect.outcome = Outcome::Retained {
                count: effect.mutations.len(),
            };
            Ok(effect)
        }
        Command::PutGate { id, policy, meta } => {
            let existing = gate_row(snapshot, id).ok();
            let (g, created) = gate::put(existing.as_ref(), id, *policy, meta.clone(), rev, now)?;
            let op = if created {
                ChangeOp::Create
            } else {
                ChangeOp::Update
            };
            Ok(Effect {
                changes: vec![change(ctx, 0, ChangeKind::Gate, id, op, false)],
                mutations: vec![Mutation::Put(Row::Gate(g.clone()))],
                outcome: Outcome::GatePut { gate: g, created },
            })
        }
        Command::Transition { id, transition } => {
            let g = gate_row(snapshot, id)?;
            let Some(after) = gate::transition(&g, *transition, rev, now)? else {
                return Ok(Effect::answer(Outcome::Transitioned {
                    gate: g,
                    changed: false,
                    voided: 0,
                    pending: 0,
                }));
            };
            let mut effect = Effect {
                changes: vec![change(
                    ctx,
                    0,
                    ChangeKind::Gate,
                    id,
                    ChangeOp::from_transition(*transition),
                    false,
                )],
                mutations: vec![Mutation::Put(Row::Gate(after.clone()))],
                outcome: Outcome::Transitioned {
                    gate: after.clone(),
                    changed: true,
                    voided: 0,
                    pending: 0,
                },
            };
            if gate::closes_epoch(*transition) {
                let tickets = match snapshot.get(&RowKey::GateTickets(id.clone())) {
                    Some(Some(Row::GateTickets { tickets, .. })) => tickets.clone(),
                    _ => vec![],
                };
                let (voided, pending) = gate::close_epoch(&tickets, g.epoch, rev, now);
                let n = voided.len();
                effect
                    .mutations
                    .extend(voided.into_iter().map(|t| Mutation::Put(Row::Ticket(t))));
                effect.outcome = Outcome::Transitioned {
                    gate: after,
                    changed: true,
                    voided: n,
                    pending,
                };
            }
            Ok(effect)
        }
        Command::Admit {
            gate: gate_id,
            ticket,
            meta,
            capability,
        } => {
            let g = gate_row(snapshot, gate_id)?;
            if let Some(c) = capability {
                c.check(gate_id, g.epoch, now)?;
            }
            let existing = ticket_row(snapshot, ticket);
            let (t, created) = gate::admit(&g, existing.as_ref(), ticket, meta.clone(), rev, now)?;
            if !created {
                return Ok(Effect::answer(Outcome::Admitted { ticket: t, created }));
            }
            Ok(Effect {
                changes: vec![change(ctx, 0, ChangeKind::Gate, gate_id, ChangeOp::Admit, false)],
                mutations: vec![Mutation::Put(Row::Ticket(t.clone()))],
                outcome: Outcome::Admitted { ticket: t, created },
            })
        }
        Command::Ticket {
            gate: gate_id,
            ticket,
            op,
            append,
            capability,
        } => {
            let g = gate_row(snapshot, gate_id)?;
            if let Some(c) = capability {
                c.check(gate_id, g.epoch, now)?;
            }
            let t = ticket_row(snapshot, ticket)
                .filter(|t| &t.gate == gate_id)
                .ok_or_else(|| {
                    Error::NotFound(format!("ticket {ticket:?} of gate {gate_id:?} does not exist"))
                })?;
            let Some(after) = gate::ticket_op(&g, &t, *op, rev, now)? else {
                return Ok(Effect::answer(Outcome::TicketDone { ticket: t }));
            };
            let change_op = match after.state {
                TicketState::Committed => ChangeOp::Commit,
                TicketState::Finalized => ChangeOp::Finalize,
                TicketState::Aborted => ChangeOp::Abort,
                TicketState::Voided | TicketState::Open => ChangeOp::Void,
            };
            let mut effect = Effect {
                changes: vec![change(ctx, 0, ChangeKind::Gate, gate_id, change_op, false)],
                mutations: vec![Mutation::Put(Row::Ticket(after.clone()))],
                outcome: Outcome::TicketDone {
                    ticket: after.clone(),
                },
            };
            if after.state == TicketState::Voided {
                effect.outcome = Outcome::TicketVoided {
                    detail: format!(
                        "ticket {ticket:?} was committed under epoch {} and gate {gate_id:?} is {} at epoch {}: \
                         rejected by the pending policy and voided",
                        t.epoch,
                        g.state.as_str(),
                        g.epoch
                    ),
                };
            }
            if let (TicketState::Finalized, Some((feed, entry))) = (after.state, append) {
                // Finalized once <=> appended once: the entry commits with the finalization.
                let config = feed_config(snapshot, feed);
                let existing = feed_entry(snapshot, feed, &entry.id);
                let (stored, created) = feed::append(feed, existing.as_ref(), &config, entry, rev, now);
                if created {
                    let key = format!("{feed}/{}", stored.id);
                    effect
                        .changes
                        .push(change(ctx, 1, ChangeKind::Feed, &key, ChangeOp::Append, false));
                    effect.mutations.push(Mutation::Put(Row::FeedEntry(stored)));
                }
            }
            Ok(effect)
        }
        Command::IdemBegin { scope, key, req, app } => {
            let stored_scope = idem_scope(scope, *app);
            let existing = idem_entry(snapshot, &stored_scope, key);
            let began = idempotency::begin(existing.as_ref(), &stored_scope, key, req, now)?;
            let mut effect = Effect::answer(Outcome::IdemBegun(began.clone()));
            if let Began::Started(e) = began {
                effect.mutations.push(Mutation::Put(Row::Idem(e)));
                if *app {
                    let k = format!("{scope}/{key}");
                    effect.changes.push(change(
                        ctx,
                        0,
                        ChangeKind::Idempotency,
                        &k,
                        ChangeOp::Start,
                        false,
                    ));
                }
            }
            Ok(effect)
        }
        Command::IdemComplete {
            scope,
            key,
            token,
            response,
            app,
        } => {
            let existing = idem_entry(snapshot, &idem_scope(scope, *app), key);
            let done = idempotency::complete(existing.as_ref(), token, response.clone(), now)?;
            let mut effect = Effect::answer(Outcome::IdemCompleted);
            effect.mutations.push(Mutation::Put(Row::Idem(done)));
            if *app {
                let k = format!("{scope}/{key}");
                effect.changes.push(change(
                    ctx,
                    0,
                    ChangeKind::Idempotency,
                    &k,
                    ChangeOp::Complete,
                    false,
                ));
            }
            Ok(effect)
        }
        Command::IdemRelease {
            scope,
            key,
            token,
            app,
        } => {
            let stored_scope = idem_scope(scope, *app);
            idempotency::release(idem_entry(snapshot, &stored_scope, key).as_ref(), token, now)?;
            let mut effect = Effect::answer(Outcome::IdemReleased);
            effect
                .mutations
                .push(Mutation::Delete(RowKey::Idem(stored_scope, key.clone())));
            if *app {
                let k = format!("{scope}/{key}");
                effect.changes.push(change(
                    ctx,
                    0,
                    ChangeKind::Idempotency,
                    &k,
                    ChangeOp::Release,
                    false,
                ));
            }
            Ok(effect)
        }
        Command::ExpireIdem { scope, key } => {
            let expired = idem_entry(snapshot, scope, key).is_some_and(|e| e.expires_at <= now);
            let mut effect = Effect::answer(Outcome::IdemReleased);
            if expired {
                effect
                    .mutations
                    .push(Mutation::Delete(RowKey::Idem(scope.clone(), key.clone())));
            }
            Ok(effect)
        }
        Command::LeaveQueue { name, waiter } => {
            let mut waiters = waiters_row(snapshot, name);
            let before = waiters.len();
            waiters.retain(|w| w.id != *waiter && w.alive_until > now);
            let mut effect = Effect::answer(Outcome::LeftQueue);
            if waiters.len() != before {
                effect.mutations.push(waiters_put(name, waiters));
            }
            Ok(effect)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(revision: u64, now: i64, limits: &Limits) -> Ctx<'_> {
        Ctx {
            revision,
            now: Millis(now),
            actor: "t",
            limits,
        }
    }

    fn rk(k: &str) -> RowKey {
        RowKey::Record(k.into())
    }

    #[test]
    fn expired_rows_read_as_absent_and_are_purged_once() {
        let l = Limits::default();
        let put = Command::Put {
            key: "k".into(),
            req: PutRecord {
                value: json!(1),
                precondition: Precondition::None,
                ttl_ms: Some(10),
                force: false,
            },
        };
        let mut snap = Snapshot::from([(rk("k"), None)]);
        let e = execute(&put, &snap, &ctx(1, 100, &l)).unwrap_or_else(|e| panic!("{e}"));
        let Mutation::Put(r) = &e.mutations[0] else {
            panic!()
        };
        snap.insert(rk("k"), Some(r.clone()));
        // At 110 it is expired: expected_version 0 holds, and PUT creates.
        let create = Command::Put {
            key: "k".into(),
            req: PutRecord {
                value: json!(2),
                precondition: Precondition::ExpectedVersion(0),
                ttl_ms: None,
                force: false,
            },
        };
        let e2 = execute(&create, &snap, &ctx(2, 110, &l)).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(e2.outcome, Outcome::Put { created: true, .. }));
        let exp = Command::Expire { key: "k".into() };
        assert!(!execute(&exp, &snap, &ctx(3, 105, &l))
            .unwrap_or_else(|e| panic!("{e}"))
            .writes());
        let e3 = execute(&exp, &snap, &ctx(3, 110, &l)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e3.changes[0].op, ChangeOp::Expire);
    }

    #[test]
    fn failed_commands_write_nothing() {
        let l = Limits::default();
        let del = Command::Delete {
            key: "k".into(),
            precondition: Precondition::None,
        };
        let snap = Snapshot::from([(rk("k"), None)]);
        assert!(matches!(
            execute(&del, &snap, &ctx(1, 0, &l)),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn fenced_transactions() {
        let l = Limits::default();
        let t: Txn = serde_json::from_value(json!({
            "compare": [{"lease": "job", "token": "A"}, {"fence": {"resource": "db", "token": 7}}],
            "success": [{"put": {"key": "x", "value": 1}}]}))
        .unwrap_or_else(|e| panic!("{e}"));
        let cmd = Command::Txn(t);
        let held_by_a = Lease {
            name: "job".into(),
            token: Some("A".into()),
            holder: None,
            fence: 7,
            acquired_at: Millis(0),
            expires_at: Millis(100),
        };
        let mut snap: Snapshot = cmd.rows().into_iter().map(|k| (k, None)).collect();
        snap.insert(RowKey::Lease("job".into()), Some(Row::Lease(held_by_a)));
        let e = execute(&cmd, &snap, &ctx(8, 50, &l)).unwrap_or_else(|e| panic!("{e}"));
        let Outcome::Txn(r) = &e.outcome else { panic!() };
        assert!(r.succeeded);
        assert!(e.mutations.contains(&Mutation::Put(Row::Fence {
            resource: "db".into(),
            fence: 7
        })));
        // After the lease lapsed, and once fence 9 was recorded, both compares fail.
        snap.insert(
            RowKey::Fence("db".into()),
            Some(Row::Fence {
                resource: "db".into(),
                fence: 9,
            }),
        );
        let e = execute(&cmd, &snap, &ctx(10, 150, &l)).unwrap_or_else(|e| panic!("{e}"));
        let Outcome::Txn(r) = &e.outcome else { panic!() };
        assert_eq!((r.succeeded, r.failed.clone()), (false, vec![0, 1]));
        assert!(e.mutations.is_empty());
    }

    fn changes_of(e: &Effect) -> Vec<(u32, ChangeKind, &str, ChangeOp, &str)> {
        e.changes
            .iter()
            .map(|c| (c.index, c.kind, c.key.as_str(), c.op, c.actor.as_str()))
            .collect()
    }

    #[test]
    fn recording_a_fence_is_a_write_with_a_change() {
        let l = Limits::default();
        let fenced = |token: u64| {
            let t: Txn =
                serde_json::from_value(json!({"compare": [{"fence": {"resource": "db", "token": token}}]}))
                    .unwrap_or_else(|e| panic!("{e}"));
            Command::Txn(t)
        };
        let recorded = |fence: u64| -> Snapshot {
            [(
                RowKey::Fence("db".into()),
                Some(Row::Fence {
                    resource: "db".into(),
                    fence,
                }),
            )]
            .into_iter()
            .collect()
        };
        // A first fence, and a higher one: each is a write with a `fence` change.
        for snap in [Snapshot::new(), recorded(3)] {
            let e = execute(&fenced(5), &snap, &ctx(9, 0, &l)).unwrap_or_else(|e| panic!("{e}"));
            assert!(e.writes());
            assert_eq!(
                changes_of(&e),
                [(0, ChangeKind::Lease, "db", ChangeOp::Fence, "t")]
            );
        }
        // The same fence again records nothing new: no write.
        let e = execute(&fenced(5), &recorded(5), &ctx(9, 0, &l)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!e.writes() && e.mutations.is_empty(), "{e:?}");
    }

    #[test]
    fn taking_over_an_unswept_expired_lease_logs_its_expiry_first() {
        let l = Limits::default();
        let cmd = Command::Acquire {
            name: "job".into(),
            req: AcquireReq {
                ttl_ms: 1000,
                holder: None,
                token: "B".into(),
                wait: None,
            },
        };
        let lapsed = Lease {
            name: "job".into(),
            token: Some("A".into()),
            holder: None,
            fence: 7,
            acquired_at: Millis(0),
            expires_at: Millis(100),
        };
        let mut snap: Snapshot = cmd.rows().into_iter().map(|k| (k, None)).collect();
        snap.insert(RowKey::Lease("job".into()), Some(Row::Lease(lapsed.clone())));
        let e = execute(&cmd, &snap, &ctx(8, 150, &l)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            changes_of(&e),
            [
                (
                    0,
                    ChangeKind::Lease,
                    "job",
                    ChangeOp::Expire,
                    crate::change::SYSTEM_ACTOR
                ),
                (1, ChangeKind::Lease, "job", ChangeOp::Acquire, "t"),
            ]
        );
        // Swept already (no token), or free: only the acquire.
        snap.insert(
            RowKey::Lease("job".into()),
            Some(Row::Lease(Lease {
                token: None,
                ..lapsed
            })),
        );
        let e = execute(&cmd, &snap, &ctx(8, 150, &l)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            changes_of(&e),
            [(0, ChangeKind::Lease, "job", ChangeOp::Acquire, "t")]
        );
    }
}
