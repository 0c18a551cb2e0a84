"use node";
import { v } from "convex/values";
import { internal } from "../_generated/api";
import { internalAction } from "../_generated/server";
import { ACTION_BUDGET_MS, callBoundMs, type Config, getConfig } from "../model/config";
import {
  confirmSandboxGone,
  E2B_LIST_MAX_LIMIT,
  killSandboxSafely,
  listTaggedSandboxes,
  mapWithConcurrency,
  sweepsIdleWithoutKey,
} from "../lib/e2b.sdk";

/** Pages listed per invocation; a longer listing continues in a rescheduled invocation. */
const MAX_PAGES_PER_PASS = 10;
/**
 * Tries of one list page within a pass when it fails transiently (timeout, 5xx, a dropped
 * connection): a pass stops at its first failed page, and the oldest sandboxes — those a lost
 * or faked kill left behind — sit on its last pages, so one flaky answer must not cost them a
 * whole sweep interval. Refusals (429, auth) are not retried.
 */
const LIST_TRIES = 3;

/**
 * The list page size: E2B's maximum (100), or less when one page's calls — the list, then its
 * orphan kills `killConcurrency` at a time — could not fit a Node action's time if every call hung.
 */
export function reconcileListLimit(c: Config): number {
  const waves = Math.floor(ACTION_BUDGET_MS / callBoundMs(c)) - 1;
  return Math.max(1, Math.min(E2B_LIST_MAX_LIMIT, c.sweepPageSize, waves * c.killConcurrency));
}

/** Worst time one listed page can take: its list call and its kills, every call hanging. */
function pageWorstMs(c: Config): number {
  return (1 + Math.ceil(reconcileListLimit(c) / c.killConcurrency)) * callBoundMs(c);
}

type ReconcileResult = {
  listed: number;
  orphansKilled: number;
  killFailures: number;
  listFailed: boolean;
  sandboxesGone: number;
  more: boolean;
};

/**
 * The reconciling pass (its own cron, every minute): lists what really exists at E2B under this
 * deployment's namespace tag — running and paused — and kills every sandbox older than the
 * grace window whose run is missing, finished, or records a different sandbox. A complete
 * listing also ends running runs whose sandbox E2B no longer has (confirmed one by one).
 * A failing list call changes nothing; the next pass retries.
 */
export const reconcileSandboxes = internalAction({
  args: { nextToken: v.optional(v.string()) },
  returns: v.object({
    listed: v.number(),
    orphansKilled: v.number(),
    killFailures: v.number(),
    listFailed: v.boolean(),
    sandboxesGone: v.number(),
    more: v.boolean(),
  }),
  handler: async (ctx, args): Promise<ReconcileResult> => {
    const c = getConfig();
    // Wall-clock budget (real time: Date may be simulated): a page starts only if its worst case fits.
    const began = performance.now();
    const spent = () => performance.now() - began;
    const listedAt = Date.now();
    const listedIds: string[] = [];
    const r: ReconcileResult = {
      listed: 0,
      orphansKilled: 0,
      killFailures: 0,
      listFailed: false,
      sandboxesGone: 0,
      more: false,
    };
    if (sweepsIdleWithoutKey(c)) return r;
    let token = args.nextToken;
    let pages = 0;
    do {
      let page = await listTaggedSandboxes(c, { nextToken: token, limit: reconcileListLimit(c) });
      for (let tries = 1; !page.ok && tries < LIST_TRIES; tries++) {
        const transient = ["timeout", "unavailable", "other"].includes(page.failure.kind);
        if (!transient || spent() + pageWorstMs(c) > ACTION_BUDGET_MS) break;
        page = await listTaggedSandboxes(c, { nextToken: token, limit: reconcileListLimit(c) });
      }
      if (!page.ok) {
        r.listFailed = true;
        console.warn(
          `reconcile: list failed (${page.failure.kind}: ${page.failure.message}); retrying next pass`,
        );
        break;
      }
      pages++;
      r.listed += page.items.length;
      listedIds.push(...page.items.map((s) => s.sandboxId));
      const graceCutoff = Date.now() - c.reconcileGraceMs;
      const old = page.items.filter((s) => s.startedAt <= graceCutoff);
      if (old.length > 0) {
        const orphans = await ctx.runQuery(internal.reconcile.orphansAmong, {
          listed: old.map((s) => ({
            sandboxId: s.sandboxId,
            ...(s.runIdTag !== undefined ? { runIdTag: s.runIdTag } : {}),
          })),
        });
        const results = await mapWithConcurrency(orphans, c.killConcurrency, async (o) => ({
          ...o,
          kill: await killSandboxSafely(c, o.sandboxId),
        }));
        // A kill that failed transiently is tried once more now, if the pass has the time: the
        // next chance is a sweep interval away, and a 404 on the retry is as good as a kill.
        const again = results.filter(
          (x) => x.kill.outcome === "failed" && x.kill.kind !== "rate_limited" && x.kill.kind !== "auth",
        );
        const retryMs = Math.ceil(again.length / c.killConcurrency) * callBoundMs(c);
        if (again.length > 0 && spent() + retryMs + pageWorstMs(c) <= ACTION_BUDGET_MS) {
          await mapWithConcurrency(again, c.killConcurrency, async (x) => {
            x.kill = await killSandboxSafely(c, x.sandboxId);
          });
        }
        if (results.length > 0)
          await ctx.runMutation(internal.reconcile.recordOrphanKillResults, { results });
        r.orphansKilled += results.filter((x) => x.kill.outcome === "killed").length;
        r.killFailures += results.filter((x) => x.kill.outcome === "failed").length;
      }
      token = page.nextToken;
    } while (
      token !== undefined &&
      pages < MAX_PAGES_PER_PASS &&
      spent() + pageWorstMs(c) <= ACTION_BUDGET_MS
    );

    if (token !== undefined && !r.listFailed) {
      r.more = true;
      await ctx.scheduler.runAfter(0, internal.actions.reconcileSandboxes.reconcileSandboxes, {
        nextToken: token,
      });
    }
    if (args.nextToken === undefined && token === undefined && !r.listFailed) {
      // The whole namespace was listed in this pass: a running run whose sandbox is not in it
      // may have been expired or killed by E2B. Ask E2B about each (getInfo, then a kill of our
      // own) before ending the run, as many as the time left allows (two calls each).
      const waves = Math.floor((ACTION_BUDGET_MS - spent()) / (2 * callBoundMs(c)));
      const missing = (
        await ctx.runQuery(internal.reconcile.runsMissingFromList, {
          listedIds,
          listedAt,
          graceMs: c.reconcileGraceMs,
          limit: reconcileListLimit(c) * MAX_PAGES_PER_PASS,
        })
      ).slice(0, Math.max(0, waves * c.killConcurrency)); // the rest: the next complete pass
      const probed = await mapWithConcurrency(missing, c.killConcurrency, async (m) => ({
        ...m,
        state: await confirmSandboxGone(c, m.sandboxId),
      }));
      const gone = probed
        .filter((p) => p.state === "gone")
        .map(({ runId, sandboxId }) => ({ runId, sandboxId }));
      for (const g of gone) await ctx.runMutation(internal.lifecycle.recordSandboxGone, g);
      r.sandboxesGone = gone.length;
    }
    return r;
  },
});
