//! The write path's transaction on PostgreSQL, in as few round trips as the
//! semantics allow: `BEGIN`, this connection's writer mark (see
//! [`super::WRITER_MARK`]), the rows' advisory locks in sorted order and the
//! load are sent together; the revision comes from the sequence once the kernel
//! knows the command writes; the last write is sent together with `COMMIT`.

use super::{feeds, gates, idempotency, lock_id, now_sql, row_to_record, Failure, WRITER_MARK};
use crate::kernel::WriteTx;
use crate::{codec, rev_i64, sql, Error};
use deadpool_postgres::GenericClient;
use lockstep_core::{Effect, Millis, Mutation, Row, RowKey, Snapshot};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::task::Poll;

/// One command's transaction, begun by [`WriteTx::lock_and_load`]. `open` is
/// set while a transaction is open on `client`: whoever holds the connection
/// rolls it back (or closes the connection) if the kernel returns without
/// committing.
pub(super) struct PgTx<'a> {
    pub(super) client: &'a deadpool_postgres::Client,
    pub(super) fixed_now: Option<i64>,
    pub(super) open: &'a AtomicBool,
}

impl PgTx<'_> {
    /// Sends `COMMIT` right behind `last` (a write whose request is sent on its
    /// first poll) in one round trip. A failed `last` is the answer even though
    /// `COMMIT` then succeeds: PostgreSQL answers a `COMMIT` of a failed
    /// transaction by rolling it back. If `last` fails on its first poll, before
    /// PostgreSQL saw it, `COMMIT` is not sent: the transaction stays open for
    /// the caller to roll back.
    async fn commit_after<T>(self, last: impl Future<Output = Result<T, Failure>>) -> Result<(), Failure> {
        let mut last = pin!(last);
        let first = std::future::poll_fn(|cx| Poll::Ready(last.as_mut().poll(cx))).await;
        let (written, committed) = match first {
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Ready(Ok(_)) => (Ok(()), self.client.batch_execute("COMMIT").await),
            Poll::Pending => {
                let (written, committed) = tokio::join!(last, self.client.batch_execute("COMMIT"));
                (written.map(|_| ()), committed)
            }
        };
        self.open.store(false, Ordering::SeqCst);
        written?;
        Ok(committed?)
    }
}

