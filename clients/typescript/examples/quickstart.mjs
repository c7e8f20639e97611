// The client in ten lines. Run: LOCKSTEP_URL=http://127.0.0.1:7707 node examples/quickstart.mjs
import { Lockstep } from "@lockstep/client";

const ls = new Lockstep({ url: process.env.LOCKSTEP_URL ?? "http://127.0.0.1:7707", namespace: process.env.LOCKSTEP_NS ?? "demo" });
await ls.put("config/banner", { text: "hello" });                                  // create or replace
const { value, version } = await ls.get("config/banner");                           // → record, or null
await ls.put("config/banner", { ...value, color: "red" }, { expectedVersion: version }); // optimistic write
await ls.updateWith("stats/visits", (n) => (n ?? 0) + 1);                           // read-modify-write, no lost update
await ls.withLock("nightly-report", { ttlMs: 30_000 }, async (lease) => { /* one instance at a time; lease.signal */ });
await ls.feed("inbox/alice").append({ id: "msg-1", data: { from: "bob" } });        // idempotent by id
console.log("unread:", await ls.feed("inbox/alice").unreadCount());
