/**
 * The client: `new Lockstep({ url, namespace })`, records, transactions,
 * `updateWith`, and the entry points of leases, feeds, gates, the idempotency
 * store and the change log.
 */

import { ConflictError, LockstepError, isCode } from "./errors.js";
import { Transport, seg, sleep, type CallOptions, type ReadOptions, type FetchLike, type RetryOptions } from "./http.js";
import { acquireLease, withLease, type AcquireOptions, type Lease } from "./lease.js";
import { Feed } from "./feed.js";
import { Gate } from "./gate.js";
import { IdempotencyScope } from "./idempotency.js";
import { listChanges, watchChanges, type ChangesOptions, type WatchOptions } from "./changes.js";
import type {
  Change,
  ChangeEvent,
  Compare,
  Current,
  DeleteResult,
  FeedPage,
  FeedSummary,
  Info,
  Json,
  JsonObject,
  JsonPatchOp,
  LeaseState,
  NamespaceDeleted,
  NamespacePage,
  PatchResult,
  PutResult,
  RecordData,
  RecordPage,
  TxnOp,
  TxnResult,
  BreakResult,
  RequestBody,
} from "./types.js";

/** Options of `new Lockstep(...)`. */
export interface LockstepOptions {
  /** The server, e.g. `http://127.0.0.1:7707`. */
  url: string;
  /** The namespace every call works in (`[a-z0-9][a-z0-9._-]{0,62}`). */
  namespace: string;
  /**
   * A bearer token (`Authorization: Bearer <token>`): a token's secret
   * (`lst_…`) when the server has tokens, or a capability (`lsc_…`) minted
   * with `gate(id).capability(...)`, which allows only the ticket operations
   * of one gate (see {@link Lockstep.forCapability}).
   */
  token?: string;
  /** A `fetch` implementation (default: the global one). */
  fetch?: FetchLike;
  /** The retry policy of every call (default: 6 attempts, 50 ms doubling to 2 s, full jitter); `false` disables retries. */
  retry?: RetryOptions | false;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
  /**
   * Gives up each attempt after this many ms (code `timeout`, retried like a
   * network error; a waiting acquire adds its `waitMs`). Default: no timeout.
   */
  timeoutMs?: number;
}

/** Options of `put`. */
export interface PutOptions extends CallOptions {
  /** Apply only at this version (0 = must not exist); else 409 `version_mismatch` with `current`. */
  expectedVersion?: number;
  /** Expire after this many ms (storage clock). Without it a PUT clears any TTL. */
  ttlMs?: number;
  /** Skip the precondition (admin only; marked `forced` in the change log). */
  force?: boolean;
}

/** Options of `patch`. */
export interface PatchOptions extends CallOptions {
  /** Apply only at this version; else 409 `version_mismatch`. */
  expectedVersion?: number;
  /**
   * `merge` (RFC 7396) or `json-patch` (RFC 6902). Default: `json-patch` for
   * an array, `merge` otherwise.
   */
  type?: "merge" | "json-patch";
}

/** Options of `delete`. */
export interface DeleteOptions extends CallOptions {
  /** Delete only at this version; else 409 `version_mismatch`. */
  expectedVersion?: number;
}

/** Options of `list`. */
export interface ListOptions extends ReadOptions {
  /** Only keys starting with this. */
  prefix?: string;
  /** Records per request, 1..=1000 (default 100). */
  pageSize?: number;
  /** Start after this cursor. */
  cursor?: string;
}

/** Options of `updateWith`. */
export interface UpdateOptions extends ReadOptions {
  /** Writes tried before giving up with a {@link ConflictError} (default 5). */
  attempts?: number;
  /** Expire after this many ms (each write sets it again). */
  ttlMs?: number;
}

/** The result of `updateWith`. */
export interface UpdateResult<T> {
  key: string;
  value: T;
  version: number;
  /** The revision of the write; absent when `fn` wrote nothing. */
  revision?: number;
  /** How many writes it took. */
  attempts: number;
}

/** A transaction: compares, then one of two branches, atomically. */
export interface Txn {
  compare?: Compare[];
  success?: TxnOp[];
  failure?: TxnOp[];
}

