//! The `lockstep` binary: `serve`, `migrate` and `bench`.

mod bench;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use lockstep_store::{Location, Options, Store};
use std::net::SocketAddr;

/// Default data location of embedded mode.
const DEFAULT_DATABASE: &str = "sqlite:./lockstep-data/lockstep.db";

#[derive(Parser)]
#[command(
    name = "lockstep",
    version,
    about = "A coordination service: versioned records, transactions and more over HTTP/JSON."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:7707")]
        listen: SocketAddr,
        /// `sqlite:PATH` (embedded) or `postgres://…` (shared).
        #[arg(long, env = "LOCKSTEP_DATABASE", default_value = DEFAULT_DATABASE)]
        database: String,
        /// PostgreSQL connection pool size.
        #[arg(long, default_value_t = 16)]
        pool_size: usize,
        /// Change-log retention: keep at most this many changes (whole revisions;
        /// default 1,000,000); older ones are compacted away.
        #[arg(long)]
        changes_keep_count: Option<u64>,
    },
    /// Apply pending schema migrations and exit.
    Migrate {
        /// `sqlite:PATH` or `postgres://…`.
        #[arg(long, env = "LOCKSTEP_DATABASE", default_value = DEFAULT_DATABASE)]
        database: String,
    },
    /// Copy every namespace and primitive from one database to another, then
    /// verify both hold the same state (stop the writers of the source first).
    Copy {
        /// Source: `sqlite:PATH` or `postgres://…`.
        #[arg(long)]
        from: String,
        /// Target: `sqlite:PATH` or `postgres://…`.
        #[arg(long)]
        to: String,
        /// Replace the content of a non-empty target (also: restart an interrupted copy).
        #[arg(long)]
        force: bool,
    },
    /// Measure write throughput and latency against a running server.
    Bench(bench::Args),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn serve(
    listen: SocketAddr,
    database: &str,
    pool_size: usize,
    changes_keep_count: Option<u64>,
) -> anyhow::Result<()> {
    // Tokens (SPEC §11) are not implemented yet, so the server runs in open mode,
    // which is only safe on loopback.
    if !listen.ip().is_loopback() {
        bail!("refusing to listen on {listen}: without tokens configured lockstep serves only on loopback");
    }
    let location = Location::parse(database)?;
    let mut opts = Options {
        pool_size,
        ..Options::default()
    };
    if let Some(n) = changes_keep_count {
        opts.limits.changes_keep_count = n;
    }
    let store = Store::open(&location, opts.clone())
        .await
        .with_context(|| format!("opening {database}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let data = match &location {
        Location::Sqlite(p) => p.display().to_string(),
        Location::Postgres(url) => redact(url),
    };
    tracing::warn!("no tokens configured: open mode, every caller is admin (loopback only)");
    tracing::info!(
        "lockstep listening on http://{addr} backend={} data={data}",
        store.backend()
    );
    let state = lockstep_server::AppState::new(store, opts.limits);
    lockstep_server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve {
            listen,
            database,
            pool_size,
            changes_keep_count,
        } => {
            init_logging();
            serve(listen, &database, pool_size, changes_keep_count).await
        }
        Cmd::Migrate { database } => {
            init_logging();
            match Location::parse(&database)? {
                Location::Postgres(url) => {
                    let n = lockstep_store::postgres::migrate(&url).await?;
                    println!("applied {n} migration(s)");
                }
                loc @ Location::Sqlite(_) => {
                    Store::open(&loc, Options::default()).await?;
                    println!("SQLite schema is up to date");
                }
            }
            Ok(())
        }
        Cmd::Copy { from, to, force } => {
            init_logging();
            let report =
                lockstep_store::copy::copy(&Location::parse(&from)?, &Location::parse(&to)?, force).await?;
            print!("{report}");
            Ok(())
        }
        Cmd::Bench(args) => bench::run(args).await,
    }
}
