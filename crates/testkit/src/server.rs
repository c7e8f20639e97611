//! The server in-process: `lockstep_server::serve` on a `127.0.0.1:0`
//! listener, with the settings `lockstep serve --database …` has without a
//! config file (open mode on loopback, default limits), on a thread and tokio
//! runtime of its own. Tests talk real HTTP to it; no process is spawned.
//! Only what needs a process (kill -9, outage, shutdown, several instances)
//! spawns the binary.
//!
//! [`InProcess::start_manual`] runs the store on a manual clock the test moves
//! ([`InProcess::clock`]): TTLs, lease expiry, idempotency locks and retention
//! then pass when the test says so, without sleeping. The server's own timers
//! (a waiting acquire's poll, the sweeper's tick, request timeouts) still run
//! on the wall clock; they only decide when the store is asked again.

use lockstep_server::AppState;
use lockstep_store::clock::Clock;
use lockstep_store::{Location, Options, Store};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Pool size of every PostgreSQL server started here (as the spawned ones).
pub const PG_POOL_SIZE: usize = 6;

/// How long a server may take to open its store and listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A server running in this process; stopped on drop (requests in flight are
/// dropped with it, as a killed process would drop them).
pub struct InProcess {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The database it serves (`sqlite:PATH` or `postgres://…`).
    pub database: String,
    /// The clock its store runs on: [`Clock::System`], or the manual clock of
    /// [`InProcess::start_manual`] (move it with `advance`/`set`).
    pub clock: Clock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Opens `database` (`sqlite:PATH` or `postgres://…`) and serves it;
    /// returns once it listens. Panics when the store does not open.
    pub fn start(database: &str) -> InProcess {
        InProcess::start_with_clock(database, Clock::System)
    }

    /// As [`InProcess::start`], the store on a manual clock starting at
    /// [`MANUAL_START`](crate::store::MANUAL_START).
    pub fn start_manual(database: &str) -> InProcess {
        InProcess::start_with_clock(database, Clock::manual(crate::store::MANUAL_START))
    }

    /// As [`InProcess::start`], the store on `clock`.
    pub fn start_with_clock(database: &str, clock: Clock) -> InProcess {
        let location = Location::parse(database)
            .unwrap_or_else(|e| panic!("bad database {}: {e}", crate::pg::redact(database)));
        let options = Options {
            pool_size: match location {
                Location::Postgres(_) => PG_POOL_SIZE,
                Location::Sqlite(_) => Options::default().pool_size,
            },
            clock: clock.clone(),
            ..Options::default()
        };
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lockstep-in-process".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("no runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let store = match Store::open(&location, options.clone()).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("cannot open the store: {e}")));
                            return;
                        }
                    };
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("cannot listen: {e}")));
                            return;
                        }
                    };
                    let url = match listener.local_addr() {
                        Ok(a) => format!("http://{a}"),
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("no local address: {e}")));
                            return;
                        }
                    };
                    let state = AppState::new(store, options.limits);
                    let _ = ready_tx.send(Ok(url));
                    tokio::select! {
                        r = lockstep_server::serve(listener, state, std::future::pending()) => {
                            if let Err(e) = r {
                                eprintln!("the in-process server stopped: {e}");
                            }
                        }
                        _ = stop_rx => {}
                    }
                });
                // Drops the connections and the sweeper still running.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .unwrap_or_else(|e| panic!("cannot start a server thread: {e}"));
        let url = match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(url)) => url,
            Ok(Err(e)) => panic!(
                "the in-process server on {} failed: {e}",
                crate::pg::redact(database)
            ),
            Err(e) => panic!(
                "the in-process server on {} did not listen within {START_TIMEOUT:?}: {e}",
                crate::pg::redact(database)
            ),
        };
        InProcess {
            url,
            database: database.to_owned(),
            clock,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
