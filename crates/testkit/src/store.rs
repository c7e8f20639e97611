//! A fresh store of either backend for one test case:
//!
//! - SQLite: a new database file in a temporary directory.
//! - PostgreSQL: a new [`Schema`](crate::pg::Schema), dropped at the end of
//!   the case; without a test database the case is skipped, or fails when
//!   PostgreSQL is [required](crate::pg::required).
//!
//! The case runs on a task of its own, so a panic is caught and the cleanup
//! still happens, and within [`CASE_TIMEOUT`], so a deadlock fails.

use crate::pg::Schema;
use crate::Backend;
use lockstep_core::Millis;
use lockstep_store::clock::Clock;
use lockstep_store::{Location, Options, Store};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long one case may run before it is reported as hung.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(240);

/// Pool size of every PostgreSQL store opened here: small, so several tests
/// (and several instances per test) fit in `max_connections`.
pub const PG_POOL_SIZE: usize = 8;

#[derive(Clone)]
enum Db {
    Sqlite {
        path: PathBuf,
        _dir: Arc<tempfile::TempDir>,
    },
    Postgres {
        url: String,
    },
}

/// What a case gets: the store and the means to open more handles on the same
/// database.
#[derive(Clone)]
pub struct Env {
    /// The store under test.
    pub store: Store,
    /// Its clock: the system clock, or the manual one of [`run_manual`].
    pub clock: Clock,
    db: Db,
}

impl Env {
    /// The backend under test.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Whether the backend is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.backend() == Backend::Sqlite
    }

    /// Where the database is (to read its rows directly or open it again).
    pub fn location(&self) -> Location {
        match &self.db {
            Db::Sqlite { path, .. } => Location::Sqlite(path.clone()),
            Db::Postgres { url } => Location::Postgres(url.clone()),
        }
    }

    /// `n` handles on the database as `n` server processes would hold them:
    /// separate `Store` instances (each with its own pool) on PostgreSQL, clones
    /// of the one store on SQLite (embedded mode has a single process by design).
    pub async fn instances(&self, n: usize) -> Vec<Store> {
        let mut out = vec![self.store.clone()];
        while out.len() < n {
            out.push(match &self.db {
                Db::Sqlite { .. } => self.store.clone(),
                Db::Postgres { url } => open(&Location::Postgres(url.clone()), self.clock.clone()).await,
            });
        }
        out
    }

    /// Drops this handle (on SQLite: the last one, so the writer stops) and
    /// opens the same database again, as a restarted process would.
    pub async fn reopen(self) -> Env {
        let location = self.location();
        let Env { store, db, clock } = self;
        store.close().await.expect("closing the store");
        Env {
            store: open(&location, clock.clone()).await,
            clock,
            db,
        }
    }
}

/// The options every store opened here uses.
pub fn options(clock: Clock) -> Options {
    Options {
        pool_size: PG_POOL_SIZE,
        clock,
        ..Options::default()
    }
}

async fn open(location: &Location, clock: Clock) -> Store {
    Store::open(location, options(clock))
        .await
        .unwrap_or_else(|e| panic!("cannot open the store at {location:?}: {e}"))
}

/// Runs `case` on a fresh database of `backend`.
pub async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match backend {
        Backend::Sqlite => run_sqlite(case, Clock::System).await,
        Backend::Postgres => run_postgres(case, Clock::System).await,
    }
}

/// The time a manual clock of [`run_manual`] starts at.
pub const MANUAL_START: Millis = Millis(1_700_000_000_000);

/// Runs `case` on a fresh database of `backend` whose store has a manual
/// clock (at [`MANUAL_START`]), moved by the case through `env.clock`.
pub async fn run_manual<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let clock = Clock::manual(MANUAL_START);
    match backend {
        Backend::Sqlite => run_sqlite(case, clock).await,
        Backend::Postgres => run_postgres(case, clock).await,
    }
}

async fn run_sqlite<F, Fut>(case: F, clock: Clock)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = Arc::new(tempfile::tempdir().expect("cannot create a temporary directory"));
    let path = dir.path().join("lockstep.db");
    let store = Store::open(&Location::Sqlite(path.clone()), options(clock.clone()))
        .await
        .unwrap_or_else(|e| panic!("cannot open SQLite at {}: {e}", path.display()));
    assert_eq!(store.backend(), "sqlite");
    let env = Env {
        store,
        clock,
        db: Db::Sqlite {
            path,
            _dir: dir.clone(),
        },
    };
    let outcome = supervise(case(env)).await;
    drop(dir);
    finish(outcome);
}

async fn run_postgres<F, Fut>(case: F, clock: Clock)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = Schema::fresh().await else {
        return;
    };
    let url = schema.url.clone();
    let outcome = match Store::open(&Location::Postgres(url.clone()), options(clock.clone())).await {
        Ok(store) => {
            assert_eq!(store.backend(), "postgres");
            supervise(case(Env {
                store,
                clock,
                db: Db::Postgres { url },
            }))
            .await
        }
        Err(e) => Err(CaseFailure::Open(e.to_string())),
    };
    drop(schema);
    finish(outcome);
}

enum CaseFailure {
    Open(String),
    Panic(Box<dyn std::any::Any + Send>),
    Cancelled(String),
    Timeout,
}

/// Runs the case on its own task, so a panic is caught and the cleanup still
/// happens, and bounds its duration so a deadlock fails instead of hanging.
async fn supervise<Fut>(fut: Fut) -> Result<(), CaseFailure>
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let handle = tokio::spawn(fut);
    let abort = handle.abort_handle();
    match tokio::time::timeout(CASE_TIMEOUT, handle).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.is_panic() => Err(CaseFailure::Panic(e.into_panic())),
        Ok(Err(e)) => Err(CaseFailure::Cancelled(e.to_string())),
        Err(_) => {
            abort.abort();
            Err(CaseFailure::Timeout)
        }
    }
}

fn finish(outcome: Result<(), CaseFailure>) {
    match outcome {
        Ok(()) => {}
        Err(CaseFailure::Panic(p)) => std::panic::resume_unwind(p),
        Err(CaseFailure::Open(e)) => panic!("cannot open the PostgreSQL store: {e}"),
        Err(CaseFailure::Cancelled(e)) => panic!("the case was cancelled: {e}"),
        Err(CaseFailure::Timeout) => panic!("the case did not finish within {CASE_TIMEOUT:?}"),
    }
}
