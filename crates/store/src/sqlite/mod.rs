//! Embedded backend: SQLite in WAL mode with `synchronous=FULL`. One writer
//! thread owns the only write connection and group-commits: it takes every
//! queued command (up to `batch_max`), runs each in its own savepoint inside one
//! `BEGIN IMMEDIATE` transaction, commits once (one fsync), then answers them
//! all. A refused command rolls back its savepoint only. Readers use their own
//! connections, so reads never wait for the writer.

use crate::clock::Clock;
use crate::codec;
use crate::kernel::{self, WriteTx};
use crate::sql;
use crate::{
    record_from_parts, rev_i64, Committed, Completion, Error, FeedPage, FeedSummary, Options, StoreMetrics,
};
use lockstep_core::{Command, Effect, Limits, Millis, Mutation, Record, Row, RowKey, Snapshot};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

pub(crate) mod changes;
mod feeds;
pub(crate) mod gates;
pub(crate) mod idempotency;
mod introspect;

/// Versioned schema migrations, applied in order; `PRAGMA user_version` records
/// the last one applied.
const MIGRATIONS: &[&str] = &[
    // 1: records, the revision counter and the change log.
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
     INSERT INTO meta (name, value) VALUES ('revision', 0);
     CREATE TABLE records (
        ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, version INTEGER NOT NULL,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, expires_at INTEGER,
        PRIMARY KEY (ns, key)) WITHOUT ROWID;
     CREATE INDEX records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;
     CREATE TABLE changes (
        revision INTEGER NOT NULL, idx INTEGER NOT NULL, ns TEXT NOT NULL, kind TEXT NOT NULL,
        key TEXT NOT NULL, op TEXT NOT NULL, actor TEXT NOT NULL, forced INTEGER NOT NULL,
        at INTEGER NOT NULL, PRIMARY KEY (revision, idx)) WITHOUT ROWID;",
    // 2: leases, their waiter queues and recorded fences.
    "CREATE TABLE leases (
        ns TEXT NOT NULL, name TEXT NOT NULL, token TEXT, holder TEXT, fence INTEGER NOT NULL,
        acquired_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (ns, name)) WITHOUT ROWID;
     CREATE INDEX leases_expiry ON leases (expires_at) WHERE token IS NOT NULL;
     CREATE TABLE lease_waiters (
        ns TEXT NOT NULL, name TEXT NOT NULL, id INTEGER NOT NULL, alive_until INTEGER NOT NULL,
        PRIMARY KEY (ns, name, id)) WITHOUT ROWID;
     CREATE TABLE fences (
        ns TEXT NOT NULL, resource TEXT NOT NULL, fence INTEGER NOT NULL,
        PRIMARY KEY (ns, resource)) WITHOUT ROWID;",
    // 3: feeds.
    "CREATE TABLE feed_entries (
        ns TEXT NOT NULL, feed TEXT NOT NULL, id TEXT NOT NULL, at INTEGER NOT NULL, data TEXT NOT NULL,
        revision INTEGER NOT NULL, read INTEGER NOT NULL DEFAULT 0, scrubbed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ns, feed, id)) WITHOUT ROWID;
     CREATE INDEX feed_entries_order ON feed_entries (ns, feed, at, id);
     CREATE TABLE feed_configs (
        ns TEXT NOT NULL, feed TEXT NOT NULL, config TEXT NOT NULL,
        PRIMARY KEY (ns, feed)) WITHOUT ROWID;",
    // 4: gates and tickets.
    "CREATE TABLE gates (
        ns TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL, epoch INTEGER NOT NULL,
        pending TEXT NOT NULL, meta TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (ns, id)) WITHOUT ROWID;
     CREATE TABLE tickets (
        ns TEXT NOT NULL, id TEXT NOT NULL, gate TEXT NOT NULL, epoch INTEGER NOT NULL, state TEXT NOT NULL,
        meta TEXT NOT NULL, recovered INTEGER NOT NULL, finalized_revision INTEGER,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (ns, id)) WITHOUT ROWID;
     CREATE INDEX tickets_by_gate ON tickets (ns, gate, id);",
    // 5: idempotency keys.
    "CREATE TABLE idempotency (
        ns TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, token TEXT NOT NULL,
        response TEXT, locked_until INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (ns, scope, key)) WITHOUT ROWID;
     CREATE INDEX idempotency_expiry ON idempotency (expires_at);",
    // 6: the change-log compaction horizon (the highest revision deleted).
    "CREATE TABLE change_horizon (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
     INSERT INTO change_horizon (id, revision) VALUES (1, 0);",
    // 7: the revision of each gate's and ticket's last write.
    "ALTER TABLE gates ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE tickets ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
     UPDATE tickets SET revision = finalized_revision WHERE finalized_revision IS NOT NULL;",
    // 8: server-wide settings (the generated capability signing key).
    "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
];

