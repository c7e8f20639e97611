//! Shared backend: PostgreSQL. Every write command runs in one READ COMMITTED
//! transaction that first takes transaction-scoped advisory locks on every key it
//! touches, in a fixed (sorted) order, so writers of one key serialize even when
//! the row does not exist yet; then it loads the rows and the storage clock, calls
//! the pure semantics, allocates a revision only if something is written, and
//! persists rows and change entries in one statement. Serialization failures and
//! deadlocks are retried here; a lost connection answers `Unavailable`.

use crate::clock::Clock;
use crate::kernel;
use crate::query::{EntryPage, NamePage, TicketPage};
use crate::sql;
use crate::{record_from_parts, Committed, Error, FeedPage, FeedSummary, Options, StoreMetrics, Write};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use lockstep_core::{Command, Limits, Millis, Record, RowKey, Snapshot};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

mod feeds;
mod gates;
mod idempotency;
mod migrations;
mod write;

use write::{load_snapshot, PgTx};

pub use migrations::migrate;

/// The longest a statement or transaction may take before the store answers
/// `Unavailable`: a database that stalls (connections open, no answer) must not
/// hang requests.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `$body` (which uses `$client`) under [`QUERY_TIMEOUT`]; a connection
/// that does not answer in time is taken out of the pool and closed.
macro_rules! bounded {
    ($client:ident, $body:block) => {{
        let result = tokio::time::timeout(QUERY_TIMEOUT, async $body).await;
        match result {
            Ok(r) => r,
            Err(_) => {
                drop(deadpool_postgres::Object::take($client));
                Err(Error::Unavailable(format!("PostgreSQL did not answer within {QUERY_TIMEOUT:?}")).into())
            }
        }
    }};
}

// Declared after `bounded!`, which they use.
mod changes;
mod introspect;

/// The first key of every writer mark: the advisory lock `(WRITER_MARK, pid)`
/// that a write transaction takes in shared mode on its own backend's pid, as
/// its first lock and before it allocates a revision, and holds to its commit.
/// No two backends share a mark, so writers never meet on it (there is no lock
/// every writer takes). A change-log reader (`visible_revision`) reads the
/// sequence's value, then waits for every mark held at that moment by taking
/// it exclusively for an instant: the writers that hold one may have allocated
/// a revision up to that value and not committed it yet. Once they are done,
/// every revision up to the value read has committed or never will, so it is a
/// horizon below which no change can still appear (sequence values are
/// allocated before commit and commit out of order). Writers take their mark
/// before any row lock, so a waiting reader cannot close a deadlock cycle with
/// them; readers take marks in pid order, so they cannot close one together.
pub(crate) const WRITER_MARK: i32 = 0x6c73_776d; // "lswm"

pub(crate) use crate::clock::pg_now_sql as now_sql;

const ATTEMPTS_MAX: u32 = 20;

/// A pooled connection that may be inside a write transaction (`open`): if it
/// is dropped so (a cancelled or timed-out write, a failed rollback), the
/// connection is closed instead of going back to the pool, and PostgreSQL
/// rolls the transaction back.
struct InTransaction {
    client: Option<deadpool_postgres::Object>,
    open: AtomicBool,
}

impl Drop for InTransaction {
    fn drop(&mut self) {
        if self.open.load(Ordering::SeqCst) {
            if let Some(client) = self.client.take() {
                drop(deadpool_postgres::Object::take(client));
            }
        }
    }
}

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    clock: Clock,
    limits: Arc<Limits>,
    metrics: Arc<StoreMetrics>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Why one attempt failed: retry it, or give this answer.
pub(crate) enum Failure {
    Retry(String),
    Final(Error),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code().map(|c| c.code()) {
            Some("40001" | "40P01") => Failure::Retry(e.to_string()),
            _ => Failure::Final(pg_error(e)),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Final(e)
    }
}

impl From<lockstep_core::Error> for Failure {
    fn from(e: lockstep_core::Error) -> Self {
        Failure::Final(Error::Core(e))
    }
}

/// Maps a driver error: connection trouble is `Unavailable`, the rest `Internal`.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> Error {
    let code = e.code().map(|c| c.code().to_owned());
    let text = match e.as_db_error() {
        Some(db) => format!("postgres {}: {}", db.code().code(), db.message()),
        None => format!("postgres: {e}"),
    };
    match code.as_deref() {
        None => Error::Unavailable(text),
        Some(c) if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            Error::Unavailable(text)
        }
        Some(_) => Error::Internal(text),
    }
}

