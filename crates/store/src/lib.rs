//! lockstep-store: the storage kernel. Each backend loads and locks the rows a
//! command touches inside one storage transaction, calls the pure semantics of
//! `lockstep-core`, and persists the rows and change entries it returns,
//! atomically. SQLite serves embedded mode, PostgreSQL shared mode.

pub mod answer;
mod changelog;
pub mod clock;
mod codec;
pub mod copy;
pub mod error;
mod kernel;
pub mod metrics;
pub mod postgres;
pub mod query;
pub mod schema;
mod sql;
pub mod sqlite;
mod sweep;

pub(crate) use codec::{parse_stored, record_from_parts, rev_i64, stored_u64};
pub use error::Error;
pub use metrics::StoreMetrics;

use lockstep_core::lease::Lease;
use lockstep_core::{Command, Limits, Millis, Outcome, Record, Row, RowKey, Snapshot};
use std::sync::Arc;

/// Settings common to every backend.
#[derive(Debug, Clone)]
pub struct Options {
    /// Limits in force (TTL and size checks inside commands).
    pub limits: Limits,
    /// PostgreSQL connection pool size.
    pub pool_size: usize,
    /// SQLite: most operations committed in one transaction.
    pub batch_max: usize,
    /// Where time for TTLs, expiry and retention comes from (the system
    /// clock unless a test gives a manual one).
    pub clock: clock::Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            pool_size: 16,
            batch_max: 256,
            clock: clock::Clock::System,
        }
    }
}

/// What to do with the idempotency entry of a request once its command ran.
pub use lockstep_core::admission::Finish;

/// Turns a command's answer into its stored response; supplied by the server,
/// which alone knows the HTTP shape of answers.
pub type Render = Arc<dyn Fn(&Result<Committed, Error>) -> Finish + Send + Sync>;

/// Completes a started idempotency entry atomically with a command: the
/// response is written in the same storage transaction as the command's effect,
/// so a crash can never leave the effect without its stored response.
#[derive(Clone)]
pub struct Completion {
    /// Entry scope.
    pub scope: String,
    /// Entry key.
    pub key: String,
    /// The owner token (from `IdemBegin`, or of `begin`).
    pub token: String,
    /// Begin the key in the same transaction (one transaction per keyed
    /// request): a new key is started and owned, a completed one replayed
    /// (the command does not run), a running one refused as in use.
    pub begin: Option<lockstep_core::idempotency::Begin>,
    /// The answer renderer.
    pub render: Render,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("scope", &self.scope)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Completion {
    /// The entry's admission: the pure decisions of `lockstep_core::admission`.
    fn admission(&self) -> lockstep_core::admission::Admission<'_> {
        lockstep_core::admission::Admission {
            scope: &self.scope,
            key: &self.key,
            token: &self.token,
            begin: self.begin.as_ref(),
        }
    }

    /// The row of the entry.
    pub(crate) fn row(&self) -> RowKey {
        self.admission().row()
    }

    /// Admits the request to run its command (see
    /// `lockstep_core::admission::Admission::admit`): `Some` is the replay to
    /// answer instead of running.
    pub(crate) fn admit(
        &self,
        snapshot: &mut Snapshot,
        now: Millis,
    ) -> Result<Option<lockstep_core::idempotency::StoredResponse>, Error> {
        Ok(self.admission().admit(snapshot, now)?)
    }

    /// The entry write that records `answer` as the server renders it, if any.
    pub(crate) fn finish(
        &self,
        snapshot: &Snapshot,
        answer: &Result<Committed, Error>,
        now: Millis,
    ) -> Result<Option<lockstep_core::Mutation>, Error> {
        Ok(self.admission().finish(snapshot, (self.render)(answer), now)?)
    }
}

/// One write command as a backend receives it: the command, where, by whom,
/// and the keyed request's idempotency entry to complete with it.
#[derive(Debug)]
pub struct Write {
    /// The namespace.
    pub ns: String,
    /// The command.
    pub cmd: Command,
    /// Who asks (the change entries' actor).
    pub actor: String,
    /// The idempotency entry completed in the same transaction, if keyed.
    pub completion: Option<Completion>,
}

impl Write {
    /// A write of `cmd` in `ns` by `actor`.
    pub fn new(ns: &str, cmd: Command, actor: &str, completion: Option<Completion>) -> Write {
        Write {
            ns: ns.to_owned(),
            cmd,
            actor: actor.to_owned(),
            completion,
        }
    }
}

