//! `lockstep bench`: concurrent writers against a running server. Reports
//! throughput and latency percentiles of hot-key and spread-key writes.

use anyhow::Context;
use lockstep_client::Client;
use serde_json::json;
use std::time::{Duration, Instant};

/// `lockstep bench` options.
#[derive(clap::Args)]
pub struct Args {
    /// The server, e.g. http://127.0.0.1:7707.
    #[arg(long)]
    url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Namespace to write in.
    #[arg(long, default_value = "bench")]
    ns: String,
}

struct Run {
    ops: usize,
    errors: usize,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `clients` workers for `seconds`; worker `w`'s `n`th write goes to
/// `key(w, n)` as an unconditional PUT.
async fn scenario(client: &Client, args: &Args, name: &str, key: fn(usize, usize) -> String) -> Run {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.clients {
        let (client, ns) = (client.clone(), args.ns.clone());
        let prefix = name.to_owned();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err, mut lat) = (0usize, 0usize, Vec::new());
            let mut n = 0;
            while Instant::now() < deadline {
                let k = format!("{prefix}/{}", key(w, n));
                let t = Instant::now();
                match client.put(&ns, &k, json!({"w": w, "n": n}), None).await {
                    Ok(_) => ok += 1,
                    Err(_) => err += 1,
                }
                lat.push(t.elapsed().as_micros() as u64);
                n += 1;
            }
            (ok, err, lat)
        }));
    }
    let mut run = Run {
        ops: 0,
        errors: 0,
        latencies_us: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        if let Ok((ok, err, lat)) = t.await {
            run.ops += ok;
            run.errors += err;
            run.latencies_us.extend(lat);
        }
    }
    run.elapsed = started.elapsed();
    run.latencies_us.sort_unstable();
    run
}

/// Runs every scenario and prints one line each.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::new(&args.url)?;
    let info = client.info().await.context("reaching the server")?;
    println!(
        "lockstep bench: {} backend={} clients={} seconds={}",
        args.url, info["backend"], args.clients, args.seconds
    );
    let hot: fn(usize, usize) -> String = |_, _| "hot".to_owned();
    let spread: fn(usize, usize) -> String = |w, n| format!("{w}/{}", n % 1000);
    let mut results = Vec::new();
    for (name, key) in [("hot-key put", hot), ("spread-key put", spread)] {
        let r = scenario(&client, &args, name.split(' ').next().unwrap_or(name), key).await;
        let ops_s = r.ops as f64 / r.elapsed.as_secs_f64();
        println!(
            "{name:<16} {ops_s:>9.0} ops/s  p50 {:>6} us  p99 {:>7} us  ok {} errors {}",
            percentile(&r.latencies_us, 0.5),
            percentile(&r.latencies_us, 0.99),
            r.ops,
            r.errors
        );
        results.push(ops_s);
    }
    if let [hot, spread] = results[..] {
        if hot > 0.0 {
            println!("spread/hot throughput ratio: {:.2}", spread / hot);
        }
    }
    Ok(())
}
