// seeds/004 — two editors, optimistic concurrency, and a manual merge.
//
// Every write says which version it was based on; a stale write gets 409
// `version_mismatch` with the current value, instead of silently overwriting.
// `updateWith` re-reads and re-applies automatically; when it gives up, its
// ConflictError carries both `local` and `remote` for a manual merge.
//
// Run: LOCKSTEP_URL=http://127.0.0.1:7707 node examples/004-two-editors.mjs
import { Lockstep, LockstepError, ConflictError } from "@lockstep/client";

const ls = new Lockstep({
  url: process.env.LOCKSTEP_URL ?? "http://127.0.0.1:7707",
  namespace: process.env.LOCKSTEP_NS ?? `billing-${Date.now()}`,
});
const key = "subscription/sub_42";
await ls.put(key, { status: "active", notes: [] }, { expectedVersion: 0 });

// 1. A support agent and the billing job edit the same subscription at once:
//    both changes survive; whoever writes second re-applies on the newer value.
await Promise.all([
  ls.updateWith(key, (sub) => ({ ...sub, notes: [...sub.notes, "customer called"] })),
  ls.updateWith(key, (sub) => ({ ...sub, status: "past_due" })),
]);
console.log("after concurrent edits:", JSON.stringify((await ls.get(key)).value));

// 2. An editor form: loaded at some version, saved later. Meanwhile billing
//    cancels. The save is refused with the current state, and the UI merges.
const loaded = await ls.get(key);
await ls.put(key, { ...loaded.value, status: "canceled" }, { expectedVersion: loaded.version }); // billing
try {
  await ls.put(key, { ...loaded.value, notes: [...loaded.value.notes, "VIP"] }, { expectedVersion: loaded.version });
  throw new Error("a stale save overwrote a newer version");
} catch (e) {
  if (!(e instanceof LockstepError) || e.code !== "version_mismatch") throw e;
  console.log(`stale save refused: based on v${loaded.version}, server has v${e.current.version} (${e.current.value.status})`);
  const merged = { ...e.current.value, notes: [...e.current.value.notes, "VIP"] };
  await ls.put(key, merged, { expectedVersion: e.current.version });
}

// 3. updateWith against a writer that keeps winning: after `attempts` it gives
//    up with a ConflictError holding both sides.
try {
  await ls.updateWith(
    key,
    async (sub) => {
      await ls.patch(key, { status: "paused" }); // another writer, every time
      return { ...sub, status: "active" };
    },
    { attempts: 2 },
  );
} catch (e) {
  if (!(e instanceof ConflictError)) throw e;
  console.log(`gave up after ${e.attempts}: mine=${e.local.status} theirs=${e.remote.value.status} (v${e.remote.version})`);
  // The user decides: keep theirs, note the attempt.
  await ls.put(key, { ...e.remote.value, notes: [...e.remote.value.notes, "reactivation refused"] }, {
    expectedVersion: e.remote.version,
  });
}

const final = (await ls.get(key)).value;
console.log("final:", JSON.stringify(final));
if (final.status !== "paused" || final.notes.join() !== "customer called,VIP,reactivation refused") {
  throw new Error("an edit was lost");
}
