//! The checkers: one function per invariant, each reading the history and the
//! final snapshot and answering how many operations it checked and what
//! violated the invariant. They rely only on answers and on real-time order
//! (an answer received before a request was sent), never on timing luck.

use super::history::{History, Kind, Op};
use super::snapshot::{FeedState, Snapshot};
use super::workloads::{gate_id, gate_policy, lease_name, CAPPED_MAX, GATES, LEASES, PAUSE_GATE};
use lockstep_core::Millis;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The verdict on one invariant.
#[derive(Debug, Serialize)]
pub struct Invariant {
    /// Its name, as printed.
    pub name: &'static str,
    /// Operations (or objects) checked.
    pub checked: usize,
    /// One line per violation.
    pub violations: Vec<String>,
    /// How often the run provoked what the invariant guards against (e.g.
    /// ticket steps after a revoke), so a pass is not a vacuous one.
    pub provoked: String,
}

impl Invariant {
    fn new(name: &'static str) -> Invariant {
        Invariant {
            name,
            checked: 0,
            violations: Vec::new(),
            provoked: String::new(),
        }
    }

    fn violate(&mut self, what: String) {
        self.violations.push(what);
    }
}

/// Runs every checker.
pub fn all(h: &History, s: &Snapshot) -> Vec<Invariant> {
    vec![
        counters(h, s),
        feeds(h, s),
        retention(h, s),
        leases(h),
        gates(h, s),
        pauses(h),
        idempotency(h, s),
        changes(h, s),
    ]
}

/// The key in a `/records/{key}` path.
fn record_key(op: &Op) -> &str {
    op.path.strip_prefix("/records/").unwrap_or(&op.path)
}

/// No lost update: each counter's final value is its number of acknowledged
/// CAS increments (plus at most the increments whose answer was lost), and
/// no two acknowledged writes of one key were made from the same version.
pub fn counters(h: &History, s: &Snapshot) -> Invariant {
    let mut inv = Invariant::new("no lost update (CAS counters)");
    let mut acked: BTreeMap<&str, u64> = BTreeMap::new();
    let mut unknown: BTreeMap<&str, u64> = BTreeMap::new();
    let mut from: HashMap<(&str, u64), &Op> = HashMap::new();
    let mut conflicts = 0;
    for op in h.of(Kind::CounterWrite) {
        let key = record_key(op);
        if op.status == 409 {
            conflicts += 1;
        }
        if op.ok() {
            inv.checked += 1;
            *acked.entry(key).or_default() += 1;
            let base = op
                .request
                .get("expected_version")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if let Some(other) = from.insert((key, base), op) {
                inv.violate(format!(
                    "{key}: two acknowledged writes from version {base}: {} and {}",
                    other.describe(),
                    op.describe()
                ));
            }
        } else if op.unknown() {
            *unknown.entry(key).or_default() += 1;
        }
    }
    for (key, &value) in &s.counters {
        let a = acked.get(key.as_str()).copied().unwrap_or(0);
        let u = unknown.get(key.as_str()).copied().unwrap_or(0);
        let ok = u64::try_from(value).is_ok_and(|v| v >= a && v <= a + u);
        if !ok {
            inv.violate(format!(
                "{key}: final value {value}, but {a} increments were acknowledged ({u} unanswered)"
            ));
        }
    }
    inv.provoked = format!("{conflicts} stale writes refused");
    inv
}

