"use node";
import { v } from "convex/values";
import { internal } from "../_generated/api";
import type { Id } from "../_generated/dataModel";
import { checkCommand } from "../model/access";
import { ownerAction } from "../model/functions";
import { getConfig, runningLifetimeMs } from "../model/config";
import { confirmSandboxGone, runSandboxCommand, toCallerError } from "../lib/e2b.sdk";
import { resumeIfPaused } from "../lib/resume.sdk";
import { commandOutput } from "../schema";
import { fail, sandboxErrorCode } from "../model/errors";

const result = v.object({
  commandId: v.id("commands"),
  status: v.union(v.literal("finished"), v.literal("timed_out"), v.literal("output_limit")),
  ...commandOutput,
  durationMs: v.number(),
});

/**
 * Runs a shell command in the caller's running sandbox (owner only) with a timeout, stores the
 * command record (exit code, duration, capped output) and counts as activity.
 */
export const runCommand = ownerAction({
  args: { sandboxRunId: v.string(), command: v.string(), timeoutMs: v.optional(v.number()) },
  returns: result,
  handler: async (ctx, args): Promise<typeof result.type> => {
    const ownerId = ctx.ownerId;
    const c = getConfig();
    const timeoutMs = checkCommand(args.command, args.timeoutMs);
    type Begun = { commandId: Id<"commands">; runId: Id<"sandboxRuns">; sandboxId: string };
    const begin = (): Promise<Begun> =>
      ctx.runMutation(internal.commands.begin, {
        ownerId,
        sandboxRunId: args.sandboxRunId,
        command: args.command,
      });
    let begun: Begun;
    try {
      begun = await begin();
    } catch (err) {
      // A paused (pausing, resuming) run is resumed first, then the command runs.
      if (sandboxErrorCode(err) !== "RUN_NOT_RUNNING") throw err;
      if (!(await resumeIfPaused(ctx, c, ownerId, args.sandboxRunId)).running) throw err;
      begun = await begin();
    }
    const r = await runSandboxCommand(c, {
      sandboxId: begun.sandboxId,
      command: args.command,
      timeoutMs,
      lifetimeMs: runningLifetimeMs(c),
    });
    if (r.outcome === "gone" || r.outcome === "failed") {
      // "Not found" on the command path is data-plane text (a proxy's 502, envd killed by the
      // user): the run ends only on the control plane's word, after a kill of our own.
      const gone = r.outcome === "gone" && (await confirmSandboxGone(c, begun.sandboxId)) === "gone";
      const error = gone
        ? "the sandbox is gone"
        : r.outcome === "gone"
          ? "the sandbox did not answer (E2B still has it)"
          : r.failure.message;
      await ctx.runMutation(internal.commands.finish, {
        commandId: begun.commandId,
        status: "failed",
        stdout: "",
        stderr: "",
        stdoutTruncated: false,
        stderrTruncated: false,
        durationMs: 0,
        error,
      });
      if (gone) {
        await ctx.runMutation(internal.lifecycle.recordSandboxGone, {
          runId: begun.runId,
          sandboxId: begun.sandboxId,
        });
        throw fail("SANDBOX_GONE");
      }
      if (r.outcome === "gone") {
        throw fail(
          "E2B_UNAVAILABLE",
          "The sandbox did not answer; it is still running, retry the command or stop the run",
        );
      }
      throw toCallerError(r.failure);
    }
    const { outcome, sandboxExpiresAt, ...rest } = r;
    await ctx.runMutation(internal.commands.finish, {
      commandId: begun.commandId,
      status: outcome,
      sandboxExpiresAt,
      ...rest,
    });
    return { commandId: begun.commandId, status: outcome, ...rest };
  },
});