/**
 * The lockstep client. One instance works in one namespace; `withNamespace`
 * gives a sibling in another. It holds no connection of its own, so it is
 * cheap to create (e.g. once per Worker request).
 */
export class Lockstep {
  readonly namespace: string;
  /** @internal */
  readonly transport: Transport;
  /** @internal `/v1/ns/{ns}` */
  readonly nsPath: string;
  private readonly options: LockstepOptions;

  constructor(options: LockstepOptions) {
    if (!options || typeof options.url !== "string" || !options.url) throw new TypeError("Lockstep: `url` is required");
    if (typeof options.namespace !== "string" || !options.namespace) {
      throw new TypeError("Lockstep: `namespace` is required");
    }
    this.options = options;
    this.namespace = options.namespace;
    this.transport = new Transport(options);
    this.nsPath = `/v1/ns/${seg(options.namespace)}`;
  }

  /**
   * A client that holds only a capability (`lsc_…`, from
   * `gate(id).capability(...)`): what an anonymous uploader of a receive link
   * is given instead of a token (SPEC §11, seeds/001). With it,
   * `ls.gate(id).admit(...)` and `ls.gate(id).ticket(t).check()`, `.commit()`,
   * `.finalize(...)` and `.abort()` work on that one gate, for the operations
   * it was minted with, until it expires or the gate's epoch moves on. Every
   * other call is refused: 403 `forbidden` (another gate, another operation,
   * any other route), 401 `unauthorized` (expired or tampered with), 410
   * `gate_closed` (revoked, deleted or reopened since it was minted).
   */
  static forCapability(
    url: string,
    namespace: string,
    capability: string,
    options: Omit<LockstepOptions, "url" | "namespace" | "token"> = {},
  ): Lockstep {
    return new Lockstep({ ...options, url, namespace, token: capability });
  }

  /** A client of the same server in another namespace. */
  withNamespace(namespace: string): Lockstep {
    return new Lockstep({ ...this.options, namespace });
  }

  /** `GET /v1/info`: version, backend and durability. */
  async info(opts?: ReadOptions): Promise<Info> {
    return (await this.transport.send<Info>({ method: "GET", path: "/v1/info", opts })).body;
  }

  /** Iterates the namespaces that hold anything, by name (admin). */
  async *namespaces(o: { pageSize?: number } & ReadOptions = {}): AsyncGenerator<string> {
    let cursor: string | undefined;
    for (;;) {
      const a = await this.transport.send<NamespacePage>({
        method: "GET",
        path: "/v1/namespaces",
        query: { limit: o.pageSize, cursor },
        opts: o,
      });
      yield* a.body.namespaces;
      if (a.body.next_cursor === null || a.body.namespaces.length === 0) return;
      cursor = a.body.next_cursor;
    }
  }

  /** Removes the namespace and everything in it (admin). */
  async deleteNamespace(opts?: ReadOptions): Promise<NamespaceDeleted> {
    return (await this.transport.send<NamespaceDeleted>({ method: "DELETE", path: this.nsPath, opts })).body;
  }

  // -------------------------------------------------------------------------
  // Records

  private recordPath(key: string): string {
    return `${this.nsPath}/records/${seg(key)}`;
  }

  /** The record, or null when it does not exist (or expired). */
  async get<T = Json>(key: string, opts?: ReadOptions): Promise<RecordData<T> | null> {
    try {
      return (await this.transport.send<RecordData<T>>({ method: "GET", path: this.recordPath(key), opts })).body;
    } catch (e) {
      if (isCode(e, "not_found")) return null;
      throw e;
    }
  }

  /**
   * Creates or replaces a record. With `expectedVersion` it applies only at
   * that version (0: only if absent), else throws `version_mismatch` with
   * `current`.
   */
  async put<T = Json>(key: string, value: T, o: PutOptions = {}): Promise<PutResult> {
    const body: RequestBody<"putRecord"> = { value };
    if (o.expectedVersion !== undefined) body.expected_version = o.expectedVersion;
    if (o.ttlMs !== undefined) body.ttl_ms = o.ttlMs;
    if (o.force !== undefined) body.force = o.force;
    const a = await this.transport.send<Omit<PutResult, "created">>({
      method: "PUT",
      path: this.recordPath(key),
      body,
      write: true,
      opts: o,
    });
    return { ...a.body, created: a.status === 201 };
  }

