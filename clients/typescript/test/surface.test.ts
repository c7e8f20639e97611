/**
 * The whole surface against a real `lockstep serve` on SQLite.
 */

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ConflictError, Lockstep, LockstepError, type Change, type ChangeEvent, type JsonPatchOp } from "../src/index.js";
import { SERVER_TEST, sqliteServer, uniqueNs, whenAborted, type Server } from "./harness.js";

let server: Server;
before(async () => {
  server = await sqliteServer();
});
after(async () => {
  await server?.stop();
});

const client = (ns = uniqueNs()) => new Lockstep({ url: server.url, namespace: ns });

test("info", SERVER_TEST, async () => {
  const info = await client().info();
  assert.equal(typeof info.version, "string");
  assert.equal(info.backend, "sqlite");
});

test("records: get/put/patch/delete with versions, conflicts and ETag semantics", SERVER_TEST, async () => {
  const ls = client();
  assert.equal(await ls.get("cart/42"), null);
  const created = await ls.put("cart/42", { items: ["apple"] }, { expectedVersion: 0 });
  assert.equal(created.created, true);
  assert.equal(created.key, "cart/42");
  const rec = await ls.get<{ items: string[] }>("cart/42");
  assert.deepEqual(rec?.value, { items: ["apple"] });
  assert.equal(rec?.version, created.version);

  const replaced = await ls.put("cart/42", { items: ["apple", "pear"] }, { expectedVersion: created.version });
  assert.equal(replaced.created, false);
  assert.ok(replaced.version > created.version);

  const e = await ls.put("cart/42", { items: ["fig"] }, { expectedVersion: created.version }).catch((x: unknown) => x);
  assert.ok(e instanceof LockstepError);
  assert.equal(e.status, 409);
  assert.equal(e.code, "version_mismatch");
  assert.deepEqual(e.current, { version: replaced.version, value: { items: ["apple", "pear"] } });

  const again = await ls.put("cart/42", 1, { expectedVersion: 0 }).catch((x: unknown) => x);
  assert.ok(again instanceof LockstepError && again.code === "version_mismatch");

  const merged = await ls.patch<{ items: string[]; note?: string }>("cart/42", { note: "gift" });
  assert.deepEqual(merged.value, { items: ["apple", "pear"], note: "gift" });
  const ops: JsonPatchOp[] = [{ op: "add", path: "/items/-", value: "fig" }];
  const patched = await ls.patch<{ items: string[] }>("cart/42", ops);
  assert.deepEqual(patched.value.items, ["apple", "pear", "fig"]);
  const testFail = await ls
    .patch("cart/42", [{ op: "test", path: "/note", value: "nope" }] as JsonPatchOp[])
    .catch((x: unknown) => x);
  assert.ok(testFail instanceof LockstepError && testFail.code === "patch_test_failed");
  assert.ok(testFail.current && testFail.current.version === patched.version);
  const stale = await ls.patch("cart/42", { x: 1 }, { expectedVersion: 1 }).catch((x: unknown) => x);
  assert.ok(stale instanceof LockstepError && stale.code === "version_mismatch");
  const absent = await ls.patch("nope", { x: 1 }).catch((x: unknown) => x);
  assert.ok(absent instanceof LockstepError && absent.code === "not_found" && absent.status === 404);

  const delStale = await ls.delete("cart/42", { expectedVersion: 1 }).catch((x: unknown) => x);
  assert.ok(delStale instanceof LockstepError && delStale.code === "version_mismatch");
  const del = await ls.delete("cart/42", { expectedVersion: patched.version });
  assert.equal(del.deleted, true);
  assert.deepEqual(await ls.delete("cart/42"), { key: "cart/42", deleted: false });
  assert.equal(await ls.get("cart/42"), null);
});

test("records: keys with slashes, spaces, unicode and percent signs round-trip", SERVER_TEST, async () => {
  const ls = client();
  for (const key of ["a/b/c", "with space", "ünï/cødé:1", "100%/x?y#z", "/leading"]) {
    await ls.put(key, key);
    assert.equal((await ls.get(key))?.value, key, key);
  }
});

