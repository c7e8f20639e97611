//! Capabilities racing a revoke.

use super::*;

// ---------------------------------------------------------------------------
// Capabilities racing a revoke (SPEC §11, seeds/001): 32 anonymous uploaders
// hold a capability minted at epoch 1 and run admit → check → commit →
// finalize while the owner revokes. Checked against the change log: no
// operation made with the old epoch's capability succeeded after the revoke's
// revision, and every success the uploaders saw is in the log before it.

const CAP_UPLOADERS: usize = 32;

async fn cap_post(h: &Http, cap: &str, path: &str, body: Value) -> Resp {
    h.send(
        h.req("POST", path)
            .header("authorization", format!("Bearer {cap}"))
            .json(&body),
    )
    .await
}

async fn capabilities_race_revoke(cl: &Cluster) {
    let label = cl.label;
    let owner = cl.http(0);
    let g = "cap-race";
    put_gate(&owner, g, "reject").await;
    let r = post(
        &owner,
        &format!("/v1/ns/{NS}/gates/{g}/capabilities"),
        Some(&json!({"ttl_ms": 600_000})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let cap = r.body["capability"].as_str().unwrap().to_owned();
    let ops_done = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CAP_UPLOADERS + 1));
    let mut tasks = Vec::new();
    for i in 0..CAP_UPLOADERS {
        let (h, cap, barrier, done) = (cl.http(i), cap.clone(), barrier.clone(), ops_done.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // Each success: (op, revision it committed at or names).
            let mut seen: Vec<(&'static str, u64)> = Vec::new();
            let mut closed = 0;
            'uploads: for n in 0..40 {
                let t = format!("u{i}-{n}");
                let base = format!("/v1/ns/{NS}/gates/{g}/tickets");
                let steps: [(&'static str, String, Value); 4] = [
                    ("admit", base.clone(), json!({"ticket_id": t})),
                    ("check", format!("{base}/{t}/check"), json!({})),
                    ("commit", format!("{base}/{t}/commit"), json!({})),
                    ("finalize", format!("{base}/{t}/finalize"), json!({})),
                ];
                for (op, path, body) in steps {
                    let r = cap_post(&h, &cap, &path, body).await;
                    match r.status {
                        200 | 201 => {
                            seen.push((op, r.u64("revision")));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        410 => {
                            assert_eq!(r.code(), Some("gate_closed"), "{}", r.text);
                            closed += 1;
                            if closed >= 3 {
                                break 'uploads;
                            }
                            continue 'uploads;
                        }
                        other => panic!("{op} {path}: unexpected {other} {}", r.text),
                    }
                }
            }
            (seen, closed)
        }));
    }
    barrier.wait().await;
    // Revoke in the middle of the load.
    poll(Duration::from_secs(30), "uploads under way", || {
        let done = ops_done.clone();
        async move { (done.load(Ordering::Relaxed) >= 60).then_some(()) }
    })
    .await;
    let revoked = transition(&owner, g, "revoke").await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let r_revoke = revoked.u64("revision");
    let mut successes = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (seen, closed) = t.await.unwrap();
        assert!(closed > 0, "[{label}] every uploader met the revoke");
        successes.extend(seen);
        refused += closed;
    }
    // Every write the uploaders saw succeed committed before the revoke.
    let writes: Vec<&(&str, u64)> = successes.iter().filter(|(op, _)| *op != "check").collect();
    assert!(!writes.is_empty());
    for (op, rev) in &writes {
        assert!(
            *rev < r_revoke,
            "[{label}] {op} at revision {rev} after the revoke at {r_revoke}"
        );
    }
    // The log agrees: nothing by the capability after the revoke's revision.
    let log = owner
        .get(&format!("/v1/ns/{NS}/changes?kind=gate&prefix={g}&limit=1000"))
        .await;
    let mut by_cap = 0;
    for c in log.body["changes"].as_array().unwrap() {
        if c["actor"] == json!(format!("capability:{g}")) {
            by_cap += 1;
            assert!(
                c["revision"].as_u64().unwrap() < r_revoke,
                "[{label}] {c} after the revoke at {r_revoke}"
            );
        }
    }
    assert_eq!(
        by_cap,
        writes.len(),
        "[{label}] the log holds exactly the writes the uploaders saw"
    );
    println!(
        "[{label}] capabilities racing a revoke: {} writes before revision {r_revoke}, {refused} refused 410, 0 accepted after",
        writes.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capabilities_race_revoke_sqlite() {
    let cl = sqlite_cluster();
    bounded(
        "capabilities racing a revoke on sqlite",
        capabilities_race_revoke(&cl),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capabilities_race_revoke_postgres_three_processes() {
    let Some(cl) = pg_cluster(3).await else { return };
    bounded(
        "capabilities racing a revoke on postgres×3",
        capabilities_race_revoke(&cl),
    )
    .await;
}
