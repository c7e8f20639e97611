//! Reads back the schema of a PostgreSQL database (its current schema), to
//! compare with the description.

use super::{pg_error, PgStore, QUERY_TIMEOUT};
use crate::schema::Found;
use crate::Error;
use std::collections::BTreeMap;

/// Tables of the store's own bookkeeping, outside the description.
const KEPT_APART: &[&str] = &["lockstep_schema_migrations"];

impl PgStore {
    /// Every table of the database as it is (see [`crate::schema::compare`]).
    pub(crate) async fn introspect(&self) -> Result<BTreeMap<String, Found>, Error> {
        let client = self.client().await?;
        bounded!(client, {
            let mut out: BTreeMap<String, Found> = BTreeMap::new();
            let cols = client
                .query(
                    "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'YES'
                     FROM information_schema.columns WHERE table_schema = current_schema()
                     ORDER BY table_name, ordinal_position",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            for r in cols {
                let table: String = r.try_get(0).map_err(pg_error)?;
                let col = (
                    r.try_get(1).map_err(pg_error)?,
                    r.try_get(2).map_err(pg_error)?,
                    r.try_get(3).map_err(pg_error)?,
                );
                out.entry(table).or_default().cols.push(col);
            }
            let indexes = client
                .query(
                    "SELECT t.relname::text, c.relname::text, i.indisprimary,
                            array_agg(a.attname::text ORDER BY k.ord)
                     FROM pg_index i
                     JOIN pg_class c ON c.oid = i.indexrelid
                     JOIN pg_class t ON t.oid = i.indrelid
                     JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = current_schema()
                     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     GROUP BY t.relname, c.relname, i.indisprimary",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            for r in indexes {
                let table: String = r.try_get(0).map_err(pg_error)?;
                let name: String = r.try_get(1).map_err(pg_error)?;
                let primary: bool = r.try_get(2).map_err(pg_error)?;
                let cols: Vec<String> = r.try_get(3).map_err(pg_error)?;
                let t = out.entry(table).or_default();
                if primary {
                    t.key = cols;
                } else {
                    t.indexes.insert(name, cols);
                }
            }
            for name in KEPT_APART {
                out.remove(*name);
            }
            Ok(out)
        })
    }
}
