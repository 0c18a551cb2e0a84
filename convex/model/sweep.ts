import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { type Config, getConfig, runningLifetimeMs } from "./config";
import { claimForKill, killLeaseUntil, nextRenewAt, type Run } from "./runs";
import type { EndReason } from "./status";

export type KillClaim = { runId: Id<"sandboxRuns">; sandboxId?: string };
export type ExtendClaim = {
  runId: Id<"sandboxRuns">;
  sandboxId: string;
  lifetimeMs: number;
  expiresAt: number;
};

/**
 * One page of sweep work, claimed in one transaction. Each scan is an index range with a bound,
 * and every run it returns leaves its range (status or time moves on), so the next page, or the
 * next sweep, sees new runs: `more` says the page filled up and the caller should continue.
 */
export type SweepPage = { kills: KillClaim[]; extends: ExtendClaim[]; more: boolean };

/** A page's E2B work must finish inside a Node action's 10 minutes even if every call hangs. */
const ACTION_BUDGET_MS = 8 * 60_000;

/** Runs one sweep page may claim: the configured page size, capped by what fits the action. */
export function pageBudget(c: Config): number {
  const waves = Math.max(1, Math.floor(ACTION_BUDGET_MS / (2 * c.e2bRequestTimeoutMs)));
  return Math.min(c.sweepPageSize, waves * c.killConcurrency);
}

export async function claimSweepPage(ctx: MutationCtx): Promise<SweepPage> {
  const c = getConfig();
  const now = Date.now();
  let left = pageBudget(c); // kills and extensions together
  const lease = killLeaseUntil(c, now, left);
  const kills: KillClaim[] = [];
  const claimed = new Set<string>();

  const claim = async (runs: Run[], reason: EndReason | null) => {
    for (const run of runs) {
      if (claimed.has(run._id)) continue;
      claimed.add(run._id);
      if (await claimForKill(ctx, run, reason, lease)) {
        kills.push({ runId: run._id, ...(run.sandboxId !== undefined ? { sandboxId: run.sandboxId } : {}) });
      }
    }
    left -= runs.length;
  };
  const runs = (status: "booting" | "running" | "stopping") =>
    ctx.db
      .query("sandboxRuns")
      .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", status).lte("deadlineAt", now));

  // Booting past the boot deadline (with or without a sandboxId).
  await claim(await runs("booting").take(left), "boot_timeout");
  // Running past the max lifetime.
  if (left > 0) await claim(await runs("running").take(left), "max_lifetime");
  // Running but idle past the idle timeout.
  if (left > 0) {
    const idle = await ctx.db
      .query("sandboxRuns")
      .withIndex("by_status_and_lastActivityAt", (q) =>
        q.eq("status", "running").lte("lastActivityAt", now - c.idleTimeoutMs),
      )
      .take(left);
    await claim(idle, "idle");
  }
  // Kills owed whose retry time has come (or whose claiming sweep died).
  if (left > 0) await claim(await runs("stopping").take(left), null); // a stopping run keeps its reason

  // Dead-man switch: extend the E2B lifetime of running sandboxes that showed activity since
  // their last extension; others are looked at again later. One extension per half lifetime.
  const extendsOut: ExtendClaim[] = [];
  const due =
    left > 0
      ? await ctx.db
          .query("sandboxRuns")
          .withIndex("by_status_and_renewAt", (q) => q.eq("status", "running").lte("renewAt", now))
          .take(left)
      : [];
  left -= due.length;
  for (const run of due) {
    if (claimed.has(run._id) || run.sandboxId === undefined) continue;
    // While running, deadlineAt is the max-lifetime deadline (later than startedAt + max for a
    // run that paused: paused time does not count).
    const hardCap = run.deadlineAt + c.lifetimeSlackMs;
    const target = Math.min(run.lastActivityAt + runningLifetimeMs(c), hardCap);
    const current = run.sandboxExpiresAt ?? 0;
    // Only activity worth at least a sweep interval of lifetime buys an E2B call.
    if (target - current >= c.sweepIntervalMs && target > now) {
      await ctx.db.patch("sandboxRuns", run._id, { renewAt: lease });
      extendsOut.push({
        runId: run._id,
        sandboxId: run.sandboxId,
        lifetimeMs: target - now,
        expiresAt: target,
      });
    } else {
      await ctx.db.patch("sandboxRuns", run._id, { renewAt: nextRenewAt(c, current, now) });
    }
  }
  return { kills, extends: extendsOut, more: left <= 0 };
}