test("records: ttl expiry, force, invalid input", SERVER_TEST, async () => {
  const ls = client();
  await ls.put("t", 1, { ttlMs: 150 });
  assert.ok((await ls.get("t"))?.expires_at);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await ls.get("t"), null);
  await ls.put("f", 1);
  const forced = await ls.put("f", 2, { expectedVersion: 999, force: true });
  assert.equal(forced.created, false);
  const bad = await ls.put("", 1).catch((x: unknown) => x);
  assert.ok(bad instanceof LockstepError && bad.status >= 400);
  const badNs = await new Lockstep({ url: server.url, namespace: "Bad NS" }).get("k").catch((x: unknown) => x);
  assert.ok(badNs instanceof LockstepError && badNs.code === "invalid_request");
});

test("records: list iterates every page in key order", SERVER_TEST, async () => {
  const ls = client();
  const keys = Array.from({ length: 25 }, (_, i) => `p/${String(i).padStart(2, "0")}`);
  await Promise.all(keys.map((k) => ls.put(k, k)));
  await ls.put("q/other", 0);
  const seen: string[] = [];
  for await (const r of ls.list({ prefix: "p/", pageSize: 7 })) seen.push(r.key);
  assert.deepEqual(seen, keys);
  const page = await ls.listPage({ prefix: "p/", pageSize: 10 });
  assert.equal(page.records.length, 10);
  assert.equal(typeof page.next_cursor, "string");
});

test("txn: create-or-increment, compares and results", SERVER_TEST, async () => {
  const ls = client();
  const run = () =>
    ls.txn({
      compare: [{ key: "orders", exists: true }],
      success: [{ incr: { key: "orders", by: 1 } }],
      failure: [{ put: { key: "orders", value: 1 } }],
    });
  const first = await run();
  assert.equal(first.succeeded, false);
  assert.deepEqual(first.failed, [0]);
  await Promise.all(Array.from({ length: 9 }, run));
  assert.equal((await ls.get("orders"))?.value, 10);
  const r = await ls.txn({ compare: [{ key: "orders", value: 10 }], success: [{ get: { key: "orders" } }, { delete: { key: "orders" } }] });
  assert.equal(r.succeeded, true);
  assert.deepEqual((r.results[0] as { value: number }).value, 10);
  assert.deepEqual(r.results[1], { key: "orders", deleted: true });
  assert.equal(typeof r.revision, "number");
});

test("updateWith: no lost update under concurrency; ConflictError with local and remote (seeds/004)", SERVER_TEST, async () => {
  const ls = client();
  await Promise.all(
    Array.from({ length: 20 }, () => ls.updateWith<number>("counter", (n) => (n ?? 0) + 1, { attempts: 50 })),
  );
  assert.equal((await ls.get("counter"))?.value, 20);

  // One attempt against a concurrent writer: the conflict carries both sides.
  await ls.put("doc", { title: "a" });
  const err = await ls
    .updateWith<{ title: string }>(
      "doc",
      async (cur) => {
        await ls.put("doc", { title: "theirs" });
        return { title: `${cur?.title}-mine` };
      },
      { attempts: 1 },
    )
    .catch((x: unknown) => x);
  assert.ok(err instanceof ConflictError);
  assert.equal(err.code, "version_mismatch");
  assert.deepEqual(err.local, { title: "a-mine" });
  assert.deepEqual((err.remote as { value: unknown }).value, { title: "theirs" });
  // Returning undefined writes nothing.
  const same = await ls.updateWith("doc", () => undefined);
  assert.equal(same.attempts, 0);
});

test("leases: acquire, lease_held, waitMs, fencing, release compare-and-clear", SERVER_TEST, async () => {
  const ls = client();
  const a = await ls.acquire("job", { ttlMs: 5000, holder: "worker-a" });
  assert.equal(typeof a.token, "string");
  assert.equal(a.holder, "worker-a");
  const held = await ls.acquire("job", { ttlMs: 5000, retry: false }).catch((x: unknown) => x);
  assert.ok(held instanceof LockstepError && held.code === "lease_held");
  assert.equal(held.holder, "worker-a");
  assert.equal((await ls.lease("job")).held, true);

  // A waiter gets it when `a` releases.
  const waiting = ls.acquire("job", { ttlMs: 5000, waitMs: 5000, holder: "worker-b" });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await a.release(), true);
  assert.equal(a.signal.aborted, true);
  assert.equal(a.lost, false);
  const b = await waiting;
  assert.ok(b.fence > a.fence);
  assert.equal(await a.release(), false, "a stale token releases nothing");

  // Fencing in a transaction.
  const ok = await ls.txn({ compare: [b.compare(), b.fenceCompare("res")], success: [{ put: { key: "res", value: "b" } }] });
  assert.equal(ok.succeeded, true);
  const staleFence = await ls.txn({ compare: [a.fenceCompare("res")], success: [{ put: { key: "res", value: "a" } }] });
  assert.equal(staleFence.succeeded, false);
  await b.renew();
  assert.equal(await b.release(), true);
  assert.equal((await ls.lease("job")).held, false);
});