/// Feeds: every acknowledged append appears exactly once with its data, a
/// re-append answers the original, nothing appears that was never appended,
/// read marks hold, and `unread_count` counts the unread entries.
pub fn feeds(h: &History, s: &Snapshot) -> Invariant {
    let mut inv = Invariant::new("feed entries exactly once");
    let ours = || s.feed.entries.iter().filter(|e| e.id.starts_with(&s.run));
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for e in ours() {
        *seen.entry(e.id.as_str()).or_default() += 1;
    }
    let entry: HashMap<&str, &lockstep_api::feeds::Entry> = ours().map(|e| (e.id.as_str(), e)).collect();
    let mut attempted = BTreeSet::new();
    for op in h.of(Kind::FeedAppend) {
        let Some(id) = op.req_str("id") else { continue };
        attempted.insert(id);
        if !op.ok() {
            continue;
        }
        inv.checked += 1;
        if op.answer.get("created") != Some(&Value::Bool(true)) {
            inv.violate(format!("fresh id {id} not created: {}", op.describe()));
        }
        match entry.get(id) {
            None => inv.violate(format!("acknowledged entry {id} is missing: {}", op.describe())),
            Some(e) if Some(&Value::Object(e.data.clone())) != op.request.get("data") => {
                inv.violate(format!("entry {id} holds {:?}, appended {}", e.data, op.request))
            }
            Some(_) => {}
        }
    }
    for op in h.of(Kind::FeedReappend).filter(|o| o.ok()) {
        inv.checked += 1;
        let id = op.req_str("id").unwrap_or_default();
        if op.answer.get("created") != Some(&Value::Bool(false)) {
            inv.violate(format!(
                "re-append of {id} created a new entry: {}",
                op.describe()
            ));
        }
    }
    for (id, n) in &seen {
        if *n > 1 {
            inv.violate(format!("entry {id} appears {n} times"));
        }
        if !attempted.contains(id) {
            inv.violate(format!("entry {id} was never appended"));
        }
    }
    let mut marked = BTreeSet::new();
    for op in h.of(Kind::FeedMarkRead) {
        let ids = op
            .request
            .get("ids")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for id in ids.iter().filter_map(Value::as_str) {
            if op.ok() {
                inv.checked += 1;
                if entry.get(id).is_some_and(|e| !e.read) {
                    inv.violate(format!(
                        "entry {id} was marked read but reads unread: {}",
                        op.describe()
                    ));
                }
            }
            marked.insert(id.to_owned());
        }
    }
    for e in ours().filter(|e| e.read && !marked.contains(&e.id)) {
        inv.violate(format!("entry {} reads read but was never marked", e.id));
    }
    unread(&mut inv, "the feed", &s.feed);
    inv
}

fn unread(inv: &mut Invariant, what: &str, f: &FeedState) {
    let unread = f.entries.iter().filter(|e| !e.read).count() as u64;
    if f.unread_count != unread {
        inv.violate(format!(
            "{what}: unread_count {} but {unread} entries read unread",
            f.unread_count
        ));
    }
}

/// Feed retention: after the appends settled, the capped feed holds at most
/// [`CAPPED_MAX`] entries, each appended (with its data); and every
/// acknowledged entry that is surely among the newest `CAPPED_MAX` — fewer
/// than that many acknowledged or unanswered appends can order after it,
/// by `(at, id)` as answered — is there.
pub fn retention(h: &History, s: &Snapshot) -> Invariant {
    let mut inv = Invariant::new("feed retention (max entries)");
    let held = &s.capped.entries;
    if held.len() > CAPPED_MAX {
        inv.violate(format!(
            "the capped feed holds {} entries, its max_entries is {CAPPED_MAX}",
            held.len()
        ));
    }
    let entry: HashMap<&str, &lockstep_api::feeds::Entry> = held
        .iter()
        .filter(|e| e.id.starts_with(&s.run))
        .map(|e| (e.id.as_str(), e))
        .collect();
    let attempted: HashMap<&str, &Op> = h
        .of(Kind::CappedAppend)
        .filter_map(|o| Some((o.req_str("id")?, o)))
        .collect();
    for (id, e) in &entry {
        match attempted.get(id) {
            None => inv.violate(format!("capped feed entry {id} was never appended")),
            Some(op) if Some(&Value::Object(e.data.clone())) != op.request.get("data") => {
                inv.violate(format!(
                    "capped feed entry {id} holds {:?}, appended {}",
                    e.data, op.request
                ))
            }
            Some(_) => {}
        }
    }
    let unanswered = h.of(Kind::CappedAppend).filter(|o| o.unknown()).count();
    // Each acknowledged append's place in the feed's order.
    let mut acked: Vec<((Millis, &str), &Op)> = Vec::new();
    for op in h.of(Kind::CappedAppend).filter(|o| o.ok()) {
        inv.checked += 1;
        let place = op
            .str("at")
            .and_then(|at| Millis::parse_rfc3339(at).ok())
            .zip(op.req_str("id"));
        match place {
            Some(p) if op.answer.get("created") == Some(&Value::Bool(true)) => acked.push((p, op)),
            _ => inv.violate(format!("a fresh append was not created: {}", op.describe())),
        }
    }
    acked.sort_by(|a, b| b.0.cmp(&a.0));
    for (newer, ((_, id), op)) in acked.iter().enumerate() {
        if newer + unanswered < CAPPED_MAX && !entry.contains_key(id) {
            inv.violate(format!(
                "entry {id} is among the newest {CAPPED_MAX} ({newer} newer) but missing: {}",
                op.describe()
            ));
        }
    }
    unread(&mut inv, "the capped feed", &s.capped);
    inv.provoked = format!("{} appended past the cap", acked.len().saturating_sub(CAPPED_MAX));
    inv
}

