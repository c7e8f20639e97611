/**
 * watch() across a server restart: the stream drops, the client reconnects
 * with Last-Event-ID to the restarted server (same port, same database), and
 * yields every revision exactly once, in order.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { Lockstep, type ChangeEvent } from "../src/index.js";
import { SERVER_TEST, freePort, sqliteDb, startServer, uniqueNs } from "./harness.js";

test("watch resumes across a server restart without a gap or a repeat", SERVER_TEST, async () => {
  const db = sqliteDb();
  const listen = `127.0.0.1:${await freePort()}`;
  let server = await startServer(db.database, [], listen);
  try {
    const ls = new Lockstep({ url: server.url, namespace: uniqueNs("watch") });
    const start = await ls.put("seed", 0);
    const ac = new AbortController();
    const events: ChangeEvent[] = [];
    const want = 12;
    const watching = (async () => {
      // Generous reconnection budget: the server is down for a moment.
      for await (const ev of ls.watch({ after: start.version, prefix: "k/", signal: ac.signal, retry: { attempts: 50, baseDelayMs: 50, maxDelayMs: 400 } })) {
        events.push(ev);
        if (events.length === want) ac.abort();
      }
    })();
    for (let i = 0; i < want / 2; i++) await ls.put(`k/${i}`, i);
    // Wait until the first half was seen, then restart the server.
    for (let t = 0; events.length < want / 2 && t < 100; t++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(events.length, want / 2);
    await server.stop();
    server = await startServer(db.database, [], listen);
    for (let i = want / 2; i < want; i++) await ls.put(`k/${i}`, i);
    const timer = setTimeout(() => ac.abort(), 20_000);
    await watching;
    clearTimeout(timer);
    const keys = events.flatMap((e) => e.changes.map((c) => c.key));
    assert.deepEqual(keys, Array.from({ length: want }, (_, i) => `k/${i}`));
    const revs = events.map((e) => e.revision);
    assert.deepEqual(revs, [...new Set(revs)].sort((a, b) => a - b));
  } finally {
    await server.stop();
    db.cleanup();
  }
});