const READERS_MAX: usize = 8;

enum Job {
    Exec {
        ns: String,
        cmd: Box<Command>,
        actor: String,
        completion: Option<Completion>,
        reply: oneshot::Sender<Result<Committed, Error>>,
    },
    DeleteNamespace {
        ns: String,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    /// Stop once every job queued before this one is answered.
    Stop,
}

/// The embedded SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: mpsc::Sender<Job>,
    /// The writer thread, until the store is closed.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set by `close`: reads are refused from then on.
    closed: std::sync::atomic::AtomicBool,
    clock: Clock,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    metrics: Arc<StoreMetrics>,
}

pub(crate) fn open_connection(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let applied: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if applied > MIGRATIONS.len() {
        return Err(Error::Config(format!(
            "database schema version {applied} is newer than this binary ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating) the database file and starts the writer.
    pub async fn open(path: &Path, opts: Options, metrics: Arc<StoreMetrics>) -> Result<Self, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        let revision: i64 =
            conn.query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| r.get(0))?;
        let revision = u64::try_from(revision).map_err(|_| Error::Internal("negative revision".into()))?;
        let (tx, rx) = mpsc::channel(16 * 1024);
        let writer = Writer {
            conn,
            revision,
            limits: opts.limits,
            clock: opts.clock.clone(),
            batch_max: opts.batch_max.max(1),
            metrics: metrics.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("lockstep-sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                jobs: tx,
                writer: Mutex::new(Some(handle)),
                closed: std::sync::atomic::AtomicBool::new(false),
                clock: opts.clock,
                readers: Mutex::new(Vec::new()),
                path: path.to_owned(),
                metrics,
            }),
        })
    }

    /// Storage metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.inner.metrics
    }

    /// Answers every write queued so far, stops the writer thread and waits
    /// for it (its connection is closed when it returns), and closes the idle
    /// reader connections: the file can be opened again at once. Later calls
    /// (on any clone) answer `Unavailable`.
    pub async fn close(&self) -> Result<(), Error> {
        let poisoned = || Error::Internal("the SQLite writer handle is poisoned".into());
        self.inner.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let handle = self.inner.writer.lock().map_err(|_| poisoned())?.take();
        if let Some(handle) = handle {
            // A writer that already stopped has dropped its queue: nothing to tell.
            let _ = self.inner.jobs.send(Job::Stop).await;
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| Error::Internal(format!("joining the SQLite writer: {e}")))?
                .map_err(|_| Error::Internal("the SQLite writer panicked".into()))?;
        }
        self.inner
            .readers
            .lock()
            .map_err(|_| Error::Internal("reader pool poisoned".into()))?
            .clear();
        Ok(())
    }

    /// Commands queued for the writer and not taken yet.
    pub fn queue_depth(&self) -> usize {
        self.inner.jobs.max_capacity() - self.inner.jobs.capacity()
    }

    async fn submit<T>(&self, job: Job, rx: oneshot::Receiver<Result<T, Error>>) -> Result<T, Error> {
        let gone = || Error::Unavailable("the SQLite writer has stopped".into());
        self.inner.jobs.send(job).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Applies one write command (group-committed with concurrent ones).
    pub async fn execute(
        &self,
        ns: &str,
        cmd: Command,
        actor: &str,
        completion: Option<Completion>,
    ) -> Result<Committed, Error> {
        let (reply, rx) = oneshot::channel();
        let job = Job::Exec {
            ns: ns.to_owned(),
            cmd: Box::new(cmd),
            actor: actor.to_owned(),
            completion,
            reply,
        };
        self.submit(job, rx).await
    }

    /// Removes every record of a namespace.
    pub async fn delete_namespace(&self, ns: &str) -> Result<u64, Error> {
        let (reply, rx) = oneshot::channel();
        self.submit(
            Job::DeleteNamespace {
                ns: ns.to_owned(),
                reply,
            },
            rx,
        )
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        if self.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Unavailable("the SQLite store is closed".into()));
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .map_err(|_| Error::Internal("reader pool poisoned".into()))?
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path)?,
            };
            let out = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                if pool.len() < READERS_MAX {
                    pool.push(conn);
                }
            }
            out
        })
        .await
        .map_err(|e| Error::Internal(format!("reader task failed: {e}")))?
    }

    /// Reads one live record.
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Record>, Error> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        let clock = self.inner.clock.clone();
        self.read(move |c| {
            let now = clock.now();
            Ok(load(c, &ns, &key)?.filter(|r| r.is_live(now)))
        })
        .await
    }

    /// Lists live records by key.
    pub async fn list(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        let (ns, prefix, after) = (ns.to_owned(), prefix.to_owned(), after.map(str::to_owned));
        let clock = self.inner.clock.clone();
        self.read(move |c| {
            let now = clock.now().0;
            let (lower_op, lower) = match after {
                Some(a) if a.as_str() >= prefix.as_str() => (">", a),
                _ => (">=", prefix.clone()),
            };
            let upper = lockstep_core::names::prefix_upper_bound(&prefix);
            let sql = format!(
                "SELECT key, value, version, created_at, updated_at, expires_at FROM records
                 WHERE ns = ?1 AND key {lower_op} ?2 AND (?3 IS NULL OR key < ?3)
                   AND (expires_at IS NULL OR expires_at > ?4)
                 ORDER BY key LIMIT ?5"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![ns, lower, upper, now, limit], row_parts)?;
            rows.map(|r| r.map_err(Error::from).and_then(parts_to_record))
                .collect()
        })
        .await
    }

    /// Up to `batch` sweeper commands: expired records to purge and expired
    /// leases to free, each with its namespace.
    pub async fn expired(&self, batch: usize) -> Result<Vec<(String, Command)>, Error> {
        let clock = self.inner.clock.clone();
        self.read(move |c| {
            let now = clock.now().0;
            let limit = i64::try_from(batch).unwrap_or(i64::MAX);
            let mut out = Vec::new();
            let mut stmt = c.prepare_cached(
                "SELECT ns, key FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?1
                 ORDER BY expires_at LIMIT ?2",
            )?;
            for r in stmt.query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))? {
                let (ns, key): (String, String) = r?;
                out.push((ns, Command::Expire { key }));
            }
            let mut stmt = c.prepare_cached(
                "SELECT ns, name FROM leases WHERE token IS NOT NULL AND expires_at <= ?1
                 ORDER BY expires_at LIMIT ?2",
            )?;
            for r in stmt.query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))? {
                let (ns, name): (String, String) = r?;
                out.push((ns, Command::ExpireLease { name }));
            }
            let mut reads = feeds::Retention(c);
            let retention = crate::sweep::retention(&mut reads, batch, clock.now());
            out.extend(kernel::complete_now(retention)?);
            out.extend(idempotency::expired(c, batch, clock.now())?);
            Ok(out)
        })
        .await
    }

    /// Reads stored rows as the write path loads them (without locking), and
    /// the storage clock.
    pub async fn read_rows(&self, ns: &str, keys: Vec<RowKey>) -> Result<(Snapshot, Millis), Error> {
        let ns = ns.to_owned();
        let clock = self.inner.clock.clone();
        self.read(move |c| {
            let mut snapshot = Snapshot::new();
            for k in keys {
                let row = load_row(c, &ns, &k)?;
                snapshot.insert(k, row);
            }
            Ok((snapshot, clock.now()))
        })
        .await
    }

    /// Namespaces that hold anything, in byte order, after `after`.
    pub async fn namespaces(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, Error> {
        let sql = format!(
            "SELECT ns FROM ({}) WHERE ?1 IS NULL OR ns > ?1 ORDER BY ns LIMIT ?2",
            crate::schema::namespaces_union()
        );
        let after = after.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![after, limit], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// One page of a feed's visible entries with its unread count.
    pub async fn list_entries(
        &self,
        ns: &str,
        feed: &str,
        desc: bool,
        after: Option<(Millis, String)>,
        limit: usize,
    ) -> Result<FeedPage, Error> {
        let (ns, feed) = (ns.to_owned(), feed.to_owned());
        let clock = self.inner.clock.clone();
        self.read(move |c| feeds::list_entries(c, &ns, &feed, desc, after.as_ref(), limit, clock.now()))
            .await
    }

    /// Feeds by name with their counts.
    pub async fn list_feeds(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FeedSummary>, Error> {
        let (ns, prefix, after) = (ns.to_owned(), prefix.to_owned(), after.map(str::to_owned));
        let clock = self.inner.clock.clone();
        self.read(move |c| feeds::list_feeds(c, &ns, &prefix, after.as_deref(), limit, clock.now()))
            .await
    }

    /// Reads a gate.
    pub async fn get_gate(&self, ns: &str, id: &str) -> Result<Option<lockstep_core::gate::Gate>, Error> {
        let (ns, id) = (ns.to_owned(), id.to_owned());
        self.read(move |c| gates::load_gate(c, &ns, &id)).await
    }

    /// Lists a gate's tickets.
    pub async fn list_tickets(
        &self,
        ns: &str,
        gate: &str,
        state: Option<lockstep_core::gate::TicketState>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<lockstep_core::gate::Ticket>, Error> {
        let (ns, gate, after) = (ns.to_owned(), gate.to_owned(), after.map(str::to_owned));
        self.read(move |c| gates::list_tickets(c, &ns, &gate, state, after.as_deref(), limit))
            .await
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    /// The setting `name`, stored as `candidate` if it has none yet.
    pub async fn setting_or_insert(&self, name: &str, candidate: &str) -> Result<String, Error> {
        let (name, candidate) = (name.to_owned(), candidate.to_owned());
        self.read(move |c| {
            c.execute(&sql::sqlite(sql::INSERT_SETTING), params![name, candidate])?;
            Ok(
                c.query_row("SELECT value FROM settings WHERE name = ?1", params![name], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }
}

type Parts = (String, String, i64, i64, i64, Option<i64>);

fn row_parts(r: &rusqlite::Row<'_>) -> rusqlite::Result<Parts> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn parts_to_record(p: Parts) -> Result<Record, Error> {
    record_from_parts(p.0, &p.1, p.2, p.3, p.4, p.5)
}

fn load(c: &Connection, ns: &str, key: &str) -> Result<Option<Record>, Error> {
    let mut stmt = c.prepare_cached(
        "SELECT key, value, version, created_at, updated_at, expires_at FROM records WHERE ns = ?1 AND key = ?2",
    )?;
    stmt.query_row(params![ns, key], row_parts)
        .optional()?
        .map(parts_to_record)
        .transpose()
}

/// Loads one stored row of any kind.
fn load_row(c: &Connection, ns: &str, key: &RowKey) -> Result<Option<Row>, Error> {
    Ok(match key {
        RowKey::Record(k) => load(c, ns, k)?.map(Row::Record),
        RowKey::Lease(name) => c
            .prepare_cached(
                "SELECT token, holder, fence, acquired_at, expires_at FROM leases WHERE ns = ?1 AND name = ?2",
            )?
            .query_row(params![ns, name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?
            .map(|(token, holder, fence, acquired_at, expires_at)| {
                codec::lease_from(name.clone(), token, holder, fence, acquired_at, expires_at)
            })
            .transpose()?
            .map(Row::Lease),
        RowKey::Waiters(name) => {
            let mut stmt = c.prepare_cached(
                "SELECT id, alive_until FROM lease_waiters WHERE ns = ?1 AND name = ?2 ORDER BY id",
            )?;
            let waiters = stmt
                .query_map(params![ns, name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .map(|r| r.map_err(Error::from).and_then(|(id, alive)| codec::waiter_from(id, alive)))
                .collect::<Result<Vec<_>, _>>()?;
            (!waiters.is_empty()).then(|| Row::Waiters {
                name: name.clone(),
                waiters,
            })
        }
        RowKey::Fence(resource) => c
            .prepare_cached("SELECT fence FROM fences WHERE ns = ?1 AND resource = ?2")?
            .query_row(params![ns, resource], |r| r.get(0))
            .optional()?
            .map(|fence| crate::stored_u64("fence", fence))
            .transpose()?
            .map(|fence| Row::Fence {
                resource: resource.clone(),
                fence,
            }),
        RowKey::FeedEntry(feed, id) => feeds::load_entry(c, ns, feed, id)?,
        RowKey::Gate(id) => gates::load_gate(c, ns, id)?.map(Row::Gate),
        RowKey::Ticket(id) => gates::load_ticket(c, ns, id)?.map(Row::Ticket),
        RowKey::GateTickets(gate) => gates::load_unfinished(c, ns, gate)?,
        RowKey::Idem(scope, key) => idempotency::load(c, ns, scope, key)?.map(Row::Idem),
        RowKey::FeedConfig(feed) => {
            feeds::load_config(c, ns, feed)?.map(|config| Row::FeedConfig { feed: feed.clone(), config })
        }
    })
}

fn persist(c: &Connection, ns: &str, effect: &Effect) -> Result<(), Error> {
    for m in &effect.mutations {
        persist_mutation(c, ns, m)?;
    }
    persist_changes(c, ns, effect)
}

fn persist_mutation(c: &Connection, ns: &str, m: &Mutation) -> Result<(), Error> {
    {
        match m {
            Mutation::Put(Row::Record(r)) => {
                let value = serde_json::to_string(&r.value).map_err(|e| Error::Internal(e.to_string()))?;
                c.prepare_cached(
                    "INSERT INTO records (ns, key, value, version, created_at, updated_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = excluded.version,
                       created_at = excluded.created_at, updated_at = excluded.updated_at,
                       expires_at = excluded.expires_at",
                )?
                .execute(params![
                    ns,
                    r.key,
                    value,
                    rev_i64(r.version)?,
                    r.created_at.0,
                    r.updated_at.0,
                    r.expires_at.map(|e| e.0)
                ])?;
            }
            Mutation::Put(Row::Lease(l)) => {
                c.prepare_cached(&sql::sqlite(sql::UPSERT_LEASES))?
                    .execute(params![
                        ns,
                        l.name,
                        l.token,
                        l.holder,
                        rev_i64(l.fence)?,
                        l.acquired_at.0,
                        l.expires_at.0
                    ])?;
            }
            Mutation::Put(Row::Waiters { name, waiters }) => {
                c.prepare_cached("DELETE FROM lease_waiters WHERE ns = ?1 AND name = ?2")?
                    .execute(params![ns, name])?;
                for w in waiters {
                    c.prepare_cached(
                        "INSERT INTO lease_waiters (ns, name, id, alive_until) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![ns, name, rev_i64(w.id)?, w.alive_until.0])?;
                }
            }
            Mutation::Put(Row::Fence { resource, fence }) => {
                c.prepare_cached(&sql::sqlite(sql::UPSERT_FENCES))?
                    .execute(params![ns, resource, rev_i64(*fence)?])?;
            }
            Mutation::Put(Row::FeedEntry(e)) => feeds::put_entry(c, ns, e)?,
            Mutation::Put(Row::FeedConfig { feed, config }) => feeds::put_config(c, ns, feed, config)?,
            Mutation::MarkRead { feed, selector } => feeds::mark_read(c, ns, feed, selector)?,
            Mutation::ResetScrubbed { feed } => feeds::reset_scrubbed(c, ns, feed)?,
            Mutation::Put(Row::Gate(g)) => gates::put_gate(c, ns, g)?,
            Mutation::Put(Row::Idem(e)) => idempotency::put(c, ns, e)?,
            Mutation::Put(Row::Ticket(t)) => gates::put_ticket(c, ns, t)?,
            Mutation::Put(Row::GateTickets { .. }) => {
                return Err(Error::Internal(
                    "a gate's ticket set is written ticket by ticket".into(),
                ))
            }
            Mutation::Delete(key) => {
                let (sql, names) = sql::delete_row(key);
                let params = std::iter::once(ns).chain(names);
                c.prepare_cached(&sql::sqlite(sql))?
                    .execute(rusqlite::params_from_iter(params))?;
            }
        }
    }
    Ok(())
}

fn persist_changes(c: &Connection, ns: &str, effect: &Effect) -> Result<(), Error> {
    for ch in &effect.changes {
        c.prepare_cached(
            "INSERT INTO changes (revision, idx, ns, kind, key, op, actor, forced, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            rev_i64(ch.revision)?,
            ch.index,
            ns,
            ch.kind.as_str(),
            ch.key,
            ch.op.as_str(),
            ch.actor,
            ch.forced,
            ch.at.0
        ])?;
    }
    Ok(())
}

/// The single writer: owns the write connection and the revision counter.
struct Writer {
    conn: Connection,
    revision: u64,
    limits: Limits,
    clock: Clock,
    batch_max: usize,
    metrics: Arc<StoreMetrics>,
}

enum Reply {
    Exec(
        oneshot::Sender<Result<Committed, Error>>,
        Result<Committed, Error>,
    ),
    Deleted(oneshot::Sender<Result<u64, Error>>, Result<u64, Error>),
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut stopping = false;
        while let Some(first) = (!stopping).then(|| rx.blocking_recv()).flatten() {
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Stop => stopping = true,
                    job => batch.push(job),
                }
                if !stopping && batch.len() < self.batch_max {
                    next = rx.try_recv().ok();
                }
            }
            if batch.is_empty() {
                continue;
            }
            self.metrics.commit_batch_size.observe(batch.len() as u64);
            let start = self.revision;
            let replies = match self.commit_batch(batch) {
                Ok(replies) => replies,
                Err((e, replies)) => {
                    // The transaction did not commit: nothing of the batch applied.
                    self.revision = start;
                    tracing::error!(error = %e, "sqlite commit failed");
                    replies
                        .into_iter()
                        .map(|r| match r {
                            Reply::Exec(tx, _) => Reply::Exec(tx, Err(Error::Unavailable(e.to_string()))),
                            Reply::Deleted(tx, _) => {
                                Reply::Deleted(tx, Err(Error::Unavailable(e.to_string())))
                            }
                        })
                        .collect()
                }
            };
            for r in replies {
                // A caller that went away does not care about its answer.
                let _ = match r {
                    Reply::Exec(tx, v) => tx.send(v).map_err(|_| ()),
                    Reply::Deleted(tx, v) => tx.send(v).map_err(|_| ()),
                };
            }
        }
    }

    /// Runs a batch in one transaction, one savepoint per job. On a commit
    /// failure returns the error with the (now void) replies.
    fn commit_batch(&mut self, batch: Vec<Job>) -> Result<Vec<Reply>, (Error, Vec<Reply>)> {
        let now = self.clock.now();
        let mut replies = Vec::with_capacity(batch.len());
        let tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                let e = Error::from(e);
                for job in batch {
                    replies.push(match job {
                        Job::Exec { reply, .. } => Reply::Exec(reply, Err(Error::Unavailable(String::new()))),
                        Job::DeleteNamespace { reply, .. } => {
                            Reply::Deleted(reply, Err(Error::Unavailable(String::new())))
                        }
                        Job::Stop => continue,
                    });
                }
                return Err((e, replies));
            }
        };
        let mut tx = tx;
        let mut revision = self.revision;
        for job in batch {
            match job {
                Job::Exec {
                    ns,
                    cmd,
                    actor,
                    completion,
                    reply,
                } => {
                    let before = revision;
                    let answer = tx.savepoint().map_err(Error::from).and_then(|sp| {
                        let stx = SqliteTx {
                            sp,
                            revision: &mut revision,
                            now,
                        };
                        let job = kernel::Job {
                            ns: &ns,
                            cmd: &cmd,
                            actor: &actor,
                            completion: completion.as_ref(),
                            limits: &self.limits,
                        };
                        kernel::complete_now(kernel::run(stx, job))
                    });
                    let answer = answer.unwrap_or_else(|e| {
                        // Rolled back: the revision it may have taken is free again.
                        revision = before;
                        Err(e)
                    });
                    replies.push(Reply::Exec(reply, answer));
                }
                Job::DeleteNamespace { ns, reply } => {
                    let result = run_in_savepoint(&mut tx, |c| {
                        let mut n = None;
                        for sql in sql::delete_namespace() {
                            let deleted = c.prepare_cached(&sql::sqlite(&sql))?.execute(params![ns])?;
                            // The first statement empties `records`: its count is the answer.
                            n.get_or_insert(deleted as u64);
                        }
                        Ok(n.unwrap_or(0))
                    });
                    replies.push(Reply::Deleted(reply, result));
                }
                // Taken out of every batch by `run`.
                Job::Stop => {}
            }
        }
        // A batch of reads and refusals writes nothing, so its commit costs no fsync.
        let saved = if revision == self.revision {
            Ok(0)
        } else {
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")
                .map_err(Error::from)
                .and_then(|mut s| Ok(s.execute(params![rev_i64(revision)?])?))
        };
        match saved.and_then(|_| tx.commit().map_err(Error::from)) {
            Ok(()) => {
                assert!(revision >= self.revision, "the revision only grows");
                self.revision = revision;
                Ok(replies)
            }
            Err(e) => Err((e, replies)),
        }
    }
}

/// One command's savepoint inside the writer's batch transaction.
struct SqliteTx<'a> {
    sp: rusqlite::Savepoint<'a>,
    /// The batch's running revision (restored by the writer on a rollback).
    revision: &'a mut u64,
    now: Millis,
}

impl WriteTx for SqliteTx<'_> {
    type Fail = Error;

    async fn lock_and_load(&mut self, ns: &str, keys: &[RowKey]) -> Result<(Snapshot, Millis), Error> {
        // The single writer holds the write lock: loading is locking.
        let mut snapshot = Snapshot::new();
        for key in keys {
            snapshot.insert(key.clone(), load_row(&self.sp, ns, key)?);
        }
        Ok((snapshot, self.now))
    }

    fn probe_revision(&self) -> u64 {
        *self.revision + 1
    }

    async fn allocate_revision(&mut self) -> Result<u64, Error> {
        *self.revision += 1;
        Ok(*self.revision)
    }

    async fn current_revision(&mut self) -> Result<u64, Error> {
        Ok(*self.revision)
    }

    async fn persist(
        &mut self,
        ns: &str,
        effect: &Effect,
        _revision: u64,
        _now: Millis,
    ) -> Result<(), Error> {
        persist(&self.sp, ns, effect)
    }

    async fn persist_mutation(&mut self, ns: &str, m: &Mutation) -> Result<(), Error> {
        persist_mutation(&self.sp, ns, m)
    }

    async fn commit(self) -> Result<(), Error> {
        Ok(self.sp.commit()?)
    }
}

/// Runs `f` inside a savepoint: released on success, rolled back on refusal.
fn run_in_savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    let sp = tx.savepoint()?;
    let out = f(&sp)?;
    sp.commit()?;
    Ok(out)
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}
