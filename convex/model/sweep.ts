import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { getConfig, runningLifetimeMs } from "./config";
import { claimForKill, killLeaseUntil, nextRenewAt, type Run } from "./runs";
import type { EndReason } from "./status";

export type KillClaim = { runId: Id<"sandboxRuns">; sandboxId?: string };
export type ExtendClaim = { runId: Id<"sandboxRuns">; sandboxId: string; lifetimeMs: number; expiresAt: number };

/**
 * One page of sweep work, claimed in one transaction. Each scan is an index range with a bound,
 * and every run it returns leaves its range (status or time moves on), so the next page, or the
 * next sweep, sees new runs: `more` says a range was full and the caller should continue.
 */
export type SweepPage = { kills: KillClaim[]; extends: ExtendClaim[]; more: boolean };

export async function claimSweepPage(ctx: MutationCtx): Promise<SweepPage> {
  const c = getConfig();
  const now = Date.now();
  const n = c.sweepPageSize;
  const lease = killLeaseUntil(c, now);
  const kills: KillClaim[] = [];
  const claimed = new Set<string>();
  let more = false;

  const claim = async (runs: Run[], reason: EndReason | null) => {
    if (runs.length === n) more = true;
    for (const run of runs) {
      if (claimed.has(run._id)) continue;
      claimed.add(run._id);
      if (await claimForKill(ctx, run, reason, lease)) {
        kills.push({ runId: run._id, ...(run.sandboxId !== undefined ? { sandboxId: run.sandboxId } : {}) });
      }
    }
  };

  // Booting past the boot deadline (with or without a sandboxId).
  await claim(
    await ctx.db.query("sandboxRuns").withIndex("by_status_and_deadlineAt", (q) => q.eq("status", "booting").lte("deadlineAt", now)).take(n),
    "boot_timeout",
  );
  // Running past the max lifetime.
  await claim(
    await ctx.db.query("sandboxRuns").withIndex("by_status_and_deadlineAt", (q) => q.eq("status", "running").lte("deadlineAt", now)).take(n),
    "max_lifetime",
  );
  // Running but idle past the idle timeout.
  await claim(
    await ctx.db
      .query("sandboxRuns")
      .withIndex("by_status_and_lastActivityAt", (q) => q.eq("status", "running").lte("lastActivityAt", now - c.idleTimeoutMs))
      .take(n),
    "idle",
  );
  // Kills owed whose retry time has come (or whose claiming sweep died).
  await claim(
    await ctx.db.query("sandboxRuns").withIndex("by_status_and_deadlineAt", (q) => q.eq("status", "stopping").lte("deadlineAt", now)).take(n),
    null, // a stopping run keeps the reason it was claimed with
  );

  // Dead-man switch: extend the E2B lifetime of running sandboxes that showed activity since
  // their last extension; others are looked at again later. One extension per half lifetime.
  const extendsOut: ExtendClaim[] = [];
  const due = await ctx.db
    .query("sandboxRuns")
    .withIndex("by_status_and_renewAt", (q) => q.eq("status", "running").lte("renewAt", now))
    .take(n);
  if (due.length === n) more = true;
  for (const run of due) {
    if (claimed.has(run._id) || run.sandboxId === undefined) continue;
    const hardCap = (run.startedAt ?? run.createdAt) + c.maxLifetimeMs + c.lifetimeSlackMs;
    const target = Math.min(run.lastActivityAt + runningLifetimeMs(c), hardCap);
    const current = run.sandboxExpiresAt ?? 0;
    // Only activity worth at least a sweep interval of lifetime buys an E2B call.
    if (target - current >= c.sweepIntervalMs && target > now) {
      await ctx.db.patch(run._id, { renewAt: lease });
      extendsOut.push({ runId: run._id, sandboxId: run.sandboxId, lifetimeMs: target - now, expiresAt: target });
    } else {
      await ctx.db.patch(run._id, { renewAt: nextRenewAt(c, current, now) });
    }
  }
  return { kills, extends: extendsOut, more };
}
