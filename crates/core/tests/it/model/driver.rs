//! The driver: runs a history of steps against `execute` over [`Rows`] and
//! against the [`Model`] side by side, checks the invariants of every effect,
//! and compares answers, change entries and visible state after each step.

use super::answer::{of_core, Answer, ChangeSig};
use super::gen::{Gen, Rand, Step};
use super::rows::Rows;
use super::spec::Model;
use super::view::diff;
use lockstep_core::lease::Lease;
use lockstep_core::{execute, Command, Ctx, Effect, Limits, Millis, Mutation, Row, RowKey, Snapshot};
use std::collections::BTreeMap;

/// The storage clock at the start of every history.
const T0: i64 = 1_000_000;

/// A deliberate defect, to show that the checker notices one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// None: the real check.
    None,
    /// The store persists a written record with the version before this write.
    StaleVersion,
    /// The store forgets to consume the revision of a write.
    KeepRevision,
}

/// Why a history failed, at which step.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Index of the failing step.
    pub step: usize,
    /// What kind of check failed (the shrinker keeps it).
    pub kind: &'static str,
    /// Everything about it.
    pub detail: String,
}

/// One store, one model, one clock and one revision counter.
pub struct Harness {
    rows: Rows,
    model: Model,
    limits: Limits,
    revision: u64,
    /// The highest revision an effect wrote at: every write must be above it.
    committed: u64,
    now: i64,
    fault: Fault,
    /// How often each kind of answer came up.
    pub seen: BTreeMap<String, usize>,
}

fn fail(step: usize, kind: &'static str, detail: String) -> Failure {
    Failure { step, kind, detail }
}

impl Harness {
    pub fn new(fault: Fault) -> Harness {
        Harness {
            rows: Rows::default(),
            model: Model::default(),
            limits: Limits::default(),
            revision: 0,
            committed: 0,
            seen: BTreeMap::new(),
            now: T0,
            fault,
        }
    }

    /// Runs one step on both sides and compares them.
    pub fn run(&mut self, i: usize, step: &Step) -> Result<Option<u64>, Failure> {
        self.now += step.advance_ms;
        let rev = self.revision + 1;
        let now = Millis(self.now);
        let snapshot = self.rows.snapshot(&step.cmd.rows());
        let ctx = Ctx {
            revision: rev,
            now,
            actor: "t",
            limits: &self.limits,
        };
        let result = std::panic::catch_unwind(|| execute(&step.cmd, &snapshot, &ctx))
            .map_err(|p| fail(i, "panic", format!("execute panicked: {}", panic_text(&p))))?;
        // The PostgreSQL backend probes at revision u64::MAX first and keeps the
        // probe's effect when it makes no visible write: that must be the same.
        let probe = Ctx {
            revision: u64::MAX,
            ..ctx
        };
        let probed = std::panic::catch_unwind(|| execute(&step.cmd, &snapshot, &probe)).map_err(|p| {
            fail(
                i,
                "panic",
                format!("execute panicked at the probe revision: {}", panic_text(&p)),
            )
        })?;
        let same = match (&result, &probed) {
            (Err(a), Err(b)) => a == b,
            (Ok(a), Ok(b)) => a.writes() == b.writes() && (a.writes() || a == b),
            _ => false,
        };
        if !same {
            return Err(fail(
                i,
                "probe",
                format!("at revision {rev}: {result:?}\nat the probe revision: {probed:?}"),
            ));
        }
        if let Ok(effect) = &result {
            check_effect(&step.cmd, &snapshot, effect, rev, now, self.committed)
                .map_err(|d| fail(i, "invariant", d))?;
            if effect.writes() {
                self.committed = rev;
            }
            for m in &effect.mutations {
                let m = self.corrupt(m, rev);
                self.rows.apply(&m).map_err(|d| fail(i, "invariant", d))?;
            }
            if effect.writes() && self.fault != Fault::KeepRevision {
                self.revision = rev;
            }
        }
        // A new waiter's id is the core's to choose: any id above every earlier one.
        let (answer, changes) = of_core(&result);
        let queued = match (&step.cmd, &answer) {
            (Command::Acquire { name, req }, Answer::Queued { id }) if req.wait == Some(None) => {
                let last = self.model.waiter_id_floor(name);
                if *id <= last {
                    return Err(fail(
                        i,
                        "invariant",
                        format!("waiter id {id} handed out again (last {last})"),
                    ));
                }
                Some(*id)
            }
            _ => None,
        };
        let expect = self.model.step(&step.cmd, rev, self.now, &self.limits, queued);
        let cmd_kind = format!("{:?}", step.cmd);
        let cmd_kind = cmd_kind.split([' ', '(']).next().unwrap_or_default();
        *self
            .seen
            .entry(format!("{cmd_kind} -> {}", answer_kind(&answer)))
            .or_default() += 1;
        if answer != expect.answer || changes != expect.changes {
            return Err(fail(
                i,
                "answer",
                format!(
                    "answers differ at revision {rev}, now {}:\n  core:  {answer:?}\n         {}\n  model: {:?}\n         {}",
                    self.now,
                    show_changes(&changes),
                    expect.answer,
                    show_changes(&expect.changes)
                ),
            ));
        }
        let d = diff(&self.rows.view(now), &self.model.view(self.now));
        if !d.is_empty() {
            return Err(fail(
                i,
                "state",
                format!("visible state differs at now {}:\n  {}", self.now, d.join("\n  ")),
            ));
        }
        Ok(queued)
    }

