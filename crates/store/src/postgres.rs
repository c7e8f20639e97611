//! Shared backend: PostgreSQL. Every write command runs in one READ COMMITTED
//! transaction that first takes transaction-scoped advisory locks on every key it
//! touches, in a fixed (sorted) order, so writers of one key serialize even when
//! the row does not exist yet; then it loads the rows and the storage clock, calls
//! the pure semantics, allocates a revision only if something is written, and
//! persists rows and change entries in one statement. Serialization failures and
//! deadlocks are retried here; a lost connection answers `Unavailable`.

use crate::{record_from_parts, rev_i64, Committed, Error, Options, StoreMetrics};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use lockstep_core::{execute, Command, Ctx, Effect, Limits, Millis, Mutation, Record, Snapshot};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

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
];

/// Session advisory lock held while migrating, so concurrent starts apply each
/// migration once.
const MIGRATION_LOCK: i64 = 0x6c6f_636b_7374_6570; // "lockstep"

const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::int8";
const ATTEMPTS_MAX: u32 = 20;

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    limits: Arc<Limits>,
    metrics: Arc<StoreMetrics>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Why one attempt failed: retry it, or give this answer.
enum Failure {
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
fn pg_error(e: tokio_postgres::Error) -> Error {
    let code = e.code().map(|c| c.code().to_owned());
    match code.as_deref() {
        None => Error::Unavailable(format!("postgres: {e}")),
        Some(c) if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            Error::Unavailable(format!("postgres: {e}"))
        }
        Some(_) => Error::Internal(format!("postgres: {e}")),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => Error::Unavailable(format!("postgres pool: {other}")),
    }
}