/// A committed (or refused-without-effect) command: its answer and the revision it
/// committed at; the current revision when it wrote nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The answer of the pure semantics.
    pub outcome: Outcome,
    /// The revision.
    pub revision: u64,
}

/// One page of a feed: visible entries (scrubbed as readers see them) and the
/// feed's unread count.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// Entries in the requested order.
    pub entries: Vec<lockstep_core::feed::Entry>,
    /// Visible entries not marked read.
    pub unread_count: u64,
}

/// A feed in a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSummary {
    /// Feed name.
    pub feed: String,
    /// Visible entries.
    pub entries: u64,
    /// Visible entries not marked read.
    pub unread_count: u64,
}

/// One page of the change log: whole revisions in (revision, index) order.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage {
    /// The matching changes; a page never ends inside a revision.
    pub changes: Vec<lockstep_core::Change>,
    /// Whether more matching changes were already committed after this page.
    pub more: bool,
    /// Every matching change up to this revision is in this or an earlier
    /// page: the `after` of the next read (past revisions without a match).
    pub through: u64,
}

/// The revisions the change log spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeBounds {
    /// The highest revision compacted away (0 = none): reading after an older
    /// revision is refused with `Compacted`.
    pub horizon: u64,
    /// The latest revision up to which every revision has committed or never
    /// will (where a watch "from now" starts).
    pub latest: u64,
}

/// Which database a store uses, parsed from `--database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `sqlite:PATH` or a bare path.
    Sqlite(std::path::PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl Location {
    /// Parses a `--database` argument.
    pub fn parse(s: &str) -> Result<Location, Error> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Location::Postgres(s.to_owned()))
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(Error::Config("sqlite: needs a path".into()));
            }
            Ok(Location::Sqlite(path.into()))
        } else if s.contains("://") {
            Err(Error::Config(format!("unsupported database URL {s:?}")))
        } else {
            Ok(Location::Sqlite(s.into()))
        }
    }
}

/// A storage backend (enum dispatch: one semantics, two kernels).
#[derive(Clone)]
pub enum Store {
    /// Embedded mode.
    Sqlite(sqlite::SqliteStore),
    /// Shared mode.
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (creating and migrating as needed) the store at `location`.
    pub async fn open(location: &Location, opts: Options) -> Result<Store, Error> {
        let metrics = Arc::new(StoreMetrics::default());
        Ok(match location {
            Location::Sqlite(path) => Store::Sqlite(sqlite::SqliteStore::open(path, opts, metrics).await?),
            Location::Postgres(url) => Store::Postgres(postgres::PgStore::open(url, opts, metrics).await?),
        })
    }

