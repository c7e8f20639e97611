//! PostgreSQL doing each operation directly in SQL, one autocommit statement
//! per round trip (as durable as lockstep's: `synchronous_commit` on).

use crate::error::Error;
use crate::target::{Cell, Client, Target};
use crate::workload::{Workload, LEASE_TTL_MS};
use tokio_postgres::{NoTls, Statement};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bench_kv (k text PRIMARY KEY, v bigint NOT NULL, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS bench_lease (name text PRIMARY KEY, owner text, expires_at timestamptz);
CREATE TABLE IF NOT EXISTS bench_feed (feed text NOT NULL, id text NOT NULL, data jsonb NOT NULL,
  at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (feed, id));
TRUNCATE bench_kv, bench_lease, bench_feed;";

fn err(e: tokio_postgres::Error) -> Error {
    Error::peer("postgres", e)
}

/// A PostgreSQL database.
pub struct Postgres {
    url: String,
}

impl Postgres {
    /// The database at `url` (`postgres://…`).
    pub fn new(url: &str) -> Self {
        Postgres { url: url.to_owned() }
    }

    async fn conn(&self) -> Result<tokio_postgres::Client, Error> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.map_err(err)?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; the
            // client's next query then fails.
            let _ = connection.await;
        });
        Ok(client)
    }
}

impl Target for Postgres {
    type Client = PgClient;

    fn supports(&self, w: Workload) -> bool {
        matches!(
            w,
            Workload::CasHot | Workload::CasSpread | Workload::LeaseCycle | Workload::FeedAppend
        )
    }

    async fn prepare(&self, _cell: &Cell) -> Result<(), Error> {
        self.conn().await?.batch_execute(SCHEMA).await.map_err(err)
    }

    async fn connect(&self, _cell: &Cell, _index: usize) -> Result<PgClient, Error> {
        let c = self.conn().await?;
        let acquire = format!(
            "INSERT INTO bench_lease (name, owner, expires_at) VALUES ($1, $2, now() + interval '{LEASE_TTL_MS} ms')
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
             WHERE bench_lease.owner IS NULL OR bench_lease.expires_at < now()"
        );
        Ok(PgClient {
            read: c.prepare("SELECT v, version FROM bench_kv WHERE k = $1").await.map_err(err)?,
            create: c
                .prepare("INSERT INTO bench_kv (k, v, version) VALUES ($1, 1, 1) ON CONFLICT DO NOTHING")
                .await
                .map_err(err)?,
            update: c
                .prepare("UPDATE bench_kv SET v = $2, version = version + 1 WHERE k = $1 AND version = $3")
                .await
                .map_err(err)?,
            acquire: c.prepare(&acquire).await.map_err(err)?,
            release: c
                .prepare("UPDATE bench_lease SET owner = NULL, expires_at = NULL WHERE name = $1 AND owner = $2")
                .await
                .map_err(err)?,
            append: c
                .prepare(
                    "INSERT INTO bench_feed (feed, id, data) VALUES ($1, $2, $3::text::jsonb) ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(err)?,
            c,
        })
    }

    async fn tally(&self, cell: &Cell) -> Result<u64, Error> {
        let sql = match cell.workload {
            Workload::CasHot | Workload::CasSpread => "SELECT coalesce(sum(v), 0)::bigint FROM bench_kv",
            Workload::LeaseCycle => "SELECT count(*) FROM bench_lease WHERE owner IS NOT NULL",
            Workload::FeedAppend => "SELECT count(*) FROM bench_feed",
            _ => return Err(Error::Unsupported(cell.workload.name())),
        };
        let row = self.conn().await?.query_one(sql, &[]).await.map_err(err)?;
        let n: i64 = row.try_get(0).map_err(err)?;
        u64::try_from(n).map_err(|e| Error::Unexpected(format!("{sql}: {e}")))
    }
}

/// One client's connection and its prepared statements.
pub struct PgClient {
    c: tokio_postgres::Client,
    read: Statement,
    create: Statement,
    update: Statement,
    acquire: Statement,
    release: Statement,
    append: Statement,
}

impl Client for PgClient {
    async fn cas(&mut self, key: &str) -> Result<bool, Error> {
        let row = self.c.query_opt(&self.read, &[&key]).await.map_err(err)?;
        let n = match row {
            None => self.c.execute(&self.create, &[&key]).await.map_err(err)?,
            Some(r) => {
                let (v, version): (i64, i64) = (r.try_get(0).map_err(err)?, r.try_get(1).map_err(err)?);
                self.c
                    .execute(&self.update, &[&key, &(v + 1), &version])
                    .await
                    .map_err(err)?
            }
        };
        Ok(n == 1)
    }

    async fn acquire(&mut self, name: &str, owner: &str) -> Result<Option<String>, Error> {
        let n = self
            .c
            .execute(&self.acquire, &[&name, &owner])
            .await
            .map_err(err)?;
        Ok((n == 1).then(|| owner.to_owned()))
    }

    async fn release(&mut self, name: &str, token: &str) -> Result<bool, Error> {
        Ok(self
            .c
            .execute(&self.release, &[&name, &token])
            .await
            .map_err(err)?
            == 1)
    }

    async fn append(&mut self, feed: &str, id: &str, data: &str) -> Result<bool, Error> {
        Ok(self
            .c
            .execute(&self.append, &[&feed, &id, &data])
            .await
            .map_err(err)?
            == 1)
    }
}
