/**
 * The hand-written wire types of `src/types.ts` against the types generated
 * from `/openapi.json`: a type here that names a member the server does not
 * send, misses one it sends, or types one so that the server's value would
 * not fit, fails `tsc` (and so `npm run check`). The assertions are checked at
 * compile time; the test below only makes the file part of the suite.
 */

import { test } from "node:test";
import type { components } from "../src/generated/openapi.js";
import type * as T from "../src/types.js";

type S = components["schemas"];

/** True when A and B have the same member names. */
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;
/** True when every value of the generated type G fits the hand-written H (with `unknown` read as JSON). */
type Fits<G, H> = [G] extends [H] ? true : false;
/** Both: the same members, and the server's answer fits the client's type. */
type Matches<H, G> = SameKeys<H, G> extends true ? ([H] extends [G] ? true : false) : false;

/** Compile-time: each element must be `true`. */
const checks: [
  Matches<T.RecordData, S["Record"]>,
  Matches<Omit<T.PutResult, "created">, S["RecordPut"]>,
  Matches<T.PatchResult, S["RecordPatched"]>,
  SameKeys<T.DeleteResult, S["RecordDeleted"]>,
  Matches<T.TxnResult, S["TxnResult"]>,
  Matches<T.LeaseData, Required<S["Lease"]>>,
  Matches<T.GateData, S["Gate"]>,
  Matches<Omit<T.GateTransitionResult, never>, S["GateTransitioned"]>,
  Matches<Omit<T.TicketData, "created">, S["Ticket"]>,
  Matches<T.CapabilityData, S["Capability"]>,
  Matches<T.EntryData, S["Entry"]>,
  Matches<T.AppendResult, S["EntryAppended"]>,
  SameKeys<T.FeedConfigResult, S["FeedConfigured"]>,
  SameKeys<T.FeedInfo, S["Feed"]>,
  SameKeys<T.FeedConfigData, S["FeedConfig"]>,
  Matches<T.CompleteResult, S["IdempotencyCompleted"]>,
  Matches<T.AbandonResult, S["IdempotencyGivenUp"]>,
  Fits<S["GateState"], T.GateState>,
  Fits<S["TicketState"], T.TicketState>,
  Fits<S["Change"], T.Change>,
  Fits<S["WatchEvent"]["changes"][number], T.Change>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];

test("the hand-written wire types match the generated ones (checked by tsc)", () => {
  if (!checks.every(Boolean)) throw new Error("unreachable: tsc checks these");
});
