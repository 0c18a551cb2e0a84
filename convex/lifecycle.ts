// Internal mutations the lifecycle actions call, one per step. Each validates and delegates to
// convex/model; none is reachable from a client.
import { ConvexError, v } from "convex/values";
import { internalMutation } from "./_generated/server";
import { getConfig } from "./model/config";
import {
  insertBootingRun,
  markRunning,
  recordSandboxId,
  recordStartRefused,
  settleExtend,
  settleKill,
} from "./model/runs";
import { endReason, killOutcome, runStatus } from "./model/status";
import { claimSweepPage } from "./model/sweep";

export const createRun = internalMutation({
  args: { ownerId: v.string(), template: v.string() },
  returns: v.object({ runId: v.id("sandboxRuns") }),
  handler: async (ctx, args) => {
    if (!getConfig().templates.includes(args.template)) {
      throw new ConvexError({ code: "INVALID_TEMPLATE", message: `Unknown template "${args.template.slice(0, 64)}"` });
    }
    const run = await insertBootingRun(ctx, args);
    return { runId: run._id };
  },
});

const sandboxArgs = { runId: v.id("sandboxRuns"), sandboxId: v.string(), sandboxExpiresAt: v.number() };

export const storeSandboxId = internalMutation({
  args: sandboxArgs,
  returns: v.object({ wanted: v.boolean() }),
  handler: (ctx, args) => recordSandboxId(ctx, args),
});

export const markRunRunning = internalMutation({
  args: sandboxArgs,
  returns: v.boolean(),
  handler: (ctx, args) => markRunning(ctx, args),
});

export const recordStartRefusal = internalMutation({
  args: { runId: v.id("sandboxRuns"), error: v.string() },
  returns: v.null(),
  handler: async (ctx, args) => {
    await recordStartRefused(ctx, args);
    return null;
  },
});

const killResult = v.object({
  runId: v.id("sandboxRuns"),
  sandboxId: v.optional(v.string()),
  reason: v.optional(endReason),
  kill: killOutcome,
  error: v.optional(v.string()),
});

export const recordKill = internalMutation({
  args: killResult,
  returns: v.union(runStatus, v.null()),
  handler: (ctx, args) => settleKill(ctx, args),
});

export const claimSweep = internalMutation({
  args: {},
  handler: (ctx) => claimSweepPage(ctx),
});

export const recordSweep = internalMutation({
  args: {
    kills: v.array(killResult),
    extends: v.array(
      v.object({
        runId: v.id("sandboxRuns"),
        sandboxId: v.string(),
        outcome: v.union(v.literal("extended"), v.literal("gone"), v.literal("failed")),
        expiresAt: v.number(),
        error: v.optional(v.string()),
      }),
    ),
  },
  returns: v.null(),
  handler: async (ctx, args) => {
    for (const k of args.kills) await settleKill(ctx, k);
    for (const e of args.extends) await settleExtend(ctx, e);
    return null;
  },
});
