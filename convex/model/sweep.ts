import { type Infer, v } from "convex/values";
import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import {
  ACTION_BUDGET_MS,
  callBoundMs,
  type Config,
  getConfig,
  runningLifetimeMs,
  TAG_KILL_CALLS,
} from "./config";
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

/**
 * A page's E2B work, in E2B calls (a kill by id or an extension: 1; a kill by tag:
 * TAG_KILL_CALLS), must finish inside a Node action's 10 minutes even if every call hangs for
 * its whole bound (request timeout + deadline slack). With `killConcurrency` calls in flight, a
 * page of U call-units takes at most U / concurrency + TAG_KILL_CALLS call bounds.
 */
export function pageUnits(c: Config): number {
  const waves = Math.floor(ACTION_BUDGET_MS / callBoundMs(c)) - TAG_KILL_CALLS;
  return Math.max(TAG_KILL_CALLS, waves * c.killConcurrency);
}

/** Runs a page of single-call work (a pause, a kill by id) may claim: the page size, within the units. */
export function pageBudget(c: Config): number {
  return Math.min(c.sweepPageSize, pageUnits(c));
}

/** Until when a page's claims (and its sweep lane) belong to the action that claimed them. */
export function pageLeaseUntil(c: Config, now: number): number {
  return killLeaseUntil(c, now, Math.min(pageUnits(c), c.sweepPageSize * TAG_KILL_CALLS));
}

/** What claiming one run costs of a page's budget, in E2B calls. */
const unitsOf = (run: Pick<Run, "sandboxId">) => (run.sandboxId !== undefined ? 1 : TAG_KILL_CALLS);

export async function claimSweepPage(ctx: MutationCtx): Promise<SweepPage> {
  const c = getConfig();
  const now = Date.now();
  let left = c.sweepPageSize; // runs looked at, kills and extensions together
  let units = pageUnits(c); // E2B calls the claimed work may make
  const lease = pageLeaseUntil(c, now);
  const kills: KillClaim[] = [];
  const claimed = new Set<string>();
  let full = false;
  const room = () => (full ? 0 : Math.min(left, units));

  const claim = async (runs: Run[], reason: EndReason | null, asked: number) => {
    for (const run of runs) {
      if (claimed.has(run._id)) continue;
      if (unitsOf(run) > units) {
        full = true; // the rest stay in their range: the next page takes them
        return;
      }
      claimed.add(run._id);
      left--;
      if (await claimForKill(ctx, run, reason, lease)) {
        units -= unitsOf(run);
        kills.push({ runId: run._id, ...(run.sandboxId !== undefined ? { sandboxId: run.sandboxId } : {}) });
      }
    }
    if (runs.length >= asked || room() === 0) full = true;
  };
  const runs = (status: "booting" | "running" | "stopping") =>
    ctx.db
      .query("sandboxRuns")
      .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", status).lte("deadlineAt", now));

  // Booting past the boot deadline (with or without a sandboxId).
  const scan = async (status: "booting" | "running" | "stopping", reason: EndReason | null) => {
    const asked = room();
    if (asked > 0) await claim(await runs(status).take(asked), reason, asked);
  };
  await scan("booting", "boot_timeout");
  // Running past the max lifetime.
  await scan("running", "max_lifetime");
  // Running but idle past the idle timeout.
  const idleAsked = room();
  if (idleAsked > 0) {
    const idle = await ctx.db
      .query("sandboxRuns")
      .withIndex("by_status_and_lastActivityAt", (q) =>
        q.eq("status", "running").lte("lastActivityAt", now - c.idleTimeoutMs),
      )
      .take(idleAsked);
    await claim(idle, "idle", idleAsked);
  }
  // Kills owed whose retry time has come (or whose claiming sweep died).
  await scan("stopping", null); // a stopping run keeps its reason

  // Dead-man switch: extend the E2B lifetime of running sandboxes that showed activity since
  // their last extension; others are looked at again later. One extension per half lifetime.
  const extendsOut: ExtendClaim[] = [];
  const dueLimit = room();
  const due =
    dueLimit > 0
      ? await ctx.db
          .query("sandboxRuns")
          .withIndex("by_status_and_renewAt", (q) => q.eq("status", "running").lte("renewAt", now))
          .take(dueLimit)
      : [];
  if (dueLimit > 0 && due.length === dueLimit) full = true;
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
  return { kills, extends: extendsOut, more: full };
}

