/**
 * The wire types of the lockstep API: the JSON bodies the server answers, as
 * documented in `docs/*.md` and SPEC §4–§10.
 *
 * Where the generated types (`./generated/openapi.ts`, produced by `npm run
 * gen:types` from `/openapi.json`, whose schemas are derived from the server's
 * Rust types) say all there is, a type here is an alias of the generated one.
 * The others stay written here because they say more than the wire schema:
 * a generic value type (`RecordData<T>`), literal unions for states, or a
 * member the client adds itself (`created`, an optional `revision`).
 *
 * Every write answer carries the `revision` it committed at (acquire's is its
 * fence; gate and ticket answers name the revision of the object's last write,
 * so a repeat answers byte-identically): `revision` is required wherever the
 * server always sends it.
 */

import type { components, operations } from "./generated/openapi.js";

/** The schemas of `/openapi.json`, derived from the server's Rust wire types. */
type Schemas = components["schemas"];

/**
 * The JSON request body of an operation, from the types generated from
 * `/openapi.json`: the client builds its bodies with these, so a field the
 * server does not know (a 400 there) fails the type check here. Bodies whose
 * schema has a free-form object (`data`, a transaction's items) are typed by
 * this module until the document describes them.
 */
export type RequestBody<Op extends keyof operations> = operations[Op] extends {
  requestBody: { content: { "application/json": infer B } };
}
  ? B
  : never;

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** RFC 3339 UTC time string. */
export type Time = string;

/** An RFC 9457 problem document (`application/problem+json`). */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  /** The stable machine-readable code (SPEC §3). */
  code: string;
  [member: string]: unknown;
}

/** `current` of `version_mismatch` / `patch_test_failed`. */
export interface Current<T = Json> {
  version: number;
  value: T;
}

// ---------------------------------------------------------------------------
// System

/** `GET /v1/info`. */
export type Info = Schemas["Info"];

/** `GET /v1/namespaces` (admin). */
export interface NamespacePage extends Page {
  namespaces: string[];
}

/** `DELETE /v1/ns/{ns}`. */
export type NamespaceDeleted = Schemas["NamespaceDeleted"];

// ---------------------------------------------------------------------------
// Records (§4)

/** `GET /records/{key}`, and each element of a listing. */
export interface RecordData<T = Json> {
  key: string;
  value: T;
  version: number;
  created_at: Time;
  updated_at: Time;
  expires_at: Time | null;
}

/** `PUT /records/{key}`: 201 created or 200 replaced. */
export interface PutResult {
  key: string;
  version: number;
  revision: number;
  /** Client-side: true when the server answered 201. */
  created: boolean;
}

/** `PATCH /records/{key}`. */
export interface PatchResult<T = Json> {
  key: string;
  version: number;
  value: T;
  revision: number;
}

/** `DELETE /records/{key}`; `deleted: false` (client-side, without `revision`) when it was absent. */
export interface DeleteResult {
  key: string;
  deleted: boolean;
  /** The revision of the delete; absent when nothing was deleted. */
  revision?: number;
}

/** Any listing: `{<plural>: [...], next_cursor}`. */
export interface Page {
  next_cursor: string | null;
}

/** `GET /records`. */
export interface RecordPage<T = Json> extends Page {
  records: RecordData<T>[];
}

/** RFC 6902 JSON Patch operation. */
export type JsonPatchOp =
  | { op: "add" | "replace" | "test"; path: string; value: Json }
  | { op: "remove"; path: string }
  | { op: "move" | "copy"; from: string; path: string };

// ---------------------------------------------------------------------------
// Transactions (§5)

/** A transaction compare. */
export type Compare =
  | { key: string; version: number }
  | { key: string; exists: boolean }
  | { key: string; value: Json }
  | { lease: string; token: string }
  | { fence: { resource: string; token: number } };

/** A transaction operation. */
export type TxnOp =
  | { get: { key: string } }
  | { put: { key: string; value: Json; ttl_ms?: number } }
  | { delete: { key: string } }
  | { patch: { key: string; merge: Json } }
  | { incr: { key: string; by: number } };

/** The result of one operation of the applied branch. */
export type TxnOpResult =
  | { key: string; value: Json; version: number }
  | { key: string; deleted: boolean }
  | null;

/** `POST /txn`. */
export interface TxnResult {
  succeeded: boolean;
  /** Indexes of the compares that did not hold. */
  failed: number[];
  results: TxnOpResult[];
  revision: number;
}

// ---------------------------------------------------------------------------
// Leases (§6)

/** `POST /leases/{name}/acquire` and `/renew`. */
export interface LeaseData {
  name: string;
  token: string;
  fence: number;
  holder: string | null;
  acquired_at: Time;
  expires_at: Time;
  revision: number;
}

/** `GET /leases/{name}`. */
export type LeaseState = Schemas["LeaseState"];

/** `POST /leases/{name}/release`. */
export type ReleaseResult = Schemas["LeaseReleased"];

/** `POST /leases/{name}/break`. */
export type BreakResult = Schemas["LeaseBroken"];

// ---------------------------------------------------------------------------
// Gates (§7)

export type GateState = Schemas["GateState"];
export type GateTransition = "pause" | "resume" | "revoke" | "delete" | "reopen";
export type TicketState = Schemas["TicketState"];
export type TicketOp = "check" | "commit" | "finalize" | "abort";

export interface GatePolicy {
  /** What finalize does with a committed ticket after the gate went terminal. */
  pending?: "reject" | "recover";
}

