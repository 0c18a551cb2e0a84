// Pause on idle, resume on demand. Every move goes through the transition table
// (model/status.ts) and re-reads the run; only an answer from E2B's control plane changes what
// the database believes about the sandbox. Once a run has asked for a pause it is `everPaused`:
// E2B may hold a snapshot of it that no lifetime ends, so such a run ends only by a confirmed kill.
import { v, type Infer } from "convex/values";
import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { getOwnedRun } from "./access";
import { fail } from "./errors";
import { type Config, getConfig } from "./config";
import {
  claimForKill,
  killBackoffMs,
  killLeaseUntil,
  logEvent,
  nextRenewAt,
  type Run,
  settleKill,
  transition,
} from "./runs";
import { pageBudget } from "./sweep";
import type {
  KillResult,
  PauseClaim,
  PausePage,
  ResumeFailure,
  ResumeSettled,
  SandboxRecord,
} from "./validators";
import { isTerminal, runStatus, type RunStatus } from "./status";

/**
 * E2B works on one request for at most 70 s (its request deadline; 75 s write timeout). A kill
 * sent while our resume may still be running there can be undone by it (E2B deletes the
 * snapshot, then the resume publishes the sandbox as running), so no kill before this has passed.
 */
export const E2B_SERVER_DEADLINE_MS = 75_000;

/** Until when a resume's connect may still be at work at E2B, counted from when it is sent (ms). */
export function resumeLeaseUntil(c: Config, now: number): number {
  return now + Math.max(c.e2bRequestTimeoutMs + 5_000, E2B_SERVER_DEADLINE_MS) + 30_000;
}

/** What a pause call answered, as the sweep records it. */
export const pauseResult = v.object({
  runId: v.id("sandboxRuns"),
  sandboxId: v.string(),
  outcome: v.union(v.literal("paused"), v.literal("already_paused"), v.literal("gone"), v.literal("failed")),
  error: v.optional(v.string()),
  retryAfterMs: v.optional(v.number()),
});
export type PauseResult = Infer<typeof pauseResult>;

/** What E2B says of a sandbox whose resume has no known outcome (GET /sandboxes/{id}). */
export const stateCheck = v.object({
  runId: v.id("sandboxRuns"),
  sandboxId: v.string(),
  leaseUntil: v.number(),
  state: v.union(v.literal("running"), v.literal("paused"), v.literal("gone"), v.literal("unknown")),
});
export type StateCheck = Infer<typeof stateCheck>;

/** A run may be paused: the policy it was started with (absent means kill, from before pauses). */
export const pausesWhenIdle = (run: Run) => run.onIdle === "pause";

/**
 * One page of pause-lane work, claimed in one transaction; each scan is a bounded index range
 * whose runs leave it once claimed (status or time moves on):
 * 1. paused past SANDBOX_PAUSED_RETENTION_MS → killed (`paused_expired`) — also a run still
 *    pausing or resuming without an answer by then;
 * 2. running under the pause policy, idle for SANDBOX_PAUSE_AFTER_IDLE_MS → pausing;
 * 3. pausing whose answer never came (or failed) → asked again: 204 and 409 both mean paused;
 * 4. resuming whose answer never came, once the connect cannot be at work at E2B → checked.
 */
