//! `lockstep bench`: concurrent clients against a running server, one scenario
//! after another; prints throughput and latency percentiles of each, and the
//! ratios the issues ask for (spread/hot, keyed/unkeyed). `keyed-overhead`
//! measures one client's sequential writes with and without an
//! `Idempotency-Key`.

use anyhow::Context;
use lockstep_client::{Client, Method};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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
    /// Namespace to write in (a fresh suffix is added per run).
    #[arg(long, default_value = "bench")]
    ns: String,
    /// Scenarios: records, leases, feeds, gates, idempotency, keyed-overhead,
    /// or all.
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// Bearer token (a writer of the bench namespace); none in open mode.
    #[arg(long, env = "LOCKSTEP_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// One operation of worker `w`, iteration `n`: Ok when it succeeded.
type Op =
    Arc<dyn Fn(Client, String, usize, usize) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

struct Run {
    ops: usize,
    errors: usize,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn scenario(client: &Client, args: &Args, ns: &str, name: &str, op: Op) -> Run {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.clients {
        let (client, ns, op) = (client.clone(), ns.to_owned(), op.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err, mut lat) = (0usize, 0usize, Vec::new());
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if op(client.clone(), ns.clone(), w, n).await {
                    ok += 1;
                } else {
                    err += 1;
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
    println!(
        "{name:<28} {:>9.0} ops/s  p50 {:>6} us  p99 {:>7} us  ok {} errors {}",
        run.per_second(),
        percentile(&run.latencies_us, 0.5),
        percentile(&run.latencies_us, 0.99),
        run.ops,
        run.errors
    );
    run
}

async fn call(c: &Client, m: Method, path: String, body: Value, key: Option<String>) -> Option<Value> {
    match c.call(m, &path, Some(&body), key.as_deref()).await {
        Ok((_, v)) => Some(v),
        Err(_) => None,
    }
}

fn op<F, Fut>(f: F) -> Op
where
    F: Fn(Client, String, usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    Arc::new(move |c, ns, w, n| Box::pin(f(c, ns, w, n)))
}

fn put(key: fn(usize, usize) -> String, keyed: bool) -> Op {
    op(move |c, ns, w, n| async move {
        let path = format!("/v1/ns/{ns}/records/{}", Client::segment(&key(w, n)));
        let idem = keyed.then(|| format!("w{w}-n{n}"));
        call(&c, Method::PUT, path, json!({"value": {"w": w, "n": n}}), idem)
            .await
            .is_some()
    })
}

/// Runs the chosen scenarios and prints one line each.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = match &args.token {
        Some(t) => Client::with_token(&args.url, t)?,
        None => Client::new(&args.url)?,
    };
    let info = client.info().await.context("reaching the server")?;
    let ns = format!("{}-{}", args.ns, std::process::id());
    println!(
        "lockstep bench: {} backend={} clients={} seconds={} ns={ns}",
        args.url, info["backend"], args.clients, args.seconds
    );
    let all = args.scenarios == "all";
    let wants = |s: &str| all || args.scenarios.split(',').any(|x| x == s);
    if wants("records") {
        let hot = scenario(
            &client,
            &args,
            &ns,
            "record put, one hot key",
            put(|_, _| "hot".into(), false),
        )
        .await;
        let spread = scenario(
            &client,
            &args,
            &ns,
            "record put, spread keys",
            put(|w, n| format!("{w}/{}", n % 1000), false),
        )
        .await;
        println!(
            "  spread/hot throughput ratio: {:.2}",
            spread.per_second() / hot.per_second().max(1e-9)
        );
    }
    if wants("idempotency") {
        let plain = scenario(
            &client,
            &args,
            &ns,
            "put, no Idempotency-Key",
            put(|w, n| format!("u/{w}/{n}"), false),
        )
        .await;
        let keyed = scenario(
            &client,
            &args,
            &ns,
            "put, with Idempotency-Key",
            put(|w, n| format!("k/{w}/{n}"), true),
        )
        .await;
        println!(
            "  keyed/unkeyed: throughput {:.2}, p50 latency {:.2}",
            keyed.per_second() / plain.per_second().max(1e-9),
            percentile(&keyed.latencies_us, 0.5) as f64 / percentile(&plain.latencies_us, 0.5).max(1) as f64
        );
    }
    if wants("keyed-overhead") {
        keyed_overhead(&client, &ns).await;
    }
    if wants("leases") {
        let cycle = op(|c, ns, w, _| async move {
            let base = format!("/v1/ns/{ns}/leases/lease-{w}");
            let Some(l) = call(
                &c,
                Method::POST,
                format!("{base}/acquire"),
                json!({"ttl_ms": 10_000}),
                None,
            )
            .await
            else {
                return false;
            };
            let token = l["token"].clone();
            call(
                &c,
                Method::POST,
                format!("{base}/release"),
                json!({"token": token}),
                None,
            )
            .await
            .is_some_and(|r| r["released"] == json!(true))
        });
        scenario(&client, &args, &ns, "lease acquire+release cycle", cycle).await;
    }
    if wants("feeds") {
        let hot = op(|c, ns, w, n| async move {
            let path = format!("/v1/ns/{ns}/feeds/hot/entries");
            call(
                &c,
                Method::POST,
                path,
                json!({"id": format!("{w}-{n}"), "data": {"n": n}}),
                None,
            )
            .await
            .is_some()
        });
        scenario(&client, &args, &ns, "feed append, one hot feed", hot).await;
        let spread = op(|c, ns, w, n| async move {
            let path = format!("/v1/ns/{ns}/feeds/f{}/entries", (w * 7919 + n) % 1000);
            call(
                &c,
                Method::POST,
                path,
                json!({"id": format!("{w}-{n}"), "data": {"n": n}}),
                None,
            )
            .await
            .is_some()
        });
        scenario(&client, &args, &ns, "feed append, 1000 feeds", spread).await;
    }
    if wants("gates") {
        for w in 0..args.clients {
            let path = format!("/v1/ns/{ns}/gates/gate-{w}");
            call(&client, Method::PUT, path, json!({}), None).await;
        }
        let cycle = op(|c, ns, w, n| async move {
            let base = format!("/v1/ns/{ns}/gates/gate-{w}/tickets");
            let t = format!("t-{w}-{n}");
            let ok = call(&c, Method::POST, base.clone(), json!({"ticket_id": t}), None)
                .await
                .is_some()
                && call(&c, Method::POST, format!("{base}/{t}/commit"), json!({}), None)
                    .await
                    .is_some();
            ok && call(&c, Method::POST, format!("{base}/{t}/finalize"), json!({}), None)
                .await
                .is_some_and(|v| v["state"] == json!("finalized"))
        });
        scenario(&client, &args, &ns, "gate admit+commit+finalize", cycle).await;
    }
    Ok(())
}

/// Sequential writes per kind in `keyed-overhead`.
const OVERHEAD_WRITES: usize = 500;
/// Keyed writes before `keyed-overhead` measures.
const OVERHEAD_WARMUP: usize = 20;

/// (median, p90) of `v`, in microseconds.
fn median_and_p90(mut v: Vec<u64>) -> (u64, u64) {
    v.sort_unstable();
    (percentile(&v, 0.5), percentile(&v, 0.9))
}

/// One PUT of a fresh key: its latency in microseconds, or why it is not a
/// plain creation (201).
async fn timed_put(c: &Client, ns: &str, key: &str, body: &Value, idem: Option<&str>) -> Result<u64, String> {
    let path = format!("/v1/ns/{ns}/records/{}", Client::segment(key));
    let t = Instant::now();
    let answer = c.call(Method::PUT, &path, Some(body), idem).await;
    let us = t.elapsed().as_micros() as u64;
    match answer {
        Ok((201, _)) => Ok(us),
        Ok((status, v)) => Err(format!(
            "a {} PUT answered {status}: {v}",
            if idem.is_some() { "keyed" } else { "unkeyed" }
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Latencies of unkeyed and keyed PUTs of fresh keys, interleaved so drift
/// (caches, WAL growth) weighs on both alike.
async fn overhead_latencies(c: &Client, ns: &str) -> Result<(Vec<u64>, Vec<u64>), String> {
    for i in 0..OVERHEAD_WARMUP {
        let body = json!({"value": i});
        timed_put(c, ns, &format!("ovh/w{i}"), &body, Some(&format!("ovh-w-{i}"))).await?;
    }
    let (mut plain, mut keyed) = (Vec::new(), Vec::new());
    for i in 0..OVERHEAD_WRITES {
        let body = json!({"value": {"i": i}});
        plain.push(timed_put(c, ns, &format!("ovh/u{i}"), &body, None).await?);
        keyed.push(timed_put(c, ns, &format!("ovh/k{i}"), &body, Some(&format!("ovh-{i}"))).await?);
    }
    Ok((plain, keyed))
}

/// `keyed-overhead`: one line with the median and p90 latency of sequential
/// unkeyed and keyed writes and their ratio (measured, never judged).
async fn keyed_overhead(c: &Client, ns: &str) {
    match overhead_latencies(c, ns).await {
        Ok((plain, keyed)) => {
            let (pm, p90) = median_and_p90(plain);
            let (km, k90) = median_and_p90(keyed);
            println!(
                "keyed write overhead         {OVERHEAD_WRITES} sequential PUTs each: unkeyed p50 {pm} us (p90 {p90} us), \
                 keyed p50 {km} us (p90 {k90} us), keyed/unkeyed p50 ratio {:.2}",
                km as f64 / pm.max(1) as f64
            );
        }
        Err(why) => println!("keyed write overhead         not measurable: {why}"),
    }
}