/// One holding of a lease, from the history.
struct Hold<'a> {
    acquire: &'a Op,
    fence: u64,
    /// When the holder surely held it: from the acquire's answer…
    from_us: u64,
    /// …to the start of its release (or forever, without a release).
    to_us: u64,
}

/// Leases: no two holders at once, and fences strictly increasing in
/// real-time acquire order; the holder's fenced write succeeds and its
/// release answers `released: true`.
pub fn leases(h: &History) -> Invariant {
    let mut inv = Invariant::new("one lease holder, fences increase");
    let mut holds: BTreeMap<String, Vec<Hold>> = BTreeMap::new();
    let releases: HashMap<(usize, &str), Vec<&Op>> =
        h.of(Kind::LeaseRelease).fold(HashMap::new(), |mut m, op| {
            m.entry((op.client, op.req_str("token").unwrap_or_default()))
                .or_default()
                .push(op);
            m
        });
    for op in h.of(Kind::LeaseAcquire).filter(|o| o.ok()) {
        inv.checked += 1;
        let (Some(token), Some(fence)) = (op.str("token"), op.u64("fence")) else {
            inv.violate(format!("acquire without token or fence: {}", op.describe()));
            continue;
        };
        let release = releases.get(&(op.client, token)).and_then(|r| r.first());
        let to_us = release.map_or(u64::MAX, |r| r.start_us);
        if let Some(r) = release {
            if r.ok() && r.answer.get("released") != Some(&Value::Bool(true)) {
                inv.violate(format!("the holder's release did not release: {}", r.describe()));
            }
        }
        let name = op
            .path
            .trim_start_matches("/leases/")
            .trim_end_matches("/acquire")
            .to_owned();
        holds.entry(name).or_default().push(Hold {
            acquire: op,
            fence,
            from_us: op.end_us,
            to_us,
        });
    }
    for op in h.of(Kind::LeaseWrite).filter(|o| o.ok()) {
        inv.checked += 1;
        if op.answer.get("succeeded") != Some(&Value::Bool(true)) {
            inv.violate(format!("a holder's fenced write was refused: {}", op.describe()));
        }
    }
    let mut contended = 0;
    for i in 0..LEASES {
        let name = lease_name(i);
        let Some(hs) = holds.get_mut(&name) else { continue };
        hs.sort_by_key(|x| x.from_us);
        contended += hs
            .iter()
            .filter(|b| {
                let asked = b.acquire.start_us;
                hs.iter()
                    .any(|a| a.fence != b.fence && a.from_us <= asked && asked < a.to_us)
            })
            .count();
        for (i, a) in hs.iter().enumerate() {
            for b in &hs[i + 1..] {
                if b.fence != a.fence && b.from_us < a.to_us && a.from_us < b.to_us {
                    inv.violate(format!(
                        "{name}: holders with fences {} and {} overlap ({}..{} us and {}..{} us)",
                        a.fence, b.fence, a.from_us, a.to_us, b.from_us, b.to_us
                    ));
                }
            }
        }
        for a in hs.iter() {
            for b in hs.iter().filter(|b| a.acquire.end_us < b.acquire.start_us) {
                if a.fence >= b.fence {
                    inv.violate(format!(
                        "{name}: fence {} was handed out after fence {} was answered",
                        b.fence, a.fence
                    ));
                }
            }
        }
    }
    inv.provoked = format!("{contended} granted after asking while held");
    inv
}

/// The gate id and ticket id in `/gates/{g}/tickets/{t}/{step}`.
fn ticket_of(op: &Op) -> Option<(&str, &str)> {
    let rest = op.path.strip_prefix("/gates/")?;
    let (gate, rest) = rest.split_once("/tickets/")?;
    let (ticket, _) = rest.split_once('/')?;
    Some((gate, ticket))
}

