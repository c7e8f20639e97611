//! `lockstep-bench`: the load generator of `scripts/bench`. It drives lockstep
//! over HTTP/1.1 keep-alive and, with the `peers` feature, etcd, Redis and
//! PostgreSQL through their native clients, all closed-loop with one
//! connection per client; it also serves the no-op HTTP endpoint, measures the
//! disk's fsync rate and renders the results as markdown.

mod cpu;
mod error;
mod fsync;
mod http;
mod lockstep;
mod noop;
#[cfg(feature = "peers")]
mod peers;
mod preload;
mod report;
mod runner;
mod target;
mod workload;

use clap::{Parser, Subcommand, ValueEnum};
use error::Error;
use report::CellResult;
use runner::Plan;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use target::{Cell, Target};
use workload::Workload;

#[derive(Parser)]
#[command(
    name = "lockstep-bench",
    about = "Closed-loop load against lockstep and its peers."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// The kind of server a run drives.
#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// lockstep over HTTP (`--url http://HOST:PORT`).
    Lockstep,
    /// The no-op server of `noop-server`.
    Noop,
    /// Redis (`--url redis://HOST:PORT`; feature `peers`).
    Redis,
    /// PostgreSQL (`--url postgres://…`; feature `peers`).
    Postgres,
    /// etcd (`--url http://HOST:PORT`; feature `peers`).
    Etcd,
}

