//! etcd: CAS as a get then a transaction comparing the key's mod_revision, a
//! lease as a transaction putting the owner only where create_revision is 0
//! and a compare-value delete, a feed append as a put of a unique key. Each
//! client has its own gRPC channel.

use super::lease_names;
use crate::error::Error;
use crate::target::{Cell, Client, Target};
use crate::workload::Workload;
use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, KvClient, Txn, TxnOp};

fn err(e: etcd_client::Error) -> Error {
    Error::peer("etcd", e)
}

/// An etcd server.
pub struct Etcd {
    endpoint: String,
}

impl Etcd {
    /// The server at `endpoint` (`http://127.0.0.1:PORT`).
    pub fn new(endpoint: &str) -> Self {
        Etcd {
            endpoint: endpoint.to_owned(),
        }
    }

    async fn kv(&self) -> Result<KvClient, Error> {
        let client = etcd_client::Client::connect([self.endpoint.as_str()], None)
            .await
            .map_err(err)?;
        Ok(client.kv_client())
    }

    async fn count(&self, prefix: &str) -> Result<u64, Error> {
        let opts = GetOptions::new().with_prefix().with_count_only();
        let r = self.kv().await?.get(prefix, Some(opts)).await.map_err(err)?;
        u64::try_from(r.count()).map_err(|e| Error::Unexpected(e.to_string()))
    }
}

impl Target for Etcd {
    type Client = EtcdClient;

    fn supports(&self, w: Workload) -> bool {
        matches!(
            w,
            Workload::CasHot | Workload::CasSpread | Workload::LeaseCycle | Workload::FeedAppend
        )
    }

    async fn prepare(&self, _cell: &Cell) -> Result<(), Error> {
        let mut kv = self.kv().await?;
        for prefix in ["c/", "l", "feed/"] {
            kv.delete(prefix, Some(DeleteOptions::new().with_prefix()))
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn connect(&self, _cell: &Cell, _index: usize) -> Result<EtcdClient, Error> {
        Ok(EtcdClient { kv: self.kv().await? })
    }

    async fn tally(&self, cell: &Cell) -> Result<u64, Error> {
        match cell.workload {
            Workload::CasHot | Workload::CasSpread => {
                let r = self
                    .kv()
                    .await?
                    .get("c/", Some(GetOptions::new().with_prefix()))
                    .await
                    .map_err(err)?;
                Ok(r.kvs()
                    .iter()
                    .filter_map(|kv| std::str::from_utf8(kv.value()).ok()?.parse::<u64>().ok())
                    .sum())
            }
            Workload::LeaseCycle => {
                let (mut held, mut kv) = (0, self.kv().await?);
                for name in lease_names() {
                    let r = kv.get(name, None).await.map_err(err)?;
                    held += r.kvs().len() as u64;
                }
                Ok(held)
            }
            Workload::FeedAppend => self.count("feed/").await,
            _ => Err(Error::Unsupported(cell.workload.name())),
        }
    }
}

/// One client's channel.
pub struct EtcdClient {
    kv: KvClient,
}

impl EtcdClient {
    async fn txn(&mut self, when: Compare, then: TxnOp) -> Result<bool, Error> {
        let txn = Txn::new().when([when]).and_then([then]);
        Ok(self.kv.txn(txn).await.map_err(err)?.succeeded())
    }
}

impl Client for EtcdClient {
    async fn cas(&mut self, key: &str) -> Result<bool, Error> {
        let r = self.kv.get(key, None).await.map_err(err)?;
        let (when, next) = match r.kvs().first() {
            None => (Compare::create_revision(key, CompareOp::Equal, 0), 1),
            Some(kv) => {
                let v: u64 = std::str::from_utf8(kv.value())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Error::Unexpected(format!("etcd {key}: not a counter")))?;
                (
                    Compare::mod_revision(key, CompareOp::Equal, kv.mod_revision()),
                    v + 1,
                )
            }
        };
        self.txn(when, TxnOp::put(key, next.to_string(), None)).await
    }

    async fn acquire(&mut self, name: &str, owner: &str) -> Result<Option<String>, Error> {
        let when = Compare::create_revision(name, CompareOp::Equal, 0);
        let got = self.txn(when, TxnOp::put(name, owner, None)).await?;
        Ok(got.then(|| owner.to_owned()))
    }

    async fn release(&mut self, name: &str, token: &str) -> Result<bool, Error> {
        let when = Compare::value(name, CompareOp::Equal, token);
        self.txn(when, TxnOp::delete(name, None)).await
    }

    async fn append(&mut self, feed: &str, id: &str, data: &str) -> Result<bool, Error> {
        self.kv
            .put(format!("feed/{feed}/{id}"), data, None)
            .await
            .map_err(err)?;
        Ok(true)
    }
}