impl WriteTx for PgTx<'_> {
    type Fail = Failure;

    async fn lock_and_load(&mut self, ns: &str, keys: &[RowKey]) -> Result<(Snapshot, Millis), Failure> {
        let mut locks: Vec<i64> = keys
            .iter()
            .filter_map(RowKey::lock)
            .map(|(kind, name)| lock_id(kind, ns, &name))
            .collect();
        locks.sort_unstable();
        locks.dedup();
        // Prepared before anything is sent, so the pipeline below goes out in
        // order: each request is sent on its future's first poll.
        let lock = self.client.prepare_cached(&LOCK_SQL).await?;
        // Pipelined: BEGIN, the locks, then the load, which PostgreSQL runs
        // only once the locks are held (one round trip instead of three).
        self.open.store(true, Ordering::SeqCst);
        let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&locks, &WRITER_MARK, &self.fixed_now];
        let (begun, locked, loaded) = tokio::join!(
            self.client.batch_execute("BEGIN"),
            self.client.query_one(&lock, &lock_params),
            load_snapshot(self.client, ns, keys)
        );
        begun?;
        let locked = locked?;
        let taken: i64 = locked.try_get(0)?;
        if usize::try_from(taken).ok() != Some(locks.len() + 1) {
            return Err(Error::Internal(format!("took {taken} of {} locks", locks.len() + 1)).into());
        }
        Ok((loaded?, Millis(locked.try_get(1)?)))
    }

    fn probe_revision(&self) -> u64 {
        u64::MAX
    }

    async fn allocate_revision(&mut self) -> Result<u64, Failure> {
        let next = self
            .client
            .prepare_cached("SELECT nextval('lockstep_revision')")
            .await?;
        let rev: i64 = self.client.query_one(&next, &[]).await?.try_get(0)?;
        Ok(crate::stored_u64("revision", rev)?)
    }

    async fn current_revision(&mut self) -> Result<u64, Failure> {
        let current = self
            .client
            .prepare_cached("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep_revision")
            .await?;
        let rev: i64 = self.client.query_one(&current, &[]).await?.try_get(0)?;
        Ok(crate::stored_u64("revision", rev)?)
    }

    async fn persist(
        &mut self,
        ns: &str,
        effect: &Effect,
        revision: u64,
        now: Millis,
    ) -> Result<(), Failure> {
        if persist_rows(self.client, ns, effect).await? {
            write_records(self.client, ns, effect, revision, now).await?;
        }
        Ok(())
    }

    async fn persist_mutation(&mut self, ns: &str, m: &Mutation) -> Result<(), Failure> {
        persist_row(self.client, ns, m).await
    }

    async fn commit(self) -> Result<(), Failure> {
        let committed = self.client.batch_execute("COMMIT").await;
        self.open.store(false, Ordering::SeqCst);
        Ok(committed?)
    }

    async fn persist_and_commit(
        self,
        ns: &str,
        effect: &Effect,
        revision: u64,
        now: Millis,
    ) -> Result<(), Failure> {
        let client = self.client;
        let rows: Vec<&Mutation> = effect.mutations.iter().filter(|m| !is_record(m)).collect();
        let records = !effect.changes.is_empty() || rows.len() < effect.mutations.len();
        let Some(statements) = rows
            .iter()
            .map(|m| single_statement(m))
            .collect::<Option<Vec<_>>>()
        else {
            // A row written in several statements: one at a time, then COMMIT.
            persist_rows(client, ns, effect).await?;
            return if records {
                self.commit_after(write_records(client, ns, effect, revision, now))
                    .await
            } else {
                self.commit().await
            };
        };
        // Cached now, so each write below sends its request on its first poll:
        // the writes and COMMIT go out in order, in one round trip.
        for sql in statements {
            client.prepare_cached(sql).await?;
        }
        if records {
            client.prepare_cached(WRITE_RECORDS).await?;
        }
        let mut writes: Vec<Write<'_>> = rows
            .into_iter()
            .map(|m| Box::pin(persist_row(client, ns, m)) as Write<'_>)
            .collect();
        if records {
            writes.push(Box::pin(write_records(client, ns, effect, revision, now)));
        }
        self.commit_after(in_order(writes)).await
    }

    async fn persist_mutation_and_commit(self, ns: &str, m: &Mutation) -> Result<(), Failure> {
        match m {
            // The idempotency entry, a single prepared statement: sent with COMMIT.
            Mutation::Put(Row::Idem(_)) => {
                // Cached now, so the write is sent on its first poll, before COMMIT.
                self.client.prepare_cached(sql::UPSERT_IDEMPOTENCY).await?;
                let client = self.client;
                self.commit_after(persist_row(client, ns, m)).await
            }
            other => {
                persist_row(self.client, ns, other).await?;
                self.commit().await
            }
        }
    }
}

/// The statement that takes this connection's writer mark (see
/// [`super::WRITER_MARK`], `$2`) and then the rows' advisory locks (`$1`,
/// sorted), and answers how many locks it took (to check that each was taken)
/// and the storage clock read once they are all held, so `now` never predates
/// what the previous holder of a lock wrote. `UNION ALL` runs its arms in
/// order, and the aggregate's row is computed after all its input.
static LOCK_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT count(l), {} FROM (
           SELECT pg_advisory_xact_lock_shared($2::int4, pg_backend_pid()) AS l
           UNION ALL SELECT pg_advisory_xact_lock(x) FROM unnest($1::int8[]) AS x
         ) AS locks",
        now_sql(3)
    )
});