    /// Closes the store: SQLite answers the writes queued so far, stops and
    /// joins its writer thread and drops its connections (the file can be
    /// opened again at once); PostgreSQL closes its pool. Every later call on
    /// this store (or a clone) answers `Unavailable`.
    pub async fn close(&self) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => {
                s.close();
                Ok(())
            }
        }
    }

    /// Applies one write command atomically, with its change entries.
    pub async fn execute(&self, ns: &str, cmd: Command, actor: &str) -> Result<Committed, Error> {
        self.execute_completing(ns, cmd, actor, None).await
    }

    /// Applies one write command and, in the same transaction, completes the
    /// request's idempotency entry with the rendered answer (also when the
    /// command is refused: refusals are stored too).
    pub async fn execute_completing(
        &self,
        ns: &str,
        cmd: Command,
        actor: &str,
        completion: Option<Completion>,
    ) -> Result<Committed, Error> {
        let started = std::time::Instant::now();
        let r = match self {
            Store::Sqlite(s) => s.execute(Write::new(ns, cmd, actor, completion)).await,
            Store::Postgres(s) => s.execute(Write::new(ns, cmd, actor, completion)).await,
        };
        self.metrics()
            .storage_latency_us
            .observe(started.elapsed().as_micros() as u64);
        r
    }

    /// Reads a live record.
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Record>, Error> {
        match self {
            Store::Sqlite(s) => s.get(ns, key).await,
            Store::Postgres(s) => s.get(ns, key).await,
        }
    }

    /// Lists live records of `ns` whose key starts with `prefix`, after `after`,
    /// in key order, at most `limit`.
    pub async fn list(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        lockstep_core::names::validate_text("prefix", prefix)?;
        let q = query::NamePage::new(ns, prefix, after, limit);
        match self {
            Store::Sqlite(s) => s.list(q).await,
            Store::Postgres(s) => s.list(q).await,
        }
    }

    /// Removes a namespace and everything in it; returns how many records went.
    pub async fn delete_namespace(&self, ns: &str) -> Result<u64, Error> {
        match self {
            Store::Sqlite(s) => s.delete_namespace(ns).await,
            Store::Postgres(s) => s.delete_namespace(ns).await,
        }
    }

    /// The server-wide setting `name`, stored as `candidate` if it has none
    /// yet (the first instance to store one wins; all read the same).
    pub async fn setting_or_insert(&self, name: &str, candidate: &str) -> Result<String, Error> {
        match self {
            Store::Sqlite(s) => s.setting_or_insert(name, candidate).await,
            Store::Postgres(s) => s.setting_or_insert(name, candidate).await,
        }
    }

    /// How the database's tables differ from the one schema description
    /// ([`schema::TABLES`]): empty when the migrations produced exactly it.
    pub async fn schema_drift(&self) -> Result<Vec<String>, Error> {
        let (dialect, found) = match self {
            Store::Sqlite(s) => (schema::Dialect::Sqlite, s.introspect().await?),
            Store::Postgres(s) => (schema::Dialect::Postgres, s.introspect().await?),
        };
        Ok(schema::compare(dialect, &found))
    }

    /// Checks the storage is reachable.
    pub async fn ping(&self) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// Purges up to `batch` expired records and frees expired leases, each with
    /// an `expire` change; returns how many were purged or freed.
    pub async fn sweep_expired(&self, batch: usize) -> Result<usize, Error> {
        let expired = match self {
            Store::Sqlite(s) => s.expired(batch).await?,
            Store::Postgres(s) => s.expired(batch).await?,
        };
        let mut purged = 0;
        for (ns, cmd) in expired {
            let c = self
                .execute(&ns, cmd, lockstep_core::change::SYSTEM_ACTOR)
                .await?;
            if matches!(
                c.outcome,
                Outcome::Expire { expired: true } | Outcome::LeaseExpired { expired: true }
            ) {
                purged += 1;
            }
            if let Outcome::Retained { count } = c.outcome {
                purged += count;
            }
        }
        Ok(purged)
    }

    /// One page of a feed's visible entries after `after` (a position), newest
    /// first when `desc`, with the unread count.
    pub async fn list_entries(
        &self,
        ns: &str,
        feed: &str,
        desc: bool,
        after: Option<(Millis, String)>,
        limit: usize,
    ) -> Result<FeedPage, Error> {
        let q = query::EntryPage {
            ns: ns.to_owned(),
            feed: feed.to_owned(),
            desc,
            after,
            limit,
        };
        match self {
            Store::Sqlite(s) => s.list_entries(q).await,
            Store::Postgres(s) => s.list_entries(q).await,
        }
    }

    /// Feeds of a namespace by name, with entry and unread counts.
    pub async fn list_feeds(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FeedSummary>, Error> {
        lockstep_core::names::validate_text("prefix", prefix)?;
        let q = query::NamePage::new(ns, prefix, after, limit);
        match self {
            Store::Sqlite(s) => s.list_feeds(q).await,
            Store::Postgres(s) => s.list_feeds(q).await,
        }
    }

    /// One page of the change log of `ns`: changes after revision `after` whose
    /// key starts with `prefix` and of `kind` (a wire name), in (revision, index)
    /// order, at most `limit` unless one revision alone has more. Refused with
    /// `Compacted` when changes after `after` were compacted away.
    pub async fn list_changes(
        &self,
        ns: &str,
        after: u64,
        prefix: Option<&str>,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<ChangePage, Error> {
        if let Some(p) = prefix {
            lockstep_core::names::validate_text("prefix", p)?;
        }
        let q = query::ChangeQuery {
            ns: ns.to_owned(),
            after,
            prefix: prefix.unwrap_or_default().to_owned(),
            kind: kind.map(str::to_owned),
            limit,
        };
        match self {
            Store::Sqlite(s) => s.list_changes(q).await,
            Store::Postgres(s) => s.list_changes(q).await,
        }
    }

    /// The compaction horizon and the latest committed revision.
    pub async fn change_bounds(&self) -> Result<ChangeBounds, Error> {
        match self {
            Store::Sqlite(s) => s.change_bounds().await,
            Store::Postgres(s) => s.change_bounds().await,
        }
    }

    /// Deletes the oldest whole revisions of the change log that are older than
    /// `keep_ms` or beyond the newest `keep_count` changes, in bounded batches,
    /// recording the horizon; returns how many changes went.
    pub async fn compact_changes(&self, keep_ms: u64, keep_count: u64) -> Result<u64, Error> {
        match self {
            Store::Sqlite(s) => s.compact_changes(keep_ms, keep_count).await,
            Store::Postgres(s) => s.compact_changes(keep_ms, keep_count).await,
        }
    }

    /// Reads a gate.
    pub async fn get_gate(&self, ns: &str, id: &str) -> Result<Option<lockstep_core::gate::Gate>, Error> {
        match self {
            Store::Sqlite(s) => s.get_gate(ns, id).await,
            Store::Postgres(s) => s.get_gate(ns, id).await,
        }
    }

    /// Lists a gate's tickets by id, optionally of one state.
    pub async fn list_tickets(
        &self,
        ns: &str,
        gate: &str,
        state: Option<lockstep_core::gate::TicketState>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<lockstep_core::gate::Ticket>, Error> {
        let q = query::TicketPage {
            ns: ns.to_owned(),
            gate: gate.to_owned(),
            state,
            after: after.map(str::to_owned),
            limit,
        };
        match self {
            Store::Sqlite(s) => s.list_tickets(q).await,
            Store::Postgres(s) => s.list_tickets(q).await,
        }
    }

    /// Reads stored rows as the write path loads them (without locking), and
    /// the storage clock's `now`: the reads of one row of a primitive.
    pub async fn read_rows(&self, ns: &str, keys: Vec<RowKey>) -> Result<(Snapshot, Millis), Error> {
        match self {
            Store::Sqlite(s) => s.read_rows(ns, keys).await,
            Store::Postgres(s) => s.read_rows(ns, keys).await,
        }
    }

    /// Reads a lease's stored row (held or not) and the storage clock's `now`.
    pub async fn get_lease(&self, ns: &str, name: &str) -> Result<(Option<Lease>, Millis), Error> {
        let key = RowKey::Lease(name.to_owned());
        let (mut snapshot, now) = self.read_rows(ns, vec![key.clone()]).await?;
        let lease = match snapshot.remove(&key) {
            Some(Some(Row::Lease(l))) => Some(l),
            _ => None,
        };
        Ok((lease, now))
    }

    /// Namespaces that hold anything (any primitive's rows), in byte order,
    /// after `after`, at most `limit`.
    pub async fn namespaces(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, Error> {
        match self {
            Store::Sqlite(s) => s.namespaces(after, limit).await,
            Store::Postgres(s) => s.namespaces(after, limit).await,
        }
    }

    /// The backend's gauges as `(name, help, value)`: the SQLite writer's
    /// queue, or the PostgreSQL pool's size, idle connections and waiters.
    pub fn gauges(&self) -> Vec<(&'static str, &'static str, u64)> {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        match self {
            Store::Sqlite(s) => vec![(
                "lockstep_sqlite_writer_queue_depth",
                "Write commands queued for the SQLite writer.",
                n(s.queue_depth()),
            )],
            Store::Postgres(s) => {
                let (size, idle, waiting) = s.pool_status();
                vec![
                    (
                        "lockstep_pg_pool_size",
                        "PostgreSQL connections open in the pool.",
                        n(size),
                    ),
                    (
                        "lockstep_pg_pool_idle",
                        "Idle PostgreSQL connections in the pool.",
                        n(idle),
                    ),
                    (
                        "lockstep_pg_pool_waiting",
                        "Requests waiting for a PostgreSQL connection.",
                        n(waiting),
                    ),
                ]
            }
        }
    }

    /// The clock the store was given (to compare times outside a
    /// transaction with the store's own, such as a capability's expiry).
    pub fn clock(&self) -> &clock::Clock {
        match self {
            Store::Sqlite(s) => s.clock(),
            Store::Postgres(s) => s.clock(),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// What an acknowledged write survives, for `/v1/info`.
    pub fn durability(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "fsync on commit (WAL, synchronous=FULL)",
            Store::Postgres(_) => "PostgreSQL commit (as configured on the server)",
        }
    }

    /// Storage metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        match self {
            Store::Sqlite(s) => s.metrics(),
            Store::Postgres(s) => s.metrics(),
        }
    }
}
