// Internal steps of runCommand (actions/runCommand.ts).
import { v } from "convex/values";
import { internalMutation } from "./_generated/server";
import { commandOutput, commandStatus } from "./schema";
import { getOwnedRun } from "./model/access";
import { fail } from "./model/errors";
import { touchRun } from "./model/activity";
import { logEvent } from "./model/runs";

export const begin = internalMutation({
  args: { ownerId: v.string(), sandboxRunId: v.string(), command: v.string() },
  returns: v.object({ commandId: v.id("commands"), runId: v.id("sandboxRuns"), sandboxId: v.string() }),
  handler: async (ctx, args) => {
    const run = await getOwnedRun(ctx, args.ownerId, args.sandboxRunId);
    if (run.status !== "running" || run.sandboxId === undefined) {
      throw fail("RUN_NOT_RUNNING", `The run is ${run.status}; commands need a running run`);
    }
    await touchRun(ctx, run);
    const commandId = await ctx.db.insert("commands", {
      runId: run._id,
      ownerId: run.ownerId,
      command: args.command,
      status: "running",
      stdout: "",
      stderr: "",
      stdoutTruncated: false,
      stderrTruncated: false,
      startedAt: Date.now(),
    });
    return { commandId, runId: run._id, sandboxId: run.sandboxId };
  },
});

export const finish = internalMutation({
  args: {
    commandId: v.id("commands"),
    status: commandStatus,
    ...commandOutput,
    durationMs: v.number(),
    error: v.optional(v.string()),
    sandboxExpiresAt: v.optional(v.number()),
  },
  returns: v.null(),
  handler: async (ctx, { commandId, sandboxExpiresAt, ...result }) => {
    const cmd = await ctx.db.get("commands", commandId);
    if (!cmd || cmd.status !== "running") return null;
    await ctx.db.patch("commands", commandId, result);
    const run = await ctx.db.get("sandboxRuns", cmd.runId);
    if (run) {
      if (run.status === "running") await touchRun(ctx, run, sandboxExpiresAt);
      await logEvent(ctx, run, {
        kind: "command",
        detail: `${result.status}${result.exitCode !== undefined ? ` exit ${result.exitCode}` : ""} in ${result.durationMs} ms`,
      });
    }
    return null;
  },
});
