// Internal mutations the lifecycle actions call, one per step. Each validates and delegates to
// convex/model; none is reachable from a client.
import { v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";
import { beginStop as claimStop } from "./model/activity";
import { admissionResult, admitStart, backOffCreates } from "./model/admission";
import {
  endRunSandboxGone,
  markRunning,
  recordSandboxId,
  recordStartRefused,
  settleExtend,
  settleKill,
} from "./model/runs";
import { endReason, idleAction, killOutcome, runStatus } from "./model/status";
import { claimLanePage, laneTicket, releaseLane } from "./model/sweep";

export const createRun = internalMutation({
  args: {
    ownerId: v.string(),
    template: v.string(),
    idempotencyKey: v.optional(v.string()),
    onIdle: v.optional(idleAction),
  },
  returns: admissionResult,
  handler: async (ctx, args) => {
    const a = await admitStart(ctx, args);
    if (a.kind === "refused") return a;
    return a.kind === "created"
      ? { kind: a.kind, runId: a.run._id, waitMs: a.waitMs }
      : { kind: a.kind, runId: a.run._id };
  },
});

/** What a replayed idempotent start needs to know about the run it found. */
export const runState = internalQuery({
  args: { runId: v.id("sandboxRuns") },
  returns: v.union(
    v.null(),
    v.object({ status: runStatus, sandboxId: v.optional(v.string()), endReason: v.optional(endReason) }),
  ),
  handler: async (ctx, args) => {
    const run = await ctx.db.get("sandboxRuns", args.runId);
    if (!run) return null;
    return {
      status: run.status,
      ...(run.sandboxId !== undefined ? { sandboxId: run.sandboxId } : {}),
      ...(run.endReason !== undefined ? { endReason: run.endReason } : {}),
    };
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
  args: { runId: v.id("sandboxRuns"), error: v.string(), e2bBackoffMs: v.optional(v.number()) },
  returns: v.null(),
  handler: async (ctx, args) => {
    await recordStartRefused(ctx, { runId: args.runId, error: args.error });
    // E2B answered 429: every start waits, not just this one.
    if (args.e2bBackoffMs !== undefined) await backOffCreates(ctx, args.e2bBackoffMs);
    return null;
  },
});

/** A kill's result as recorded (also by the pause lane, convex/pauses.ts). */
export const killResult = v.object({
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
  args: { lane: v.optional(laneTicket) },
  handler: (ctx, args) => claimLanePage(ctx, args.lane),
});

export const releaseSweepLane = internalMutation({
  args: { lane: laneTicket },
  returns: v.null(),
  handler: async (ctx, args) => {
    await releaseLane(ctx, args.lane);
    return null;
  },
});

export const recordSweep = internalMutation({
  args: {
    kills: v.array(killResult),
    extends: v.array(
      v.object({
        runId: v.id("sandboxRuns"),
        sandboxId: v.string(),
        outcome: v.union(v.literal("extended"), v.literal("gone"), v.literal("paused"), v.literal("failed")),
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

export const beginStop = internalMutation({
  args: { ownerId: v.string(), sandboxRunId: v.string() },
  returns: v.union(
    v.object({ action: v.literal("done"), runId: v.id("sandboxRuns"), status: runStatus }),
    v.object({ action: v.literal("kill"), runId: v.id("sandboxRuns"), sandboxId: v.optional(v.string()) }),
  ),
  handler: (ctx, args) => claimStop(ctx, args.ownerId, args.sandboxRunId),
});

/** Ends a running run whose sandbox E2B no longer has (seen by a command or a probe). */
export const recordSandboxGone = internalMutation({
  args: { runId: v.id("sandboxRuns"), sandboxId: v.string() },
  returns: v.null(),
  handler: async (ctx, args) => {
    await endRunSandboxGone(ctx, args.runId, args.sandboxId);
    return null;
  },
});