/// Loads the rows of `keys` (locked by the caller).
pub(super) async fn load_snapshot(
    tx: &impl GenericClient,
    ns: &str,
    keys: &[RowKey],
) -> Result<Snapshot, Failure> {
    let mut snapshot: Snapshot = keys.iter().map(|k| (k.clone(), None)).collect();
    let of = |f: fn(&RowKey) -> Option<&str>| -> Vec<&str> { keys.iter().filter_map(f).collect() };
    let record_keys = of(|k| if let RowKey::Record(n) = k { Some(n) } else { None });
    let lease_names = of(|k| if let RowKey::Lease(n) = k { Some(n) } else { None });
    let waiter_names = of(|k| if let RowKey::Waiters(n) = k { Some(n) } else { None });
    let resources = of(|k| if let RowKey::Fence(n) = k { Some(n) } else { None });
    let feed_configs = of(|k| {
        if let RowKey::FeedConfig(n) = k {
            Some(n)
        } else {
            None
        }
    });
    let mut entries_by_feed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in keys {
        if let RowKey::FeedEntry(f, id) = k {
            entries_by_feed.entry(f.as_str()).or_default().push(id.as_str());
        }
    }
    // Each lookup is by key, one index probe per key whatever the table's
    // statistics (the generic plan of `key = ANY($2)` may scan the namespace).
    if !record_keys.is_empty() {
        let load = tx
            .prepare_cached(
                "SELECT x.* FROM unnest($2::text[]) AS w(key) CROSS JOIN LATERAL (
                   SELECT key, value, version, created_at, updated_at, expires_at FROM records
                   WHERE ns = $1 AND key = w.key OFFSET 0) AS x",
            )
            .await?;
        for row in tx.query(&load, &[&ns, &record_keys]).await? {
            let r = row_to_record(&row, 0)?;
            snapshot.insert(RowKey::Record(r.key.clone()), Some(Row::Record(r)));
        }
    }
    if !lease_names.is_empty() {
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT x.* FROM unnest($2::text[]) AS w(name) CROSS JOIN LATERAL (
                   SELECT name, {} FROM leases WHERE ns = $1 AND name = w.name OFFSET 0) AS x",
                codec::LEASE_COLUMNS
            ))
            .await?;
        for row in tx.query(&stmt, &[&ns, &lease_names]).await? {
            let lease = codec::lease_from(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
            )?;
            snapshot.insert(RowKey::Lease(lease.name.clone()), Some(Row::Lease(lease)));
        }
    }
    if !waiter_names.is_empty() {
        let stmt = tx
            .prepare_cached(
                "SELECT x.* FROM unnest($2::text[]) AS w(name) CROSS JOIN LATERAL (
                   SELECT name, id, alive_until FROM lease_waiters WHERE ns = $1 AND name = w.name OFFSET 0) AS x
                 ORDER BY 1, 2",
            )
            .await?;
        for row in tx.query(&stmt, &[&ns, &waiter_names]).await? {
            let name: String = row.try_get(0)?;
            let w = codec::waiter_from(row.try_get(1)?, row.try_get(2)?)?;
            let entry = snapshot.entry(RowKey::Waiters(name.clone())).or_insert(None);
            match entry {
                Some(Row::Waiters { waiters, .. }) => waiters.push(w),
                _ => {
                    *entry = Some(Row::Waiters {
                        name,
                        waiters: vec![w],
                    })
                }
            }
        }
    }
    if !resources.is_empty() {
        let stmt = tx
            .prepare_cached(
                "SELECT x.* FROM unnest($2::text[]) AS w(resource) CROSS JOIN LATERAL (
                   SELECT resource, fence FROM fences WHERE ns = $1 AND resource = w.resource OFFSET 0) AS x",
            )
            .await?;
        for row in tx.query(&stmt, &[&ns, &resources]).await? {
            let resource: String = row.try_get(0)?;
            let fence = crate::stored_u64("fence", row.try_get(1)?)?;
            snapshot.insert(
                RowKey::Fence(resource.clone()),
                Some(Row::Fence { resource, fence }),
            );
        }
    }
    for (feed, ids) in entries_by_feed {
        for e in feeds::load_entries(tx, ns, feed, &ids).await? {
            snapshot.insert(
                RowKey::FeedEntry(e.feed.clone(), e.id.clone()),
                Some(Row::FeedEntry(e)),
            );
        }
    }
    if !feed_configs.is_empty() {
        for (feed, config) in feeds::load_configs(tx, ns, &feed_configs).await? {
            snapshot.insert(
                RowKey::FeedConfig(feed.clone()),
                Some(Row::FeedConfig { feed, config }),
            );
        }
    }
    let gate_ids = of(|k| if let RowKey::Gate(n) = k { Some(n) } else { None });
    if !gate_ids.is_empty() {
        for g in gates::load_gates(tx, ns, &gate_ids).await? {
            snapshot.insert(RowKey::Gate(g.id.clone()), Some(Row::Gate(g)));
        }
    }
    let ticket_ids = of(|k| if let RowKey::Ticket(n) = k { Some(n) } else { None });
    if !ticket_ids.is_empty() {
        for t in gates::load_tickets(tx, ns, &ticket_ids).await? {
            snapshot.insert(RowKey::Ticket(t.id.clone()), Some(Row::Ticket(t)));
        }
    }
    for gate in of(|k| {
        if let RowKey::GateTickets(n) = k {
            Some(n)
        } else {
            None
        }
    }) {
        let tickets = gates::load_unfinished(tx, ns, gate).await?;
        snapshot.insert(
            RowKey::GateTickets(gate.to_owned()),
            Some(Row::GateTickets {
                gate: gate.to_owned(),
                tickets,
            }),
        );
    }
    let idem_keys: Vec<(&str, &str)> = keys
        .iter()
        .filter_map(|k| {
            if let RowKey::Idem(scope, key) = k {
                Some((scope.as_str(), key.as_str()))
            } else {
                None
            }
        })
        .collect();
    if !idem_keys.is_empty() {
        for e in idempotency::load(tx, ns, &idem_keys).await? {
            snapshot.insert(RowKey::Idem(e.scope.clone(), e.key.clone()), Some(Row::Idem(e)));
        }
    }
    Ok(snapshot)
}

