//! Records and transactions (SPEC §4, §5), and `update_with`.

use crate::http::{seg, Req};
use crate::paging::{pager, Pager};
use crate::{Error, Ns};
use lockstep_api::records::{
    ListQuery, PreconditionQuery, PutRecordBody, Record, RecordDeleted, RecordPatched, RecordPut, Records,
    TxnResult,
};
use lockstep_api::{Page, Txn};
use reqwest::Method;
use serde_json::Value;

/// The answer of a PUT, with how it was answered.
///
/// ```no_run
/// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
/// let w = app.put("a", &lockstep_client::api::records::PutRecordBody::new(1.into())).await?;
/// if w.created { println!("created at version {}", w.put.version) }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// `{key, version, revision}`.
    pub put: RecordPut,
    /// Whether it was created (201) rather than replaced (200).
    pub created: bool,
    /// Whether the answer was the stored one of an earlier attempt of the
    /// same call (`Idempotent-Replayed`): a retry that did not apply twice.
    pub replayed: bool,
}

impl Ns {
    fn record_path(&self, key: &str) -> String {
        self.at(&format!("records/{}", seg(key)))
    }

    /// Reads a record; `None` when absent.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// if let Some(r) = app.get("user/1").await? { println!("{} at v{}", r.value, r.version) }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        match self.t().send(&Req::get(self.record_path(key))).await {
            Ok(a) => Ok(Some(a.body)),
            Err(e) if e.code() == Some("not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a record (only at `expected_version` when the body has one;
    /// 0: only if absent). A refused precondition is `version_mismatch` with
    /// [`Error::current`].
    ///
    /// ```no_run
    /// use lockstep_client::api::records::PutRecordBody;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let w = app.put("user/1", &PutRecordBody::new(serde_json::json!({"plan": "pro"})).expected_version(3)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, key: &str, body: &PutRecordBody) -> Result<Written, Error> {
        let req = Req::write(Method::PUT, self.record_path(key)).json(body)?;
        let a = self.t().send::<RecordPut>(&req).await?;
        Ok(Written {
            put: a.body,
            created: a.status == 201,
            replayed: a.replayed,
        })
    }

    /// Patches a record on the server with a JSON merge patch (RFC 7396),
    /// only at `expected_version` when given.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let p = app.merge_patch("user/1", &serde_json::json!({"plan": null}), None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn merge_patch(
        &self,
        key: &str,
        patch: &Value,
        expected_version: Option<u64>,
    ) -> Result<RecordPatched, Error> {
        self.patch(key, patch, "application/merge-patch+json", expected_version)
            .await
    }

    /// Patches a record with a JSON Patch (RFC 6902: an array of operations).
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let ops = serde_json::json!([{"op": "replace", "path": "/plan", "value": "free"}]);
    /// let p = app.json_patch("user/1", &ops, Some(4)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn json_patch(
        &self,
        key: &str,
        ops: &Value,
        expected_version: Option<u64>,
    ) -> Result<RecordPatched, Error> {
        self.patch(key, ops, "application/json-patch+json", expected_version)
            .await
    }

    async fn patch(
        &self,
        key: &str,
        doc: &Value,
        media: &'static str,
        expected_version: Option<u64>,
    ) -> Result<RecordPatched, Error> {
        let mut req = Req::write(Method::PATCH, self.record_path(key))
            .json(doc)?
            .query(&PreconditionQuery { expected_version })?;
        req.content_type = media;
        Ok(self.t().send(&req).await?.body)
    }

    /// Deletes a record, only at `expected_version` when given; 404
    /// `not_found` when absent.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// app.delete("user/1", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: &str, expected_version: Option<u64>) -> Result<RecordDeleted, Error> {
        let req = Req::write(Method::DELETE, self.record_path(key))
            .query(&PreconditionQuery { expected_version })?;
        Ok(self.t().send(&req).await?.body)
    }

    /// The live records in key order (`prefix`, page size and start from `q`).
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// use lockstep_client::api::records::ListQuery;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let users: Vec<_> = app.records(ListQuery { prefix: "user/".into(), ..Default::default() })
    ///     .try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn records(&self, q: ListQuery) -> Pager<Record> {
        let ns = self.clone();
        pager(move |cursor| {
            let (ns, mut q) = (ns.clone(), q.clone());
            async move {
                q.cursor = cursor.or(q.cursor);
                let req = Req::get(ns.at("records")).query(&q)?;
                let p: Page<Records> = ns.t().send(&req).await?.body;
                Ok((p.items.records, p.next_cursor))
            }
        })
    }

    /// Runs a transaction `{compare, success, failure}` (SPEC §5): when every
    /// compare holds, the `success` operations apply atomically, else `failure`.
    ///
    /// ```no_run
    /// use lockstep_client::api::{Compare, Op, Txn};
    /// use serde_json::json;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let r = app.txn(&Txn {
    ///     compare: vec![Compare::Version { key: "a".into(), version: 0 }],
    ///     success: vec![Op::put("a", json!(1)), Op::incr("puts", 1)],
    ///     failure: vec![Op::get("a")],
    /// }).await?;
    /// assert!(r.succeeded);
    /// # Ok(()) }
    /// ```
    pub async fn txn(&self, txn: &Txn) -> Result<TxnResult, Error> {
        let req = Req::write(Method::POST, self.at("txn")).json(txn)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// Read-modify-write with optimistic concurrency: reads `key`, writes
    /// `f(current value)` at the version read, and on `version_mismatch`
    /// applies `f` again to the record found, up to `attempts` times. Then
    /// [`Error::Conflict`] holds the last local value and the remote record.
    ///
    /// ```no_run
    /// use serde_json::json;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let w = app.update_with("counter", |v| json!(v.and_then(|v| v.as_i64()).unwrap_or(0) + 1), 20).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_with<F>(&self, key: &str, mut f: F, attempts: u32) -> Result<Written, Error>
    where
        F: FnMut(Option<&Value>) -> Value,
    {
        let mut current = self.get(key).await?.map(|r| lockstep_api::problem::Current {
            version: r.version,
            value: r.value,
        });
        let mut n = 0;
        loop {
            n += 1;
            let local = f(current.as_ref().map(|c| &c.value));
            let version = current.as_ref().map_or(0, |c| c.version);
            let body = PutRecordBody::new(local.clone()).expected_version(version);
            match self.put(key, &body).await {
                Ok(w) => return Ok(w),
                Err(e) if e.code() == Some("version_mismatch") => {
                    current = match e.current() {
                        Some(c) => c.cloned(),
                        None => self.get(key).await?.map(|r| lockstep_api::problem::Current {
                            version: r.version,
                            value: r.value,
                        }),
                    };
                    if n >= attempts {
                        return Err(Error::Conflict {
                            key: key.to_owned(),
                            local,
                            remote: current,
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}
