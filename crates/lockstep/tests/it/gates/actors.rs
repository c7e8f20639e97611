//! The simulated clients of `receive_links`: every request and answer is
//! recorded for the checks afterwards.

use super::*;

/// One recorded request and its answer.
#[derive(Debug, Clone)]
pub(super) struct Rec {
    pub(super) client: String,
    pub(super) ticket: Option<String>,
    pub(super) op: &'static str,
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) sent: Instant,
    pub(super) received: Instant,
}

impl Rec {
    pub(super) fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    pub(super) fn u64(&self, name: &str) -> Option<u64> {
        self.body.get(name).and_then(Value::as_u64)
    }

    pub(super) fn str(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(Value::as_str)
    }
}

/// What the clients of one gate share.
pub(super) struct Link {
    pub(super) id: String,
    pub(super) pending: &'static str,
    /// What the terminal owner does, in order.
    pub(super) script: &'static [&'static str],
    /// Successful commits so far.
    pub(super) commits: AtomicUsize,
    /// 423 answers so far.
    pub(super) paused_hits: AtomicUsize,
    /// Pause/resume rounds the toggling owner completed.
    pub(super) rounds: AtomicUsize,
    /// The straggler holds an open and a committed ticket.
    pub(super) stragglers_ready: AtomicBool,
    /// The first terminal transition was answered.
    pub(super) terminal: AtomicBool,
    /// The gate is deleted: uploaders finish.
    pub(super) stop: AtomicBool,
    pub(super) log: Mutex<Vec<Rec>>,
}

/// A client of one gate that records everything it sends.
#[derive(Clone)]
pub(super) struct Client {
    pub(super) name: String,
    pub(super) h: Http,
    pub(super) link: Arc<Link>,
}

impl Client {
    pub(super) async fn call(&self, op: &'static str, ticket: Option<&str>) -> Rec {
        let gate = self.link.id.as_str();
        let sent = Instant::now();
        let r = match (op, ticket) {
            ("admit", Some(t)) => admit(&self.h, gate, t).await,
            ("finalize", Some(t)) => finalize_append(&self.h, gate, t).await,
            (op, Some(t)) => ticket_op(&self.h, gate, t, op).await,
            (op, None) => transition(&self.h, gate, op).await,
        };
        let rec = Rec {
            client: self.name.clone(),
            ticket: ticket.map(str::to_owned),
            op,
            status: r.status,
            body: r.body,
            sent,
            received: Instant::now(),
        };
        if rec.status == 423 {
            self.link.paused_hits.fetch_add(1, Ordering::SeqCst);
        }
        if op == "commit" && rec.status == 200 {
            self.link.commits.fetch_add(1, Ordering::SeqCst);
        }
        self.link.log.lock().unwrap().push(rec.clone());
        rec
    }

    /// A ticket step, retried while the gate is paused (the ticket survives).
    pub(super) async fn step(&self, op: &'static str, ticket: &str) -> Rec {
        loop {
            let r = self.call(op, Some(ticket)).await;
            if r.status != 423 {
                return r;
            }
            pace().await;
        }
    }
}

/// An uploader: admit → check → commit → finalize (with append), again and
/// again until the gate is deleted. Every 5th ticket is aborted after check;
/// every 4th finalize is repeated. After a 410 at check or commit the upload
/// is undone with abort.
pub(super) async fn uploader(c: Client) {
    let mut n = 0;
    while !c.link.stop.load(Ordering::SeqCst) {
        n += 1;
        let t = format!("{}.{n}", c.name);
        let r = c.call("admit", Some(&t)).await;
        if r.status != 201 {
            // 423 while paused, 410 while revoked or deleted.
            pace().await;
            continue;
        }
        let r = c.step("check", &t).await;
        if r.status != 200 {
            c.call("abort", Some(&t)).await;
            continue;
        }
        if n % 5 == 0 {
            // The uploader gives up; a repeated abort is 200 too.
            c.call("abort", Some(&t)).await;
            c.call("abort", Some(&t)).await;
            continue;
        }
        let r = c.step("commit", &t).await;
        if r.status != 200 {
            c.call("abort", Some(&t)).await;
            continue;
        }
        let r = c.step("finalize", &t).await;
        if r.status == 200 && n % 4 == 0 {
            c.step("finalize", &t).await;
        }
    }
}

