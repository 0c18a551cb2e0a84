// Internal mutations of the pause lane (actions/pauseIdleSandboxes.ts) and of resumes
// (actions/resumeSandboxRun.ts, runCommand on a paused run). Each validates and delegates to
// convex/model/pause.ts; none is reachable from a client.
import { v } from "convex/values";
import { internalMutation } from "./_generated/server";
import { killResult } from "./lifecycle";
import {
  beginResume as claimResume,
  claimPausePage,
  type PausePage,
  pauseResult,
  recordResumed,
  resumeClaim,
  settlePause,
  settleResumeFailure,
  settleStateCheck,
  stateCheck,
} from "./model/pause";
import { settleKill } from "./model/runs";
import { runStatus } from "./model/status";

export const claimPauseSweep = internalMutation({
  args: {},
  handler: (ctx): Promise<PausePage> => claimPausePage(ctx),
});

export const recordPauseSweep = internalMutation({
  args: { kills: v.array(killResult), pauses: v.array(pauseResult), checks: v.array(stateCheck) },
  returns: v.null(),
  handler: async (ctx, args) => {
    for (const k of args.kills) await settleKill(ctx, k);
    for (const p of args.pauses) await settlePause(ctx, p);
    for (const c of args.checks) await settleStateCheck(ctx, c);
    return null;
  },
});

export const beginResume = internalMutation({
  args: { ownerId: v.string(), sandboxRunId: v.string(), waitedMs: v.number() },
  returns: resumeClaim,
  handler: (ctx, args) => claimResume(ctx, args),
});

export const recordResume = internalMutation({
  args: { runId: v.id("sandboxRuns"), sandboxId: v.string(), sandboxExpiresAt: v.number() },
  returns: v.object({ status: runStatus, killNow: v.boolean() }),
  handler: (ctx, args) => recordResumed(ctx, args),
});

export const recordResumeFailure = internalMutation({
  args: {
    runId: v.id("sandboxRuns"),
    sandboxId: v.string(),
    outcome: v.union(v.literal("gone"), v.literal("refused"), v.literal("unknown")),
    error: v.string(),
  },
  returns: v.union(runStatus, v.null()),
  handler: (ctx, args) => settleResumeFailure(ctx, args),
});
