/**
 * Leases (SPEC §6, seeds/002 and 003): an owner token, a fence, and a
 * keep-alive that renews in the background and aborts `lease.signal` when the
 * lease is lost.
 */

import { LockstepError, clientProblem, isCode } from "./errors.js";
import { isRetryable, seg, sleep, type CallOptions, type Transport } from "./http.js";
import type { Compare, LeaseData, ReleaseResult, RequestBody } from "./types.js";

/** Options of `acquire`. */
export interface AcquireOptions extends CallOptions {
  /** How long the lease lives without a renewal (100 ms ..= 24 h). */
  ttlMs: number;
  /** Wait in line up to this long (0 ..= 60 s) when it is held; else 409 `lease_held` at once. */
  waitMs?: number;
  /** Who holds it (shown to others in `lease_held` and `GET`), at most 256 bytes. */
  holder?: string;
  /**
   * Renew in the background (default true): every `renewEveryMs` (default a
   * third of `ttlMs`), each renewal extending the lease by `ttlMs`.
   */
  keepAlive?: boolean;
  /** The keep-alive's period (default `ttlMs / 3`). */
  renewEveryMs?: number;
}

/** The context a lease needs from its client. */
export interface LeaseContext {
  transport: Transport;
  /** `/v1/ns/{ns}` */
  nsPath: string;
}

/**
 * A held lease. `token` proves ownership; `fence` grows with every holder, so a
 * storage that records the highest fence it saw refuses a paused ex-holder.
 *
 * While the keep-alive runs, `signal` aborts (with a `lease_lost`
 * {@link LockstepError} as its reason) once the lease is known lost: a renewal
 * was refused, or no renewal succeeded before it expired. Pass `lease.signal`
 * to the work the lease protects.
 */
export class Lease {
  readonly name: string;
  readonly token: string;
  readonly fence: number;
  readonly holder: string | null;
  /** The last `expires_at` the server reported (storage clock). */
  expiresAt: string;
  /** The answer of the acquisition. */
  readonly data: LeaseData;
  /** Aborted when the lease is lost or released. */
  readonly signal: AbortSignal;

  private readonly ctx: LeaseContext;
  private readonly ttlMs: number;
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When, by this process's clock, the lease surely expired if not renewed. */
  private deadline: number;
  private stopped = false;
  /** Aborted by stop(): cuts the keep-alive's waits short. */
  private readonly stopper = new AbortController();
  private renewing: Promise<unknown> | undefined;
  private lostError: LockstepError | undefined;

  /** @internal Use `Lockstep.acquire`. */
  constructor(ctx: LeaseContext, data: LeaseData, ttlMs: number, sentAt: number) {
    this.ctx = ctx;
    this.data = data;
    this.name = data.name;
    this.token = data.token;
    this.fence = data.fence;
    this.holder = data.holder;
    this.expiresAt = data.expires_at;
    this.ttlMs = ttlMs;
    this.signal = this.controller.signal;
    // Measured from before the request was sent, so never later than the
    // storage's own expiry.
    this.deadline = sentAt + ttlMs;
  }

  /** True once the lease is known lost (not after a plain release). */
  get lost(): boolean {
    return this.lostError !== undefined;
  }

  /** Why the lease was lost, if it was. */
  get lostReason(): LockstepError | undefined {
    return this.lostError;
  }

  /** The transaction compare "this token holds the lease now". */
  compare(): Compare {
    return { lease: this.name, token: this.token };
  }

  /** The transaction compare that fences writes of `resource` with this lease's fence. */
  fenceCompare(resource: string): Compare {
    return { fence: { resource, token: this.fence } };
  }

  /** Throws the loss reason if the lease is lost. */
  throwIfLost(): void {
    if (this.lostError) throw this.lostError;
  }

  /**
   * Extends the lease by `ttlMs` (default the acquisition's). A refusal
   * (`lease_lost`) marks the lease lost, aborts `signal`, and is thrown.
   */
  async renew(ttlMs: number = this.ttlMs, opts?: CallOptions): Promise<LeaseData> {
    const sentAt = Date.now();
    try {
      const a = await this.ctx.transport.send<LeaseData>({
        method: "POST",
        path: `${this.ctx.nsPath}/leases/${seg(this.name)}/renew`,
        body: { token: this.token, ttl_ms: ttlMs } satisfies RequestBody<"renewLease">,
        write: true,
        opts,
      });
      this.expiresAt = a.body.expires_at;
      this.deadline = Math.max(this.deadline, sentAt + ttlMs);
      return a.body;
    } catch (e) {
      if (isCode(e, "lease_lost")) this.markLost(e);
      throw e;
    }
  }

  /**
   * Releases the lease (compare-and-clear: never another holder's) and stops
   * the keep-alive. Answers whether this token still held it.
   */
  async release(opts?: CallOptions): Promise<boolean> {
    this.stop();
    if (this.renewing) await this.renewing.catch(() => undefined);
    const a = await this.ctx.transport.send<ReleaseResult>({
      method: "POST",
      path: `${this.ctx.nsPath}/leases/${seg(this.name)}/release`,
      body: { token: this.token } satisfies RequestBody<"releaseLease">,
      write: true,
      opts,
    });
    if (!this.controller.signal.aborted) {
      this.controller.abort(new LockstepError(clientProblem(409, "lease_released", `lease ${this.name} was released`)));
    }
    return a.body.released;
  }

