//! The one description of the current schema: every table, its columns (type
//! and nullability), primary key and indexes, and whether it is keyed by
//! namespace. Copy's table list and the namespace delete come from it; both
//! backends' migrations are checked against it by a test that introspects a
//! freshly migrated database (`tests/schema.rs`), so the versioned migrations
//! that existing databases went through stay exactly as they were.

/// The type of a column, as both backends store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// 64-bit integer (`INTEGER` / `bigint`).
    Int,
    /// 32-bit integer in PostgreSQL (`int`), `INTEGER` in SQLite.
    Int4,
    /// Text.
    Text,
    /// Boolean (`INTEGER` 0/1 in SQLite).
    Bool,
}

/// One column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub ty: Col,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// One table.
#[derive(Debug)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// Every column, in order.
    pub cols: &'static [Column],
    /// The primary key's columns.
    pub key: &'static [&'static str],
    /// Secondary indexes: name and columns.
    pub indexes: &'static [(&'static str, &'static [&'static str])],
    /// Keyed by namespace: emptied when its namespace is deleted.
    pub namespaced: bool,
}

const fn c(name: &'static str, ty: Col) -> Column {
    Column {
        name,
        ty,
        nullable: false,
    }
}

const fn null(name: &'static str, ty: Col) -> Column {
    Column {
        name,
        ty,
        nullable: true,
    }
}

use Col::{Bool, Int, Int4, Text};

/// Every table that holds state (the revision counter, SQLite's `meta` row or
/// PostgreSQL's sequence, is kept apart). `records` comes first.
pub const TABLES: &[Table] = &[
    Table {
        name: "records",
        cols: &[
            c("ns", Text),
            c("key", Text),
            c("value", Text),
            c("version", Int),
            c("created_at", Int),
            c("updated_at", Int),
            null("expires_at", Int),
        ],
        key: &["ns", "key"],
        indexes: &[("records_expiry", &["expires_at"])],
        namespaced: true,
    },
    Table {
        name: "changes",
        cols: &[
            c("revision", Int),
            c("idx", Int4),
            c("ns", Text),
            c("kind", Text),
            c("key", Text),
            c("op", Text),
            c("actor", Text),
            c("forced", Bool),
            c("at", Int),
        ],
        key: &["revision", "idx"],
        indexes: &[],
        // The change log keeps its history.
        namespaced: false,
    },
    Table {
        name: "leases",
        cols: &[
            c("ns", Text),
            c("name", Text),
            null("token", Text),
            null("holder", Text),
            c("fence", Int),
            c("acquired_at", Int),
            c("expires_at", Int),
        ],
        key: &["ns", "name"],
        indexes: &[("leases_expiry", &["expires_at"])],
        namespaced: true,
    },
    Table {
        name: "lease_waiters",
        cols: &[
            c("ns", Text),
            c("name", Text),
            c("id", Int),
            c("alive_until", Int),
        ],
        key: &["ns", "name", "id"],
        indexes: &[],
        namespaced: true,
    },
    Table {
        name: "fences",
        cols: &[c("ns", Text), c("resource", Text), c("fence", Int)],
        key: &["ns", "resource"],
        indexes: &[],
        namespaced: true,
    },
    Table {
        name: "feed_entries",
        cols: &[
            c("ns", Text),
            c("feed", Text),
            c("id", Text),
            c("at", Int),
            c("data", Text),
            c("revision", Int),
            c("read", Bool),
            c("scrubbed", Bool),
        ],
        key: &["ns", "feed", "id"],
        indexes: &[("feed_entries_order", &["ns", "feed", "at", "id"])],
        namespaced: true,
    },
    Table {
        name: "feed_configs",
        cols: &[c("ns", Text), c("feed", Text), c("config", Text)],
        key: &["ns", "feed"],
        indexes: &[],
        namespaced: true,
    },
    Table {
        name: "gates",
        cols: &[
            c("ns", Text),
            c("id", Text),
            c("state", Text),
            c("epoch", Int),
            c("pending", Text),
            c("meta", Text),
            c("created_at", Int),
            c("updated_at", Int),
            c("revision", Int),
        ],
        key: &["ns", "id"],
        indexes: &[],
        namespaced: true,
    },
    Table {
        name: "tickets",
        cols: &[
            c("ns", Text),
            c("id", Text),
            c("gate", Text),
            c("epoch", Int),
            c("state", Text),
            c("meta", Text),
            c("recovered", Bool),
            null("finalized_revision", Int),
            c("created_at", Int),
            c("updated_at", Int),
            c("revision", Int),
        ],
        key: &["ns", "id"],
        indexes: &[("tickets_by_gate", &["ns", "gate", "id"])],
        namespaced: true,
    },
    Table {
        name: "idempotency",
        cols: &[
            c("ns", Text),
            c("scope", Text),
            c("key", Text),
            c("fingerprint", Text),
            c("token", Text),
            null("response", Text),
            c("locked_until", Int),
            c("expires_at", Int),
        ],
        key: &["ns", "scope", "key"],
        indexes: &[("idempotency_expiry", &["expires_at"])],
        namespaced: true,
    },
    Table {
        name: "settings",
        cols: &[c("name", Text), c("value", Text)],
        key: &["name"],
        indexes: &[],
        namespaced: false,
    },
    Table {
        name: "change_horizon",
        cols: &[c("id", Int4), c("revision", Int)],
        key: &["id"],
        indexes: &[],
        namespaced: false,
    },
];

/// The tables keyed by namespace, `records` first.
pub(crate) fn namespaced() -> impl Iterator<Item = &'static Table> {
    TABLES.iter().filter(|t| t.namespaced)
}

/// `SELECT ns FROM records UNION SELECT ns FROM …` over every namespaced table.
pub(crate) fn namespaces_union() -> String {
    namespaced()
        .map(|t| format!("SELECT ns FROM {}", t.name))
        .collect::<Vec<_>>()
        .join(" UNION ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_first_and_keys_are_columns() {
        assert_eq!(TABLES[0].name, "records");
        for t in TABLES {
            for k in t.key.iter().chain(t.indexes.iter().flat_map(|i| i.1.iter())) {
                assert!(t.cols.iter().any(|c| c.name == *k), "{}.{k}", t.name);
            }
            assert_eq!(
                t.namespaced,
                t.cols.first().is_some_and(|c| c.name == "ns"),
                "{}",
                t.name
            );
        }
    }
}
