/**
 * The transport: one `fetch` per attempt, problem documents turned into
 * {@link LockstepError}, and retries with exponential backoff and full jitter.
 *
 * Only standard web APIs are used (fetch, AbortSignal, crypto.randomUUID), so
 * this runs unchanged on Workers, Node ≥ 18, Deno, Bun and browsers.
 */

import { LockstepError, clientProblem } from "./errors.js";
import type { Problem } from "./types.js";

/** A `fetch` implementation (the global one by default). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** How retryable failures are retried. */
export interface RetryOptions {
  /** Attempts in all, the first included (default 6). 1 disables retries. */
  attempts?: number;
  /** The backoff's first ceiling in ms (default 50); it doubles each attempt. */
  baseDelayMs?: number;
  /** The backoff's largest ceiling in ms (default 2000). */
  maxDelayMs?: number;
  /** The longest `Retry-After` honoured, in ms (default 30000). */
  maxRetryAfterMs?: number;
}

/** Options every call takes. */
export interface CallOptions {
  /** Aborts the call (and its retries). */
  signal?: AbortSignal;
  /** Overrides the client's retry policy for this call; `false` disables it. */
  retry?: RetryOptions | false;
  /**
   * Gives up an attempt after this many ms (a `timeout` error, retried like a
   * network error). Overrides the client's `timeoutMs`.
   */
  timeoutMs?: number;
  /**
   * The `Idempotency-Key` of a write. By default the client generates one per
   * call (`crypto.randomUUID()`) and sends it on every attempt, so that a
   * retry never applies twice. Pass your own to make a write idempotent
   * across processes (e.g. the id of the job that issues it).
   */
  idempotencyKey?: string;
}

/** Options of a call that writes nothing (no idempotency key to give). */
export type ReadOptions = Pick<CallOptions, "signal" | "retry" | "timeoutMs">;

/** One request to the API. */
export interface ApiRequest {
  method: "GET" | "PUT" | "POST" | "PATCH" | "DELETE";
  /** The path, already percent-encoded, starting with `/`. */
  path: string;
  query?: Record<string, string | number | boolean | null | undefined>;
  /** A JSON body (serialized here), if any. */
  body?: unknown;
  /** The body's Content-Type (default `application/json`). */
  contentType?: string;
  headers?: Record<string, string>;
  /** Sends an `Idempotency-Key` (generated unless the call gives one). */
  write?: boolean;
  opts?: CallOptions | undefined;
}

/** A 2xx answer. */
export interface ApiAnswer<T> {
  status: number;
  body: T;
  headers: Headers;
  /** `Idempotent-Replayed: true`: a stored answer of an earlier attempt. */
  replayed: boolean;
}

const DEFAULT_RETRY: Required<RetryOptions> = {
  attempts: 6,
  baseDelayMs: 50,
  maxDelayMs: 2000,
  maxRetryAfterMs: 30_000,
};

