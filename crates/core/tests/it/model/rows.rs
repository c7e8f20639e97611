//! The driver's storage: every row in one `BTreeMap`, loaded into snapshots and
//! written back from effects the way a backend does, and read back as a [`View`].

use super::answer::{GateView, RecordView, TicketView};
use super::view::{EntryView, IdemView, LeaseView, View};
use lockstep_core::command::feed_config;
use lockstep_core::feed::{self, ReadSelector};
use lockstep_core::gate::TicketState;
use lockstep_core::{Millis, Mutation, Row, RowKey, Snapshot};
use std::collections::BTreeMap;

/// Every stored row of one namespace.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    rows: BTreeMap<RowKey, Row>,
}

impl Rows {
    /// What a backend loads for `key`: the row, or for a gate's unfinished
    /// tickets the open and committed ones.
    fn load(&self, key: &RowKey) -> Option<Row> {
        match key {
            RowKey::GateTickets(gate) => {
                let tickets: Vec<_> = self
                    .rows
                    .values()
                    .filter_map(|r| match r {
                        Row::Ticket(t)
                            if &t.gate == gate
                                && matches!(t.state, TicketState::Open | TicketState::Committed) =>
                        {
                            Some(t.clone())
                        }
                        _ => None,
                    })
                    .collect();
                (!tickets.is_empty()).then(|| Row::GateTickets {
                    gate: gate.clone(),
                    tickets,
                })
            }
            _ => self.rows.get(key).cloned(),
        }
    }

    /// The snapshot of `keys` (present or not).
    pub fn snapshot(&self, keys: &[RowKey]) -> Snapshot {
        keys.iter().map(|k| (k.clone(), self.load(k))).collect()
    }

    /// Persists one mutation.
    pub fn apply(&mut self, m: &Mutation) -> Result<(), String> {
        match m {
            Mutation::Put(Row::GateTickets { gate, .. }) => {
                return Err(format!(
                    "the unfinished tickets of {gate:?} are read only, yet written"
                ))
            }
            Mutation::Put(row) => {
                self.rows.insert(row.key(), row.clone());
            }
            Mutation::Delete(key) => {
                self.rows.remove(key);
            }
            Mutation::MarkRead { feed, selector } => {
                for row in self.rows.values_mut() {
                    let Row::FeedEntry(e) = row else { continue };
                    let hit = match selector {
                        ReadSelector::Ids(ids) => ids.contains(&e.id),
                        ReadSelector::UpTo(at, id) => (e.at, e.id.as_str()) <= (*at, id.as_str()),
                        ReadSelector::All => true,
                    };
                    if &e.feed == feed && hit {
                        e.read = true;
                    }
                }
            }
            Mutation::ResetScrubbed { feed } => {
                for row in self.rows.values_mut() {
                    if let Row::FeedEntry(e) = row {
                        if feed.is_empty() || &e.feed == feed {
                            e.scrubbed = false;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The feed configuration rows, as a snapshot the core's helpers read.
    fn configs(&self) -> Snapshot {
        self.rows
            .iter()
            .filter(|(k, _)| matches!(k, RowKey::FeedConfig(_)))
            .map(|(k, r)| (k.clone(), Some(r.clone())))
            .collect()
    }

    /// What a reader sees at `now`, read the way the backends read.
    pub fn view(&self, now: Millis) -> View {
        let mut v = View::default();
        let configs = self.configs();
        for row in self.rows.values() {
            match row {
                Row::Record(r) if r.is_live(now) => {
                    v.records.insert(r.key.clone(), RecordView::from(r));
                }
                Row::Record(_) | Row::GateTickets { .. } => {}
                Row::Lease(l) => {
                    let held = l.live_token(now).is_some();
                    let lv = LeaseView {
                        token: l.live_token(now).map(str::to_owned),
                        holder: l.holder.clone().filter(|_| held),
                        expires_at: held.then_some(l.expires_at.0),
                        fence: l.fence,
                    };
                    v.leases.insert(l.name.clone(), lv);
                }
                Row::Waiters { name, waiters } => {
                    let mut live: Vec<(u64, i64)> = waiters
                        .iter()
                        .filter(|w| w.alive_until > now)
                        .map(|w| (w.id, w.alive_until.0))
                        .collect();
                    live.sort_unstable();
                    if !live.is_empty() {
                        v.waiters.insert(name.clone(), live);
                    }
                }
                Row::Fence { resource, fence } => {
                    v.fences.insert(resource.clone(), *fence);
                }
                Row::FeedEntry(e) => {
                    let config = feed_config(&configs, &e.feed);
                    if feed::aged_out(e.at, &config, now) {
                        continue;
                    }
                    let ev = EntryView {
                        at: e.at.0,
                        shown: feed::present(e.clone(), &config, now).data,
                        stored: e.data.clone(),
                        revision: e.revision,
                        read: e.read,
                        scrubbed: e.scrubbed,
                    };
                    v.entries.insert((e.feed.clone(), e.id.clone()), ev);
                }
                Row::FeedConfig { feed, config } => {
                    v.configs.insert(feed.clone(), config.clone());
                }
                Row::Gate(g) => {
                    let gv = GateView {
                        state: g.state,
                        epoch: g.epoch,
                        policy: g.policy,
                        meta: g.meta.clone(),
                        revision: g.revision,
                    };
                    v.gates.insert(g.id.clone(), gv);
                }
                Row::Ticket(t) => {
                    v.tickets.insert(t.id.clone(), TicketView::from(t));
                }
                Row::Idem(e) if e.expires_at > now => {
                    let iv = IdemView {
                        fingerprint: e.fingerprint.clone(),
                        token: e.token.clone(),
                        response: e.response.clone(),
                        locked_until: e.locked_until.0,
                        expires_at: e.expires_at.0,
                    };
                    v.idem.insert((e.scope.clone(), e.key.clone()), iv);
                }
                Row::Idem(_) => {}
            }
        }
        v
    }
}
