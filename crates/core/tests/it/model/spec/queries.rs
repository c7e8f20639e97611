//! The model's own lookups, the queries the driver asks, and what a reader
//! sees.

use super::*;

impl Model {
    pub(super) fn live(&self, key: &str, now: i64) -> Option<&Rec> {
        self.records.get(key).filter(|r| r.live(now))
    }

    pub(super) fn write(&self, key: &str, value: Value, expires_at: Option<i64>, rev: u64, now: i64) -> Rec {
        Rec {
            value,
            version: rev,
            created_at: self.live(key, now).map_or(now, |r| r.created_at),
            updated_at: now,
            expires_at,
        }
    }

    pub(super) fn config(&self, feed: &str) -> FeedConfig {
        self.configs
            .get(feed)
            .or_else(|| self.configs.get(""))
            .cloned()
            .unwrap_or_default()
    }

    /// SPEC §8: past `max_age_ms` (from `at`) an entry is hidden.
    pub(super) fn aged_out(&self, feed: &str, at: i64, now: i64) -> bool {
        self.config(feed)
            .max_age_ms
            .is_some_and(|a| at <= now.saturating_sub(ms(a)))
    }

    /// The entry as readers see it: scrub fields gone once `after_ms` old.
    pub(super) fn shown(&self, feed: &str, e: &EntryRow, now: i64) -> Map<String, Value> {
        let mut data = e.data.clone();
        if let Some(s) = self.config(feed).scrub {
            if now.saturating_sub(e.at) >= ms(s.after_ms) {
                for f in &s.fields {
                    data.remove(f);
                }
            }
        }
        data
    }

    pub(super) fn visible_entry(&self, feed: &str, id: &str, now: i64) -> Option<&EntryRow> {
        self.entries
            .get(&(feed.to_owned(), id.to_owned()))
            .filter(|e| !self.aged_out(feed, e.at, now))
    }

    /// The id a new waiter of `name` must be above: every id handed out before,
    /// also once the queue emptied (a late `LeaveQueue` of an old id must never
    /// remove a newer waiter).
    pub fn waiter_id_floor(&self, name: &str) -> u64 {
        self.waiter_ids.get(name).copied().unwrap_or(0)
    }

    /// Versions of the live record of `key`, and every version seen, for the generator.
    pub fn record_version(&self, key: &str, now: i64) -> Option<u64> {
        self.live(key, now).map(|r| r.version)
    }

    /// The recorded fence of a resource and the last fence of a lease, for the generator.
    pub fn fences(&self) -> Vec<u64> {
        self.fences
            .values()
            .copied()
            .chain(self.leases.values().map(|l| l.fence))
            .collect()
    }

    /// The ids of the stored tickets, for the generator.
    pub fn ticket_ids(&self) -> Vec<String> {
        self.tickets.keys().cloned().collect()
    }

    /// The ids of the stored gates, for the generator.
    pub fn gate_ids(&self) -> Vec<String> {
        self.gates.keys().cloned().collect()
    }

    /// The live holder's token of a lease, for the generator.
    pub fn lease_holder(&self, name: &str, now: i64) -> Option<String> {
        self.leases
            .get(name)
            .and_then(|l| l.holder_token(now))
            .map(str::to_owned)
    }

    /// The gate of a ticket, for the generator.
    pub fn ticket_gate(&self, ticket: &str) -> Option<String> {
        self.tickets.get(ticket).map(|t| t.gate.clone())
    }

    /// The live waiters of a lease, for the generator.
    pub fn waiter_ids(&self, name: &str) -> Vec<u64> {
        self.queues
            .get(name)
            .map(|q| q.keys().copied().collect())
            .unwrap_or_default()
    }

    /// What a reader sees at `now`.
    pub fn view(&self, now: i64) -> View {
        View {
            records: self
                .records
                .iter()
                .filter(|(_, r)| r.live(now))
                .map(|(k, r)| (k.clone(), r.view()))
                .collect(),
            leases: self
                .leases
                .iter()
                .map(|(n, l)| {
                    let held = l.holder_token(now).is_some();
                    let v = LeaseView {
                        token: l.holder_token(now).map(str::to_owned),
                        holder: l.holder.clone().filter(|_| held),
                        expires_at: held.then_some(l.expires_at),
                        fence: l.fence,
                    };
                    (n.clone(), v)
                })
                .collect(),
            waiters: self
                .queues
                .iter()
                .map(|(n, q)| {
                    let live: Vec<(u64, i64)> = q
                        .iter()
                        .filter(|(_, a)| **a > now)
                        .map(|(i, a)| (*i, *a))
                        .collect();
                    (n.clone(), live)
                })
                .filter(|(_, q)| !q.is_empty())
                .collect(),
            fences: self.fences.clone(),
            entries: self
                .entries
                .iter()
                .filter(|((f, _), e)| !self.aged_out(f, e.at, now))
                .map(|((f, id), e)| {
                    let v = EntryView {
                        at: e.at,
                        shown: self.shown(f, e, now),
                        stored: e.data.clone(),
                        revision: e.revision,
                        read: e.read,
                        scrubbed: e.scrubbed,
                    };
                    ((f.clone(), id.clone()), v)
                })
                .collect(),
            configs: self.configs.clone(),
            idem: self
                .idem
                .iter()
                .filter(|(_, e)| e.expires_at > now)
                .map(|(k, e)| {
                    let v = IdemView {
                        fingerprint: e.fingerprint.clone(),
                        token: e.token.clone(),
                        response: e.response.clone(),
                        locked_until: e.locked_until,
                        expires_at: e.expires_at,
                    };
                    (k.clone(), v)
                })
                .collect(),
            gates: self.gates.iter().map(|(k, g)| (k.clone(), g.view())).collect(),
            tickets: self.tickets.clone(),
        }
    }
}