/// One write of a pipeline.
type Write<'a> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;

/// Runs `writes` together, polling them in order (each sends its request on its
/// first poll, so they reach PostgreSQL in order), and answers the first
/// failure in that order: the cause, as the writes after a failed one fail only
/// because the transaction was aborted. A write that fails on its first poll
/// failed before PostgreSQL saw it (encoding a parameter), so PostgreSQL will
/// not abort the transaction: that failure is answered at once, on the first
/// poll, so that [`PgTx::commit_after`] never sends `COMMIT` behind it.
async fn in_order(mut writes: Vec<Write<'_>>) -> Result<(), Failure> {
    let mut done: Vec<Option<Result<(), Failure>>> = writes.iter().map(|_| None).collect();
    let mut first = true;
    let early = std::future::poll_fn(|cx| {
        let mut pending = false;
        for (w, d) in writes.iter_mut().zip(done.iter_mut()) {
            if d.is_none() {
                match w.as_mut().poll(cx) {
                    Poll::Ready(Err(e)) if first => return Poll::Ready(Some(e)),
                    Poll::Ready(r) => *d = Some(r),
                    Poll::Pending => pending = true,
                }
            }
        }
        first = false;
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    })
    .await;
    if let Some(e) = early {
        return Err(e);
    }
    done.into_iter().flatten().collect()
}

/// Whether `m` writes a record (those go in bulk, see [`write_records`]).
fn is_record(m: &Mutation) -> bool {
    matches!(
        m,
        Mutation::Put(Row::Record(_)) | Mutation::Delete(RowKey::Record(_))
    )
}

