import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { callBoundMs, type Config, getConfig, runningLifetimeMs, TAG_KILL_CALLS } from "./config";
import {
  canTransition,
  type EndReason,
  type IdleAction,
  isTerminal,
  type RunStatus,
  terminalStatusFor,
} from "./status";
import type { ExtendResult, KillResult, SandboxRecord } from "./validators";

export type Run = Doc<"sandboxRuns">;
type EventInput = Omit<Doc<"runEvents">, "_id" | "_creationTime" | "at" | "runId" | "ownerId">;

export async function logEvent(
  ctx: MutationCtx,
  run: Pick<Run, "_id" | "ownerId"> | null,
  e: EventInput & { ownerId?: string },
) {
  await ctx.db.insert("runEvents", {
    ...(run ? { runId: run._id, ownerId: run.ownerId } : {}),
    at: Date.now(),
    ...e,
  });
}

/**
 * The only way a run changes status. Re-reads the run and does nothing (returns null) unless it
 * is in one of `expected` and the move is in the transition table, so late or duplicate calls
 * are harmless.
 */
export async function transition(
  ctx: MutationCtx,
  runId: Id<"sandboxRuns">,
  expected: readonly RunStatus[],
  to: RunStatus,
  patch: Partial<Run>,
  event: Omit<EventInput, "kind" | "from" | "to"> = {},
): Promise<Run | null> {
  const run = await ctx.db.get("sandboxRuns", runId);
  if (!run || !expected.includes(run.status) || !canTransition(run.status, to)) return null;
  const now = Date.now();
  const full: Partial<Run> = { ...patch, status: to };
  if (isTerminal(to)) {
    // Terminal runs keep deadlineAt = endedAt so retention can find them by index.
    Object.assign(full, { endedAt: now, deadlineAt: now, renewAt: undefined });
  }
  await ctx.db.patch("sandboxRuns", runId, full);
  await logEvent(ctx, run, { kind: "transition", from: run.status, to, ...event });
  return { ...run, ...full } as Run;
}

/**
 * Until when claimed kills belong to whoever claimed them, before a sweep may retry them (ms):
 * long enough for `units` E2B calls, `killConcurrency` at a time, plus the longest single kill
 * (by tag: TAG_KILL_CALLS calls), each call taking its whole bound.
 */
export function killLeaseUntil(c: Config, now: number, units = TAG_KILL_CALLS): number {
  return now + (Math.ceil(units / c.killConcurrency) + TAG_KILL_CALLS) * callBoundMs(c) + 30_000;
}

/** How long to wait before retrying a kill that failed `attempts` times (ms). */
export function killBackoffMs(attempts: number, retryAfterMs?: number): number {
  const exp = Math.min(5_000 * 2 ** Math.max(0, attempts - 1), 10 * 60_000);
  return Math.max(exp, retryAfterMs ?? 0);
}

/** When the sweep should next look at a running sandbox's E2B lifetime (at most once per half lifetime). */
export function nextRenewAt(c: Config, expiresAt: number, now: number): number {
  const halfLife = Math.floor(runningLifetimeMs(c) / 2);
  return Math.max(now + c.sweepIntervalMs, Math.min(expiresAt - c.sweepIntervalMs, now + halfLife));
}

/** Step 1 of a start: the run exists before any sandbox does. */
export async function insertBootingRun(
  ctx: MutationCtx,
  args: {
    ownerId: string;
    template: string;
    idempotencyKey?: string;
    createSlotAt?: number;
    onIdle?: IdleAction;
  },
): Promise<Run> {
  const c = getConfig();
  const now = Date.now();
  const doc = {
    ownerId: args.ownerId,
    template: args.template,
    status: "booting" as const,
    ...(args.idempotencyKey !== undefined ? { idempotencyKey: args.idempotencyKey } : {}),
    ...(args.createSlotAt !== undefined ? { createSlotAt: args.createSlotAt } : {}),
    createdAt: now,
    lastActivityAt: now,
    deadlineAt: now + c.bootTimeoutMs,
    killAttempts: 0,
    onIdle: args.onIdle ?? c.idleAction,
  };
  const id = await ctx.db.insert("sandboxRuns", doc);
  await logEvent(
    ctx,
    { _id: id, ownerId: args.ownerId },
    { kind: "transition", to: "booting", reason: "start" },
  );
  return (await ctx.db.get("sandboxRuns", id))!;
}

