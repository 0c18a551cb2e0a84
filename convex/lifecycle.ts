// Internal mutations the lifecycle actions call, one per step. Each validates and delegates to
// the convex/model helper of the same name; none is reachable from a client.
import { v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";
import * as activity from "./model/activity";
import * as admission from "./model/admission";
import * as runs from "./model/runs";
import { endReason, idleAction, runStatus } from "./model/status";
import * as sweep from "./model/sweep";
import { extendResult, killResult, lanePage, laneTicket, sandboxRecord, stopClaim } from "./model/validators";

export const admitStart = internalMutation({
  args: {
    ownerId: v.string(),
    template: v.string(),
    idempotencyKey: v.optional(v.string()),
    onIdle: v.optional(idleAction),
  },
  returns: admission.admissionResult,
  handler: async (ctx, args) => {
    const a = await admission.admitStart(ctx, args);
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

export const recordSandboxId = internalMutation({
  args: sandboxRecord,
  returns: v.object({ wanted: v.boolean() }),
  handler: (ctx, args) => runs.recordSandboxId(ctx, args),
});

export const markRunning = internalMutation({
  args: sandboxRecord,
  returns: v.boolean(),
  handler: (ctx, args) => runs.markRunning(ctx, args),
});

export const recordStartRefused = internalMutation({
  args: { runId: v.id("sandboxRuns"), error: v.string(), e2bBackoffMs: v.optional(v.number()) },
  returns: v.null(),
  handler: async (ctx, args) => {
    await runs.recordStartRefused(ctx, { runId: args.runId, error: args.error });
    // E2B answered 429: every start waits, not just this one.
    if (args.e2bBackoffMs !== undefined) await admission.backOffCreates(ctx, args.e2bBackoffMs);
    return null;
  },
});

export const settleKill = internalMutation({
  args: killResult,
  returns: v.union(runStatus, v.null()),
  handler: (ctx, args) => runs.settleKill(ctx, args),
});

export const claimLanePage = internalMutation({
  args: { lane: v.optional(laneTicket) },
  returns: lanePage,
  handler: (ctx, args) => sweep.claimLanePage(ctx, args.lane),
});

export const releaseLane = internalMutation({
  args: { lane: laneTicket },
  returns: v.null(),
  handler: async (ctx, args) => {
    await sweep.releaseLane(ctx, args.lane);
    return null;
  },
});

export const settleSweepPage = internalMutation({
  args: { kills: v.array(killResult), extends: v.array(extendResult) },
  returns: v.null(),
  handler: async (ctx, args) => {
    await sweep.settleSweepPage(ctx, args);
    return null;
  },
});

export const claimStop = internalMutation({
  args: { ownerId: v.string(), sandboxRunId: v.string() },
  returns: stopClaim,
  handler: (ctx, args) => activity.claimStop(ctx, args.ownerId, args.sandboxRunId),
});

/** Ends a running run whose sandbox E2B no longer has (seen by a command or a probe). */
export const endRunSandboxGone = internalMutation({
  args: { runId: v.id("sandboxRuns"), sandboxId: v.string() },
  returns: v.null(),
  handler: async (ctx, args) => {
    await runs.endRunSandboxGone(ctx, args.runId, args.sandboxId);
    return null;
  },
});
