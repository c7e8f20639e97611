//! Hostile and malformed input through HTTP (SPEC §2, §3, §15 "Input"): every
//! one answers a clean 4xx problem, and the server keeps serving afterwards.
//! Against SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{fresh_pg, sqlite_db, tempdir, Http, Resp, Server};
use serde_json::{json, Value};

const NS: &str = "bad";

fn rec(key: &str) -> String {
    format!("/v1/ns/{NS}/records/{key}")
}

/// Collects failed expectations, so one run reports every refusal that is wrong
/// instead of stopping at the first.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Expects a problem answer of `status` and `code`, as problem+json.
    fn problem(&mut self, r: &Resp, status: u16, code: &str, what: &str) {
        let ct = r.header("content-type");
        if r.status != status || r.code() != Some(code) || ct != Some("application/problem+json") {
            self.failures.push(format!(
                "{what}: expected {status} {code} as problem+json, got {} ({ct:?}) {:.300}",
                r.status, r.text
            ));
        }
    }

    /// Expects a success status.
    fn status(&mut self, r: &Resp, status: u16, what: &str) -> bool {
        if r.status == status {
            return true;
        }
        self.failures.push(format!(
            "{what}: expected {status}, got {} {:.300}",
            r.status, r.text
        ));
        false
    }

    /// Expects `ok`.
    fn that(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    #[track_caller]
    fn finish(self, backend: &str) {
        assert!(
            self.failures.is_empty(),
            "[{backend}] {} failed expectation(s):\n- {}",
            self.failures.len(),
            self.failures.join("\n- ")
        );
    }
}

