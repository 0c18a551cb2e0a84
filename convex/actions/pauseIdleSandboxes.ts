"use node";
import { v } from "convex/values";
import { internal } from "../_generated/api";
import { internalAction } from "../_generated/server";
import { getConfig } from "../model/config";
import type { PausePage, PauseResult, StateCheck } from "../model/pause";
import type { KillOutcome } from "../model/status";
import { killRunSandbox, mapWithConcurrency, pauseSandbox, sandboxState } from "../lib/e2b.sdk";

type Work =
  | { kind: "kill"; runId: PauseResult["runId"]; sandboxId?: string }
  | { kind: "pause"; runId: PauseResult["runId"]; sandboxId: string }
  | { kind: "check"; runId: PauseResult["runId"]; sandboxId: string; leaseUntil: number };

/**
 * The pause lane (cron, every minute): pauses runs idle under the pause policy, asks again about
 * pauses that never answered, checks resumes that never answered once they cannot be at work at
 * E2B, and kills runs paused past SANDBOX_PAUSED_RETENTION_MS. A full page continues at once.
 * A kill that fails twice leaves the run "stopping": the main sweep retries it.
 */
export const pauseIdleSandboxes = internalAction({
  args: {},
  returns: v.object({ paused: v.number(), killed: v.number(), checked: v.number(), more: v.boolean() }),
  handler: async (ctx): Promise<{ paused: number; killed: number; checked: number; more: boolean }> => {
    const c = getConfig();
    const page: PausePage = await ctx.runMutation(internal.pauses.claimPauseSweep, {});
    const work: Work[] = [
      ...page.kills.map((k) => ({ kind: "kill" as const, ...k })),
      ...page.pauses.map((p) => ({ kind: "pause" as const, ...p })),
      ...page.checks.map((p) => ({ kind: "check" as const, ...p })),
    ];
    const kills: { runId: PauseResult["runId"]; sandboxId?: string; kill: KillOutcome }[] = [];
    const pauses: PauseResult[] = [];
    const checks: StateCheck[] = [];
    await mapWithConcurrency(work, c.killConcurrency, async (w) => {
      if (w.kind === "kill") {
        const claim = { runId: w.runId, ...(w.sandboxId !== undefined ? { sandboxId: w.sandboxId } : {}) };
        // Retention is a promise on time: one failed kill is retried at once, not a sweep later.
        let kill = await killRunSandbox(c, claim);
        if (kill.outcome === "failed") kill = await killRunSandbox(c, claim);
        kills.push({ ...claim, kill });
      } else if (w.kind === "pause") {
        const r = await pauseSandbox(c, w.sandboxId);
        pauses.push({
          runId: w.runId,
          sandboxId: w.sandboxId,
          outcome: r.outcome,
          ...(r.outcome === "failed"
            ? {
                error: `${r.kind}: ${r.message}`,
                ...(r.retryAfterMs !== undefined ? { retryAfterMs: r.retryAfterMs } : {}),
              }
            : {}),
        });
      } else {
        checks.push({
          runId: w.runId,
          sandboxId: w.sandboxId,
          leaseUntil: w.leaseUntil,
          state: await sandboxState(c, w.sandboxId),
        });
      }
    });
    // A record that fails leaves the runs as claimed; their leases expire and the next pass redoes them.
    await ctx.runMutation(internal.pauses.recordPauseSweep, { kills, pauses, checks });
    if (page.more)
      await ctx.scheduler.runAfter(0, internal.actions.pauseIdleSandboxes.pauseIdleSandboxes, {});
    return {
      paused: pauses.filter((p) => p.outcome === "paused" || p.outcome === "already_paused").length,
      killed: kills.filter((k) => k.kill.outcome !== "failed").length,
      checked: checks.length,
      more: page.more,
    };
  },
});
