//! `lockstep check`: drives a deployment with concurrent clients across every
//! primitive, records every request and answer in a history, then verifies
//! the service's invariants on that history (docs/check.md).
//!
//! - `caller.rs`: one client's HTTP (reqwest, keep-alive) and its recording;
//! - `history.rs`: the recorded operations;
//! - `workloads/`: one module per primitive, the steps a client takes;
//! - `snapshot.rs`: the reads at the end of the run;
//! - `verify.rs`: one checker per invariant.
//!
//! Exit codes: 0 every invariant held, 2 a violation, 1 an error that
//! prevented checking.

mod caller;
mod history;
mod snapshot;
mod verify;
#[cfg(test)]
mod verify_tests;
mod workloads;

use anyhow::{bail, Context};
use caller::{Caller, Target};
use history::{Clock, History, Kind};
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use verify::Invariant;
use workloads::{gate_id, gate_policy, Worker, CAPPED_FEED, CAPPED_MAX, GATES, PAUSE_GATE};

/// The exit code when an invariant was violated.
pub const EXIT_VIOLATION: i32 = 2;

/// `lockstep check` options.
#[derive(clap::Args)]
pub struct Args {
    /// The deployment: one URL, or several instances' URLs separated by
    /// commas (clients are spread over them).
    #[arg(long, env = "LOCKSTEP_URL", value_delimiter = ',', required = true)]
    url: Vec<String>,
    /// How long to drive it, e.g. 30s, 2m, 500ms.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    clients: u16,
    /// The namespace to run in [default: a fresh `check-…` one per run].
    #[arg(long)]
    namespace: Option<String>,
    /// Bearer token (a writer of the namespace); none in open mode.
    #[arg(long, env = "LOCKSTEP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Also write the verdict as JSON to FILE (`-`: standard output, and
    /// the table goes to standard error).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
}

/// Parses `30s`, `2m`, `500ms` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 30s, 2m or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("{s:?}: the unit is ms, s or m")),
    }
}