async fn raw(
    h: &Http,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Resp {
    let mut req = h.req(method, path).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    h.send(req).await
}

/// `depth` nested arrays around a number: `[[…[1]…]]`.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// `depth` nested objects: `{"a":{"a":…1…}}`.
fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

async fn bad_input(url: &str, backend: &str) {
    let h = Http::new(url);
    let mut c = Checks::default();
    let json = Some("application/json");

    // Malformed JSON, unknown fields and wrong types are table rows run in
    // process against the router: crates/server/tests/it/rules.rs.

    // Keys: 512 bytes is the limit, 600 is 400 (also raw, and inside a transaction).
    let key512 = "k".repeat(512);
    let r = h.json("PUT", &rec(&key512), &json!({"value": 1})).await;
    c.status(&r, 201, "512-byte key");
    let key600 = "k".repeat(600);
    let r = h.json("PUT", &rec(&key600), &json!({"value": 1})).await;
    c.problem(&r, 400, "invalid_request", "PUT of a 600-byte key");
    let r = h.get(&rec(&key600)).await;
    c.problem(&r, 400, "invalid_request", "GET of a 600-byte key");
    let r = h.send(h.req("DELETE", &rec(&key600))).await;
    c.problem(&r, 400, "invalid_request", "DELETE of a 600-byte key");
    let r = h
        .json(
            "POST",
            &format!("/v1/ns/{NS}/txn"),
            &json!({"success": [{"put": {"key": key600, "value": 1}}]}),
        )
        .await;
    c.problem(&r, 400, "invalid_request", "txn put of a 600-byte key");
    // 200 two-byte characters: 400 bytes, fine; 300 of them: 600 bytes, refused.
    let r = h
        .json("PUT", &rec(&"%C3%A9".repeat(200)), &json!({"value": 1}))
        .await;
    c.status(&r, 201, "400-byte key");
    let r = h
        .json("PUT", &rec(&"%C3%A9".repeat(300)), &json!({"value": 1}))
        .await;
    c.problem(
        &r,
        400,
        "invalid_request",
        "PUT of a 600-byte key of two-byte characters",
    );
    let r = h.json("PUT", &rec("a%FFb"), &json!({"value": 1})).await;
    c.problem(&r, 400, "invalid_request", "a key that is not UTF-8");
    let r = h.json("PUT", &rec("a%7Fb"), &json!({"value": 1})).await;
    c.problem(&r, 400, "invalid_request", "a key with DEL");

    // A body over 2 MiB: 413.
    let big = format!("{{\"value\":\"{}\"}}", "x".repeat(2 * 1024 * 1024 + 16));
    let r = raw(&h, "PUT", &rec("big"), json, big).await;
    c.problem(&r, 413, "payload_too_large", "a body over 2 MiB");
    // A value over 1 MiB in a body under 2 MiB: 413.
    let value = "x".repeat(1024 * 1024 + 16);
    let r = h.json("PUT", &rec("big"), &json!({"value": value})).await;
    c.problem(&r, 413, "payload_too_large", "a value over 1 MiB");
    let r = h
        .json(
            "POST",
            &format!("/v1/ns/{NS}/txn"),
            &json!({"success": [{"put": {"key": "big", "value": value}}]}),
        )
        .await;
    c.problem(&r, 413, "payload_too_large", "a txn put of a value over 1 MiB");
    let r = h.get(&rec("big")).await;
    c.problem(&r, 404, "not_found", "nothing of the refused writes");
    // A value just under 1 MiB is fine.
    let value = "x".repeat(1024 * 1024 - 64);
    let r = h.json("PUT", &rec("big"), &json!({"value": value})).await;
    c.status(&r, 201, "a value just under 1 MiB");
    // A merge patch growing it over 1 MiB: 413, nothing applied.
    let r = raw(
        &h,
        "PATCH",
        &rec("obj"),
        Some("application/merge-patch+json"),
        json!({"a": 1}).to_string(),
    )
    .await;
    c.problem(&r, 404, "not_found", "patch of an absent record");
    let r = h
        .json(
            "PUT",
            &rec("obj"),
            &json!({"value": {"a": "x".repeat(1024 * 1024 - 64)}}),
        )
        .await;
    c.status(&r, 201, "a value of 1 MiB less 64 bytes in an object");
    let r = raw(
        &h,
        "PATCH",
        &rec("obj"),
        Some("application/merge-patch+json"),
        json!({"b": "y".repeat(1024)}).to_string(),
    )
    .await;
    c.problem(
        &r,
        413,
        "payload_too_large",
        "a merge patch making the value over 1 MiB",
    );

    // Garbage cursors, wrong content types and invalid namespaces are table
    // rows run in process against the router: crates/server/tests/it/rules.rs.

    // Depth: a value nested 128 deep is accepted and reads back (127 as a control),
    // 129 deep is 400 and applies nothing.
    for (name, make) in [
        ("arrays", nested as fn(usize) -> String),
        ("objects", nested_objects),
    ] {
        for depth in [127, 128] {
            let key = format!("deep-{name}-{depth}");
            let text = make(depth);
            let expected = common::parse_deep(&text).unwrap();
            let r = raw(&h, "PUT", &rec(&key), json, format!("{{\"value\":{text}}}")).await;
            c.status(&r, 201, &format!("PUT of {name} nested {depth} deep"));
            let r = h.get(&rec(&key)).await;
            if c.status(&r, 200, &format!("GET of {name} nested {depth} deep")) {
                c.that(
                    r.body["value"] == expected,
                    format!("{name} nested {depth} deep reads back"),
                );
            }
            let txn_key = format!("{key}-txn");
            let r = raw(
                &h,
                "POST",
                &format!("/v1/ns/{NS}/txn"),
                json,
                format!("{{\"success\":[{{\"put\":{{\"key\":\"{txn_key}\",\"value\":{text}}}}}]}}"),
            )
            .await;
            c.status(&r, 200, &format!("txn put of {name} nested {depth} deep"));
            let r = h.get(&rec(&txn_key)).await;
            if c.status(
                &r,
                200,
                &format!("GET of {name} nested {depth} deep written by a txn"),
            ) {
                c.that(
                    r.body["value"] == expected,
                    format!("{name} nested {depth} deep (txn) reads back"),
                );
            }
        }
        let key = format!("deep-{name}-129");
        let text = make(129);
        let r = raw(&h, "PUT", &rec(&key), json, format!("{{\"value\":{text}}}")).await;
        c.problem(
            &r,
            400,
            "invalid_request",
            &format!("PUT of {name} nested 129 deep"),
        );
        let r = raw(
            &h,
            "POST",
            &format!("/v1/ns/{NS}/txn"),
            json,
            format!("{{\"success\":[{{\"put\":{{\"key\":\"{key}\",\"value\":{text}}}}}]}}"),
        )
        .await;
        c.problem(
            &r,
            400,
            "invalid_request",
            &format!("txn put of {name} nested 129 deep"),
        );
        let r = h.get(&rec(&key)).await;
        c.problem(
            &r,
            404,
            "not_found",
            &format!("{name} nested 129 deep: nothing applied"),
        );
    }
    // A merge patch producing a value 129 deep: refused; the record is unchanged.
    let r = raw(
        &h,
        "PUT",
        &rec("deep-merge"),
        json,
        format!("{{\"value\":{{\"a\":{}}}}}", nested(126)),
    )
    .await;
    c.status(&r, 201, "a value 127 deep");
    let r = raw(
        &h,
        "PATCH",
        &rec("deep-merge"),
        Some("application/merge-patch+json"),
        format!("{{\"b\":{}}}", nested(128)),
    )
    .await;
    c.problem(
        &r,
        400,
        "invalid_request",
        "a merge patch making the value 129 deep",
    );
    // Absurd nesting: a clean 400, no stack overflow.
    let r = raw(
        &h,
        "PUT",
        &rec("deeper"),
        json,
        format!("{{\"value\":{}}}", nested(100_000)),
    )
    .await;
    c.problem(&r, 400, "invalid_request", "100000 levels");
    let r = raw(
        &h,
        "POST",
        &format!("/v1/ns/{NS}/txn"),
        json,
        "[".repeat(1_000_000),
    )
    .await;
    c.problem(&r, 400, "invalid_request", "a million open brackets");

    // Query strings and malformed preconditions: table rows in
    // crates/server/tests/it/rules.rs.

    numbers_past_revisions(&h, &mut c).await;
    control_characters(&h, &mut c).await;
    unknown_query_parameters(&h, &mut c).await;

    // After all of it the server still serves.
    let r = h
        .json("PUT", &rec("after"), &json!({"value": {"still": "fine"}}))
        .await;
    c.status(&r, 201, "PUT after the bad input");
    let r = h.get(&rec("after")).await;
    c.status(&r, 200, "GET after the bad input");
    c.that(
        r.body["value"] == json!({"still": "fine"}),
        "the last PUT reads back",
    );
    let r = h.get("/healthz").await;
    c.status(&r, 200, "/healthz after the bad input");
    let r = h.get("/readyz").await;
    c.status(&r, 200, "/readyz after the bad input");
    let listed = h.get(&format!("/v1/ns/{NS}/records?prefix=after")).await;
    c.that(
        listed.body["records"][0]["value"] == json!({"still": "fine"}),
        format!("the last PUT is listed: {}", listed.text),
    );
    c.finish(backend);
}

/// 2^63 and 2^64-1: numbers a u64 holds that no revision can be.
const PAST_REVISIONS: [u64; 2] = [1 << 63, u64::MAX];

/// A number that cannot be a revision is 400 wherever a revision, version,
/// fence or cursor is expected (SPEC §3); the largest revision is accepted.
async fn numbers_past_revisions(h: &Http, c: &mut Checks) {
    let changes = format!("/v1/ns/{NS}/changes");
    for n in PAST_REVISIONS {
        for q in ["after", "cursor"] {
            let r = h.get(&format!("{changes}?{q}={n}")).await;
            c.problem(&r, 400, "invalid_request", &format!("/changes?{q}={n}"));
        }
        let r = h.get(&format!("/v1/ns/{NS}/watch?after={n}")).await;
        c.problem(&r, 400, "invalid_request", &format!("/watch?after={n}"));
        let r = h
            .send(
                h.req("GET", &format!("/v1/ns/{NS}/watch"))
                    .header("last-event-id", n.to_string()),
            )
            .await;
        c.problem(&r, 400, "invalid_request", &format!("Last-Event-ID: {n}"));
        let r = h
            .json("PUT", &rec("n"), &json!({"value": 1, "expected_version": n}))
            .await;
        c.problem(&r, 400, "invalid_request", &format!("PUT expected_version {n}"));
        let r = raw(
            h,
            "DELETE",
            &format!("{}?expected_version={n}", rec("n")),
            None,
            "",
        )
        .await;
        c.problem(
            &r,
            400,
            "invalid_request",
            &format!("DELETE ?expected_version={n}"),
        );
        let r = raw(
            h,
            "PATCH",
            &format!("{}?expected_version={n}", rec("n")),
            Some("application/merge-patch+json"),
            "{}",
        )
        .await;
        c.problem(
            &r,
            400,
            "invalid_request",
            &format!("PATCH ?expected_version={n}"),
        );
        let txn = format!("/v1/ns/{NS}/txn");
        for compare in [
            json!({"key": "n", "version": n}),
            json!({"fence": {"resource": "n", "token": n}}),
        ] {
            let r = h
                .json("POST", &txn, &json!({"compare": [compare], "success": []}))
                .await;
            c.problem(&r, 400, "invalid_request", &format!("txn compare {compare}"));
        }
        let r = h
            .json(
                "POST",
                &txn,
                &json!({"success": [{"incr": {"key": "n", "by": n}}]}),
            )
            .await;
        c.problem(&r, 400, "invalid_request", &format!("incr by {n}"));
        for path in [
            format!("/v1/ns/{NS}/leases/n/acquire"),
            format!("/v1/ns/{NS}/leases/n/renew"),
        ] {
            let r = h.json("POST", &path, &json!({"ttl_ms": n, "token": "t"})).await;
            c.problem(&r, 400, "invalid_request", &format!("{path} ttl_ms {n}"));
        }
        let r = h
            .json(
                "POST",
                &format!("/v1/ns/{NS}/leases/n/acquire"),
                &json!({"ttl_ms": 1000, "wait_ms": n}),
            )
            .await;
        c.problem(&r, 400, "invalid_request", &format!("acquire wait_ms {n}"));
        let r = h
            .json(
                "POST",
                &format!("/v1/ns/{NS}/idempotency/s/n"),
                &json!({"fingerprint": "f", "lock_ms": n}),
            )
            .await;
        c.problem(&r, 400, "invalid_request", &format!("idempotency lock_ms {n}"));
    }
    // The largest revision is a revision: nothing after it, no refusal.
    let max = i64::MAX;
    let r = h.get(&format!("{changes}?after={max}")).await;
    c.status(&r, 200, "/changes?after=i64::MAX");
    let r = h
        .json("PUT", &rec("n"), &json!({"value": 1, "expected_version": max}))
        .await;
    c.problem(&r, 409, "version_mismatch", "PUT expected_version i64::MAX");
    let r = h
        .json(
            "POST",
            &format!("/v1/ns/{NS}/txn"),
            &json!({"compare": [{"fence": {"resource": "n", "token": max}}], "success": []}),
        )
        .await;
    c.status(&r, 200, "a fence of i64::MAX");
}

/// Strings stored or compared as columns refuse control characters on every
/// backend; JSON values keep U+0000 exactly.
async fn control_characters(h: &Http, c: &mut Checks) {
    let ns = format!("/v1/ns/{NS}");
    let r = h
        .json(
            "POST",
            &format!("{ns}/leases/nul/acquire"),
            &json!({"ttl_ms": 1000, "holder": "a\u{0}b"}),
        )
        .await;
    c.problem(&r, 400, "invalid_request", "holder with U+0000");
    let r = h
        .json(
            "POST",
            &format!("{ns}/leases/nul/acquire"),
            &json!({"ttl_ms": 1000, "holder": "a\u{1b}b"}),
        )
        .await;
    c.problem(&r, 400, "invalid_request", "holder with ESC");
    let r = h
        .json(
            "POST",
            &format!("{ns}/leases/nul/release"),
            &json!({"token": "t\u{0}"}),
        )
        .await;
    c.problem(&r, 400, "invalid_request", "lease token with U+0000");
    let r = h
        .json(
            "POST",
            &format!("{ns}/idempotency/s/nul"),
            &json!({"fingerprint": "f\u{0}", "lock_ms": 1000}),
        )
        .await;
    c.problem(&r, 400, "invalid_request", "fingerprint with U+0000");
    for list in ["records", "feeds", "changes"] {
        let r = h.get(&format!("{ns}/{list}?prefix=a%00b")).await;
        c.problem(&r, 400, "invalid_request", &format!("{list}?prefix with U+0000"));
    }
    // JSON values and meta keep U+0000 exactly, on every backend.
    let value = json!({"s": "x\u{0}y", "\u{0}k": ["\u{0}"]});
    let r = h.json("PUT", &rec("nul-value"), &json!({"value": value})).await;
    c.status(&r, 201, "a value with U+0000");
    let r = h.get(&rec("nul-value")).await;
    c.that(
        r.body["value"] == value,
        format!("a value with U+0000 reads back: {}", r.text),
    );
    let r = h
        .json(
            "POST",
            &format!("{ns}/feeds/nul/entries"),
            &json!({"id": "e", "data": value}),
        )
        .await;
    c.status(&r, 201, "a feed entry with U+0000");
    let r = h.get(&format!("{ns}/feeds/nul/entries")).await;
    c.that(
        r.body["entries"][0]["data"] == value,
        format!("an entry with U+0000 reads back: {}", r.text),
    );
    let r = h
        .json("PUT", &format!("{ns}/gates/nul"), &json!({"meta": value}))
        .await;
    c.status(&r, 201, "gate meta with U+0000");
    let r = h.get(&format!("{ns}/gates/nul")).await;
    c.that(
        r.body["meta"] == value,
        format!("gate meta with U+0000 reads back: {}", r.text),
    );
}

/// Every route refuses query parameters it does not know (SPEC §15), and a
/// refused write changes nothing.
async fn unknown_query_parameters(h: &Http, c: &mut Checks) {
    let ns = format!("/v1/ns/{NS}");
    let value = json!({"value": 1});
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("PUT", rec("q?x=1"), Some(value.clone())),
        ("GET", rec("q?x=1"), None),
        ("PATCH", rec("q?x=1"), None),
        ("DELETE", rec("q?x=1"), None),
        ("GET", format!("{ns}/records?x=1"), None),
        (
            "POST",
            format!("{ns}/txn?x=1"),
            Some(json!({"success": [{"put": {"key": "q", "value": 1}}]})),
        ),
        (
            "POST",
            format!("{ns}/leases/q/acquire?x=1"),
            Some(json!({"ttl_ms": 1000})),
        ),
        ("GET", format!("{ns}/leases/q?x=1"), None),
        (
            "POST",
            format!("{ns}/feeds/q/entries?x=1"),
            Some(json!({"id": "e", "data": {}})),
        ),
        ("GET", format!("{ns}/feeds/q/entries?x=1"), None),
        ("PUT", format!("{ns}/gates/q?x=1"), Some(json!({}))),
        ("GET", format!("{ns}/gates/q?x=1"), None),
        ("GET", format!("{ns}/changes?x=1"), None),
        ("GET", format!("{ns}/watch?x=1"), None),
        ("GET", "/v1/info?x=1".to_owned(), None),
        ("GET", "/healthz?x=1".to_owned(), None),
    ];
    for (method, path, body) in cases {
        let r = match body {
            Some(b) => h.json(method, &path, &b).await,
            None => raw(h, method, &path, None, "").await,
        };
        c.problem(&r, 400, "invalid_request", &format!("{method} {path}"));
    }
    let r = h.get(&rec("q")).await;
    c.status(&r, 404, "a PUT refused for its query wrote nothing");
    let r = h.get(&format!("{ns}/leases/q")).await;
    c.that(
        r.body["fence"].is_null(),
        format!("an acquire refused for its query took nothing: {}", r.text),
    );
    let r = h.get(&format!("{ns}/feeds/q/entries")).await;
    c.that(
        r.body["entries"].as_array().is_some_and(Vec::is_empty),
        format!("an append refused for its query appended nothing: {}", r.text),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_sqlite() {
    let dir = tempdir();
    let server = Server::start(&sqlite_db(&dir));
    bad_input(&server.url, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_postgres() {
    let Some(pg) = fresh_pg().await else { return };
    let server = Server::start(&pg.url);
    bad_input(&server.url, "postgres").await;
    drop(server);
    drop(pg);
}
