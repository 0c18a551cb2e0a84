// The public surface a frontend reads and pings. Every function requires a signed-in caller and
// answers another user's run exactly like a missing one (NOT_FOUND).
import { paginationOptsValidator } from "convex/server";
import { v } from "convex/values";
import type { Doc } from "./_generated/dataModel";
import { getOwnedRun } from "./model/access";
import { ownerMutation, ownerQuery } from "./model/functions";
import { heartbeat as recordHeartbeat } from "./model/activity";
import { runStatus } from "./model/status";

/** What a client sees of a run: no owner token, no internal scheduling fields. */
function publicRun(r: Doc<"sandboxRuns">) {
  return {
    _id: r._id,
    _creationTime: r._creationTime,
    status: r.status,
    template: r.template,
    sandboxId: r.sandboxId,
    idempotencyKey: r.idempotencyKey,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    lastActivityAt: r.lastActivityAt,
    sandboxExpiresAt: r.sandboxExpiresAt,
    endedAt: r.endedAt,
    endReason: r.endReason,
    error: r.error,
    killAttempts: r.killAttempts,
  };
}

function publicEvent(e: Doc<"runEvents">) {
  const { ownerId: _owner, ...rest } = e;
  return rest;
}

export const getRun = ownerQuery({
  args: { sandboxRunId: v.string() },
  handler: async (ctx, args) => publicRun(await getOwnedRun(ctx, ctx.ownerId, args.sandboxRunId)),
});

/** The caller's runs, newest first. */
export const listMyRuns = ownerQuery({
  args: { paginationOpts: paginationOptsValidator },
  handler: async (ctx, args) => {
    const ownerId = ctx.ownerId;
    const page = await ctx.db
      .query("sandboxRuns")
      .withIndex("by_ownerId_and_createdAt", (q) => q.eq("ownerId", ownerId))
      .order("desc")
      .paginate(args.paginationOpts);
    return { ...page, page: page.page.map(publicRun) };
  },
});

/** A run's history, newest first: transitions, kills and their outcomes, reconcile actions, commands. */
export const listRunEvents = ownerQuery({
  args: { sandboxRunId: v.string(), paginationOpts: paginationOptsValidator },
  handler: async (ctx, args) => {
    const run = await getOwnedRun(ctx, ctx.ownerId, args.sandboxRunId);
    const page = await ctx.db
      .query("runEvents")
      .withIndex("by_runId_and_at", (q) => q.eq("runId", run._id))
      .order("desc")
      .paginate(args.paginationOpts);
    return { ...page, page: page.page.map(publicEvent) };
  },
});

/** Commands run in a run's sandbox, newest first. */
export const listRunCommands = ownerQuery({
  args: { sandboxRunId: v.string(), paginationOpts: paginationOptsValidator },
  handler: async (ctx, args) => {
    const run = await getOwnedRun(ctx, ctx.ownerId, args.sandboxRunId);
    const page = await ctx.db
      .query("commands")
      .withIndex("by_runId_and_startedAt", (q) => q.eq("runId", run._id))
      .order("desc")
      .paginate(args.paginationOpts);
    return { ...page, page: page.page.map(({ ownerId: _owner, ...c }) => c) };
  },
});

/** Call while a user is present (every ~10-30 s); keeps the run from being reaped as idle. */
export const heartbeat = ownerMutation({
  args: { sandboxRunId: v.string() },
  returns: v.object({ status: runStatus, lastActivityAt: v.number() }),
  handler: async (ctx, args) => recordHeartbeat(ctx, ctx.ownerId, args.sandboxRunId),
});
