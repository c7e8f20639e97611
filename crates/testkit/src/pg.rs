//! The PostgreSQL test database: a schema of its own per test in the database
//! named by [`URL_VAR`], selected through the connection's `search_path`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the PostgreSQL test database.
pub const URL_VAR: &str = "LOCKSTEP_TEST_DATABASE_URL";

/// The environment variable that makes PostgreSQL mandatory outside CI.
pub const REQUIRE_VAR: &str = "LOCKSTEP_REQUIRE_PG";

/// Whether a missing PostgreSQL fails the test instead of skipping it: `CI`
/// is set (to anything but empty, `0` or `false`) or `LOCKSTEP_REQUIRE_PG=1`.
pub fn required() -> bool {
    let on = |var: &str| {
        std::env::var(var).is_ok_and(|v| {
            let v = v.trim();
            !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
        })
    };
    on("CI") || on(REQUIRE_VAR)
}

/// The test database URL. `None` (with a printed notice) when it is not set
/// and PostgreSQL is not [`required`]; a panic when it is required.
pub fn base_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            if required() {
                panic!(
                    "{URL_VAR} is not set but PostgreSQL is required (CI or {REQUIRE_VAR}=1): the \
                     PostgreSQL tests must run (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
                );
            }
            println!("PostgreSQL test skipped: {URL_VAR} is not set");
            None
        }
    }
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

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Runs SQL over a dedicated connection.
pub async fn exec(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(conn);
    let result = client.batch_execute(sql).await;
    drop(client);
    let _ = driver.await;
    result
}

/// A schema of its own in the PostgreSQL test database, dropped on drop (best
/// effort: a leftover schema only costs space).
#[derive(Debug)]
pub struct Schema {
    /// The database URL with `search_path` set to the schema.
    pub url: String,
    /// The schema's name.
    pub name: String,
    base: String,
}

impl Schema {
    /// A fresh schema, or `None` when PostgreSQL is not configured and not
    /// required (see [`base_url`]).
    pub async fn fresh() -> Option<Schema> {
        let base = base_url()?;
        let name = format!("t_{}", random_hex());
        exec(&base, &format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create the schema {name} in {}: {e}", redact(&base)));
        Some(Schema {
            url: with_search_path(&base, &name),
            name,
            base,
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // On a thread with its own runtime: Drop may run inside or outside one.
        let base = self.base.clone();
        let sql = format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.name
        );
        let name = self.name.clone();
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                if let Err(e) = rt.block_on(exec(&base, &sql)) {
                    eprintln!("could not drop the test schema {name}: {e}");
                }
            }
        });
        let _ = worker.join();
    }
}
