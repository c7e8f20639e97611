//! CI runs the five seed examples against a real server, on SQLite and on
//! PostgreSQL: each must exit 0 (its invariants held).

#![allow(clippy::unwrap_used)]

use lockstep_testkit::server::InProcess;
use std::process::Command;

/// The examples, by binary.
const EXAMPLES: [(&str, &str); 5] = [
    ("receive-feed", env!("CARGO_BIN_EXE_receive-feed")),
    ("receive-lifecycle", env!("CARGO_BIN_EXE_receive-lifecycle")),
    ("stream-settle", env!("CARGO_BIN_EXE_stream-settle")),
    ("refresh-marker", env!("CARGO_BIN_EXE_refresh-marker")),
    ("subscription-occ", env!("CARGO_BIN_EXE_subscription-occ")),
];

/// Runs every example against `url`; panics with its output when one fails.
fn run_all(url: &str) {
    for (name, exe) in EXAMPLES {
        let out = Command::new(exe)
            .env("LOCKSTEP_URL", url)
            .env_remove("LOCKSTEP_TOKEN")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{text}");
        assert!(out.status.success(), "{name} failed:\n{text}");
    }
}

#[test]
fn seed_examples_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("examples.db").display());
    let server = InProcess::start(&db);
    run_all(&server.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_examples_postgres() {
    let Some(pg) = lockstep_testkit::pg::Schema::fresh().await else {
        return;
    };
    let server = InProcess::start(&pg.url);
    let url = server.url.clone();
    tokio::task::spawn_blocking(move || run_all(&url)).await.unwrap();
    drop(server);
    drop(pg);
}