/// A random tag of this run (std's randomly keyed hasher, no clock), in hex.
fn run_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Runs a check; answers the process exit code (0 or [`EXIT_VIOLATION`]), or
/// an error when the run could not be checked.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let urls: Vec<String> = args
        .url
        .iter()
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        bail!("--url: no URL given");
    }
    let tag = run_tag();
    let run_id = format!("r{tag}");
    let ns = args.namespace.clone().unwrap_or_else(|| format!("check-{tag}"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(usize::from(args.clients))
        .build()
        .context("building the HTTP client")?;
    let clock = Clock::start();
    let target = Target {
        http,
        urls: Arc::new(urls.clone()),
        ns: ns.clone(),
        token: args.token.clone(),
        clock,
    };
    let clients = usize::from(args.clients);
    let mut setup = Caller::new(target.clone(), clients);
    let start = prepare(&mut setup, &run_id).await?;
    let before = snapshot::counters(&mut setup).await?;

    let deadline = clock.elapsed() + args.duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let worker = Worker::new(Caller::new(target.clone(), c), run_id.clone());
        tasks.push(tokio::spawn(worker.run(move || clock.elapsed() >= deadline)));
    }
    let mut history = History::default();
    for t in tasks {
        let caller = t.await.context("a client task failed")?;
        history.extend(caller.ops);
    }
    let driven = clock.elapsed();
    let snapshot = snapshot::read(&mut setup, start, &before, &run_id).await?;
    history.extend(setup.ops);
    let invariants = verify::all(&history, &snapshot);
    let violations: usize = invariants.iter().map(|i| i.violations.len()).sum();
    let table = table(&urls, &ns, &args, &history, &invariants);
    let verdict = json!({
        "urls": urls,
        "namespace": ns,
        "clients": clients,
        "duration_ms": u64::try_from(driven.as_millis()).unwrap_or(u64::MAX),
        "operations": history.ops.len(),
        "unanswered": history.ops.iter().filter(|o| o.unknown()).count(),
        "violations": violations,
        "ok": violations == 0,
        "invariants": invariants.iter().map(|i| json!({
            "name": i.name,
            "checked": i.checked,
            "violations": i.violations.len(),
            "provoked": i.provoked,
            "examples": i.violations.iter().take(20).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&verdict).context("rendering the JSON verdict")?;
    let mut stdout = std::io::stdout().lock();
    match args.json.as_deref() {
        Some("-") => {
            std::io::stderr().lock().write_all(table.as_bytes())?;
            writeln!(stdout, "{text}")?;
        }
        Some(path) => {
            stdout.write_all(table.as_bytes())?;
            let mut f = std::fs::File::create(path).with_context(|| format!("creating {path}"))?;
            writeln!(f, "{text}").with_context(|| format!("writing {path}"))?;
        }
        None => stdout.write_all(table.as_bytes())?,
    }
    stdout.flush()?;
    Ok(if violations == 0 { 0 } else { EXIT_VIOLATION })
}

/// Creates the run's gates and the capped feed's retention, and writes a
/// start marker; answers the revision the run starts after (the change log
/// is checked from there).
async fn prepare(c: &mut Caller, run_id: &str) -> anyhow::Result<u64> {
    let marker = c
        .call(
            Kind::Setup,
            "PUT",
            "/records/check-start",
            Some(json!({"value": {"run": run_id}})),
        )
        .await;
    if !marker.ok() {
        bail!("cannot write to the deployment: {}", marker.describe());
    }
    let start = marker
        .u64("revision")
        .context("the start marker's answer has no revision")?;
    for g in 0..GATES {
        let body = json!({"policy": {"pending": gate_policy(g)}});
        let op = c
            .call(Kind::Setup, "PUT", &format!("/gates/{}", gate_id(g)), Some(body))
            .await;
        if !op.ok() {
            bail!("cannot create gate {}: {}", gate_id(g), op.describe());
        }
        // A gate left revoked by an earlier run in this namespace opens again.
        c.call(
            Kind::Setup,
            "POST",
            &format!("/gates/{}/reopen", gate_id(g)),
            None,
        )
        .await;
    }
    let op = c
        .call(
            Kind::Setup,
            "PUT",
            &format!("/gates/{PAUSE_GATE}"),
            Some(json!({})),
        )
        .await;
    if !op.ok() {
        bail!("cannot create gate {PAUSE_GATE}: {}", op.describe());
    }
    // A pause gate left paused by an earlier (interrupted) run opens again.
    c.call(Kind::Setup, "POST", &format!("/gates/{PAUSE_GATE}/resume"), None)
        .await;
    let op = c
        .call(
            Kind::Setup,
            "PUT",
            &format!("/feeds/{CAPPED_FEED}"),
            Some(json!({"max_entries": CAPPED_MAX})),
        )
        .await;
    if !op.ok() {
        bail!("cannot configure feed {CAPPED_FEED}: {}", op.describe());
    }
    Ok(start)
}

/// The human-readable verdict.
fn table(urls: &[String], ns: &str, args: &Args, h: &History, invs: &[Invariant]) -> String {
    let mut out = String::new();
    let unanswered = h.ops.iter().filter(|o| o.unknown()).count();
    out.push_str(&format!(
        "lockstep check: {} instance(s), namespace {ns}, {} clients, {:?}\n",
        urls.len(),
        args.clients,
        args.duration
    ));
    out.push_str(&format!(
        "{} operations recorded ({unanswered} unanswered)\n\n",
        h.ops.len()
    ));
    out.push_str(&format!(
        "{:<36} {:>9} {:>11}\n",
        "invariant", "checked", "violations"
    ));
    for i in invs {
        let line = format!(
            "{:<36} {:>9} {:>11}  {}",
            i.name,
            i.checked,
            i.violations.len(),
            i.provoked
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let total: usize = invs.iter().map(|i| i.violations.len()).sum();
    for i in invs.iter().filter(|i| !i.violations.is_empty()) {
        out.push_str(&format!("\n{}:\n", i.name));
        for v in i.violations.iter().take(5) {
            out.push_str(&format!("  - {v}\n"));
        }
        if i.violations.len() > 5 {
            out.push_str(&format!("  … and {} more\n", i.violations.len() - 5));
        }
    }
    out.push_str(if total == 0 {
        "\nOK: every invariant held\n"
    } else {
        "\nFAILED: invariants were violated\n"
    });
    out
}
