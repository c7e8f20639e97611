//! seeds/001: owners race uploaders on four gates.

use super::actors::*;
use super::*;

// ---------------------------------------------------------------------------
// 1. seeds/001: owners race uploaders.

const UPLOADERS: usize = 5;

/// The gates of the scenario: (id, policy, the terminal owner's script).
const LINKS: [(&str, &str, &[&str]); 4] = [
    ("link-a", "reject", &["revoke", "delete"]),
    (
        "link-b",
        "recover",
        &["revoke", "reopen", "pause", "revoke", "delete"],
    ),
    ("link-c", "reject", &["revoke", "reopen", "delete"]),
    ("link-d", "recover", &["delete"]),
];

/// Statuses documented for an operation (docs/gates.md) and the code of each.
fn documented(op: &str, status: u16) -> Option<&'static str> {
    let transition = matches!(op, "pause" | "resume" | "revoke" | "delete" | "reopen");
    match (status, op) {
        (200, _) => Some(""),
        (201, "admit") => Some(""),
        (404, _) => Some("not_found"),
        (409, _) if transition => Some("invalid_transition"),
        (409, _) => Some("ticket_conflict"),
        (410, _) => Some("gate_closed"),
        (423, "admit" | "check" | "commit" | "finalize") => Some("gate_paused"),
        _ => None,
    }
}

