/**
 * Unit tests without a server: the SSE parser, the retry policy and the
 * idempotency keys it sends, problem documents, and the watch's reconnection
 * against a scripted `fetch`.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { Lockstep, LockstepError, SseParser, type ChangeEvent } from "../src/index.js";
import { backoffDelay, parseRetryAfter } from "../src/http.js";
import { whenAborted } from "./harness.js";

test("SSE parser: fields, comments, CRLF/CR/LF, chunk boundaries, multi-line data", () => {
  const p = new SseParser();
  const text = ": hello\r\nid: 7\r\nevent: change\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nid:8\nevent:change\ndata:x\n\n:c\rdata: y\r\r";
  const out: unknown[] = [];
  // Feed it one character at a time: every boundary must be handled.
  for (const ch of text) out.push(...p.push(ch));
  assert.deepEqual(out, [
    { comment: "hello" },
    { event: "change", data: '{"a":\n1}', id: "7", retry: undefined },
    { event: "change", data: "x", id: "8", retry: undefined },
    { comment: "c" },
    { event: "message", data: "y", id: undefined, retry: undefined },
  ]);
});

test("SSE parser: an event without data is not dispatched; retry is parsed", () => {
  const p = new SseParser();
  assert.deepEqual(p.push("event: x\n\nretry: 1500\ndata\n\n"), [
    { event: "message", data: "", id: undefined, retry: 1500 },
  ]);
});

test("Retry-After: seconds and HTTP dates", () => {
  assert.equal(parseRetryAfter("2"), 2000);
  assert.equal(parseRetryAfter(null), undefined);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:03 GMT", now), 3000);
  assert.equal(parseRetryAfter("soon"), undefined);
});

test("backoff: full jitter under a doubling ceiling; Retry-After wins", () => {
  const policy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 };
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, policy);
    assert.ok(d >= 0 && d <= 800, `delay ${d}`);
    assert.ok(backoffDelay(10, policy) <= 1000);
    const r = backoffDelay(0, policy, 2000);
    assert.ok(r >= 2000 && r <= 2100);
    assert.ok(backoffDelay(0, policy, 60_000) <= 5100);
  }
});

type Call = { url: string; init: RequestInit };

/** A fetch that answers from a script and records the calls. */
function scripted(answers: Array<(init: RequestInit) => Response | Promise<Response>>): { fetch: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  const f = async (input: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(input), init: init ?? {} });
    const next = answers.shift();
    if (!next) throw new Error("no more scripted answers");
    return next(init ?? {});
  };
  return { fetch: f as typeof fetch, calls };
}

