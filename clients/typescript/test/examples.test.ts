/**
 * Every runnable example of examples/ (the README's, one per seed) runs
 * against a real server and exits 0; each checks its own invariants.
 */

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { SERVER_TEST, PACKAGE_DIR, sqliteServer, uniqueNs, type Server } from "./harness.js";

const run = promisify(execFile);
const dir = path.join(PACKAGE_DIR, "examples");
const examples = readdirSync(dir).filter((f) => f.endsWith(".mjs")).sort();

let server: Server;
before(async () => {
  server = await sqliteServer();
});
after(async () => {
  await server?.stop();
});

test("there is an example for each JavaScript seed", () => {
  for (const seed of ["000", "001", "002", "004"]) {
    assert.ok(examples.some((f) => f.startsWith(seed)), `no example for seed ${seed}`);
  }
});

for (const file of examples) {
  test(`examples/${file}`, SERVER_TEST, async () => {
    const { stdout } = await run(process.execPath, [path.join(dir, file)], {
      cwd: PACKAGE_DIR,
      env: { ...process.env, LOCKSTEP_URL: server.url, LOCKSTEP_NS: uniqueNs("ex") },
      timeout: 60_000,
    });
    for (const line of stdout.trim().split("\n")) console.log(`# ${file}: ${line}`);
  });
}
