// Internal mutations of the pause lane (actions/pauseIdleSandboxes.ts) and of resumes
// (actions/resumeSandboxRun.ts, runCommand on a paused run). Each validates and delegates to
// the convex/model/pause.ts helper of the same name; none is reachable from a client.
import { v } from "convex/values";
import { internalMutation } from "./_generated/server";
import * as pause from "./model/pause";
import { runStatus } from "./model/status";
import { killResult, pausePage, resumeFailure, resumeSettled, sandboxRecord } from "./model/validators";

export const claimPausePage = internalMutation({
  args: {},
  returns: pausePage,
  handler: (ctx) => pause.claimPausePage(ctx),
});

export const settlePausePage = internalMutation({
  args: { kills: v.array(killResult), pauses: v.array(pause.pauseResult), checks: v.array(pause.stateCheck) },
  returns: v.null(),
  handler: async (ctx, args) => {
    await pause.settlePausePage(ctx, args);
    return null;
  },
});

export const claimResume = internalMutation({
  args: { ownerId: v.string(), sandboxRunId: v.string(), waitedMs: v.number() },
  returns: pause.resumeClaim,
  handler: (ctx, args) => pause.claimResume(ctx, args),
});

export const recordResumed = internalMutation({
  args: sandboxRecord,
  returns: resumeSettled,
  handler: (ctx, args) => pause.recordResumed(ctx, args),
});

export const settleResumeFailure = internalMutation({
  args: resumeFailure,
  returns: v.union(runStatus, v.null()),
  handler: (ctx, args) => pause.settleResumeFailure(ctx, args),
});