/**
 * Step 3: remember the sandbox while still booting. Also accepted on a run that is already
 * stopping without an id, so the owed kill can target it. Returns whether the run still wants
 * this sandbox; when it does not, the caller kills it.
 */
export async function recordSandboxId(ctx: MutationCtx, args: SandboxRecord): Promise<{ wanted: boolean }> {
  const run = await ctx.db.get("sandboxRuns", args.runId);
  if (!run || isTerminal(run.status)) return { wanted: false };
  if (run.sandboxId !== undefined)
    return { wanted: run.sandboxId === args.sandboxId && run.status === "booting" };
  if (run.status !== "booting" && run.status !== "stopping") return { wanted: false };
  await ctx.db.patch("sandboxRuns", run._id, {
    sandboxId: args.sandboxId,
    sandboxExpiresAt: args.sandboxExpiresAt,
    ...(run.status === "stopping" ? { deadlineAt: Date.now() } : {}),
  });
  await logEvent(ctx, run, { kind: "sandbox_recorded", sandboxId: args.sandboxId });
  return { wanted: run.status === "booting" };
}

/** Step 4: booting → running, only for the sandbox this run recorded. */
export async function markRunning(ctx: MutationCtx, args: SandboxRecord): Promise<boolean> {
  const c = getConfig();
  const run = await ctx.db.get("sandboxRuns", args.runId);
  if (!run || run.sandboxId !== args.sandboxId) return false;
  const now = Date.now();
  const moved = await transition(ctx, run._id, ["booting"], "running", {
    startedAt: now,
    lastActivityAt: now,
    deadlineAt: now + c.maxLifetimeMs,
    sandboxExpiresAt: args.sandboxExpiresAt,
    renewAt: nextRenewAt(c, args.sandboxExpiresAt, now),
  });
  return moved !== null;
}

/** A create that E2B certainly refused: no sandbox exists, the run ends now. */
export async function recordStartRefused(
  ctx: MutationCtx,
  args: { runId: Id<"sandboxRuns">; error: string },
) {
  await transition(
    ctx,
    args.runId,
    ["booting"],
    "failed",
    { endReason: "start_failed", error: args.error },
    { reason: "start_failed", detail: args.error },
  );
}

/**
 * Records the result of a kill made for `reason` (the kill already happened: kill first, then
 * record). The run becomes terminal only when every sandbox it could own is confirmed dead:
 * - killed by id: the id must be the run's own (or the run never learned one);
 * - killed by tag (id never learned): the list came back clean and the run is past the grace
 *   window in which an in-flight create could still appear.
 * Otherwise the run is (or stays) "stopping": the kill is owed and the sweep retries it.
 */
export async function settleKill(
  ctx: MutationCtx,
  // args.reason: why the kill was made (a run already stopping keeps its own); no args.sandboxId: a kill by tag
  args: KillResult,
): Promise<RunStatus | null> {
  const c = getConfig();
  const run = await ctx.db.get("sandboxRuns", args.runId);
  if (!run || isTerminal(run.status)) return null;
  const now = Date.now();
  const reason = run.endReason ?? args.reason;
  if (reason === undefined) return null;
  const error = args.error ?? run.error;

  let confirmed = args.kill.outcome !== "failed";
  let retryAt = now;
  if (args.sandboxId !== undefined) {
    confirmed &&= run.sandboxId === undefined || run.sandboxId === args.sandboxId;
    // A sandbox the run never recorded (its create answer was lost, or storing it failed):
    // the run learns which one it had, and any kill still owed targets it by id.
    if (run.sandboxId === undefined)
      await recordSandboxId(ctx, { runId: run._id, sandboxId: args.sandboxId, sandboxExpiresAt: now });
  } else {
    // A run that learned its id since the claim is retried by id at once.
    confirmed &&= run.sandboxId === undefined && now >= run.createdAt + c.reconcileGraceMs;
    if (run.sandboxId === undefined) retryAt = Math.max(now, run.createdAt + c.reconcileGraceMs);
  }
  await logEvent(ctx, run, {
    kind: "kill",
    reason,
    kill: args.kill,
    ...(args.sandboxId !== undefined ? { sandboxId: args.sandboxId } : { detail: "by tag" }),
  });

  if (confirmed) {
    const to = terminalStatusFor(reason);
    const done = await transition(
      ctx,
      run._id,
      [run.status],
      to,
      { endReason: reason, ...(error !== undefined ? { error } : {}) },
      { reason },
    );
    return done ? to : null;
  }
  const attempts = run.killAttempts + (args.kill.outcome === "failed" ? 1 : 0);
  const owed: Partial<Run> = {
    endReason: reason,
    killAttempts: attempts,
    deadlineAt:
      args.kill.outcome === "failed" ? now + killBackoffMs(attempts, args.kill.retryAfterMs) : retryAt,
    ...(args.kill.outcome === "failed" ? { lastKillError: `${args.kill.kind}: ${args.kill.message}` } : {}),
    ...(error !== undefined ? { error } : {}),
  };
  if (run.status === "stopping") {
    await ctx.db.patch("sandboxRuns", run._id, owed);
    return "stopping";
  }
  const moved = await transition(ctx, run._id, [run.status], "stopping", owed, { reason });
  return moved ? "stopping" : null;
}

