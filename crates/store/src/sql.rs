//! SQL text both backends run, written once with PostgreSQL's `$n`
//! placeholders; [`sqlite`] renders it with SQLite's `?n`.

use lockstep_core::RowKey;

/// The statement deleting the stored row(s) of `key`, and its parameters
/// after the namespace (`$1`).
pub(crate) fn delete_row(key: &RowKey) -> (&'static str, Vec<&str>) {
    match key {
        RowKey::Record(k) => ("DELETE FROM records WHERE ns = $1 AND key = $2", vec![k]),
        RowKey::Lease(n) => ("DELETE FROM leases WHERE ns = $1 AND name = $2", vec![n]),
        RowKey::Waiters(n) => ("DELETE FROM lease_waiters WHERE ns = $1 AND name = $2", vec![n]),
        RowKey::Fence(r) => ("DELETE FROM fences WHERE ns = $1 AND resource = $2", vec![r]),
        RowKey::FeedConfig(f) => ("DELETE FROM feed_configs WHERE ns = $1 AND feed = $2", vec![f]),
        RowKey::Gate(id) => ("DELETE FROM gates WHERE ns = $1 AND id = $2", vec![id]),
        RowKey::Ticket(id) => ("DELETE FROM tickets WHERE ns = $1 AND id = $2", vec![id]),
        RowKey::GateTickets(g) => ("DELETE FROM tickets WHERE ns = $1 AND gate = $2", vec![g]),
        RowKey::FeedEntry(f, id) => (
            "DELETE FROM feed_entries WHERE ns = $1 AND feed = $2 AND id = $3",
            vec![f, id],
        ),
        RowKey::Idem(scope, k) => (
            "DELETE FROM idempotency WHERE ns = $1 AND scope = $2 AND key = $3",
            vec![scope, k],
        ),
    }
}

/// The statements that empty a namespace (`$1`), `records` first: its count
/// is the answer of a namespace delete.
pub(crate) fn delete_namespace() -> impl Iterator<Item = String> {
    crate::schema::namespaced().map(|t| format!("DELETE FROM {} WHERE ns = $1", t.name))
}

/// Compaction: deletes every change up to revision `$1`.
pub(crate) const DELETE_CHANGES_THROUGH: &str = "DELETE FROM changes WHERE revision <= $1";

/// Compaction: raises the horizon to `$1` (never lowers it).
pub(crate) const RAISE_HORIZON: &str =
    "UPDATE change_horizon SET revision = CASE WHEN revision < $1 THEN $1 ELSE revision END WHERE id = 1";

/// Writes one row of `gates` (an upsert).
pub(crate) const UPSERT_GATES: &str =
    "INSERT INTO gates (ns, id, state, epoch, pending, meta, created_at, updated_at, revision)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (ns, id) DO UPDATE SET state = excluded.state, epoch = excluded.epoch,
    pending = excluded.pending, meta = excluded.meta, updated_at = excluded.updated_at,
    revision = excluded.revision";

/// Writes one row of `tickets` (an upsert).
pub(crate) const UPSERT_TICKETS: &str = "INSERT INTO tickets (ns, id, gate, epoch, state, meta, recovered, finalized_revision, created_at, updated_at, revision)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (ns, id) DO UPDATE SET state = excluded.state, recovered = excluded.recovered,
    finalized_revision = excluded.finalized_revision, updated_at = excluded.updated_at,
    revision = excluded.revision";

/// Writes one row of `feed_entries` (an upsert).
pub(crate) const UPSERT_FEED_ENTRIES: &str =
    "INSERT INTO feed_entries (ns, feed, id, at, data, revision, read, scrubbed)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (ns, feed, id) DO UPDATE SET at = excluded.at, data = excluded.data,
    revision = excluded.revision, read = excluded.read, scrubbed = excluded.scrubbed";

/// Writes one row of `feed_configs` (an upsert).
pub(crate) const UPSERT_FEED_CONFIGS: &str = "INSERT INTO feed_configs (ns, feed, config) VALUES ($1, $2, $3)
    ON CONFLICT (ns, feed) DO UPDATE SET config = excluded.config";

/// Writes one row of `leases` (an upsert).
pub(crate) const UPSERT_LEASES: &str =
    "INSERT INTO leases (ns, name, token, holder, fence, acquired_at, expires_at, last_waiter)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (ns, name) DO UPDATE SET token = excluded.token, holder = excluded.holder,
    fence = excluded.fence, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at,
    last_waiter = excluded.last_waiter";

/// Writes one row of `fences` (an upsert).
pub(crate) const UPSERT_FENCES: &str = "INSERT INTO fences (ns, resource, fence) VALUES ($1, $2, $3)
    ON CONFLICT (ns, resource) DO UPDATE SET fence = excluded.fence";

/// Writes one row of `idempotency` (an upsert).
pub(crate) const UPSERT_IDEMPOTENCY: &str =
    "INSERT INTO idempotency (ns, scope, key, fingerprint, token, response, locked_until, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (ns, scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, token = excluded.token,
    response = excluded.response, locked_until = excluded.locked_until, expires_at = excluded.expires_at";

/// Stores a setting unless one is stored already.
pub(crate) const INSERT_SETTING: &str =
    "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

/// Renders `$n` placeholders as SQLite's `?n`.
pub(crate) fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_for_sqlite() {
        assert_eq!(
            sqlite(delete_row(&RowKey::Record("k".into())).0),
            "DELETE FROM records WHERE ns = ?1 AND key = ?2"
        );
    }

    #[test]
    fn every_parameter_is_bound() {
        let keys = [
            RowKey::Record("a".into()),
            RowKey::FeedEntry("f".into(), "i".into()),
            RowKey::Idem("s".into(), "k".into()),
            RowKey::GateTickets("g".into()),
        ];
        for k in keys {
            let (sql, params) = delete_row(&k);
            assert!(sql.contains(&format!("${}", params.len() + 1)), "{sql}");
            assert!(!sql.contains(&format!("${}", params.len() + 2)), "{sql}");
        }
    }
}
