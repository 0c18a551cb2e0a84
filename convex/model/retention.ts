import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { getConfig } from "./config";
import { TERMINAL } from "./status";
import { purgeWebhookEvents } from "./webhooks";

/** Documents one purge transaction may delete; well under Convex's 16,000 writes. */
export const PURGE_BUDGET = 1_000;

/**
 * Deletes finished runs older than the retention window, with their events and commands, and
 * old orphan records, run-less events and handled webhook events. Only terminal runs qualify: their sandboxes are
 * confirmed killed or gone (and a tagged sandbox that outlived its deleted run is still reaped
 * by the reconciler as "run_missing"). Returns whether the budget ran out (more to do).
 */
export async function purgeExpired(
  ctx: MutationCtx,
  budget = PURGE_BUDGET,
): Promise<{ deleted: number; more: boolean }> {
  const cutoff = Date.now() - getConfig().retentionMs;
  let left = budget;

  const deleteAll = async <T extends "runEvents" | "commands" | "orphanSandboxes">(
    table: T,
    ids: Id<T>[],
  ) => {
    for (const id of ids) await ctx.db.delete(table, id);
    left -= ids.length;
  };

  for (const status of TERMINAL) {
    while (left > 0) {
      // Terminal runs keep deadlineAt = endedAt.
      const runs = await ctx.db
        .query("sandboxRuns")
        .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", status).lt("deadlineAt", cutoff))
        .take(Math.min(left, 100));
      if (runs.length === 0) break;
      for (const run of runs) {
        if (left <= 0) break;
        const events = await ctx.db
          .query("runEvents")
          .withIndex("by_runId_and_at", (q) => q.eq("runId", run._id))
          .take(left);
        await deleteAll(
          "runEvents",
          events.map((e) => e._id),
        );
        const commands =
          left > 0
            ? await ctx.db
                .query("commands")
                .withIndex("by_runId_and_startedAt", (q) => q.eq("runId", run._id))
                .take(left)
            : [];
        await deleteAll(
          "commands",
          commands.map((c) => c._id),
        );
        if (left <= 0) break; // dependents may remain: the run goes in a later batch
        await ctx.db.delete("sandboxRuns", run._id);
        left -= 1;
      }
    }
  }
  if (left > 0) {
    const orphans = await ctx.db
      .query("orphanSandboxes")
      .withIndex("by_at", (q) => q.lt("at", cutoff))
      .take(left);
    await deleteAll(
      "orphanSandboxes",
      orphans.map((o) => o._id),
    );
  }
  if (left > 0) left -= await purgeWebhookEvents(ctx, cutoff, left);
  if (left > 0) {
    const refusals = await ctx.db
      .query("runEvents")
      .withIndex("by_kind_and_at", (q) => q.eq("kind", "quota_refused").lt("at", cutoff))
      .take(left);
    await deleteAll(
      "runEvents",
      refusals.map((e) => e._id),
    );
  }
  return { deleted: budget - left, more: left <= 0 };
}