test("leases: the keep-alive holds a lease past its TTL; a broken lease aborts the signal", SERVER_TEST, async () => {
  const ls = client();
  // Renewed every 500 ms; held for more than twice its TTL.
  const l = await ls.acquire("ka", { ttlMs: 1500 });
  await new Promise((r) => setTimeout(r, 3300));
  assert.equal(l.lost, false, `lost: ${String(l.lostReason)}`);
  assert.equal((await ls.lease("ka")).held, true);
  await ls.breakLease("ka");
  // The keep-alive may notice before breakLease's answer is read: no race.
  const reason = await whenAborted(l.signal);
  assert.ok(reason instanceof LockstepError && reason.code === "lease_lost");
  assert.equal(l.lost, true);
});

test("withLock serializes critical sections and releases in finally (seeds/002)", SERVER_TEST, async () => {
  const ls = client();
  let inside = 0;
  let maxInside = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      ls.withLock("settle", { ttlMs: 2000, waitMs: 20_000 }, async (lease) => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(lease.signal.aborted, false);
        order.push(i);
        inside--;
      }),
    ),
  );
  assert.equal(maxInside, 1);
  assert.equal(order.length, 6);
  await assert.rejects(
    ls.withLock("settle", { ttlMs: 2000 }, () => {
      throw new Error("boom");
    }),
    /boom/,
  );
  assert.equal((await ls.lease("settle")).held, false, "released after a throw");
});

test("feeds: idempotent append, paging, unread, markRead, configure, import, delete (seeds/000)", SERVER_TEST, async () => {
  const ls = client();
  const feed = ls.feed<{ n: number; ip?: string }>("recent/owner@x");
  const base = Date.parse("2026-01-01T00:00:00Z");
  const appended = await Promise.all(
    Array.from({ length: 30 }, (_, i) => feed.append({ id: `r${i}`, data: { n: i, ip: "1.2.3.4" }, at: new Date(base + i * 1000) })),
  );
  assert.ok(appended.every((a) => a.created));
  const dup = await feed.append({ id: "r3", data: { n: 999 } });
  assert.equal(dup.created, false);
  assert.equal(dup.data.n, 3);

  const it = feed.entries({ pageSize: 7 });
  const ids: string[] = [];
  for await (const e of it) ids.push(e.id);
  assert.equal(ids.length, 30);
  assert.equal(ids[0], "r29");
  assert.equal(it.unreadCount, 30);
  const top5 = feed.entries({ limit: 5, order: "asc" });
  const first: string[] = [];
  for await (const e of top5) first.push(e.id);
  assert.deepEqual(first, ["r0", "r1", "r2", "r3", "r4"]);

  // upTo: every entry at or older than r9.
  const r9 = appended[9]!;
  await feed.markRead({ upTo: r9.cursor });
  assert.equal(await feed.unreadCount(), 20);
  await feed.markRead({ ids: ["r29", "r28"] });
  await feed.markRead({ ids: ["r29", "r28"] });
  assert.equal(await feed.unreadCount(), 18);

  const cfg = await feed.configure({ maxEntries: 25, scrub: { fields: ["ip"], afterMs: 1 } });
  assert.equal(cfg.config.max_entries, 25);
  const page = await feed.page({ limit: 100 });
  assert.equal(page.entries.length, 25);
  assert.ok(page.entries.every((e) => !("ip" in e.data)));

  const legacy = [
    { id: "old1", at: "2025-01-01T00:00:00Z", data: { n: -1 } },
    { id: "old2", at: "2025-01-02T00:00:00Z", n: -2 },
    { id: "old1", at: "2025-01-01T00:00:00Z", data: { n: -1 } },
  ];
  const other = ls.feed("legacy");
  const imp = await other.import(legacy);
  assert.deepEqual([imp.imported, imp.skipped], [2, 1]);
  const again = await other.import(legacy);
  assert.equal(again.imported, 0);
  assert.equal(again.skipped, 3);
  const big = Array.from({ length: 2500 }, (_, i) => ({ id: `b${i}`, data: { i } }));
  const chunked = await ls.feed("big").import(big);
  assert.deepEqual([chunked.imported, chunked.skipped], [2500, 0]);
  assert.equal(await ls.feed("big").unreadCount(), 2500);
  await ls.feed("big").markRead({ all: true });
  assert.equal(await ls.feed("big").unreadCount(), 0);

  assert.equal((await other.deleteEntry("old1")).deleted, true);
  assert.equal((await other.deleteEntry("old1")).deleted, false);

  const feeds: string[] = [];
  for await (const f of ls.feeds()) feeds.push(f.feed);
  assert.deepEqual(feeds.sort(), ["big", "legacy", "recent/owner@x"]);
});

