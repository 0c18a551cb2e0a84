"use node";
import { v } from "convex/values";
import { internal } from "../_generated/api";
import { ownerAction } from "../model/functions";
import { getConfig } from "../model/config";
import { runStatus, type RunStatus } from "../model/status";
import { killRunSandbox } from "../lib/e2b.sdk";

/**
 * Stops the caller's run. Idempotent: a finished run answers its final status. The run is
 * claimed "stopping" (a kill is owed), the sandbox is killed, then the result recorded: only a
 * confirmed kill makes it "stopped"; a failed one leaves it "stopping" for the sweep.
 */
export const stopSandboxRun = ownerAction({
  args: { sandboxRunId: v.string() },
  returns: v.object({ status: runStatus }),
  handler: async (ctx, args): Promise<{ status: RunStatus }> => {
    const ownerId = ctx.ownerId;
    const c = getConfig();
    const claim = await ctx.runMutation(internal.lifecycle.beginStop, {
      ownerId,
      sandboxRunId: args.sandboxRunId,
    });
    if (claim.action === "done") return { status: claim.status };
    const kill = await killRunSandbox(c, claim);
    const status = await ctx.runMutation(internal.lifecycle.recordKill, {
      runId: claim.runId,
      reason: "user",
      kill,
      ...(claim.sandboxId !== undefined ? { sandboxId: claim.sandboxId } : {}),
    });
    return { status: status ?? "stopping" };
  },
});