/// The statement [`persist_row`] sends for `m` when it sends exactly one.
fn single_statement(m: &Mutation) -> Option<&'static str> {
    Some(match m {
        Mutation::Put(Row::Lease(_)) => sql::UPSERT_LEASES,
        Mutation::Put(Row::Fence { .. }) => sql::UPSERT_FENCES,
        Mutation::Put(Row::FeedEntry(_)) => sql::UPSERT_FEED_ENTRIES,
        Mutation::Put(Row::FeedConfig { .. }) => sql::UPSERT_FEED_CONFIGS,
        Mutation::Put(Row::Gate(_)) => sql::UPSERT_GATES,
        Mutation::Put(Row::Ticket(_)) => sql::UPSERT_TICKETS,
        Mutation::Put(Row::Idem(_)) => sql::UPSERT_IDEMPOTENCY,
        Mutation::Delete(key) => sql::delete_row(key).0,
        _ => return None,
    })
}

/// Writes the non-record rows of `effect`, one statement each; answers whether
/// records or changes remain for [`write_records`].
async fn persist_rows(c: &impl GenericClient, ns: &str, effect: &Effect) -> Result<bool, Failure> {
    let mut records = !effect.changes.is_empty();
    for m in &effect.mutations {
        if is_record(m) {
            records = true;
        } else {
            persist_row(c, ns, m).await?;
        }
    }
    Ok(records)
}

/// Upserts and deletes the records of `effect` and appends its changes, in one
/// statement.
const WRITE_RECORDS: &str = "WITH up AS (
   INSERT INTO records (ns, key, value, version, created_at, updated_at, expires_at)
   SELECT $1::text, u.* FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[]) AS u
   ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = excluded.version,
     created_at = excluded.created_at, updated_at = excluded.updated_at, expires_at = excluded.expires_at
   RETURNING 1
 ), del AS (
   DELETE FROM records WHERE ns = $1::text AND key = ANY($8::text[]) AND cardinality($8::text[]) > 0
   RETURNING 1
 ), ch AS (
   INSERT INTO changes (revision, idx, ns, kind, key, op, actor, forced, at)
   SELECT $9::int8, c.idx, $1::text, c.kind, c.key, c.op, c.actor, c.forced, $11::int8
   FROM unnest($12::int4[], $13::text[], $14::text[], $15::text[], $16::bool[], $10::text[])
     AS c(idx, kind, key, op, forced, actor)
   RETURNING 1
 )
 SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM del), (SELECT count(*) FROM ch)";

/// The records and change entries of `effect` (see [`WRITE_RECORDS`]). Once
/// the statement is cached, its request is sent on the first poll.
async fn write_records(
    c: &impl GenericClient,
    ns: &str,
    effect: &Effect,
    revision: u64,
    now: Millis,
) -> Result<(), Failure> {
    let mut up_keys = Vec::new();
    let mut up_values = Vec::new();
    let mut up_versions = Vec::new();
    let mut up_created = Vec::new();
    let mut up_updated = Vec::new();
    let mut up_expires: Vec<Option<i64>> = Vec::new();
    let mut del_keys = Vec::new();
    for m in &effect.mutations {
        match m {
            Mutation::Put(Row::Record(r)) => {
                up_keys.push(r.key.as_str());
                up_values.push(serde_json::to_string(&r.value).map_err(|e| Error::Internal(e.to_string()))?);
                up_versions.push(rev_i64(r.version)?);
                up_created.push(r.created_at.0);
                up_updated.push(r.updated_at.0);
                up_expires.push(r.expires_at.map(|e| e.0));
            }
            Mutation::Delete(RowKey::Record(k)) => del_keys.push(k.as_str()),
            _ => {}
        }
    }
    let idx: Vec<i32> = effect
        .changes
        .iter()
        .map(|c| i32::try_from(c.index).unwrap_or(i32::MAX))
        .collect();
    let kinds: Vec<&str> = effect.changes.iter().map(|c| c.kind.as_str()).collect();
    let ckeys: Vec<&str> = effect.changes.iter().map(|c| c.key.as_str()).collect();
    let ops: Vec<&str> = effect.changes.iter().map(|c| c.op.as_str()).collect();
    let forced: Vec<bool> = effect.changes.iter().map(|c| c.forced).collect();
    // Each change names its own actor: an expiry logged inside a caller's
    // acquire is the system's, not the caller's.
    let actors: Vec<&str> = effect.changes.iter().map(|c| c.actor.as_str()).collect();
    let stmt = c.prepare_cached(WRITE_RECORDS).await?;
    let rev = rev_i64(revision)?;
    c.query_one(
        &stmt,
        &[
            &ns,
            &up_keys,
            &up_values,
            &up_versions,
            &up_created,
            &up_updated,
            &up_expires,
            &del_keys,
            &rev,
            &actors,
            &now.0,
            &idx,
            &kinds,
            &ckeys,
            &ops,
            &forced,
        ],
    )
    .await?;
    Ok(())
}

