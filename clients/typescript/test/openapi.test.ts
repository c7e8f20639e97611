/**
 * The committed wire types (src/generated/openapi.ts) are what openapi-typescript
 * makes of the current server's /openapi.json: regenerating changes nothing.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { SERVER_TEST, PACKAGE_DIR } from "./harness.js";

test("src/generated/openapi.ts is up to date with the server's /openapi.json", SERVER_TEST, async () => {
  const r = await promisify(execFile)(process.execPath, [path.join(PACKAGE_DIR, "scripts", "gen-types.mjs"), "--check"], {
    cwd: PACKAGE_DIR,
  }).catch((e: { stdout: string; stderr: string; code: number }) => e);
  assert.match(r.stdout, /up to date/, `${r.stdout}\n${r.stderr}`);
});
