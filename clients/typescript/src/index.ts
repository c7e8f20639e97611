/**
 * `@lockstep/client`: the TypeScript client of lockstep. ESM, no runtime
 * dependencies; runs on Cloudflare Workers, Node ≥ 18, Deno, Bun and browsers.
 *
 * ```ts
 * import { Lockstep } from "@lockstep/client";
 * const ls = new Lockstep({ url: "http://127.0.0.1:7707", namespace: "shop" });
 * await ls.updateWith("cart/42", (cart) => ({ items: [...(cart?.items ?? []), "fig"] }));
 * ```
 */

export { Lockstep } from "./client.js";
export type {
  LockstepOptions,
  PutOptions,
  PatchOptions,
  DeleteOptions,
  ListOptions,
  UpdateOptions,
  UpdateResult,
  Txn,
} from "./client.js";
export { LockstepError, ConflictError, isCode } from "./errors.js";
export { isRetryable } from "./http.js";
export type { CallOptions, ReadOptions, RetryOptions, FetchLike } from "./http.js";
export { Lease } from "./lease.js";
export type { AcquireOptions } from "./lease.js";
export { Feed } from "./feed.js";
export type { EntriesOptions, EntryIterator, FeedConfig, ImportOptions, ReadSelector } from "./feed.js";
export { Gate, Ticket } from "./gate.js";
export type { AdmitOptions, Capability, CapabilityOptions, FinalizeOptions, GateCreateOptions } from "./gate.js";
export { IdempotencyScope } from "./idempotency.js";
export type { BeginOptions } from "./idempotency.js";
export type { ChangeFilter, ChangesOptions, WatchOptions } from "./changes.js";
export { SseParser } from "./sse.js";
export type { SseEvent, SseComment } from "./sse.js";
export type * from "./types.js";
