"use node";
import { ConvexError, v } from "convex/values";
import { fail, maskSecrets, sandboxErrorCode } from "../model/errors";
import { internal } from "../_generated/api";
import type { Id } from "../_generated/dataModel";
import { type ActionCtx, env } from "../_generated/server";
import { bootLifetimeMs, type Config, getConfig, runningLifetimeMs } from "../model/config";
import { checkIdempotencyKey, checkTemplate } from "../model/access";
import { ownerAction } from "../model/functions";
import { type AdmissionResult, DEFAULT_E2B_BACKOFF_MS } from "../model/admission";
import { idleAction, type KillOutcome } from "../model/status";
import {
  createTaggedSandbox,
  killSandboxesByTag,
  killSandboxSafely,
  requireApiKey,
  setSandboxLifetime,
} from "../lib/e2b.sdk";
import { toCallerError } from "../lib/failures";

/**
 * Starts a sandbox for the signed-in caller. Each step is its own mutation, so that whatever
 * fails, the database always knows at least as much as E2B does:
 * 1. record the run "booting"; 2. create the sandbox, tagged with the run; 3. store its id;
 * 4. give it its running lifetime and mark the run "running".
 * A failure after step 2 kills the sandbox first and records second; if recording fails too,
 * the sweep finds the run (by id or by tag) and finishes the job.
 */
export const startSandboxRun = ownerAction({
  args: {
    template: v.optional(v.string()),
    idempotencyKey: v.optional(v.string()),
    // What this run gets when idle; default SANDBOX_IDLE_ACTION.
    onIdle: v.optional(idleAction),
  },
  returns: v.object({ sandboxRunId: v.id("sandboxRuns"), sandboxId: v.string() }),
  handler: async (ctx, args): Promise<{ sandboxRunId: Id<"sandboxRuns">; sandboxId: string }> => {
    const ownerId = ctx.ownerId;
    const c = getConfig();
    const template = args.template ?? c.templates[0]!;
    checkTemplate(template);
    checkIdempotencyKey(args.idempotencyKey);
    requireApiKey(c);
    const admission: AdmissionResult = await ctx.runMutation(internal.lifecycle.admitStart, {
      ownerId,
      template,
      ...(args.idempotencyKey !== undefined ? { idempotencyKey: args.idempotencyKey } : {}),
      ...(args.onIdle !== undefined ? { onIdle: args.onIdle } : {}),
    });
    if (admission.kind === "refused") {
      const { code, message, retryAfterMs } = admission;
      throw fail(code, message, { retryAfterMs });
    }
    if (admission.kind === "existing") return await replayStart(ctx, c, admission.runId);
    if (admission.waitMs > 0) await sleep(admission.waitMs); // the global create throttle's slot
    const runId = admission.runId;
    const sandboxId = await createOrCleanUp(ctx, c, runId, template);
    await finishStartOrKill(ctx, c, runId, sandboxId);
    return { sandboxRunId: runId, sandboxId };
  },
});

const REPLAY_POLL_MS = 250;

/**
 * A start with an idempotency key already used: never a second sandbox. Answers with the run
 * the first call made, waiting (bounded) while that one is still booting.
 */