/// Gates: no ticket of an epoch a revoke (or reopen) ended is committed or
/// finalized once that answer was received — except, under policy
/// `recover`, a committed ticket's finalize answered `recovered: true`; and
/// every finalized ticket appears once in the gate's feed.
pub fn gates(h: &History, s: &Snapshot) -> Invariant {
    let mut inv = Invariant::new("no stale ticket accepted");
    // Per gate, the acknowledged epoch moves: (answer received at, new epoch).
    let mut moves: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for op in h
        .ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::GateRevoke | Kind::GateReopen) && o.ok())
    {
        if let (Some(id), Some(epoch)) = (op.str("id"), op.u64("epoch")) {
            moves.entry(id.to_owned()).or_default().push((op.end_us, epoch));
        }
    }
    let mut epoch_of: HashMap<(&str, &str), u64> = HashMap::new();
    for op in h.of(Kind::TicketAdmit).filter(|o| o.ok()) {
        if let (Some(t), Some(e)) = (op.str("ticket_id"), op.u64("epoch")) {
            let gate = op.path.trim_start_matches("/gates/").trim_end_matches("/tickets");
            epoch_of.insert((gate, t), e);
        }
    }
    let committed: BTreeSet<(&str, &str)> = h
        .of(Kind::TicketCommit)
        .filter(|o| o.ok())
        .filter_map(ticket_of)
        .collect();
    let mut finalized: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut unanswered: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut raced = 0;
    for op in h
        .ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::TicketCommit | Kind::TicketFinalize))
    {
        let Some((gate, ticket)) = ticket_of(op) else {
            continue;
        };
        if op.kind == Kind::TicketFinalize && op.ok() {
            finalized.entry(gate).or_default().insert(ticket);
        }
        if op.kind == Kind::TicketFinalize && op.unknown() {
            unanswered.entry(gate).or_default().insert(ticket);
        }
        if op.unknown() {
            continue;
        }
        let stale = epoch_of.get(&(gate, ticket)).is_some_and(|&epoch| {
            moves
                .get(gate)
                .is_some_and(|m| m.iter().any(|&(end, e)| e > epoch && end < op.start_us))
        });
        raced += usize::from(stale);
        if !op.ok() {
            continue;
        }
        inv.checked += 1;
        if !stale {
            continue;
        }
        let epoch = epoch_of.get(&(gate, ticket)).copied().unwrap_or_default();
        let recover = (0..GATES).any(|g| gate_id(g) == gate && gate_policy(g) == "recover");
        let allowed = op.kind == Kind::TicketFinalize
            && recover
            && committed.contains(&(gate, ticket))
            && op.answer.get("recovered") == Some(&Value::Bool(true));
        if !allowed {
            inv.violate(format!(
                "ticket {ticket} of epoch {epoch} accepted after its gate moved on: {}",
                op.describe()
            ));
        }
    }
    inv.provoked = format!("{raced} ticket steps after their gate moved on");
    for g in 0..GATES {
        let gate = gate_id(g);
        let Some(feed) = s.gate_feeds.get(&g) else {
            continue;
        };
        let want = finalized.get(gate.as_str()).cloned().unwrap_or_default();
        let maybe = unanswered.get(gate.as_str()).cloned().unwrap_or_default();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for e in feed.entries.iter().filter(|e| e.id.starts_with(&s.run)) {
            *seen.entry(e.id.as_str()).or_default() += 1;
        }
        for t in &want {
            if seen.get(t).copied() != Some(1) {
                inv.violate(format!(
                    "{gate}: finalized ticket {t} appended {} times",
                    seen.get(t).copied().unwrap_or(0)
                ));
            }
        }
        for (id, n) in &seen {
            if !want.contains(id) && !maybe.contains(id) {
                inv.violate(format!("{gate}: entry {id} ({n}×) of a ticket never finalized"));
            }
        }
    }
    inv
}

/// When the pause gate was surely paused: from the answer of a pause
/// (`state: paused`) to the start of the first resume that may have taken
/// effect after that pause (any resume not answered before the pause was
/// sent, and not refused).
fn paused_windows(h: &History) -> Vec<(u64, u64)> {
    let resumes: Vec<&Op> = h.of(Kind::GateResume).filter(|o| o.ok() || o.unknown()).collect();
    h.of(Kind::GatePause)
        .filter(|o| o.ok() && o.str("state") == Some("paused"))
        .filter_map(|p| {
            let until = resumes
                .iter()
                .filter(|r| r.unknown() || r.end_us > p.start_us)
                .map(|r| r.start_us)
                .min()
                .unwrap_or(u64::MAX);
            (p.end_us < until).then_some((p.end_us, until))
        })
        .collect()
}