/// A straggler: holds an open and a committed ticket across the first terminal
/// transition, then runs its late steps, whose answers the table fixes.
pub(super) async fn straggler(c: Client) {
    let open = format!("{}.open", c.name);
    let committed = format!("{}.committed", c.name);
    for t in [&open, &committed] {
        loop {
            let r = c.call("admit", Some(t)).await;
            if r.status == 201 {
                break;
            }
            assert_eq!(r.status, 423, "{t}: the gate is open or paused now: {:?}", r.body);
            pace().await;
        }
    }
    let r = c.step("commit", &committed).await;
    assert_eq!(r.status, 200, "{committed}: {:?}", r.body);
    c.link.stragglers_ready.store(true, Ordering::SeqCst);
    wait_until("the terminal transition", || {
        c.link.terminal.load(Ordering::SeqCst)
    })
    .await;
    let what = |op: &str, t: &str| format!("[{}] late {op} of {t}", c.link.id);
    // The open ticket was voided by the transition: 410 for everything.
    for op in ["check", "commit", "finalize", "abort"] {
        let r = c.call(op, Some(&open)).await;
        assert_eq!(
            (r.status, r.code()),
            (410, Some("gate_closed")),
            "{}: {:?}",
            what(op, &open),
            r.body
        );
    }
    // The committed one is pending: check/commit 410; finalize per policy.
    for op in ["check", "commit"] {
        let r = c.call(op, Some(&committed)).await;
        assert_eq!(
            (r.status, r.code()),
            (410, Some("gate_closed")),
            "{}: {:?}",
            what(op, &committed),
            r.body
        );
    }
    let first = c.call("finalize", Some(&committed)).await;
    let again = c.call("finalize", Some(&committed)).await;
    let abort = c.call("abort", Some(&committed)).await;
    if c.link.pending == "recover" {
        assert_eq!(
            first.status,
            200,
            "{}: {:?}",
            what("finalize", &committed),
            first.body
        );
        assert_eq!(first.str("state"), Some("finalized"));
        assert_eq!(first.body["recovered"], json!(true), "{:?}", first.body);
        assert_eq!(again.body, first.body, "a repeated finalize answers the same");
        assert_eq!(
            (abort.status, abort.code()),
            (409, Some("ticket_conflict")),
            "{:?}",
            abort.body
        );
    } else {
        for r in [&first, &again, &abort] {
            assert_eq!(
                (r.status, r.code()),
                (410, Some("gate_closed")),
                "{}: {:?}",
                what(r.op, &committed),
                r.body
            );
        }
    }
}

/// Pauses and resumes the gate: each round after some commits, resuming after
/// some uploaders saw 423. Stops at the first 410.
pub(super) async fn toggler(c: Client) {
    let l = c.link.clone();
    for round in 0..5 {
        let base = l.commits.load(Ordering::SeqCst);
        wait_until("commits before a pause", || {
            l.commits.load(Ordering::SeqCst) >= base + 5 || l.terminal.load(Ordering::SeqCst)
        })
        .await;
        let r = c.call("pause", None).await;
        if r.status == 410 {
            return;
        }
        let hits = l.paused_hits.load(Ordering::SeqCst);
        wait_until("423 answers while paused", || {
            l.paused_hits.load(Ordering::SeqCst) >= hits + 3 || l.terminal.load(Ordering::SeqCst)
        })
        .await;
        // A second owner action may repeat it: a no-op.
        if round == 1 {
            c.call("pause", None).await;
        }
        let r = c.call("resume", None).await;
        if r.status == 410 {
            return;
        }
        l.rounds.fetch_add(1, Ordering::SeqCst);
    }
}

/// The terminal owner: once the stragglers are set and three pause/resume rounds
/// went by, runs the gate's script (revoke, reopen, pause, delete, …); after a
/// reopen it waits for new commits first. Sets `stop` after the delete.
pub(super) async fn terminator(c: Client) {
    let l = c.link.clone();
    wait_until("the stragglers", || {
        l.stragglers_ready.load(Ordering::SeqCst) && l.rounds.load(Ordering::SeqCst) >= 3
    })
    .await;
    for (i, op) in l.script.iter().enumerate() {
        if i > 0 && l.script[i - 1] == "reopen" {
            let base = l.commits.load(Ordering::SeqCst);
            wait_until("commits in the new epoch", || {
                l.commits.load(Ordering::SeqCst) >= base + 8
            })
            .await;
        }
        let r = c.call(op, None).await;
        assert_eq!(r.status, 200, "[{}] {op}: {:?}", l.id, r.body);
        // (A pause may find the toggling owner's pause in force.)
        if *op != "pause" {
            assert_eq!(r.body["changed"], json!(true), "[{}] {op}: {:?}", l.id, r.body);
        }
        if *op == "revoke" || *op == "delete" {
            l.terminal.store(true, Ordering::SeqCst);
        }
    }
    l.stop.store(true, Ordering::SeqCst);
}
