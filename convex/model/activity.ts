import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { getOwnedRun } from "./access";
import { getConfig } from "./config";
import { claimForKill, killLeaseUntil, nextRenewAt, type Run } from "./runs";
import { deferStopDuringResume } from "./pause";
import { isTerminal, type RunStatus } from "./status";

/**
 * A frontend's "the user is here". Moves lastActivityAt at most once per write interval, so a
 * page heartbeating every few seconds costs few writes; the sweep turns activity into E2B
 * lifetime (the dead-man switch).
 */
export async function heartbeat(
  ctx: MutationCtx,
  ownerId: string,
  runId: string,
): Promise<{ status: RunStatus; lastActivityAt: number }> {
  const run = await getOwnedRun(ctx, ownerId, runId);
  const now = Date.now();
  if (run.status === "running" && now - run.lastActivityAt >= getConfig().heartbeatWriteIntervalMs) {
    await ctx.db.patch("sandboxRuns", run._id, { lastActivityAt: now });
    return { status: run.status, lastActivityAt: now };
  }
  return { status: run.status, lastActivityAt: run.lastActivityAt };
}

/** Counts a command (or any use of the sandbox) as activity, and records the lifetime it bought. */
export async function touchRun(ctx: MutationCtx, run: Run, sandboxExpiresAt?: number) {
  const now = Date.now();
  const patch: Partial<Run> = { lastActivityAt: now };
  if (sandboxExpiresAt !== undefined && sandboxExpiresAt > (run.sandboxExpiresAt ?? 0)) {
    patch.sandboxExpiresAt = sandboxExpiresAt;
    patch.renewAt = nextRenewAt(getConfig(), sandboxExpiresAt, now);
  }
  await ctx.db.patch("sandboxRuns", run._id, patch);
}

export type StopClaim =
  | { action: "done"; runId: Id<"sandboxRuns">; status: RunStatus }
  | { action: "kill"; runId: Id<"sandboxRuns">; sandboxId?: string };

/** A user's stop: claims the kill (run "stopping", reason user) unless the run already ended. */
export async function beginStop(ctx: MutationCtx, ownerId: string, runId: string): Promise<StopClaim> {
  const run = await getOwnedRun(ctx, ownerId, runId);
  if (isTerminal(run.status)) return { action: "done", runId: run._id, status: run.status };
  const deferred = await deferStopDuringResume(ctx, run);
  if (deferred) return { action: "done", runId: run._id, status: deferred };
  await claimForKill(ctx, run, "user", killLeaseUntil(getConfig(), Date.now()));
  return {
    action: "kill",
    runId: run._id,
    ...(run.sandboxId !== undefined ? { sandboxId: run.sandboxId } : {}),
  };
}