/// Gate pause: no admit, commit or finalize at the pause gate succeeded
/// while it was surely paused (each answers 423 `gate_paused` then); and a
/// pause never loses a ticket — no step there is refused 410 (the gate is
/// never revoked, its epoch never moves).
pub fn pauses(h: &History) -> Invariant {
    let mut inv = Invariant::new("paused gate admits nothing");
    let windows = paused_windows(h);
    let prefix = format!("/gates/{PAUSE_GATE}/tickets");
    let mut provoked = 0;
    for op in h.ops.iter().filter(|o| {
        matches!(
            o.kind,
            Kind::TicketAdmit | Kind::TicketCommit | Kind::TicketFinalize
        ) && o.path.starts_with(&prefix)
            && !o.unknown()
    }) {
        inv.checked += 1;
        let paused = windows
            .iter()
            .any(|&(from, until)| from < op.start_us && op.end_us < until);
        provoked += usize::from(paused);
        if paused && op.ok() {
            inv.violate(format!("accepted while the gate was paused: {}", op.describe()));
        }
        if paused && !op.ok() && op.code() != Some("gate_paused") {
            inv.violate(format!(
                "refused while paused, but not gate_paused: {}",
                op.describe()
            ));
        }
        if op.status == 410 {
            inv.violate(format!("a ticket did not survive a pause: {}", op.describe()));
        }
    }
    inv.provoked = format!("{provoked} ticket steps while surely paused");
    inv
}

/// Idempotency: every completed answer to one `Idempotency-Key` is
/// identical (status and body), at most one of them executed, and the
/// keyed counter moved once per key.
pub fn idempotency(h: &History, s: &Snapshot) -> Invariant {
    let mut inv = Invariant::new("idempotent replays identical");
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in h.of(Kind::Keyed) {
        if let Some(k) = &op.idempotency_key {
            by_key.entry(k.as_str()).or_default().push(op);
        }
    }
    let (mut applied, mut maybe) = (0i64, 0i64);
    for (key, ops) in &by_key {
        let done: Vec<&&Op> = ops
            .iter()
            .filter(|o| !o.unknown() && o.code() != Some("idempotency_key_in_use"))
            .collect();
        if done.iter().any(|o| o.ok()) {
            applied += 1;
        } else if ops.iter().any(|o| o.unknown()) {
            maybe += 1;
        }
        let Some(first) = done.first() else { continue };
        inv.checked += done.len();
        for o in &done[1..] {
            if (o.status, &o.answer) != (first.status, &first.answer) {
                inv.violate(format!("key {key}: {} then {}", first.describe(), o.describe()));
            }
        }
        let executed = done.iter().filter(|o| !o.replayed).count();
        if executed > 1 {
            inv.violate(format!(
                "key {key}: executed {executed} times (no Idempotent-Replayed)"
            ));
        }
    }
    let replays = h.of(Kind::Keyed).filter(|o| o.replayed).count();
    let in_use = h
        .of(Kind::Keyed)
        .filter(|o| o.code() == Some("idempotency_key_in_use"))
        .count();
    inv.provoked = format!("{replays} replays, {in_use} answered in use");
    if s.keyed_counter < applied || s.keyed_counter > applied + maybe {
        inv.violate(format!(
            "the keyed counter is {}, but {applied} keys were applied ({maybe} unanswered)",
            s.keyed_counter
        ));
    }
    inv
}

/// The revision an acknowledged operation's write committed at, when it wrote.
fn written(op: &Op) -> Option<u64> {
    if !op.ok() {
        return None;
    }
    let yes = |name: &str| op.answer.get(name) == Some(&Value::Bool(true));
    let wrote = match op.kind {
        Kind::CounterWrite | Kind::LeaseAcquire | Kind::TicketAdmit => true,
        Kind::TicketCommit | Kind::TicketFinalize => true,
        Kind::FeedAppend => yes("created"),
        Kind::LeaseRelease => yes("released"),
        Kind::LeaseWrite | Kind::Keyed => yes("succeeded"),
        Kind::GateRevoke | Kind::GateReopen | Kind::GatePause | Kind::GateResume => yes("changed"),
        Kind::CappedAppend => yes("created"),
        _ => false,
    };
    if wrote {
        op.u64("revision")
    } else {
        None
    }
}

/// The change log: paged from the run's start it is in strictly increasing
/// (revision, index) order, and every acknowledged write's revision is in it.
pub fn changes(h: &History, s: &Snapshot) -> Invariant {
    let mut inv = Invariant::new("change log complete, in order");
    for w in s.changes.windows(2) {
        if (w[0].revision, w[0].index) >= (w[1].revision, w[1].index) {
            inv.violate(format!(
                "({}, {}) is followed by ({}, {})",
                w[0].revision, w[0].index, w[1].revision, w[1].index
            ));
        }
    }
    let logged: BTreeSet<u64> = s.changes.iter().map(|c| c.revision).collect();
    for op in &h.ops {
        let Some(rev) = written(op) else { continue };
        inv.checked += 1;
        if !logged.contains(&rev) {
            inv.violate(format!(
                "revision {rev} is missing from the change log: {}",
                op.describe()
            ));
        }
    }
    inv
}