/**
 * A sweep lane: the right to work sweep pages, one action at a time. At most
 * SANDBOX_SWEEP_PARALLEL_PAGES lanes are leased at any moment, whichever cron tick or
 * continuation holds them, so sweep kills in flight never exceed lanes × SANDBOX_KILL_CONCURRENCY.
 * The generation tells a lane's current holder from a stale continuation of an earlier one.
 */
export const laneTicket = v.object({ lane: v.number(), generation: v.number() });
export type LaneTicket = Infer<typeof laneTicket>;

/** Leases up to `want` free lanes (never leased, released, or lease ran out) until `until`. */
async function takeLanes(
  ctx: MutationCtx,
  c: Config,
  now: number,
  want: number,
  until: number,
): Promise<LaneTicket[]> {
  // Every lane row, including lanes above a since-lowered SANDBOX_SWEEP_PARALLEL_PAGES (≤ 32).
  const rows = await ctx.db.query("sweepLanes").withIndex("by_lane").take(64);
  const busy = rows.filter((r) => r.leasedUntil > now).length;
  const byLane = new Map(rows.map((r) => [r.lane, r]));
  const out: LaneTicket[] = [];
  for (
    let lane = 0;
    lane < c.sweepParallelPages && out.length < Math.min(want, c.sweepParallelPages - busy);
    lane++
  ) {
    const row = byLane.get(lane);
    if (row && row.leasedUntil > now) continue;
    const generation = (row?.generation ?? 0) + 1;
    if (row) await ctx.db.patch("sweepLanes", row._id, { generation, leasedUntil: until });
    else await ctx.db.insert("sweepLanes", { lane, generation, leasedUntil: until });
    out.push({ lane, generation });
  }
  return out;
}

async function laneRow(ctx: MutationCtx, t: LaneTicket) {
  const row = await ctx.db
    .query("sweepLanes")
    .withIndex("by_lane", (q) => q.eq("lane", t.lane))
    .unique();
  return row && row.generation === t.generation ? row : null;
}

export type LanePage = SweepPage & { lane: LaneTicket | null; opened: LaneTicket[] };

/**
 * A cron tick (no ticket) takes a free lane, or does nothing while every lane is busy; a
 * continuation keeps its lane only if it still holds it. The lane then claims one page, leased
 * for as long as the page's work may take. A tick whose page is full opens the free lanes too.
 */
export async function claimLanePage(ctx: MutationCtx, ticket: LaneTicket | undefined): Promise<LanePage> {
  const c = getConfig();
  const now = Date.now();
  const lease = pageLeaseUntil(c, now);
  const mine = ticket ? (await laneRow(ctx, ticket)) && ticket : (await takeLanes(ctx, c, now, 1, lease))[0];
  if (!mine) return { kills: [], extends: [], more: false, lane: null, opened: [] };
  const row = await laneRow(ctx, mine);
  await ctx.db.patch("sweepLanes", row!._id, { leasedUntil: lease });
  const page = await claimSweepPage(ctx);
  const opened = page.more && !ticket ? await takeLanes(ctx, c, now, c.sweepParallelPages - 1, lease) : [];
  return { ...page, lane: mine, opened };
}

/** A lane whose sweep has nothing more to do is free at once for the next tick. */
export async function releaseLane(ctx: MutationCtx, ticket: LaneTicket) {
  const row = await laneRow(ctx, ticket);
  if (row) await ctx.db.patch("sweepLanes", row._id, { leasedUntil: 0 });
}