/**
 * Claims a run for a kill the sweep (or a user's stop) is about to make: marks it "stopping"
 * with the reason, leased so that an overlapping sweep does not kill it twice.
 */
export async function claimForKill(ctx: MutationCtx, run: Run, reason: EndReason | null, leaseUntil: number) {
  if (run.status === "stopping") {
    await ctx.db.patch("sandboxRuns", run._id, { deadlineAt: leaseUntil });
    return true;
  }
  if (reason === null) return false;
  const moved = await transition(
    ctx,
    run._id,
    [run.status],
    "stopping",
    { endReason: reason, deadlineAt: leaseUntil },
    { reason },
  );
  return moved !== null;
}

/** Records an extension of the sandbox's E2B lifetime, or that E2B no longer has the sandbox. */
export async function settleExtend(ctx: MutationCtx, args: ExtendResult) {
  const c = getConfig();
  const run = await ctx.db.get("sandboxRuns", args.runId);
  if (!run || run.sandboxId !== args.sandboxId || run.status !== "running") return;
  const now = Date.now();
  if (args.outcome === "extended") {
    await ctx.db.patch("sandboxRuns", run._id, {
      sandboxExpiresAt: args.expiresAt,
      renewAt: nextRenewAt(c, args.expiresAt, now),
    });
    await logEvent(ctx, run, {
      kind: "extend",
      sandboxId: args.sandboxId,
      detail: `expires ${new Date(args.expiresAt).toISOString()}`,
    });
  } else if (args.outcome === "paused") {
    // E2B still has it, paused: a snapshot has no lifetime to extend. Only a kill's answer may
    // end this run: the kill is owed now (kill first, then record).
    await transition(
      ctx,
      run._id,
      ["running"],
      "stopping",
      { endReason: "sandbox_gone", deadlineAt: now },
      { reason: "sandbox_gone", sandboxId: args.sandboxId },
    );
  } else if (args.outcome === "gone") {
    await endRunSandboxGone(ctx, run._id, args.sandboxId);
  } else {
    // Due again at the next sweep, whenever it runs.
    await ctx.db.patch("sandboxRuns", run._id, { renewAt: now + Math.floor(c.sweepIntervalMs / 2) });
    await logEvent(ctx, run, {
      kind: "extend",
      sandboxId: args.sandboxId,
      detail: `failed: ${args.error ?? "unknown"}`,
    });
  }
}

/** E2B expired or killed the sandbox on its own: the run is over, not "running" with nothing behind it. */
export async function endRunSandboxGone(ctx: MutationCtx, runId: Id<"sandboxRuns">, sandboxId: string) {
  const run = await ctx.db.get("sandboxRuns", runId);
  if (!run || run.sandboxId !== sandboxId) return;
  if (run.everPaused) {
    // E2B keeps a paused snapshot whatever its lifetime does (a resumed sandbox that times out
    // comes back paused): only a kill's answer may end this run.
    await transition(
      ctx,
      run._id,
      ["running"],
      "stopping",
      { endReason: "sandbox_gone", deadlineAt: Date.now() },
      { reason: "sandbox_gone", sandboxId },
    );
    return;
  }
  await transition(
    ctx,
    run._id,
    ["running"],
    "stopped",
    { endReason: "sandbox_gone" },
    { reason: "sandbox_gone", sandboxId },
  );
}
