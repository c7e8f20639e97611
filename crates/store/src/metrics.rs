//! Storage metrics: fixed-bucket histograms of commit batch sizes and storage
//! latency, rendered as Prometheus text by the server.

use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with these (ascending) bucket upper bounds.
    pub fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: u64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the Prometheus text exposition of this histogram.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.render_series(name, "", out);
    }

    /// Appends the samples of this histogram as one series of `name` with
    /// `labels` (`a="x",b="y"`, or empty), without the HELP and TYPE lines.
    pub fn render_series(&self, name: &str, labels: &str, out: &mut String) {
        use std::fmt::Write;
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Metrics every backend records.
#[derive(Debug)]
pub struct StoreMetrics {
    /// Commands per storage commit (SQLite group commit; 1 on PostgreSQL).
    pub commit_batch_size: Histogram,
    /// Time to execute one write command, in microseconds.
    pub storage_latency_us: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            commit_batch_size: Histogram::new(&[1, 2, 4, 8, 16, 32, 64, 128, 256]),
            storage_latency_us: Histogram::new(&[
                100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
            ]),
        }
    }
}

impl StoreMetrics {
    /// Prometheus text of every storage metric.
    pub fn render(&self, out: &mut String) {
        self.commit_batch_size.render(
            "lockstep_commit_batch_size",
            "Write commands committed per storage transaction.",
            out,
        );
        self.storage_latency_us.render(
            "lockstep_storage_write_latency_microseconds",
            "Time to execute and commit one write command.",
            out,
        );
    }
}