export async function claimPausePage(ctx: MutationCtx): Promise<PausePage> {
  const c = getConfig();
  const now = Date.now();
  let left = pageBudget(c);
  const lease = killLeaseUntil(c, now, left);
  const page: PausePage = { kills: [], pauses: [], checks: [], more: false };
  const due = (status: "paused" | "pausing" | "resuming") =>
    ctx.db
      .query("sandboxRuns")
      .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", status).lte("deadlineAt", now))
      .take(left);

  const expired = await due("paused");
  left -= expired.length;
  for (const run of expired) {
    if (await claimForKill(ctx, run, "paused_expired", lease)) {
      page.kills.push({
        runId: run._id,
        ...(run.sandboxId !== undefined ? { sandboxId: run.sandboxId } : {}),
      });
    }
  }
  if (left > 0) {
    const idle = await ctx.db
      .query("sandboxRuns")
      .withIndex("by_status_and_onIdle_and_lastActivityAt", (q) =>
        q
          .eq("status", "running")
          .eq("onIdle", "pause")
          .lte("lastActivityAt", now - c.pauseAfterIdleMs),
      )
      .take(left);
    left -= idle.length;
    for (const run of idle) {
      const claimed = await beginPause(ctx, run, lease);
      if (claimed) page.pauses.push(claimed);
    }
  }
  // A run whose pause or resume never got an answer may be paused at E2B all the same: its
  // retention still runs from the pause, and once it has passed the run is killed, not asked again.
  const expiredKill = async (run: Run) => {
    if (now < (run.pausedAt ?? now) + c.pausedRetentionMs) return false;
    if (await claimForKill(ctx, run, "paused_expired", lease)) {
      page.kills.push({
        runId: run._id,
        ...(run.sandboxId !== undefined ? { sandboxId: run.sandboxId } : {}),
      });
    }
    return true;
  };
  if (left > 0) {
    const pausing = await due("pausing");
    left -= pausing.length;
    for (const run of pausing) {
      if (run.sandboxId === undefined || (await expiredKill(run))) continue;
      await ctx.db.patch("sandboxRuns", run._id, { deadlineAt: lease });
      page.pauses.push({ runId: run._id, sandboxId: run.sandboxId });
    }
  }
  if (left > 0) {
    // Only once a resume's lease has passed (deadlineAt): no connect of ours can be at work.
    const resuming = await due("resuming");
    left -= resuming.length;
    for (const run of resuming) {
      if (run.sandboxId === undefined || (await expiredKill(run))) continue;
      await ctx.db.patch("sandboxRuns", run._id, { deadlineAt: lease });
      page.checks.push({ runId: run._id, sandboxId: run.sandboxId, leaseUntil: lease });
    }
  }
  page.more = left <= 0;
  return page;
}

/**
 * running → pausing, before the pause call. What is left of the max lifetime is kept (paused
 * time does not count against it), and the run is marked `everPaused` from now on.
 */
export async function beginPause(ctx: MutationCtx, run: Run, leaseUntil: number): Promise<PauseClaim | null> {
  if (run.sandboxId === undefined) return null;
  const now = Date.now();
  const moved = await transition(
    ctx,
    run._id,
    ["running"],
    "pausing",
    {
      everPaused: true,
      // The earliest the pause can take effect: retention counts from here, so a paused sandbox
      // is never kept longer than SANDBOX_PAUSED_RETENTION_MS past its real pause.
      pausedAt: now,
      lifetimeLeftMs: Math.max(0, run.deadlineAt - now),
      deadlineAt: leaseUntil,
      renewAt: undefined,
      pauseAttempts: 0,
    },
    { reason: "idle" },
  );
  return moved ? { runId: run._id, sandboxId: run.sandboxId } : null;
}

/** E2B confirmed the pause (204, or 409 already paused): pausing → paused. For webhooks too. */
export async function recordPaused(ctx: MutationCtx, runId: Id<"sandboxRuns">, sandboxId: string) {
  const c = getConfig();
  const run = await ctx.db.get("sandboxRuns", runId);
  if (!run || run.sandboxId !== sandboxId) return null;
  const pausedAt = run.pausedAt ?? Date.now();
  return await transition(
    ctx,
    run._id,
    ["pausing"],
    "paused",
    { pausedAt, deadlineAt: pausedAt + c.pausedRetentionMs, pauseAttempts: 0 },
    { sandboxId },
  );
}

/** Records one pause call's answer. A late or duplicate answer (the run moved on) is a no-op. */
export async function settlePause(ctx: MutationCtx, r: PauseResult) {
  const run = await ctx.db.get("sandboxRuns", r.runId);
  if (!run || run.sandboxId !== r.sandboxId || run.status !== "pausing") return;
  await logEvent(ctx, run, {
    kind: "pause",
    sandboxId: r.sandboxId,
    detail: r.outcome === "failed" ? `failed: ${r.error ?? "unknown"}` : r.outcome,
  });
  if (r.outcome === "paused" || r.outcome === "already_paused") {
    await recordPaused(ctx, r.runId, r.sandboxId);
  } else if (r.outcome === "gone") {
    // Missing, or being killed: only a kill's answer (204 or 404) may end a run that may have a snapshot.
    await owedKill(ctx, run, ["pausing"]);
  } else {
    // No answer, or one that says nothing (a 500 may leave it paused, gone or running): ask again.
    await askAgainLater(ctx, run, r.retryAfterMs);
  }
}

