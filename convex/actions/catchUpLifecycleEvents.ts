"use node";
import { internal } from "../_generated/api";
import { env, internalAction } from "../_generated/server";
import { getConfig } from "../model/config";
import { catchUpResult, type CatchUpResult } from "../model/validators";
import { CATCH_UP_MAX_PAGES, isForThisNamespace, type LifecycleEvent, parseEvent } from "../model/webhooks";
import { readLifecycleEventsSince, sweepsIdleWithoutKey } from "../lib/e2b.sdk";

/**
 * Reads E2B's events API back to where the last catch-up read and handles, once, each event of
 * this namespace that no delivery brought (see CATCH_UP_MIN_INTERVAL_MS). Rung by deliveries and
 * by its cron; does nothing while webhooks are off (no E2B_WEBHOOK_SECRET) or the key is unset.
 */
export const catchUpLifecycleEvents = internalAction({
  args: {},
  returns: catchUpResult,
  handler: async (ctx): Promise<CatchUpResult> => {
    const r: CatchUpResult = { read: 0, handled: 0, complete: true, failed: false };
    const c = getConfig();
    if (!env.E2B_WEBHOOK_SECRET || sweepsIdleWithoutKey(c)) return r;
    const since = await ctx.runQuery(internal.webhooks.catchUpCursor, {});
    const page = await readLifecycleEventsSince(c, since, CATCH_UP_MAX_PAGES);
    if (!page.ok) return { ...r, failed: true };
    const mine: LifecycleEvent[] = [];
    let readThroughAt = since;
    for (const raw of page.events) {
      const parsed = parseEvent(raw);
      if (parsed.kind !== "event") continue;
      readThroughAt = Math.max(readThroughAt, parsed.event.at ?? 0);
      if (isForThisNamespace(parsed.event)) mine.push(parsed.event);
    }
    const done = await ctx.runMutation(internal.webhooks.handleCaughtUpEvents, {
      events: mine,
      readThroughAt,
    });
    return { read: page.events.length, handled: done.handled, complete: page.complete, failed: false };
  },
});