/** Is this refusal worth another attempt (nothing was applied)? */
export function isRetryable(e: unknown): boolean {
  if (!(e instanceof LockstepError)) return false;
  switch (e.status) {
    case 0:
      return e.code === "network_error" || e.code === "timeout";
    case 503:
    case 423:
    case 429:
      return true;
    case 409:
      return e.code === "idempotency_key_in_use";
    default:
      return false;
  }
}

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** The delay before retry number `attempt` (0-based): full jitter, or Retry-After. */
export function backoffDelay(attempt: number, policy: Required<RetryOptions>, retryAfterMs?: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  const jitter = Math.random() * ceiling;
  if (retryAfterMs !== undefined) {
    return Math.min(retryAfterMs, policy.maxRetryAfterMs) + Math.random() * policy.baseDelayMs;
  }
  return jitter;
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The reason of an aborted signal, as an Error. */
export function abortReason(signal: AbortSignal): unknown {
  const r: unknown = signal.reason;
  if (r !== undefined) return r;
  const e = new Error("the operation was aborted");
  e.name = "AbortError";
  return e;
}

/** Settings of a {@link Transport}. */
export interface TransportOptions {
  url: string;
  token?: string | undefined;
  fetch?: FetchLike | undefined;
  retry?: RetryOptions | false | undefined;
  headers?: Record<string, string> | undefined;
  timeoutMs?: number | undefined;
}

/** Sends requests to one server, with auth, retries and idempotency keys. */
export class Transport {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly fetchImpl: FetchLike;
  private readonly retry: Required<RetryOptions> | false;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number | undefined;

  /** The client's per-attempt timeout, if any. */
  get defaultTimeoutMs(): number | undefined {
    return this.timeoutMs;
  }

  constructor(o: TransportOptions) {
    this.timeoutMs = o.timeoutMs;
    this.baseUrl = o.url.replace(/\/+$/, "");
    this.token = o.token;
    const f = o.fetch;
    // A bare reference to the global fetch throws "Illegal invocation" on
    // some runtimes when called as a method of another object.
    this.fetchImpl = f ?? ((input, init) => globalThis.fetch(input, init));
    this.retry = o.retry === false ? false : { ...DEFAULT_RETRY, ...(o.retry ?? {}) };
    this.headers = { ...(o.headers ?? {}) };
  }

  /** The effective retry policy of a call. */
  policy(opts?: CallOptions): Required<RetryOptions> | false {
    if (opts?.retry === false) return false;
    if (opts?.retry === undefined) return this.retry;
    return { ...(this.retry === false ? DEFAULT_RETRY : this.retry), ...opts.retry };
  }

  /** The full URL of a path and query. */
  url(path: string, query?: ApiRequest["query"]): string {
    let u = this.baseUrl + path;
    if (query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null) qs.append(k, String(v));
      }
      const s = qs.toString();
      if (s) u += "?" + s;
    }
    return u;
  }

  /** The headers of every request: auth and the client's own. */
  baseHeaders(): Record<string, string> {
    const h: Record<string, string> = { accept: "application/json", ...this.headers };
    if (this.token) h["authorization"] = `Bearer ${this.token}`;
    return h;
  }

  /**
   * Runs `attempt` until it succeeds, fails for good, or the retry budget is
   * spent. `attempt` throws LockstepError for refusals.
   */
  async withRetries<T>(opts: CallOptions | undefined, attempt: (signal?: AbortSignal) => Promise<T>): Promise<T> {
    const policy = this.policy(opts);
    const attempts = policy === false ? 1 : Math.max(1, policy.attempts);
    for (let n = 0; ; n++) {
      try {
        return await attempt(opts?.signal);
      } catch (e) {
        if (policy === false || n + 1 >= attempts || !isRetryable(e) || opts?.signal?.aborted) throw e;
        const retryAfter = e instanceof LockstepError ? e.retryAfterMs : undefined;
        await sleep(backoffDelay(n, policy, retryAfter), opts?.signal);
      }
    }
  }

  /**
   * One fetch; a network failure becomes a `network_error` LockstepError, a
   * `timeout` (when `timedOut` says so) a `timeout` one.
   */
  async fetchOnce(url: string, init: RequestInit, timedOut?: () => boolean): Promise<Response> {
    try {
      return await this.fetchImpl(url, init);
    } catch (e) {
      if (timedOut?.()) throw timeoutError(this.baseUrl, e);
      if (init.signal?.aborted) throw abortReason(init.signal);
      const detail = e instanceof Error ? e.message : String(e);
      throw new LockstepError(clientProblem(0, "network_error", `cannot reach ${this.baseUrl}: ${detail}`), {
        cause: e,
      });
    }
  }

  /** Sends `req` (with retries) and answers its parsed 2xx body. */
  async send<T>(req: ApiRequest): Promise<ApiAnswer<T>> {
    const headers = { ...this.baseHeaders(), ...(req.headers ?? {}) };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers["content-type"] = req.contentType ?? "application/json";
    }
    if (req.write) {
      headers["idempotency-key"] = req.opts?.idempotencyKey ?? randomKey();
    }
    const url = this.url(req.path, req.query);
    const timeoutMs = req.opts?.timeoutMs ?? this.timeoutMs;
    return this.withRetries(req.opts, async (signal) => {
      const init: RequestInit = { method: req.method, headers };
      if (body !== undefined) init.body = body;
      const deadline = timeoutMs === undefined ? undefined : withTimeout(signal, timeoutMs);
      const s = deadline?.signal ?? signal;
      if (s) init.signal = s;
      try {
        const res = await this.fetchOnce(url, init, deadline?.timedOut);
        if (!res.ok) throw await problemOf(res);
        let text: string;
        try {
          text = await res.text();
        } catch (e) {
          if (deadline?.timedOut()) throw timeoutError(this.baseUrl, e);
          throw e;
        }
        const parsed = (text ? JSON.parse(text) : null) as T;
        return {
          status: res.status,
          body: parsed,
          headers: res.headers,
          replayed: res.headers.get("idempotent-replayed") === "true",
        };
      } finally {
        deadline?.clear();
      }
    });
  }
}

/** A signal that aborts with `signal` or after `ms`; `timedOut` tells which. */
function withTimeout(signal: AbortSignal | undefined, ms: number): { signal: AbortSignal; timedOut: () => boolean; clear: () => void } {
  const c = new AbortController();
  let fired = false;
  const onAbort = () => c.abort(signal ? abortReason(signal) : undefined);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => {
    fired = true;
    c.abort();
  }, ms);
  return {
    signal: c.signal,
    timedOut: () => fired,
    clear: () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    },
  };
}

function timeoutError(baseUrl: string, cause: unknown): LockstepError {
  return new LockstepError(clientProblem(0, "timeout", `no answer from ${baseUrl} in time`), { cause });
}

/** The LockstepError of a non-2xx answer (its body is consumed). */
export async function problemOf(res: Response): Promise<LockstepError> {
  const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
  let text = "";
  try {
    text = await res.text();
  } catch {
    // The body could not be read: describe the status alone.
  }
  let problem: Problem | undefined;
  if (text) {
    try {
      const v: unknown = JSON.parse(text);
      if (v && typeof v === "object" && !Array.isArray(v) && typeof (v as Problem).code === "string") {
        problem = { ...(v as Problem), status: res.status };
      }
    } catch {
      // Not JSON (a proxy's page): described below.
    }
  }
  problem ??= clientProblem(res.status, codeOfStatus(res.status), text.slice(0, 500) || res.statusText);
  return new LockstepError(problem, { retryAfterMs });
}

/** A code for an answer without a problem document (e.g. from a proxy). */
function codeOfStatus(status: number): string {
  switch (status) {
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 429:
      return "too_many_requests";
    case 502:
    case 503:
    case 504:
      return "unavailable";
    default:
      return `http_${status}`;
  }
}

/**
 * A fresh idempotency key: `crypto.randomUUID()`, or (on a runtime without Web
 * Crypto as a global, e.g. Node 18 without its flag) a version 4 UUID from
 * `crypto.getRandomValues`, or at worst from `Math.random`.
 */
export function randomKey(): string {
  const c = (globalThis as { crypto?: Partial<Crypto> }).crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const b = new Uint8Array(16);
  if (typeof c?.getRandomValues === "function") c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Percent-encodes one path segment (a key, a name, an id). */
export function seg(s: string): string {
  return encodeURIComponent(s);
}
