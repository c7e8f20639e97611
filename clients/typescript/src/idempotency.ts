/**
 * The idempotency store for the application's own endpoints (SPEC §9,
 * seeds/002): own a key, run the work once, store its response; replays get
 * the stored response.
 */

import { isCode } from "./errors.js";
import { seg, type CallOptions, type ReadOptions, type Transport } from "./http.js";
import type { AbandonResult, BeginResult, CompleteResult, IdempotencyEntry, Json, RequestBody } from "./types.js";

/** The context an idempotency scope needs from its client. */
export interface IdempotencyContext {
  transport: Transport;
  nsPath: string;
}

/** Options of `begin()`. */
export interface BeginOptions extends CallOptions {
  /** What identifies the request (e.g. a hash of its body): another fingerprint with the same key is 422. */
  fingerprint: string;
  /** How long the caller owns the key; after that the next caller may take it over. */
  lockMs: number;
}

/** One scope (an endpoint of the application) of the idempotency store. */
export class IdempotencyScope<R = Json> {
  readonly scope: string;
  private readonly ctx: IdempotencyContext;

  /** @internal Use `Lockstep.idempotency(scope)`. */
  constructor(ctx: IdempotencyContext, scope: string) {
    this.ctx = ctx;
    this.scope = scope;
  }

  private path(key: string): string {
    return `${this.ctx.nsPath}/idempotency/${seg(this.scope)}/${seg(key)}`;
  }

  /**
   * Owns `key` (`{state: "started", token}`), or answers the stored response
   * (`{state: "completed", response}`). While another caller runs it the
   * server answers 409 `idempotency_key_in_use`, which the default retry
   * policy waits out; a different fingerprint is 422 `idempotency_key_reused`.
   */
  async begin(key: string, o: BeginOptions): Promise<BeginResult<R>> {
    const a = await this.ctx.transport.send<BeginResult<R>>({
      method: "POST",
      path: this.path(key),
      body: { fingerprint: o.fingerprint, lock_ms: o.lockMs } satisfies RequestBody<"beginIdempotency">,
      write: true,
      opts: o,
    });
    return a.body;
  }

  /**
   * The key's state, or null when unknown (never begun, given up or
   * expired): `{state: "started", locked_until, stale}` (never the owner's
   * token) or `{state: "completed", response}`. It writes nothing.
   */
  async get(key: string, opts?: ReadOptions): Promise<IdempotencyEntry<R> | null> {
    try {
      return (await this.ctx.transport.send<IdempotencyEntry<R>>({ method: "GET", path: this.path(key), opts })).body;
    } catch (e) {
      if (isCode(e, "not_found")) return null;
      throw e;
    }
  }

  /** Stores the response of an owned key (409 `lease_lost` if the ownership ran out and was taken over). */
  async complete(key: string, token: string, response: R, opts?: CallOptions): Promise<CompleteResult> {
    const a = await this.ctx.transport.send<CompleteResult>({
      method: "PUT",
      path: this.path(key),
      body: { token, response } satisfies RequestBody<"completeIdempotency">,
      write: true,
      opts,
    });
    return a.body;
  }

  /** Gives an owned key up, so that a retry may run. */
  async abandon(key: string, token: string, opts?: CallOptions): Promise<AbandonResult> {
    const a = await this.ctx.transport.send<AbandonResult>({
      method: "DELETE",
      path: this.path(key),
      body: { token } satisfies RequestBody<"giveUpIdempotency">,
      write: true,
      opts,
    });
    return a.body;
  }

  /**
   * Runs `fn` at most once per key: the first caller runs it and stores its
   * result; later callers (also concurrent ones, which wait) get the stored
   * result. If `fn` throws, the key is given up and the error rethrown, so a
   * retry may run. `replayed` tells which happened.
   */
  async run(key: string, o: BeginOptions, fn: () => Promise<R> | R): Promise<{ response: R; replayed: boolean }> {
    const began = await this.begin(key, o);
    if (began.state === "completed") return { response: began.response, replayed: true };
    let response: R;
    try {
      response = await fn();
    } catch (e) {
      try {
        await this.abandon(key, began.token, { signal: o.signal });
      } catch {
        // The ownership runs out by itself after lockMs.
      }
      throw e;
    }
    await this.complete(key, began.token, response, { signal: o.signal });
    return { response, replayed: false };
  }
}
