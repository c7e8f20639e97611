//! `lockstep copy`: moves a whole database from one backend to another (SQLite
//! → PostgreSQL to scale out, PostgreSQL → SQLite to go back), table by table,
//! then verifies that both sides hold the same state: the same rows in every
//! table (count and SHA-256 of the sorted rows) and the same revision counter.
//!
//! The copy reads each table whole; run it against a quiescent source (stop
//! the writers). It refuses a non-empty target unless forced, in which case the
//! target is emptied first: an interrupted copy is restarted with `--force`.

use crate::{postgres, sqlite, Error, Location, Options, Store};
use rusqlite::types::Value as SqlValue;
use sha2::{Digest, Sha256};
use std::fmt::Write;

use crate::schema::Col::{Bool, Int, Int4, Text};
use crate::schema::{Table, TABLES};

/// One cell, backend-neutral (booleans as 0/1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
}

type Rows = Vec<Vec<Cell>>;

/// One side of a copy: a raw connection to the migrated database.
enum Side {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

async fn open(location: &Location) -> Result<Side, Error> {
    // Opening a store applies every migration; the raw connection does the rest.
    drop(Store::open(location, Options::default()).await?);
    match location {
        Location::Sqlite(path) => Ok(Side::Sqlite(sqlite::open_connection(path)?)),
        Location::Postgres(url) => {
            let cfg = postgres::parse_config(url)?;
            let (client, conn) = cfg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(postgres::pg_error)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Side::Postgres(client))
        }
    }
}

fn columns(t: &Table) -> String {
    t.cols.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
}

