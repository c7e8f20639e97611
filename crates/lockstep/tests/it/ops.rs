//! The operator commands (`lockstep get|put|delete|txn|lease|gate|feed|changes`)
//! as a user runs them: the binary against a server, on SQLite and
//! PostgreSQL; human output, `--json`, `LOCKSTEP_URL`, and the exit codes
//! (0 done, 3 conflict, 4 not found, 1 error).

#![allow(clippy::unwrap_used)]

use crate::common::{fresh_pg, sqlite_db, tempdir, Server};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The stdout as one JSON document (`--json` prints one per line).
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {:?}", self.stdout))
    }
}

/// Runs `lockstep ARGS` against `url` (through `LOCKSTEP_URL`), with `stdin`.
fn lockstep(url: &str, args: &[&str], stdin: &str) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LOCKSTEP_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env("LOCKSTEP_URL", url)
        .env("LOCKSTEP_NAMESPACE", "ops")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every command once, with its output and exit code.
fn story(url: &str) {
    let run = |args: &[&str]| lockstep(url, args, "");
    // Records: create-only, a conflict (3), a read, not found (4).
    let r = run(&["put", "cart/42", r#"{"items":[]}"#, "--expected-version", "0"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "created cart/42 at version 1 (revision 1)"),
        "{}",
        r.stderr
    );
    let r = run(&["put", "cart/42", r#"{"items":[1]}"#, "--expected-version", "0"]);
    assert_eq!(r.code, 3, "a version mismatch is a conflict: {}", r.stderr);
    assert!(r.stderr.contains("version_mismatch"), "{}", r.stderr);
    let r = run(&["get", "cart/42", "--json"]);
    assert_eq!(r.code, 0);
    let rec = r.json();
    assert_eq!(
        (rec["value"].clone(), rec["version"].clone()),
        (json!({"items": []}), json!(1))
    );
    let r = run(&["get", "cart/42"]);
    assert!(r.stdout.starts_with("cart/42  version 1"), "{}", r.stdout);
    assert_eq!(run(&["get", "absent"]).code, 4);
    let r = run(&["put", "x", "not json"]);
    assert_eq!(r.code, 1, "bad input is an error");
    assert!(r.stderr.contains("must be JSON"), "{}", r.stderr);
    // A value from stdin, then a conditional delete.
    // (A version is the revision of the record's last write.)
    let r = lockstep(url, &["put", "note", "-", "--json"], "\"from stdin\"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let version = r.json()["version"].as_u64().unwrap();
    assert_eq!(run(&["get", "note", "--json"]).json()["value"], "from stdin");
    let stale = (version - 1).to_string();
    assert_eq!(run(&["delete", "note", "--expected-version", &stale]).code, 3);
    assert_eq!(
        run(&["delete", "note", "--expected-version", &version.to_string()]).code,
        0
    );
    // A transaction from stdin.
    let txn = r#"{"compare":[{"key":"a","exists":false}],"success":[{"put":{"key":"a","value":1}}]}"#;
    let r = lockstep(url, &["txn", "-", "--json"], txn);
    assert_eq!(
        (r.code, r.json()["succeeded"].clone()),
        (0, json!(true)),
        "{}",
        r.stderr
    );
    // One that is not a transaction is refused before it is sent (exit 1).
    let r = lockstep(url, &["txn", "-"], r#"{"compare":[{"key":"a"}]}"#);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("not a transaction"), "{}", r.stderr);
    // Leases: acquire, held (3), show, release with the token, release again (3).
    let r = run(&["lease", "acquire", "settle", "--holder", "ops", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(run(&["lease", "acquire", "settle"]).code, 3);
    let r = run(&["lease", "show", "settle"]);
    assert!(r.stdout.starts_with("settle held by ops"), "{}", r.stdout);
    // A token may begin with `-` (URL-safe base64): both forms take it.
    assert_eq!(run(&["lease", "release", "settle", "--token", &token]).code, 0);
    let token_arg = format!("--token={token}");
    assert_eq!(run(&["lease", "release", "settle", &token_arg]).code, 3);
    // A token that looks like a flag is still a token.
    assert_eq!(
        run(&["lease", "release", "settle", "--token", "-AAAAAAAAAAAAAAAAAAAAA"]).code,
        3
    );
    // Gates.
    let r = run(&["gate", "create", "upload-1"]);
    assert!(
        r.stdout.starts_with("gate upload-1: open, epoch 1"),
        "{}",
        r.stdout
    );
    let r = run(&["gate", "transition", "upload-1", "revoke", "--json"]);
    assert_eq!(r.json()["state"], "revoked");
    assert_eq!(run(&["gate", "show", "nope"]).code, 4);
    // Feeds: append twice (idempotent by id), list, read.
    let append = ["feed", "append", "inbox", "--id", "m1", "--data", r#"{"t":"hi"}"#];
    assert!(run(&append).stdout.starts_with("appended inbox/m1"));
    assert!(run(&append).stdout.starts_with("already there: inbox/m1"));
    assert!(run(&["feed", "list"])
        .stdout
        .starts_with("inbox  1 entries, 1 unread"));
    let r = run(&["feed", "read", "inbox", "--json"]);
    assert_eq!(r.json()["data"], json!({"t": "hi"}));
    // The change log: one line per change, in order.
    let r = run(&["changes", "--json"]);
    let revisions: Vec<u64> = r
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["revision"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        revisions.len() >= 8 && revisions.windows(2).all(|w| w[0] <= w[1]),
        "{revisions:?}"
    );
    let r = run(&["changes", "--kind", "lease"]);
    assert!(r.stdout.lines().all(|l| l.contains(" lease ")), "{}", r.stdout);
}

#[test]
fn operator_commands_sqlite() {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    story(&server.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_postgres() {
    let Some(pg) = fresh_pg().await else { return };
    let server = Server::start(&pg.url);
    let url = server.url.clone();
    tokio::task::spawn_blocking(move || story(&url)).await.unwrap();
    drop(server);
    drop(pg);
}

#[test]
fn an_unreachable_server_is_an_error() {
    let r = lockstep("http://127.0.0.1:9", &["get", "k"], "");
    assert_eq!(r.code, 1, "{}", r.stderr);
}
