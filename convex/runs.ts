// The public surface a frontend reads and pings. Every function requires a signed-in caller and
// answers another user's run exactly like a missing one (NOT_FOUND).
import { paginationOptsValidator, paginationResultValidator } from "convex/server";
import { v } from "convex/values";
import { checkPagination, getOwnedRun, paginateOrInvalid } from "./model/access";
import { heartbeat as recordHeartbeat } from "./model/activity";
import { runStatus } from "./model/status";
import {
  publicCommand,
  publicEvent,
  publicRun,
  toPublicCommand,
  toPublicEvent,
  toPublicPage,
  toPublicRun,
} from "./model/views";
import { ownerMutation, ownerQuery } from "./model/functions";

export const getRun = ownerQuery({
  args: { sandboxRunId: v.string() },
  returns: publicRun,
  handler: async (ctx, args) => toPublicRun(await getOwnedRun(ctx, ctx.ownerId, args.sandboxRunId)),
});

/** The caller's runs, newest first. */
export const listMyRuns = ownerQuery({
  args: { paginationOpts: paginationOptsValidator },
  returns: paginationResultValidator(publicRun),
  handler: async (ctx, args) => {
    const ownerId = ctx.ownerId;
    const opts = checkPagination(args.paginationOpts);
    const page = await paginateOrInvalid(opts, () =>
      ctx.db
        .query("sandboxRuns")
        .withIndex("by_ownerId_and_createdAt", (q) => q.eq("ownerId", ownerId))
        .order("desc")
        .paginate(opts),
    );
    return toPublicPage(page, toPublicRun);
  },
});

/** A run's history, newest first: transitions, kills and their outcomes, reconcile actions, commands. */
export const listRunEvents = ownerQuery({
  args: { sandboxRunId: v.string(), paginationOpts: paginationOptsValidator },
  returns: paginationResultValidator(publicEvent),
  handler: async (ctx, args) => {
    const run = await getOwnedRun(ctx, ctx.ownerId, args.sandboxRunId);
    const opts = checkPagination(args.paginationOpts);
    const page = await paginateOrInvalid(opts, () =>
      ctx.db
        .query("runEvents")
        .withIndex("by_runId_and_at", (q) => q.eq("runId", run._id))
        .order("desc")
        .paginate(opts),
    );
    return toPublicPage(page, toPublicEvent);
  },
});

/** Commands run in a run's sandbox, newest first. */
export const listRunCommands = ownerQuery({
  args: { sandboxRunId: v.string(), paginationOpts: paginationOptsValidator },
  returns: paginationResultValidator(publicCommand),
  handler: async (ctx, args) => {
    const run = await getOwnedRun(ctx, ctx.ownerId, args.sandboxRunId);
    const opts = checkPagination(args.paginationOpts);
    const page = await paginateOrInvalid(opts, () =>
      ctx.db
        .query("commands")
        .withIndex("by_runId_and_startedAt", (q) => q.eq("runId", run._id))
        .order("desc")
        .paginate(opts),
    );
    return toPublicPage(page, toPublicCommand);
  },
});

/** Call while a user is present (every ~10-30 s); keeps the run from being reaped as idle. */
export const heartbeat = ownerMutation({
  args: { sandboxRunId: v.string() },
  returns: v.object({ status: runStatus, lastActivityAt: v.number() }),
  handler: async (ctx, args) => recordHeartbeat(ctx, ctx.ownerId, args.sandboxRunId),
});
