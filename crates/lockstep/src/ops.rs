//! Operator commands on a running server, built on `lockstep-client`:
//! `get`, `put`, `delete`, `txn`, `lease …`, `gate …`, `feed …` and
//! `changes [--follow]`.
//!
//! Output is for people by default and one JSON document per line with
//! `--json` (the answer's wire shape, as `/openapi.json` documents it).
//! Exit codes: 0 done, 3 a conflict (409, 412: a version mismatch, a held
//! lease, a failed precondition, a release that held nothing), 4 not found,
//! 1 any other error.

use futures_util::{StreamExt, TryStreamExt};
use lockstep_client::api::changes::{ChangesQuery, WatchQuery};
use lockstep_client::api::feeds::{AppendBody, EntriesQuery, FeedsQuery};
use lockstep_client::api::gates::PutGateBody;
use lockstep_client::api::leases::AcquireBody;
use lockstep_client::api::records::PutRecordBody;
use lockstep_client::api::{Pending, Policy};
use lockstep_client::{Client, Error, Ns, Transition};
use serde::Serialize;
use serde_json::Value;
use std::io::Read;

/// How every operator command reaches the server.
#[derive(clap::Args, Clone)]
pub struct Conn {
    /// The server.
    #[arg(
        long,
        global = true,
        env = "LOCKSTEP_URL",
        default_value = "http://127.0.0.1:7707"
    )]
    url: String,
    /// Bearer token (none in open mode).
    #[arg(long, global = true, env = "LOCKSTEP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The namespace.
    #[arg(
        long = "ns",
        global = true,
        env = "LOCKSTEP_NAMESPACE",
        default_value = "default"
    )]
    ns: String,
    /// Print each answer as one line of JSON (its wire shape), for scripts.
    #[arg(long, global = true)]
    json: bool,
}

/// An operator command.
#[derive(clap::Subcommand)]
pub enum Op {
    /// Print a record (exit 4 when absent).
    Get {
        #[command(flatten)]
        conn: Conn,
        /// The key.
        key: String,
    },
    /// Write a record: VALUE is JSON (`-`: read it from stdin).
    Put {
        #[command(flatten)]
        conn: Conn,
        /// The key.
        key: String,
        /// The value as JSON, e.g. '{"plan":"pro"}' or '"text"'.
        value: String,
        /// Only if the record's version is N (0: only if absent); else exit 3.
        #[arg(long)]
        expected_version: Option<u64>,
        /// Expire this many milliseconds after the write.
        #[arg(long)]
        ttl_ms: Option<u64>,
    },
    /// Delete a record.
    Delete {
        #[command(flatten)]
        conn: Conn,
        /// The key.
        key: String,
        /// Only if the record's version is N; else exit 3.
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// Run a transaction: FILE holds `{compare, success, failure}` (`-`: stdin).
    Txn {
        #[command(flatten)]
        conn: Conn,
        /// The file.
        file: String,
    },
    /// Leases: acquire, release, show.
    Lease {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        op: LeaseOp,
    },
    /// Gates: create, show, transition.
    Gate {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        op: GateOp,
    },
    /// Feeds: append, list, read.
    Feed {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        op: FeedOp,
    },
    /// The change log; `--follow` keeps watching.
    Changes {
        #[command(flatten)]
        conn: Conn,
        /// After this revision.
        #[arg(long)]
        after: Option<u64>,
        /// Only keys that start with it.
        #[arg(long)]
        prefix: Option<String>,
        /// Only these kinds (comma-separated: record, lease, feed, gate, idempotency).
        #[arg(long)]
        kind: Option<String>,
        /// Keep watching for new changes (resumes after a disconnect).
        #[arg(long)]
        follow: bool,
    },
}

/// `lease …`.
#[derive(clap::Subcommand)]
pub enum LeaseOp {
    /// Acquire: prints the owner token and the fence (exit 3 when held).
    Acquire {
        /// The lease name.
        name: String,
        /// Time to live.
        #[arg(long, default_value_t = 30_000)]
        ttl_ms: u64,
        /// Wait up to this long for a held lease.
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
        /// A label for people.
        #[arg(long)]
        holder: Option<String>,
    },
    /// Release with the owner token (exit 3 when it held nothing).
    Release {
        /// The lease name.
        name: String,
        /// The owner token (URL-safe base64: it may begin with `-`).
        #[arg(long, allow_hyphen_values = true)]
        token: String,
    },
    /// Show who holds it.
    Show {
        /// The lease name.
        name: String,
    },
}

/// `gate …`.
#[derive(clap::Subcommand)]
pub enum GateOp {
    /// Create a gate (or update its policy).
    Create {
        /// The gate id.
        id: String,
        /// Finalize tickets committed before a revoke (policy `recover`).
        #[arg(long)]
        recover: bool,
    },
    /// Show a gate.
    Show {
        /// The gate id.
        id: String,
    },
    /// Apply a transition: pause, resume, revoke, delete or reopen.
    Transition {
        /// The gate id.
        id: String,
        /// pause, resume, revoke, delete or reopen.
        #[arg(value_parser = ["pause", "resume", "revoke", "delete", "reopen"])]
        transition: String,
    },
}

/// `feed …`.
#[derive(clap::Subcommand)]
pub enum FeedOp {
    /// Append an entry (a second append of its id changes nothing).
    Append {
        /// The feed.
        feed: String,
        /// The entry id.
        #[arg(long)]
        id: String,
        /// The entry's object as JSON.
        #[arg(long)]
        data: String,
    },
    /// List the feeds.
    List {
        /// Only feeds whose name starts with it.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Print a feed's entries, newest first (`--order asc`: oldest first).
    Read {
        /// The feed.
        feed: String,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// desc or asc.
        #[arg(long, default_value = "desc", value_parser = ["desc", "asc"])]
        order: String,
    },
}

/// Why an operator command failed, as its exit code tells.
pub enum Failure {
    /// 3: a conflict.
    Conflict(String),
    /// 4: not found.
    NotFound(String),
    /// 1: anything else.
    Error(String),
}

impl Failure {
    /// The process exit code.
    pub fn code(&self) -> i32 {
        match self {
            Failure::Conflict(_) => 3,
            Failure::NotFound(_) => 4,
            Failure::Error(_) => 1,
        }
    }