/// Writes one non-record row.
async fn persist_row(tx: &impl GenericClient, ns: &str, m: &Mutation) -> Result<(), Failure> {
    match m {
        Mutation::Put(Row::Lease(l)) => {
            let stmt = tx.prepare_cached(sql::UPSERT_LEASES).await?;
            let fence = rev_i64(l.fence)?;
            let last_waiter = rev_i64(l.last_waiter)?;
            tx.execute(
                &stmt,
                &[
                    &ns,
                    &l.name,
                    &l.token,
                    &l.holder,
                    &fence,
                    &l.acquired_at.0,
                    &l.expires_at.0,
                    &last_waiter,
                ],
            )
            .await?;
        }
        Mutation::Put(Row::Waiters { name, waiters }) => {
            let ids = waiters
                .iter()
                .map(|w| rev_i64(w.id))
                .collect::<Result<Vec<i64>, Error>>()?;
            let alive: Vec<i64> = waiters.iter().map(|w| w.alive_until.0).collect();
            let clear = tx
                .prepare_cached("DELETE FROM lease_waiters WHERE ns = $1 AND name = $2")
                .await?;
            tx.execute(&clear, &[&ns, name]).await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO lease_waiters (ns, name, id, alive_until)
                     SELECT $1, $2, w.id, w.alive FROM unnest($3::int8[], $4::int8[]) AS w(id, alive)",
                )
                .await?;
            tx.execute(&stmt, &[&ns, name, &ids, &alive]).await?;
        }
        Mutation::Put(Row::Fence { resource, fence }) => {
            let stmt = tx.prepare_cached(sql::UPSERT_FENCES).await?;
            tx.execute(&stmt, &[&ns, resource, &rev_i64(*fence)?]).await?;
        }
        Mutation::Put(Row::FeedEntry(e)) => feeds::put_entry(tx, ns, e).await?,
        Mutation::Put(Row::FeedConfig { feed, config }) => feeds::put_config(tx, ns, feed, config).await?,
        Mutation::MarkRead { feed, selector } => feeds::mark_read(tx, ns, feed, selector).await?,
        Mutation::ResetScrubbed { feed } => feeds::reset_scrubbed(tx, ns, feed).await?,
        Mutation::Put(Row::Gate(g)) => gates::put_gate(tx, ns, g).await?,
        Mutation::Put(Row::Idem(e)) => idempotency::put(tx, ns, e).await?,
        Mutation::Put(Row::Ticket(t)) => gates::put_ticket(tx, ns, t).await?,
        Mutation::Put(Row::GateTickets { .. }) => {
            return Err(Failure::Final(Error::Internal(
                "a gate's ticket set is written ticket by ticket".into(),
            )));
        }
        Mutation::Delete(key) => {
            let (sql, names) = sql::delete_row(key);
            let stmt = tx.prepare_cached(sql).await?;
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&ns];
            params.extend(
                names
                    .iter()
                    .map(|n| n as &(dyn tokio_postgres::types::ToSql + Sync)),
            );
            tx.execute(&stmt, &params).await?;
        }
        Mutation::Put(Row::Record(_)) => {
            return Err(Failure::Final(Error::Internal(
                "records are written in bulk".into(),
            )));
        }
    }
    Ok(())
}