  /**
   * @internal Starts the background renewals: every `everyMs`, and sooner
   * when less than twice that is left before the local deadline (e.g. after
   * a slow acquire or renewal).
   */
  startKeepAlive(everyMs: number): void {
    const next = () => Math.min(everyMs, Math.max(0, (this.deadline - Date.now()) / 2));
    const tick = () => {
      if (this.stopped) return;
      this.renewing = this.keepAliveOnce().finally(() => {
        this.renewing = undefined;
        if (!this.stopped) this.schedule(tick, next());
      });
    };
    this.schedule(tick, next());
  }

  /** Stops the keep-alive without releasing (the lease then expires by itself). */
  stop(): void {
    this.stopped = true;
    this.stopper.abort();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(fn: () => void, ms: number): void {
    this.timer = setTimeout(fn, Math.max(0, ms));
    // Do not keep a Node process alive for a keep-alive alone.
    const t = this.timer as unknown as { unref?: () => void };
    if (typeof t.unref === "function") t.unref();
  }

  /**
   * One renewal; retries transient failures until the lease would have
   * expired. The first attempt is made even past the local deadline (e.g.
   * after an acquire that waited in line longer than the TTL: the deadline
   * counts from the request, the server's expiry from the grant): the server
   * decides, and answers `lease_lost` if it did expire.
   */
  private async keepAliveOnce(): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      let left = this.deadline - Date.now();
      if (left <= 0 && n === 0) left = Math.max(100, Math.floor(this.ttlMs / 3));
      if (left <= 0) {
        this.markLost(
          new LockstepError(
            clientProblem(409, "lease_lost", `lease ${this.name} expired before a renewal succeeded`),
          ),
        );
        return;
      }
      const attempt = new AbortController();
      const timeout = setTimeout(() => attempt.abort(), left);
      const onStop = () => attempt.abort();
      this.stopper.signal.addEventListener("abort", onStop, { once: true });
      try {
        await this.renew(this.ttlMs, { retry: false, signal: attempt.signal });
        return;
      } catch (e) {
        if (this.lost || this.stopped) return;
        if (!isRetryable(e) && !attempt.signal.aborted) {
          // An unexpected refusal (e.g. 401): the lease cannot be kept.
          this.markLost(
            e instanceof LockstepError
              ? e
              : new LockstepError(clientProblem(409, "lease_lost", `renewal of ${this.name} failed: ${String(e)}`), {
                  cause: e,
                }),
          );
          return;
        }
      } finally {
        clearTimeout(timeout);
        this.stopper.signal.removeEventListener("abort", onStop);
      }
      try {
        await sleep(Math.min(Math.random() * 50 * 2 ** Math.min(n, 6), Math.max(0, this.deadline - Date.now())), this.stopper.signal);
      } catch {
        return; // stopped
      }
    }
  }

  private markLost(e: LockstepError): void {
    if (this.lostError) return;
    this.lostError = e;
    this.stop();
    if (!this.controller.signal.aborted) this.controller.abort(e);
  }
}

/** `POST /leases/{name}/acquire`, then the keep-alive. */
export async function acquireLease(ctx: LeaseContext, name: string, o: AcquireOptions): Promise<Lease> {
  const body: RequestBody<"acquireLease"> = { ttl_ms: o.ttlMs };
  if (o.holder !== undefined) body.holder = o.holder;
  if (o.waitMs !== undefined) body.wait_ms = o.waitMs;
  const sentAt = Date.now();
  const timeoutMs = o.timeoutMs ?? ctx.transport.defaultTimeoutMs;
  const a = await ctx.transport.send<LeaseData>({
    method: "POST",
    path: `${ctx.nsPath}/leases/${seg(name)}/acquire`,
    body,
    write: true,
    // A waiting acquire answers after up to `waitMs`: not a timeout.
    opts: timeoutMs === undefined ? o : { ...o, timeoutMs: timeoutMs + (o.waitMs ?? 0) },
  });
  // `sentAt` precedes the grant (also of a replayed or waited-for one), so the
  // local deadline is never later than the storage's expiry.
  const lease = new Lease(ctx, a.body, o.ttlMs, sentAt);
  if (o.keepAlive !== false) lease.startKeepAlive(o.renewEveryMs ?? Math.max(10, Math.floor(o.ttlMs / 3)));
  return lease;
}

/**
 * Runs `fn` while holding `name`, and releases in `finally`. `fn` gets the
 * lease: pass `lease.signal` to its work, and guard its writes with
 * `lease.compare()` or `lease.fenceCompare(resource)`. If the lease was lost
 * while `fn` ran (and `fn` did not throw), the loss is thrown, since the work
 * ran unprotected for a while. A failing release is ignored: the lease then
 * expires by itself.
 */
export async function withLease<T>(
  ctx: LeaseContext,
  name: string,
  o: AcquireOptions,
  fn: (lease: Lease) => Promise<T> | T,
): Promise<T> {
  const lease = await acquireLease(ctx, name, o);
  let result: T;
  try {
    result = await fn(lease);
  } finally {
    lease.stop();
    try {
      await lease.release({ retry: { attempts: 3 } });
    } catch {
      // Best effort: the lease expires by itself.
    }
  }
  lease.throwIfLost();
  return result;
}
