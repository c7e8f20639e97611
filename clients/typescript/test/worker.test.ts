/**
 * The client inside a real Workers runtime: worker/worker.ts is bundled with
 * esbuild and run in workerd by miniflare — two instances, standing for two
 * isolates — and driven with concurrent requests through the stories of
 * seeds/000 and seeds/001 (and 002's withLock + idempotent settle). The
 * stories run against `lockstep serve` on SQLite, and again with each isolate
 * talking to its own instance of two over one PostgreSQL database (when
 * LOCKSTEP_TEST_DATABASE_URL is set; mandatory with CI).
 */

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { Lockstep } from "../src/index.js";
import { SERVER_TEST, PACKAGE_DIR, pgBaseUrl, pgCluster, sqliteServer, uniqueNs } from "./harness.js";

/** One backend the Worker stories run against. */
interface Backend {
  name: string;
  skip: string | false;
  /** The server URL of each isolate, and how to stop them. */
  start: () => Promise<{ urls: string[]; stop: () => Promise<void> }>;
}

const pgBase = pgBaseUrl();
const backends: Backend[] = [
  {
    name: "SQLite",
    skip: false,
    start: async () => {
      const s = await sqliteServer();
      return { urls: [s.url, s.url], stop: s.stop };
    },
  },
  {
    name: "PostgreSQL, one instance per isolate",
    skip: pgBase ? false : "LOCKSTEP_TEST_DATABASE_URL is not set",
    start: async () => {
      const c = await pgCluster(pgBase!, 2);
      return { urls: c.servers.map((s) => s.url), stop: c.stop };
    },
  },
];