    /// The message for stderr.
    pub fn message(&self) -> &str {
        match self {
            Failure::Conflict(m) | Failure::NotFound(m) | Failure::Error(m) => m,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e.status() {
            Some(409 | 412) => Failure::Conflict(e.to_string()),
            _ if matches!(e, Error::Conflict { .. }) => Failure::Conflict(e.to_string()),
            Some(404) => Failure::NotFound(e.to_string()),
            _ => Failure::Error(e.to_string()),
        }
    }
}

impl Op {
    /// How the command reaches the server.
    fn conn(&self) -> &Conn {
        match self {
            Op::Get { conn, .. }
            | Op::Put { conn, .. }
            | Op::Delete { conn, .. }
            | Op::Txn { conn, .. }
            | Op::Lease { conn, .. }
            | Op::Gate { conn, .. }
            | Op::Feed { conn, .. }
            | Op::Changes { conn, .. } => conn,
        }
    }
}

/// Runs `op` against its server.
pub async fn run(op: Op) -> Result<(), Failure> {
    let conn = op.conn().clone();
    let mut builder = Client::builder(conn.url.clone());
    if let Some(t) = &conn.token {
        builder = builder.token(t.clone());
    }
    let client = builder.build()?;
    let ns = client.ns(&conn.ns);
    let out = Out { json: conn.json };
    match op {
        Op::Get { key, .. } => match ns.get(&key).await? {
            Some(r) => out.show(&r, || {
                format!(
                    "{}  version {}  updated {}\n{}",
                    r.key,
                    r.version,
                    r.updated_at,
                    pretty(&r.value)
                )
            }),
            None => Err(Failure::NotFound(format!("no record {key:?} in {:?}", conn.ns))),
        },
        Op::Put {
            key,
            value,
            expected_version,
            ttl_ms,
            ..
        } => {
            let mut body = PutRecordBody::new(json_arg("VALUE", &value)?);
            body.expected_version = expected_version;
            body.ttl_ms = ttl_ms;
            let w = ns.put(&key, &body).await?;
            let what = if w.created { "created" } else { "replaced" };
            out.show(&w.put, || {
                format!(
                    "{what} {} at version {} (revision {})",
                    w.put.key, w.put.version, w.put.revision
                )
            })
        }
        Op::Delete {
            key,
            expected_version,
            ..
        } => {
            let d = ns.delete(&key, expected_version).await?;
            out.show(&d, || format!("deleted {} (revision {})", d.key, d.revision))
        }
        Op::Txn { file, .. } => {
            let txn: lockstep_client::api::Txn = serde_json::from_value(json_arg("FILE", &read_arg(&file)?)?)
                .map_err(|e| {
                    Failure::Error(format!(
                        "FILE is not a transaction {{compare, success, failure}}: {e}"
                    ))
                })?;
            let t = ns.txn(&txn).await?;
            out.show(&t, || {
                let branch = if t.succeeded { "succeeded" } else { "failed" };
                let results = serde_json::to_value(&t.results).unwrap_or(Value::Null);
                format!(
                    "{branch} at revision {} (failed compares: {:?})\n{}",
                    t.revision,
                    t.failed,
                    pretty(&results)
                )
            })
        }
        Op::Lease { op, .. } => lease(&ns, &out, op).await,
        Op::Gate { op, .. } => gate(&ns, &out, op).await,
        Op::Feed { op, .. } => feed(&ns, &out, op).await,
        Op::Changes {
            after,
            prefix,
            kind,
            follow,
            ..
        } => changes(&ns, &out, after, prefix, kind, follow).await,
    }
}

async fn lease(ns: &Ns, out: &Out, op: LeaseOp) -> Result<(), Failure> {
    match op {
        LeaseOp::Acquire {
            name,
            ttl_ms,
            wait_ms,
            holder,
        } => {
            let l = ns
                .acquire_lease(
                    &name,
                    &AcquireBody {
                        ttl_ms,
                        holder,
                        wait_ms,
                    },
                )
                .await?;
            out.show(&l, || {
                format!(
                    "acquired {}: fence {}, expires {}\ntoken {}",
                    l.name,
                    l.fence,
                    l.expires_at,
                    l.token.as_deref().unwrap_or("")
                )
            })
        }
        LeaseOp::Release { name, token } => {
            let r = ns.release_lease(&name, &token).await?;
            out.show(&r, || format!("released {name} (revision {})", r.revision))?;
            if r.released {
                Ok(())
            } else {
                Err(Failure::Conflict(format!("{name}: this token held nothing")))
            }
        }
        LeaseOp::Show { name } => {
            let s = ns.lease(&name).await?;
            out.show(&s, || match (s.held, &s.expires_at) {
                (true, Some(exp)) => format!(
                    "{} held by {} (fence {}), expires {exp}",
                    s.name,
                    s.holder.as_deref().unwrap_or("-"),
                    s.fence.unwrap_or(0)
                ),
                _ => format!(
                    "{} free (last fence {})",
                    s.name,
                    s.fence.map_or("-".into(), |f| f.to_string())
                ),
            })
        }
    }
}

async fn gate(ns: &Ns, out: &Out, op: GateOp) -> Result<(), Failure> {
    let describe = |g: &lockstep_client::api::gates::Gate| {
        format!(
            "gate {}: {}, epoch {} (revision {})",
            g.id,
            wire(&g.state),
            g.epoch,
            g.revision
        )
    };
    match op {
        GateOp::Create { id, recover } => {
            let pending = if recover {
                Pending::Recover
            } else {
                Pending::Reject
            };
            let body = PutGateBody {
                policy: Some(Policy { pending }),
                meta: None,
            };
            let g = ns.put_gate(&id, &body).await?;
            out.show(&g, || describe(&g))
        }
        GateOp::Show { id } => {
            let g = ns.gate(&id).await?;
            out.show(&g, || describe(&g))
        }
        GateOp::Transition { id, transition } => {
            let t = Transition::parse(&transition).map_err(|e| Failure::Error(e.to_string()))?;
            let g = ns.transition(&id, t).await?;
            out.show(&g, || {
                format!(
                    "{}; voided {}, pending {}",
                    describe(&g.gate),
                    g.voided,
                    g.pending
                )
            })
        }
    }
}

async fn feed(ns: &Ns, out: &Out, op: FeedOp) -> Result<(), Failure> {
    match op {
        FeedOp::Append { feed, id, data } => {
            let body = AppendBody {
                id,
                data: json_arg("--data", &data)?,
                at: None,
            };
            let a = ns.append(&feed, &body).await?;
            let what = if a.created { "appended" } else { "already there:" };
            out.show(&a, || {
                format!(
                    "{what} {feed}/{} at {} (revision {})",
                    a.entry.id, a.entry.at, a.entry.revision
                )
            })
        }
        FeedOp::List { prefix } => {
            let mut feeds = ns.feeds(FeedsQuery {
                prefix,
                ..Default::default()
            });
            while let Some(f) = feeds.try_next().await? {
                out.show(&f, || {
                    format!("{}  {} entries, {} unread", f.feed, f.entries, f.unread_count)
                })?;
            }
            Ok(())
        }
        FeedOp::Read { feed, limit, order } => {
            let q = EntriesQuery {
                order: Some(order),
                ..Default::default()
            };
            let mut entries = ns.entries(&feed, q).take(limit);
            while let Some(e) = entries.try_next().await? {
                let read = if e.read { "read" } else { "unread" };
                let data = serde_json::to_string(&e.data).unwrap_or_default();
                out.show(&e, || format!("{}  {}  {read}  {data}", e.at, e.id))?;
            }
            Ok(())
        }
    }
}

async fn changes(
    ns: &Ns,
    out: &Out,
    after: Option<u64>,
    prefix: Option<String>,
    kind: Option<String>,
    follow: bool,
) -> Result<(), Failure> {
    let line = |c: &lockstep_client::api::changes::Change| {
        format!(
            "{}.{}  {} {} {}  by {}  at {}",
            c.revision,
            c.index,
            wire(&c.kind),
            wire(&c.op),
            c.key,
            c.actor,
            c.at
        )
    };
    let q = ChangesQuery {
        after: after.map(|a| a.to_string()),
        prefix: prefix.clone(),
        kind: kind.clone(),
        ..Default::default()
    };
    let mut last = after;
    let mut page = ns.changes(q);
    while let Some(c) = page.try_next().await? {
        last = Some(c.revision);
        out.show(&c, || line(&c))?;
    }
    if !follow {
        return Ok(());
    }
    let q = WatchQuery {
        after: Some(last.unwrap_or(0).to_string()),
        prefix,
        kind,
    };
    let mut events = ns.watch(q);
    while let Some(ev) = events.try_next().await? {
        for c in &ev.changes {
            out.show(c, || line(c))?;
        }
    }
    Ok(())
}

/// Where answers go: stdout, as text or as JSON lines.
struct Out {
    json: bool,
}

impl Out {
    /// Prints `answer` as one JSON line, or `text()` for people.
    fn show<T: Serialize>(&self, answer: &T, text: impl FnOnce() -> String) -> Result<(), Failure> {
        if self.json {
            let line = serde_json::to_string(answer).map_err(|e| Failure::Error(e.to_string()))?;
            println!("{line}");
        } else {
            println!("{}", text());
        }
        Ok(())
    }
}

/// The wire name of an enum value (`"revoked"` → `revoked`).
fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// JSON pretty-printed for people.
fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// An argument that holds JSON.
fn json_arg(what: &str, text: &str) -> Result<Value, Failure> {
    let text = if text == "-" {
        read_arg("-")?
    } else {
        text.to_owned()
    };
    serde_json::from_str(&text).map_err(|e| {
        Failure::Error(format!(
            "{what} must be JSON (a string is quoted: '\"text\"'): {e}"
        ))
    })
}

/// The content of a file, or of stdin for `-`.
fn read_arg(path: &str) -> Result<String, Failure> {
    let mut s = String::new();
    let read = if path == "-" {
        std::io::stdin().read_to_string(&mut s).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| s = t)
    };
    read.map_err(|e| Failure::Error(format!("cannot read {path}: {e}")))?;
    Ok(s)
}
