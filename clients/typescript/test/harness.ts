/**
 * Test harness: starts real `lockstep serve` processes (SQLite, or PostgreSQL
 * in a fresh schema of its own) on free ports, and stops them.
 *
 * - The binary is `$LOCKSTEP_BIN`, default `../../target/debug/lockstep`
 *   relative to the package.
 * - PostgreSQL is `$LOCKSTEP_TEST_DATABASE_URL`; when unset, the PostgreSQL
 *   tests skip, unless `CI` is set: then they fail.
 */

import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The package's directory (`clients/typescript`). */
export const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The lockstep binary. */
export const LOCKSTEP_BIN = path.resolve(PACKAGE_DIR, process.env["LOCKSTEP_BIN"] ?? "../../target/debug/lockstep");

/** A running server. */
export interface Server {
  url: string;
  database: string;
  child: ChildProcess;
  /** Everything it printed. */
  log: string[];
  stop(): Promise<void>;
}

/** Starts `lockstep serve` on `database` and waits for its "listening" line. */
export async function startServer(database: string, extraArgs: string[] = [], listen = "127.0.0.1:0"): Promise<Server> {
  if (!existsSync(LOCKSTEP_BIN)) {
    throw new Error(`no lockstep binary at ${LOCKSTEP_BIN}: run \`cargo build -p lockstep\` or set LOCKSTEP_BIN`);
  }
  const args = ["serve", "--listen", listen, "--database", database, ...extraArgs];
  if (database.startsWith("postgres")) args.push("--pool-size", "6");
  const env: NodeJS.ProcessEnv = { ...process.env, RUST_LOG: "warn,lockstep=info" };
  delete env["LOCKSTEP_DATABASE"];
  const child = spawn(LOCKSTEP_BIN, args, { stdio: ["ignore", "pipe", "pipe"], env });
  const log: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lockstep did not start in 30 s:\n${log.join("")}`)), 30_000);
    let started = false;
    const onData = (chunk: Buffer) => {
      const s = chunk.toString();
      log.push(s);
      if (started) return;
      const m = /lockstep listening on (http:\/\/[^\s]+)/.exec(log.join(""));
      if (m) {
        started = true;
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`lockstep exited with ${code} before listening:\n${log.join("")}`));
    });
  });
  child.removeAllListeners("exit");
  // Never leave a server behind, whatever ends this process.
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  child.once("exit", () => process.removeListener("exit", reap));
  // Keep draining the output so the pipes never fill up.
  return {
    url,
    database,
    child,
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 5000).unref();
      }),
  };
}

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A SQLite database in a fresh temporary directory. */
export function sqliteDb(): { database: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), "lockstep-ts-"));
  return {
    database: `sqlite:${path.join(dir, "lockstep.db")}`,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Starts a server on a fresh SQLite database; `stop` also removes it. */
export async function sqliteServer(): Promise<Server> {
  const db = sqliteDb();
  const s = await startServer(db.database);
  const stop = s.stop;
  s.stop = async () => {
    await stop();
    db.cleanup();
  };
  return s;
}

/** The PostgreSQL test database, or undefined (outside CI) when not configured. */
export function pgBaseUrl(): string | undefined {
  const url = process.env["LOCKSTEP_TEST_DATABASE_URL"]?.trim();
  if (url) return url;
  if (process.env["CI"]) {
    throw new Error(
      "LOCKSTEP_TEST_DATABASE_URL is not set but CI is: the PostgreSQL tests must run in CI " +
        "(e.g. LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test)",
    );
  }
  return undefined;
}

/** Runs SQL with psql on `url`. */
export function psql(url: string, sql: string): void {
  execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql], { stdio: ["ignore", "pipe", "pipe"] });
}

/** A fresh schema in the PostgreSQL test database; `url` selects it through `search_path`. */
export function freshPgSchema(base: string): { url: string; schema: string; drop: () => void } {
  const schema = `ts_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  psql(base, `CREATE SCHEMA ${schema}`);
  const sep = base.includes("?") ? "&" : "?";
  return {
    url: `${base}${sep}options=-csearch_path%3D${schema}`,
    schema,
    drop: () => {
      try {
        psql(base, `SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } catch (e) {
        console.error(`could not drop the test schema ${schema}: ${String(e)}`);
      }
    },
  };
}

/** `n` servers over one fresh PostgreSQL schema; `stop` stops them and drops it. */
export async function pgCluster(base: string, n: number): Promise<{ servers: Server[]; stop: () => Promise<void> }> {
  const db = freshPgSchema(base);
  const servers: Server[] = [];
  try {
    // The first one migrates the schema; the others find it ready.
    servers.push(await startServer(db.url));
    servers.push(...(await Promise.all(Array.from({ length: n - 1 }, () => startServer(db.url)))));
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop()));
    db.drop();
    throw e;
  }
  return {
    servers,
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
      db.drop();
    },
  };
}

/** Resolves with the signal's reason once it aborts (at once if it already did). */
export function whenAborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true }));
}

/** Options of every test that talks to a server: a hung test fails instead of hanging the run. */
export const SERVER_TEST = { timeout: 180_000 };

/** A unique namespace name for one test. */
export function uniqueNs(prefix = "t"): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
}
