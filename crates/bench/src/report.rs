//! Results: one JSON line per cell, and the markdown of docs/performance.md
//! (the table, then each of issue #15's targets as a ratio of the same run).

use crate::error::Error;
use crate::workload::Workload;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// One cell: a workload at a concurrency against a target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellResult {
    /// The target's id (e.g. `lockstep-embedded`, `redis-always`).
    pub target: String,
    /// The workload's name.
    pub workload: String,
    /// Closed-loop clients.
    pub clients: usize,
    /// Length of the measured window.
    pub seconds: f64,
    /// Operations completed in the window.
    pub ops: u64,
    /// `ops / seconds`.
    pub ops_per_s: f64,
    /// Median latency of an operation (retries included).
    pub p50_us: u64,
    /// 99th percentile latency.
    pub p99_us: u64,
    /// Server CPU (user + system, all its processes) per operation; None when
    /// not measured.
    pub cpu_us_per_op: Option<f64>,
    /// Peak resident set of the server's processes (summed) in the measured
    /// window, KiB; None when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_peak_kb: Option<u64>,
    /// CAS conflicts retried, or held leases skipped.
    pub retries: u64,
    /// Failed operations (each client stops after 50).
    pub errors: u64,
    /// The first error a client saw.
    pub first_error: Option<String>,
    /// `ok`, `n/a` or `FAILED: …`.
    pub invariant: String,
}

impl CellResult {
    /// Whether the cell ran cleanly: operations, no errors, invariant held.
    pub fn passed(&self) -> bool {
        self.ops > 0 && self.errors == 0 && !self.invariant.starts_with("FAILED")
    }

    /// The line printed while the bench runs.
    pub fn line(&self) -> String {
        format!(
            "{:<18} {:<12} C={:<3} {:>9.0} ops/s  p50 {:>6} us  p99 {:>7} us  cpu {:>7} us/op  rss {:>5} MB  retries {}  errors {}  invariant {}{}",
            self.target,
            self.workload,
            self.clients,
            self.ops_per_s,
            self.p50_us,
            self.p99_us,
            self.cpu_us_per_op.map_or("-".into(), |c| format!("{c:.0}")),
            self.rss_peak_kb.map_or("-".into(), |kb| format!("{:.0}", kb as f64 / 1024.0)),
            self.retries,
            self.errors,
            self.invariant,
            self.first_error.as_ref().map_or(String::new(), |e| format!("  first error: {e}")),
        )
    }
}

/// Appends one result line to `path`.
pub fn append(path: &Path, r: &CellResult) -> Result<(), Error> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{}", serde_json::to_string(r)?)?;
    Ok(())
}

/// Reads every result line of `path`.
pub fn load(path: &Path) -> Result<Vec<CellResult>, Error> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// Target ids in the order of the table, with what they are.
pub const TARGETS: [(&str, &str); 10] = [
    ("lockstep-embedded", "lockstep, embedded (SQLite)"),
    ("lockstep-empty", "lockstep embedded, empty store"),
    ("lockstep-loaded", "lockstep embedded, large store"),
    ("lockstep-pg", "lockstep over PostgreSQL"),
    ("redis-always", "Redis, appendfsync always"),
    ("redis-default", "Redis, defaults (not durable)"),
    ("postgres", "PostgreSQL, direct SQL"),
    ("etcd", "etcd"),
    ("http-noop", "axum no-op (HTTP ceiling)"),
    ("disk-fsync", "disk: 4 KiB write + fdatasync"),
];

fn target_rank(id: &str) -> usize {
    TARGETS
        .iter()
        .position(|(t, _)| *t == id)
        .unwrap_or(TARGETS.len())
}

fn target_label(id: &str) -> &str {
    TARGETS.iter().find(|(t, _)| *t == id).map_or(id, |(_, l)| l)
}

fn workload_rank(name: &str) -> usize {
    Workload::ALL
        .iter()
        .position(|w| w.name() == name)
        .unwrap_or(Workload::ALL.len())
}

/// The results table, one row per cell.
pub fn table(results: &[CellResult]) -> String {
    let mut rows = results.to_vec();
    rows.sort_by_key(|r| (workload_rank(&r.workload), r.clients, target_rank(&r.target)));
    let mut out = String::from(
        "| workload | C | target | ops/s | p50 µs | p99 µs | server CPU µs/op | retries | errors | invariant |\n\
         |---|--:|---|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.clients,
            target_label(&r.target),
            r.ops_per_s,
            r.p50_us,
            r.p99_us,
            r.cpu_us_per_op.map_or("–".into(), |c| format!("{c:.0}")),
            r.retries,
            r.errors,
            r.invariant.replace('|', "/"),
        );
    }
    out
}

