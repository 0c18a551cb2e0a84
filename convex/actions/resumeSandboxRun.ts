"use node";
import { v } from "convex/values";
import { action } from "../_generated/server";
import { requireOwner } from "../model/access";
import { getConfig } from "../model/config";
import { notResumable } from "../model/pause";
import { resumeIfPaused } from "../lib/resume.sdk";

/**
 * Resumes the caller's paused run (owner only). Idempotent: a running run answers at once, and
 * a repeated call while one is resuming joins it at E2B. Counts as activity.
 */
export const resumeSandboxRun = action({
  args: { sandboxRunId: v.string() },
  returns: v.object({ status: v.literal("running"), sandboxId: v.string() }),
  handler: async (ctx, args): Promise<{ status: "running"; sandboxId: string }> => {
    const ownerId = await requireOwner(ctx);
    const r = await resumeIfPaused(ctx, getConfig(), ownerId, args.sandboxRunId);
    if (!r.running) throw notResumable(r.status);
    return { status: "running", sandboxId: r.sandboxId };
  },
});
