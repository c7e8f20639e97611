/**
 * A Cloudflare Worker that uses @lockstep/client, as the receive-links teams
 * of seeds/000 and seeds/001 would: the test bundles it with esbuild, runs it
 * in workerd through miniflare, and drives it with concurrent requests.
 *
 * The owner's routes use the Worker's own access (`LOCKSTEP_TOKEN`, or none on
 * a loopback server without tokens). The anonymous uploader's routes take the
 * link's `capability` (minted by the owner with /mint, as a receive link's URL
 * would carry it) and use nothing else: `Lockstep.forCapability(...)`.
 *
 * Routes (all POST, JSON in and out; `ns` names the namespace):
 * - /gate      {ns, link, policy?}                 owner: create the link's gate
 * - /mint      {ns, link, ttlMs, ops?}             owner: mint the link's capability
 * - /upload    {ns, link, id, capability?}         uploader: admit, check, commit (one upload)
 * - /finalize  {ns, link, id, owner, data, capability?}  uploader: finalize, appending to the owner's feed
 * - /flow      {ns, link, id, owner, delayMs, capability?}  uploader: upload then finalize; answers a step log
 * - /probe     {ns, link, capability, other}       uploader: what else the capability is refused
 * - /revoke    {ns, link}                          owner: revoke the link
 * - /recover   {ns, link, owner}                   owner: finalize the committed uploads (recover policy)
 * - /import    {ns, owner, legacy}                 import a legacy array into the feed
 * - /read      {ns, owner, ids? | upTo? | all?}    mark entries read
 * - /feed      {ns, owner}                         every entry id, the unread count
 * - /tickets   {ns, link}                          every ticket of the link
 * - /settle    {ns, stream, key, amount}           seeds/002: withLock + the idempotency store
 */

import { Lockstep, LockstepError, type CapabilityOp, type JsonObject, type ReadSelector, type TicketData } from "../src/index.js";

export interface Env {
  LOCKSTEP_URL: string;
  LOCKSTEP_TOKEN?: string;
}

type Body = Record<string, unknown> & { ns: string };

/** One step of an upload flow, as the Worker saw it. */
interface Step {
  step: "admit" | "check" | "commit" | "finalize";
  ok: boolean;
  /** Date.now() before the request and after its answer. */
  sentAt: number;
  doneAt: number;
  status?: number;
  code?: string;
  ticket?: TicketData;
}

const recentFeed = (owner: string) => `recent/${owner}`;

