//! The disk's fsync rate: each client appends 4 KiB to its own file in a temp
//! directory and calls fdatasync, in a closed loop. This bounds any durable
//! store that syncs once per write; only group commit goes past it.

use crate::error::Error;
use crate::report::CellResult;
use crate::runner::percentile;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes written before each fdatasync.
const BLOCK_BYTES: usize = 4096;

/// What one writer did: successes overall, measured latencies.
struct Writer {
    writes: u64,
    latencies_us: Vec<u32>,
    file: PathBuf,
}

fn write_loop(file: PathBuf, from: Instant, until: Instant) -> Result<Writer, Error> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&file)?;
    let block = vec![b'x'; BLOCK_BYTES];
    let mut w = Writer {
        writes: 0,
        latencies_us: Vec::new(),
        file,
    };
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            return Ok(w);
        }
        f.write_all(&block)?;
        f.sync_data()?;
        w.writes += 1;
        let done = Instant::now();
        if t0 >= from && done <= until {
            let us = done.duration_since(t0).as_micros();
            w.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }
}

/// Runs `clients` writers in `dir` and checks each file holds every write.
pub fn run(dir: &Path, clients: usize, warmup: Duration, measure: Duration) -> Result<CellResult, Error> {
    let start = Instant::now();
    let (from, until) = (start + warmup, start + warmup + measure);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let file = dir.join(format!("fsync-{i}.bin"));
            std::thread::spawn(move || write_loop(file, from, until))
        })
        .collect();
    let mut lat = Vec::new();
    let mut invariant = "ok".to_owned();
    for h in handles {
        let w = h
            .join()
            .map_err(|_| Error::Unexpected("an fsync writer panicked".into()))??;
        let len = std::fs::metadata(&w.file)?.len();
        if len != w.writes * BLOCK_BYTES as u64 {
            invariant = format!(
                "FAILED: {} holds {len} bytes, {} writes",
                w.file.display(),
                w.writes
            );
        }
        std::fs::remove_file(&w.file)?;
        lat.extend(w.latencies_us);
    }
    lat.sort_unstable();
    let secs = measure.as_secs_f64();
    Ok(CellResult {
        target: String::new(),
        workload: "fsync_4k".into(),
        clients,
        seconds: secs,
        ops: lat.len() as u64,
        ops_per_s: lat.len() as f64 / secs.max(1e-9),
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
        cpu_us_per_op: None,
        rss_peak_kb: None,
        retries: 0,
        errors: 0,
        first_error: None,
        invariant,
    })
}
