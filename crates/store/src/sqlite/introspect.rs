//! Reads back the schema of a SQLite database, to compare with the description.

use super::SqliteStore;
use crate::schema::Found;
use crate::Error;
use rusqlite::{params, Connection};
use std::collections::BTreeMap;

/// Tables of the store's own bookkeeping, outside the description.
const KEPT_APART: &[&str] = &["meta"];

fn table(c: &Connection, name: &str) -> Result<Found, Error> {
    let mut found = Found::default();
    let mut key: Vec<(i64, String)> = Vec::new();
    let mut stmt =
        c.prepare("SELECT name, lower(type), \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")?;
    let rows = stmt.query_map(params![name], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (col, ty, not_null, pk) = row?;
        if pk > 0 {
            key.push((pk, col.clone()));
        }
        found.cols.push((col, ty, !not_null));
    }
    key.sort();
    found.key = key.into_iter().map(|(_, c)| c).collect();
    let mut stmt = c.prepare("SELECT name FROM pragma_index_list(?1) WHERE origin = 'c' ORDER BY name")?;
    let names: Vec<String> = stmt
        .query_map(params![name], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for index in names {
        let mut stmt = c.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
        let cols = stmt
            .query_map(params![index], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        found.indexes.insert(index, cols);
    }
    Ok(found)
}

impl SqliteStore {
    /// Every table of the database as it is (see [`crate::schema::compare`]).
    pub(crate) async fn introspect(&self) -> Result<BTreeMap<String, Found>, Error> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )?;
            let names: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            let mut out = BTreeMap::new();
            for name in names.into_iter().filter(|n| !KEPT_APART.contains(&n.as_str())) {
                let found = table(c, &name)?;
                out.insert(name, found);
            }
            Ok(out)
        })
        .await
    }
}
