"use node";
import { v } from "convex/values";
import { getConfig } from "../model/config";
import { ownerAction } from "../model/functions";
import { notResumable } from "../model/pause";
import { resumeIfPaused } from "../lib/resume.sdk";

/**
 * Resumes the caller's paused run (owner only). Idempotent: a running run answers at once, and
 * a repeated call while one is resuming joins it at E2B. Counts as activity.
 */
export const resumeSandboxRun = ownerAction({
  args: { sandboxRunId: v.string() },
  returns: v.object({ status: v.literal("running"), sandboxId: v.string() }),
  handler: async (ctx, args): Promise<{ status: "running"; sandboxId: string }> => {
    const r = await resumeIfPaused(ctx, getConfig(), ctx.ownerId, args.sandboxRunId);
    if (!r.running) throw notResumable(r.status);
    return { status: "running", sandboxId: r.sandboxId };
  },
});
