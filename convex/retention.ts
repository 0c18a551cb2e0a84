import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalMutation } from "./_generated/server";
import { purgeExpired } from "./model/retention";

/** Daily cron: deletes what is older than SANDBOX_RETENTION_DAYS, one bounded batch at a time. */
export const purgeOldRuns = internalMutation({
  args: {},
  returns: v.object({ deleted: v.number(), more: v.boolean() }),
  handler: async (ctx): Promise<{ deleted: number; more: boolean }> => {
    const r = await purgeExpired(ctx);
    if (r.more) await ctx.scheduler.runAfter(0, internal.retention.purgeOldRuns, {});
    return r;
  },
});