fn rate(results: &[CellResult], target: &str, workload: &str, clients: usize) -> Option<f64> {
    results
        .iter()
        .find(|r| r.target == target && r.workload == workload && r.clients == clients && r.ops > 0)
        .map(|r| r.ops_per_s)
}

/// One line per target of issue #15: the ratio in this run and whether it is met.
pub fn targets(results: &[CellResult]) -> String {
    let mut out = String::new();
    let mut line = |what: String, num: Option<f64>, den: Option<f64>, goal: f64| {
        let verdict = match (num, den) {
            (Some(n), Some(d)) if d > 0.0 => {
                let ratio = n / d;
                let met = if ratio >= goal { "met" } else { "**not met**" };
                format!("{ratio:.2}× (goal ≥ {goal}×): {met}")
            }
            _ => format!("not measured (goal ≥ {goal}×)"),
        };
        let _ = writeln!(out, "- {what}: {verdict}");
    };
    let three = ["cas_spread", "lease_cycle", "feed_append"];
    let embedded = |w: &str| rate(results, "lockstep-embedded", w, 32);
    for w in three {
        line(
            format!("embedded / Redis-always, `{w}`"),
            embedded(w),
            rate(results, "redis-always", w, 32),
            1.0,
        );
    }
    for w in ["cas_hot", "cas_spread", "lease_cycle", "feed_append"] {
        line(
            format!("embedded / etcd, `{w}`"),
            embedded(w),
            rate(results, "etcd", w, 32),
            3.0,
        );
    }
    for w in three {
        line(
            format!("over PostgreSQL / direct PostgreSQL, `{w}`"),
            rate(results, "lockstep-pg", w, 32),
            rate(results, "postgres", w, 32),
            0.7,
        );
    }
    line(
        "embedded `feed_append` / HTTP no-op ceiling".into(),
        embedded("feed_append"),
        rate(results, "http-noop", "noop", 32),
        0.4,
    );
    for w in three {
        line(
            format!("embedded `{w}` / disk fsync rate (C=1)"),
            embedded(w),
            rate(results, "disk-fsync", "fsync_4k", 1),
            3.0,
        );
    }
    out
}

/// The cell of median throughput among the rounds of `target` × `w` (the
/// lower middle one of an even count).
fn median_cell<'a>(results: &'a [CellResult], target: &str, w: &str) -> Option<&'a CellResult> {
    let mut rounds: Vec<&CellResult> = results
        .iter()
        .filter(|r| r.target == target && r.workload == w && r.ops > 0)
        .collect();
    rounds.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    rounds.get(rounds.len().saturating_sub(1) / 2).copied()
}

