//! lockstep-server: the HTTP/JSON API. Only this crate knows HTTP: it maps
//! requests to core commands, runs them on the store, and maps answers and
//! refusals to JSON and problem+json (SPEC §3).

pub mod api;
pub mod auth;
pub mod capabilities;
pub mod cors;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod quota;
pub mod routes;
pub mod tls;
pub mod wire;

pub use error::ApiError;

use axum::extract::DefaultBodyLimit;
use lockstep_core::Limits;
use lockstep_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What every handler shares: one pointer, so the middleware layers and
/// handlers that take it per request clone an `Arc`, not every field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    /// The storage backend.
    pub store: Store,
    /// Limits in force.
    pub limits: Arc<Limits>,
    /// Request counters.
    pub http: Arc<metrics::HttpMetrics>,
    /// Woken when a lease on this instance is released or broken, so local
    /// waiters retry at once instead of at their next poll.
    pub lease_freed: Arc<tokio::sync::Notify>,
    /// The open change watches (ended at shutdown).
    pub watches: Arc<routes::changes::Watches>,
    /// The keys capabilities are signed and verified with.
    pub capability_keys: Arc<capabilities::CapabilityKeys>,
    /// What each token uses now (rate, waiting acquires, open watches).
    pub quotas: Arc<quota::Quotas>,
    /// The CORS layer of the configured origins, if any.
    pub cors: Option<tower_http::cors::CorsLayer>,
    /// The tokens in force (replaced on SIGHUP).
    pub auth: Arc<auth::Auth>,
}

impl AppState {
    /// State over `store` with `limits`.
    pub fn new(store: Store, limits: Limits) -> Self {
        AppState(Arc::new(Shared {
            store,
            limits: Arc::new(limits),
            http: Arc::default(),
            lease_freed: Arc::default(),
            watches: Arc::default(),
            capability_keys: Arc::default(),
            cors: None,
            quotas: Arc::default(),
            auth: Arc::new(auth::Auth::open()),
        }))
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// The same state with `auth` deciding who may call (default: open mode).
    pub fn with_auth(mut self, auth: Arc<auth::Auth>) -> Self {
        self.shared_mut().auth = auth;
        self
    }

    /// The same state with CORS for `origins` (none: no CORS headers at all).
    pub fn with_cors(mut self, origins: &[String]) -> Result<Self, String> {
        self.shared_mut().cors = cors::layer(origins)?;
        Ok(self)
    }

    /// The same state with the capability keys of the config.
    pub fn with_capability_keys(mut self, keys: capabilities::CapabilityKeys) -> Self {
        self.shared_mut().capability_keys = Arc::new(keys);
        self
    }
}

/// The complete application: routes, problem+json fallbacks, metrics.
pub fn app(state: AppState) -> axum::Router {
    let cors = state.cors.clone();
    let app = api::router()
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::fingerprint,
        ))
        // Outside the idempotency layer: a refused caller never touches a key.
        // It also counts the caller's request rate.
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::check))
        // Counts, times and logs; bounds the time to answer; wakes the watches
        // after a write.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        // Bodies are read by our extractors, which answer 413 as problem+json.
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    // Outermost: a preflight is answered before any other layer sees it.
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// How often the background sweeper purges expired records.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
const SWEEP_BATCH: usize = 500;

async fn sweep_forever(store: Store, limits: Arc<Limits>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweeps: u64 = 0;
    loop {
        tick.tick().await;
        match store.sweep_expired(SWEEP_BATCH).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "purged expired records"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired records failed"),
        }
        if sweeps == 0 {
            routes::changes::compact(&store, &limits).await;
            sweeps = routes::changes::COMPACT_EVERY_SWEEPS;
        }
        sweeps -= 1;
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes the
/// requests in flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run(listener, state, shutdown).await
}

/// Like [`serve`], over TLS: HTTPS with HTTP/1.1 or HTTP/2 chosen by ALPN,
/// with the certificate `tls` holds now (it may be reloaded while serving).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<tls::Tls>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run(tls::TlsListener::new(listener, tls)?, state, shutdown).await
}

async fn run<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let sweeper = tokio::spawn(sweep_forever(state.store.clone(), state.limits.clone()));
    // Open watches never end by themselves: end them when shutdown starts.
    let watches = state.watches.clone();
    let shutdown = async move {
        shutdown.await;
        watches.close();
    };
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    result
}
