import type { Doc } from "../_generated/dataModel";
import type { QueryCtx } from "../_generated/server";
import type { Auth, PaginationOptions } from "convex/server";
import { getConfig } from "./config";
import { echo, fail } from "./errors";

/** The caller's identity, or UNAUTHENTICATED. Runs belong to `tokenIdentifier`. */
export async function requireOwner(ctx: { auth: Auth }): Promise<string> {
  const identity = await ctx.auth.getUserIdentity();
  if (!identity) throw fail("UNAUTHENTICATED");
  return identity.tokenIdentifier;
}

/**
 * The caller's run. A malformed id, a missing run and another user's run all answer the same
 * NOT_FOUND, so nothing leaks about which runs exist.
 */
export async function getOwnedRun(
  ctx: QueryCtx,
  ownerId: string,
  runId: string,
): Promise<Doc<"sandboxRuns">> {
  const id =
    typeof runId === "string" && runId.length <= 64 ? ctx.db.normalizeId("sandboxRuns", runId) : null;
  const run = id ? await ctx.db.get("sandboxRuns", id) : null;
  if (!run || run.ownerId !== ownerId) throw fail("NOT_FOUND");
  return run;
}

export function invalid(message: string) {
  return fail("INVALID_ARGUMENT", message);
}

export function checkTemplate(template: string) {
  if (!getConfig().templates.includes(template)) {
    throw fail("INVALID_TEMPLATE", `Unknown template "${echo(template)}"`);
  }
}

export function checkIdempotencyKey(key: string | undefined) {
  if (key === undefined) return;
  if (key.length < 1 || key.length > 128 || !/^[\x21-\x7e]+$/.test(key)) {
    throw invalid("idempotencyKey must be 1-128 printable ASCII characters without spaces");
  }
}

/** At most this many items per page of a public list. */
export const MAX_PAGE_ITEMS = 100;
/** A Convex cursor is an opaque string; anything longer than this is not one we issued. */
const MAX_CURSOR_CHARS = 4_096;

/**
 * Validates a caller's pagination options before they reach `paginate`, whose own failures are
 * platform errors without a code. A cursor we did not issue is still caught where `paginate`
 * parses it (see `paginateOrInvalid`).
 */
export function checkPagination(opts: PaginationOptions): PaginationOptions {
  const { numItems, cursor } = opts;
  if (!Number.isInteger(numItems) || numItems < 1 || numItems > MAX_PAGE_ITEMS) {
    throw invalid(`paginationOpts.numItems must be a whole number between 1 and ${MAX_PAGE_ITEMS}`);
  }
  for (const c of [cursor, opts.endCursor ?? null]) {
    if (c !== null && (c.length === 0 || c.length > MAX_CURSOR_CHARS)) {
      throw invalid("paginationOpts.cursor is not a cursor this query returned");
    }
  }
  // The rest (endCursor, id, read limits) passes through: usePaginatedQuery relies on endCursor.
  return opts;
}

/** Runs `paginate`, turning a cursor it cannot parse into INVALID_ARGUMENT. */
export async function paginateOrInvalid<T>(opts: PaginationOptions, page: () => Promise<T>): Promise<T> {
  try {
    return await page();
  } catch (err) {
    // Without a cursor there is nothing of the caller's to blame: a real failure propagates.
    if (opts.cursor === null) throw err;
    throw invalid("paginationOpts.cursor is not a cursor this query returned");
  }
}

export const MAX_COMMAND_CHARS = 10_000;

export function checkCommand(command: string, timeoutMs: number | undefined): number {
  const c = getConfig();
  if (command.trim().length === 0) throw invalid("command must not be empty");
  if (command.length > MAX_COMMAND_CHARS)
    throw invalid(`command must be at most ${MAX_COMMAND_CHARS} characters`);
  if (command.includes("\0")) throw invalid("command must not contain NUL characters");
  // Tabs and newlines are shell; other control characters and bidi overrides only hide what runs.
  if (/[\x01-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]/.test(command))
    throw invalid("command must not contain control or bidi-override characters");
  if (timeoutMs === undefined) return c.commandTimeoutMs;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1_000 || timeoutMs > c.commandTimeoutMs) {
    throw invalid(`timeoutMs must be a whole number between 1000 and ${c.commandTimeoutMs}`);
  }
  return timeoutMs;
}
