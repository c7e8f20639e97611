//! The `lockstep` binary: `serve`, `migrate`, `copy`, `bench`, `check`, `token new`,
//! and the operator commands on a running server (`ops.rs`).

mod bench;
mod check;
mod config;
mod ops;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use config::{File, DEFAULT_DATABASE, DEFAULT_LISTEN, DEFAULT_POOL_SIZE};
use lockstep_core::Limits;
use lockstep_server::auth::{self, Auth, TokenSet};
use lockstep_server::tls::Tls;
use lockstep_store::{Location, Options, Store};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "lockstep",
    version,
    about = "A coordination service: versioned records, transactions and more over HTTP/JSON."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Log lines as `text` (default) or `json` (one object per line). One
    /// line per request: method, route template, status, latency, token name,
    /// request id; never secrets, keys or values.
    #[arg(long, global = true, env = "LOCKSTEP_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The flags of `serve`. Each one overrides the config file; unset, the file's
/// value or the default applies.
#[derive(clap::Args)]
struct ServeArgs {
    /// Config file (TOML): tokens, TLS, limits and every setting below
    /// (docs/configuration.md). Reloaded on SIGHUP.
    #[arg(long, env = "LOCKSTEP_CONFIG")]
    config: Option<PathBuf>,
    /// HOST:PORT to listen on, e.g. 127.0.0.1:7707, localhost:7707, [::1]:7707
    /// (port 0 picks a free port) [default: 127.0.0.1:7707].
    #[arg(long, env = "LOCKSTEP_LISTEN")]
    listen: Option<String>,
    /// `sqlite:PATH` (embedded) or `postgres://…` (shared)
    /// [default: sqlite:./lockstep-data/lockstep.db].
    #[arg(long, env = "LOCKSTEP_DATABASE")]
    database: Option<String>,
    /// PostgreSQL connection pool size, 1..=1024 [default: 16].
    #[arg(long, env = "LOCKSTEP_POOL_SIZE")]
    pool_size: Option<usize>,
    /// Change-log retention: keep at most this many changes (whole revisions;
    /// default 1,000,000); older ones are compacted away.
    #[arg(long, env = "LOCKSTEP_CHANGES_KEEP_COUNT")]
    changes_keep_count: Option<u64>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "LOCKSTEP_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LOCKSTEP_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve(ServeArgs),
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
    /// Drive a deployment with concurrent clients across every primitive and
    /// verify the invariants on the recorded history (exit 2 on a violation).
    Check(check::Args),
    /// Make API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    #[command(flatten)]
    Op(ops::Op),
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Print a new secret on the first line, then the `[[tokens]]` table
    /// (holding only its SHA-256) to paste into the config file.
    New {
        /// The token's name, recorded as `actor` in the change log.
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, value_parser = ["admin", "writer", "reader"])]
        role: String,
        /// A glob of the namespaces it may use (`*`, `?`); repeatable.
        #[arg(long = "ns", required = true)]
        ns: Vec<String>,
    },
}

/// The settings of `serve`: flags and environment over the file over defaults.
struct Settings {
    config: Option<PathBuf>,
    listen: String,
    database: String,
    pool_size: usize,
    limits: Limits,
    tls: Option<(PathBuf, PathBuf)>,
    tokens: TokenSet,
    /// `cors.allowed_origins`: the origins browsers may call from (`*`: any).
    cors_allowed_origins: Vec<String>,
    /// `capabilities.keys`: the capability signing keys (the first signs; secret).
    capability_keys: Vec<String>,
}

