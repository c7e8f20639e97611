/**
 * The built client (dist/) on every JavaScript runtime found: Node always;
 * Deno and Bun when their binaries are on PATH (or named by LOCKSTEP_DENO /
 * LOCKSTEP_BUN). The Workers runtime has its own test (worker.test.ts).
 */

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { SERVER_TEST, PACKAGE_DIR, sqliteServer, type Server } from "./harness.js";

const run = promisify(execFile);
const smoke = path.join(PACKAGE_DIR, "test", "runtimes", "smoke.mjs");

function find(envVar: string, name: string): string | undefined {
  const given = process.env[envVar];
  if (given) return given;
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`]).toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

const runtimes: Array<{ name: string; argv: string[] | undefined }> = [
  { name: "node", argv: [process.execPath, smoke] },
  { name: "deno", argv: ((d) => (d ? [d, "run", "--allow-net", "--allow-env", smoke] : undefined))(find("LOCKSTEP_DENO", "deno")) },
  { name: "bun", argv: ((b) => (b ? [b, smoke] : undefined))(find("LOCKSTEP_BUN", "bun")) },
];

let server: Server;
before(async () => {
  server = await sqliteServer();
});
after(async () => {
  await server?.stop();
});

for (const rt of runtimes) {
  test(`the built client on ${rt.name}`, { ...SERVER_TEST, skip: rt.argv ? false : `${rt.name} is not installed` }, async () => {
    const [cmd, ...args] = rt.argv!;
    const { stdout } = await run(cmd!, args, { cwd: PACKAGE_DIR, env: { ...process.env, LOCKSTEP_URL: server.url }, timeout: 60_000 });
    assert.match(stdout, new RegExp(`smoke ok ${rt.name}`));
  });
}
