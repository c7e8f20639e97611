// A runtime smoke test of the built client (dist/), in plain JavaScript so
// that Node, Deno and Bun all run it as is:
//   LOCKSTEP_URL=http://127.0.0.1:7707 node test/runtimes/smoke.mjs
//   LOCKSTEP_URL=... deno run --allow-net --allow-env test/runtimes/smoke.mjs
//   LOCKSTEP_URL=... bun test/runtimes/smoke.mjs
// Prints "smoke ok <runtime>" and exits 0, or throws.
import { Lockstep, LockstepError, ConflictError } from "../../dist/index.js";

const env = (k) => (typeof Deno !== "undefined" ? Deno.env.get(k) : globalThis.process?.env?.[k]);
const runtime = typeof Deno !== "undefined" ? "deno" : typeof Bun !== "undefined" ? "bun" : "node";
const check = (cond, what) => {
  if (!cond) throw new Error(`smoke (${runtime}): ${what}`);
};

const ls = new Lockstep({ url: env("LOCKSTEP_URL") ?? "http://127.0.0.1:7707", namespace: `smoke-${runtime}-${Date.now()}` });

// Records, conflicts, updateWith.
const p = await ls.put("k", { n: 1 }, { expectedVersion: 0 });
check(p.created, "put created");
const e = await ls.put("k", { n: 2 }, { expectedVersion: 0 }).catch((x) => x);
check(e instanceof LockstepError && e.code === "version_mismatch" && e.current.value.n === 1, "version_mismatch with current");
await Promise.all(Array.from({ length: 8 }, () => ls.updateWith("c", (n) => (n ?? 0) + 1, { attempts: 30 })));
check((await ls.get("c")).value === 8, "no lost update");
const c = await ls.updateWith("k", async (v) => { await ls.put("k", { n: 99 }); return { n: v.n + 1 }; }, { attempts: 1 }).catch((x) => x);
check(c instanceof ConflictError && c.remote.value.n === 99, "ConflictError with remote");

// Leases with keep-alive.
await ls.withLock("lock", { ttlMs: 1000 }, async (lease) => {
  await new Promise((r) => setTimeout(r, 1500));
  check(!lease.signal.aborted, "keep-alive renewed the lease");
});
check((await ls.lease("lock")).held === false, "released");

// Gates, tickets and a feed append in the same step.
const gate = ls.gate("g");
await gate.create();
const t = await gate.admit({ ticketId: "t1" });
await t.check();
await t.commit();
await t.finalize({ append: { feed: "f", data: { ok: true } } });
await gate.revoke();
const late = await gate.admit({ retry: false }).catch((x) => x);
check(late instanceof LockstepError && late.code === "gate_closed", "410 after revoke");
const it = ls.feed("f").entries();
const ids = [];
for await (const en of it) ids.push(en.id);
check(ids.join() === "t1" && it.unreadCount === 1, "feed entry with unread count");

// Watch over SSE.
const mark = (await ls.put("marker", 0)).version;
const ac = new AbortController();
const got = [];
const watching = (async () => {
  for await (const ev of ls.watch({ after: mark, prefix: "w/", signal: ac.signal })) {
    got.push(...ev.changes.map((ch) => ch.key));
    if (got.length === 3) ac.abort();
  }
})();
for (const k of ["w/1", "w/2", "w/3"]) await ls.put(k, 1);
const timer = setTimeout(() => ac.abort(), 10_000);
await watching;
clearTimeout(timer);
check(got.join() === "w/1,w/2,w/3", `watch saw ${got.join()}`);

console.log(`smoke ok ${runtime}`);