impl Settings {
    fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => File::load(path)?,
            None => File::default(),
        };
        let mut limits = file.limits(Limits::default())?;
        if let Some(n) = args.changes_keep_count {
            limits.changes_keep_count = n;
            config::check_limits(&limits).context("--changes-keep-count")?;
        }
        let pool_size = args.pool_size.or(file.pool_size).unwrap_or(DEFAULT_POOL_SIZE);
        let pool_size = config::check_pool_size(pool_size)?;
        let tls_file = file.tls.clone();
        let cert = args
            .tls_cert
            .or_else(|| tls_file.as_ref().map(|t| t.cert.clone()));
        let key = args.tls_key.or_else(|| tls_file.as_ref().map(|t| t.key.clone()));
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => bail!("--tls-cert needs --tls-key (or tls.key in the config file)"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert (or tls.cert in the config file)"),
        };
        Ok(Settings {
            tokens: file.tokens()?,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.into()),
            database: args
                .database
                .or(file.database)
                .unwrap_or_else(|| DEFAULT_DATABASE.into()),
            cors_allowed_origins: file.cors.allowed_origins.clone(),
            capability_keys: file.capabilities.keys.clone(),
            config: args.config,
            pool_size,
            limits,
            tls,
        })
    }
}

fn init_logging(format: LogFormat) {
    // tokio-postgres logs the server's NOTICEs at INFO; they are noise here.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres::connection=warn"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => fmt.init(),
        LogFormat::Json => fmt.json().init(),
    }
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

/// How to make a token, for the messages that need one.
const MAKE_A_TOKEN: &str = "make one with `lockstep token new --name app --role writer --ns '*'`, \
     paste the printed [[tokens]] table into a config file and start with --config FILE";

/// Every address `listen` (HOST:PORT, the host a name or an IP) stands for.
async fn resolve_listen(listen: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let usage = || {
        format!("--listen {listen:?}: expected HOST:PORT, e.g. 127.0.0.1:7707, localhost:7707 or [::1]:7707")
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(usage)?
        .collect();
    if addrs.is_empty() {
        bail!("{}: the host name resolves to no address", usage());
    }
    Ok(addrs)
}

/// Binds the first of `addrs` that can be bound.
async fn bind(addrs: &[SocketAddr], listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let mut last = None;
    for a in addrs {
        match tokio::net::TcpListener::bind(a).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e).with_context(|| format!("binding {listen}")),
        None => bail!("binding {listen}: no address"),
    }
}

async fn serve(s: Settings) -> anyhow::Result<()> {
    let addrs = resolve_listen(&s.listen).await?;
    let loopback = addrs.iter().all(|a| a.ip().is_loopback());
    if s.tokens.is_empty() && !loopback {
        bail!(
            "refusing to listen on {} without tokens: open mode (every caller is admin) is for loopback only; {MAKE_A_TOKEN}",
            s.listen
        );
    }
    let tls = match &s.tls {
        Some((cert, key)) => Some(Arc::new(Tls::load(cert, key).map_err(anyhow::Error::msg)?)),
        None => None,
    };
    let location = Location::parse(&s.database)?;
    let opts = Options {
        pool_size: s.pool_size,
        limits: s.limits.clone(),
        ..Options::default()
    };
    let store = Store::open(&location, opts.clone())
        .await
        .with_context(|| format!("opening {}", redact(&s.database)))?;
    let listener = bind(&addrs, &s.listen).await?;
    let addr = listener.local_addr()?;
    let data = match &location {
        Location::Sqlite(p) => p.display().to_string(),
        Location::Postgres(url) => redact(url),
    };
    if s.tokens.is_empty() {
        tracing::warn!(
            "no tokens configured: open mode, every caller is admin (loopback only); {MAKE_A_TOKEN}"
        );
    } else {
        tracing::info!(tokens = s.tokens.len(), "tokens loaded");
    }
    if tls.is_none() && !loopback {
        tracing::warn!(
            "serving plain HTTP on a network address: terminate TLS in front (a reverse proxy) or give --tls-cert and --tls-key"
        );
    }
    let capability_keys =
        lockstep_server::capabilities::CapabilityKeys::new(&s.capability_keys).map_err(anyhow::Error::msg)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let auth = Arc::new(Auth::new(s.tokens, loopback));
    reload_on_hangup(s.config.clone(), auth.clone(), tls.clone());
    tracing::info!(
        "lockstep listening on {scheme}://{addr} backend={} data={data}",
        store.backend()
    );
    let state = lockstep_server::AppState::new(store, opts.limits)
        .with_auth(auth)
        .with_capability_keys(capability_keys)
        .with_cors(&s.cors_allowed_origins)
        .map_err(anyhow::Error::msg)?;
    match tls {
        Some(tls) => lockstep_server::serve_tls(listener, tls, state, shutdown_signal()).await?,
        None => lockstep_server::serve(listener, state, shutdown_signal()).await?,
    }
    tracing::info!("stopped");
    Ok(())
}

