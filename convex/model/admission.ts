import { type Infer, v } from "convex/values";
import type { MutationCtx } from "../_generated/server";
import { checkTemplate } from "./access";
import { getConfig, MAX_CREATE_WAIT_MS } from "./config";
import { insertBootingRun, logEvent, type Run } from "./runs";

// The grace window's floor counts MAX_CREATE_WAIT_MS, so it lives with the config.
export { MAX_CREATE_WAIT_MS };
/** Back-off after E2B answered 429 without saying for how long (ms). */
export const DEFAULT_E2B_BACKOFF_MS = 10_000;
const RATE_WINDOW_MS = 60_000;

/** What createRun tells the start action (a run id, not the document). */
export const admissionResult = v.union(
  v.object({ kind: v.literal("created"), runId: v.id("sandboxRuns"), waitMs: v.number() }),
  v.object({ kind: v.literal("existing"), runId: v.id("sandboxRuns") }),
  v.object({
    kind: v.literal("refused"),
    code: v.union(v.literal("QUOTA_EXCEEDED"), v.literal("RATE_LIMITED")),
    message: v.string(),
    retryAfterMs: v.optional(v.number()),
  }),
);
export type AdmissionResult = Infer<typeof admissionResult>;

export type Admission =
  | { kind: "created"; run: Run; waitMs: number }
  | { kind: "existing"; run: Run }
  | { kind: "refused"; code: "QUOTA_EXCEEDED" | "RATE_LIMITED"; message: string; retryAfterMs?: number };

/**
 * Decides whether a start may go ahead, in one transaction: idempotency first (the run record
 * is the idempotency boundary, since E2B has no idempotent create), then the caller's quotas,
 * then the global create throttle. A refusal writes only its event-log entry.
 */
export async function admitStart(
  ctx: MutationCtx,
  args: { ownerId: string; template: string; idempotencyKey?: string },
): Promise<Admission> {
  checkTemplate(args.template);
  const c = getConfig();
  const now = Date.now();

  if (args.idempotencyKey !== undefined) {
    const existing = await ctx.db
      .query("sandboxRuns")
      .withIndex("by_ownerId_and_idempotencyKey", (q) =>
        q.eq("ownerId", args.ownerId).eq("idempotencyKey", args.idempotencyKey),
      )
      .first();
    if (existing) return { kind: "existing", run: existing };
  }

  const refuse = async (
    code: "QUOTA_EXCEEDED" | "RATE_LIMITED",
    message: string,
    retryAfterMs?: number,
  ): Promise<Admission> => {
    await logEvent(ctx, null, {
      kind: "quota_refused",
      ownerId: args.ownerId,
      reason: code,
      detail: message,
    });
    return {
      kind: "refused",
      code,
      message,
      ...(retryAfterMs !== undefined ? { retryAfterMs: Math.max(1, Math.ceil(retryAfterMs)) } : {}),
    };
  };

  const active = await ctx.db
    .query("sandboxRuns")
    .withIndex("by_ownerId_and_endedAt", (q) => q.eq("ownerId", args.ownerId).eq("endedAt", undefined))
    .take(c.maxActivePerUser);
  if (active.length >= c.maxActivePerUser) {
    return refuse(
      "QUOTA_EXCEEDED",
      `At most ${c.maxActivePerUser} active sandbox runs per user; stop one first`,
    );
  }

  const recent = await ctx.db
    .query("sandboxRuns")
    .withIndex("by_ownerId_and_createdAt", (q) =>
      q.eq("ownerId", args.ownerId).gt("createdAt", now - RATE_WINDOW_MS),
    )
    .take(c.startsPerMinutePerUser);
  if (recent.length >= c.startsPerMinutePerUser) {
    return refuse(
      "RATE_LIMITED",
      `At most ${c.startsPerMinutePerUser} starts per minute`,
      recent[0]!.createdAt + RATE_WINDOW_MS - now,
    );
  }

  const throttle = await ctx.db.query("createThrottle").first();
  const slot = Math.max(now, throttle?.nextSlotAt ?? 0, throttle?.blockedUntil ?? 0);
  const waitMs = slot - now;
  if (waitMs > MAX_CREATE_WAIT_MS) {
    return refuse("RATE_LIMITED", "Sandbox creation is busy; retry shortly", waitMs - MAX_CREATE_WAIT_MS);
  }
  const nextSlotAt = slot + Math.ceil(1_000 / c.createsPerSecond);
  if (throttle) await ctx.db.patch(throttle._id, { nextSlotAt });
  else await ctx.db.insert("createThrottle", { nextSlotAt, blockedUntil: 0 });

  const run = await insertBootingRun(ctx, args);
  return { kind: "created", run, waitMs };
}

/** E2B said 429: hold every start back for `retryAfterMs`. */
export async function backOffCreates(ctx: MutationCtx, retryAfterMs: number) {
  const until = Date.now() + retryAfterMs;
  const throttle = await ctx.db.query("createThrottle").first();
  if (!throttle) await ctx.db.insert("createThrottle", { nextSlotAt: 0, blockedUntil: until });
  else if (throttle.blockedUntil < until) await ctx.db.patch(throttle._id, { blockedUntil: until });
}
