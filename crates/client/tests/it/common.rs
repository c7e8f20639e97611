//! One server per case and backend, and a client of it.

use lockstep_client::{Client, Ns};
use lockstep_testkit::server::InProcess;
use lockstep_testkit::Backend;
use std::future::Future;
use std::time::Duration;

/// What a case gets.
pub struct Ctx {
    /// The server.
    pub server: InProcess,
    /// A client of it.
    pub client: Client,
    /// Namespace `app` of it.
    pub app: Ns,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<lockstep_testkit::pg::Schema>,
}

/// Runs `case` against a fresh server of `backend` (skipped, with a note,
/// when PostgreSQL is not configured and not required).
pub async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let (database, dir, schema) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let db = format!("sqlite:{}", dir.path().join("lockstep.db").display());
            (db, Some(dir), None)
        }
        Backend::Postgres => {
            let Some(schema) = lockstep_testkit::pg::Schema::fresh().await else {
                eprintln!("PostgreSQL not configured: skipped");
                return;
            };
            (schema.url.clone(), None, Some(schema))
        }
    };
    let server = tokio::task::block_in_place(|| InProcess::start(&database));
    let client = Client::builder(server.url.as_str())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let app = client.ns("app");
    let ctx = Ctx {
        server,
        client,
        app,
        _dir: dir,
        _schema: schema,
    };
    tokio::time::timeout(Duration::from_secs(120), case(ctx))
        .await
        .expect("the case did not finish in 120 s");
}

/// Waits until `cond` holds (checked every 10 ms), at most 20 s.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
