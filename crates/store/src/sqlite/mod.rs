//! Embedded backend: SQLite in WAL mode with `synchronous=FULL`. One writer
//! thread owns the only write connection and group-commits: it takes every
//! queued command (up to `batch_max`), runs each in its own savepoint inside one
//! `BEGIN IMMEDIATE` transaction, commits once (one fsync), then answers them
//! all. A refused command rolls back its savepoint only. Readers use their own
//! connections, so reads never wait for the writer. WAL checkpoints run on a
//! thread of their own (`checkpoint`), beside the writer's commits.

use crate::clock::Clock;
use crate::kernel;
use crate::query::{EntryPage, NamePage, TicketPage};
use crate::sql;
use crate::{Committed, Error, FeedPage, FeedSummary, Options, StoreMetrics, Write};
use lockstep_core::{Command, Millis, Record, RowKey, Snapshot};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

mod changes;
mod checkpoint;
mod feeds;
mod gates;
mod idempotency;
mod introspect;
mod migrations;
mod rows;
mod writer;

use rows::{load, load_row, parts_to_record, row_parts};
use writer::{Job, Writer};

/// Reads that scan (listings, the sweeper's queries) running at once on the
/// blocking pool; more wait for a turn. Each needs a connection of its own, so
/// without a bound a burst of listings opened (and closed) a connection per
/// request, and ran more SQLite threads than there are cores.
const SCANS_MAX: usize = 4;
/// Reader connections kept: the scans', plus the point reads running inline
/// on the async workers.
const READERS_MAX: usize = 16;
/// Prepared statements kept per connection.
const STATEMENTS_CACHED: usize = 256;

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
    /// Turns of the reads that scan ([`SCANS_MAX`]).
    scans: Arc<tokio::sync::Semaphore>,
    path: PathBuf,
    metrics: Arc<StoreMetrics>,
}

pub(crate) fn open_connection(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Every statement the store runs stays prepared (rusqlite keeps 16 by
    // default, fewer than the write path and the sweeper use between them).
    conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating and migrating) the database file and starts the writer.
    pub async fn open(path: &Path, opts: Options, metrics: Arc<StoreMetrics>) -> Result<Self, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = open_connection(path)?;
        migrations::migrate(&mut conn)?;
        let revision: i64 =
            conn.query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| r.get(0))?;
        let revision = u64::try_from(revision).map_err(|_| Error::Internal("negative revision".into()))?;
        let (tx, rx) = mpsc::channel(16 * 1024);
        let checkpoints = checkpoint::Checkpoints::start(&conn, path)?;
        let writer = Writer {
            checkpoints,
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
                scans: Arc::new(tokio::sync::Semaphore::new(SCANS_MAX)),
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

    /// The clock this store was given.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Applies one write command (group-committed with concurrent ones).
    pub async fn execute(&self, write: Write) -> Result<Committed, Error> {
        let (reply, rx) = oneshot::channel();
        let job = Job::Exec {
            write: Box::new(write),
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

    /// A reader connection from the pool (or a new one), unless the store is closed.
    fn checkout(inner: &Inner) -> Result<Connection, Error> {
        if inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Unavailable("the SQLite store is closed".into()));
        }
        let pooled = inner
            .readers
            .lock()
            .map_err(|_| Error::Internal("reader pool poisoned".into()))?
            .pop();
        match pooled {
            Some(c) => Ok(c),
            None => open_connection(&inner.path),
        }
    }

    /// Puts a reader connection back (the pool keeps at most `READERS_MAX`).
    fn checkin(inner: &Inner, conn: Connection) {
        if let Ok(mut pool) = inner.readers.lock() {
            if pool.len() < READERS_MAX {
                pool.push(conn);
            }
        }
    }

    /// Runs a point read on the calling thread: a lookup by primary key in
    /// WAL mode never waits for the writer and takes microseconds, less than
    /// handing it to another thread and back would cost.
    fn read_here<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let conn = Self::checkout(&self.inner)?;
        let out = f(&conn);
        Self::checkin(&self.inner, conn);
        out
    }

    /// Runs a read that may scan many rows (listings, the sweeper's queries)
    /// on the blocking pool, so it never stalls the async workers; at most
    /// [`SCANS_MAX`] at once.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        // The turn moves into the task: a caller that gives up (a timeout)
        // does not free it while the read still runs.
        let turn = self
            .inner
            .scans
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable("the SQLite store is closed".into()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let conn = Self::checkout(&inner)?;
            let out = f(&conn);
            Self::checkin(&inner, conn);
            out
        })
        .await
        .map_err(|e| Error::Internal(format!("reader task failed: {e}")))?
    }

    /// Reads one live record.
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Record>, Error> {
        let now = self.inner.clock.now();
        self.read_here(|c| Ok(load(c, ns, key)?.filter(|r| r.is_live(now))))
    }

    /// Lists live records by key.
    pub async fn list(&self, q: NamePage) -> Result<Vec<Record>, Error> {
        let clock = self.inner.clock.clone();
        self.read(move |c| {
            let now = clock.now().0;
            let r = q.range();
            let sql = format!(
                "SELECT key, value, version, created_at, updated_at, expires_at FROM records
                 WHERE ns = ?1 AND key {} ?2 AND (?3 IS NULL OR key < ?3)
                   AND (expires_at IS NULL OR expires_at > ?4)
                 ORDER BY key LIMIT ?5",
                r.op
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![q.ns, r.lower, r.upper, now, q.sql_limit()], row_parts)?;
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
        let clock = &self.inner.clock;
        self.read_here(|c| {
            let mut snapshot = Snapshot::new();
            for k in keys {
                let row = load_row(c, ns, &k)?;
                snapshot.insert(k, row);
            }
            Ok((snapshot, clock.now()))
        })
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
    pub async fn list_entries(&self, q: EntryPage) -> Result<FeedPage, Error> {
        let clock = self.inner.clock.clone();
        self.read(move |c| feeds::list_entries(c, &q, clock.now())).await
    }

    /// Feeds by name with their counts.
    pub async fn list_feeds(&self, q: NamePage) -> Result<Vec<FeedSummary>, Error> {
        let clock = self.inner.clock.clone();
        self.read(move |c| feeds::list_feeds(c, &q, clock.now())).await
    }

    /// Reads a gate.
    pub async fn get_gate(&self, ns: &str, id: &str) -> Result<Option<lockstep_core::gate::Gate>, Error> {
        self.read_here(|c| gates::load_gate(c, ns, id))
    }

    /// Lists a gate's tickets.
    pub async fn list_tickets(&self, q: TicketPage) -> Result<Vec<lockstep_core::gate::Ticket>, Error> {
        self.read(move |c| gates::list_tickets(c, &q)).await
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.read_here(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
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

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}
