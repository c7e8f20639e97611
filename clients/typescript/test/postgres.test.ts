/**
 * Shared mode: 3 `lockstep serve` instances over one PostgreSQL schema, with
 * the work spread over them. Skipped when LOCKSTEP_TEST_DATABASE_URL is unset,
 * except with CI set: then it fails.
 */

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Lockstep, LockstepError, type ChangeEvent } from "../src/index.js";
import { SERVER_TEST, pgBaseUrl, pgCluster, uniqueNs, type Server } from "./harness.js";

const base = pgBaseUrl();
const skip = base === undefined ? "LOCKSTEP_TEST_DATABASE_URL is not set" : false;

let servers: Server[] = [];
let stop: (() => Promise<void>) | undefined;
before(async () => {
  if (!base) return;
  const c = await pgCluster(base, 3);
  servers = c.servers;
  stop = c.stop;
});
after(async () => {
  await stop?.();
});

/** One client per instance, all in one namespace. */
const clients = (ns = uniqueNs("pg")) => servers.map((s) => new Lockstep({ url: s.url, namespace: ns }));

test("three instances serve one database", { ...SERVER_TEST, skip }, async () => {
  assert.equal(servers.length, 3);
  const infos = await Promise.all(clients().map((c) => c.info()));
  assert.ok(infos.every((i) => i.backend === "postgres" || i.backend === "postgresql"), JSON.stringify(infos));
});

test("concurrent updateWith counters over 3 instances: no lost update", { ...SERVER_TEST, skip }, async () => {
  const cs = clients();
  const perInstance = 10;
  const results = await Promise.all(
    cs.flatMap((c) =>
      Array.from({ length: perInstance }, () =>
        c.updateWith<{ n: number }>("counter", (cur) => ({ n: (cur?.n ?? 0) + 1 }), { attempts: 200, retry: { attempts: 10 } }),
      ),
    ),
  );
  const total = cs.length * perInstance;
  const final = await cs[0]!.get<{ n: number }>("counter");
  assert.equal(final?.value.n, total, "every increment survived");
  // Each write applied at a distinct version, and each wrote a distinct count.
  assert.equal(new Set(results.map((r) => r.version)).size, total);
  assert.deepEqual(
    results.map((r) => r.value.n).sort((a, b) => a - b),
    Array.from({ length: total }, (_, i) => i + 1),
  );
  const conflicts = results.reduce((s, r) => s + r.attempts - 1, 0);
  console.log(`# pg updateWith: ${total} increments over 3 instances, final n=${final?.value.n}, ${conflicts} retried conflicts`);
});

test("concurrent feed appends over 3 instances: none lost, none duplicated", { ...SERVER_TEST, skip }, async () => {
  const cs = clients();
  const ids = Array.from({ length: 90 }, (_, i) => `res-${i}`);
  // Every id is appended from two instances at once (a duplicate finalization).
  const answers = await Promise.all(
    ids.flatMap((id, i) => [
      cs[i % 3]!.feed("recent/owner").append({ id, data: { i } }),
      cs[(i + 1) % 3]!.feed("recent/owner").append({ id, data: { i, dup: true } }),
    ]),
  );
  const created = answers.filter((a) => a.created).length;
  const seen: string[] = [];
  const it = cs[2]!.feed("recent/owner").entries({ pageSize: 17 });
  for await (const e of it) seen.push(e.id);
  assert.equal(created, ids.length, "one creation per id");
  assert.equal(seen.length, ids.length, "every entry visible");
  assert.equal(new Set(seen).size, ids.length, "no duplicate entry");
  assert.equal(it.unreadCount, ids.length);
  console.log(`# pg feed: ${answers.length} appends (${ids.length} ids, each twice) over 3 instances -> ${seen.length} entries, created=${created}`);
});

test("withLock over 3 instances: one holder at a time, fences increase", { ...SERVER_TEST, skip }, async () => {
  const cs = clients();
  let inside = 0;
  let maxInside = 0;
  const fences: number[] = [];
  await Promise.all(
    Array.from({ length: 9 }, (_, i) =>
      cs[i % 3]!.withLock("settle", { ttlMs: 5000, waitMs: 30_000 }, async (lease) => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        fences.push(lease.fence);
        await new Promise((r) => setTimeout(r, 15));
        inside--;
      }),
    ),
  );
  assert.equal(maxInside, 1);
  assert.deepEqual(fences, [...fences].sort((a, b) => a - b));
  assert.equal(new Set(fences).size, 9);
});