/** `GET /gates/{id}` and every gate answer; `revision` is that of the gate's last write. */
export interface GateData {
  id: string;
  state: GateState;
  epoch: number;
  policy: GatePolicy;
  meta: Json;
  created_at: Time;
  updated_at: Time;
  revision: number;
}

/** `PUT /gates/{id}`; `created` is client-side (201). */
export interface GatePutResult extends GateData {
  created: boolean;
}

/** `POST /gates/{id}/{transition}`. */
export interface GateTransitionResult extends GateData {
  /** Whether the state changed (false: a no-op repeat). */
  changed: boolean;
  /** Open tickets of the old epoch voided now (terminal transitions). */
  voided: number;
  /** Committed, unfinalized tickets of the old epoch (terminal transitions). */
  pending: number;
  revision: number;
}

/** A ticket, as every ticket answer carries it. */
export interface TicketData {
  ticket_id: string;
  gate: string;
  epoch: number;
  state: TicketState;
  meta: Json;
  recovered: boolean;
  finalized_revision: number | null;
  created_at: Time;
  updated_at: Time;
  /** `POST /gates/{id}/tickets`: false when an existing open ticket was returned. */
  created?: boolean;
  revision: number;
}

/** A ticket operation a capability may allow (`admit` is `POST /gates/{id}/tickets`). */
export type CapabilityOp = Schemas["CapOp"];

/** `POST /gates/{id}/capabilities`: 201. */
export interface CapabilityData {
  /** The capability (`lsc_…`): send it as the bearer token. */
  capability: string;
  expires_at: Time;
  /** The gate's epoch it is bound to: once the epoch moves on it is refused with 410. */
  epoch: number;
  gate: string;
  ops: CapabilityOp[];
}

/** `GET /gates/{id}/tickets`. */
export interface TicketPage extends Page {
  tickets: TicketData[];
}

// ---------------------------------------------------------------------------
// Feeds (§8)

/** An entry of a feed. */
export interface EntryData<D = JsonObject> {
  id: string;
  at: Time;
  data: D;
  read: boolean;
  revision: number;
  /** Points at this entry: usable as `cursor` and as `markRead({ upTo })`. */
  cursor: string;
}

/** `POST /feeds/{feed}/entries`: 201 created, or 200 the original with `created: false`. */
export interface AppendResult<D = JsonObject> extends EntryData<D> {
  created: boolean;
}

/** `GET /feeds/{feed}/entries`. */
export interface EntryPage<D = JsonObject> extends Page {
  entries: EntryData<D>[];
  unread_count: number;
}

/** A feed's configuration (wire form). */
export interface FeedConfigData {
  max_entries?: number | null;
  max_age_ms?: number | null;
  scrub?: { fields: string[]; after_ms: number } | null;
}

/** `PUT /feeds/{feed}`. */
export interface FeedConfigResult {
  feed: string;
  config: FeedConfigData;
  revision: number;
}

/** `POST /feeds/{feed}/import`. */
export type ImportResult = Schemas["FeedImported"];

/** `POST /feeds/{feed}/read`. */
export type MarkReadResult = Schemas["MarkedRead"];

/** `DELETE /feeds/{feed}/entries/{id}`; `deleted: false` (client-side, without `revision`) when absent. */
export interface EntryDeleteResult {
  id: string;
  deleted: boolean;
  /** The revision of the delete; absent when nothing was deleted. */
  revision?: number;
}

/** One element of `GET /feeds`. */
export type FeedSummary = Schemas["FeedSummary"];

/** `GET /feeds`. */
export interface FeedPage extends Page {
  feeds: FeedSummary[];
}

/** `GET /feeds/{feed}`: the configuration in force (its own, else the namespace's defaults) and the counts. */
export interface FeedInfo {
  feed: string;
  /** The configuration in force. */
  config: FeedConfigData;
  /** Whether `config` is the feed's own (false: the namespace's defaults, `PUT /feed-defaults`). */
  own_config: boolean;
  /** Visible entries. */
  entries: number;
  unread_count: number;
}

// ---------------------------------------------------------------------------
// Idempotency store (§9)

/** `POST /idempotency/{scope}/{key}`. */
export type BeginResult<R = Json> =
  | { state: "started"; token: string; revision: number }
  | { state: "completed"; response: R };

/** `GET /idempotency/{scope}/{key}`: the key's state, never the owner's token. */
export type IdempotencyEntry<R = Json> =
  | {
      scope: string;
      key: string;
      state: "started";
      /** Until when the owner holds it. */
      locked_until: Time;
      /** The owner's lock ran out: the next `begin` takes it over. */
      stale: boolean;
      expires_at: Time;
    }
  | { scope: string; key: string; state: "completed"; response: R; expires_at: Time };

/** `PUT /idempotency/{scope}/{key}`. */
export interface CompleteResult {
  state: "completed";
  revision: number;
}

/** `DELETE /idempotency/{scope}/{key}`. */
export interface AbandonResult {
  released: boolean;
  revision: number;
}

// ---------------------------------------------------------------------------
// Changes (§10)

export type ChangeKind = Schemas["ChangeKind"];

/** What happened to the object. */
export type ChangeOp = Schemas["ChangeOp"];

/** One entry of the change log. */
export type Change = Schemas["Change"];

/** `GET /changes`. */
export interface ChangePage extends Page {
  changes: Change[];
}

/** One SSE event of `GET /watch`: every change of one revision. */
export interface ChangeEvent {
  revision: number;
  changes: Change[];
}
