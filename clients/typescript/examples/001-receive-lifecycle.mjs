// seeds/001 — a receive link's lifecycle, serialized with an epoch.
//
// Anonymous uploads run on any isolate while the owner pauses, resumes or
// revokes the link. The owner mints a capability for the link (what its URL
// carries); an uploader holds that and nothing else: it allows the link's
// ticket operations only. Each upload is a ticket admitted under the link's
// epoch: `check` before writing the blob, `commit` after. A revoke bumps the
// epoch and voids the open tickets in the same atomic step, so a late upload
// gets a deterministic 410 (undo the blob), a paused link a 423 (retry after
// resume), and nothing of the old epoch is accepted after the revoke: the
// capability itself is refused from then on. Uploads committed before the
// revoke are recovered by the owner (`pending: "recover"`).
//
// Run: LOCKSTEP_URL=http://127.0.0.1:7707 node examples/001-receive-lifecycle.mjs
import { Lockstep, LockstepError } from "@lockstep/client";

const url = process.env.LOCKSTEP_URL ?? "http://127.0.0.1:7707";
const namespace = process.env.LOCKSTEP_NS ?? `receive-${Date.now()}`;
// The owner: a token of theirs (LOCKSTEP_TOKEN), or none on a loopback server without tokens.
const ls = new Lockstep({ url, namespace, ...(process.env.LOCKSTEP_TOKEN ? { token: process.env.LOCKSTEP_TOKEN } : {}) });
const owned = ls.gate("receive-link/xyz");
await owned.create({ policy: { pending: "recover" } }); // committed uploads are still finalized, by the owner

// The link's capability, handed to the uploaders (e.g. in the link's URL).
const { capability, expiresAt } = await owned.capability({ ttlMs: 24 * 3600_000 });
console.log(`capability for epoch 1, until ${expiresAt}`);
const uploader = Lockstep.forCapability(url, namespace, capability);
const link = uploader.gate("receive-link/xyz");
const refused = await uploader.gate("receive-link/xyz").revoke().catch((e) => e.code);
console.log(`the uploader tries to revoke the link: ${refused}`);
if (refused !== "forbidden") throw new Error("a capability did more than ticket operations");

const blobs = new Set(); // stands for R2

async function upload(id) {
  try {
    const ticket = await link.admit({ ticketId: id, retry: false });
    await ticket.check({ retry: false });
    blobs.add(id); // write the blob
    await new Promise((r) => setTimeout(r, Math.random() * 30));
    try {
      await ticket.commit({ retry: false });
    } catch (e) {
      if (e instanceof LockstepError && e.code === "gate_closed") blobs.delete(id); // undo: revoked meanwhile
      throw e;
    }
    try {
      await ticket.finalize({ append: { feed: "owner-feed", data: { upload: id } } });
    } catch (e) {
      // Committed, then revoked before finalize: the owner recovers it below.
      if (e instanceof LockstepError && e.code === "gate_closed") return "committed";
      throw e;
    }
    return "finalized";
  } catch (e) {
    if (e instanceof LockstepError && (e.code === "gate_closed" || e.code === "gate_paused")) return e.code;
    throw e;
  }
}

// Pause: an upload admitted before keeps its ticket and proceeds after resume.
const early = await link.admit({ ticketId: "early" });
await owned.pause();
const paused = await early.check({ retry: false }).catch((e) => e.code);
console.log(`check while paused: ${paused}`);
await owned.resume();
await early.check();
await early.abort();

// 30 uploads race a revoke, which the owner clicks once 8 have finalized.
let done = 0;
let eightDone;
const eight = new Promise((r) => (eightDone = r));
const uploads = Array.from({ length: 30 }, (_, i) =>
  new Promise((r) => setTimeout(r, i * 5))
    .then(() => upload(`upload-${i}`))
    .then((outcome) => {
      if (outcome === "finalized" && ++done === 8) eightDone();
      return outcome;
    }),
);
await Promise.race([eight, Promise.all(uploads)]);
const revoked = await owned.revoke();
console.log(`revoked: epoch ${revoked.epoch}, voided ${revoked.voided} open tickets, ${revoked.pending} pending`);
const outcomes = await Promise.all(uploads);
const tally = outcomes.reduce((t, o) => ({ ...t, [o]: (t[o] ?? 0) + 1 }), {});
console.log("outcomes:", tally);

// After the revoke, every new upload is refused.
const late = await upload("late");
console.log(`an upload after the revoke: ${late}`);
if (late !== "gate_closed") throw new Error("a late upload was admitted");

// The owner recovers the uploads committed before the revoke but not finalized.
let recovered = 0;
for await (const t of owned.tickets({ state: "committed" })) {
  await owned.ticket(t.ticket_id).finalize({ append: { feed: "owner-feed", data: { upload: t.ticket_id } } });
  recovered++;
}
console.log(`recovered by the owner: ${recovered} (pending at the revoke: ${revoked.pending})`);
if (recovered !== revoked.pending) throw new Error("pending uploads and recovered ones disagree");

const finalized = [];
for await (const t of owned.tickets({ state: "finalized" })) finalized.push(t.ticket_id);
const entries = (await ls.feed("owner-feed").page({ limit: 1000 })).entries.length;
console.log(`finalized ${finalized.length}, feed entries ${entries}, blobs kept ${blobs.size}`);
if (entries !== finalized.length || blobs.size !== finalized.length) throw new Error("ledger and feed disagree");