/** The capability with one character of its claims changed (its signature no longer verifies). */
function tamper(capability: string): string {
  const i = "lsc_".length + 5;
  const c = capability[i] === "A" ? "B" : "A";
  return capability.slice(0, i) + c + capability.slice(i + 1);
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function problem(e: unknown): Response {
  if (e instanceof LockstepError) return json({ error: e.code, status: e.status, detail: e.detail }, e.status || 502);
  return json({ error: "worker_error", detail: String(e) }, 500);
}

async function step(name: Step["step"], log: Step[], fn: () => Promise<TicketData>): Promise<boolean> {
  const sentAt = Date.now();
  try {
    const ticket = await fn();
    log.push({ step: name, ok: true, sentAt, doneAt: Date.now(), ticket });
    return true;
  } catch (e) {
    if (!(e instanceof LockstepError)) throw e;
    log.push({ step: name, ok: false, sentAt, doneAt: Date.now(), status: e.status, code: e.code });
    return false;
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const route = new URL(request.url).pathname;
    const b = (await request.json()) as Body;
    // The stories count refusals: 423 is answered, not waited out.
    const retry = { attempts: 4, baseDelayMs: 20 };
    const ls = new Lockstep({
      url: env.LOCKSTEP_URL,
      namespace: b.ns,
      ...(env.LOCKSTEP_TOKEN ? { token: env.LOCKSTEP_TOKEN } : {}),
      retry,
    });
    // The anonymous uploader: the link's capability and nothing else (the
    // owner's client when the request carries none, as seeds/000's story does).
    const cap = typeof b["capability"] === "string" ? b["capability"] : undefined;
    const uploader = cap ? Lockstep.forCapability(env.LOCKSTEP_URL, b.ns, cap, { retry }) : ls;
    try {
      switch (route) {
        case "/gate": {
          const policy = (b["policy"] as "reject" | "recover" | undefined) ?? "reject";
          return json(await ls.gate(String(b["link"])).create({ policy: { pending: policy } }));
        }
        case "/mint": {
          const ops = b["ops"] as CapabilityOp[] | undefined;
          return json(
            await ls.gate(String(b["link"])).capability({ ttlMs: Number(b["ttlMs"] ?? 600_000), ...(ops ? { ops } : {}) }),
          );
        }
        case "/upload": {
          const gate = uploader.gate(String(b["link"]));
          const t = await gate.admit({ ticketId: String(b["id"]) });
          await t.check();
          // ... the blob would be written to R2 here ...
          return json(await t.commit());
        }
        case "/finalize": {
          const t = uploader.gate(String(b["link"])).ticket(String(b["id"]));
          return json(
            await t.finalize({ append: { feed: recentFeed(String(b["owner"])), data: b["data"] as JsonObject } }),
          );
        }
        case "/flow": {
          const gate = uploader.gate(String(b["link"]));
          const id = String(b["id"]);
          const log: Step[] = [];
          const noRetry = { retry: false as const };
          const t = gate.ticket(id);
          if (await step("admit", log, async () => (await gate.admit({ ticketId: id, ...noRetry })).data!)) {
            if (await step("check", log, () => t.check(noRetry))) {
              // The upload itself: bytes go to R2 while the owner may revoke.
              await new Promise((r) => setTimeout(r, Number(b["delayMs"] ?? 0)));
              if (await step("commit", log, () => t.commit(noRetry))) {
                await step("finalize", log, () =>
                  t.finalize({
                    append: { feed: recentFeed(String(b["owner"])), data: { upload: id } },
                    ...noRetry,
                  }),
                );
              }
            }
          }
          return json({ id, log });
        }
        case "/probe": {
          // Everything but the link's ticket operations is refused to the
          // capability: the outcome (status and code) of each attempt.
          const link = uploader.gate(String(b["link"]));
          const attempts: Record<string, () => Promise<unknown>> = {
            "admit on another gate": () => uploader.gate(String(b["other"])).admit({ retry: false }),
            "revoke its own gate": () => link.revoke({ retry: false }),
            "read its own gate": () => link.get({ retry: false }),
            "list its gate's tickets": async () => {
              for await (const t of link.tickets({ retry: false })) return t;
            },
            "mint another capability": () => link.capability({ ttlMs: 60_000, retry: false }),
            "read the owner's feed": () => uploader.feed(recentFeed(String(b["owner"] ?? "owner"))).page({ retry: false }),
            "write a record": () => uploader.put("x", 1, { retry: false }),
            "tampered capability": () =>
              Lockstep.forCapability(env.LOCKSTEP_URL, b.ns, tamper(cap ?? ""), { retry: false })
                .gate(String(b["link"]))
                .admit({ retry: false }),
          };
          const out: Record<string, { status: number; code: string }> = {};
          for (const [name, fn] of Object.entries(attempts)) {
            try {
              await fn();
              out[name] = { status: 200, code: "accepted" };
            } catch (e) {
              if (!(e instanceof LockstepError)) throw e;
              out[name] = { status: e.status, code: e.code };
            }
          }
          return json(out);
        }
        case "/recover": {
          // The owner finalizes, with their own access, the uploads that were
          // committed before the revoke but not finalized by their uploader
          // (whose capability is refused since): the gate's `recover` policy.
          const gate = ls.gate(String(b["link"]));
          const done: TicketData[] = [];
          for await (const t of gate.tickets({ state: "committed", pageSize: 100 })) {
            done.push(
              await gate.ticket(t.ticket_id).finalize({
                append: { feed: recentFeed(String(b["owner"])), data: { upload: t.ticket_id, recovered: true } },
              }),
            );
          }
          return json({ tickets: done });
        }
        case "/revoke": {
          const sentAt = Date.now();
          const r = await ls.gate(String(b["link"])).revoke();
          return json({ ...r, sentAt, doneAt: Date.now() });
        }
        case "/import": {
          return json(
            await ls.feed(recentFeed(String(b["owner"]))).import(b["legacy"] as Array<{ id: string } & JsonObject>),
          );
        }
        case "/read": {
          const sel: ReadSelector =
            b["ids"] !== undefined
              ? { ids: b["ids"] as string[] }
              : b["upTo"] !== undefined
                ? { upTo: String(b["upTo"]) }
                : { all: true };
          return json(await ls.feed(recentFeed(String(b["owner"]))).markRead(sel));
        }
        case "/feed": {
          const it = ls.feed(recentFeed(String(b["owner"]))).entries({ order: "desc", pageSize: 50 });
          const entries: Array<{ id: string; at: string; cursor: string; read: boolean }> = [];
          for await (const e of it) entries.push({ id: e.id, at: e.at, cursor: e.cursor, read: e.read });
          return json({ entries, unread_count: it.unreadCount });
        }
        case "/tickets": {
          const tickets: TicketData[] = [];
          for await (const t of ls.gate(String(b["link"])).tickets({ pageSize: 100 })) tickets.push(t);
          return json({ tickets });
        }
        case "/settle": {
          // seeds/002 in a Worker: the settlement runs once per key, under
          // the stream's lease, its write fenced by the lease token.
          const stream = String(b["stream"]);
          const amount = Number(b["amount"]);
          const settled = await ls.idempotency<{ balance: number; fence: number }>("settle").run(
            `${stream}:${String(b["key"])}`,
            { fingerprint: String(amount), lockMs: 30_000, retry: { attempts: 60, baseDelayMs: 20, maxDelayMs: 500 } },
            () =>
              ls.withLock(`stream/${stream}`, { ttlMs: 5_000, waitMs: 20_000, renewEveryMs: 50 }, async (lease) => {
                const cur = await ls.get<{ balance: number; settled: number }>(`stream/${stream}`);
                const next = { balance: (cur?.value.balance ?? 1000) - amount, settled: (cur?.value.settled ?? 0) + 1 };
                // Slow enough for the keep-alive to renew at least once.
                await new Promise((r) => setTimeout(r, 120));
                const r = await ls.txn({
                  compare: [lease.compare(), lease.fenceCompare(`stream/${stream}`)],
                  success: [{ put: { key: `stream/${stream}`, value: next } }],
                });
                if (!r.succeeded) throw new Error("lease lost before the write");
                return { balance: next.balance, fence: lease.fence };
              }),
          );
          return json(settled);
        }
        default:
          return json({ error: "no_route" }, 404);
      }
    } catch (e) {
      return problem(e);
    }
  },
};
