//! Harness of the storage conformance suite: opens a fresh store of either
//! backend for one test case, runs the case, and cleans up afterwards.
//!
//! - SQLite: a new database file in a temporary directory.
//! - PostgreSQL: a new schema `t_<random hex>` in the database named by
//!   `LOCKSTEP_TEST_DATABASE_URL`, selected through the connection's
//!   `search_path`; dropped at the end of the test (best effort). Without the
//!   variable the case is skipped, unless `CI` is set, in which case it fails.

#![allow(dead_code)]

use lockstep_core::record::{PatchDoc, PutRecord};
use lockstep_core::txn::{OpResult, Txn, TxnResult};
use lockstep_core::{Command, Millis, Outcome, Precondition, Record};
use lockstep_store::clock::Clock;
use lockstep_store::{Committed, Error, Location, Options, Store};
use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The namespace most cases use (each case has a database of its own).
pub const NS: &str = "conf";

/// The actor recorded in the change log.
pub const ACTOR: &str = "tester";

/// The environment variable naming the PostgreSQL test database.
pub const PG_URL_VAR: &str = "LOCKSTEP_TEST_DATABASE_URL";

/// How long one case may run before it is reported as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(240);

/// Pool size of every PostgreSQL store opened by the suite: small, so several
/// tests (and several instances per test) fit in `max_connections`.
const PG_POOL_SIZE: usize = 8;

/// Which database a test case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded mode.
    Sqlite,
    /// Shared mode.
    Postgres,
}

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
        let Env { store, db, clock } = self;
        store.close().await.expect("closing the store");
        let location = match &db {
            Db::Sqlite { path, .. } => Location::Sqlite(path.clone()),
            Db::Postgres { url } => Location::Postgres(url.clone()),
        };
        Env {
            store: open(&location, clock.clone()).await,
            clock,
            db,
        }
    }
}

