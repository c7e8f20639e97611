//! Shared backend: PostgreSQL. Every write command runs in one READ COMMITTED
//! transaction that first takes transaction-scoped advisory locks on every key it
//! touches, in a fixed (sorted) order, so writers of one key serialize even when
//! the row does not exist yet; then it loads the rows and the storage clock, calls
//! the pure semantics, allocates a revision only if something is written, and
//! persists rows and change entries in one statement. Serialization failures and
//! deadlocks are retried here; a lost connection answers `Unavailable`.

use crate::clock::Clock;
use crate::codec;
use crate::kernel::{self, WriteTx};
use crate::sql;
use crate::{
    record_from_parts, rev_i64, Committed, Completion, Error, FeedPage, FeedSummary, Options, StoreMetrics,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use lockstep_core::{Command, Effect, Limits, Millis, Mutation, Record, Row, RowKey, Snapshot};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

mod feeds;
mod gates;
mod idempotency;

/// Versioned schema migrations; `lockstep_schema_migrations` records those applied.
const MIGRATIONS: &[&str] = &[
    // 1: records, the revision sequence and the change log.
    r#"CREATE SEQUENCE lockstep_revision AS bigint MINVALUE 1;
       CREATE TABLE records (
         ns text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, value text NOT NULL,
         version bigint NOT NULL, created_at bigint NOT NULL, updated_at bigint NOT NULL,
         expires_at bigint, PRIMARY KEY (ns, key));
       CREATE INDEX records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;
       CREATE TABLE changes (
         revision bigint NOT NULL, idx int NOT NULL, ns text NOT NULL, kind text NOT NULL,
         key text COLLATE "C" NOT NULL, op text NOT NULL, actor text NOT NULL,
         forced boolean NOT NULL, at bigint NOT NULL, PRIMARY KEY (revision, idx));"#,
    // 2: leases, their waiter queues and recorded fences.
    r#"CREATE TABLE leases (
         ns text COLLATE "C" NOT NULL, name text COLLATE "C" NOT NULL, token text, holder text,
         fence bigint NOT NULL, acquired_at bigint NOT NULL, expires_at bigint NOT NULL,
         PRIMARY KEY (ns, name));
       CREATE INDEX leases_expiry ON leases (expires_at) WHERE token IS NOT NULL;
       CREATE TABLE lease_waiters (
         ns text COLLATE "C" NOT NULL, name text COLLATE "C" NOT NULL, id bigint NOT NULL,
         alive_until bigint NOT NULL, PRIMARY KEY (ns, name, id));
       CREATE TABLE fences (
         ns text COLLATE "C" NOT NULL, resource text COLLATE "C" NOT NULL, fence bigint NOT NULL,
         PRIMARY KEY (ns, resource));"#,
    // 3: feeds.
    r#"CREATE TABLE feed_entries (
         ns text COLLATE "C" NOT NULL, feed text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL,
         at bigint NOT NULL, data text NOT NULL, revision bigint NOT NULL,
         read boolean NOT NULL DEFAULT false, scrubbed boolean NOT NULL DEFAULT false,
         PRIMARY KEY (ns, feed, id));
       CREATE INDEX feed_entries_order ON feed_entries (ns, feed, at, id);
       CREATE TABLE feed_configs (
         ns text COLLATE "C" NOT NULL, feed text COLLATE "C" NOT NULL, config text NOT NULL,
         PRIMARY KEY (ns, feed));"#,
    // 4: gates and tickets.
    r#"CREATE TABLE gates (
         ns text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL, state text NOT NULL, epoch bigint NOT NULL,
         pending text NOT NULL, meta text NOT NULL, created_at bigint NOT NULL, updated_at bigint NOT NULL,
         PRIMARY KEY (ns, id));
       CREATE TABLE tickets (
         ns text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL, gate text COLLATE "C" NOT NULL,
         epoch bigint NOT NULL, state text NOT NULL, meta text NOT NULL, recovered boolean NOT NULL,
         finalized_revision bigint, created_at bigint NOT NULL, updated_at bigint NOT NULL,
         PRIMARY KEY (ns, id));
       CREATE INDEX tickets_by_gate ON tickets (ns, gate, id);"#,
    // 5: idempotency keys.
    r#"CREATE TABLE idempotency (
         ns text COLLATE "C" NOT NULL, scope text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL,
         fingerprint text NOT NULL, token text NOT NULL, response text, locked_until bigint NOT NULL,
         expires_at bigint NOT NULL, PRIMARY KEY (ns, scope, key));
       CREATE INDEX idempotency_expiry ON idempotency (expires_at);"#,
    // 6: the change-log compaction horizon (the highest revision deleted).
    r#"CREATE TABLE change_horizon (id int PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL);
       INSERT INTO change_horizon (id, revision) VALUES (1, 0);"#,
    // 7: the revision of each gate's and ticket's last write.
    r#"ALTER TABLE gates ADD COLUMN revision bigint NOT NULL DEFAULT 0;
       ALTER TABLE tickets ADD COLUMN revision bigint NOT NULL DEFAULT 0;
       UPDATE tickets SET revision = finalized_revision WHERE finalized_revision IS NOT NULL;"#,
    // 8: server-wide settings (the generated capability signing key).
    r#"CREATE TABLE settings (name text COLLATE "C" PRIMARY KEY, value text NOT NULL);"#,
];

