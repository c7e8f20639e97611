/**
 * Feeds (SPEC §8, seeds/000): append-only, one record per entry, idempotent by
 * id, with derived unread counts, retention, scrubbing and a legacy import.
 */

import { isCode } from "./errors.js";
import { seg, type CallOptions, type ReadOptions, type Transport } from "./http.js";
import type {
  AppendResult,
  EntryData,
  EntryDeleteResult,
  EntryPage,
  FeedConfigResult,
  FeedInfo,
  ImportResult,
  JsonObject,
  MarkReadResult,
  RequestBody,
} from "./types.js";

/** The context a feed needs from its client. */
export interface FeedContext {
  transport: Transport;
  nsPath: string;
}

/** Options of `feed.entries()` and `feed.page()`. */
export interface EntriesOptions extends ReadOptions {
  /** `desc` (newest first, the default) or `asc`. */
  order?: "desc" | "asc";
  /** Yield at most this many entries in all (default: every entry). */
  limit?: number;
  /** Entries per request, 1..=1000 (default `min(limit, 100)`). */
  pageSize?: number;
  /** Start after this entry's cursor (`next_cursor` of a page, or an entry's `cursor`). */
  cursor?: string;
}

/** What `feed.markRead()` marks. */
export type ReadSelector =
  | { ids: string[] }
  /** Every entry at or older than the one this cursor points to. */
  | { upTo: string }
  | { all: true };

/** A feed's retention and scrubbing (camelCase form of the wire's config). */
export interface FeedConfig {
  /** Keep at most this many newest entries visible. */
  maxEntries?: number;
  /** Hide entries older than this (measured from `at`). */
  maxAgeMs?: number;
  /** Remove these data fields from entries older than `afterMs`. */
  scrub?: { fields: string[]; afterMs: number };
}

/** Options of `feed.import()`. */
export interface ImportOptions extends CallOptions {
  /** Entries per request (the server takes at most 1,000; default 1,000). */
  chunkSize?: number;
}

/**
 * The async iterator of `feed.entries()`. `unreadCount` is the feed's unread
 * count as of the last page read (undefined before the first).
 */
export interface EntryIterator<D> extends AsyncIterableIterator<EntryData<D>> {
  /** Unread entries of the feed, as the last page fetched reported. */
  readonly unreadCount: number | undefined;
  /** The cursor after the last page fetched (null at the end). */
  readonly nextCursor: string | null | undefined;
}

/** One feed of a namespace. */
export class Feed<D extends JsonObject = JsonObject> {
  readonly name: string;
  private readonly ctx: FeedContext;

  /** @internal Use `Lockstep.feed(name)`. */
  constructor(ctx: FeedContext, name: string) {
    this.ctx = ctx;
    this.name = name;
  }

  private get path(): string {
    return `${this.ctx.nsPath}/feeds/${seg(this.name)}`;
  }

  /**
   * Appends an entry; idempotent by `id`: an existing id answers the original
   * entry with `created: false` (even if `data` differs).
   */
  async append(entry: { id: string; data: D; at?: string | Date }, opts?: CallOptions): Promise<AppendResult<D>> {
    const body: Record<string, unknown> = { id: entry.id, data: entry.data };
    if (entry.at !== undefined) body["at"] = entry.at instanceof Date ? entry.at.toISOString() : entry.at;
    const a = await this.ctx.transport.send<AppendResult<D>>({
      method: "POST",
      path: `${this.path}/entries`,
      body,
      write: true,
      opts,
    });
    return a.body;
  }

  /**
   * The feed's configuration in force (`config`; `own_config` false when it
   * is the namespace's defaults) and its entry and unread counts. A feed with
   * no entries answers zero counts.
   */
  async get(opts?: ReadOptions): Promise<FeedInfo> {
    return (await this.ctx.transport.send<FeedInfo>({ method: "GET", path: this.path, opts })).body;
  }

  /** Same as {@link Feed.get}. */
  info(opts?: ReadOptions): Promise<FeedInfo> {
    return this.get(opts);
  }

  /** One page of entries: `{entries, next_cursor, unread_count}`. */
  async page(o: EntriesOptions = {}): Promise<EntryPage<D>> {
    const a = await this.ctx.transport.send<EntryPage<D>>({
      method: "GET",
      path: `${this.path}/entries`,
      query: { order: o.order, limit: o.pageSize ?? o.limit, cursor: o.cursor },
      opts: o,
    });
    return a.body;
  }

  /** The feed's unread count (one small read). */
  async unreadCount(opts?: ReadOptions): Promise<number> {
    return (await this.page({ ...opts, limit: 1 })).unread_count;
  }