/** The lane asks E2B again (pause, or a resume's lookup) after a back-off that grows per attempt. */
async function askAgainLater(ctx: MutationCtx, run: Run, retryAfterMs?: number) {
  const attempts = (run.pauseAttempts ?? 0) + 1;
  await ctx.db.patch("sandboxRuns", run._id, {
    pauseAttempts: attempts,
    deadlineAt: Date.now() + killBackoffMs(attempts, retryAfterMs),
  });
}

/** E2B has no such sandbox as far as a pause, resume or probe can tell: a kill is owed to confirm it. */
async function owedKill(ctx: MutationCtx, run: Run, from: RunStatus[]) {
  await transition(
    ctx,
    run._id,
    from,
    "stopping",
    { endReason: "sandbox_gone", deadlineAt: Date.now() },
    { reason: "sandbox_gone" },
  );
}

/** How long a resume waits for an in-flight pause to answer before connecting anyway (real ms). */
export function pauseWaitMs(c: Config): number {
  return c.e2bRequestTimeoutMs + 5_000;
}

export const resumeClaim = v.union(
  v.object({ action: v.literal("running"), runId: v.id("sandboxRuns"), sandboxId: v.string() }),
  v.object({ action: v.literal("connect"), runId: v.id("sandboxRuns"), sandboxId: v.string() }),
  v.object({ action: v.literal("wait"), runId: v.id("sandboxRuns") }),
  v.object({ action: v.literal("not_paused"), runId: v.id("sandboxRuns"), status: runStatus }),
);
export type ResumeClaim = Infer<typeof resumeClaim>;

/**
 * The owner asks for the sandbox (resumeSandboxRun, or a command on a paused run). A paused run
 * is claimed `resuming`; a run already resuming is connected again (a repeated connect joins
 * the one at E2B); a run still pausing waits for the pause's answer, so that the resume never
 * reaches E2B before the pause it would undo.
 */
export async function claimResume(
  ctx: MutationCtx,
  args: { ownerId: string; sandboxRunId: string; waitedMs: number },
): Promise<ResumeClaim> {
  const c = getConfig();
  const run = await getOwnedRun(ctx, args.ownerId, args.sandboxRunId);
  const now = Date.now();
  if (run.status === "running" && run.sandboxId !== undefined)
    return { action: "running", runId: run._id, sandboxId: run.sandboxId };
  if (run.sandboxId === undefined) return { action: "not_paused", runId: run._id, status: run.status };
  // A pause may be on its way to E2B: wait for its answer, at most one request's time. After
  // that it has surely been sent, and a connect then waits for it at E2B and resumes.
  if (run.status === "pausing" && run.deadlineAt > now && args.waitedMs < pauseWaitMs(c))
    return { action: "wait", runId: run._id };
  if (run.status === "paused" || run.status === "pausing" || run.status === "resuming") {
    const lease = { deadlineAt: resumeLeaseUntil(c, now) };
    if (run.status === "resuming") await ctx.db.patch("sandboxRuns", run._id, lease);
    else await transition(ctx, run._id, [run.status], "resuming", lease, { reason: "resume" });
    return { action: "connect", runId: run._id, sandboxId: run.sandboxId };
  }
  return { action: "not_paused", runId: run._id, status: run.status };
}

/**
 * E2B answered the resume (200/201), or a probe found it running: resuming → running. Counts
 * as activity. When a stop landed meanwhile, says so: the caller kills now that no resume of
 * ours is in flight. For webhooks too (`sandbox.lifecycle.resumed`).
 */
export async function recordResumed(ctx: MutationCtx, args: SandboxRecord): Promise<ResumeSettled> {
  const c = getConfig();
  const run = await ctx.db.get("sandboxRuns", args.runId);
  if (!run || run.sandboxId !== args.sandboxId) return { status: run?.status ?? "stopped", killNow: false };
  const now = Date.now();
  if (run.status === "resuming") {
    await logEvent(ctx, run, { kind: "resume", sandboxId: args.sandboxId, detail: "resumed" });
    await transition(ctx, run._id, ["resuming"], "running", {
      lastActivityAt: now,
      deadlineAt: now + (run.lifetimeLeftMs ?? c.maxLifetimeMs),
      sandboxExpiresAt: args.sandboxExpiresAt,
      renewAt: nextRenewAt(c, args.sandboxExpiresAt, now),
      pauseAttempts: 0,
    });
    return { status: "running", killNow: false };
  }
  if (run.status === "running") {
    await ctx.db.patch("sandboxRuns", run._id, { lastActivityAt: now });
    return { status: "running", killNow: false };
  }
  // A stop that waited for this resume to answer.
  const killNow = run.status === "stopping" && run.killNotBeforeAt !== undefined;
  return { status: run.status, killNow };
}

