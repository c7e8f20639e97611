//! The closed loop: every client sends its next operation as soon as the last
//! one answered, on its own connection. Warm-up first, then the measured
//! window; server CPU is sampled at both ends of the window. After the run the
//! target's state is checked against what the clients saw succeed.

use crate::cpu;
use crate::error::Error;
use crate::report::CellResult;
use crate::target::{Cell, Client, Target};
use crate::workload::{self, Rng, Workload};
use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Errors after which a client gives up (the cell then shows them).
const CLIENT_ERRORS_MAX: u64 = 50;

/// How long and how hard to run a cell.
pub struct Plan {
    /// Warm-up before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Server processes whose CPU time is counted (each with its descendants).
    pub pids: Vec<u32>,
    /// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`).
    pub clk_tck: u64,
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Successful operations, warm-up included (for the invariant).
    successes: u64,
    /// Operations completed inside the measured window.
    measured: u64,
    /// Conflicts retried (CAS) or held leases skipped (lease_cycle).
    retries: u64,
    errors: u64,
    first_error: Option<String>,
    /// Times a lease was seen with two holders or a release did not hold it,
    /// or a feed pass did not see every entry exactly once.
    violations: u64,
    latencies_us: Vec<u32>,
}

/// Shared by the clients of a `lease_cycle`: how many clients believe they
/// hold each name.
type Holders = Arc<Vec<AtomicI32>>;

struct Window {
    from: Instant,
    until: Instant,
}

/// Runs `cell` on `target` and checks its invariant.
pub async fn run_cell<T: Target>(target: Arc<T>, cell: Cell, plan: &Plan) -> Result<CellResult, Error> {
    target.prepare(&cell).await?;
    let mut clients = Vec::with_capacity(cell.clients);
    for i in 0..cell.clients {
        clients.push(target.connect(&cell, i).await?);
    }
    let holders: Holders = Arc::new((0..workload::LEASE_NAMES).map(|_| AtomicI32::new(0)).collect());
    let start = Instant::now();
    let window = Arc::new(Window {
        from: start + plan.warmup,
        until: start + plan.warmup + plan.measure,
    });
    let pids = plan.pids.clone();
    let w = window.clone();
    let sampler = tokio::spawn(async move { sample(&pids, &w).await });
    let mut tasks = Vec::with_capacity(cell.clients);
    for (index, client) in clients.into_iter().enumerate() {
        let (window, holders, tag) = (window.clone(), holders.clone(), cell.tag.clone());
        let wl = cell.workload;
        tasks.push(tokio::spawn(async move {
            drive(client, wl, index, &tag, &window, &holders).await
        }));
    }
    let mut all = Seen::default();
    for t in tasks {
        let s = t
            .await
            .map_err(|e| Error::Unexpected(format!("a client panicked: {e}")))?;
        all.successes += s.successes;
        all.measured += s.measured;
        all.retries += s.retries;
        all.errors += s.errors;
        all.violations += s.violations;
        all.first_error = all.first_error.or(s.first_error);
        all.latencies_us.extend(s.latencies_us);
    }
    let (ticks, rss_peak_kb) = sampler
        .await
        .map_err(|e| Error::Unexpected(format!("the CPU sampler panicked: {e}")))?;
    let invariant = check(&*target, &cell, &all).await;
    all.latencies_us.sort_unstable();
    let secs = plan.measure.as_secs_f64();
    let cpu_us_per_op = match (plan.pids.is_empty(), ticks) {
        (true, _) => None,
        (false, Ok(t)) if all.measured > 0 => {
            Some(t as f64 * 1e6 / plan.clk_tck.max(1) as f64 / all.measured as f64)
        }
        (false, _) => None,
    };
    Ok(CellResult {
        target: String::new(),
        workload: cell.workload.name().to_owned(),
        clients: cell.clients,
        seconds: secs,
        ops: all.measured,
        ops_per_s: all.measured as f64 / secs.max(1e-9),
        p50_us: percentile(&all.latencies_us, 0.50),
        p99_us: percentile(&all.latencies_us, 0.99),
        cpu_us_per_op,
        rss_peak_kb,
        retries: all.retries,
        errors: all.errors,
        first_error: all.first_error,
        invariant,
    })
}