  /**
   * Patches a record on the server, atomically: a merge patch (RFC 7396, an
   * object) or a JSON Patch (RFC 6902, an array, whose `test` operations are
   * preconditions: 409 `patch_test_failed`). 404 (thrown) when absent.
   */
  async patch<T = Json>(key: string, patch: JsonObject | JsonPatchOp[] | Json, o: PatchOptions = {}): Promise<PatchResult<T>> {
    const type = o.type ?? (Array.isArray(patch) ? "json-patch" : "merge");
    const a = await this.transport.send<PatchResult<T>>({
      method: "PATCH",
      path: this.recordPath(key),
      query: { expected_version: o.expectedVersion },
      body: patch,
      contentType: type === "merge" ? "application/merge-patch+json" : "application/json-patch+json",
      write: true,
      opts: o,
    });
    return a.body;
  }

  /** Deletes a record; `deleted: false` when it did not exist. */
  async delete(key: string, o: DeleteOptions = {}): Promise<DeleteResult> {
    try {
      const a = await this.transport.send<DeleteResult>({
        method: "DELETE",
        path: this.recordPath(key),
        query: { expected_version: o.expectedVersion },
        write: true,
        opts: o,
      });
      return a.body;
    } catch (e) {
      if (isCode(e, "not_found")) return { key, deleted: false };
      throw e;
    }
  }

  /** One page of records in key order. */
  async listPage<T = Json>(o: ListOptions = {}): Promise<RecordPage<T>> {
    const a = await this.transport.send<RecordPage<T>>({
      method: "GET",
      path: `${this.nsPath}/records`,
      query: { prefix: o.prefix, limit: o.pageSize, cursor: o.cursor },
      opts: o,
    });
    return a.body;
  }

  /** Iterates the live records in key order, page by page. */
  async *list<T = Json>(o: ListOptions = {}): AsyncGenerator<RecordData<T>> {
    let cursor = o.cursor;
    for (;;) {
      const page = await this.listPage<T>({ ...o, cursor });
      yield* page.records;
      if (page.next_cursor === null || page.records.length === 0) return;
      cursor = page.next_cursor;
    }
  }

  /** Compares, then applies `success` or `failure`, as one atomic step. */
  async txn(t: Txn, opts?: CallOptions): Promise<TxnResult> {
    const a = await this.transport.send<TxnResult>({
      method: "POST",
      path: `${this.nsPath}/txn`,
      body: { compare: t.compare ?? [], success: t.success ?? [], failure: t.failure ?? [] },
      write: true,
      opts,
    });
    return a.body;
  }

  /**
   * Read-modify-write without lost updates (seeds/004): reads the record,
   * computes `fn(current)` (null when absent) and writes it at the version
   * read. On `version_mismatch` it re-applies `fn` to the server's current
   * value (carried by the refusal, so no extra read) up to `attempts` writes,
   * (after a short jittered pause) then throws a {@link ConflictError} holding `local` (the last value
   * computed) and `remote` (the server's `{version, value}`, or null).
   * Returning `undefined` from `fn` leaves the record as it is.
   */
  async updateWith<T = Json>(
    key: string,
    fn: (current: T | null, record: Current<T> | null) => T | undefined | Promise<T | undefined>,
    o: UpdateOptions = {},
  ): Promise<UpdateResult<T>> {
    const attempts = Math.max(1, o.attempts ?? 5);
    const rec = await this.get<T>(key, o);
    let current: Current<T> | null = rec ? { version: rec.version, value: rec.value } : null;
    for (let n = 1; ; n++) {
      const next = await fn(current ? current.value : null, current);
      if (next === undefined) {
        if (!current) throw new TypeError(`updateWith: ${key} is absent and fn returned undefined`);
        return { key, value: current.value, version: current.version, attempts: n - 1 };
      }
      try {
        const put: PutOptions = { expectedVersion: current?.version ?? 0 };
        if (o.ttlMs !== undefined) put.ttlMs = o.ttlMs;
        if (o.signal !== undefined) put.signal = o.signal;
        if (o.retry !== undefined) put.retry = o.retry;
        const r = await this.put(key, next, put);
        return { key, value: next, version: r.version, revision: r.revision, attempts: n };
      } catch (e) {
        if (!isCode(e, "version_mismatch")) throw e;
        const remote = (e.current ?? null) as Current<T> | null;
        if (n >= attempts) throw new ConflictError<T>(key, next, remote, n, e);
        current = remote;
        // Full jitter before re-applying, so that hot writers spread out.
        await sleep(Math.random() * Math.min(10 * 2 ** (n - 1), 500), o.signal);
      }
    }
  }