/// The answer of a failure outside the retry loop (reads).
fn final_error(f: Failure) -> Error {
    match f {
        Failure::Final(e) => e,
        Failure::Retry(s) => Error::Unavailable(s),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => Error::Unavailable(format!("postgres pool: {other}")),
    }
}

pub(crate) fn parse_config(url: &str) -> Result<tokio_postgres::Config, Error> {
    let mut cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| Error::Config(format!("bad PostgreSQL URL: {e}")))?;
    cfg.connect_timeout(Duration::from_secs(5));
    cfg.application_name("lockstep");
    // Every statement is prepared once per connection and written so that its
    // generic plan looks rows up by key (see `write::load_snapshot`): without
    // this, PostgreSQL plans lookups by an array of keys again on every call
    // (their custom plans look cheaper than the generic one), which cost more
    // CPU than running them.
    let options = match cfg.get_options() {
        Some(o) if !o.trim().is_empty() => format!("{o} -c plan_cache_mode=force_generic_plan"),
        _ => "-c plan_cache_mode=force_generic_plan".to_owned(),
    };
    cfg.options(options);
    Ok(cfg)
}

/// The advisory lock key of one object: 64 bits of SHA-256 over kind, namespace
/// and key. Stable across processes and versions; a collision only serializes two
/// unrelated keys.
pub fn lock_id(kind: &str, ns: &str, key: &str) -> i64 {
    let mut h = Sha256::new();
    for part in [kind, ns, key] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

type Parts = (String, String, i64, i64, i64, Option<i64>);

fn row_to_record(row: &tokio_postgres::Row, at: usize) -> Result<Record, Error> {
    let p: Parts = (
        row.try_get(at).map_err(pg_error)?,
        row.try_get(at + 1).map_err(pg_error)?,
        row.try_get(at + 2).map_err(pg_error)?,
        row.try_get(at + 3).map_err(pg_error)?,
        row.try_get(at + 4).map_err(pg_error)?,
        row.try_get(at + 5).map_err(pg_error)?,
    );
    record_from_parts(p.0, &p.1, p.2, p.3, p.4, p.5)
}

impl PgStore {
    /// Connects, migrates and builds the pool.
    pub async fn open(url: &str, opts: Options, metrics: Arc<StoreMetrics>) -> Result<Self, Error> {
        migrate(url).await?;
        let cfg = parse_config(url)?;
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(opts.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::Config(format!("postgres pool: {e}")))?;
        Ok(PgStore {
            pool,
            clock: opts.clock,
            limits: Arc::new(opts.limits),
            metrics,
        })
    }

    /// Storage metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// Closes the pool: open connections close, later calls answer `Unavailable`.
    pub fn close(&self) {
        self.pool.close();
    }

    /// The pool's size (connections open), idle connections and callers
    /// waiting for one.
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.waiting)
    }

    /// The clock this store was given.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The manual clock's time, bound where SQL reads the storage clock.
    fn fixed_now(&self) -> Option<i64> {
        self.clock.fixed().map(|m| m.0)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Applies one write command (and completes its idempotency entry in the
    /// same transaction), retrying serialization failures and deadlocks.
    pub async fn execute(&self, write: Write) -> Result<Committed, Error> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS_MAX {
            match self.attempt(&write).await {
                Ok(c) => return Ok(c),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(why)) => {
                    last = why;
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) + 1)).await;
                }
            }
        }
        Err(Error::Unavailable(format!(
            "gave up after {ATTEMPTS_MAX} retries: {last}"
        )))
    }

    async fn attempt(&self, write: &Write) -> Result<Committed, Failure> {
        let held = InTransaction {
            client: Some(self.client().await?),
            open: AtomicBool::new(false),
        };
        let Some(client) = held.client.as_ref() else {
            return Err(Error::Internal("the pooled connection went away".into()).into());
        };
        let tx = PgTx {
            client,
            fixed_now: self.fixed_now(),
            open: &held.open,
        };
        let run = kernel::run(tx, kernel::Job::of(write, &self.limits));
        let Ok(result) = tokio::time::timeout(QUERY_TIMEOUT, run).await else {
            // `held` closes the connection (the transaction may still be open).
            held.open.store(true, Ordering::SeqCst);
            return Err(
                Error::Unavailable(format!("PostgreSQL did not answer within {QUERY_TIMEOUT:?}")).into(),
            );
        };
        if held.open.load(Ordering::SeqCst) {
            // The kernel gave up before committing: roll back before the
            // connection goes back to the pool (else `held` closes it).
            if client.batch_execute("ROLLBACK").await.is_ok() {
                held.open.store(false, Ordering::SeqCst);
            }
        }
        let answer = result?;
        self.metrics.commit_batch_size.observe(1);
        answer.map_err(Failure::Final)
    }

    /// The highest revision below which every change is visible (committed or
    /// never to be): waits for the writers in flight (see [`WRITER_MARK`]).
    pub async fn visible_revision(&self) -> Result<u64, Error> {
        let client = self.client().await?;
        bounded!(client, {
            let read = client
                .prepare_cached(
                    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep_revision",
                )
                .await
                .map_err(pg_error)?;
            // Autocommit: each mark is released as soon as the statement ends.
            let wait = client
                .prepare_cached(
                    "SELECT count(pg_advisory_xact_lock($1::int4, m.pid)) FROM (
                       SELECT DISTINCT objid::int8::int4 AS pid FROM pg_locks
                       WHERE locktype = 'advisory' AND granted AND objsubid = 2
                         AND classid = $1::int4::oid
                         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       ORDER BY 1
                     ) AS m",
                )
                .await
                .map_err(pg_error)?;
            // Pipelined, in this order: the value first, then the marks held
            // after it was read.
            let (value, waited) = tokio::join!(
                client.query_one(&read, &[]),
                client.query_one(&wait, &[&WRITER_MARK])
            );
            waited.map_err(pg_error)?;
            let rev: i64 = value.map_err(pg_error)?.try_get(0).map_err(pg_error)?;
            crate::stored_u64("revision", rev)
        })
    }

    /// Reads a lease's stored row and the storage clock.
    pub async fn read_rows(&self, ns: &str, keys: Vec<RowKey>) -> Result<(Snapshot, Millis), Error> {
        let mut client = self.client().await?;
        bounded!(client, {
            let tx = client.transaction().await.map_err(pg_error)?;
            let now = feeds::storage_now(&tx, self.fixed_now())
                .await
                .map_err(final_error)?;
            let snapshot = load_snapshot(&tx, ns, &keys).await.map_err(final_error)?;
            Ok((snapshot, now))
        })
    }

    /// Namespaces that hold anything, in byte order, after `after`.
    pub async fn namespaces(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, Error> {
        let sql = format!(
            r#"SELECT ns FROM ({}) t WHERE $1::text IS NULL OR ns > $1::text COLLATE "C"
               ORDER BY ns COLLATE "C" LIMIT $2"#,
            crate::schema::namespaces_union()
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        bounded!(client, {
            let rows = client.query(&sql, &[&after, &limit]).await.map_err(pg_error)?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0).map_err(pg_error))
                .collect()
        })
    }

    /// One page of a feed's visible entries with its unread count.
    pub async fn list_entries(&self, q: EntryPage) -> Result<FeedPage, Error> {
        let mut client = self.client().await?;
        bounded!(client, {
            feeds::list_entries(&mut client, &q, self.fixed_now())
                .await
                .map_err(final_error)
        })
    }

    /// Feeds by name with their counts.
    pub async fn list_feeds(&self, q: NamePage) -> Result<Vec<FeedSummary>, Error> {
        let mut client = self.client().await?;
        bounded!(client, {
            feeds::list_feeds(&mut client, &q, self.fixed_now())
                .await
                .map_err(final_error)
        })
    }

    /// Reads a gate.
    pub async fn get_gate(&self, ns: &str, id: &str) -> Result<Option<lockstep_core::gate::Gate>, Error> {
        let client = self.client().await?;
        bounded!(client, {
            Ok(gates::load_gates(&client, ns, &[id])
                .await
                .map_err(final_error)?
                .into_iter()
                .next())
        })
    }

    /// Lists a gate's tickets.
    pub async fn list_tickets(&self, q: TicketPage) -> Result<Vec<lockstep_core::gate::Ticket>, Error> {
        let client = self.client().await?;
        bounded!(client, {
            gates::list_tickets(&client, &q).await.map_err(final_error)
        })
    }

    /// Reads one live record (storage clock).
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Record>, Error> {
        let client = self.client().await?;
        bounded!(client, {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT key, value, version, created_at, updated_at, expires_at FROM records
                     WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {})",
                    now_sql(3)
                ))
                .await
                .map_err(pg_error)?;
            let row = client
                .query_opt(&stmt, &[&ns, &key, &self.fixed_now()])
                .await
                .map_err(pg_error)?;
            row.map(|r| row_to_record(&r, 0)).transpose()
        })
    }

    /// Lists live records by key.
    pub async fn list(&self, q: NamePage) -> Result<Vec<Record>, Error> {
        let r = q.range();
        let client = self.client().await?;
        bounded!(client, {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT key, value, version, created_at, updated_at, expires_at FROM records
                     WHERE ns = $1 AND key {} $2 AND ($3::text IS NULL OR key < $3::text)
                       AND (expires_at IS NULL OR expires_at > {})
                     ORDER BY key LIMIT $4",
                    r.op,
                    now_sql(5)
                ))
                .await
                .map_err(pg_error)?;
            let rows = client
                .query(
                    &stmt,
                    &[&q.ns, &r.lower, &r.upper, &q.sql_limit(), &self.fixed_now()],
                )
                .await
                .map_err(pg_error)?;
            rows.iter().map(|r| row_to_record(r, 0)).collect()
        })
    }

    /// Up to `batch` sweeper commands: expired records to purge and expired
    /// leases to free, each with its namespace.
    pub async fn expired(&self, batch: usize) -> Result<Vec<(String, Command)>, Error> {
        let client = self.client().await?;
        bounded!(client, {
            let limit = i64::try_from(batch).unwrap_or(i64::MAX);
            let records = client
                .prepare_cached(&format!(
                    "SELECT ns, key FROM records WHERE expires_at IS NOT NULL AND expires_at <= {}
                     ORDER BY expires_at LIMIT $1",
                    now_sql(2)
                ))
                .await
                .map_err(pg_error)?;
            let leases = client
                .prepare_cached(&format!(
                    "SELECT ns, name FROM leases WHERE token IS NOT NULL AND expires_at <= {}
                     ORDER BY expires_at LIMIT $1",
                    now_sql(2)
                ))
                .await
                .map_err(pg_error)?;
            let fixed = self.fixed_now();
            let mut out = Vec::new();
            for r in client
                .query(&records, &[&limit, &fixed])
                .await
                .map_err(pg_error)?
            {
                let key = r.try_get(1).map_err(pg_error)?;
                out.push((r.try_get(0).map_err(pg_error)?, Command::Expire { key }));
            }
            for r in client.query(&leases, &[&limit, &fixed]).await.map_err(pg_error)? {
                let name = r.try_get(1).map_err(pg_error)?;
                out.push((r.try_get(0).map_err(pg_error)?, Command::ExpireLease { name }));
            }
            let now = feeds::storage_now(&client, fixed).await.map_err(final_error)?;
            let mut reads = feeds::Retention(&client);
            let retention = crate::sweep::retention(&mut reads, batch, now);
            out.extend(retention.await.map_err(final_error)?);
            out.extend(idempotency::expired(&client, batch, fixed).await?);
            Ok(out)
        })
    }

    /// Removes every record of a namespace.
    pub async fn delete_namespace(&self, ns: &str) -> Result<u64, Error> {
        let mut client = self.client().await?;
        bounded!(client, {
            let tx = client.transaction().await.map_err(pg_error)?;
            let mut n = None;
            for sql in sql::delete_namespace() {
                let deleted = tx.execute(&sql, &[&ns]).await.map_err(pg_error)?;
                // The first statement empties `records`: its count is the answer.
                n.get_or_insert(deleted);
            }
            let n = n.unwrap_or(0);
            tx.commit().await.map_err(pg_error)?;
            Ok(n)
        })
    }

    /// The setting `name`, stored as `candidate` if it has none yet: every
    /// instance over the database reads the first one stored.
    pub async fn setting_or_insert(&self, name: &str, candidate: &str) -> Result<String, Error> {
        let client = self.client().await?;
        bounded!(client, {
            client
                .execute(sql::INSERT_SETTING, &[&name, &candidate])
                .await
                .map_err(pg_error)?;
            let row = client
                .query_one("SELECT value FROM settings WHERE name = $1", &[&name])
                .await
                .map_err(pg_error)?;
            row.try_get::<_, String>(0).map_err(pg_error)
        })
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        let client = self.client().await?;
        bounded!(client, {
            client.query_one("SELECT 1", &[]).await.map_err(pg_error)?;
            Ok(())
        })
    }
}