test("gates: lifecycle, tickets under an epoch, finalize with append exactly once (seeds/001)", SERVER_TEST, async () => {
  const ls = client();
  const gate = ls.gate("link/1");
  const g = await gate.create({ policy: { pending: "recover" }, meta: { owner: "o" } });
  assert.equal(g.created, true);
  assert.equal(g.state, "open");
  assert.equal(g.epoch, 1);
  assert.equal((await gate.create({ meta: { owner: "o2" } })).created, false);
  assert.equal((await gate.get())?.epoch, 1);
  assert.equal(await ls.gate("nope").get(), null);

  const t1 = await gate.admit({ ticketId: "up-1" });
  assert.equal(t1.created, true);
  assert.equal(t1.epoch, 1);
  assert.equal((await gate.admit({ ticketId: "up-1" })).created, false);
  await t1.check();
  await t1.commit();
  const t2 = await gate.admit({ ticketId: "up-2" });
  const t3 = await gate.admit();
  assert.equal(typeof t3.id, "string");
  await t3.abort();

  await gate.pause();
  const paused = await t2.check({ retry: false }).catch((x: unknown) => x);
  assert.ok(paused instanceof LockstepError && paused.status === 423 && paused.code === "gate_paused");
  const admitPaused = await gate.admit({ retry: false }).catch((x: unknown) => x);
  assert.ok(admitPaused instanceof LockstepError && admitPaused.code === "gate_paused");
  await gate.resume();
  await t2.check();

  const revoked = await gate.revoke();
  assert.equal(revoked.state, "revoked");
  assert.equal(revoked.epoch, 2);
  assert.equal(revoked.voided, 1, "up-2 was open");
  assert.equal(revoked.pending, 1, "up-1 was committed");
  const late = await gate.admit({ retry: false }).catch((x: unknown) => x);
  assert.ok(late instanceof LockstepError && late.status === 410 && late.code === "gate_closed");
  const lateCommit = await t2.commit().catch((x: unknown) => x);
  assert.ok(lateCommit instanceof LockstepError && lateCommit.code === "gate_closed");

  // recover: the committed ticket still finalizes, with its feed entry, once.
  const fin = await gate.ticket("up-1").finalize({ append: { feed: "recent", data: { up: 1 } } });
  assert.equal(fin.state, "finalized");
  assert.equal(fin.recovered, true);
  const fin2 = await gate.ticket("up-1").finalize({ append: { feed: "recent", data: { up: 1 } } });
  assert.equal(fin2.finalized_revision, fin.finalized_revision);
  assert.equal((await ls.feed("recent").page()).entries.length, 1);

  const states: Record<string, string> = {};
  for await (const t of gate.tickets()) states[t.ticket_id] = t.state;
  assert.equal(states["up-1"], "finalized");
  assert.equal(states["up-2"], "voided");
  assert.equal(states[t3.id], "aborted");
  const finalized: string[] = [];
  for await (const t of gate.tickets({ state: "finalized" })) finalized.push(t.ticket_id);
  assert.deepEqual(finalized, ["up-1"]);

  const bad = await gate.pause().catch((x: unknown) => x);
  assert.ok(bad instanceof LockstepError && bad.code === "gate_closed");
  assert.equal((await gate.reopen()).epoch, 3);
  assert.equal((await gate.delete()).state, "deleted");
});

