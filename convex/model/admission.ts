import { type Infer, v } from "convex/values";
import type { MutationCtx } from "../_generated/server";
import { checkTemplate } from "./access";
import { getConfig, MAX_CREATE_WAIT_MS } from "./config";
import { insertBootingRun, type Run } from "./runs";
import type { IdleAction } from "./status";

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

type Refusal = Extract<AdmissionResult, { kind: "refused" }>;
type RefusalCode = Refusal["code"];

export type Admission =
  { kind: "created"; run: Run; waitMs: number } | { kind: "existing"; run: Run } | Refusal;

/**
 * Decides whether a start may go ahead, in one transaction: idempotency first (the run record
 * is the idempotency boundary, since E2B has no idempotent create), then the caller's quotas,
 * then the global create throttle, where one user holds at most `maxQueuedStartsPerUser` of
 * the queued slots. A refusal writes nothing (it reads a bounded range), so a refusal flood
 * cannot grow the database.
 */
export async function admitStart(
  ctx: MutationCtx,
  args: { ownerId: string; template: string; idempotencyKey?: string; onIdle?: IdleAction },
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

  const refuse = (code: RefusalCode, message: string, retryAfterMs?: number): Admission => {
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
  if (waitMs > 0) {
    // Fairness: a queued slot is one a start still waits for. Every such slot lies within
    // MAX_CREATE_WAIT_MS of its run's creation, so `recent` holds all of the caller's.
    const queued = recent.map((r) => r.createSlotAt ?? 0).filter((at) => at > now);
    if (queued.length >= c.maxQueuedStartsPerUser) {
      return refuse(
        "RATE_LIMITED",
        `At most ${c.maxQueuedStartsPerUser} queued start(s) per user; retry after retryAfterMs`,
        Math.min(...queued) - now,
      );
    }
    // A user who started within the last minute queues at most (limit - 1) slots deep; only a
    // first start may queue up to MAX_CREATE_WAIT_MS. With the default limit of 1 a flooding
    // user takes only free slots, so another user's first start waits at most one slot (the
    // create in progress) however many users flood.
    const busyDepthMs = (c.maxQueuedStartsPerUser - 1) * Math.ceil(1_000 / c.createsPerSecond);
    if (recent.length > 0 && waitMs > busyDepthMs) {
      return refuse("RATE_LIMITED", "Sandbox creation is busy; retry shortly", waitMs - busyDepthMs);
    }
  }
  if (waitMs > MAX_CREATE_WAIT_MS) {
    return refuse("RATE_LIMITED", "Sandbox creation is busy; retry shortly", waitMs - MAX_CREATE_WAIT_MS);
  }
  const nextSlotAt = slot + Math.ceil(1_000 / c.createsPerSecond);
  if (throttle) await ctx.db.patch("createThrottle", throttle._id, { nextSlotAt });
  else await ctx.db.insert("createThrottle", { nextSlotAt, blockedUntil: 0 });

  const run = await insertBootingRun(ctx, { ...args, createSlotAt: slot });
  return { kind: "created", run, waitMs };
}

/** E2B said 429: hold every start back for `retryAfterMs`. */
export async function backOffCreates(ctx: MutationCtx, retryAfterMs: number) {
  const until = Date.now() + retryAfterMs;
  const throttle = await ctx.db.query("createThrottle").first();
  if (!throttle) await ctx.db.insert("createThrottle", { nextSlotAt: 0, blockedUntil: until });
  else if (throttle.blockedUntil < until)
    await ctx.db.patch("createThrottle", throttle._id, { blockedUntil: until });
}