  /**
   * Iterates the entries, newest first by default, page by page; paging is
   * stable under concurrent appends. The iterator's `unreadCount` holds the
   * count reported with the last page.
   */
  entries(o: EntriesOptions = {}): EntryIterator<D> {
    const feed = this;
    const total = o.limit ?? Infinity;
    const pageSize = o.pageSize ?? (Number.isFinite(total) ? Math.min(Math.max(total, 1), 1000) : undefined);
    let unread: number | undefined;
    let next: string | null | undefined;
    async function* run(): AsyncGenerator<EntryData<D>> {
      let cursor = o.cursor;
      let yielded = 0;
      while (yielded < total) {
        const page = await feed.page({ ...o, cursor, pageSize, limit: undefined });
        unread = page.unread_count;
        next = page.next_cursor;
        for (const e of page.entries) {
          if (yielded >= total) return;
          yielded++;
          yield e;
        }
        if (page.next_cursor === null || page.entries.length === 0) return;
        cursor = page.next_cursor;
      }
    }
    const gen = run();
    const it: EntryIterator<D> = {
      get unreadCount() {
        return unread;
      },
      get nextCursor() {
        return next;
      },
      next: () => gen.next(),
      return: (v?: unknown) => gen.return(v as undefined),
      throw: (e?: unknown) => gen.throw(e),
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  /** Marks entries read (idempotent): `{ids}`, `{upTo: cursor}` or `{all: true}`. */
  async markRead(selector: ReadSelector, opts?: CallOptions): Promise<MarkReadResult> {
    let body: RequestBody<"markRead">;
    if ("ids" in selector) body = { ids: selector.ids };
    else if ("upTo" in selector) body = { up_to: selector.upTo };
    else body = { all: true };
    const a = await this.ctx.transport.send<MarkReadResult>({
      method: "POST",
      path: `${this.path}/read`,
      body,
      write: true,
      opts,
    });
    return a.body;
  }

  /** Sets the feed's cap, maximum age and scrubbed fields. */
  async configure(config: FeedConfig, opts?: CallOptions): Promise<FeedConfigResult> {
    const a = await this.ctx.transport.send<FeedConfigResult>({
      method: "PUT",
      path: this.path,
      body: feedConfigBody(config),
      write: true,
      opts,
    });
    return a.body;
  }

  /**
   * Imports a legacy JSON array (each element an object with a string `id`, an
   * optional `at`, and a `data` object or else its other fields as the data),
   * idempotently: ids already present, or repeated, are skipped. Arrays over
   * the server's 1,000 per call are sent in chunks; the counts are summed.
   */
  async import(entries: ReadonlyArray<{ id: string } & Record<string, unknown>>, opts: ImportOptions = {}): Promise<ImportResult> {
    const size = Math.max(1, Math.min(opts.chunkSize ?? 1000, 1000));
    const total: ImportResult = { imported: 0, skipped: 0, revision: 0 };
    for (let i = 0; i < entries.length || (i === 0 && entries.length === 0); i += size) {
      const chunk = entries.slice(i, i + size);
      const a = await this.ctx.transport.send<ImportResult>({
        method: "POST",
        path: `${this.path}/import`,
        body: chunk,
        write: true,
        // One key per chunk: a caller's key is suffixed with the chunk's index.
        opts: { ...opts, idempotencyKey: opts.idempotencyKey && `${opts.idempotencyKey}.${i / size}` },
      });
      total.imported += a.body.imported;
      total.skipped += a.body.skipped;
      total.revision = a.body.revision;
      if (entries.length === 0) break;
    }
    return total;
  }

  /** Deletes one entry; `deleted: false` when it did not exist. */
  async deleteEntry(id: string, opts?: CallOptions): Promise<EntryDeleteResult> {
    try {
      const a = await this.ctx.transport.send<EntryDeleteResult>({
        method: "DELETE",
        path: `${this.path}/entries/${seg(id)}`,
        write: true,
        opts,
      });
      return a.body;
    } catch (e) {
      if (isCode(e, "not_found")) return { id, deleted: false };
      throw e;
    }
  }
}

/** The wire form of a feed configuration. */
export function feedConfigBody(c: FeedConfig): RequestBody<"configureFeed"> {
  const body: RequestBody<"configureFeed"> = {};
  if (c.maxEntries !== undefined) body.max_entries = c.maxEntries;
  if (c.maxAgeMs !== undefined) body.max_age_ms = c.maxAgeMs;
  if (c.scrub !== undefined) body.scrub = { fields: c.scrub.fields, after_ms: c.scrub.afterMs };
  return body;
}
