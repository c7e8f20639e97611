//! PostgreSQL's versioned schema migrations (checked against `crate::schema`).

use super::{parse_config, pg_error};
use crate::Error;
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
    // 9: the last waiter id handed out per lease, so none is handed out twice.
    r#"ALTER TABLE leases ADD COLUMN last_waiter bigint NOT NULL DEFAULT 0;"#,
    // 10: `read` in the order index, so a page's unread count can read the
    // index alone (an index-only scan), never the entries.
    r#"DROP INDEX feed_entries_order;
       CREATE INDEX feed_entries_order ON feed_entries (ns, feed, at, id, read);"#,
];

/// Session advisory lock held while migrating, so concurrent starts apply each
/// migration once.
const MIGRATION_LOCK: i64 = 0x6c6f_636b_7374_6570; // "lockstep"

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
