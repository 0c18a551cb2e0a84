import type { Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import { logEvent } from "./runs";
import { isTerminal, type KillOutcome } from "./status";

export type OrphanReason = "run_missing" | "run_ended" | "not_the_runs_sandbox";
export type Orphan = {
  sandboxId: string;
  runId?: Id<"sandboxRuns">;
  taggedRunId?: string;
  reason: OrphanReason;
};

/**
 * Which of these listed sandboxes (this namespace's, older than the grace window) no live run
 * owns: the run is missing, finished, or records a different sandbox. A run still booting or
 * stopping without an id is left alone: its own sweep finds its sandbox by tag.
 */
export async function findOrphans(
  ctx: QueryCtx,
  listed: { sandboxId: string; runIdTag?: string }[],
): Promise<Orphan[]> {
  const orphans: Orphan[] = [];
  for (const s of listed) {
    const tag = s.runIdTag !== undefined ? { taggedRunId: s.runIdTag } : {};
    const runId = s.runIdTag !== undefined ? ctx.db.normalizeId("sandboxRuns", s.runIdTag) : null;
    const run = runId ? await ctx.db.get("sandboxRuns", runId) : null;
    if (!run) orphans.push({ sandboxId: s.sandboxId, ...tag, reason: "run_missing" });
    else if (isTerminal(run.status))
      orphans.push({ sandboxId: s.sandboxId, runId: run._id, ...tag, reason: "run_ended" });
    else if (run.sandboxId !== undefined && run.sandboxId !== s.sandboxId) {
      orphans.push({ sandboxId: s.sandboxId, runId: run._id, ...tag, reason: "not_the_runs_sandbox" });
    }
  }
  return orphans;
}

/** Each reconcile kill is recorded on its run, or as an orphan record when no run exists. */
export async function recordOrphanKills(ctx: MutationCtx, results: (Orphan & { kill: KillOutcome })[]) {
  for (const r of results) {
    const run = r.runId ? await ctx.db.get("sandboxRuns", r.runId) : null;
    if (run) {
      await logEvent(ctx, run, {
        kind: "reconcile_kill",
        sandboxId: r.sandboxId,
        reason: r.reason,
        kill: r.kill,
      });
    } else {
      await ctx.db.insert("orphanSandboxes", {
        sandboxId: r.sandboxId,
        ...(r.taggedRunId !== undefined ? { taggedRunId: r.taggedRunId } : {}),
        reason: r.reason,
        kill: r.kill,
        at: Date.now(),
      });
    }
  }
}

/**
 * Running runs whose sandbox was absent from a complete listing taken at `listedAt`, and that
 * were already running a grace window before it (a list can lag). Bounded by `limit`.
 */
export async function runningRunsNotListed(
  ctx: QueryCtx,
  args: { listedIds: string[]; listedAt: number; graceMs: number; limit: number },
): Promise<{ runId: Id<"sandboxRuns">; sandboxId: string }[]> {
  const seen = new Set(args.listedIds);
  const running = await ctx.db
    .query("sandboxRuns")
    .withIndex("by_status_and_lastActivityAt", (q) => q.eq("status", "running"))
    .take(args.limit);
  return running
    .filter(
      (r) =>
        r.sandboxId !== undefined &&
        !seen.has(r.sandboxId) &&
        (r.startedAt ?? r.createdAt) <= args.listedAt - args.graceMs,
    )
    .map((r) => ({ runId: r._id, sandboxId: r.sandboxId! }));
}
