//! The one description of the current schema: every table, its columns (type
//! and nullability), primary key and indexes, and whether it is keyed by
//! namespace. Copy's table list, the namespace delete and the namespace listing
//! come from it. Both backends' versioned migrations (which existing databases
//! went through, and which stay exactly as they were) are checked against it:
//! [`crate::Store::schema_drift`] introspects a database and compares, and the
//! conformance case `schema_matches_description` runs it on a freshly migrated
//! database of each backend.

use std::collections::BTreeMap;

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
            c("last_waiter", Int),
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
        indexes: &[("feed_entries_order", &["ns", "feed", "at", "id", "read"])],
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

/// A table as a migrated database describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Columns in order: name, the backend's type name (lower case), nullable.
    pub cols: Vec<(String, String, bool)>,
    /// The primary key's columns in order.
    pub key: Vec<String>,
    /// Secondary indexes by name: their columns in order.
    pub indexes: BTreeMap<String, Vec<String>>,
}

/// Which backend's type names to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite's declared types.
    Sqlite,
    /// PostgreSQL's `information_schema` data types.
    Postgres,
}

impl Col {
    fn type_name(self, d: Dialect) -> &'static str {
        match (d, self) {
            (Dialect::Sqlite, Col::Text) => "text",
            (Dialect::Sqlite, _) => "integer",
            (Dialect::Postgres, Col::Int) => "bigint",
            (Dialect::Postgres, Col::Int4) => "integer",
            (Dialect::Postgres, Col::Text) => "text",
            (Dialect::Postgres, Col::Bool) => "boolean",
        }
    }
}

/// The differences between the tables a database holds and [`TABLES`] (empty
/// when they agree). Primary-key columns are not compared for nullability:
/// SQLite reports its implicit NOT NULL on them inconsistently.
pub(crate) fn compare(d: Dialect, found: &BTreeMap<String, Found>) -> Vec<String> {
    let mut out = Vec::new();
    for t in TABLES {
        let Some(f) = found.get(t.name) else {
            out.push(format!("table {} is missing", t.name));
            continue;
        };
        let want: Vec<(String, String, bool)> = t
            .cols
            .iter()
            .map(|c| (c.name.to_owned(), c.ty.type_name(d).to_owned(), c.nullable))
            .collect();
        let in_key = |name: &str| t.key.contains(&name);
        let strip = |cols: &[(String, String, bool)]| -> Vec<(String, String, bool)> {
            cols.iter()
                .map(|(n, ty, null)| (n.clone(), ty.clone(), *null && !in_key(n)))
                .collect()
        };
        if strip(&want) != strip(&f.cols) {
            out.push(format!("{}: columns {:?}, described {:?}", t.name, f.cols, want));
        }
        if f.key != t.key {
            out.push(format!(
                "{}: primary key {:?}, described {:?}",
                t.name, f.key, t.key
            ));
        }
        let indexes: BTreeMap<String, Vec<String>> = t
            .indexes
            .iter()
            .map(|(n, cols)| ((*n).to_owned(), cols.iter().map(|c| (*c).to_owned()).collect()))
            .collect();
        if f.indexes != indexes {
            out.push(format!(
                "{}: indexes {:?}, described {:?}",
                t.name, f.indexes, indexes
            ));
        }
    }
    for name in found.keys() {
        if !TABLES.iter().any(|t| t.name == name) {
            out.push(format!("table {name} is not described"));
        }
    }
    out
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

    fn described(d: Dialect) -> BTreeMap<String, Found> {
        TABLES
            .iter()
            .map(|t| {
                let found = Found {
                    cols: t
                        .cols
                        .iter()
                        .map(|c| (c.name.into(), c.ty.type_name(d).into(), c.nullable))
                        .collect(),
                    key: t.key.iter().map(|k| (*k).into()).collect(),
                    indexes: t
                        .indexes
                        .iter()
                        .map(|(n, c)| ((*n).into(), c.iter().map(|c| (*c).into()).collect()))
                        .collect(),
                };
                (t.name.to_owned(), found)
            })
            .collect()
    }

    #[test]
    fn drift_is_reported() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let mut found = described(d);
            assert!(compare(d, &found).is_empty());
            if let Some(t) = found.get_mut("leases") {
                t.cols[2].2 = false;
                t.indexes.clear();
            }
            found.insert("stray".into(), Found::default());
            found.remove("settings");
            assert_eq!(compare(d, &found).len(), 4, "{:?}", compare(d, &found));
        }
    }
}
