// seeds/000 — a receive feed that loses no entry when finalizations race.
//
// The old Worker kept `recentReceives:<owner>` as one JSON array, rewritten on
// every finalization under an in-process lock: concurrent isolates lost
// entries. Here every finalization is a gate ticket finalized exactly once,
// and its feed entry is appended in the same atomic step (id = reservation id),
// so concurrent and duplicate finalizations all land, once. The legacy array is
// imported idempotently, and unread counts come from per-entry read marks.
//
// Run: LOCKSTEP_URL=http://127.0.0.1:7707 node examples/000-receive-feed.mjs
import { Lockstep } from "@lockstep/client";

const ls = new Lockstep({
  url: process.env.LOCKSTEP_URL ?? "http://127.0.0.1:7707",
  namespace: process.env.LOCKSTEP_NS ?? `receive-${Date.now()}`,
});
const owner = "owner@example.com";
const feed = ls.feed(`recentReceive/${owner}`);
const link = ls.gate("receive-link/abc");
await link.create({ policy: { pending: "recover" } });

// One upload: admit a ticket under the link's epoch, check before writing the
// blob, commit after.
async function upload(reservationId) {
  const ticket = await link.admit({ ticketId: reservationId });
  await ticket.check();
  /* ... write the blob to R2 ... */
  await ticket.commit();
}

// The finalization, as any isolate runs it, any number of times.
async function finalize(reservationId, ip) {
  return link.ticket(reservationId).finalize({
    append: { feed: feed.name, data: { reservationId, ip, size: 1024 } },
  });
}

const ids = Array.from({ length: 20 }, (_, i) => `rsv-${i}`);
await Promise.all(ids.map(upload));
// Every reservation finalized twice, concurrently (a retried request).
await Promise.all([...ids, ...ids].map((id) => finalize(id, "203.0.113.7")));

// The migration: the old array, imported once per entry however often it runs.
const legacyArray = [
  { id: "rsv-old-1", at: "2026-04-01T10:00:00Z", reservationId: "rsv-old-1", ip: "10.0.0.1" },
  { id: "rsv-old-2", at: "2026-04-02T10:00:00Z", reservationId: "rsv-old-2", ip: "10.0.0.2" },
];
const [a, b] = await Promise.all([feed.import(legacyArray), feed.import(legacyArray)]);
console.log(`import: imported ${a.imported + b.imported}, skipped ${a.skipped + b.skipped}`);

// Scrub IPs from entries older than a day, keep the newest 500.
await feed.configure({ maxEntries: 500, scrub: { fields: ["ip"], afterMs: 24 * 3600 * 1000 } });

// The owner's view: newest first, with the unread count.
const recent = feed.entries({ limit: 50 });
const seen = [];
for await (const entry of recent) seen.push(entry.id);
console.log(`feed: ${seen.length} entries, unread ${recent.unreadCount}`);
if (seen.length !== 22 || new Set(seen).size !== 22) throw new Error("lost or duplicated entries");

// The owner opens two of them, then everything.
await feed.markRead({ ids: ["rsv-0", "rsv-1"] });
console.log(`unread after reading two: ${await feed.unreadCount()}`);
if ((await feed.unreadCount()) !== 20) throw new Error("unread count drifted");
await feed.markRead({ all: true });
console.log(`unread after reading all: ${await feed.unreadCount()}`);
