// Internal functions behind the E2B lifecycle webhook (convex/http.ts) and its catch-up.
import { v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";
import {
  catchUpCursor as readCatchUpCursor,
  handleCaughtUpEvents as handleCaughtUp,
  handleLifecycleEvent,
  lifecycleEvent,
  requestCatchUp,
} from "./model/webhooks";

/** One delivered event; a delivery also rings for a catch-up on any the webhook missed. */
export const handleEvent = internalMutation({
  args: { event: lifecycleEvent },
  returns: v.string(),
  handler: async (ctx, args) => {
    const outcome = await handleLifecycleEvent(ctx, args.event);
    await requestCatchUp(ctx);
    return outcome;
  },
});

export const catchUpCursor = internalQuery({
  args: {},
  returns: v.number(),
  handler: (ctx) => readCatchUpCursor(ctx),
});

export const handleCaughtUpEvents = internalMutation({
  args: { events: v.array(lifecycleEvent), readThroughAt: v.number() },
  returns: v.object({ handled: v.number() }),
  handler: (ctx, args) => handleCaughtUp(ctx, args),
});
