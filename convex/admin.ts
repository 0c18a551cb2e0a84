// Operator statistics: `npx convex run admin:stats`. Internal only. Each page is its own bounded
// query; the action adds them up, so the cost grows with the table but no transaction does.
import { paginationOptsValidator } from "convex/server";
import { v } from "convex/values";
import { internalAction, internalQuery } from "./_generated/server";
import { internal } from "./_generated/api";

const PAGE = 1_000;

export const runsPage = internalQuery({
  args: { paginationOpts: paginationOptsValidator },
  handler: async (ctx, args) => {
    const page = await ctx.db.query("sandboxRuns").paginate(args.paginationOpts);
    const now = Date.now();
    return {
      ...page,
      page: page.page.map((r) => ({
        status: r.status,
        template: r.template,
        // From the create call to the confirmed end: what E2B bills, give or take a boot.
        sandboxMs: r.sandboxId !== undefined ? Math.max(0, (r.endedAt ?? now) - r.createdAt) : 0,
      })),
    };
  },
});

export const killEventsPage = internalQuery({
  args: {
    kind: v.union(v.literal("kill"), v.literal("reconcile_kill")),
    paginationOpts: paginationOptsValidator,
  },
  handler: async (ctx, args) => {
    const page = await ctx.db
      .query("runEvents")
      .withIndex("by_kind_and_at", (q) => q.eq("kind", args.kind))
      .paginate(args.paginationOpts);
    return { ...page, page: page.page.map((e) => e.kill?.outcome ?? "unknown") };
  },
});

export const orphansPage = internalQuery({
  args: { paginationOpts: paginationOptsValidator },
  handler: async (ctx, args) => {
    const page = await ctx.db.query("orphanSandboxes").paginate(args.paginationOpts);
    return { ...page, page: page.page.map((o) => o.kill.outcome) };
  },
});

type Counts = Record<string, number>;
type Page<T> = { page: T[]; isDone: boolean; continueCursor: string };

const bump = (c: Counts, k: string, by = 1) => {
  c[k] = (c[k] ?? 0) + by;
};

/** Walks every page of a paginated internal query, one bounded transaction at a time. */
async function forEachItem<T>(fetchPage: (cursor: string | null) => Promise<Page<T>>, fn: (item: T) => void) {
  let cursor: string | null = null;
  for (;;) {
    const res: Page<T> = await fetchPage(cursor);
    res.page.forEach(fn);
    if (res.isDone) return;
    cursor = res.continueCursor;
  }
}

export const stats = internalAction({
  args: {},
  handler: async (ctx) => {
    const opts = (cursor: string | null) => ({ paginationOpts: { numItems: PAGE, cursor } });
    const runsByStatus: Counts = {};
    const sandboxSecondsByTemplate: Counts = {};
    await forEachItem(
      (cursor) => ctx.runQuery(internal.admin.runsPage, opts(cursor)),
      (r) => {
        bump(runsByStatus, r.status);
        bump(sandboxSecondsByTemplate, r.template, r.sandboxMs / 1_000);
      },
    );
    const killsByOutcome: Counts = {};
    await forEachItem(
      (cursor) => ctx.runQuery(internal.admin.killEventsPage, { kind: "kill", ...opts(cursor) }),
      (o) => bump(killsByOutcome, o),
    );
    // Reconcile kills: those recorded on a run, and those of sandboxes no run pointed at.
    const reconcileKillsByOutcome: Counts = {};
    await forEachItem(
      (cursor) => ctx.runQuery(internal.admin.killEventsPage, { kind: "reconcile_kill", ...opts(cursor) }),
      (o) => bump(reconcileKillsByOutcome, o),
    );
    await forEachItem(
      (cursor) => ctx.runQuery(internal.admin.orphansPage, opts(cursor)),
      (o) => bump(reconcileKillsByOutcome, o),
    );
    for (const k of Object.keys(sandboxSecondsByTemplate))
      sandboxSecondsByTemplate[k] = Math.round(sandboxSecondsByTemplate[k]!);
    return {
      runsByStatus,
      killsByOutcome,
      reconcileKillsByOutcome,
      orphansReaped: (reconcileKillsByOutcome.killed ?? 0) + (reconcileKillsByOutcome.gone ?? 0),
      sandboxSecondsByTemplate,
    };
  },
});

/**
 * `npx convex run admin:registerE2BWebhook`: registers this deployment's lifecycle webhook at
 * E2B (url = CONVEX_SITE_URL + /e2b/webhook, every lifecycle event, E2B_WEBHOOK_SECRET), or
 * updates it; safe to run again. The E2B call lives in a Node action.
 */
export const registerE2BWebhook = internalAction({
  args: {},
  handler: (ctx): Promise<{ action: "created" | "updated"; id: string; url: string }> =>
    ctx.runAction(internal.actions.registerE2BWebhook.registerE2BWebhook, {}),
});
