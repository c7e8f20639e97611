// seeds/002 — withLock and an idempotent settle across instances (Next.js).
//
// An in-process lock serializes nothing across serverless instances. Here a
// settle route handler takes a lockstep lease for the stream (released in
// `finally`, renewed in the background, `lease.signal` aborted if lost), and
// the idempotency store makes the whole settlement run once per
// Idempotency-Key, replaying the stored response to retries.
//
// Run: LOCKSTEP_URL=http://127.0.0.1:7707 node examples/002-settle.mjs
import { Lockstep } from "@lockstep/client";

const ls = new Lockstep({
  url: process.env.LOCKSTEP_URL ?? "http://127.0.0.1:7707",
  namespace: process.env.LOCKSTEP_NS ?? `streams-${Date.now()}`,
});
const settlements = ls.idempotency("settle");

// What app/api/streams/[id]/settle/route.ts would do with the request.
async function settle(streamId, idempotencyKey, body) {
  return settlements.run(
    `${streamId}:${idempotencyKey}`,
    { fingerprint: JSON.stringify(body), lockMs: 30_000, retry: { attempts: 30, baseDelayMs: 25 } },
    () =>
      ls.withLock(`stream/${streamId}`, { ttlMs: 10_000, waitMs: 10_000 }, async (lease) => {
        // The balance moves only while this lease holds, fenced by its token.
        const stream = (await ls.get(`stream/${streamId}`))?.value ?? { balance: 100, settled: 0 };
        const next = { balance: stream.balance - body.amount, settled: stream.settled + 1 };
        const r = await ls.txn({
          compare: [lease.compare()],
          success: [{ put: { key: `stream/${streamId}`, value: next } }],
        });
        if (!r.succeeded) throw new Error("lease lost before the write");
        return { status: 200, balance: next.balance };
      }),
  );
}

// The same request retried 3 times concurrently, plus two other settlements.
const results = await Promise.all([
  settle("s1", "key-A", { amount: 10 }),
  settle("s1", "key-A", { amount: 10 }),
  settle("s1", "key-A", { amount: 10 }),
  settle("s1", "key-B", { amount: 5 }),
  settle("s1", "key-C", { amount: 1 }),
]);
for (const r of results) console.log(`replayed=${r.replayed} response=${JSON.stringify(r.response)}`);
const stream = (await ls.get("stream/s1")).value;
console.log(`stream s1: ${JSON.stringify(stream)}`);
if (stream.settled !== 3 || stream.balance !== 84) throw new Error("a settlement ran twice or was lost");
