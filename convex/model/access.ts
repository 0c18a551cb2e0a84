import { ConvexError } from "convex/values";
import type { Doc } from "../_generated/dataModel";
import type { QueryCtx } from "../_generated/server";
import type { Auth } from "convex/server";
import { getConfig } from "./config";

/** The caller's identity, or UNAUTHENTICATED. Runs belong to `tokenIdentifier`. */
export async function requireOwner(ctx: { auth: Auth }): Promise<string> {
  const identity = await ctx.auth.getUserIdentity();
  if (!identity) throw new ConvexError({ code: "UNAUTHENTICATED", message: "Sign in first" });
  return identity.tokenIdentifier;
}

export function notFound(): ConvexError<{ code: string; message: string }> {
  return new ConvexError({ code: "NOT_FOUND", message: "No such sandbox run" });
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
  if (!run || run.ownerId !== ownerId) throw notFound();
  return run;
}

export function invalid(message: string): ConvexError<{ code: string; message: string }> {
  return new ConvexError({ code: "INVALID_ARGUMENT", message });
}

export function checkTemplate(template: string) {
  if (!getConfig().templates.includes(template)) {
    throw new ConvexError({
      code: "INVALID_TEMPLATE",
      message: `Unknown template "${template.slice(0, 64)}"`,
    });
  }
}

export function checkIdempotencyKey(key: string | undefined) {
  if (key === undefined) return;
  if (key.length < 1 || key.length > 128 || !/^[\x21-\x7e]+$/.test(key)) {
    throw invalid("idempotencyKey must be 1-128 printable ASCII characters without spaces");
  }
}

export const MAX_COMMAND_CHARS = 10_000;

export function checkCommand(command: string, timeoutMs: number | undefined): number {
  const c = getConfig();
  if (command.trim().length === 0) throw invalid("command must not be empty");
  if (command.length > MAX_COMMAND_CHARS)
    throw invalid(`command must be at most ${MAX_COMMAND_CHARS} characters`);
  if (command.includes("\0")) throw invalid("command must not contain NUL characters");
  if (timeoutMs === undefined) return c.commandTimeoutMs;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1_000 || timeoutMs > c.commandTimeoutMs) {
    throw invalid(`timeoutMs must be a whole number between 1000 and ${c.commandTimeoutMs}`);
  }
  return timeoutMs;
}
