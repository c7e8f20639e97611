/**
 * Gates and tickets (SPEC §7, seeds/001): a lifecycle with an epoch, and
 * operations admitted under an epoch, so that nothing of an old epoch slips in
 * after a revoke or delete.
 */

import { isCode } from "./errors.js";
import { seg, type CallOptions, type ReadOptions, type Transport } from "./http.js";
import type {
  CapabilityData,
  CapabilityOp,
  GateData,
  GatePolicy,
  GatePutResult,
  GateTransition,
  GateTransitionResult,
  Json,
  JsonObject,
  TicketData,
  TicketPage,
  TicketState,
  RequestBody,
} from "./types.js";

/** The context a gate needs from its client. */
export interface GateContext {
  transport: Transport;
  nsPath: string;
}

/** Options of `gate.create()`. */
export interface GateCreateOptions extends CallOptions {
  /** `pending: "recover"` finalizes committed tickets after a terminal transition; `"reject"` (default) voids them. */
  policy?: GatePolicy;
  meta?: Json;
}

/** Options of `gate.admit()`. */
export interface AdmitOptions extends CallOptions {
  /** Your own id (e.g. the upload's); admitting it again while open returns it. Default: the server picks one. */
  ticketId?: string;
  meta?: Json;
}

/** Options of `ticket.finalize()`. */
export interface FinalizeOptions extends CallOptions {
  /** Append this entry (id = the ticket's id) to `feed`, in the same atomic step. */
  append?: { feed: string; data: JsonObject };
}

/** Options of `gate.capability()`. */
export interface CapabilityOptions extends CallOptions {
  /** Its lifetime in ms, 1000..=2592000000 (30 days; the server's `capability_ttl_ms_max`). */
  ttlMs: number;
  /** The ticket operations it allows (default: all of `admit`, `check`, `commit`, `abort`, `finalize`). */
  ops?: CapabilityOp[];
}

/** A minted capability (camelCase form of the wire's answer). */
export interface Capability {
  /** The capability (`lsc_…`): give it to `Lockstep.forCapability(url, namespace, capability)`. */
  capability: string;
  /** When it stops working (RFC 3339, the storage's clock). */
  expiresAt: string;
  /** The gate's epoch it is bound to. */
  epoch: number;
  /** The gate's id. */
  gate: string;
  /** The ticket operations it allows. */
  ops: CapabilityOp[];
}

/** One gate of a namespace. */
export class Gate {
  readonly id: string;
  private readonly ctx: GateContext;

  /** @internal Use `Lockstep.gate(id)`. */
  constructor(ctx: GateContext, id: string) {
    this.ctx = ctx;
    this.id = id;
  }

  /** @internal */
  get path(): string {
    return `${this.ctx.nsPath}/gates/${seg(this.id)}`;
  }

  /** Creates the gate (open, epoch 1; `created: true`), or updates an existing one's policy and meta. */
  async create(o: GateCreateOptions = {}): Promise<GatePutResult> {
    const body: RequestBody<"putGate"> = {};
    if (o.policy !== undefined) body.policy = o.policy;
    if (o.meta !== undefined) body.meta = o.meta;
    const a = await this.ctx.transport.send<GateData>({ method: "PUT", path: this.path, body, write: true, opts: o });
    return { ...a.body, created: a.status === 201 };
  }

  /** The gate, or null when it does not exist. */
  async get(opts?: ReadOptions): Promise<GateData | null> {
    try {
      return (await this.ctx.transport.send<GateData>({ method: "GET", path: this.path, opts })).body;
    } catch (e) {
      if (isCode(e, "not_found")) return null;
      throw e;
    }
  }

  /** Runs a transition: `pause`, `resume`, `revoke`, `delete` or `reopen`. */
  async transition(t: GateTransition, opts?: CallOptions): Promise<GateTransitionResult> {
    const a = await this.ctx.transport.send<GateTransitionResult>({
      method: "POST",
      path: `${this.path}/${t}`,
      write: true,
      opts,
    });
    return a.body;
  }

  /** open → paused (tickets survive; their steps answer 423 until resume). */
  pause(opts?: CallOptions): Promise<GateTransitionResult> {
    return this.transition("pause", opts);
  }
  /** paused → open. */
  resume(opts?: CallOptions): Promise<GateTransitionResult> {
    return this.transition("resume", opts);
  }
  /** → revoked, epoch+1, voiding the old epoch's open tickets atomically. */
  revoke(opts?: CallOptions): Promise<GateTransitionResult> {
    return this.transition("revoke", opts);
  }
  /**
   * → deleted (final), epoch+1, voiding the old epoch's open tickets
   * atomically: `DELETE /gates/{id}` (admin; a repeat answers the same).
   */
  async delete(opts?: CallOptions): Promise<GateTransitionResult> {
    const a = await this.ctx.transport.send<GateTransitionResult>({ method: "DELETE", path: this.path, write: true, opts });
    return a.body;
  }
  /** revoked → open with a new epoch. */
  reopen(opts?: CallOptions): Promise<GateTransitionResult> {
    return this.transition("reopen", opts);
  }

