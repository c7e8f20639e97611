//! The write path's transaction on PostgreSQL: advisory locks in sorted order
//! behind the visibility gate, the rows loaded with the storage clock, the
//! revision from the sequence, and the rows and changes written in bulk.

use super::{feeds, gates, idempotency, lock_id, now_sql, row_to_record, Failure, VISIBILITY_GATE};
use crate::kernel::WriteTx;
use crate::{codec, rev_i64, sql, Error};
use lockstep_core::{Effect, Millis, Mutation, Row, RowKey, Snapshot};
use std::collections::BTreeMap;

/// One command's transaction.
pub(super) struct PgTx<'a> {
    pub(super) tx: deadpool_postgres::Transaction<'a>,
    pub(super) fixed_now: Option<i64>,
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
        // The shared visibility gate first, then the rows' locks in order
        // (see `VISIBILITY_GATE`).
        let lock = self
            .tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(x)
                 FROM (SELECT pg_advisory_xact_lock_shared($1)) AS gate, unnest($2::int8[]) AS x",
            )
            .await?;
        // Pipelined: the load is sent right behind the locks, and PostgreSQL
        // runs it only once they are held (one round trip instead of two).
        let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&VISIBILITY_GATE, &locks];
        let (locked, loaded) = tokio::join!(
            self.tx.query(&lock, &lock_params),
            load_snapshot(&self.tx, ns, keys, self.fixed_now)
        );
        locked?;
        loaded
    }

    fn probe_revision(&self) -> u64 {
        u64::MAX
    }

    async fn allocate_revision(&mut self) -> Result<u64, Failure> {
        let next = self
            .tx
            .prepare_cached("SELECT nextval('lockstep_revision')")
            .await?;
        let rev: i64 = self.tx.query_one(&next, &[]).await?.try_get(0)?;
        Ok(crate::stored_u64("revision", rev)?)
    }

    async fn current_revision(&mut self) -> Result<u64, Failure> {
        let current = self
            .tx
            .prepare_cached("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lockstep_revision")
            .await?;
        let rev: i64 = self.tx.query_one(&current, &[]).await?.try_get(0)?;
        Ok(crate::stored_u64("revision", rev)?)
    }

    async fn persist(
        &mut self,
        ns: &str,
        effect: &Effect,
        revision: u64,
        now: Millis,
    ) -> Result<(), Failure> {
        persist(&self.tx, ns, effect, revision, now).await
    }

    async fn persist_mutation(&mut self, ns: &str, m: &Mutation) -> Result<(), Failure> {
        persist_row(&self.tx, ns, m).await
    }

    async fn commit(self) -> Result<(), Failure> {
        Ok(self.tx.commit().await?)
    }
}

/// Loads the rows of `keys` (locked by the caller) and the storage clock.
pub(super) async fn load_snapshot(
    tx: &deadpool_postgres::Transaction<'_>,
    ns: &str,
    keys: &[RowKey],
    fixed_now: Option<i64>,
) -> Result<(Snapshot, Millis), Failure> {
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
    // The clock is read after the locks are held, in the same statement as the
    // records, so `now` never predates what the previous holder of a lock wrote.
    let load = tx
        .prepare_cached(&format!(
            "SELECT {}, r.key, r.value, r.version, r.created_at, r.updated_at, r.expires_at
             FROM (SELECT 1) AS one
             LEFT JOIN records r ON r.ns = $1 AND r.key = ANY($2::text[])",
            now_sql(3)
        ))
        .await?;
    let mut now = Millis(0);
    for row in tx.query(&load, &[&ns, &record_keys, &fixed_now]).await? {
        now = Millis(row.try_get(0)?);
        if row.try_get::<_, Option<String>>(1)?.is_some() {
            let r = row_to_record(&row, 1)?;
            snapshot.insert(RowKey::Record(r.key.clone()), Some(Row::Record(r)));
        }
    }
    if !lease_names.is_empty() {
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT name, {} FROM leases WHERE ns = $1 AND name = ANY($2::text[])",
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
                "SELECT name, id, alive_until FROM lease_waiters WHERE ns = $1 AND name = ANY($2::text[])
                 ORDER BY name, id",
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
            .prepare_cached("SELECT resource, fence FROM fences WHERE ns = $1 AND resource = ANY($2::text[])")
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
    Ok((snapshot, now))
}

/// Writes the rows and change entries of `effect`: records and changes in one
/// statement, the other rows (single-row writes) one statement each.
async fn persist(
    tx: &deadpool_postgres::Transaction<'_>,
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
            other => persist_row(tx, ns, other).await?,
        }
    }
    if up_keys.is_empty() && del_keys.is_empty() && effect.changes.is_empty() {
        return Ok(());
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
    let stmt = tx
        .prepare_cached(
            "WITH up AS (
               INSERT INTO records (ns, key, value, version, created_at, updated_at, expires_at)
               SELECT $1::text, u.* FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[]) AS u
               ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = excluded.version,
                 created_at = excluded.created_at, updated_at = excluded.updated_at, expires_at = excluded.expires_at
               RETURNING 1
             ), del AS (
               DELETE FROM records WHERE ns = $1::text AND key = ANY($8::text[]) RETURNING 1
             ), ch AS (
               INSERT INTO changes (revision, idx, ns, kind, key, op, actor, forced, at)
               SELECT $9::int8, c.idx, $1::text, c.kind, c.key, c.op, c.actor, c.forced, $11::int8
               FROM unnest($12::int4[], $13::text[], $14::text[], $15::text[], $16::bool[], $10::text[])
                 AS c(idx, kind, key, op, forced, actor)
               RETURNING 1
             )
             SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM del), (SELECT count(*) FROM ch)",
        )
        .await?;
    let rev = rev_i64(revision)?;
    tx.query_one(
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
async fn persist_row(tx: &deadpool_postgres::Transaction<'_>, ns: &str, m: &Mutation) -> Result<(), Failure> {
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
