"use node";
import { v } from "convex/values";
import { internal } from "../_generated/api";
import { internalAction } from "../_generated/server";
import { getConfig } from "../model/config";
import { CREATED_STORE_LAG_MS } from "../model/webhooks";
import { killSandboxSafely } from "../lib/e2b.sdk";

/**
 * A kill a lifecycle webhook asked for, made at once (the event proved the create happened, so
 * no grace window applies): a sandbox no live run owns (recorded like a reconciler kill), or
 * the sandbox of a run owing a kill that just learned its id (recorded like a sweep kill).
 */
export const killWebhookSandbox = internalAction({
  args: {
    sandboxId: v.string(),
    orphan: v.optional(
      v.object({
        reason: v.union(v.literal("run_missing"), v.literal("run_ended"), v.literal("not_the_runs_sandbox")),
        runId: v.optional(v.id("sandboxRuns")),
        taggedRunId: v.optional(v.string()),
      }),
    ),
    owedBy: v.optional(v.id("sandboxRuns")),
    createdAt: v.number(), // ms, the `created` event's time
  },
  returns: v.null(),
  handler: async (ctx, args) => {
    const kill = await killSandboxSafely(getConfig(), args.sandboxId);
    if (args.orphan) {
      await ctx.runMutation(internal.reconcile.recordOrphanKills, {
        results: [{ sandboxId: args.sandboxId, ...args.orphan, kill }],
      });
    } else if (args.owedBy) {
      // Too soon after `created`, a 404 does not prove the sandbox gone: the run stays owing
      // the kill, by id now, and the sweep makes it.
      if (kill.outcome === "gone" && Date.now() < args.createdAt + CREATED_STORE_LAG_MS) return null;
      await ctx.runMutation(internal.lifecycle.settleKill, {
        runId: args.owedBy,
        sandboxId: args.sandboxId,
        kill,
      });
    }
    return null;
  },
});