const problem = (status: number, code: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  () =>
    new Response(JSON.stringify({ type: `urn:lockstep:problem:${code}`, title: code, status, detail: "d", code, ...extra }), {
      status,
      headers: { "content-type": "application/problem+json", ...headers },
    });
const ok = (body: unknown, status = 200, headers: Record<string, string> = {}) => () =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const header = (c: Call, name: string) => new Headers(c.init.headers).get(name);

test("a write retried after 503, 423, 429, 409 in_use and a network error keeps one Idempotency-Key", async () => {
  const { fetch, calls } = scripted([
    problem(503, "unavailable", {}, { "retry-after": "0" }),
    problem(423, "gate_paused"),
    problem(429, "too_many_requests", {}, { "retry-after": "0" }),
    problem(409, "idempotency_key_in_use"),
    () => {
      throw new TypeError("fetch failed");
    },
    ok({ key: "k", version: 9, revision: 9 }, 201),
  ]);
  const ls = new Lockstep({ url: "http://x.invalid/", namespace: "n", fetch, token: "s3cret", retry: { attempts: 6, baseDelayMs: 1 } });
  const r = await ls.put("a/b", { x: 1 }, { expectedVersion: 0 });
  assert.deepEqual(r, { key: "k", version: 9, revision: 9, created: true });
  assert.equal(calls.length, 6);
  const keys = new Set(calls.map((c) => header(c, "idempotency-key")));
  assert.equal(keys.size, 1);
  assert.match([...keys][0]!, /^[0-9a-f-]{36}$/);
  for (const c of calls) {
    assert.equal(c.url, "http://x.invalid/v1/ns/n/records/a%2Fb");
    assert.equal(header(c, "authorization"), "Bearer s3cret");
    assert.equal(header(c, "content-type"), "application/json");
    assert.equal(c.init.body, JSON.stringify({ value: { x: 1 }, expected_version: 0 }));
  }
});

test("two calls get two keys; a caller's key is sent as given", async () => {
  const { fetch, calls } = scripted([ok({ released: true }), ok({ released: true }), ok({ released: true })]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  await ls.txn({});
  await ls.txn({});
  await ls.txn({}, { idempotencyKey: "job-17" });
  assert.notEqual(header(calls[0]!, "idempotency-key"), header(calls[1]!, "idempotency-key"));
  assert.equal(header(calls[2]!, "idempotency-key"), "job-17");
  assert.equal(header(calls[0]!, "authorization"), null);
});

test("non-retryable refusals are thrown at once with the problem's members", async () => {
  const { fetch, calls } = scripted([
    problem(409, "version_mismatch", { current: { version: 4, value: "v" } }),
    problem(409, "lease_held", { holder: "w1", expires_at: "2026-01-01T00:00:00Z", waiters: 2 }),
  ]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  const e1 = await ls.put("k", 1, { expectedVersion: 3 }).catch((e: unknown) => e);
  assert.ok(e1 instanceof LockstepError);
  assert.equal(e1.status, 409);
  assert.equal(e1.code, "version_mismatch");
  assert.equal(e1.detail, "d");
  assert.deepEqual(e1.current, { version: 4, value: "v" });
  const e2 = await ls.acquire("l", { ttlMs: 1000 }).catch((e: unknown) => e);
  assert.ok(e2 instanceof LockstepError);
  assert.equal(e2.code, "lease_held");
  assert.equal(e2.holder, "w1");
  assert.equal(e2.waiters, 2);
  assert.equal(e2["expires_at"], "2026-01-01T00:00:00Z");
  assert.equal(calls.length, 2);
});

test("retries give up after `attempts`; `retry: false` sends once", async () => {
  const { fetch, calls } = scripted(Array.from({ length: 10 }, () => problem(503, "unavailable")));
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch, retry: { attempts: 3, baseDelayMs: 1 } });
  await assert.rejects(ls.get("k"), (e: unknown) => e instanceof LockstepError && e.code === "unavailable");
  assert.equal(calls.length, 3);
  await assert.rejects(ls.get("k", { retry: false }), LockstepError);
  assert.equal(calls.length, 4);
});

test("a non-JSON error page still becomes a LockstepError", async () => {
  const { fetch } = scripted([() => new Response("<html>bad gateway</html>", { status: 502 })]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  await assert.rejects(ls.get("k"), (e: unknown) => e instanceof LockstepError && e.status === 502 && /bad gateway/.test(e.detail));
});

test("aborting a call stops its retries", async () => {
  const { fetch, calls } = scripted(Array.from({ length: 10 }, () => problem(503, "unavailable", {}, { "retry-after": "5" })));
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error("stop")), 50);
  const t0 = Date.now();
  await assert.rejects(ls.get("k", { signal: ac.signal }), /stop/);
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(calls.length, 1);
});

/** An SSE response whose body is `chunks`, then ends (or errors). */
function sse(chunks: string[], fail = false): () => Response {
  return () =>
    new Response(
      new ReadableStream<Uint8Array>({
        // One chunk per read, then the end (or a dropped connection).
        pull(c) {
          const s = chunks.shift();
          if (s !== undefined) c.enqueue(new TextEncoder().encode(s));
          else if (fail) c.error(new TypeError("connection reset"));
          else c.close();
        },
      }),
      { status: 200, headers: { "content-type": "text/event-stream" } },
    );
}
const ev = (rev: number) => `id: ${rev}\nevent: change\ndata: ${JSON.stringify({ revision: rev, changes: [] })}\n\n`;

test("watch reconnects with Last-Event-ID and never yields a revision twice", async () => {
  const { fetch, calls } = scripted([
    sse([": watching after revision 10\n\n", ev(11), ev(12)], true),
    problem(503, "unavailable", {}, { "retry-after": "0" }),
    // A server may resend what it already sent: it must be skipped.
    sse([ev(12), ev(13)]),
    sse([`event: error\ndata: ${JSON.stringify({ status: 410, code: "compacted", detail: "gone" })}\n\n`]),
  ]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch, retry: { baseDelayMs: 1 } });
  const seen: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const e of ls.watch({ prefix: "p" })) seen.push((e as ChangeEvent).revision);
    })(),
    (e: unknown) => e instanceof LockstepError && e.code === "compacted",
  );
  assert.deepEqual(seen, [11, 12, 13]);
  assert.equal(header(calls[0]!, "last-event-id"), null);
  assert.equal(header(calls[0]!, "accept"), "text/event-stream");
  assert.equal(header(calls[1]!, "last-event-id"), "12");
  assert.equal(header(calls[2]!, "last-event-id"), "12");
  assert.equal(header(calls[3]!, "last-event-id"), "13");
  assert.match(calls[3]!.url, /\/v1\/ns\/n\/watch\?after=13&prefix=p$/);
});