/** The resume's answer was not a success. */
export async function settleResumeFailure(ctx: MutationCtx, args: ResumeFailure): Promise<RunStatus | null> {
  const c = getConfig();
  const run = await ctx.db.get("sandboxRuns", args.runId);
  if (!run || run.sandboxId !== args.sandboxId) return null;
  if (run.status === "resuming") {
    await logEvent(ctx, run, {
      kind: "resume",
      sandboxId: args.sandboxId,
      detail: `${args.outcome}: ${args.error}`,
    });
  }
  if (run.status !== "resuming") return run.status;
  if (args.outcome === "gone") {
    await owedKill(ctx, run, ["resuming"]);
    return "stopping";
  }
  if (args.outcome === "refused") {
    // E2B certainly did not resume it: still paused, its retention unchanged.
    await transition(ctx, run._id, ["resuming"], "paused", {
      deadlineAt: (run.pausedAt ?? Date.now()) + c.pausedRetentionMs,
    });
    return "paused";
  }
  if (args.outcome === "failed") {
    // E2B's API answered: nothing of ours is at work there, so the lane may ask (or, past
    // retention, kill) at its next pass instead of waiting out the lease.
    await ctx.db.patch("sandboxRuns", run._id, { deadlineAt: Date.now() });
    return "resuming";
  }
  // It may have resumed, or may still: the run stays "resuming" until its lease passes and the
  // lane asks E2B.
  return "resuming";
}

/** The sweep asked E2B about a resume that never answered (after its lease: no connect in flight). */
export async function settleStateCheck(ctx: MutationCtx, r: StateCheck) {
  const c = getConfig();
  const run = await ctx.db.get("sandboxRuns", r.runId);
  if (!run || run.sandboxId !== r.sandboxId || run.status !== "resuming") return;
  // A resume that started after the lookup was claimed owns the run now: its answer is newer.
  if (run.deadlineAt !== r.leaseUntil) return;
  if (r.state === "running") {
    // It resumed (and bills): running again, idle from now, so the pause lane will pause it.
    // Its E2B lifetime is not known here: recorded as "now", so the next sweep sets it.
    await recordResumed(ctx, { runId: r.runId, sandboxId: r.sandboxId, sandboxExpiresAt: Date.now() });
  } else if (r.state === "paused") {
    await transition(ctx, run._id, ["resuming"], "paused", {
      deadlineAt: (run.pausedAt ?? Date.now()) + c.pausedRetentionMs,
    });
  } else if (r.state === "gone") {
    await owedKill(ctx, run, ["resuming"]);
  } else {
    await askAgainLater(ctx, run);
  }
}

/**
 * A stop that finds a resume possibly at work at E2B must not kill yet (E2B would resurrect the
 * sandbox): the run becomes "stopping" now, its kill due once the resume's lease has passed;
 * the resume, when it answers, kills at once. Returns null when the stop may kill now.
 */
export async function deferStopDuringResume(ctx: MutationCtx, run: Run): Promise<RunStatus | null> {
  const now = Date.now();
  if (run.status === "stopping" && run.killNotBeforeAt !== undefined && run.killNotBeforeAt > now)
    return "stopping";
  if (run.status !== "resuming" || run.deadlineAt <= now) return null;
  const moved = await transition(
    ctx,
    run._id,
    ["resuming"],
    "stopping",
    { endReason: "user", deadlineAt: run.deadlineAt, killNotBeforeAt: run.deadlineAt },
    { reason: "user" },
  );
  return moved ? "stopping" : null;
}

/** What a caller of resume sees when the run cannot be resumed. */
export function notResumable(status: RunStatus) {
  if (isTerminal(status) || status === "stopping")
    return fail("RUN_ENDED", `The run is ${status}; start a new run`);
  return fail("RUN_NOT_RUNNING", `The run is ${status}; it cannot be resumed yet`);
}

/** Records a pause-lane page's E2B results (kills, pauses, state checks), each re-read and settled. */
export async function settlePausePage(
  ctx: MutationCtx,
  page: { kills: KillResult[]; pauses: PauseResult[]; checks: StateCheck[] },
) {
  for (const k of page.kills) await settleKill(ctx, k);
  for (const p of page.pauses) await settlePause(ctx, p);
  for (const c of page.checks) await settleStateCheck(ctx, c);
}
