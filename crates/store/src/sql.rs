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