test("watch without `after` resumes from where the server started it", async () => {
  const { fetch, calls } = scripted([sse([": watching after revision 41\n\n"]), sse([ev(42)])]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch, retry: { baseDelayMs: 1 } });
  for await (const e of ls.watch()) {
    assert.equal(e.revision, 42);
    break;
  }
  assert.equal(header(calls[1]!, "last-event-id"), "41");
});

test("idempotency keys are UUIDs, also without crypto.randomUUID", async () => {
  const { randomKey } = await import("../src/http.js");
  const saved = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  try {
    Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true });
    const keys = new Set(Array.from({ length: 100 }, randomKey));
    assert.equal(keys.size, 100);
    for (const k of keys) assert.match(k, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  } finally {
    if (saved) Object.defineProperty(globalThis, "crypto", saved);
  }
  assert.match(randomKey(), /^[0-9a-f-]{36}$/);
});

/** An answer that never comes: it fails only when the request is aborted. */
const hang = (init: RequestInit) =>
  new Promise<Response>((_, reject) => {
    init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
  });

test("an attempt that times out is retried with the same key", async () => {
  const { fetch, calls } = scripted([hang, ok({ key: "k", version: 2, revision: 2 })]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch, timeoutMs: 50, retry: { baseDelayMs: 1 } });
  const r = await ls.put("k", 1);
  assert.equal(r.version, 2);
  assert.equal(calls.length, 2);
  assert.equal(header(calls[0]!, "idempotency-key"), header(calls[1]!, "idempotency-key"));
  const { fetch: f2 } = scripted([hang]);
  const ls2 = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch: f2, retry: false });
  await assert.rejects(ls2.get("k", { timeoutMs: 30 }), (e: unknown) => e instanceof LockstepError && e.code === "timeout");
});

const leaseBody = { name: "l", token: "tok", fence: 5, holder: null, acquired_at: "2026-01-01T00:00:00Z", expires_at: "2026-01-01T00:00:01Z" };

