"use node";
import { v } from "convex/values";
import { internal } from "../_generated/api";
import { internalAction } from "../_generated/server";
import { getConfig } from "../model/config";
import type { SweepPage } from "../model/sweep";
import { killSandboxesByTag, killSandboxSafely, mapWithConcurrency, setSandboxLifetime } from "../lib/e2b.sdk";

const RECORD_BATCH = 200;

type SweepResult = { killed: number; failed: number; extended: number; more: boolean };

/**
 * The cleanup sweep (cron, every minute): kills runs stuck booting, idle or past their max
 * lifetime, retries owed kills, and extends the E2B lifetime of active sandboxes. One page per
 * invocation; while a page is full it schedules the next one.
 */
export const killIdleSandboxes = internalAction({
  args: {},
  returns: v.object({ killed: v.number(), failed: v.number(), extended: v.number(), more: v.boolean() }),
  handler: async (ctx): Promise<SweepResult> => {
    const c = getConfig();
    const page: SweepPage = await ctx.runMutation(internal.lifecycle.claimSweep, {});
    // The next page is claimed while this one's kills are in flight: claims are leased, so
    // pages never overlap, and a large backlog drains at page-parallel speed.
    if (page.more) await ctx.scheduler.runAfter(0, internal.actions.killIdleSandboxes.killIdleSandboxes, {});

    const kills = await mapWithConcurrency(page.kills, c.killConcurrency, async (k) => ({
      runId: k.runId,
      ...(k.sandboxId !== undefined
        ? { sandboxId: k.sandboxId, kill: await killSandboxSafely(c, k.sandboxId) }
        : { kill: (await killSandboxesByTag(c, k.runId, c.killConcurrency)).kill }),
    }));
    const extendsDone = await mapWithConcurrency(page.extends, c.killConcurrency, async (e) => {
      const expiresAt = Date.now() + e.lifetimeMs;
      const r = await setSandboxLifetime(c, e.sandboxId, e.lifetimeMs);
      return {
        runId: e.runId,
        sandboxId: e.sandboxId,
        outcome: r.outcome,
        expiresAt,
        ...(r.outcome === "failed" ? { error: `${r.kind}: ${r.message}` } : {}),
      };
    });
    // Kills are recorded in batches; a batch that fails to record leaves its runs "stopping",
    // and the next sweep re-kills them (a 404 then confirms they are gone).
    for (let i = 0; i < Math.max(kills.length, extendsDone.length); i += RECORD_BATCH) {
      await ctx.runMutation(internal.lifecycle.recordSweep, {
        kills: kills.slice(i, i + RECORD_BATCH),
        extends: extendsDone.slice(i, i + RECORD_BATCH),
      });
    }
    return {
      killed: kills.filter((k) => k.kill.outcome !== "failed").length,
      failed: kills.filter((k) => k.kill.outcome === "failed").length,
      extended: extendsDone.filter((e) => e.outcome === "extended").length,
      more: page.more,
    };
  },
});