fn parse_config(url: &str) -> Result<tokio_postgres::Config, Error> {
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
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS lockstep_schema_migrations (
                   version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
        let applied: i32 = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM lockstep_schema_migrations",
                &[],
            )
            .await?
            .get(0);
        let applied = usize::try_from(applied).unwrap_or(0);
        let mut ran = 0;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = client.transaction().await?;
            tx.batch_execute(sql).await?;
            let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
            tx.execute(
                "INSERT INTO lockstep_schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            tx.commit().await?;
            ran += 1;
        }
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        Ok::<usize, tokio_postgres::Error>(ran)
    }
    .await;
    drop(client);
    let _ = driver.await;
    let ran = result.map_err(pg_error)?;
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
            limits: Arc::new(opts.limits),
            metrics,
        })
    }

    /// Storage metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Applies one write command, retrying serialization failures and deadlocks.
    pub async fn execute(&self, ns: &str, cmd: Command, actor: &str) -> Result<Committed, Error> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS_MAX {
            match self.attempt(ns, &cmd, actor).await {
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

    async fn attempt(&self, ns: &str, cmd: &Command, actor: &str) -> Result<Committed, Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let keys = cmd.keys();
        let mut locks: Vec<i64> = keys.iter().map(|k| lock_id("record", ns, k)).collect();
        locks.sort_unstable();
        locks.dedup();
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock(x) FROM unnest($1::int8[]) AS x")
            .await?;
        tx.execute(&lock, &[&locks]).await?;
        let load = tx
            .prepare_cached(&format!(
                "SELECT {NOW_MS}, r.key, r.value, r.version, r.created_at, r.updated_at, r.expires_at
                 FROM (SELECT 1) AS one
                 LEFT JOIN records r ON r.ns = $1 AND r.key = ANY($2::text[])"
            ))
            .await?;
        let rows = tx.query(&load, &[&ns, &keys]).await?;
        let mut snapshot: Snapshot = keys.iter().map(|k| (k.clone(), None)).collect();
        let mut now = Millis(0);
        for row in &rows {
            now = Millis(row.try_get(0)?);
            if row.try_get::<_, Option<String>>(1)?.is_some() {
                let r = row_to_record(row, 1)?;
                snapshot.insert(r.key.clone(), Some(r));
            }
        }
        // Probe first: a command that writes nothing (a refusal, a read-only
        // transaction) must not consume a revision.
        let probe = Ctx {
            revision: u64::MAX,
            now,
            actor,
            limits: &self.limits,
        };
        let probed = execute(cmd, &snapshot, &probe)?;
        if !probed.writes() {
            let current = tx
                .prepare_cached(
                    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep_revision",
                )
                .await?;
            let rev: i64 = tx.query_one(&current, &[]).await?.try_get(0)?;
            tx.commit().await?;
            return Ok(Committed {
                outcome: probed.outcome,
                revision: u64::try_from(rev).unwrap_or(0),
            });
        }
        let next = tx.prepare_cached("SELECT nextval('lockstep_revision')").await?;
        let rev: i64 = tx.query_one(&next, &[]).await?.try_get(0)?;
        let revision = u64::try_from(rev).map_err(|_| Error::Internal("negative revision".into()))?;
        let ctx = Ctx { revision, ..probe };
        let effect = execute(cmd, &snapshot, &ctx)?;
        persist(&tx, ns, &effect, revision, now, actor).await?;
        tx.commit().await?;
        self.metrics.commit_batch_size.observe(1);
        Ok(Committed {
            outcome: effect.outcome,
            revision,
        })
    }

    /// Reads one live record (storage clock).
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Record>, Error> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT key, value, version, created_at, updated_at, expires_at FROM records
                 WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {NOW_MS})"
            ))
            .await
            .map_err(pg_error)?;
        let row = client.query_opt(&stmt, &[&ns, &key]).await.map_err(pg_error)?;
        row.map(|r| row_to_record(&r, 0)).transpose()
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
        let stmt = client
            .prepare_cached(&format!(
                "SELECT key, value, version, created_at, updated_at, expires_at FROM records
                 WHERE ns = $1 AND key {lower_op} $2 AND ($3::text IS NULL OR key < $3::text)
                   AND (expires_at IS NULL OR expires_at > {NOW_MS})
                 ORDER BY key LIMIT $4"
            ))
            .await
            .map_err(pg_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&ns, &lower, &upper, &limit])
            .await
            .map_err(pg_error)?;
        rows.iter().map(|r| row_to_record(r, 0)).collect()
    }

    /// Up to `batch` expired records, as `(namespace, key)`.
    pub async fn expired(&self, batch: usize) -> Result<Vec<(String, String)>, Error> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT ns, key FROM records WHERE expires_at IS NOT NULL AND expires_at <= {NOW_MS}
                 ORDER BY expires_at LIMIT $1"
            ))
            .await
            .map_err(pg_error)?;
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let rows = client.query(&stmt, &[&limit]).await.map_err(pg_error)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(pg_error)?, r.try_get(1).map_err(pg_error)?)))
            .collect()
    }

    /// Removes every record of a namespace.
    pub async fn delete_namespace(&self, ns: &str) -> Result<u64, Error> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM records WHERE ns = $1", &[&ns])
            .await
            .map_err(pg_error)
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await.map_err(pg_error)?;
        Ok(())
    }
}

/// Writes the rows and change entries of `effect` in one statement.
async fn persist(
    tx: &deadpool_postgres::Transaction<'_>,
    ns: &str,
    effect: &Effect,
    revision: u64,
    now: Millis,
    actor: &str,
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
            Mutation::Upsert(r) => {
                up_keys.push(r.key.as_str());
                up_values.push(serde_json::to_string(&r.value).map_err(|e| Error::Internal(e.to_string()))?);
                up_versions.push(rev_i64(r.version)?);
                up_created.push(r.created_at.0);
                up_updated.push(r.updated_at.0);
                up_expires.push(r.expires_at.map(|e| e.0));
            }
            Mutation::Delete(k) => del_keys.push(k.as_str()),
        }
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
               SELECT $9::int8, c.idx, $1::text, c.kind, c.key, c.op, $10::text, c.forced, $11::int8
               FROM unnest($12::int4[], $13::text[], $14::text[], $15::text[], $16::bool[]) AS c(idx, kind, key, op, forced)
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
            &actor,
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