test("idempotency store: begin, complete, replay, abandon, run (seeds/002)", SERVER_TEST, async () => {
  const ls = client();
  const store = ls.idempotency<{ settled: number }>("settle");
  const b = await store.begin("order-1", { fingerprint: "f1", lockMs: 5000 });
  assert.equal(b.state, "started");
  if (b.state !== "started") return;
  const inUse = await store.begin("order-1", { fingerprint: "f1", lockMs: 5000, retry: false }).catch((x: unknown) => x);
  assert.ok(inUse instanceof LockstepError && inUse.code === "idempotency_key_in_use");
  const reused = await store.begin("order-1", { fingerprint: "f2", lockMs: 5000 }).catch((x: unknown) => x);
  assert.ok(reused instanceof LockstepError && reused.code === "idempotency_key_reused" && reused.status === 422);
  await store.complete("order-1", b.token, { settled: 42 });
  assert.deepEqual(await store.begin("order-1", { fingerprint: "f1", lockMs: 5000 }), { state: "completed", response: { settled: 42 } });

  const b2 = await store.begin("order-2", { fingerprint: "f", lockMs: 5000 });
  assert.equal(b2.state, "started");
  if (b2.state === "started") await store.abandon("order-2", b2.token);
  assert.equal((await store.begin("order-2", { fingerprint: "f", lockMs: 5000 })).state, "started");

  // run: concurrent callers, one execution.
  let runs = 0;
  const results = await Promise.all(
    Array.from({ length: 5 }, () =>
      store.run("order-3", { fingerprint: "f", lockMs: 5000, retry: { attempts: 40, baseDelayMs: 20 } }, async () => {
        runs++;
        await new Promise((r) => setTimeout(r, 100));
        return { settled: 7 };
      }),
    ),
  );
  assert.equal(runs, 1);
  assert.ok(results.every((r) => r.response.settled === 7));
  assert.equal(results.filter((r) => !r.replayed).length, 1);
});

test("changes: pages the log; watch streams from now and resumes", SERVER_TEST, async () => {
  const ls = client();
  await ls.put("w/1", 1);
  await ls.put("w/2", 2);
  await ls.put("other", 3);
  const all: Change[] = [];
  for await (const c of ls.changes({ prefix: "w/", pageSize: 1 })) all.push(c);
  assert.deepEqual(all.map((c) => c.key), ["w/1", "w/2"]);
  assert.ok(all.every((c) => c.kind === "record" && c.op.length > 0));
  const after = all[0]!.revision;
  const rest: Change[] = [];
  for await (const c of ls.changes({ after, kind: "record" })) rest.push(c);
  assert.deepEqual(rest.map((c) => c.key), ["w/2", "other"]);

  // From the revision of a marker write: however late the stream connects,
  // it starts right there.
  const mark = (await ls.put("marker", 0)).version;
  const ac = new AbortController();
  const seen: ChangeEvent[] = [];
  const watching = (async () => {
    for await (const ev of ls.watch({ after: mark, prefix: "w/", signal: ac.signal })) {
      seen.push(ev);
      if (seen.length === 3) ac.abort();
    }
  })();
  for (let i = 3; i < 6; i++) await ls.put(`w/${i}`, i);
  await watching;
  assert.deepEqual(seen.flatMap((e) => e.changes.map((c) => c.key)), ["w/3", "w/4", "w/5"]);

  // From a revision: replays, in order, then stops on break.
  const replay: number[] = [];
  for await (const ev of ls.watch({ after, prefix: "w/" })) {
    replay.push(ev.revision);
    if (replay.length === 4) break;
  }
  assert.deepEqual(replay, [...replay].sort((x, y) => x - y));
  assert.equal(replay.length, 4);
});

test("bad input is a 400 LockstepError, not retried", SERVER_TEST, async () => {
  const ls = client();
  const e = await ls.acquire("x", { ttlMs: 1 }).catch((x: unknown) => x);
  assert.ok(e instanceof LockstepError && e.status === 400 && e.code === "invalid_request");
});