/// The scale run: each workload on the empty and on the large store (the
/// median of its rounds), and the issue #15 targets (within 20% of the empty
/// figures; peak RSS, the largest of any round, within 1.2×).
pub fn scale(results: &[CellResult]) -> String {
    let find = |target: &str, w: &str| median_cell(results, target, w);
    let rss_of = |target: &str| {
        results
            .iter()
            .filter(|r| r.target == target)
            .filter_map(|r| r.rss_peak_kb)
            .max()
            .unwrap_or(0)
    };
    let mut out = String::from(
        "| workload | C | empty: ops/s | large: ops/s | large / empty | p50 µs (empty → large) | p99 µs | CPU µs/op | peak RSS MB | invariant |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    let mb = |r: &CellResult| {
        r.rss_peak_kb
            .map_or("–".into(), |kb| format!("{:.0}", kb as f64 / 1024.0))
    };
    let cpu = |r: &CellResult| r.cpu_us_per_op.map_or("–".into(), |c| format!("{c:.0}"));
    let mut targets = String::new();
    for w in ["cas_spread", "feed_append", "feed_page"] {
        let (Some(e), Some(l)) = (find("lockstep-empty", w), find("lockstep-loaded", w)) else {
            let _ = writeln!(targets, "- `{w}` large / empty: not measured (goal ≥ 0.8×)");
            continue;
        };
        let ratio = l.ops_per_s / e.ops_per_s.max(1e-9);
        let _ = writeln!(
            out,
            "| {w} | {} | {:.0} | {:.0} | {ratio:.2}× | {} → {} | {} → {} | {} → {} | {} → {} | {} / {} |",
            l.clients,
            e.ops_per_s,
            l.ops_per_s,
            e.p50_us,
            l.p50_us,
            e.p99_us,
            l.p99_us,
            cpu(e),
            cpu(l),
            mb(e),
            mb(l),
            e.invariant.replace('|', "/"),
            l.invariant.replace('|', "/"),
        );
        let met = if ratio >= 0.8 { "met" } else { "**not met**" };
        let _ = writeln!(targets, "- `{w}` large / empty: {ratio:.2}× (goal ≥ 0.8×): {met}");
    }
    let rss = (rss_of("lockstep-empty"), rss_of("lockstep-loaded"));
    let verdict = if rss.0 == 0 || rss.1 == 0 {
        "not measured (goal ≤ 1.2×)".to_owned()
    } else {
        let ratio = rss.1 as f64 / rss.0 as f64;
        let met = if ratio <= 1.2 { "met" } else { "**not met**" };
        format!(
            "{ratio:.2}× ({:.0} MB → {:.0} MB; goal ≤ 1.2×): {met}",
            rss.0 as f64 / 1024.0,
            rss.1 as f64 / 1024.0
        )
    };
    let _ = writeln!(
        targets,
        "- peak RSS under the C=32 load, large / empty: {verdict}"
    );
    out.push('\n');
    out.push_str(&targets);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(target: &str, workload: &str, clients: usize, ops_per_s: f64) -> CellResult {
        CellResult {
            target: target.into(),
            workload: workload.into(),
            clients,
            seconds: 1.0,
            ops: ops_per_s as u64,
            ops_per_s,
            p50_us: 1,
            p99_us: 2,
            cpu_us_per_op: Some(3.0),
            rss_peak_kb: Some(4096),
            retries: 0,
            errors: 0,
            first_error: None,
            invariant: "ok".into(),
        }
    }

    #[test]
    fn the_table_is_ordered_by_workload_then_clients_then_target() {
        let t = table(&[
            cell("etcd", "cas_spread", 32, 1.0),
            cell("lockstep-embedded", "cas_spread", 32, 2.0),
            cell("lockstep-embedded", "cas_hot", 1, 3.0),
        ]);
        let lines: Vec<&str> = t.lines().skip(2).collect();
        assert!(lines[0].starts_with("| cas_hot | 1 | lockstep"));
        assert!(lines[1].starts_with("| cas_spread | 32 | lockstep"));
        assert!(lines[2].starts_with("| cas_spread | 32 | etcd"));
    }

    #[test]
    fn the_scale_report_takes_the_median_round() {
        let rounds = [
            cell("lockstep-empty", "feed_page", 32, 300.0),
            cell("lockstep-empty", "feed_page", 32, 100.0),
            cell("lockstep-empty", "feed_page", 32, 200.0),
        ];
        assert_eq!(
            median_cell(&rounds, "lockstep-empty", "feed_page").map(|r| r.ops),
            Some(200)
        );
        assert_eq!(
            median_cell(&rounds[..2], "lockstep-empty", "feed_page").map(|r| r.ops),
            Some(100)
        );
        assert!(median_cell(&rounds, "lockstep-loaded", "feed_page").is_none());
    }

    #[test]
    fn the_scale_report_compares_the_large_store_with_the_empty_one() {
        let mut big = cell("lockstep-loaded", "cas_spread", 32, 90.0);
        big.rss_peak_kb = Some(8192);
        let s = scale(&[cell("lockstep-empty", "cas_spread", 32, 100.0), big]);
        assert!(s.contains("| cas_spread | 32 | 100 | 90 | 0.90× |"), "{s}");
        assert!(s.contains("`cas_spread` large / empty: 0.90× (goal ≥ 0.8×): met"));
        assert!(s.contains("`feed_page` large / empty: not measured"));
        assert!(s.contains("large / empty: 2.00× (4 MB → 8 MB; goal ≤ 1.2×): **not met**"));
    }

    #[test]
    fn targets_give_ratios_and_say_what_is_missing() {
        let t = targets(&[
            cell("lockstep-embedded", "cas_spread", 32, 100.0),
            cell("redis-always", "cas_spread", 32, 200.0),
        ]);
        assert!(t.contains("embedded / Redis-always, `cas_spread`: 0.50× (goal ≥ 1×): **not met**"));
        assert!(t.contains("embedded / etcd, `cas_hot`: not measured"));
    }
}
