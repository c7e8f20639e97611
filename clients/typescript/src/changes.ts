/**
 * The change log (SPEC §10): paging with `changes()`, and `watch()` over
 * Server-Sent Events, which reconnects with `Last-Event-ID` and never yields a
 * revision twice.
 */

import { LockstepError } from "./errors.js";
import { abortReason, backoffDelay, isRetryable, problemOf, sleep, type CallOptions, type ReadOptions, type Transport } from "./http.js";
import { readSse } from "./sse.js";
import type { Change, ChangeEvent, ChangeKind, ChangePage, Problem } from "./types.js";

/** The context the change log needs from its client. */
export interface ChangesContext {
  transport: Transport;
  nsPath: string;
}

/** Filters of `changes()` and `watch()`. */
export interface ChangeFilter {
  /** Only changes after this revision. */
  after?: number | string;
  /** Only keys starting with this (record key, lease name, gate id, `feed/entry id`). */
  prefix?: string;
  /** Only this primitive. */
  kind?: ChangeKind;
}

/** Options of `changes()`. */
export interface ChangesOptions extends ChangeFilter, ReadOptions {
  /** Changes per request, 1..=1000 (pages hold whole revisions). */
  pageSize?: number;
}

/** Options of `watch()`. */
export interface WatchOptions extends ChangeFilter, Pick<CallOptions, "retry"> {
  /** Ends the iteration (cleanly) when aborted. */
  signal?: AbortSignal;
}

/**
 * Iterates the change log in (revision, index) order, from `after` (default:
 * the oldest change kept) up to the latest, page by page.
 */
export async function* listChanges(ctx: ChangesContext, o: ChangesOptions = {}): AsyncGenerator<Change> {
  const after = o.after === undefined ? undefined : String(o.after);
  // The first page starts `after`; the next ones from the previous page's
  // `next_cursor`, sent as `cursor=` like every listing (SPEC §10).
  let cursor: string | undefined;
  for (;;) {
    const a = await ctx.transport.send<ChangePage>({
      method: "GET",
      path: `${ctx.nsPath}/changes`,
      query: cursor === undefined ? { after, prefix: o.prefix, kind: o.kind, limit: o.pageSize } : { cursor, prefix: o.prefix, kind: o.kind, limit: o.pageSize },
      opts: o,
    });
    yield* a.body.changes;
    if (a.body.next_cursor === null || a.body.changes.length === 0) return;
    cursor = a.body.next_cursor;
  }
}

const WATCH_START = /watching after revision (\d+)/;

/**
 * Streams change events, one per revision (`{revision, changes}`), from after
 * `after` (default: from now). On a dropped connection, an end of stream, or a
 * retryable refusal it reconnects with `Last-Event-ID` set to the last
 * revision yielded, and skips any revision it already yielded. A refusal that
 * is not retryable (e.g. 410 `compacted`) is thrown; `retry.attempts` bounds
 * consecutive failed connections. Aborting `signal` ends the iteration.
 */
export async function* watchChanges(ctx: ChangesContext, o: WatchOptions = {}): AsyncGenerator<ChangeEvent> {
  const t = ctx.transport;
  const policy = t.policy({ retry: o.retry ?? {} }) || { attempts: 1, baseDelayMs: 50, maxDelayMs: 2000, maxRetryAfterMs: 30000 };
  const attempts = Math.max(1, policy.attempts);
  let last: number | undefined = o.after === undefined ? undefined : Number(o.after);
  const internal = new AbortController();
  const onAbort = () => internal.abort(o.signal ? abortReason(o.signal) : undefined);
  o.signal?.addEventListener("abort", onAbort, { once: true });
  if (o.signal?.aborted) return;
  let failures = 0;
  try {
    for (;;) {
      let retryAfter: number | undefined;
      let failure: unknown;
      try {
        const headers: Record<string, string> = { ...t.baseHeaders(), accept: "text/event-stream" };
        if (last !== undefined) headers["last-event-id"] = String(last);
        const url = t.url(`${ctx.nsPath}/watch`, {
          after: last,
          prefix: o.prefix,
          kind: o.kind,
        });
        const res = await t.fetchOnce(url, { method: "GET", headers, signal: internal.signal });
        if (!res.ok) throw await problemOf(res);
        if (!res.body) throw new LockstepError({ status: 0, code: "network_error", detail: "the watch answered no body" });
        failures = 0;
        for await (const item of readSse(res.body)) {
          if ("comment" in item) {
            const m = WATCH_START.exec(item.comment);
            // Without `after` the server starts from "now": remember where, so
            // that a reconnection before the first event resumes there.
            if (m && last === undefined) last = Number(m[1]);
            continue;
          }
          if (item.event === "error") {
            const problem = JSON.parse(item.data) as Problem;
            throw new LockstepError(problem);
          }
          if (item.event !== "change") continue;
          const ev = JSON.parse(item.data) as ChangeEvent;
          const rev = Number(ev.revision ?? item.id);
          if (last !== undefined && rev <= last) continue;
          last = rev;
          yield ev;
        }
        // The stream ended (server shutdown, proxy timeout): reconnect.
        failure = new LockstepError({ status: 0, code: "network_error", detail: "the watch stream ended" });
      } catch (e) {
        if (internal.signal.aborted) return;
        if (e instanceof LockstepError && !isRetryable(e)) throw e;
        if (!(e instanceof LockstepError)) {
          // A read error of the body: the connection dropped.
          failure = e;
        } else {
          failure = e;
          retryAfter = e.retryAfterMs;
        }
      }
      failures++;
      if (failures >= attempts) throw failure;
      try {
        await sleep(backoffDelay(failures - 1, policy, retryAfter), internal.signal);
      } catch {
        return;
      }
    }
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    internal.abort();
  }
}