impl Side {
    async fn export(&self, t: &Table) -> Result<Rows, Error> {
        let sql = format!("SELECT {} FROM {}", columns(t), t.name);
        let mut rows = match self {
            Side::Sqlite(c) => {
                let mut stmt = c.prepare(&sql)?;
                let n = t.cols.len();
                let got = stmt.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get::<_, SqlValue>(i)? {
                                SqlValue::Null => Cell::Null,
                                SqlValue::Integer(v) => Cell::Int(v),
                                SqlValue::Text(s) => Cell::Text(s),
                                SqlValue::Real(f) => Cell::Text(f.to_string()),
                                SqlValue::Blob(b) => Cell::Text(String::from_utf8_lossy(&b).into_owned()),
                            })
                        })
                        .collect::<rusqlite::Result<Vec<Cell>>>()
                })?;
                got.collect::<rusqlite::Result<Rows>>()?
            }
            Side::Postgres(c) => {
                let mut out = Vec::new();
                for r in c.query(&sql, &[]).await.map_err(postgres::pg_error)? {
                    let mut row = Vec::with_capacity(t.cols.len());
                    for (i, col) in t.cols.iter().enumerate() {
                        let cell = match col.ty {
                            Int => r.try_get::<_, Option<i64>>(i).map(|v| v.map(Cell::Int)),
                            Int4 => r
                                .try_get::<_, Option<i32>>(i)
                                .map(|v| v.map(|v| Cell::Int(i64::from(v)))),
                            Text => r.try_get::<_, Option<String>>(i).map(|v| v.map(Cell::Text)),
                            Bool => r
                                .try_get::<_, Option<bool>>(i)
                                .map(|v| v.map(|b| Cell::Int(i64::from(b)))),
                        };
                        row.push(cell.map_err(postgres::pg_error)?.unwrap_or(Cell::Null));
                    }
                    out.push(row);
                }
                out
            }
        };
        rows.sort();
        Ok(rows)
    }

    async fn clear(&mut self, t: &Table) -> Result<(), Error> {
        let sql = format!("DELETE FROM {}", t.name);
        match self {
            Side::Sqlite(c) => {
                c.execute(&sql, [])?;
            }
            Side::Postgres(c) => {
                c.execute(&sql, &[]).await.map_err(postgres::pg_error)?;
            }
        }
        Ok(())
    }

    async fn import(&mut self, t: &Table, rows: &Rows) -> Result<(), Error> {
        let n = t.cols.len();
        match self {
            Side::Sqlite(c) => {
                let marks = (1..=n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
                let sql = format!("INSERT INTO {} ({}) VALUES ({marks})", t.name, columns(t));
                let tx = c.transaction()?;
                {
                    let mut stmt = tx.prepare(&sql)?;
                    for row in rows {
                        let values = row.iter().map(|cell| match cell {
                            Cell::Null => SqlValue::Null,
                            Cell::Int(v) => SqlValue::Integer(*v),
                            Cell::Text(s) => SqlValue::Text(s.clone()),
                        });
                        stmt.execute(rusqlite::params_from_iter(values))?;
                    }
                }
                tx.commit()?;
            }
            Side::Postgres(c) => {
                let marks = (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let sql = format!("INSERT INTO {} ({}) VALUES ({marks})", t.name, columns(t));
                let tx = c.transaction().await.map_err(postgres::pg_error)?;
                let stmt = tx.prepare(&sql).await.map_err(postgres::pg_error)?;
                for row in rows {
                    let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
                    for (cell, col) in row.iter().zip(t.cols) {
                        let int = |c: &Cell| if let Cell::Int(v) = c { Some(*v) } else { None };
                        params.push(match col.ty {
                            Int => Box::new(int(cell)),
                            Int4 => Box::new(int(cell).map(|v| i32::try_from(v).unwrap_or(i32::MAX))),
                            Bool => Box::new(int(cell).map(|v| v != 0)),
                            Text => Box::new(if let Cell::Text(s) = cell {
                                Some(s.clone())
                            } else {
                                None
                            }),
                        });
                    }
                    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                        .collect();
                    tx.execute(&stmt, &refs).await.map_err(postgres::pg_error)?;
                }
                tx.commit().await.map_err(postgres::pg_error)?;
            }
        }
        Ok(())
    }

    async fn revision(&self) -> Result<u64, Error> {
        let rev: i64 = match self {
            Side::Sqlite(c) => {
                c.query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| r.get(0))?
            }
            Side::Postgres(c) => c
                .query_one(
                    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep_revision",
                    &[],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(postgres::pg_error)?,
        };
        crate::stored_u64("revision", rev)
    }

    async fn set_revision(&mut self, rev: u64) -> Result<(), Error> {
        let rev = crate::rev_i64(rev)?;
        match self {
            Side::Sqlite(c) => {
                c.execute("UPDATE meta SET value = ?1 WHERE name = 'revision'", [rev])?;
            }
            Side::Postgres(c) => {
                // The next nextval returns exactly `rev + 1` (the sequence starts at 1).
                let (value, called) = if rev > 0 { (rev, true) } else { (1, false) };
                c.execute("SELECT setval('lockstep_revision', $1, $2)", &[&value, &called])
                    .await
                    .map_err(postgres::pg_error)?;
            }
        }
        Ok(())
    }
}

fn checksum(rows: &Rows) -> String {
    let mut h = Sha256::new();
    for r in rows {
        h.update(serde_json::to_vec(r).unwrap_or_default());
        h.update(b"\n");
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The rows that mean a database holds state (beyond its fresh migrations).
fn holds_state(t: &Table, rows: &Rows) -> bool {
    match t.name {
        // The horizon row exists from the start; only a non-zero horizon is state.
        "change_horizon" => rows.iter().any(|r| r.get(1) != Some(&Cell::Int(0))),
        _ => !rows.is_empty(),
    }
}

/// Copies everything from `from` to `to`, then verifies; returns the report.
/// Refuses a target that holds state unless `force` (which empties it first).
pub async fn copy(from: &Location, to: &Location, force: bool) -> Result<String, Error> {
    if from == to {
        return Err(Error::Config("source and target are the same database".into()));
    }
    let source = open(from).await?;
    let mut target = open(to).await?;
    let mut busy = target.revision().await? != 0;
    for t in TABLES {
        busy |= holds_state(t, &target.export(t).await?);
    }
    if busy && !force {
        return Err(Error::Config(
            "the target database is not empty; pass --force to replace its content".into(),
        ));
    }
    let mut report = String::new();
    for t in TABLES.iter().rev() {
        target.clear(t).await?;
    }
    for t in TABLES {
        let rows = source.export(t).await?;
        target.import(t, &rows).await?;
    }
    let rev = source.revision().await?;
    target.set_revision(rev).await?;
    // Verification reads both sides again, independently of what was written.
    let mut ok = true;
    for t in TABLES {
        let (a, b) = (source.export(t).await?, target.export(t).await?);
        let same = a == b;
        ok &= same;
        let _ = writeln!(
            report,
            "{:<15} {:>8} rows  source {}  target {}  {}",
            t.name,
            a.len(),
            checksum(&a),
            checksum(&b),
            if same { "ok" } else { "DIFFERENT" }
        );
    }
    let trev = target.revision().await?;
    ok &= trev == rev;
    let _ = writeln!(
        report,
        "{:<15} source {rev}  target {trev}  {}",
        "revision",
        if trev == rev { "ok" } else { "DIFFERENT" }
    );
    if !ok {
        return Err(Error::Internal(format!("verification failed:\n{report}")));
    }
    let _ = writeln!(report, "verified: both databases hold the same state");
    Ok(report)
}