  /**
   * Mints a capability for this gate at its current epoch (writer; minting
   * writes nothing): a signed, expiring bearer string that allows only the
   * given ticket operations on this one gate, for an anonymous uploader
   * (`Lockstep.forCapability(url, namespace, capability)`). It is refused
   * with 410 `gate_closed` once the gate's epoch moves on (revoke, delete,
   * reopen), decided in the same transaction as the operation it tries.
   * 404 for a missing gate, 410 for a revoked or deleted one.
   */
  async capability(o: CapabilityOptions): Promise<Capability> {
    const body: RequestBody<"mintCapability"> = { ttl_ms: o.ttlMs };
    if (o.ops !== undefined) body.ops = o.ops;
    const a = await this.ctx.transport.send<CapabilityData>({
      method: "POST",
      path: `${this.path}/capabilities`,
      body,
      // Minting writes nothing: a retry mints another one, which is harmless.
      opts: o,
    });
    const c = a.body;
    return { capability: c.capability, expiresAt: c.expires_at, epoch: c.epoch, gate: c.gate, ops: c.ops };
  }

  /**
   * Admits a ticket under the current epoch: 423 `gate_paused` while paused
   * (retried by the default policy), 410 `gate_closed` once revoked or deleted.
   */
  async admit(o: AdmitOptions = {}): Promise<Ticket> {
    const body: RequestBody<"admitTicket"> = {};
    if (o.ticketId !== undefined) body.ticket_id = o.ticketId;
    if (o.meta !== undefined) body.meta = o.meta;
    const a = await this.ctx.transport.send<TicketData>({
      method: "POST",
      path: `${this.path}/tickets`,
      body,
      write: true,
      opts: o,
    });
    const data = { ...a.body, created: a.body.created ?? a.status === 201 };
    return new Ticket(this, this.ctx, data.ticket_id, data);
  }

  /** A handle on an existing ticket of this gate. */
  ticket(ticketId: string): Ticket {
    return new Ticket(this, this.ctx, ticketId, undefined);
  }

  /** Iterates the gate's tickets by id, optionally of one state. */
  async *tickets(
    o: { state?: TicketState; pageSize?: number } & ReadOptions = {},
  ): AsyncGenerator<TicketData> {
    let cursor: string | undefined;
    for (;;) {
      const a = await this.ctx.transport.send<TicketPage>({
        method: "GET",
        path: `${this.path}/tickets`,
        query: { state: o.state, limit: o.pageSize, cursor },
        opts: o,
      });
      yield* a.body.tickets;
      if (a.body.next_cursor === null || a.body.tickets.length === 0) return;
      cursor = a.body.next_cursor;
    }
  }
}

/**
 * A ticket: one operation (an upload, a settlement) admitted under an epoch.
 * Call `check()` before an external side effect and `commit()` after it; a 410
 * at commit tells you to undo the side effect. `finalize()` happens exactly
 * once, optionally appending a feed entry in the same step.
 */
export class Ticket {
  readonly id: string;
  readonly gate: Gate;
  /** The last answer seen for this ticket (from admit or an operation). */
  data: TicketData | undefined;
  private readonly ctx: GateContext;

  /** @internal */
  constructor(gate: Gate, ctx: GateContext, id: string, data: TicketData | undefined) {
    this.gate = gate;
    this.ctx = ctx;
    this.id = id;
    this.data = data;
  }

  /** The epoch the ticket was admitted under (known after admit or any operation). */
  get epoch(): number | undefined {
    return this.data?.epoch;
  }

  /** Whether admit created it (false: an existing open ticket was returned). */
  get created(): boolean | undefined {
    return this.data?.created;
  }

  private async op(op: "check" | "commit" | "finalize" | "abort", body: unknown, opts?: CallOptions): Promise<TicketData> {
    const a = await this.ctx.transport.send<TicketData>({
      method: "POST",
      path: `${this.gate.path}/tickets/${seg(this.id)}/${op}`,
      body,
      write: true,
      opts,
    });
    this.data = a.body;
    return a.body;
  }

  /** Valid only while the gate is open under the ticket's epoch (423 paused, 410 closed). */
  check(opts?: CallOptions): Promise<TicketData> {
    return this.op("check", undefined, opts);
  }

  /** Marks the side effect done; 410 means: undo it. */
  commit(opts?: CallOptions): Promise<TicketData> {
    return this.op("commit", undefined, opts);
  }

  /**
   * Finalizes a committed ticket exactly once; repeats answer the same. With
   * `append`, the feed entry (id = ticket id) is written in the same step.
   */
  finalize(o: FinalizeOptions = {}): Promise<TicketData> {
    return this.op("finalize", o.append ? { append: o.append } : undefined, o);
  }

  /** Voids an open or committed ticket (repeats are 200; after finalize 409). */
  abort(opts?: CallOptions): Promise<TicketData> {
    return this.op("abort", undefined, opts);
  }
}