    /// The fault's version of a mutation.
    fn corrupt(&self, m: &Mutation, rev: u64) -> Mutation {
        match (self.fault, m) {
            (Fault::StaleVersion, Mutation::Put(Row::Record(r))) if r.version == rev => {
                let mut r = r.clone();
                r.version = rev - 1;
                Mutation::Put(Row::Record(r))
            }
            _ => m.clone(),
        }
    }
}

/// The variant of an answer (with the code of a refusal), for coverage.
fn answer_kind(a: &Answer) -> String {
    let text = match a {
        Answer::Refused(code) => format!("Refused {code}"),
        other => format!("{other:?}"),
    };
    let end = text
        .find(|c: char| c == '(' || c == '{' || c == '@' || (c == ' ' && !text.starts_with("Refused")))
        .unwrap_or(text.len());
    let short = &text[..end];
    short.split(" by ").next().unwrap_or(short).trim().to_owned()
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn show_changes(c: &[ChangeSig]) -> String {
    let items: Vec<String> = c
        .iter()
        .map(|c| {
            let mut s = format!("{}:{} {}", c.kind, c.key, c.op);
            if c.system {
                s.push_str(" (system)");
            }
            if c.forced {
                s.push_str(" (forced)");
            }
            s
        })
        .collect();
    format!("changes [{}]", items.join(", "))
}

/// The invariants of every effect, whatever the command:
/// - change entries carry the command's revision and `now`, indexed 0, 1, ...;
/// - it writes only rows it loaded (a gate's voided tickets under its
///   unfinished-tickets row), each once, and a non-write touches bookkeeping
///   rows only;
/// - every version, fence and revision it writes is this revision, above
///   every earlier one; a lease's fence only grows.
fn check_effect(
    cmd: &Command,
    snapshot: &Snapshot,
    effect: &Effect,
    rev: u64,
    now: Millis,
    last: u64,
) -> Result<(), String> {
    if effect.writes() && rev <= last {
        return Err(format!(
            "a write at revision {rev}, not above the last write's {last}"
        ));
    }
    for (i, c) in effect.changes.iter().enumerate() {
        if c.revision != rev || c.at != now || c.index as usize != i {
            return Err(format!(
                "change {i} is {c:?}: expected revision {rev}, index {i}, at {now:?}"
            ));
        }
    }
    let mut written = std::collections::BTreeSet::new();
    for m in &effect.mutations {
        let key = match m {
            Mutation::Put(row) => row.key(),
            Mutation::Delete(k) => k.clone(),
            Mutation::MarkRead { .. } | Mutation::ResetScrubbed { .. } => continue,
        };
        let covered = snapshot.contains_key(&key)
            || matches!(&key, RowKey::Ticket(_))
                && matches!(m, Mutation::Put(Row::Ticket(t))
                    if snapshot.contains_key(&RowKey::GateTickets(t.gate.clone())));
        if !written.insert(key.clone()) {
            return Err(format!(
                "{key:?} is written twice by one effect (one mutation per row)"
            ));
        }
        if !covered {
            return Err(format!("{m:?} writes a row {cmd:?} did not load"));
        }
        // A waiter's bookkeeping writes no change: its queue, and the lease
        // row's record of the last waiter id (nothing else of the row).
        let waiter_id_only = match (m, snapshot.get(&key)) {
            (Mutation::Put(Row::Lease(l)), Some(Some(Row::Lease(old)))) => {
                l.last_waiter > old.last_waiter
                    && Lease {
                        last_waiter: old.last_waiter,
                        ..l.clone()
                    } == *old
            }
            _ => false,
        };
        if !effect.writes() && !waiter_id_only && !matches!(key, RowKey::Waiters(_) | RowKey::Idem(..)) {
            return Err(format!("{m:?} is persisted without a change"));
        }
        let old = snapshot.get(&key).cloned().flatten();
        match m {
            Mutation::Put(Row::Record(r)) if r.version != rev => {
                return Err(format!(
                    "record {:?} written at version {} by revision {rev}",
                    r.key, r.version
                ))
            }
            Mutation::Put(Row::Lease(l)) => {
                let before = match old {
                    Some(Row::Lease(o)) => o.fence,
                    _ => 0,
                };
                if l.fence != before && (l.fence != rev || l.fence <= before) {
                    return Err(format!(
                        "lease {:?} fence {before} -> {} at revision {rev}",
                        l.name, l.fence
                    ));
                }
            }
            Mutation::Put(Row::Fence { resource, fence }) => {
                if let Some(Row::Fence { fence: before, .. }) = old {
                    if *fence <= before {
                        return Err(format!(
                            "fence of {resource:?} lowered or repeated: {before} -> {fence}"
                        ));
                    }
                }
            }
            Mutation::Put(Row::Gate(g)) if g.revision != rev => {
                return Err(format!("gate {:?} written with revision {}", g.id, g.revision))
            }
            Mutation::Put(Row::Ticket(t)) if t.revision != rev => {
                return Err(format!("ticket {:?} written with revision {}", t.id, t.revision))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs `steps` from an empty store; the first failure, if any.
pub fn replay(steps: &[Step], fault: Fault) -> Result<(), Failure> {
    let mut h = Harness::new(fault);
    for (i, s) in steps.iter().enumerate() {
        h.run(i, s)?;
    }
    Ok(())
}

/// Generates and runs `n` steps of `seed`; on failure, the history up to the
/// failing step.
pub fn run_seed(seed: u64, n: usize, fault: Fault) -> Result<BTreeMap<String, usize>, (Vec<Step>, Failure)> {
    let mut rand = Rand::new(seed);
    let mut gen = Gen::default();
    let mut h = Harness::new(fault);
    let mut history = Vec::with_capacity(n);
    for i in 0..n {
        let step = gen.step(&mut rand, &h.model, h.now, h.revision);
        history.push(step.clone());
        match h.run(i, &step) {
            Ok(Some(id)) => {
                if let Command::Acquire { name, .. } = &step.cmd {
                    gen.saw_waiter(name, id);
                }
            }
            Ok(None) => {}
            Err(f) => return Err((history, f)),
        }
    }
    Ok(h.seen)
}

/// A shorter history that fails the same kind of check: drops steps one at a
/// time (folding each dropped step's clock advance into the next) while the
/// failure stays. Bounded, so a report is quick.
pub fn shrink(mut steps: Vec<Step>, fault: Fault, kind: &'static str) -> (Vec<Step>, Failure) {
    let fails = |s: &[Step]| replay(s, fault).err().filter(|f| f.kind == kind);
    let Some(mut failure) = fails(&steps) else {
        return (
            steps.clone(),
            fail(steps.len(), kind, "did not fail again on replay".into()),
        );
    };
    steps.truncate(failure.step + 1);
    let mut budget = 3_000;
    let mut progress = true;
    while progress && budget > 0 {
        progress = false;
        let mut i = steps.len();
        while i > 0 && budget > 0 {
            i -= 1;
            budget -= 1;
            let mut candidate = steps.clone();
            let dropped = candidate.remove(i);
            if let Some(next) = candidate.get_mut(i) {
                next.advance_ms += dropped.advance_ms;
            }
            if let Some(f) = fails(&candidate) {
                candidate.truncate(f.step + 1);
                steps = candidate;
                failure = f;
                progress = true;
                i = i.min(steps.len());
            }
        }
    }
    // Then the clock: drop advances that do not matter.
    for i in 0..steps.len() {
        if steps[i].advance_ms != 0 {
            let mut candidate = steps.clone();
            candidate[i].advance_ms = 0;
            if let Some(f) = fails(&candidate) {
                steps = candidate;
                failure = f;
            }
        }
    }
    (steps, failure)
}

/// A history, one line per step.
pub fn show(steps: &[Step]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("  {i:>3}: +{}ms {:?}", s.advance_ms, s.cmd))
        .collect::<Vec<_>>()
        .join("\n")
}