test("lease keep-alive: transient failures are retried; a refusal aborts the signal", async () => {
  const { fetch, calls } = scripted([
    ok(leaseBody),
    problem(503, "unavailable"),
    () => {
      throw new TypeError("fetch failed");
    },
    ok(leaseBody),
    problem(409, "lease_lost"),
  ]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  // The keep-alive's timers do not hold the process open by themselves.
  const hold = setInterval(() => {}, 1000);
  const lease = await ls.acquire("l", { ttlMs: 600, renewEveryMs: 40 });
  const reason = await whenAborted(lease.signal);
  assert.ok(reason instanceof LockstepError && reason.code === "lease_lost");
  assert.equal(lease.lost, true);
  assert.equal(calls.length, 5);
  assert.ok(calls.slice(1).every((c) => c.url.endsWith("/leases/l/renew")));
  assert.equal(calls[1]!.init.body, JSON.stringify({ token: "tok", ttl_ms: 600 }));
  assert.throws(() => lease.throwIfLost(), LockstepError);
  clearInterval(hold);
});

test("lease keep-alive: no renewal before the TTL runs out means lost", async () => {
  const answers: Array<(init: RequestInit) => Response | Promise<Response>> = [ok(leaseBody)];
  for (let i = 0; i < 100; i++) answers.push(problem(503, "unavailable"));
  const { fetch } = scripted(answers);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  const hold = setInterval(() => {}, 1000);
  const t0 = Date.now();
  const lease = await ls.acquire("l", { ttlMs: 300, renewEveryMs: 100 });
  await whenAborted(lease.signal);
  clearInterval(hold);
  const took = Date.now() - t0;
  assert.ok(took >= 290 && took < 1000, `lost after ${took} ms`);
  assert.match(String((lease.lostReason as LockstepError).detail), /expired/);
});

test("withLock releases in finally and reports a lease lost meanwhile", async () => {
  const { fetch, calls } = scripted([ok(leaseBody), problem(409, "lease_lost"), ok({ released: false })]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  const hold = setInterval(() => {}, 1000);
  try {
    await assert.rejects(
      ls.withLock("l", { ttlMs: 600, renewEveryMs: 20 }, async (lease) => {
        await whenAborted(lease.signal);
        return "done";
      }),
      (e: unknown) => e instanceof LockstepError && e.code === "lease_lost",
    );
  } finally {
    clearInterval(hold);
  }
  assert.ok(calls[2]!.url.endsWith("/leases/l/release"));
});

test("lease keep-alive: after a slow acquire the first renewal comes before the deadline", async () => {
  const slow = async () => {
    await new Promise((r) => setTimeout(r, 300));
    return ok(leaseBody)();
  };
  const { fetch, calls } = scripted([slow, ok(leaseBody), ok(leaseBody), ok(leaseBody), ok(leaseBody), ok(leaseBody)]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  const hold = setInterval(() => {}, 1000);
  try {
    // Renewing every 10 s would be far too late for a 600 ms TTL of which
    // 300 ms went by before the answer.
    const lease = await ls.acquire("l", { ttlMs: 600, renewEveryMs: 10_000 });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(lease.lost, false, String(lease.lostReason));
    assert.ok(calls.length >= 2, "renewed early");
    await lease.release().catch(() => undefined);
  } finally {
    clearInterval(hold);
  }
});

test("lease keep-alive: an acquire that waited longer than the TTL renews at once; the server decides", async () => {
  const waited = async () => {
    await new Promise((r) => setTimeout(r, 400));
    return ok(leaseBody)();
  };
  const { fetch, calls } = scripted([waited, ok(leaseBody), ok(leaseBody), ok(leaseBody), ok(leaseBody), ok(leaseBody), ok(leaseBody)]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  const hold = setInterval(() => {}, 1000);
  try {
    const lease = await ls.acquire("l", { ttlMs: 300, waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(lease.lost, false, String(lease.lostReason));
    assert.ok(calls.length >= 2 && calls[1]!.url.endsWith("/renew"));
    lease.stop();
  } finally {
    clearInterval(hold);
  }
  // ... and when the server says it expired meanwhile, it is lost.
  const s2 = scripted([waited, problem(409, "lease_lost")]);
  const ls2 = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch: s2.fetch });
  const hold2 = setInterval(() => {}, 1000);
  try {
    const lease = await ls2.acquire("l", { ttlMs: 300, waitMs: 5000 });
    const reason = await whenAborted(lease.signal);
    assert.ok(reason instanceof LockstepError && reason.code === "lease_lost");
  } finally {
    clearInterval(hold2);
  }
});

test("capabilities: minted camelCase, sent as the bearer; 401, 403 and 410 are refusals not retried", async () => {
  const { fetch, calls } = scripted([
    ok({ capability: "lsc_abc.def", expires_at: "2026-01-01T00:00:00Z", epoch: 3, gate: "link/1", ops: ["admit", "check"] }, 201),
    problem(401, "unauthorized", {}, { "www-authenticate": 'Bearer error="invalid_token"' }),
    problem(403, "forbidden"),
    problem(410, "gate_closed"),
    // A 401 without a problem document (a proxy's) still has its code.
    () => new Response("no", { status: 401 }),
  ]);
  const owner = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch, token: "lst_owner" });
  const cap = await owner.gate("link/1").capability({ ttlMs: 60_000, ops: ["admit", "check"] });
  assert.deepEqual(cap, { capability: "lsc_abc.def", expiresAt: "2026-01-01T00:00:00Z", epoch: 3, gate: "link/1", ops: ["admit", "check"] });
  assert.equal(calls[0]!.url, "http://x.invalid/v1/ns/n/gates/link%2F1/capabilities");
  assert.deepEqual(JSON.parse(String(calls[0]!.init.body)), { ttl_ms: 60_000, ops: ["admit", "check"] });
  assert.equal(header(calls[0]!, "authorization"), "Bearer lst_owner");

  const up = Lockstep.forCapability("http://x.invalid", "n", cap.capability, { fetch, retry: { attempts: 5, baseDelayMs: 1 } });
  for (const [status, code] of [[401, "unauthorized"], [403, "forbidden"], [410, "gate_closed"], [401, "unauthorized"]] as const) {
    const n = calls.length;
    const e = await up.gate("link/1").admit().catch((x: unknown) => x);
    assert.ok(e instanceof LockstepError && e.status === status && e.code === code, String(e));
    assert.equal(calls.length, n + 1, "not retried");
    assert.equal(header(calls[n]!, "authorization"), "Bearer lsc_abc.def");
    assert.equal(calls[n]!.url, "http://x.invalid/v1/ns/n/gates/link%2F1/tickets");
  }
});

test("changes: the first page `after`, the next ones by `cursor=`", async () => {
  const change = (revision: number) => ({ revision, index: 0, kind: "record", key: "k", op: "put", actor: "a", forced: false, at: "t" });
  const { fetch, calls } = scripted([
    ok({ changes: [change(5), change(6)], next_cursor: "6" }),
    ok({ changes: [change(7)], next_cursor: null }),
  ]);
  const ls = new Lockstep({ url: "http://x.invalid", namespace: "n", fetch });
  const seen: number[] = [];
  for await (const c of ls.changes({ after: 4, prefix: "k", pageSize: 2 })) seen.push(c.revision);
  assert.deepEqual(seen, [5, 6, 7]);
  assert.equal(calls[0]!.url, "http://x.invalid/v1/ns/n/changes?after=4&prefix=k&limit=2");
  assert.equal(calls[1]!.url, "http://x.invalid/v1/ns/n/changes?cursor=6&prefix=k&limit=2");
});