#[derive(clap::Args)]
struct Timing {
    /// Seconds of warm-up before each measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured per cell.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Append one JSON line per cell to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run workloads against one target; one line per cell. Exits 1 if a cell
    /// had errors, no operations, or a broken invariant.
    Run {
        /// What the target is.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Where it listens.
        #[arg(long)]
        url: String,
        /// The target's id in the results (e.g. lockstep-embedded, redis-always).
        #[arg(long)]
        id: String,
        /// A server process whose CPU time (with its descendants') is counted; repeatable.
        #[arg(long = "pid")]
        pids: Vec<u32>,
        /// Workloads, comma-separated, or `all` (those the target supports).
        #[arg(long, default_value = "all")]
        workloads: String,
        /// Client counts, comma-separated: one cell per workload and count.
        #[arg(long, default_value = "1,32")]
        clients: String,
        /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
        #[arg(long, default_value_t = 100)]
        clk_tck: u64,
        /// lockstep namespaces are `{prefix}-{workload}-c{clients}`.
        #[arg(long)]
        ns_prefix: Option<String>,
        #[command(flatten)]
        timing: Timing,
    },
    /// The disk's fsync rate: 4 KiB appends + fdatasync in a closed loop.
    Fsync {
        /// A directory on the disk under test.
        #[arg(long)]
        dir: PathBuf,
        /// Writers, each on its own file.
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[command(flatten)]
        timing: Timing,
    },
    /// Serve the no-op JSON endpoint `POST /noop` until killed.
    NoopServer {
        /// HOST:PORT (port 0: any free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Print the markdown of a results file: the table, the targets, or the
    /// scale comparison (targets `lockstep-empty` and `lockstep-loaded`).
    Report {
        /// The JSON lines written by `run --out`.
        #[arg(long)]
        results: PathBuf,
        /// `table`, `targets` or `scale`.
        #[arg(long, default_value = "table")]
        section: String,
    },
    /// Fill a lockstep namespace with records and feed entries through its
    /// API (transactions of puts, feed imports), for the scale run.
    Preload {
        /// The lockstep server (`http://HOST:PORT`).
        #[arg(long)]
        url: String,
        #[command(flatten)]
        what: preload::Plan,
    },
    /// Print a free TCP port of 127.0.0.1.
    FreePort,
}

fn duration(secs: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(secs).map_err(|e| Error::Usage(format!("{secs} seconds: {e}")))
}

fn emit(mut r: CellResult, id: &str, out: Option<&PathBuf>) -> Result<bool, Error> {
    r.target = id.to_owned();
    println!("{}", r.line());
    if let Some(path) = out {
        report::append(path, &r)?;
    }
    Ok(r.passed())
}

/// Every cell of `workloads` × `clients` the target supports; true if all passed.
async fn run_target<T: Target>(
    target: T,
    id: &str,
    workloads: &[Workload],
    clients: &[usize],
    plan: &Plan,
    out: Option<&PathBuf>,
) -> Result<bool, Error> {
    let target = Arc::new(target);
    let mut passed = true;
    for &w in workloads.iter().filter(|w| target.supports(**w)) {
        for &c in clients {
            let cell = Cell {
                workload: w,
                clients: c,
                tag: format!("{}-c{c}", w.name().replace('_', "-")),
            };
            let r = runner::run_cell(target.clone(), cell, plan).await?;
            passed &= emit(r, id, out)?;
        }
    }
    Ok(passed)
}

#[cfg(not(feature = "peers"))]
fn without_peers() -> Error {
    Error::Usage("this build has no peer clients: build with `--features peers`".into())
}

async fn run(cmd: Cmd) -> Result<bool, Error> {
    match cmd {
        Cmd::Run {
            kind,
            url,
            id,
            pids,
            workloads,
            clients,
            clk_tck,
            ns_prefix,
            timing,
        } => {
            let workloads = Workload::parse_list(&workloads)?;
            let clients = clients
                .split(',')
                .map(|c| c.trim().parse::<usize>().ok().filter(|&n| n > 0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::Usage(format!("--clients {clients:?}: positive numbers")))?;
            let plan = Plan {
                warmup: duration(timing.warmup)?,
                measure: duration(timing.seconds)?,
                pids,
                clk_tck,
            };
            let out = timing.out.as_ref();
            let ns = ns_prefix.unwrap_or_else(|| format!("bench-{}", std::process::id()));
            match kind {
                Kind::Lockstep => {
                    let t = lockstep::Lockstep::new(http::parse_base(&url)?, ns);
                    run_target(t, &id, &workloads, &clients, &plan, out).await
                }
                Kind::Noop => {
                    let t = noop::Noop::new(http::parse_base(&url)?);
                    run_target(t, &id, &workloads, &clients, &plan, out).await
                }
                #[cfg(feature = "peers")]
                Kind::Redis => {
                    let t = peers::redis::Redis::new(&url)?;
                    run_target(t, &id, &workloads, &clients, &plan, out).await
                }
                #[cfg(feature = "peers")]
                Kind::Postgres => {
                    let t = peers::postgres::Postgres::new(&url);
                    run_target(t, &id, &workloads, &clients, &plan, out).await
                }
                #[cfg(feature = "peers")]
                Kind::Etcd => {
                    let t = peers::etcd::Etcd::new(&url);
                    run_target(t, &id, &workloads, &clients, &plan, out).await
                }
                #[cfg(not(feature = "peers"))]
                Kind::Redis | Kind::Postgres | Kind::Etcd => Err(without_peers()),
            }
        }
        Cmd::Fsync { dir, clients, timing } => {
            let (warmup, measure) = (duration(timing.warmup)?, duration(timing.seconds)?);
            let r = tokio::task::spawn_blocking(move || fsync::run(&dir, clients, warmup, measure))
                .await
                .map_err(|e| Error::Unexpected(e.to_string()))??;
            emit(r, "disk-fsync", timing.out.as_ref())
        }
        Cmd::NoopServer { listen } => noop::serve(&listen).await.map(|()| true),
        Cmd::Report { results, section } => {
            let results = report::load(&results)?;
            match section.as_str() {
                "table" => print!("{}", report::table(&results)),
                "targets" => print!("{}", report::targets(&results)),
                "scale" => print!("{}", report::scale(&results)),
                other => {
                    return Err(Error::Usage(format!(
                        "--section {other:?}: table, targets or scale"
                    )))
                }
            }
            Ok(true)
        }
        Cmd::Preload { url, what } => preload::run(http::parse_base(&url)?, what).await.map(|()| true),
        Cmd::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(true)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("lockstep-bench: some cells failed (see the lines above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("lockstep-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