async fn receive_links(cl: &Cluster) {
    let label = cl.label;
    let mut links = Vec::new();
    for (id, pending, script) in LINKS {
        put_gate(&cl.http(0), id, pending).await;
        links.push(Arc::new(Link {
            id: id.to_owned(),
            pending,
            script,
            commits: AtomicUsize::new(0),
            paused_hits: AtomicUsize::new(0),
            rounds: AtomicUsize::new(0),
            stragglers_ready: AtomicBool::new(false),
            terminal: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        }));
    }
    // 32 clients: per gate 5 uploaders, a straggler, a toggling owner and a
    // terminal owner, spread round-robin over the servers.
    let mut n = 0;
    let mut client = |link: &Arc<Link>, role: &str| {
        n += 1;
        Client {
            name: format!("{}.{role}", link.id),
            h: cl.http(n),
            link: link.clone(),
        }
    };
    let mut tasks = Vec::new();
    for l in &links {
        for u in 0..UPLOADERS {
            tasks.push(tokio::spawn(uploader(client(l, &format!("u{u}")))));
        }
        tasks.push(tokio::spawn(straggler(client(l, "straggler"))));
        tasks.push(tokio::spawn(toggler(client(l, "toggler"))));
        tasks.push(tokio::spawn(terminator(client(l, "owner"))));
    }
    assert_eq!(tasks.len(), 32);
    for t in tasks {
        t.await.unwrap();
    }

    let h = cl.http(0);
    let mut failures: Vec<String> = Vec::new();
    let mut stats = Vec::new();
    for l in &links {
        let g = l.id.as_str();
        let log = l.log.lock().unwrap().clone();
        let gate = h.get(&gate_path(g)).await;
        expect(&gate, 200, None, g);
        assert_eq!(gate.body["state"], json!("deleted"), "[{label}] {g}");
        let tickets = list_tickets(&h, g).await;
        let entries = feed_entries(&h, &feed_of(g)).await;
        let changes = gate_changes(&cl.disk, g).await;

        // (2) Every answer is documented for its operation, with its code.
        for r in &log {
            match documented(r.op, r.status) {
                Some("") => {}
                Some(code) if r.code() == Some(code) => {}
                _ => failures.push(format!(
                    "[{g}] {} {} {:?}: undocumented answer {} {}",
                    r.client, r.op, r.ticket, r.status, r.body
                )),
            }
        }

        // Epochs from the change log: epoch e is closed at close_rev[e].
        let mut epoch = 1u64;
        let mut close_rev: BTreeMap<u64, u64> = BTreeMap::new();
        for (rev, _, op) in &changes {
            match op.as_str() {
                "revoke" | "delete" => {
                    close_rev.insert(epoch, *rev);
                    epoch += 1;
                }
                "reopen" => epoch += 1,
                _ => {}
            }
        }
        assert_eq!(
            gate.body["epoch"],
            json!(epoch),
            "[{label}] {g}: the epoch counts the log's moves"
        );
        // The owners' successful transitions are the log's, at the same revisions.
        let owner_moves: Vec<(u64, String)> = log
            .iter()
            .filter(|r| r.ticket.is_none() && r.status == 200 && r.body["changed"] == json!(true))
            .map(|r| (r.u64("revision").unwrap(), r.op.to_owned()))
            .collect();
        let mut log_moves: Vec<(u64, String)> = changes
            .iter()
            .filter(|(_, _, op)| matches!(op.as_str(), "pause" | "resume" | "revoke" | "delete" | "reopen"))
            .map(|(rev, _, op)| (*rev, op.clone()))
            .collect();
        let mut sorted_moves = owner_moves.clone();
        sorted_moves.sort();
        log_moves.sort();
        if sorted_moves != log_moves {
            failures.push(format!(
                "[{g}] transitions answered {sorted_moves:?}, logged {log_moves:?}"
            ));
        }

        // Per ticket: its admission epoch, and what its answers said.
        let mut admitted: BTreeMap<String, u64> = BTreeMap::new();
        for r in log.iter().filter(|r| r.op == "admit" && r.status == 201) {
            admitted.insert(r.ticket.clone().unwrap(), r.u64("epoch").unwrap());
        }
        if admitted.keys().collect::<BTreeSet<_>>() != tickets.keys().collect::<BTreeSet<_>>() {
            failures.push(format!("[{g}] the listed tickets are not the admitted ones"));
        }
        let mut first_finalize: BTreeMap<String, Value> = BTreeMap::new();
        let mut committed_ok: BTreeSet<String> = BTreeSet::new();
        let mut finalize_rejected: BTreeSet<String> = BTreeSet::new();
        for r in log.iter().filter(|r| r.ticket.is_some() && r.op != "admit") {
            let t = r.ticket.clone().unwrap();
            if r.status == 200 {
                if r.u64("epoch") != admitted.get(&t).copied() {
                    failures.push(format!("[{g}] {t}: {} answered epoch {:?}", r.op, r.u64("epoch")));
                }
                if r.op == "commit" {
                    committed_ok.insert(t.clone());
                }
            }
            if r.op == "finalize" {
                if r.status == 200 {
                    match first_finalize.get(&t) {
                        Some(first) if *first != r.body => failures.push(format!(
                            "[{g}] {t}: a repeated finalize answered {} after {first}",
                            r.body
                        )),
                        Some(_) => {}
                        None => {
                            first_finalize.insert(t.clone(), r.body.clone());
                        }
                    }
                } else if r.status == 410 && committed_ok.contains(&t) {
                    finalize_rejected.insert(t.clone());
                }
            }
        }

        // (1) No ticket of a closed epoch was committed or finalized after the
        // transition closing it, except recovered under `recover`.
        let mut recovered = 0;
        let mut finalized: BTreeMap<String, u64> = BTreeMap::new();
        for (id, t) in &tickets {
            let e = t["epoch"].as_u64().unwrap();
            let state = t["state"].as_str().unwrap();
            if !matches!(state, "finalized" | "voided" | "aborted") {
                failures.push(format!("[{g}] {id} ends {state}: every upload ends"));
            }
            if state != "finalized" {
                if !t["finalized_revision"].is_null() || t["recovered"] != json!(false) {
                    failures.push(format!("[{g}] {id}: {t}"));
                }
                continue;
            }
            let fr = t["finalized_revision"].as_u64().unwrap();
            finalized.insert(id.clone(), fr);
            let late = close_rev.get(&e).is_some_and(|c| fr > *c);
            let rec = t["recovered"] == json!(true);
            if rec {
                recovered += 1;
            }
            if late && !(rec && l.pending == "recover") {
                failures.push(format!(
                    "[{g}] {id} of epoch {e} finalized at {fr}, after its epoch closed at {:?}: {t}",
                    close_rev.get(&e)
                ));
            }
            if rec && !late {
                failures.push(format!("[{g}] {id} recovered though finalized in its epoch: {t}"));
            }
            if let Some(first) = first_finalize.get(id) {
                if first != t {
                    failures.push(format!("[{g}] {id}: finalize answered {first}, listed {t}"));
                }
            } else {
                failures.push(format!("[{g}] {id} finalized without a 200 finalize answer"));
            }
        }
        for id in first_finalize.keys() {
            if !finalized.contains_key(id) {
                failures.push(format!("[{g}] {id}: answered finalized, listed {}", tickets[id]));
            }
        }
        // Commits, from the log: every 200 commit is one `commit` change, and
        // after epoch e closed, the only commits are of newer tickets.
        let commit_revs: Vec<u64> = changes
            .iter()
            .filter(|(_, _, op)| op == "commit")
            .map(|(r, _, _)| *r)
            .collect();
        if commit_revs.len() != committed_ok.len() {
            failures.push(format!(
                "[{g}] {} commit changes for {} successful commits",
                commit_revs.len(),
                committed_ok.len()
            ));
        }
        for (e, closed_at) in &close_rev {
            let after = commit_revs.iter().filter(|r| *r > closed_at).count();
            let newer = committed_ok.iter().filter(|t| admitted[*t] > *e).count();
            if after != newer {
                failures.push(format!(
                    "[{g}] {after} commits after epoch {e} closed at {closed_at}, but {newer} commits of newer tickets"
                ));
            }
        }
        // Finalizations, from the log: exactly the tickets' finalized_revision.
        let finalize_revs: BTreeSet<u64> = changes
            .iter()
            .filter(|(_, _, op)| op == "finalize")
            .map(|(r, _, _)| *r)
            .collect();
        let want_revs: BTreeSet<u64> = finalized.values().copied().collect();
        if finalize_revs != want_revs || want_revs.len() != finalized.len() {
            failures.push(format!(
                "[{g}] finalize changes at {finalize_revs:?}, finalized tickets at {want_revs:?}"
            ));
        }
        // Real time: no step of a closed epoch succeeded that was sent after
        // the closing transition was answered (a finalize only as a repeat of
        // one done in time, or recovered).
        for m in log.iter().filter(|r| {
            matches!(r.op, "revoke" | "delete") && r.status == 200 && r.body["changed"] == json!(true)
        }) {
            let closed_epoch = m.u64("epoch").unwrap() - 1;
            let closed_at = m.u64("revision").unwrap();
            for r in log
                .iter()
                .filter(|r| r.sent > m.received && matches!(r.status, 200 | 201))
            {
                let Some(t) = &r.ticket else { continue };
                let Some(e) = admitted.get(t) else { continue };
                if *e > closed_epoch {
                    continue;
                }
                let allowed = match r.op {
                    "finalize" => {
                        r.body["recovered"] == json!(true)
                            || finalized.get(t).is_some_and(|fr| *fr < closed_at)
                    }
                    "abort" => true,
                    _ => false,
                };
                if !allowed {
                    failures.push(format!(
                        "[{g}] {} {t} (epoch {e}) succeeded, sent after {} closed epoch {closed_epoch}: {}",
                        r.op, m.op, r.body
                    ));
                }
            }
        }
        // Terminal counts: Σ voided = tickets voided by transitions; Σ pending =
        // tickets committed at a close, then voided (reject) or recovered.
        let voided_total: u64 = log
            .iter()
            .filter(|r| matches!(r.op, "revoke" | "delete") && r.status == 200)
            .map(|r| r.u64("voided").unwrap())
            .sum();
        let pending_total: u64 = log
            .iter()
            .filter(|r| matches!(r.op, "revoke" | "delete") && r.status == 200)
            .map(|r| r.u64("pending").unwrap())
            .sum();
        let voided_listed = tickets.values().filter(|t| t["state"] == json!("voided")).count() as u64;
        let void_changes = changes.iter().filter(|(_, _, op)| op == "void").count() as u64;
        if void_changes != finalize_rejected.len() as u64 {
            failures.push(format!(
                "[{g}] {void_changes} void changes for {} rejected finalizes",
                finalize_rejected.len()
            ));
        }
        if voided_total != voided_listed - finalize_rejected.len() as u64 {
            failures.push(format!(
                "[{g}] transitions voided {voided_total}; {voided_listed} voided tickets, {} by finalize",
                finalize_rejected.len()
            ));
        }
        if pending_total != finalize_rejected.len() as u64 + recovered {
            failures.push(format!(
                "[{g}] pending {pending_total}, but {} rejected and {recovered} recovered",
                finalize_rejected.len()
            ));
        }
        if l.pending == "reject" && recovered > 0 {
            failures.push(format!("[{g}] recovered tickets under reject"));
        }
        // The straggler's committed ticket was pending at the first close.
        if pending_total == 0 {
            failures.push(format!("[{g}] no pending ticket at any terminal transition"));
        }

        // (3) Finalized once ⇔ exactly one feed entry, at its revision.
        let mut by_id: BTreeMap<String, u64> = BTreeMap::new();
        for e in &entries {
            let id = e["id"].as_str().unwrap().to_owned();
            if e["data"]["ticket"] != json!(id) {
                failures.push(format!("[{g}] entry {e}: data of another ticket"));
            }
            if by_id
                .insert(id.clone(), e["revision"].as_u64().unwrap())
                .is_some()
            {
                failures.push(format!("[{g}] two entries {id}"));
            }
        }
        if by_id != finalized {
            let extra: Vec<_> = by_id.keys().filter(|k| !finalized.contains_key(*k)).collect();
            let missing: Vec<_> = finalized.keys().filter(|k| !by_id.contains_key(*k)).collect();
            failures.push(format!(
                "[{g}] feed entries differ from finalized tickets: extra {extra:?}, missing {missing:?}"
            ));
        }
        let count = |op: &str| log.iter().filter(|r| r.op == op).count();
        stats.push(format!(
            "{g}: {} requests, {} tickets, {} finalized ({recovered} recovered), {} commits, {} 423s, {} 410s, \
             voided {voided_total} + {} at finalize, pending {pending_total}, epochs {epoch}, changes {}, admits {}",
            log.len(),
            tickets.len(),
            finalized.len(),
            committed_ok.len(),
            log.iter().filter(|r| r.status == 423).count(),
            log.iter().filter(|r| r.status == 410).count(),
            finalize_rejected.len(),
            changes.len(),
            count("admit"),
        ));
    }
    println!("[{label}] receive links:\n  {}", stats.join("\n  "));
    assert!(
        failures.is_empty(),
        "[{label}] {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_links_sqlite() {
    let cl = sqlite_cluster();
    bounded("receive_links on sqlite", receive_links(&cl)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_links_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded("receive_links on postgres×3", receive_links(&cl)).await;
}
