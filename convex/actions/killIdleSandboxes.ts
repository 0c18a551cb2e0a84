"use node";
import { v } from "convex/values";
import { internal } from "../_generated/api";
import { internalAction } from "../_generated/server";
import { getConfig } from "../model/config";
import type { KillOutcome } from "../model/status";
import { type ExtendClaim, type KillClaim, type LanePage, laneTicket } from "../model/sweep";
import { killRunSandbox, mapWithConcurrency, setSandboxLifetime, sweepsIdleWithoutKey } from "../lib/e2b.sdk";

const RECORD_BATCH = 200;
/** After E2B answers 429, this page's next calls wait this long (the SDK does not expose Retry-After). */
const RATE_LIMIT_PAUSE_MS = 1_000;

type SweepResult = { killed: number; failed: number; extended: number; more: boolean };
type Work = { kind: "kill"; claim: KillClaim } | { kind: "extend"; claim: ExtendClaim };

/**
 * The cleanup sweep (cron, every minute): kills runs stuck booting, idle or past their max
 * lifetime, retries owed kills, and extends the E2B lifetime of active sandboxes. One page per
 * invocation, worked in a sweep lane leased in the database: a tick takes a free lane (or does
 * nothing while all SANDBOX_SWEEP_PARALLEL_PAGES are busy); when its page is full it opens the
 * other free lanes, and each lane takes its next page once its current one is done, then
 * releases itself. So kills in flight never exceed lanes × SANDBOX_KILL_CONCURRENCY, across
 * ticks. Claims are leased too, so lanes never work on the same run.
 */
export const killIdleSandboxes = internalAction({
  args: { lane: v.optional(laneTicket) },
  returns: v.object({ killed: v.number(), failed: v.number(), extended: v.number(), more: v.boolean() }),
  handler: async (ctx, args): Promise<SweepResult> => {
    const c = getConfig();
    if (sweepsIdleWithoutKey(c)) return { killed: 0, failed: 0, extended: 0, more: false };
    const self = internal.actions.killIdleSandboxes.killIdleSandboxes;
    const page: LanePage = await ctx.runMutation(internal.lifecycle.claimSweep, args);
    for (const lane of page.opened) await ctx.scheduler.runAfter(0, self, { lane });

    // Kills and extensions share one pool of SANDBOX_KILL_CONCURRENCY calls in flight.
    const work: Work[] = [
      ...page.kills.map((claim) => ({ kind: "kill" as const, claim })),
      ...page.extends.map((claim) => ({ kind: "extend" as const, claim })),
    ];
    // Honour E2B's 429s: once one call is rate limited, the page's next calls wait a moment,
    // while calls already in flight finish undisturbed.
    let pausedUntil = 0;
    const paced = async <T extends { outcome: string; kind?: string }>(
      call: () => Promise<T>,
    ): Promise<T> => {
      const wait = pausedUntil - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const r = await call();
      if (r.outcome === "failed" && r.kind === "rate_limited")
        pausedUntil = performance.now() + RATE_LIMIT_PAUSE_MS;
      return r;
    };
    const kills: { runId: KillClaim["runId"]; sandboxId?: string; kill: KillOutcome }[] = [];
    const extendsDone: {
      runId: ExtendClaim["runId"];
      sandboxId: string;
      outcome: "extended" | "gone" | "paused" | "failed";
      expiresAt: number;
      error?: string;
    }[] = [];
    await mapWithConcurrency(work, c.killConcurrency, async (w) => {
      if (w.kind === "kill") {
        const k = w.claim;
        kills.push({ ...k, kill: await paced(() => killRunSandbox(c, k)) });
      } else {
        const e = w.claim;
        const expiresAt = Date.now() + e.lifetimeMs;
        const r = await paced(() => setSandboxLifetime(c, e.sandboxId, e.lifetimeMs));
        extendsDone.push({
          runId: e.runId,
          sandboxId: e.sandboxId,
          outcome: r.outcome,
          expiresAt,
          ...(r.outcome === "failed" ? { error: `${r.kind}: ${r.message}` } : {}),
        });
      }
    });
    // Results are recorded in batches; a batch that fails to record leaves its runs "stopping",
    // and a later sweep re-kills them (a 404 then confirms they are gone).
    for (let i = 0; i < Math.max(kills.length, extendsDone.length); i += RECORD_BATCH) {
      await ctx.runMutation(internal.lifecycle.recordSweep, {
        kills: kills.slice(i, i + RECORD_BATCH),
        extends: extendsDone.slice(i, i + RECORD_BATCH),
      });
    }
    if (page.lane !== null) {
      if (page.more) await ctx.scheduler.runAfter(0, self, { lane: page.lane });
      else await ctx.runMutation(internal.lifecycle.releaseSweepLane, { lane: page.lane });
    }
    return {
      killed: kills.filter((k) => k.kill.outcome !== "failed").length,
      failed: kills.filter((k) => k.kill.outcome === "failed").length,
      extended: extendsDone.filter((e) => e.outcome === "extended").length,
      more: page.more,
    };
  },
});
