// What a caller sees of each table: explicit objects built field by field, so a field added to
// a table later stays private until it is added here. Each view is one validator; its type is
// derived from it.
import type { PaginationResult } from "convex/server";
import { type Infer, v } from "convex/values";
import type { Doc } from "../_generated/dataModel";
import { commandFields, runEventFields } from "../schema";
import { endReason, idleAction, runStatus } from "./status";

export const publicRun = v.object({
  _id: v.id("sandboxRuns"),
  _creationTime: v.number(),
  status: runStatus,
  template: v.string(),
  sandboxId: v.optional(v.string()),
  idempotencyKey: v.optional(v.string()),
  createdAt: v.number(),
  startedAt: v.optional(v.number()),
  lastActivityAt: v.number(),
  sandboxExpiresAt: v.optional(v.number()),
  endedAt: v.optional(v.number()),
  endReason: v.optional(endReason),
  error: v.optional(v.string()),
  killAttempts: v.number(),
  onIdle: v.optional(idleAction), // absent: kill (runs from before the pause policy)
  pausedAt: v.optional(v.number()), // when the run's last pause was asked
});
export type PublicRun = Infer<typeof publicRun>;

export const publicEvent = v.object({
  _id: v.id("runEvents"),
  _creationTime: v.number(),
  ...runEventFields,
});
export type PublicEvent = Infer<typeof publicEvent>;

export const publicCommand = v.object({
  _id: v.id("commands"),
  _creationTime: v.number(),
  ...commandFields,
});
export type PublicCommand = Infer<typeof publicCommand>;

/** Copies only the keys a view names, dropping absent optionals. */
function pick<T extends Record<string, unknown>>(doc: Record<string, unknown>, keys: readonly string[]): T {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (doc[k] !== undefined) out[k] = doc[k];
  return out as T;
}

const RUN_KEYS = Object.keys(publicRun.fields);
const EVENT_KEYS = Object.keys(publicEvent.fields);
const COMMAND_KEYS = Object.keys(publicCommand.fields);

export const toPublicRun = (r: Doc<"sandboxRuns">) => pick<PublicRun>(r, RUN_KEYS);
export const toPublicEvent = (e: Doc<"runEvents">) => pick<PublicEvent>(e, EVENT_KEYS);
export const toPublicCommand = (c: Doc<"commands">) => pick<PublicCommand>(c, COMMAND_KEYS);

/** A page of a view: the paginate result's own fields, named one by one. */
export function toPublicPage<D, P>(page: PaginationResult<D>, view: (d: D) => P) {
  return {
    page: page.page.map(view),
    isDone: page.isDone,
    continueCursor: page.continueCursor,
    ...(page.splitCursor !== undefined ? { splitCursor: page.splitCursor } : {}),
    ...(page.pageStatus !== undefined ? { pageStatus: page.pageStatus } : {}),
  };
}