test("capabilities: an upload with a capability only; 403 elsewhere, 401 tampered, 410 once revoked (seeds/001, SPEC §11)", SERVER_TEST, async () => {
  const ns = uniqueNs("cap");
  const ls = client(ns);
  const gate = ls.gate("link/cap");
  await gate.create({ policy: { pending: "reject" } });
  await ls.gate("link/other").create();
  const otherTicket = await ls.gate("link/other").admit({ ticketId: "o-1" });

  const cap = await gate.capability({ ttlMs: 60_000 });
  assert.match(cap.capability, /^lsc_/);
  assert.equal(cap.epoch, 1);
  assert.equal(cap.gate, "link/cap");
  assert.deepEqual([...cap.ops].sort(), ["abort", "admit", "check", "commit", "finalize"]);
  assert.ok(Date.parse(cap.expiresAt) > Date.now());

  // The anonymous uploader holds the capability and nothing else.
  const up = Lockstep.forCapability(server.url, ns, cap.capability, { retry: false });
  const link = up.gate("link/cap");
  const t = await link.admit({ ticketId: "u-1", meta: { name: "a.jpg" } });
  assert.equal(t.epoch, 1);
  assert.equal((await t.check()).state, "open");
  assert.equal((await t.commit()).state, "committed");
  const fin = await t.finalize({ append: { feed: "recent/owner", data: { upload: "u-1" } } });
  assert.equal(fin.state, "finalized");
  assert.equal(typeof fin.revision, "number");
  // Repeats answer the same, byte for byte.
  assert.deepEqual(await link.ticket("u-1").finalize({ append: { feed: "recent/owner", data: { upload: "u-1" } } }), fin);
  assert.deepEqual((await ls.feed("recent/owner").page()).entries.map((e) => e.id), ["u-1"]);
  const aborted = await link.admit();
  assert.equal((await aborted.abort()).state, "aborted");

  // 403: another gate, or any route but the gate's ticket operations.
  const refusals: Array<[string, () => Promise<unknown>]> = [
    ["admit on another gate", () => up.gate("link/other").admit()],
    ["a ticket of another gate", () => up.gate("link/other").ticket(otherTicket.id).check()],
    ["read the gate", () => link.get()],
    ["list its tickets", () => link.tickets().next()],
    ["revoke the gate", () => link.revoke()],
    ["delete the gate", () => link.delete()],
    ["mint a capability", () => link.capability({ ttlMs: 60_000 })],
    ["read a record", () => up.get("k")],
    ["write a record", () => up.put("k", 1)],
    ["read the feed", () => up.feed("recent/owner").page()],
    ["the change log", () => up.changes().next()],
    ["the namespaces", () => up.namespaces().next()],
  ];
  for (const [what, p] of refusals) {
    const e = await p().catch((x: unknown) => x);
    assert.ok(e instanceof LockstepError && e.status === 403 && e.code === "forbidden", `${what}: ${String(e)}`);
  }
  // A capability narrowed to some operations: the others are 403.
  const narrow = await gate.capability({ ttlMs: 60_000, ops: ["admit", "check"] });
  assert.deepEqual([...narrow.ops].sort(), ["admit", "check"]);
  const nt = await Lockstep.forCapability(server.url, ns, narrow.capability, { retry: false }).gate("link/cap").admit({ ticketId: "n-1" });
  await nt.check();
  const notAllowed = await nt.commit().catch((x: unknown) => x);
  assert.ok(notAllowed instanceof LockstepError && notAllowed.status === 403 && notAllowed.code === "forbidden", String(notAllowed));

  // 401: tampered with (a claim changed, or the signature), or not a capability at all.
  const [claims, mac] = cap.capability.slice(4).split(".") as [string, string];
  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
  for (const bad of [`lsc_${flip(claims, 3)}.${mac}`, `lsc_${claims}.${flip(mac, 3)}`, `lsc_${claims}`]) {
    const e = await Lockstep.forCapability(server.url, ns, bad, { retry: false }).gate("link/cap").admit().catch((x: unknown) => x);
    assert.ok(e instanceof LockstepError && e.status === 401 && e.code === "unauthorized", String(e));
  }
  // Out of range TTLs are the owner's 400.
  const shortTtl = await gate.capability({ ttlMs: 10 }).catch((x: unknown) => x);
  assert.ok(shortTtl instanceof LockstepError && shortTtl.status === 400 && shortTtl.code === "invalid_request");

  // 410 once the owner revokes: the very next operation, whatever it is.
  const pending = await link.admit({ ticketId: "u-2" });
  await pending.check();
  const revoked = await gate.revoke();
  assert.equal(revoked.epoch, 2);
  for (const [what, p] of [
    ["check", () => pending.check()],
    ["commit", () => pending.commit()],
    ["finalize", () => pending.finalize()],
    ["abort", () => pending.abort()],
    ["admit", () => link.admit()],
    ["a finalized ticket's finalize", () => link.ticket("u-1").finalize()],
  ] as Array<[string, () => Promise<unknown>]>) {
    const e = await p().catch((x: unknown) => x);
    assert.ok(e instanceof LockstepError && e.status === 410 && e.code === "gate_closed", `${what}: ${String(e)}`);
  }
  // Minting on a revoked gate is 410 too; after reopen a new capability works
  // and the old one stays refused (its epoch is gone for good).
  const mintClosed = await gate.capability({ ttlMs: 60_000 }).catch((x: unknown) => x);
  assert.ok(mintClosed instanceof LockstepError && mintClosed.code === "gate_closed");
  await gate.reopen();
  const fresh = await gate.capability({ ttlMs: 60_000, ops: ["admit"] });
  assert.equal(fresh.epoch, 3);
  assert.equal((await Lockstep.forCapability(server.url, ns, fresh.capability).gate("link/cap").admit()).epoch, 3);
  const old = await link.admit().catch((x: unknown) => x);
  assert.ok(old instanceof LockstepError && old.code === "gate_closed");

  // The change log names the capability as the actor of its operations.
  const actors = new Map<string, string>();
  for await (const c of ls.changes({ kind: "gate", prefix: "link/cap" })) actors.set(`${c.revision}:${c.op}`, c.actor);
  const capOps = [...actors].filter(([, a]) => a === "capability:link/cap").map(([k]) => k.split(":")[1]);
  assert.deepEqual(capOps, ["admit", "commit", "finalize", "admit", "abort", "admit", "admit", "admit"]);
});