/// Session advisory lock held while migrating, so concurrent starts apply each
/// migration once.
const MIGRATION_LOCK: i64 = 0x6c6f_636b_7374_6570; // "lockstep"

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

/// The visibility gate. Every write transaction holds it in shared mode from its
/// first statement to its commit (so writers never wait for each other on it,
/// and their commits still group); a change-log reader takes it exclusively for
/// an instant (`visible_revision`): once it holds it, every revision allocated
/// so far has committed or rolled back, so the sequence's value is a horizon
/// below which no change can still appear. Sequence values are allocated before
/// commit and commit out of order; this is what keeps watch from ever missing
/// one. Writers take it before any row lock, so a waiting reader cannot close a
/// deadlock cycle with them.
pub(crate) const VISIBILITY_GATE: i64 = 0x6c73_7265_7669_7369; // "lsrevisi"

/// The storage clock in SQL, with parameter `$n`: a manual clock's time when
/// bound (tests), else PostgreSQL's `clock_timestamp()` (so that every
/// instance over one database agrees).
pub(crate) fn now_sql(n: usize) -> String {
    format!("coalesce(${n}::int8, (extract(epoch from clock_timestamp()) * 1000)::int8)")
}
const ATTEMPTS_MAX: u32 = 20;

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

/// Applies every pending migration over a dedicated connection (its session lock
/// is released when it closes, whatever happens).
pub async fn migrate(url: &str) -> Result<usize, Error> {
    let cfg = parse_config(url)?;
    let (mut client, conn) = cfg.connect(NoTls).await.map_err(pg_error)?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        // NOTICEs ("relation … already exists, skipping") are not news.
        client
            .batch_execute("SET client_min_messages TO warning")
            .await
            .map_err(pg_error)?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_error)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS lockstep_schema_migrations (
                   version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(pg_error)?;
        let applied: i32 = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM lockstep_schema_migrations",
                &[],
            )
            .await
            .map_err(pg_error)?
            .try_get(0)
            .map_err(pg_error)?;
        // `coalesce`: a database without migrations has applied version 0.
        let applied = usize::try_from(applied)
            .map_err(|_| Error::Internal(format!("stored migration version {applied} is negative")))?;
        let mut ran = 0;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = client.transaction().await.map_err(pg_error)?;
            tx.batch_execute(sql).await.map_err(pg_error)?;
            let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
            tx.execute(
                "INSERT INTO lockstep_schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)?;
            ran += 1;
        }
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_error)?;
        Ok::<usize, Error>(ran)
    }
    .await;
    drop(client);
    let _ = driver.await;
    let ran = result?;
    if ran > 0 {
        tracing::info!(migrations = ran, "applied PostgreSQL migrations");
    }
    Ok(ran)
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

    /// The manual clock's time, bound where SQL reads the storage clock.
    fn fixed_now(&self) -> Option<i64> {
        self.clock.fixed().map(|m| m.0)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Applies one write command (and completes its idempotency entry in the
    /// same transaction), retrying serialization failures and deadlocks.
    pub async fn execute(
        &self,
        ns: &str,
        cmd: Command,
        actor: &str,
        completion: Option<Completion>,
    ) -> Result<Committed, Error> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS_MAX {
            match self.attempt(ns, &cmd, actor, completion.as_ref()).await {
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

    async fn attempt(
        &self,
        ns: &str,
        cmd: &Command,
        actor: &str,
        completion: Option<&Completion>,
    ) -> Result<Committed, Failure> {
        let mut client = self.client().await?;
        bounded!(client, {
            let tx = PgTx {
                tx: client.transaction().await?,
                fixed_now: self.fixed_now(),
            };
            let job = kernel::Job {
                ns,
                cmd,
                actor,
                completion,
                limits: &self.limits,
            };
            let answer = kernel::run(tx, job).await?;
            self.metrics.commit_batch_size.observe(1);
            answer.map_err(Failure::Final)
        })
    }

    /// The highest revision below which every change is visible (committed or
    /// never to be): waits for the writers in flight (see [`VISIBILITY_GATE`]).
    pub async fn visible_revision(&self) -> Result<u64, Error> {
        let mut client = self.client().await?;
        bounded!(client, {
            let tx = client.transaction().await.map_err(pg_error)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&VISIBILITY_GATE])
                .await
                .map_err(pg_error)?;
            let rev: i64 = tx
                .query_one(
                    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep_revision",
                    &[],
                )
                .await
                .map_err(pg_error)?
                .try_get(0)
                .map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)?;
            crate::stored_u64("revision", rev)
        })
    }

    /// Reads a lease's stored row and the storage clock.
    pub async fn read_rows(&self, ns: &str, keys: Vec<RowKey>) -> Result<(Snapshot, Millis), Error> {
        let mut client = self.client().await?;
        bounded!(client, {
            let tx = client.transaction().await.map_err(pg_error)?;
            load_snapshot(&tx, ns, &keys, self.fixed_now())
                .await
                .map_err(final_error)
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
    pub async fn list_entries(
        &self,
        ns: &str,
        feed: &str,
        desc: bool,
        after: Option<(Millis, String)>,
        limit: usize,
    ) -> Result<FeedPage, Error> {
        let mut client = self.client().await?;
        bounded!(client, {
            feeds::list_entries(
                &mut client,
                ns,
                feed,
                desc,
                after.as_ref(),
                limit,
                self.fixed_now(),
            )
            .await
            .map_err(final_error)
        })
    }

    /// Feeds by name with their counts.
    pub async fn list_feeds(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FeedSummary>, Error> {
        let mut client = self.client().await?;
        bounded!(client, {
            feeds::list_feeds(&mut client, ns, prefix, after, limit, self.fixed_now())
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
    pub async fn list_tickets(
        &self,
        ns: &str,
        gate: &str,
        state: Option<lockstep_core::gate::TicketState>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<lockstep_core::gate::Ticket>, Error> {
        let client = self.client().await?;
        bounded!(client, {
            gates::list_tickets(&client, ns, gate, state, after, limit)
                .await
                .map_err(final_error)
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
    pub async fn list(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        let (lower_op, lower) = match after {
            Some(a) if a >= prefix => (">", a.to_owned()),
            _ => (">=", prefix.to_owned()),
        };
        let upper = lockstep_core::names::prefix_upper_bound(prefix);
        let client = self.client().await?;
        bounded!(client, {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT key, value, version, created_at, updated_at, expires_at FROM records
                     WHERE ns = $1 AND key {lower_op} $2 AND ($3::text IS NULL OR key < $3::text)
                       AND (expires_at IS NULL OR expires_at > {})
                     ORDER BY key LIMIT $4",
                    now_sql(5)
                ))
                .await
                .map_err(pg_error)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = client
                .query(&stmt, &[&ns, &lower, &upper, &limit, &self.fixed_now()])
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

/// One command's transaction.
struct PgTx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    fixed_now: Option<i64>,
}

impl WriteTx for PgTx<'_> {
    type Fail = Failure;

    async fn lock_and_load(&mut self, ns: &str, keys: &[RowKey]) -> Result<(Snapshot, Millis), Failure> {
        let mut locks: Vec<i64> = keys
            .iter()
            .filter_map(RowKey::lock)
            .map(|(kind, name)| lock_id(kind, ns, &name))
            .collect();
        locks.sort_unstable();
        locks.dedup();
        // The shared visibility gate first, then the rows' locks in order
        // (see `VISIBILITY_GATE`).
        let lock = self
            .tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(x)
                 FROM (SELECT pg_advisory_xact_lock_shared($1)) AS gate, unnest($2::int8[]) AS x",
            )
            .await?;
        // Pipelined: the load is sent right behind the locks, and PostgreSQL
        // runs it only once they are held (one round trip instead of two).
        let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&VISIBILITY_GATE, &locks];
        let (locked, loaded) = tokio::join!(
            self.tx.query(&lock, &lock_params),
            load_snapshot(&self.tx, ns, keys, self.fixed_now)
        );
        locked?;
        loaded
    }

    fn probe_revision(&self) -> u64 {
        u64::MAX
    }

    async fn allocate_revision(&mut self) -> Result<u64, Failure> {
        let next = self
            .tx
            .prepare_cached("SELECT nextval('lockstep_revision')")
            .await?;
        let rev: i64 = self.tx.query_one(&next, &[]).await?.try_get(0)?;
        Ok(crate::stored_u64("revision", rev)?)
    }

    async fn current_revision(&mut self) -> Result<u64, Failure> {
        let current = self
            .tx
            .prepare_cached("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep_revision")
            .await?;
        let rev: i64 = self.tx.query_one(&current, &[]).await?.try_get(0)?;
        Ok(crate::stored_u64("revision", rev)?)
    }

    async fn persist(
        &mut self,
        ns: &str,
        effect: &Effect,
        revision: u64,
        now: Millis,
    ) -> Result<(), Failure> {
        persist(&self.tx, ns, effect, revision, now).await
    }

    async fn persist_mutation(&mut self, ns: &str, m: &Mutation) -> Result<(), Failure> {
        persist_row(&self.tx, ns, m).await
    }

    async fn commit(self) -> Result<(), Failure> {
        Ok(self.tx.commit().await?)
    }
}

/// Loads the rows of `keys` (locked by the caller) and the storage clock.
async fn load_snapshot(
    tx: &deadpool_postgres::Transaction<'_>,
    ns: &str,
    keys: &[RowKey],
    fixed_now: Option<i64>,
) -> Result<(Snapshot, Millis), Failure> {
    let mut snapshot: Snapshot = keys.iter().map(|k| (k.clone(), None)).collect();
    let of = |f: fn(&RowKey) -> Option<&str>| -> Vec<&str> { keys.iter().filter_map(f).collect() };
    let record_keys = of(|k| if let RowKey::Record(n) = k { Some(n) } else { None });
    let lease_names = of(|k| if let RowKey::Lease(n) = k { Some(n) } else { None });
    let waiter_names = of(|k| if let RowKey::Waiters(n) = k { Some(n) } else { None });
    let resources = of(|k| if let RowKey::Fence(n) = k { Some(n) } else { None });
    let feed_configs = of(|k| {
        if let RowKey::FeedConfig(n) = k {
            Some(n)
        } else {
            None
        }
    });
    let mut entries_by_feed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in keys {
        if let RowKey::FeedEntry(f, id) = k {
            entries_by_feed.entry(f.as_str()).or_default().push(id.as_str());
        }
    }
    // The clock is read after the locks are held, in the same statement as the
    // records, so `now` never predates what the previous holder of a lock wrote.
    let load = tx
        .prepare_cached(&format!(
            "SELECT {}, r.key, r.value, r.version, r.created_at, r.updated_at, r.expires_at
             FROM (SELECT 1) AS one
             LEFT JOIN records r ON r.ns = $1 AND r.key = ANY($2::text[])",
            now_sql(3)
        ))
        .await?;
    let mut now = Millis(0);
    for row in tx.query(&load, &[&ns, &record_keys, &fixed_now]).await? {
        now = Millis(row.try_get(0)?);
        if row.try_get::<_, Option<String>>(1)?.is_some() {
            let r = row_to_record(&row, 1)?;
            snapshot.insert(RowKey::Record(r.key.clone()), Some(Row::Record(r)));
        }
    }
    if !lease_names.is_empty() {
        let stmt = tx
            .prepare_cached(
                "SELECT name, token, holder, fence, acquired_at, expires_at FROM leases
                 WHERE ns = $1 AND name = ANY($2::text[])",
            )
            .await?;
        for row in tx.query(&stmt, &[&ns, &lease_names]).await? {
            let lease = codec::lease_from(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
            )?;
            snapshot.insert(RowKey::Lease(lease.name.clone()), Some(Row::Lease(lease)));
        }
    }
    if !waiter_names.is_empty() {
        let stmt = tx
            .prepare_cached(
                "SELECT name, id, alive_until FROM lease_waiters WHERE ns = $1 AND name = ANY($2::text[])
                 ORDER BY name, id",
            )
            .await?;
        for row in tx.query(&stmt, &[&ns, &waiter_names]).await? {
            let name: String = row.try_get(0)?;
            let w = codec::waiter_from(row.try_get(1)?, row.try_get(2)?)?;
            let entry = snapshot.entry(RowKey::Waiters(name.clone())).or_insert(None);
            match entry {
                Some(Row::Waiters { waiters, .. }) => waiters.push(w),
                _ => {
                    *entry = Some(Row::Waiters {
                        name,
                        waiters: vec![w],
                    })
                }
            }
        }
    }
    if !resources.is_empty() {
        let stmt = tx
            .prepare_cached("SELECT resource, fence FROM fences WHERE ns = $1 AND resource = ANY($2::text[])")
            .await?;
        for row in tx.query(&stmt, &[&ns, &resources]).await? {
            let resource: String = row.try_get(0)?;
            let fence = crate::stored_u64("fence", row.try_get(1)?)?;
            snapshot.insert(
                RowKey::Fence(resource.clone()),
                Some(Row::Fence { resource, fence }),
            );
        }
    }
    for (feed, ids) in entries_by_feed {
        for e in feeds::load_entries(tx, ns, feed, &ids).await? {
            snapshot.insert(
                RowKey::FeedEntry(e.feed.clone(), e.id.clone()),
                Some(Row::FeedEntry(e)),
            );
        }
    }
    if !feed_configs.is_empty() {
        for (feed, config) in feeds::load_configs(tx, ns, &feed_configs).await? {
            snapshot.insert(
                RowKey::FeedConfig(feed.clone()),
                Some(Row::FeedConfig { feed, config }),
            );
        }
    }
    let gate_ids = of(|k| if let RowKey::Gate(n) = k { Some(n) } else { None });
    if !gate_ids.is_empty() {
        for g in gates::load_gates(tx, ns, &gate_ids).await? {
            snapshot.insert(RowKey::Gate(g.id.clone()), Some(Row::Gate(g)));
        }
    }
    let ticket_ids = of(|k| if let RowKey::Ticket(n) = k { Some(n) } else { None });
    if !ticket_ids.is_empty() {
        for t in gates::load_tickets(tx, ns, &ticket_ids).await? {
            snapshot.insert(RowKey::Ticket(t.id.clone()), Some(Row::Ticket(t)));
        }
    }
    for gate in of(|k| {
        if let RowKey::GateTickets(n) = k {
            Some(n)
        } else {
            None
        }
    }) {
        let tickets = gates::load_unfinished(tx, ns, gate).await?;
        snapshot.insert(
            RowKey::GateTickets(gate.to_owned()),
            Some(Row::GateTickets {
                gate: gate.to_owned(),
                tickets,
            }),
        );
    }
    let idem_keys: Vec<(&str, &str)> = keys
        .iter()
        .filter_map(|k| {
            if let RowKey::Idem(scope, key) = k {
                Some((scope.as_str(), key.as_str()))
            } else {
                None
            }
        })
        .collect();
    if !idem_keys.is_empty() {
        for e in idempotency::load(tx, ns, &idem_keys).await? {
            snapshot.insert(RowKey::Idem(e.scope.clone(), e.key.clone()), Some(Row::Idem(e)));
        }
    }
    Ok((snapshot, now))
}

/// Writes the rows and change entries of `effect`: records and changes in one
/// statement, the other rows (single-row writes) one statement each.
async fn persist(
    tx: &deadpool_postgres::Transaction<'_>,
    ns: &str,
    effect: &Effect,
    revision: u64,
    now: Millis,
) -> Result<(), Failure> {
    let mut up_keys = Vec::new();
    let mut up_values = Vec::new();
    let mut up_versions = Vec::new();
    let mut up_created = Vec::new();
    let mut up_updated = Vec::new();
    let mut up_expires: Vec<Option<i64>> = Vec::new();
    let mut del_keys = Vec::new();
    for m in &effect.mutations {
        match m {
            Mutation::Put(Row::Record(r)) => {
                up_keys.push(r.key.as_str());
                up_values.push(serde_json::to_string(&r.value).map_err(|e| Error::Internal(e.to_string()))?);
                up_versions.push(rev_i64(r.version)?);
                up_created.push(r.created_at.0);
                up_updated.push(r.updated_at.0);
                up_expires.push(r.expires_at.map(|e| e.0));
            }
            Mutation::Delete(RowKey::Record(k)) => del_keys.push(k.as_str()),
            other => persist_row(tx, ns, other).await?,
        }
    }
    if up_keys.is_empty() && del_keys.is_empty() && effect.changes.is_empty() {
        return Ok(());
    }
    let idx: Vec<i32> = effect
        .changes
        .iter()
        .map(|c| i32::try_from(c.index).unwrap_or(i32::MAX))
        .collect();
    let kinds: Vec<&str> = effect.changes.iter().map(|c| c.kind.as_str()).collect();
    let ckeys: Vec<&str> = effect.changes.iter().map(|c| c.key.as_str()).collect();
    let ops: Vec<&str> = effect.changes.iter().map(|c| c.op.as_str()).collect();
    let forced: Vec<bool> = effect.changes.iter().map(|c| c.forced).collect();
    // Each change names its own actor: an expiry logged inside a caller's
    // acquire is the system's, not the caller's.
    let actors: Vec<&str> = effect.changes.iter().map(|c| c.actor.as_str()).collect();
    let stmt = tx
        .prepare_cached(
            "WITH up AS (
               INSERT INTO records (ns, key, value, version, created_at, updated_at, expires_at)
               SELECT $1::text, u.* FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[]) AS u
               ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = excluded.version,
                 created_at = excluded.created_at, updated_at = excluded.updated_at, expires_at = excluded.expires_at
               RETURNING 1
             ), del AS (
               DELETE FROM records WHERE ns = $1::text AND key = ANY($8::text[]) RETURNING 1
             ), ch AS (
               INSERT INTO changes (revision, idx, ns, kind, key, op, actor, forced, at)
               SELECT $9::int8, c.idx, $1::text, c.kind, c.key, c.op, c.actor, c.forced, $11::int8
               FROM unnest($12::int4[], $13::text[], $14::text[], $15::text[], $16::bool[], $10::text[])
                 AS c(idx, kind, key, op, forced, actor)
               RETURNING 1
             )
             SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM del), (SELECT count(*) FROM ch)",
        )
        .await?;
    let rev = rev_i64(revision)?;
    tx.query_one(
        &stmt,
        &[
            &ns,
            &up_keys,
            &up_values,
            &up_versions,
            &up_created,
            &up_updated,
            &up_expires,
            &del_keys,
            &rev,
            &actors,
            &now.0,
            &idx,
            &kinds,
            &ckeys,
            &ops,
            &forced,
        ],
    )
    .await?;
    Ok(())
}

/// Writes one non-record row.
async fn persist_row(tx: &deadpool_postgres::Transaction<'_>, ns: &str, m: &Mutation) -> Result<(), Failure> {
    match m {
        Mutation::Put(Row::Lease(l)) => {
            let stmt = tx.prepare_cached(sql::UPSERT_LEASES).await?;
            let fence = rev_i64(l.fence)?;
            tx.execute(
                &stmt,
                &[
                    &ns,
                    &l.name,
                    &l.token,
                    &l.holder,
                    &fence,
                    &l.acquired_at.0,
                    &l.expires_at.0,
                ],
            )
            .await?;
        }
        Mutation::Put(Row::Waiters { name, waiters }) => {
            let ids = waiters
                .iter()
                .map(|w| rev_i64(w.id))
                .collect::<Result<Vec<i64>, Error>>()?;
            let alive: Vec<i64> = waiters.iter().map(|w| w.alive_until.0).collect();
            let clear = tx
                .prepare_cached("DELETE FROM lease_waiters WHERE ns = $1 AND name = $2")
                .await?;
            tx.execute(&clear, &[&ns, name]).await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO lease_waiters (ns, name, id, alive_until)
                     SELECT $1, $2, w.id, w.alive FROM unnest($3::int8[], $4::int8[]) AS w(id, alive)",
                )
                .await?;
            tx.execute(&stmt, &[&ns, name, &ids, &alive]).await?;
        }
        Mutation::Put(Row::Fence { resource, fence }) => {
            let stmt = tx.prepare_cached(sql::UPSERT_FENCES).await?;
            tx.execute(&stmt, &[&ns, resource, &rev_i64(*fence)?]).await?;
        }
        Mutation::Put(Row::FeedEntry(e)) => feeds::put_entry(tx, ns, e).await?,
        Mutation::Put(Row::FeedConfig { feed, config }) => feeds::put_config(tx, ns, feed, config).await?,
        Mutation::MarkRead { feed, selector } => feeds::mark_read(tx, ns, feed, selector).await?,
        Mutation::ResetScrubbed { feed } => feeds::reset_scrubbed(tx, ns, feed).await?,
        Mutation::Put(Row::Gate(g)) => gates::put_gate(tx, ns, g).await?,
        Mutation::Put(Row::Idem(e)) => idempotency::put(tx, ns, e).await?,
        Mutation::Put(Row::Ticket(t)) => gates::put_ticket(tx, ns, t).await?,
        Mutation::Put(Row::GateTickets { .. }) => {
            return Err(Failure::Final(Error::Internal(
                "a gate's ticket set is written ticket by ticket".into(),
            )));
        }
        Mutation::Delete(key) => {
            let (sql, names) = sql::delete_row(key);
            let stmt = tx.prepare_cached(sql).await?;
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&ns];
            params.extend(
                names
                    .iter()
                    .map(|n| n as &(dyn tokio_postgres::types::ToSql + Sync)),
            );
            tx.execute(&stmt, &params).await?;
        }
        Mutation::Put(Row::Record(_)) => {
            return Err(Failure::Final(Error::Internal(
                "records are written in bulk".into(),
            )));
        }
    }
    Ok(())
}
