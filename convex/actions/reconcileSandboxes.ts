"use node";
import { v } from "convex/values";
import { internal } from "../_generated/api";
import { internalAction } from "../_generated/server";
import { getConfig } from "../model/config";
import {
  killSandboxSafely,
  listTaggedSandboxes,
  mapWithConcurrency,
  probeSandbox,
  sweepsIdleWithoutKey,
} from "../lib/e2b.sdk";

/** Pages listed per invocation; a longer listing continues in a rescheduled invocation. */
const MAX_PAGES_PER_PASS = 10;

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
      const page = await listTaggedSandboxes(c, { nextToken: token, limit: c.sweepPageSize });
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
        if (results.length > 0)
          await ctx.runMutation(internal.reconcile.recordOrphanKillResults, { results });
        r.orphansKilled += results.filter((x) => x.kill.outcome === "killed").length;
        r.killFailures += results.filter((x) => x.kill.outcome === "failed").length;
      }
      token = page.nextToken;
    } while (token !== undefined && pages < MAX_PAGES_PER_PASS);

    if (token !== undefined && !r.listFailed) {
      r.more = true;
      await ctx.scheduler.runAfter(0, internal.actions.reconcileSandboxes.reconcileSandboxes, {
        nextToken: token,
      });
    }
    if (args.nextToken === undefined && token === undefined && !r.listFailed) {
      // The whole namespace was listed in this pass: a running run whose sandbox is not in it
      // may have been expired or killed by E2B. Ask E2B about each before ending the run.
      const missing = await ctx.runQuery(internal.reconcile.runsMissingFromList, {
        listedIds,
        listedAt,
        graceMs: c.reconcileGraceMs,
        limit: c.sweepPageSize * MAX_PAGES_PER_PASS,
      });
      const probed = await mapWithConcurrency(missing, c.killConcurrency, async (m) => ({
        ...m,
        state: await probeSandbox(c, m.sandboxId),
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
