// Internal functions of the reconciling pass (actions/reconcileSandboxes.ts).
import { v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";
import * as reconcile from "./model/reconcile";
import { orphan, orphanKill } from "./model/validators";

export const findOrphans = internalQuery({
  args: { listed: v.array(v.object({ sandboxId: v.string(), runIdTag: v.optional(v.string()) })) },
  returns: v.array(orphan),
  handler: (ctx, args) => reconcile.findOrphans(ctx, args.listed),
});

export const recordOrphanKills = internalMutation({
  args: { results: v.array(orphanKill) },
  returns: v.null(),
  handler: async (ctx, args) => {
    await reconcile.recordOrphanKills(ctx, args.results);
    return null;
  },
});

export const runningRunsNotListed = internalQuery({
  args: { listedIds: v.array(v.string()), listedAt: v.number(), graceMs: v.number(), limit: v.number() },
  returns: v.array(v.object({ runId: v.id("sandboxRuns"), sandboxId: v.string() })),
  handler: (ctx, args) => reconcile.runningRunsNotListed(ctx, args),
});
