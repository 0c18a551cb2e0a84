// Resuming a paused run, shared by resumeSandboxRun and runCommand. Talks to E2B only through
// e2b.sdk.ts; the double-dot name keeps the bundler from making it an entry point.
import { internal } from "../_generated/api";
import type { Id } from "../_generated/dataModel";
import type { ActionCtx } from "../_generated/server";
import { type Config, runningLifetimeMs } from "../model/config";
import { fail } from "../model/errors";
import { notResumable } from "../model/pause";
import type { RunStatus } from "../model/status";
import { killSandboxSafely, resumeSandbox, toCallerError } from "./e2b.sdk";

const WAIT_POLL_MS = 250;

export type Resumed =
  | { running: true; runId: Id<"sandboxRuns">; sandboxId: string; resumed: boolean }
  | { running: false; status: RunStatus };

/**
 * Makes the caller's run running if it is paused (or pausing, or resuming): claim "resuming",
 * connect, record. Idempotent: a running run answers at once, a repeated call connects again
 * (E2B joins concurrent resumes). Kill first, then record, when the resume finds the sandbox
 * gone or a stop arrived meanwhile. A run in any other state is returned as is.
 */
export async function resumeIfPaused(
  ctx: ActionCtx,
  c: Config,
  ownerId: string,
  sandboxRunId: string,
): Promise<Resumed> {
  const began = performance.now();
  for (;;) {
    const claim = await ctx.runMutation(internal.pauses.beginResume, {
      ownerId,
      sandboxRunId,
      waitedMs: Math.round(performance.now() - began),
    });
    if (claim.action === "running")
      return { running: true, runId: claim.runId, sandboxId: claim.sandboxId, resumed: false };
    if (claim.action === "not_paused") return { running: false, status: claim.status };
    if (claim.action === "wait") {
      await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
      continue;
    }
    const { runId, sandboxId } = claim;
    const lifetimeMs = runningLifetimeMs(c);
    const sandboxExpiresAt = Date.now() + lifetimeMs;
    const r = await resumeSandbox(c, sandboxId, lifetimeMs);
    if (r.outcome === "resumed") {
      const rec = await ctx.runMutation(internal.pauses.recordResume, { runId, sandboxId, sandboxExpiresAt });
      if (rec.killNow) {
        // A stop waited for this answer; no resume of ours is in flight any more.
        const kill = await killSandboxSafely(c, sandboxId);
        await ctx.runMutation(internal.lifecycle.recordKill, { runId, sandboxId, kill });
        throw notResumable("stopping");
      }
      if (rec.status !== "running") throw notResumable(rec.status);
      return { running: true, runId, sandboxId, resumed: true };
    }
    const error = r.outcome === "gone" ? "E2B has no such sandbox" : r.failure.message;
    const status = await ctx.runMutation(internal.pauses.recordResumeFailure, {
      runId,
      sandboxId,
      outcome: r.outcome,
      error,
    });
    if (r.outcome === "gone") {
      if (status === "stopping") {
        // Confirm with a kill: a 404 from connect is not proof that no snapshot is left.
        const kill = await killSandboxSafely(c, sandboxId);
        await ctx.runMutation(internal.lifecycle.recordKill, { runId, sandboxId, kill });
      }
      throw fail("SANDBOX_GONE");
    }
    throw toCallerError(r.failure);
  }
}