test("a revoke racing admits over 3 instances: nothing admitted after it", { ...SERVER_TEST, skip }, async () => {
  const cs = clients();
  const gate = (i: number) => cs[i % 3]!.gate("link");
  await gate(0).create();
  let revokedAt = Infinity;
  const outcomes: Array<{ sentAt: number; ok: boolean; code?: string }> = [];
  const admit = async (i: number) => {
    const sentAt = Date.now();
    try {
      await gate(i).admit({ ticketId: `t${i}`, retry: false });
      outcomes.push({ sentAt, ok: true });
    } catch (e) {
      assert.ok(e instanceof LockstepError);
      outcomes.push({ sentAt, ok: false, code: e.code });
    }
  };
  // 30 admits 6 ms apart race the revoke; 30 more start once it answered.
  const early = Array.from({ length: 30 }, async (_, i) => {
    await new Promise((r) => setTimeout(r, i * 6));
    await admit(i);
  });
  await new Promise((r) => setTimeout(r, 80));
  const revoked = await gate(1).revoke();
  revokedAt = Date.now();
  await Promise.all([...early, ...Array.from({ length: 30 }, (_, j) => admit(30 + j))]);
  const late = outcomes.filter((o) => o.sentAt > revokedAt);
  assert.ok(late.every((o) => !o.ok && o.code === "gate_closed"), JSON.stringify(late));
  const admitted = outcomes.filter((o) => o.ok).length;
  assert.equal(revoked.voided, admitted, "every ticket admitted before the revoke was voided by it");
  console.log(`# pg revoke race: ${admitted} admitted before, ${outcomes.length - admitted} refused (410), ${late.length} sent after the revoke`);
});

test("a capability minted on one instance works on the others; a revoke on a third closes it on all", { ...SERVER_TEST, skip }, async () => {
  const ns = uniqueNs("pgcap");
  const cs = clients(ns);
  await cs[0]!.gate("link").create();
  const { capability } = await cs[0]!.gate("link").capability({ ttlMs: 60_000 });
  // The uploaders, one per instance, hold the capability only.
  const ups = servers.map((s) => Lockstep.forCapability(s.url, ns, capability, { retry: false }));
  const tickets = await Promise.all(ups.map((u, i) => u.gate("link").admit({ ticketId: `u${i}` })));
  // Each ticket's steps on another instance than its admit's.
  for (const [i, t] of tickets.entries()) {
    const link = ups[(i + 1) % 3]!.gate("link");
    await link.ticket(t.id).check();
    await link.ticket(t.id).commit();
  }
  await ups[2]!.gate("link").ticket("u0").finalize({ append: { feed: "recent", data: { upload: "u0" } } });
  const forbidden = await ups[1]!.get("k").catch((x: unknown) => x);
  assert.ok(forbidden instanceof LockstepError && forbidden.code === "forbidden");
  const revoked = await cs[2]!.gate("link").revoke();
  assert.equal(revoked.pending, 2);
  // The next operation, on any instance, is 410.
  const refused = await Promise.all(
    ups.flatMap((u) => [u.gate("link").admit(), u.gate("link").ticket("u1").finalize()].map((p) => p.catch((x: unknown) => x))),
  );
  assert.ok(refused.every((e) => e instanceof LockstepError && e.status === 410 && e.code === "gate_closed"), String(refused));
  let byCapability = 0;
  for await (const c of cs[1]!.changes({ kind: "gate", prefix: "link" })) {
    if (c.actor === "capability:link") {
      byCapability++;
      assert.ok(c.revision < revoked.revision, "nothing of the capability after the revoke");
    }
  }
  assert.equal(byCapability, 3 + 3 + 1, "3 admits, 3 commits, 1 finalize");
  console.log(`# pg capability over 3 instances: ${byCapability} operations accepted before the revoke, ${refused.length} refused (410) after it`);
});

test("watch on one instance sees the writes of the others in order, once each", { ...SERVER_TEST, skip }, async () => {
  const cs = clients();
  const ac = new AbortController();
  const events: ChangeEvent[] = [];
  const writes = 45;
  const mark = (await cs[0]!.put("marker", 0)).version;
  const watching = (async () => {
    for await (const ev of cs[0]!.watch({ after: mark, prefix: "w/", signal: ac.signal })) {
      events.push(ev);
      if (events.reduce((n, e) => n + e.changes.length, 0) >= writes) ac.abort();
    }
  })();
  const answers = await Promise.all(Array.from({ length: writes }, (_, i) => cs[(i % 2) + 1]!.put(`w/${i}`, i)));
  const timer = setTimeout(() => ac.abort(), 15_000);
  await watching;
  clearTimeout(timer);
  const revisions = events.map((e) => e.revision);
  assert.deepEqual(revisions, [...revisions].sort((a, b) => a - b), "in order");
  assert.equal(new Set(revisions).size, revisions.length, "each revision once");
  const keys = events.flatMap((e) => e.changes.map((c) => c.key));
  assert.equal(keys.length, writes);
  assert.deepEqual(new Set(keys), new Set(answers.map((a) => a.key)));
});

test("an Idempotency-Key replayed on another instance applies once", { ...SERVER_TEST, skip }, async () => {
  const cs = clients();
  const key = `idem-${Date.now()}`;
  const a = await cs[0]!.put("once", { v: 1 }, { idempotencyKey: key });
  const b = await cs[1]!.put("once", { v: 1 }, { idempotencyKey: key });
  assert.deepEqual(b, a);
  const reused = await cs[2]!.put("once", { v: 2 }, { idempotencyKey: key }).catch((x: unknown) => x);
  assert.ok(reused instanceof LockstepError && reused.code === "idempotency_key_reused");
  let n = 0;
  for await (const c of cs[2]!.changes({ prefix: "once" })) if (c.key === "once") n++;
  assert.equal(n, 1);
});
