//! One command applied to the model: one arm per command (SPEC §4-§9).

use super::*;

impl Model {
    /// Applies `cmd` at revision `rev` and instant `now`. `queued_id` is the
    /// id the core handed a new waiter (any id above every earlier one is
    /// right; the driver checks that).
    pub fn step(
        &mut self,
        cmd: &Command,
        rev: u64,
        now: i64,
        limits: &Limits,
        queued_id: Option<u64>,
    ) -> Expect {
        match cmd {
            Command::Put { key, req } => {
                if req.ttl_ms == Some(0) {
                    return refused("invalid_request");
                }
                let live = self.live(key, now);
                if !req.force {
                    if let Err(code) = precondition(&req.precondition, live) {
                        return refused(code);
                    }
                }
                let created = live.is_none();
                let rec = self.write(key, req.value.clone(), req.ttl_ms.map(|t| now + ms(t)), rev, now);
                let view = rec.view();
                self.records.insert(key.clone(), rec);
                let mut sig = record_sig(key, "put");
                // SPEC §4, docs/records.md and docs/changes.md: every `force`
                // write is marked `forced`, with or without a precondition.
                sig.forced = req.force;
                wrote(
                    Answer::Record {
                        record: view,
                        created: Some(created),
                    },
                    vec![sig],
                )
            }
            Command::Patch {
                key,
                doc,
                precondition: pre,
            } => {
                let live = self.live(key, now);
                if let Err(code) = precondition(pre, live) {
                    return refused(code);
                }
                // SPEC §15: PATCH of an absent record is 404.
                let Some(cur) = live else {
                    return refused("not_found");
                };
                let value = match doc {
                    PatchDoc::Merge(m) => merge_patch(&cur.value, m),
                    PatchDoc::Json(p) => {
                        let ops = serde_json::to_value(p).unwrap_or(Value::Null);
                        match json_patch(&cur.value, &ops) {
                            Ok(v) => v,
                            Err(true) => return refused(format!("patch_test_failed@{}", current(Some(cur)))),
                            Err(false) => return refused("invalid_patch"),
                        }
                    }
                };
                // A patch keeps the TTL.
                let rec = self.write(key, value, cur.expires_at, rev, now);
                let view = rec.view();
                self.records.insert(key.clone(), rec);
                wrote(
                    Answer::Record {
                        record: view,
                        created: None,
                    },
                    vec![record_sig(key, "patch")],
                )
            }
            Command::Delete {
                key,
                precondition: pre,
            } => {
                let live = self.live(key, now);
                if let Err(code) = precondition(pre, live) {
                    return refused(code);
                }
                if live.is_none() {
                    return refused("not_found");
                }
                self.records.remove(key);
                wrote(Answer::Deleted, vec![record_sig(key, "delete")])
            }
            Command::Expire { key } => {
                // SPEC §15: an expired record is reported as a change when it is purged.
                if self.records.get(key).is_some_and(|r| !r.live(now)) {
                    self.records.remove(key);
                    wrote(Answer::Expired(true), vec![record_sig(key, "expire")])
                } else {
                    answer(Answer::Expired(false))
                }
            }
            Command::Txn(t) => self.txn(t, rev, now, limits),
            Command::Acquire { name, req } => {
                if !(limits.lease_ttl_ms_min..=limits.lease_ttl_ms_max).contains(&req.ttl_ms) {
                    return refused("invalid_request");
                }
                let live_waiters: Vec<u64> = self
                    .queues
                    .get(name)
                    .map(|q| q.iter().filter(|(_, a)| **a > now).map(|(id, _)| *id).collect())
                    .unwrap_or_default();
                let lease = self.leases.get(name);
                let held = lease.and_then(|l| l.holder_token(now)).is_some();
                // SPEC §15: while anyone waits, a newcomer is refused; waiters go in order.
                let first = match req.wait {
                    None | Some(None) => live_waiters.is_empty(),
                    Some(Some(id)) => live_waiters.first() == Some(&id),
                };
                if !held && first {
                    let mut changes = vec![];
                    if lease.is_some_and(|l| l.token.is_some() && l.expires_at <= now) {
                        // The unswept expiry of the last holder is logged first, by the system.
                        let mut sig = ChangeSig::new("lease", name.clone(), "expire");
                        sig.system = true;
                        changes.push(sig);
                    }
                    changes.push(ChangeSig::new("lease", name.clone(), "acquire"));
                    let row = LeaseRow {
                        token: Some(req.token.clone()),
                        holder: req.holder.clone(),
                        fence: rev,
                        acquired_at: now,
                        expires_at: now + ms(req.ttl_ms),
                    };
                    if let (Some(Some(id)), Some(q)) = (req.wait, self.queues.get_mut(name)) {
                        q.remove(&id);
                    }
                    let a = Answer::Lease {
                        token: row.token.clone(),
                        holder: row.holder.clone(),
                        fence: row.fence,
                        acquired_at: row.acquired_at,
                        expires_at: row.expires_at,
                    };
                    self.leases.insert(name.clone(), row);
                    return wrote(a, changes);
                }
                let holder = lease.filter(|l| l.holder_token(now).is_some());
                let alive = now + ms(WAITER_ALIVE_MS);
                match req.wait {
                    None => refused(format!(
                        "lease_held by {:?} until {:?} with {} waiting",
                        holder.and_then(|l| l.holder.clone()),
                        holder.map(|l| l.expires_at),
                        live_waiters.len()
                    )),
                    Some(None) => {
                        let id = queued_id.unwrap_or(u64::MAX);
                        self.queues.entry(name.clone()).or_default().insert(id, alive);
                        self.waiter_ids.insert(name.clone(), id);
                        answer(Answer::Queued { id })
                    }
                    Some(Some(id)) => {
                        // A waiter refreshes its row once less than the refresh margin remains.
                        let q = self.queues.entry(name.clone()).or_default();
                        if q.get(&id).is_none_or(|a| a - now <= ms(WAITER_REFRESH_MS)) {
                            q.insert(id, alive);
                        }
                        answer(Answer::Queued { id })
                    }
                }
            }
            Command::Renew { name, token, ttl_ms } => {
                if !(limits.lease_ttl_ms_min..=limits.lease_ttl_ms_max).contains(ttl_ms) {
                    return refused("invalid_request");
                }
                match self.leases.get_mut(name) {
                    Some(l) if l.holder_token(now) == Some(token) => {
                        l.expires_at = now + ms(*ttl_ms);
                        let a = Answer::Lease {
                            token: l.token.clone(),
                            holder: l.holder.clone(),
                            fence: l.fence,
                            acquired_at: l.acquired_at,
                            expires_at: l.expires_at,
                        };
                        wrote(a, vec![ChangeSig::new("lease", name.clone(), "renew")])
                    }
                    // SPEC §6: a token that does not hold the lease cannot renew.
                    _ => refused("lease_lost"),
                }
            }
            Command::Release { name, token } => match self.leases.get_mut(name) {
                Some(l) if l.holder_token(now) == Some(token) => {
                    l.token = None;
                    l.expires_at = now;
                    wrote(
                        Answer::Released(true),
                        vec![ChangeSig::new("lease", name.clone(), "release")],
                    )
                }
                _ => answer(Answer::Released(false)),
            },
            Command::Break { name } => match self.leases.get_mut(name) {
                Some(l) if l.holder_token(now).is_some() => {
                    l.token = None;
                    l.expires_at = now;
                    wrote(
                        Answer::Broken(true),
                        vec![ChangeSig::new("lease", name.clone(), "break")],
                    )
                }
                _ => answer(Answer::Broken(false)),
            },
            Command::ExpireLease { name } => match self.leases.get_mut(name) {
                Some(l) if l.token.is_some() && l.expires_at <= now => {
                    l.token = None;
                    wrote(
                        Answer::LeaseExpired(true),
                        vec![ChangeSig::new("lease", name.clone(), "expire")],
                    )
                }
                _ => answer(Answer::LeaseExpired(false)),
            },
            Command::LeaveQueue { name, waiter } => {
                if let Some(q) = self.queues.get_mut(name) {
                    q.remove(waiter);
                }
                answer(Answer::LeftQueue)
            }
            Command::Append { feed, entry } => {
                let key = (feed.clone(), entry.id.clone());
                if let Some(e) = self.visible_entry(feed, &entry.id, now) {
                    // SPEC §8: an existing id answers the original entry.
                    return answer(Answer::Appended {
                        created: false,
                        at: e.at,
                        revision: e.revision,
                        data: self.shown(feed, e, now),
                        read: e.read,
                    });
                }
                let row = EntryRow {
                    at: entry.at.map_or(now, |a| a.0),
                    data: entry.data.clone(),
                    revision: rev,
                    read: false,
                    scrubbed: false,
                };
                let a = Answer::Appended {
                    created: true,
                    at: row.at,
                    revision: rev,
                    data: self.shown(feed, &row, now),
                    read: false,
                };
                self.entries.insert(key, row);
                wrote(
                    a,
                    vec![ChangeSig::new("feed", format!("{feed}/{}", entry.id), "append")],
                )
            }
            Command::Import { feed, entries } => {
                let mut seen = BTreeSet::new();
                let (mut imported, mut skipped, mut changes) = (0, 0, vec![]);
                let mut added = vec![];
                for e in entries {
                    // docs/feeds.md: an entry already past the feed's age is
                    // skipped (never stored), so importing twice changes nothing.
                    let at = e.at.map_or(now, |a| a.0);
                    if !seen.insert(e.id.clone())
                        || self.visible_entry(feed, &e.id, now).is_some()
                        || self.aged_out(feed, at, now)
                    {
                        skipped += 1;
                        continue;
                    }
                    imported += 1;
                    changes.push(ChangeSig::new("feed", format!("{feed}/{}", e.id), "append"));
                    added.push((
                        (feed.clone(), e.id.clone()),
                        EntryRow {
                            at: e.at.map_or(now, |a| a.0),
                            data: e.data.clone(),
                            revision: rev,
                            read: false,
                            scrubbed: false,
                        },
                    ));
                }
                self.entries.extend(added);
                wrote(Answer::Imported { imported, skipped }, changes)
            }
            Command::MarkRead { feed, selector } => {
                for ((f, id), e) in self.entries.iter_mut() {
                    let hit = match selector {
                        ReadSelector::Ids(ids) => ids.contains(id),
                        ReadSelector::UpTo(at, upto) => (e.at, id.as_str()) <= (at.0, upto.as_str()),
                        ReadSelector::All => true,
                    };
                    if f == feed && hit {
                        e.read = true;
                    }
                }
                // SPEC §15: read marks are writes, one change per request keyed by the feed.
                wrote(
                    Answer::MarkedRead,
                    vec![ChangeSig::new("feed", feed.clone(), "read")],
                )
            }
            Command::DeleteEntry { feed, id } => {
                // SPEC §8 hides an entry past the feed's age at once, so to a
                // reader it does not exist and DELETE is 404 (as for an expired
                // record, §4), consistent with an append of its id. An entry
                // hidden by the cap still exists until purged (docs/feeds.md).
                if self.visible_entry(feed, id, now).is_none() {
                    return refused("not_found");
                }
                self.entries.remove(&(feed.clone(), id.clone()));
                wrote(
                    Answer::EntryDeleted,
                    vec![ChangeSig::new("feed", format!("{feed}/{id}"), "delete")],
                )
            }
            Command::Configure { feed, config } => {
                let bad_scrub = config
                    .scrub
                    .as_ref()
                    .is_some_and(|s| s.fields.is_empty() || s.fields.iter().any(String::is_empty));
                if config.max_entries == Some(0) || config.max_age_ms == Some(0) || bad_scrub {
                    return refused("invalid_request");
                }
                self.configs.insert(feed.clone(), config.clone());
                // A changed scrub configuration is applied on disk again by the sweeper.
                for ((f, _), e) in self.entries.iter_mut() {
                    if feed.is_empty() || f == feed {
                        e.scrubbed = false;
                    }
                }
                wrote(
                    Answer::Configured,
                    vec![ChangeSig::new("feed", feed.clone(), "configure")],
                )
            }
            Command::PurgeEntries { feed, ids, before } => {
                let mut changes = vec![];
                for id in ids {
                    let key = (feed.clone(), id.clone());
                    let Some(e) = self.entries.get(&key) else { continue };
                    let capped = before
                        .as_ref()
                        .is_some_and(|(at, bid)| (e.at, id.as_str()) < (at.0, bid.as_str()));
                    if self.aged_out(feed, e.at, now) || capped {
                        self.entries.remove(&key);
                        changes.push(ChangeSig::new("feed", format!("{feed}/{id}"), "expire"));
                    }
                }
                wrote(Answer::Retained(changes.len()), changes)
            }
            Command::ScrubEntries { feed, ids } => {
                let mut changes = vec![];
                let cfg = self.config(feed);
                for id in ids {
                    let key = (feed.clone(), id.clone());
                    let Some(s) = &cfg.scrub else { break };
                    let Some(e) = self.entries.get_mut(&key) else {
                        continue;
                    };
                    if e.scrubbed || now.saturating_sub(e.at) < ms(s.after_ms) {
                        continue;
                    }
                    for f in &s.fields {
                        e.data.remove(f);
                    }
                    e.scrubbed = true;
                    changes.push(ChangeSig::new("feed", format!("{feed}/{id}"), "scrub"));
                }
                wrote(Answer::Retained(changes.len()), changes)
            }
            Command::IdemBegin { scope, key, req, app } => {
                let k = (stored_scope(scope, *app), key.clone());
                let started = IdemRow {
                    fingerprint: req.fingerprint.clone(),
                    token: req.token.clone(),
                    response: None,
                    locked_until: now + ms(req.lock_ms),
                    expires_at: now + ms(req.ttl_ms),
                };
                match self.idem.get(&k).filter(|e| e.expires_at > now) {
                    // SPEC §15: a different fingerprint is 422 even while in progress.
                    Some(e) if e.fingerprint != req.fingerprint => return refused("idempotency_key_reused"),
                    Some(IdemRow {
                        response: Some(r), ..
                    }) => return answer(Answer::IdemReplay(r.clone())),
                    Some(e) if e.locked_until > now => return refused("idempotency_key_in_use"),
                    // New, expired, or a started entry whose lock ran out: taken over.
                    _ => {}
                }
                let a = Answer::IdemStarted {
                    token: started.token.clone(),
                    locked_until: started.locked_until,
                    expires_at: started.expires_at,
                };
                self.idem.insert(k, started);
                // Only the application store's entries are changes (§10 kind `idempotency`).
                let changes = if *app {
                    vec![ChangeSig::new("idempotency", format!("{scope}/{key}"), "start")]
                } else {
                    vec![]
                };
                wrote(a, changes)
            }
            Command::IdemComplete {
                scope,
                key,
                token,
                response,
                app,
            } => {
                let k = (stored_scope(scope, *app), key.clone());
                match self.idem.get_mut(&k) {
                    Some(e) if e.expires_at > now && e.response.is_none() && &e.token == token => {
                        e.response = Some(response.clone());
                        let changes = if *app {
                            vec![ChangeSig::new(
                                "idempotency",
                                format!("{scope}/{key}"),
                                "complete",
                            )]
                        } else {
                            vec![]
                        };
                        wrote(Answer::IdemCompleted, changes)
                    }
                    // SPEC §15: a stale owner's PUT/DELETE is 409 lease_lost.
                    _ => refused("lease_lost"),
                }
            }
            Command::IdemRelease {
                scope,
                key,
                token,
                app,
            } => {
                let k = (stored_scope(scope, *app), key.clone());
                match self.idem.get(&k) {
                    Some(e) if e.expires_at > now && e.response.is_none() && &e.token == token => {
                        self.idem.remove(&k);
                        let changes = if *app {
                            vec![ChangeSig::new("idempotency", format!("{scope}/{key}"), "release")]
                        } else {
                            vec![]
                        };
                        wrote(Answer::IdemReleased, changes)
                    }
                    _ => refused("lease_lost"),
                }
            }
            Command::ExpireIdem { scope, key } => {
                let k = (scope.clone(), key.clone());
                if self.idem.get(&k).is_some_and(|e| e.expires_at <= now) {
                    self.idem.remove(&k);
                }
                answer(Answer::IdemReleased)
            }
            Command::PutGate { id, policy, meta } => match self.gates.get_mut(id) {
                // docs/gates.md: PUT of a deleted gate is 410.
                Some(g) if g.state == GateState::Deleted => refused("gate_closed"),
                Some(g) => {
                    if let Some(p) = policy {
                        g.policy = *p;
                    }
                    if let Some(m) = meta {
                        g.meta = m.clone();
                    }
                    g.revision = rev;
                    wrote(
                        Answer::GatePut {
                            gate: g.view(),
                            created: false,
                        },
                        vec![ChangeSig::new("gate", id.clone(), "update")],
                    )
                }
                None => {
                    let g = GateRow {
                        state: GateState::Open,
                        epoch: 1,
                        policy: policy.unwrap_or_default(),
                        meta: meta.clone().unwrap_or(Value::Null),
                        revision: rev,
                    };
                    let a = Answer::GatePut {
                        gate: g.view(),
                        created: true,
                    };
                    self.gates.insert(id.clone(), g);
                    wrote(a, vec![ChangeSig::new("gate", id.clone(), "create")])
                }
            },
            Command::Transition { id, transition } => self.transition(id, *transition, rev),
            Command::Admit {
                gate,
                ticket,
                meta,
                capability,
            } => {
                let Some(g) = self.gates.get(gate) else {
                    return refused("not_found");
                };
                if let Some(c) = capability {
                    // SPEC §11: expired is 401; bound to the epoch at minting, else 410.
                    if now >= c.expires_at.0 {
                        return refused("unauthorized");
                    }
                    if c.epoch != g.epoch {
                        return refused("gate_closed");
                    }
                }
                if let Some(t) = self.tickets.get(ticket) {
                    // SPEC §15: an existing id of the same gate, still open, is returned.
                    return if &t.gate == gate && t.state == TicketState::Open && t.epoch == g.epoch {
                        answer(Answer::Admitted {
                            ticket: t.clone(),
                            created: false,
                        })
                    } else {
                        refused("ticket_conflict")
                    };
                }
                match g.state {
                    GateState::Paused => refused("gate_paused"),
                    GateState::Revoked | GateState::Deleted => refused("gate_closed"),
                    GateState::Open => {
                        let t = TicketView {
                            id: ticket.clone(),
                            gate: gate.clone(),
                            epoch: g.epoch,
                            state: TicketState::Open,
                            meta: meta.clone().unwrap_or(Value::Null),
                            recovered: false,
                            finalized_revision: None,
                            revision: rev,
                        };
                        self.tickets.insert(ticket.clone(), t.clone());
                        wrote(
                            Answer::Admitted {
                                ticket: t,
                                created: true,
                            },
                            vec![ChangeSig::new("gate", gate.clone(), "admit")],
                        )
                    }
                }
            }
            Command::Ticket {
                gate,
                ticket,
                op,
                append,
                capability,
            } => {
                let Some(g) = self.gates.get(gate).cloned() else {
                    return refused("not_found");
                };
                if let Some(c) = capability {
                    if now >= c.expires_at.0 {
                        return refused("unauthorized");
                    }
                    if c.epoch != g.epoch {
                        return refused("gate_closed");
                    }
                }
                let Some(t) = self.tickets.get(ticket).filter(|t| &t.gate == gate).cloned() else {
                    return refused("not_found");
                };
                let mut e = self.ticket_op(&g, &t, *op, rev);
                let finalized_now = e.changes.first().is_some_and(|c| c.op == "finalize");
                if let (true, Some((feed, entry))) = (finalized_now, append) {
                    // Finalized once <=> appended once: in the same step.
                    let appended = self.step(
                        &Command::Append {
                            feed: feed.clone(),
                            entry: entry.clone(),
                        },
                        rev,
                        now,
                        limits,
                        None,
                    );
                    e.changes.extend(appended.changes);
                }
                e
            }
        }
    }
}
