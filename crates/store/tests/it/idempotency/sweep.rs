//! The sweeper: reads the raw rows of the case database.

#![allow(clippy::unwrap_used)]

use super::*;

/// Counts the stored idempotency rows of a database.
pub(super) enum Raw {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Raw {
    async fn rows(&self) -> i64 {
        match self {
            Raw::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.query_row("SELECT count(*) FROM idempotency WHERE ns = ?1", [NS], |r| {
                    r.get(0)
                })
                .unwrap()
            }
            Raw::Postgres(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                let driver = tokio::spawn(conn);
                let n: i64 = client
                    .query_one("SELECT count(*) FROM idempotency WHERE ns = $1", &[&NS])
                    .await
                    .unwrap()
                    .get(0);
                drop(client);
                let _ = driver.await;
                n
            }
        }
    }
}

/// The sweeper deletes entries whose TTL ran out (started or completed) and
/// keeps the others.
pub(super) async fn sweep_case(store: Store, clock: Clock, raw: Raw) {
    let s = &store;
    let t = owned(begin_with(s, "done", "fp", LONG_MS, 1_000).await);
    exec(s, complete_cmd("done", &t, response(200, json!(1)), false)).await;
    owned(begin_with(s, "started", "fp", LONG_MS, 1_000).await);
    let t = owned(begin(s, "kept", "fp").await);
    exec(s, complete_cmd("kept", &t, response(200, json!("kept")), false)).await;
    owned(begin(s, "kept-started", "fp").await);
    assert_eq!(raw.rows().await, 4);
    assert_eq!(store.sweep_expired(500).await.unwrap(), 0, "nothing expired yet");
    clock.advance(1_000);
    assert_eq!(raw.rows().await, 4, "expired rows stay until swept");
    store.sweep_expired(500).await.unwrap();
    assert_eq!(
        raw.rows().await,
        2,
        "the sweeper forgets the expired entries, only them"
    );
    assert_eq!(replayed(begin(s, "kept", "fp").await).body, "\"kept\"");
    in_use(begin(s, "kept-started", "fp").await);
    owned(begin(s, "done", "fp-other").await);
    owned(begin(s, "started", "fp-other").await);
    store.sweep_expired(500).await.unwrap();
    assert_eq!(raw.rows().await, 4, "nothing else expired");
}

/// [`sweep_case`] on the store of `env`, reading its rows directly.
pub(super) async fn sweep_forgets_expired_entries(env: Env) {
    let raw = match env.location() {
        Location::Sqlite(path) => Raw::Sqlite(path),
        Location::Postgres(url) => Raw::Postgres(url),
    };
    sweep_case(env.store, env.clock, raw).await;
}