test("new reads: feed.get(), idempotency(scope).get(key), gate.delete() via DELETE, namespaces(), changes by cursor", SERVER_TEST, async () => {
  const ns = uniqueNs("reads");
  const ls = client(ns);
  const feed = ls.feed("inbox");
  assert.deepEqual(await feed.get(), { feed: "inbox", config: {}, own_config: false, entries: 0, unread_count: 0 });
  await feed.append({ id: "a", data: {} });
  await feed.append({ id: "b", data: {} });
  await feed.markRead({ ids: ["a"] });
  const cfg = await feed.configure({ maxEntries: 10 });
  assert.equal(typeof cfg.revision, "number");
  const info = await feed.info();
  assert.equal(info.entries, 2);
  assert.equal(info.unread_count, 1);
  assert.equal(info.config.max_entries, 10);
  assert.equal(info.own_config, true);

  const store = ls.idempotency<{ ok: boolean }>("pay");
  assert.equal(await store.get("k1"), null);
  const b = await store.begin("k1", { fingerprint: "f", lockMs: 60_000 });
  assert.equal(b.state, "started");
  const started = await store.get("k1");
  assert.ok(started?.state === "started" && started.stale === false && typeof started.locked_until === "string");
  assert.ok(!("token" in started), "never the owner's token");
  if (b.state === "started") {
    assert.equal(typeof b.revision, "number");
    assert.equal(typeof (await store.complete("k1", b.token, { ok: true })).revision, "number");
  }
  const completed = await store.get("k1");
  assert.ok(completed?.state === "completed");
  assert.deepEqual(completed.response, { ok: true });
  assert.equal(completed.scope, "pay");
  assert.equal(completed.key, "k1");

  const gate = ls.gate("g");
  await gate.create();
  await gate.admit({ ticketId: "t" });
  const deleted = await gate.delete();
  assert.equal(deleted.state, "deleted");
  assert.equal(deleted.voided, 1);
  assert.equal(deleted.epoch, 2);
  const repeat = await gate.delete();
  assert.equal(repeat.changed, false);
  assert.equal(repeat.revision, deleted.revision, "a repeat names the gate's last write");
  const log: Change[] = [];
  for await (const c of ls.changes({ kind: "gate" })) log.push(c);
  assert.equal(log.filter((c) => c.op === "delete").length, 1);

  const names: string[] = [];
  for await (const n of ls.namespaces({ pageSize: 1 })) names.push(n);
  assert.ok(names.includes(ns), `${ns} listed`);
  assert.deepEqual(names, [...names].sort());
  assert.equal(new Set(names).size, names.length);

  // /changes pages by `cursor=`: page size 1, every change once, in order.
  const one: Change[] = [];
  for await (const c of ls.changes({ pageSize: 1 })) one.push(c);
  const all: Change[] = [];
  for await (const c of ls.changes({ pageSize: 1000 })) all.push(c);
  assert.deepEqual(one, all);
  assert.ok(all.length >= 8);
});