/// How often the resident set is read during the measured window.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// The servers' CPU ticks over the measured window, and the peak of their
/// resident set in it (None without pids or when it could not be read).
async fn sample(pids: &[u32], w: &Window) -> (Result<u64, Error>, Option<u64>) {
    tokio::time::sleep_until(w.from.into()).await;
    let before = cpu::tree_ticks(pids);
    let mut rss_peak: Option<u64> = None;
    loop {
        if !pids.is_empty() {
            if let Ok(kb) = cpu::tree_rss_kb(pids) {
                rss_peak = Some(rss_peak.unwrap_or(0).max(kb));
            }
        }
        let now = Instant::now();
        if now >= w.until {
            break;
        }
        tokio::time::sleep_until((now + RSS_EVERY).min(w.until).into()).await;
    }
    let ticks = match (before, cpu::tree_ticks(pids)) {
        (Ok(b), Ok(a)) => Ok(a.saturating_sub(b)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    (ticks, rss_peak)
}

/// The `p` quantile of sorted latencies (0 when empty).
pub fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    u64::from(sorted[i.min(sorted.len() - 1)])
}

/// The invariant of the cell: `ok`, `n/a`, or what broke.
async fn check<T: Target>(target: &T, cell: &Cell, seen: &Seen) -> String {
    if seen.violations > 0 {
        let what = if cell.workload == Workload::FeedPage {
            "feed passes that did not see every entry exactly once"
        } else {
            "lease violations (two holders or a release that did not hold)"
        };
        return format!("FAILED: {} {what}", seen.violations);
    }
    if cell.workload == Workload::Noop {
        return "n/a".into();
    }
    let tally = match target.tally(cell).await {
        Ok(t) => t,
        Err(e) => return format!("FAILED: tally: {e}"),
    };
    let (expected, what) = match cell.workload {
        Workload::LeaseCycle => (0, "leases still held"),
        Workload::CasHot | Workload::CasSpread => (seen.successes, "counter sum vs successes"),
        Workload::FeedAppend | Workload::GateCycle => (seen.successes, "entries vs appends"),
        Workload::FeedPage => (
            (workload::PAGE_FEEDS * workload::PAGE_FEED_ENTRIES) as u64,
            "entries vs imported",
        ),
        Workload::KeyedWrite | Workload::Noop => (seen.successes, "records vs writes"),
    };
    if tally == expected {
        "ok".into()
    } else {
        format!("FAILED: {what}: {tally} != {expected}")
    }
}

/// One client's loop.
async fn drive<C: Client>(
    mut client: C,
    wl: Workload,
    index: usize,
    tag: &str,
    window: &Window,
    holders: &Holders,
) -> Seen {
    let mut seen = Seen::default();
    let mut rng = Rng::new(index);
    let data = workload::entry_data();
    let mut n: u64 = 0;
    let mut pager = Pager::new(index);
    loop {
        let t0 = Instant::now();
        if t0 >= window.until || seen.errors >= CLIENT_ERRORS_MAX {
            break;
        }
        n += 1;
        let outcome = match wl {
            Workload::CasHot => cas(&mut client, "c/0", &mut seen).await,
            Workload::CasSpread => {
                let key = format!("c/{}", rng.below(workload::SPREAD_KEYS));
                cas(&mut client, &key, &mut seen).await
            }
            Workload::LeaseCycle => {
                let owner = format!("{tag}-{index}-{n}");
                lease_cycle(&mut client, &owner, &mut rng, holders, &mut seen).await
            }
            Workload::FeedAppend => {
                let feed = format!("f{}", rng.below(workload::FEEDS));
                client.append(&feed, &format!("{index}-{n}"), &data).await
            }
            Workload::FeedPage => pager.next(&mut client, &mut seen).await,
            Workload::GateCycle => {
                let ticket = format!("t{index}-{n}");
                client
                    .gate_cycle(&format!("g{index}"), &ticket, &format!("gate-out-{index}"))
                    .await
            }
            Workload::KeyedWrite => {
                let key = format!("kw/{index}/{n}");
                client.keyed_write(&key, &format!("{tag}-{index}-{n}")).await
            }
            Workload::Noop => client.noop().await,
        };
        let done = Instant::now();
        match outcome {
            Ok(true) => {
                seen.successes += 1;
                if t0 >= window.from && done <= window.until {
                    seen.measured += 1;
                    let us = done.duration_since(t0).as_micros();
                    seen.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Ok(false) => {
                seen.errors += 1;
                seen.first_error
                    .get_or_insert_with(|| format!("{} answered a refusal", wl.name()));
            }
            Err(e) => {
                seen.errors += 1;
                seen.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    seen
}

/// A client's place in `feed_page`: the feed it pages, the cursor, and the
/// ids its current pass saw.
struct Pager {
    feed: usize,
    cursor: Option<String>,
    ids: HashSet<String>,
}

impl Pager {
    fn new(client: usize) -> Self {
        Pager {
            feed: client % workload::PAGE_FEEDS,
            cursor: None,
            ids: HashSet::with_capacity(workload::PAGE_FEED_ENTRIES),
        }
    }

    /// Reads the next page; at the end of a pass, checks it saw every entry
    /// once and moves on to the next feed.
    async fn next<C: Client>(&mut self, client: &mut C, seen: &mut Seen) -> Result<bool, Error> {
        let page = client
            .page(&format!("p{}", self.feed), self.cursor.as_deref())
            .await?;
        let (before, fresh) = (self.ids.len(), page.ids.len());
        self.ids.extend(page.ids);
        let repeated = self.ids.len() != before + fresh;
        if repeated || (page.next.is_some() && fresh != workload::PAGE_SIZE) {
            seen.violations += 1;
        }
        self.cursor = page.next;
        if self.cursor.is_none() {
            if self.ids.len() != workload::PAGE_FEED_ENTRIES {
                seen.violations += 1;
            }
            self.ids.clear();
            self.feed = (self.feed + 1) % workload::PAGE_FEEDS;
        }
        Ok(true)
    }
}

/// CAS until it applies.
async fn cas<C: Client>(client: &mut C, key: &str, seen: &mut Seen) -> Result<bool, Error> {
    while !client.cas(key).await? {
        seen.retries += 1;
    }
    Ok(true)
}

/// Acquire a free name (another one while they are held), note the holding,
/// release with compare-and-clear.
async fn lease_cycle<C: Client>(
    client: &mut C,
    owner: &str,
    rng: &mut Rng,
    holders: &Holders,
    seen: &mut Seen,
) -> Result<bool, Error> {
    let (slot, name, token) = loop {
        let slot = rng.below(workload::LEASE_NAMES as u64) as usize;
        let name = format!("l{slot}");
        match client.acquire(&name, owner).await? {
            Some(token) => break (slot, name, token),
            None => seen.retries += 1,
        }
    };
    let Some(count) = holders.get(slot) else {
        return Err(Error::Unexpected(format!("lease slot {slot}")));
    };
    if count.fetch_add(1, Ordering::SeqCst) != 0 {
        seen.violations += 1;
    }
    // Give the holding up before the release is sent: once the server frees
    // the name another client may hold it.
    count.fetch_sub(1, Ordering::SeqCst);
    if !client.release(&name, &token).await? {
        seen.violations += 1;
    }
    Ok(true)
}
