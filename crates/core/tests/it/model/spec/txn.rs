//! Transactions (SPEC §6): compares, then the success or failure branch.

use super::*;

impl Model {
    pub(super) fn txn(&mut self, t: &lockstep_core::txn::Txn, rev: u64, now: i64, limits: &Limits) -> Expect {
        if t.compare.len() + t.success.len() + t.failure.len() > limits.txn_items_max {
            return refused("payload_too_large");
        }
        if t.success.iter().chain(&t.failure).any(|op| match op {
            Op::Put(p) => p.ttl_ms == Some(0),
            _ => false,
        }) {
            return refused("invalid_request");
        }
        let failed: Vec<usize> = t
            .compare
            .iter()
            .enumerate()
            .filter(|(_, c)| !self.holds(c, now))
            .map(|(i, _)| i)
            .collect();
        let succeeded = failed.is_empty();
        // The branch works on a copy of the live records, in order.
        let mut work: BTreeMap<String, Option<Rec>> = BTreeMap::new();
        let mut results = vec![];
        let mut changes = vec![];
        for op in if succeeded { &t.success } else { &t.failure } {
            let key = match op {
                Op::Get(o) | Op::Delete(o) => o.key.clone(),
                Op::Put(o) => o.key.clone(),
                Op::Patch(o) => o.key.clone(),
                Op::Incr(o) => o.key.clone(),
            };
            let cur = work
                .get(&key)
                .cloned()
                .unwrap_or_else(|| self.live(&key, now).cloned());
            let written = |value: Value, expires_at: Option<i64>| Rec {
                value,
                version: rev,
                created_at: cur.as_ref().map_or(now, |r| r.created_at),
                updated_at: now,
                expires_at,
            };
            let (item, state, op_name) = match op {
                Op::Get(_) => (TxnItem::Get(cur.as_ref().map(Rec::view)), None, None),
                Op::Put(p) => {
                    let r = written(p.value.clone(), p.ttl_ms.map(|t| now + ms(t)));
                    (TxnItem::Written(r.view()), Some(Some(r)), Some("put"))
                }
                Op::Delete(_) if cur.is_some() => (TxnItem::Delete(true), Some(None), Some("delete")),
                Op::Delete(_) => (TxnItem::Delete(false), None, None),
                Op::Patch(p) => {
                    let Some(c) = &cur else {
                        return refused("not_found");
                    };
                    let r = written(merge_patch(&c.value, &p.merge), c.expires_at);
                    (TxnItem::Written(r.view()), Some(Some(r)), Some("patch"))
                }
                Op::Incr(i) => {
                    // SPEC §5: absent counts as 0; a non-integer is 422 invalid_patch.
                    let base = match &cur {
                        None => 0,
                        Some(c) => match c.value.as_i64() {
                            Some(n) => n,
                            None => return refused("invalid_patch"),
                        },
                    };
                    let Some(sum) = base.checked_add(i.by) else {
                        return refused("invalid_patch");
                    };
                    let r = written(Value::from(sum), cur.as_ref().and_then(|c| c.expires_at));
                    (TxnItem::Written(r.view()), Some(Some(r)), Some("patch"))
                }
            };
            if let Some(s) = state {
                work.insert(key.clone(), s);
            }
            if let Some(o) = op_name {
                changes.push(record_sig(&key, o));
            }
            results.push(item);
        }
        // SPEC §15: a fence compare records its token only when the success branch applies.
        let mut to_record: BTreeMap<String, u64> = BTreeMap::new();
        if succeeded {
            for c in &t.compare {
                if let Compare::Fence { resource, token } = c {
                    let e = to_record.entry(resource.clone()).or_insert(*token);
                    *e = (*e).max(*token);
                }
            }
            to_record.retain(|r, tok| self.fences.get(r).is_none_or(|f| *tok > *f));
        }
        for (key, state) in work {
            match state {
                Some(r) => self.records.insert(key, r),
                None => self.records.remove(&key),
            };
        }
        for (resource, token) in to_record {
            changes.push(ChangeSig::new("lease", resource.clone(), "fence"));
            self.fences.insert(resource, token);
        }
        wrote(
            Answer::Txn {
                succeeded,
                failed,
                results,
            },
            changes,
        )
    }

    pub(super) fn holds(&self, c: &Compare, now: i64) -> bool {
        match c {
            Compare::Version { key, version } => self.live(key, now).map_or(0, |r| r.version) == *version,
            Compare::Exists { key, exists } => self.live(key, now).is_some() == *exists,
            Compare::Value { key, value } => self.live(key, now).is_some_and(|r| &r.value == value),
            Compare::Lease { name, token } => {
                self.leases.get(name).and_then(|l| l.holder_token(now)) == Some(token.as_str())
            }
            Compare::Fence { resource, token } => self.fences.get(resource).is_none_or(|f| token >= f),
        }
    }
}