fn options(clock: Clock) -> Options {
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
    let store = Store::open(
        &Location::Sqlite(path.clone()),
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )
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
    let base = match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{PG_URL_VAR} is not set but CI is: the PostgreSQL conformance cases must run in CI \
                     (e.g. {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
                );
            }
            println!("PostgreSQL case skipped: {PG_URL_VAR} is not set");
            return;
        }
    };
    let schema = format!("t_{}", random_hex());
    admin(&base, &format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create the test schema {schema}: {e}"));
    let url = with_search_path(&base, &schema);
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
    // Best effort: a leftover schema only costs space.
    if let Err(e) = admin(&base, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await {
        eprintln!("could not drop the test schema {schema}: {e}");
    }
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

/// Runs one statement over a dedicated connection.
async fn admin(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(conn);
    let result = client.batch_execute(sql).await;
    drop(client);
    let _ = driver.await;
    result
}

/// The URL with `search_path` set to `schema` through the `options` parameter.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// 16 hex digits, unique per call (process-random hasher keys, the time, a
/// counter and the process id).
pub fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_i64(lockstep_store::clock::system_now().0);
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

// ---------------------------------------------------------------------------
// Command builders and answer accessors.

/// An unconditional PUT.
pub fn put(key: &str, value: Value) -> Command {
    put_with(key, value, Precondition::None, None, false)
}

/// A PUT with every option.
pub fn put_with(
    key: &str,
    value: Value,
    precondition: Precondition,
    ttl_ms: Option<u64>,
    force: bool,
) -> Command {
    Command::Put {
        key: key.to_owned(),
        req: PutRecord {
            value,
            precondition,
            ttl_ms,
            force,
        },
    }
}

/// A PUT with a precondition.
pub fn put_if(key: &str, value: Value, precondition: Precondition) -> Command {
    put_with(key, value, precondition, None, false)
}

/// A merge PATCH.
pub fn merge(key: &str, doc: Value, precondition: Precondition) -> Command {
    Command::Patch {
        key: key.to_owned(),
        doc: PatchDoc::Merge(doc),
        precondition,
    }
}

/// A JSON Patch PATCH.
pub fn json_patch(key: &str, ops: Value, precondition: Precondition) -> Command {
    let patch: json_patch::Patch =
        serde_json::from_value(ops).unwrap_or_else(|e| panic!("bad JSON patch in the test: {e}"));
    Command::Patch {
        key: key.to_owned(),
        doc: PatchDoc::Json(patch),
        precondition,
    }
}

/// A DELETE.
pub fn delete(key: &str, precondition: Precondition) -> Command {
    Command::Delete {
        key: key.to_owned(),
        precondition,
    }
}

/// A transaction parsed from its JSON body, as the server would parse it.
pub fn txn(body: Value) -> Command {
    let t: Txn = serde_json::from_value(body).unwrap_or_else(|e| panic!("bad transaction in the test: {e}"));
    Command::Txn(t)
}

/// Executes a command that must succeed.
#[track_caller]
pub fn ok(r: Result<Committed, Error>) -> Committed {
    match r {
        Ok(c) => c,
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

/// Executes `cmd` in [`NS`]; it must succeed.
pub async fn exec(store: &Store, cmd: Command) -> Committed {
    let shown = format!("{cmd:?}");
    store
        .execute(NS, cmd, ACTOR)
        .await
        .unwrap_or_else(|e| panic!("{shown} failed: {e:?}"))
}

/// Executes `cmd` in [`NS`]; it must be refused by the semantics.
pub async fn refused(store: &Store, cmd: Command) -> lockstep_core::Error {
    let shown = format!("{cmd:?}");
    match store.execute(NS, cmd, ACTOR).await {
        Err(Error::Core(e)) => e,
        Ok(c) => panic!("{shown}: expected a refusal, got {c:?}"),
        Err(e) => panic!("{shown}: expected a semantic refusal, got the storage error {e:?}"),
    }
}

/// The record and `created` of a PUT answer; checks version == revision.
#[track_caller]
pub fn put_outcome(c: &Committed) -> (Record, bool) {
    match &c.outcome {
        Outcome::Put { record, created } => {
            assert_eq!(
                record.version, c.revision,
                "a written record's version is the revision of the write"
            );
            (record.clone(), *created)
        }
        other => panic!("expected a PUT outcome, got {other:?}"),
    }
}

/// The record of a PATCH answer; checks version == revision.
#[track_caller]
pub fn patch_outcome(c: &Committed) -> Record {
    match &c.outcome {
        Outcome::Patch { record } => {
            assert_eq!(
                record.version, c.revision,
                "a written record's version is the revision of the write"
            );
            record.clone()
        }
        other => panic!("expected a PATCH outcome, got {other:?}"),
    }
}

/// The result of a transaction answer.
#[track_caller]
pub fn txn_outcome(c: &Committed) -> TxnResult {
    match &c.outcome {
        Outcome::Txn(r) => r.clone(),
        other => panic!("expected a transaction outcome, got {other:?}"),
    }
}

/// The record of a `put`/`patch`/`incr` result.
#[track_caller]
pub fn written(r: &OpResult) -> Record {
    match r {
        OpResult::Written(rec) => rec.clone(),
        other => panic!("expected a written record, got {other:?}"),
    }
}

/// Reads a live record of [`NS`].
pub async fn get(store: &Store, key: &str) -> Option<Record> {
    store
        .get(NS, key)
        .await
        .unwrap_or_else(|e| panic!("get {key:?} failed: {e:?}"))
}

/// Reads a live record of [`NS`] that must exist.
pub async fn get_some(store: &Store, key: &str) -> Record {
    get(store, key)
        .await
        .unwrap_or_else(|| panic!("record {key:?} should exist"))
}

/// Lists [`NS`].
pub async fn list(store: &Store, prefix: &str, after: Option<&str>, limit: usize) -> Vec<Record> {
    store
        .list(NS, prefix, after, limit)
        .await
        .unwrap_or_else(|e| panic!("list {prefix:?} after {after:?} failed: {e:?}"))
}

/// The keys of a listing.
pub fn keys(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.key.clone()).collect()
}