let script: string | undefined;
async function workerScript(): Promise<string> {
  if (script) return script;
  const bundle = await build({
    entryPoints: [path.join(PACKAGE_DIR, "worker", "worker.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  script = bundle.outputFiles[0]!.text;
  assert.doesNotMatch(script, /from\s*["']node:/, "the bundle must not import Node built-ins");
  return script;
}

for (const backend of backends) {
  describe(`Worker stories on ${backend.name}`, { skip: backend.skip }, () => {
    let urls: string[] = [];
    let stop: (() => Promise<void>) | undefined;
    let isolates: Miniflare[] = [];
    const tag = backend.name.startsWith("SQLite") ? "sqlite" : "pg";

    before(async () => {
      const started = await backend.start();
      urls = started.urls;
      stop = started.stop;
      const code = await workerScript();
      isolates = urls.map(
        (url) =>
          new Miniflare({
            modules: true,
            script: code,
            compatibilityDate: "2025-01-01",
            bindings: { LOCKSTEP_URL: url },
          }),
      );
      await Promise.all(isolates.map((mf) => mf.ready));
    });

    after(async () => {
      await Promise.all(isolates.map((mf) => mf.dispose()));
      await stop?.();
    });

    /** POSTs `body` to the Worker route, on isolate `i % 2`. */
    async function call<T = Record<string, unknown>>(i: number, route: string, body: Record<string, unknown>): Promise<{ status: number; body: T }> {
      const res = await isolates[i % isolates.length]!.dispatchFetch(`http://worker${route}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as T };
    }

    type TicketJson = { ticket_id: string; state: string; epoch: number; finalized_revision: number | null; recovered: boolean };
    type FeedJson = { entries: Array<{ id: string; at: string; cursor: string; read: boolean }>; unread_count: number };

    test("seed 000: 64 concurrent finalizations with duplicates, a legacy import and unread counts", SERVER_TEST, async () => {
      const ns = uniqueNs("w000");
      const owner = "owner@example.com";
      const link = "link-000";
      const N = 64;
      assert.equal((await call<{ created: boolean }>(0, "/gate", { ns, link })).body.created, true);
      const ids = Array.from({ length: N }, (_, i) => `rsv-${String(i).padStart(3, "0")}`);

      // The uploads, concurrently on both isolates.
      const uploads = await Promise.all(ids.map((id, i) => call<TicketJson>(i, "/upload", { ns, link, id })));
      assert.ok(uploads.every((u) => u.status === 200 && u.body.state === "committed"), JSON.stringify(uploads.find((u) => u.status !== 200)));

      // The legacy array (the old capped JSON array, with one entry written twice
      // by the old bug), imported by both isolates at once while finalizing.
      const legacy = Array.from({ length: 20 }, (_, i) => ({
        id: `legacy-${i}`,
        at: new Date(Date.parse("2025-06-01T00:00:00Z") + i * 60_000).toISOString(),
        data: { ip: "10.0.0.1", size: i },
      }));
      legacy.push({ ...legacy[3]! });

      // 64 finalizations + 32 duplicates (the same reservation finalized twice,
      // from the other isolate), + 2 imports, all at once.
      const dupIds = ids.filter((_, i) => i % 2 === 0);
      const finals = [
        ...ids.map((id, i) => call<TicketJson>(i, "/finalize", { ns, link, id, owner, data: { reservation: id, ip: "203.0.113.9" } })),
        ...dupIds.map((id, i) => call<TicketJson>(i + 1, "/finalize", { ns, link, id, owner, data: { reservation: id, ip: "203.0.113.9" } })),
      ];
      const imports = [0, 1].map((i) => call<{ imported: number; skipped: number }>(i, "/import", { ns, owner, legacy }));
      const [finalAnswers, importAnswers] = await Promise.all([Promise.all(finals), Promise.all(imports)]);

      const ok = finalAnswers.filter((f) => f.status === 200 && f.body.state === "finalized").length;
      assert.equal(ok, N + dupIds.length, JSON.stringify(finalAnswers.find((f) => f.status !== 200)));
      // Duplicates answer exactly what the first finalization answered.
      const byId = new Map<string, number>();
      for (const f of finalAnswers) {
        const prev = byId.get(f.body.ticket_id);
        if (prev !== undefined) assert.equal(f.body.finalized_revision, prev);
        byId.set(f.body.ticket_id, f.body.finalized_revision!);
      }
      const imported = importAnswers.reduce((s, a) => s + a.body.imported, 0);
      const skipped = importAnswers.reduce((s, a) => s + a.body.skipped, 0);
      assert.equal(imported, 20, "each legacy id imported once");
      assert.equal(skipped, 2 * legacy.length - 20);

      const feed = (await call<FeedJson>(1, "/feed", { ns, owner })).body;
      const entryIds = feed.entries.map((e) => e.id);
      assert.equal(entryIds.length, N + 20, "every finalization and legacy entry is visible");
      assert.equal(new Set(entryIds).size, entryIds.length, "no duplicate entry");
      assert.deepEqual(new Set(entryIds.filter((id) => id.startsWith("rsv-"))), new Set(ids));
      assert.equal(feed.unread_count, N + 20);

      // The owner reads: the whole legacy part (up to its newest entry), and 10
      // new ones, each request sent twice from both isolates.
      const newestLegacy = feed.entries.find((e) => e.id === "legacy-19")!;
      const readIds = ids.slice(0, 10);
      await Promise.all([
        call(0, "/read", { ns, owner, upTo: newestLegacy.cursor }),
        call(1, "/read", { ns, owner, upTo: newestLegacy.cursor }),
        call(0, "/read", { ns, owner, ids: readIds }),
        call(1, "/read", { ns, owner, ids: readIds }),
      ]);
      const after = (await call<FeedJson>(0, "/feed", { ns, owner })).body;
      assert.equal(after.unread_count, N - readIds.length, "unread derived from per-entry marks");
      assert.equal(after.entries.filter((e) => !e.read).length, after.unread_count);

      console.log(
        `# worker[${tag}] seed 000: finalize requests=${finalAnswers.length} (unique=${N}, duplicates=${dupIds.length}) ok=${ok}; ` +
          `feed entries=${entryIds.length} (unique=${new Set(entryIds).size}, expected ${N}+20 legacy); ` +
          `import imported=${imported} skipped=${skipped}; unread before=${feed.unread_count} after=${after.unread_count} (expected ${N - readIds.length})`,
      );
    });

    type StepJson = { step: string; ok: boolean; sentAt: number; doneAt: number; status?: number; code?: string; ticket?: TicketJson & { revision?: number; updated_at: string } };

    test("seed 001: a revoke racing uploads that hold only a capability: nothing accepted after it", SERVER_TEST, async () => {
      const ns = uniqueNs("w001");
      const owner = "owner@example.com";
      const link = "link-001";
      const other = "link-other";
      const N = 48;
      // Committed uploads are still finalized after the revoke (recover
      // policy), by the owner: the uploaders' capability is refused by then.
      assert.equal((await call<{ created: boolean }>(0, "/gate", { ns, link, policy: "recover" })).body.created, true);
      assert.equal((await call<{ created: boolean }>(1, "/gate", { ns, link: other })).body.created, true);
      // The owner mints the link's capability; the uploaders get it and nothing else.
      const minted = await call<{ capability: string; epoch: number; ops: string[]; expiresAt: string }>(0, "/mint", { ns, link, ttlMs: 600_000 });
      assert.equal(minted.status, 200, JSON.stringify(minted.body));
      const capability = minted.body.capability;
      assert.match(capability, /^lsc_/);
      assert.equal(minted.body.epoch, 1);
      assert.deepEqual([...minted.body.ops].sort(), ["abort", "admit", "check", "commit", "finalize"]);

      // 0. The capability is not the owner's access: all else is refused.
      const probe = (await call<Record<string, { status: number; code: string }>>(1, "/probe", { ns, link, other, owner, capability })).body;
      for (const [what, r] of Object.entries(probe)) {
        const want = what === "tampered capability" ? [401, "unauthorized"] : [403, "forbidden"];
        assert.deepEqual([r.status, r.code], want, `${what}: ${JSON.stringify(r)}`);
      }

      const upload = (i: number) =>
        call<{ id: string; log: StepJson[] }>(i, "/flow", { ns, link, id: `up-${i}`, owner, delayMs: (i * 7) % 40, capability });
      // The first half of the uploads start 10 ms apart; the owner revokes
      // while they are at every step of their flow ...
      const early = Array.from({ length: N / 2 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, i * 10));
        return upload(i);
      });
      await new Promise((r) => setTimeout(r, 150));
      const revoke = await call<{ state: string; epoch: number; voided: number; pending: number; sentAt: number; doneAt: number; revision: number }>(1, "/revoke", { ns, link });
      assert.equal(revoke.status, 200, JSON.stringify(revoke.body));
      assert.equal(revoke.body.state, "revoked");
      // ... and the second half arrive after the revoke answered, on both isolates.
      const late = Array.from({ length: N / 2 }, (_, j) => upload(N / 2 + j));
      const results = (await Promise.all([...early, ...late])).map((f) => f.body);
      const lateRefused = results.slice(N / 2).filter((r) => r.log.length === 1 && r.log[0]!.step === "admit" && r.log[0]!.status === 410).length;
      assert.equal(lateRefused, N / 2, "every upload that started after the revoke was refused at admit");

      const count = (step: string, ok: boolean) => results.filter((r) => r.log.some((s) => s.step === step && s.ok === ok)).length;
      const admitted = count("admit", true);
      const committed = count("commit", true);
      const finalizedByUploader = count("finalize", true);
      const refused = results.flatMap((r) => r.log.filter((s) => !s.ok));

      // 1. Every refusal is a deterministic 410 gate_closed (no 5xx, no surprises).
      assert.ok(refused.every((s) => s.status === 410 && s.code === "gate_closed"), JSON.stringify(refused.filter((s) => s.code !== "gate_closed")));
      // 2. No operation of the capability sent after the revoke answered was accepted.
      const lateOk = results.flatMap((r) => r.log.filter((s) => s.ok && s.sentAt > revoke.body.doneAt));
      assert.deepEqual(lateOk, []);
      // 3. Every accepted ticket is of the old epoch.
      const epochs = new Set(results.flatMap((r) => r.log.filter((s) => s.ok).map((s) => s.ticket!.epoch)));
      assert.deepEqual([...epochs], [1]);
      // 4. After the revoke the capability is refused even for what it had
      //    admitted: the owner recovers the committed uploads left over.
      const recovered = (await call<{ tickets: TicketJson[] }>(0, "/recover", { ns, link, owner })).body.tickets;
      assert.equal(recovered.length, committed - finalizedByUploader);
      assert.ok(recovered.every((t) => t.state === "finalized" && t.recovered));
      const again = await call<{ id: string; log: StepJson[] }>(1, "/flow", { ns, link, id: "after-recover", owner, capability });
      assert.deepEqual(again.body.log.map((s) => [s.step, s.status]), [["admit", 410]]);
      // 5. The server's view: tickets open at the revoke were voided by it, every
      //    committed one finalized once, and the feed holds exactly one entry per
      //    finalized ticket.
      const tickets = (await call<{ tickets: TicketJson[] }>(0, "/tickets", { ns, link })).body.tickets;
      const byState = (s: string) => tickets.filter((t) => t.state === s).length;
      assert.equal(tickets.length, admitted);
      assert.equal(byState("finalized"), committed, "every committed upload was finalized (by its uploader, or recovered by the owner)");
      assert.equal(byState("voided"), admitted - committed);
      assert.equal(revoke.body.voided, admitted - committed, "the revoke voided every ticket still open");
      assert.equal(revoke.body.pending, recovered.length, "the committed uploads pending at the revoke are the ones the owner recovered");
      const feed = (await call<FeedJson>(0, "/feed", { ns, owner })).body;
      assert.equal(feed.entries.length, committed);
      assert.equal(new Set(feed.entries.map((e) => e.id)).size, committed);
      // 6. Timing-free, from the change log: every change made with the
      //    capability (actor `capability:<link>`) committed at a revision
      //    before the revoke's, and the log agrees with what the uploaders saw.
      const log: Array<{ revision: number; op: string; actor: string }> = [];
      for await (const c of new Lockstep({ url: urls[0]!, namespace: ns }).changes({ kind: "gate", prefix: link, pageSize: 20 })) {
        if (c.key === link) log.push(c);
      }
      const revokeRev = log.find((c) => c.op === "revoke")!.revision;
      assert.equal(revokeRev, revoke.body.revision);
      const byCapability = log.filter((c) => c.actor === `capability:${link}`);
      const afterRevoke = byCapability.filter((c) => c.revision > revokeRev);
      assert.deepEqual(afterRevoke, []);
      assert.equal(byCapability.filter((c) => c.op === "admit").length, admitted);
      assert.equal(byCapability.filter((c) => c.op === "commit").length, committed);
      assert.equal(byCapability.filter((c) => c.op === "finalize").length, finalizedByUploader);
      const ownerFinalizes = log.filter((c) => c.op === "finalize" && c.actor !== `capability:${link}`);
      assert.equal(ownerFinalizes.length, recovered.length);
      assert.ok(ownerFinalizes.every((c) => c.revision > revokeRev));

      console.log(
        `# worker[${tag}] seed 001 (uploaders hold a capability): uploads=${N} admitted=${admitted} committed=${committed} ` +
          `finalized by uploader=${finalizedByUploader} recovered by owner=${recovered.length} voided=${byState("voided")} ` +
          `refused_410=${refused.length} (admit=${refused.filter((s) => s.step === "admit").length}, ` +
          `check=${refused.filter((s) => s.step === "check").length}, commit=${refused.filter((s) => s.step === "commit").length}, ` +
          `finalize=${refused.filter((s) => s.step === "finalize").length}); revoke voided=${revoke.body.voided} pending=${revoke.body.pending}; ` +
          `accepted after revoke=${lateOk.length} (change log: capability changes after the revoke's revision ${revokeRev}: ${afterRevoke.length} of ${byCapability.length}); ` +
          `uploads started after the revoke: ${N / 2}, refused at admit: ${lateRefused}; capability refused elsewhere: ` +
          `${Object.values(probe).filter((r) => r.status === 403).length}x403 ${Object.values(probe).filter((r) => r.status === 401).length}x401; feed entries=${feed.entries.length}`,
      );
    });

    test("seed 002 in a Worker: withLock and the idempotency store, duplicates across isolates", SERVER_TEST, async () => {
      const ns = uniqueNs("w002");
      const keys = ["a", "b", "c", "d"];
      const amounts: Record<string, number> = { a: 10, b: 20, c: 30, d: 40 };
      // Each settlement requested 4 times, concurrently, from both isolates.
      const answers = await Promise.all(
        keys.flatMap((key) => [0, 1, 2, 3].map((i) => call<{ response: { balance: number; fence: number }; replayed: boolean }>(i, "/settle", { ns, stream: "s1", key, amount: amounts[key] }))),
      );
      assert.ok(answers.every((a) => a.status === 200), JSON.stringify(answers.find((a) => a.status !== 200)));
      const executed = answers.filter((a) => !a.body.replayed);
      assert.equal(executed.length, keys.length, "one execution per key");
      // Every duplicate got its key's stored response.
      const fences = new Set(answers.map((a) => a.body.response.fence));
      assert.equal(fences.size, keys.length);
      const stream = await new Lockstep({ url: urls[0]!, namespace: ns }).get<{ balance: number; settled: number }>("stream/s1");
      assert.deepEqual(stream?.value, { balance: 1000 - 100, settled: 4 });
      console.log(
        `# worker[${tag}] seed 002: settle requests=${answers.length} executed=${executed.length} replayed=${answers.length - executed.length}; ` +
          `stream balance=${stream?.value.balance} settled=${stream?.value.settled} (expected 900, 4)`,
      );
    });
  });
}