async function replayStart(ctx: ActionCtx, c: Config, runId: Id<"sandboxRuns">) {
  const budgetMs = Math.min(c.bootTimeoutMs, 30_000);
  const began = performance.now();
  for (;;) {
    const state = await ctx.runQuery(internal.lifecycle.runState, { runId });
    // A paused (pausing, resuming) run is still the start's run: resumeSandboxRun brings it back.
    const live = ["running", "pausing", "paused", "resuming"];
    if (state !== null && live.includes(state.status) && state.sandboxId !== undefined)
      return { sandboxRunId: runId, sandboxId: state.sandboxId };
    if (state === null || state.status !== "booting") {
      throw fail(
        "RUN_ENDED",
        `The start with this idempotencyKey already ended${state?.endReason ? ` (${state.endReason})` : ""}${
          state?.sandboxId === undefined ? " without a sandbox" : ""
        }; use a new key to start again`,
        { sandboxRunId: runId },
      );
    }
    if (performance.now() - began > budgetMs) {
      throw fail("START_IN_PROGRESS", undefined, { sandboxRunId: runId });
    }
    await sleep(REPLAY_POLL_MS);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Step 2. On failure: if E2B may have created it anyway, kill by tag before recording. */
async function createOrCleanUp(ctx: ActionCtx, c: Config, runId: Id<"sandboxRuns">, template: string) {
  const created = await createTaggedSandbox(c, { template, runId, lifetimeMs: bootLifetimeMs(c) });
  if (created.ok) return created.sandboxId;
  const { failure } = created;
  await bestEffort(async () => {
    if (failure.refused) {
      await ctx.runMutation(internal.lifecycle.recordStartRefused, {
        runId,
        error: failure.message,
        ...(failure.kind === "rate_limited"
          ? { e2bBackoffMs: failure.retryAfterMs ?? DEFAULT_E2B_BACKOFF_MS }
          : {}),
      });
    } else {
      // The response may be lost while the sandbox lives: only its tag can find it. One create
      // makes at most one sandbox, so one found is the run's own: the run records its id, and a
      // kill that succeeded ends the run now instead of after the late-create grace window.
      const { kill, ids } = await killSandboxesByTag(c, runId);
      await ctx.runMutation(internal.lifecycle.settleKill, {
        runId,
        ...(ids.length === 1 ? { sandboxId: ids[0]! } : {}),
        reason: "start_failed",
        kill,
        error: failure.message,
      });
    }
  });
  if (failure.kind === "invalid" && failure.status === 404) {
    // E2B does not know the template: a refusal (the run never had a sandbox), not SANDBOX_GONE.
    throw fail("INVALID_TEMPLATE", `E2B has no template "${template}" for this deployment's key`);
  }
  if (failure.kind === "rate_limited") {
    const retryAfterMs = failure.retryAfterMs ?? DEFAULT_E2B_BACKOFF_MS;
    throw fail("RATE_LIMITED", "E2B is rate limiting sandbox creation", { retryAfterMs });
  }
  throw toCallerError(failure);
}

/** Steps 3 and 4; any failure kills the sandbox, then records. */
async function finishStartOrKill(ctx: ActionCtx, c: Config, runId: Id<"sandboxRuns">, sandboxId: string) {
  try {
    const stored = await ctx.runMutation(internal.lifecycle.recordSandboxId, {
      runId,
      sandboxId,
      sandboxExpiresAt: Date.now() + bootLifetimeMs(c),
    });
    if (!stored.wanted) throw fail("RUN_ENDED", "The run was stopped while it booted");
    const expiresAt = Date.now() + runningLifetimeMs(c);
    const extended = await setSandboxLifetime(c, sandboxId, runningLifetimeMs(c));
    if (extended.outcome === "gone") throw fail("SANDBOX_GONE", "The sandbox ended while it booted");
    if (extended.outcome === "failed")
      throw toCallerError({ kind: extended.kind, message: extended.message, refused: false });
    const running = await ctx.runMutation(internal.lifecycle.markRunning, {
      runId,
      sandboxId,
      sandboxExpiresAt: expiresAt,
    });
    if (!running) throw fail("RUN_ENDED", "The run was stopped while it booted");
  } catch (err) {
    const kill: KillOutcome = await killSandboxSafely(c, sandboxId);
    // Stored on the run: our own code and fixed text, never an exception's message.
    const code = sandboxErrorCode(err);
    const error =
      code !== undefined
        ? `${code}: ${(err as ConvexError<{ message: string }>).data.message}`
        : "internal error";
    if (code === undefined) logMasked("start failed after create", err);
    await bestEffort(() =>
      ctx.runMutation(internal.lifecycle.settleKill, {
        runId,
        sandboxId,
        reason: "start_failed",
        kill,
        error,
      }),
    );
    if (err instanceof ConvexError) throw err;
    throw fail(
      "START_FAILED",
      kill.outcome === "failed"
        ? "The sandbox could not be started; its shutdown is pending and will be retried"
        : "The sandbox could not be started and was shut down; try again",
    );
  }
}

/** Recording after a kill may fail when the database is what is failing; the sweep covers it. */
async function bestEffort(fn: () => Promise<unknown>) {
  try {
    await fn();
  } catch (err) {
    logMasked("start cleanup record failed; the sweep will finish it", err);
  }
}

/** A log line for an unexpected error: its text capped, with the API key and token shapes masked. */
function logMasked(what: string, err: unknown) {
  const raw = err instanceof Error ? err.message : String(err);
  console.warn(`${what}: ${maskSecrets(raw.slice(0, 500), [env.E2B_API_KEY])}`);
}