/// On SIGHUP: reads the tokens from the config file again and the TLS
/// certificate from its files. Whatever does not load keeps the old one in force.
fn reload_on_hangup(config: Option<PathBuf>, auth: Arc<Auth>, tls: Option<Arc<Tls>>) {
    // The handler is installed here, before the server says it listens: a
    // SIGHUP that came before it would end the process (the default action).
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    reload(config.as_deref(), &auth, tls.as_deref());
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP: reloading is off"),
    }
    #[cfg(not(unix))]
    let _ = (config, auth, tls);
}

fn reload(config: Option<&std::path::Path>, auth: &Auth, tls: Option<&Tls>) {
    match config {
        Some(path) => match File::load(path).and_then(|f| f.tokens()) {
            Ok(set) => {
                let n = set.len();
                match auth.replace(set) {
                    Ok(()) => tracing::info!(tokens = n, "SIGHUP: tokens reloaded from {}", path.display()),
                    Err(e) => tracing::warn!("SIGHUP: {e}"),
                }
            }
            Err(e) => tracing::warn!("SIGHUP: the tokens in force stay: {e:#}"),
        },
        None => tracing::info!("SIGHUP: no --config file, no tokens to reload"),
    }
    if let Some(tls) = tls {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Err(e) => tracing::warn!("SIGHUP: the TLS certificate in force stays: {e}"),
        }
    }
}

/// `lockstep token new`: the secret alone on the first line, then the table.
fn token_new(name: &str, role: &str, ns: &[String]) -> anyhow::Result<()> {
    auth::validate_token_name(name).map_err(anyhow::Error::msg)?;
    for g in ns {
        auth::validate_glob(g).map_err(anyhow::Error::msg)?;
    }
    let secret = auth::new_secret().map_err(anyhow::Error::msg)?;
    let globs: Vec<String> = ns.iter().map(|g| format!("{g:?}")).collect();
    println!("{secret}");
    println!();
    println!("[[tokens]]");
    println!("name = {name:?}");
    println!("role = {role:?}");
    println!("namespaces = [{}]", globs.join(", "));
    println!("secret_sha256 = {:?}", auth::secret_sha256_hex(&secret));
    eprintln!("The first line is the secret: give it to the client and keep it nowhere else; it is not shown again.");
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

/// mimalloc instead of the system allocator: a request allocates and frees
/// many small buffers across threads, where glibc's malloc spent about a tenth
/// of the server's time (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest is built with `rustls-no-provider` (lockstep-client picks ring):
    // every HTTP client of this process (check, bench, the operator commands)
    // needs the process-wide provider before it is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        // `lockstep check` keeps exit code 2 for a violation: its usage errors exit 1.
        if e.use_stderr() && std::env::args().skip(1).any(|a| a == "check") {
            let _ = e.print();
            std::process::exit(1);
        }
        e.exit()
    });
    match cli.command {
        Cmd::Op(op) => {
            if let Err(failure) = ops::run(op).await {
                eprintln!("lockstep: {}", failure.message());
                std::process::exit(failure.code());
            }
            Ok(())
        }
        Cmd::Serve(args) => {
            let settings = Settings::resolve(args)?;
            init_logging(cli.log_format);
            serve(settings).await
        }
        Cmd::Migrate { database } => {
            init_logging(cli.log_format);
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
            init_logging(cli.log_format);
            let report =
                lockstep_store::copy::copy(&Location::parse(&from)?, &Location::parse(&to)?, force).await?;
            print!("{report}");
            Ok(())
        }
        Cmd::Bench(args) => bench::run(args).await,
        Cmd::Check(args) => match check::run(args).await? {
            0 => Ok(()),
            code => std::process::exit(code),
        },
        Cmd::Token(TokenCmd::New { name, role, ns }) => token_new(&name, &role, &ns),
    }
}
