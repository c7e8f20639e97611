//! SQLite's versioned schema migrations (checked against `crate::schema`).

use crate::Error;
use rusqlite::{Connection, TransactionBehavior};

/// Versioned schema migrations, applied in order; `PRAGMA user_version` records
/// the last one applied.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 9: the last waiter id handed out per lease, so none is handed out twice.
    "ALTER TABLE leases ADD COLUMN last_waiter INTEGER NOT NULL DEFAULT 0;",
    // 10: `read` in the order index, so a page's unread count reads the index
    // alone, never the entries.
    "DROP INDEX feed_entries_order;
     CREATE INDEX feed_entries_order ON feed_entries (ns, feed, at, id, read);",
];

/// Applies every pending migration.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_core::{Row, RowKey};

    #[test]
    fn a_lease_of_an_older_database_has_handed_out_no_waiter_id() -> Result<(), Error> {
        let mut conn = Connection::open_in_memory()?;
        for sql in &MIGRATIONS[..8] {
            conn.execute_batch(sql)?;
        }
        conn.pragma_update(None, "user_version", 8)?;
        conn.execute(
            "INSERT INTO leases (ns, name, token, holder, fence, acquired_at, expires_at)
             VALUES ('n', 'l', 'A', NULL, 3, 1, 2)",
            [],
        )?;
        migrate(&mut conn)?;
        let Some(Row::Lease(l)) = super::super::rows::load_row(&conn, "n", &RowKey::Lease("l".into()))?
        else {
            panic!("the lease row is gone")
        };
        assert_eq!((l.fence, l.last_waiter, l.token.as_deref()), (3, 0, Some("A")));
        Ok(())
    }
}
