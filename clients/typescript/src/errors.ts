/**
 * Errors thrown by the client. Every refusal of the server becomes a
 * {@link LockstepError} carrying the RFC 9457 problem's members, so
 * `err.code === "version_mismatch"` works wherever the error surfaces.
 */

import type { Problem, Current } from "./types.js";

/** The members every problem document has; the rest are extension members. */
const PROBLEM_MEMBERS = new Set(["type", "title", "status", "detail", "code"]);

/**
 * A refusal of the server (any non-2xx answer), or a failure to reach it.
 *
 * - `status` is the HTTP status (0 when the server could not be reached:
 *   `code` is then `"network_error"` and `cause` is the underlying error).
 * - `code` is the stable machine-readable code of SPEC §3 (`version_mismatch`,
 *   `lease_held`, `gate_closed`, …).
 * - The problem's extension members are copied onto the error as they are on
 *   the wire (`current`, `holder`, `expires_at`, `waiters`, …) and the whole
 *   document is kept in `problem`.
 */
export class LockstepError extends Error {
  override name = "LockstepError";
  /** The HTTP status; 0 for a network failure. */
  readonly status: number;
  /** The stable code (`version_mismatch`, `gate_closed`, `network_error`, …). */
  readonly code: string;
  /** The human-readable detail of the problem. */
  readonly detail: string;
  /** The problem's `title`, when the server sent one. */
  readonly title: string | undefined;
  /** The problem's `type` URI, when the server sent one. */
  readonly type: string | undefined;
  /** The whole problem document as the server sent it (or as synthesized). */
  readonly problem: Problem;
  /** The `Retry-After` the server asked for, in milliseconds, if any. */
  readonly retryAfterMs: number | undefined;
  /** `current` of `version_mismatch` / `patch_test_failed`: `{version, value}` or null. */
  declare readonly current?: Current | null;
  /** `holder` of `lease_held`. */
  declare readonly holder?: string | null;
  /** `expires_at` of `lease_held`. */
  declare readonly expires_at?: string | null;
  /** `waiters` of `lease_held`. */
  declare readonly waiters?: number;
  /** Any other extension member. */
  readonly [member: string]: unknown;

  constructor(problem: Problem, options?: { cause?: unknown; retryAfterMs?: number | undefined }) {
    super(
      `${problem.status} ${problem.code}${problem.detail ? `: ${problem.detail}` : ""}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.status = problem.status;
    this.code = problem.code;
    this.detail = problem.detail ?? "";
    this.title = problem.title;
    this.type = problem.type;
    this.problem = problem;
    this.retryAfterMs = options?.retryAfterMs;
    for (const [k, v] of Object.entries(problem)) {
      if (!PROBLEM_MEMBERS.has(k) && !(k in this)) {
        Object.defineProperty(this, k, { value: v, enumerable: true, configurable: true, writable: false });
      }
    }
  }
}

/**
 * `updateWith` gave up: every attempt met a newer version. `local` is the value
 * this client computed last; `remote` is what the server holds now
 * (`{version, value}`, or null when the record is absent). Merge them and write
 * again with `expectedVersion: remote?.version ?? 0`.
 */
export class ConflictError<T = unknown> extends LockstepError {
  override name = "ConflictError";
  /** The value this client tried to write last. */
  readonly local: T;
  /** The server's state at the last refusal. */
  readonly remote: Current<T> | null;
  /** The key of the record. */
  readonly key: string;
  /** How many writes were tried. */
  readonly attempts: number;

  constructor(key: string, local: T, remote: Current<T> | null, attempts: number, cause: LockstepError) {
    super(
      {
        ...cause.problem,
        detail: `gave up on ${JSON.stringify(key)} after ${attempts} attempts: ${cause.detail}`,
      },
      { cause },
    );
    this.key = key;
    this.local = local;
    this.remote = remote;
    this.attempts = attempts;
  }
}

/** A problem the client makes up itself (network failure, lease expiry). */
export function clientProblem(status: number, code: string, detail: string): Problem {
  return { type: `urn:lockstep:problem:${code}`, title: code, status, code, detail };
}

/** True when `e` is a {@link LockstepError} with one of `codes`. */
export function isCode(e: unknown, ...codes: string[]): e is LockstepError {
  return e instanceof LockstepError && codes.includes(e.code);
}