  // -------------------------------------------------------------------------
  // Leases

  /**
   * Acquires a lease: a fresh owner token and a fence larger than any earlier
   * holder's. Held by someone else → 409 `lease_held` (with `holder`,
   * `expires_at`), unless `waitMs` lets it wait in line. The lease renews
   * itself in the background until `release()` (see {@link Lease}).
   */
  acquire(name: string, o: AcquireOptions): Promise<Lease> {
    return acquireLease(this, name, o);
  }

  /**
   * Runs `fn` holding the lease `name`, released in `finally` (seeds/002).
   * Use `lease.signal` and `lease.fenceCompare(...)` inside; a lease lost
   * while `fn` ran is thrown after it.
   */
  withLock<T>(name: string, o: AcquireOptions, fn: (lease: Lease) => Promise<T> | T): Promise<T> {
    return withLease(this, name, o, fn);
  }

  /** Who holds a lease, until when, and its last fence. */
  async lease(name: string, opts?: ReadOptions): Promise<LeaseState> {
    return (await this.transport.send<LeaseState>({ method: "GET", path: `${this.nsPath}/leases/${seg(name)}`, opts })).body;
  }

  /** Clears a live lease whatever its token (admin; recorded in the change log). */
  async breakLease(name: string, opts?: CallOptions): Promise<BreakResult> {
    return (
      await this.transport.send<BreakResult>({
        method: "POST",
        path: `${this.nsPath}/leases/${seg(name)}/break`,
        write: true,
        opts,
      })
    ).body;
  }

  // -------------------------------------------------------------------------
  // Feeds, gates, idempotency

  /** A feed of this namespace. */
  feed<D extends JsonObject = JsonObject>(name: string): Feed<D> {
    return new Feed<D>(this, name);
  }

  /** Iterates the feeds with their entry and unread counts. */
  async *feeds(o: { prefix?: string; pageSize?: number } & ReadOptions = {}): AsyncGenerator<FeedSummary> {
    let cursor: string | undefined;
    for (;;) {
      const a = await this.transport.send<FeedPage>({
        method: "GET",
        path: `${this.nsPath}/feeds`,
        query: { prefix: o.prefix, limit: o.pageSize, cursor },
        opts: o,
      });
      yield* a.body.feeds;
      if (a.body.next_cursor === null || a.body.feeds.length === 0) return;
      cursor = a.body.next_cursor;
    }
  }

  /** A gate of this namespace. */
  gate(id: string): Gate {
    return new Gate(this, id);
  }

  /** A scope of the idempotency store (one of the application's endpoints): `begin`, `complete`, `abandon`, `get`, `run`. */
  idempotency<R = Json>(scope: string): IdempotencyScope<R> {
    return new IdempotencyScope<R>(this, scope);
  }

  // -------------------------------------------------------------------------
  // Changes

  /** Iterates the change log from `after` (default: the oldest kept) to the latest. */
  changes(o: ChangesOptions = {}): AsyncGenerator<Change> {
    return listChanges(this, o);
  }

  /**
   * Streams change events (one per revision) from after `after` (default:
   * from now), reconnecting with `Last-Event-ID`; never yields a revision
   * twice. Abort `signal` (or `break`) to stop.
   */
  watch(o: WatchOptions = {}): AsyncGenerator<ChangeEvent> {
    return watchChanges(this, o);
  }
}
