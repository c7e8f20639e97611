//! Redis: CAS as GET then a compare-and-set Lua script, a lease as
//! `SET NX PX` then a compare-and-delete script, a feed append as `XADD`.
//! Each client has its own connection.

use super::{cas_keys, feed_names, lease_names};
use crate::error::Error;
use crate::target::{Cell, Client, Target};
use crate::workload::{Workload, LEASE_TTL_MS};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Script};

/// Sets KEYS[1] to ARGV[2] only if it still holds ARGV[1] ('' = absent).
const CAS: &str = r"
local c = redis.call('GET', KEYS[1])
if (c or '') == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end
return 0";

/// Deletes KEYS[1] only if it holds ARGV[1].
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

fn err(e: redis::RedisError) -> Error {
    Error::peer("redis", e)
}

/// A Redis server.
pub struct Redis {
    client: redis::Client,
}

impl Redis {
    /// The server at `url` (`redis://127.0.0.1:PORT`).
    pub fn new(url: &str) -> Result<Self, Error> {
        Ok(Redis {
            client: redis::Client::open(url).map_err(err)?,
        })
    }

    async fn conn(&self) -> Result<MultiplexedConnection, Error> {
        self.client.get_multiplexed_async_connection().await.map_err(err)
    }
}

impl Target for Redis {
    type Client = RedisClient;

    fn supports(&self, w: Workload) -> bool {
        matches!(
            w,
            Workload::CasHot | Workload::CasSpread | Workload::LeaseCycle | Workload::FeedAppend
        )
    }

    async fn prepare(&self, _cell: &Cell) -> Result<(), Error> {
        let mut c = self.conn().await?;
        redis::cmd("FLUSHALL")
            .query_async::<()>(&mut c)
            .await
            .map_err(err)
    }

    async fn connect(&self, _cell: &Cell, _index: usize) -> Result<RedisClient, Error> {
        Ok(RedisClient {
            conn: self.conn().await?,
            cas: Script::new(CAS),
            release: Script::new(RELEASE),
        })
    }

    async fn tally(&self, cell: &Cell) -> Result<u64, Error> {
        let mut c = self.conn().await?;
        match cell.workload {
            Workload::CasHot | Workload::CasSpread => {
                let keys: Vec<String> = cas_keys().collect();
                let values: Vec<Option<u64>> = c.mget(keys).await.map_err(err)?;
                Ok(values.into_iter().flatten().sum())
            }
            Workload::LeaseCycle => {
                let names: Vec<String> = lease_names().collect();
                c.exists(names).await.map_err(err)
            }
            Workload::FeedAppend => {
                let mut total = 0u64;
                for f in feed_names() {
                    total += c.xlen::<_, u64>(f).await.map_err(err)?;
                }
                Ok(total)
            }
            _ => Err(Error::Unsupported(cell.workload.name())),
        }
    }
}

/// One client's connection and its scripts.
pub struct RedisClient {
    conn: MultiplexedConnection,
    cas: Script,
    release: Script,
}

impl Client for RedisClient {
    async fn cas(&mut self, key: &str) -> Result<bool, Error> {
        let current: Option<u64> = self.conn.get(key).await.map_err(err)?;
        let read = current.map_or(String::new(), |v| v.to_string());
        let next = current.unwrap_or(0) + 1;
        let done: i64 = self
            .cas
            .key(key)
            .arg(read)
            .arg(next)
            .invoke_async(&mut self.conn)
            .await
            .map_err(err)?;
        Ok(done == 1)
    }

    async fn acquire(&mut self, name: &str, owner: &str) -> Result<Option<String>, Error> {
        let set: Option<String> = redis::cmd("SET")
            .arg(name)
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(LEASE_TTL_MS)
            .query_async(&mut self.conn)
            .await
            .map_err(err)?;
        Ok(set.map(|_| owner.to_owned()))
    }

    async fn release(&mut self, name: &str, token: &str) -> Result<bool, Error> {
        let done: i64 = self
            .release
            .key(name)
            .arg(token)
            .invoke_async(&mut self.conn)
            .await
            .map_err(err)?;
        Ok(done == 1)
    }

    async fn append(&mut self, feed: &str, id: &str, data: &str) -> Result<bool, Error> {
        let added: Option<String> = self
            .conn
            .xadd(feed, "*", &[("id", id), ("data", data)])
            .await
            .map_err(err)?;
        Ok(added.is_some())
    }
}
