// Internal functions behind the E2B lifecycle webhook (convex/http.ts).
import { v } from "convex/values";
import { internalMutation } from "./_generated/server";
import { handleLifecycleEvent, lifecycleEvent } from "./model/webhooks";

export const handleEvent = internalMutation({
  args: { event: lifecycleEvent },
  returns: v.string(),
  handler: (ctx, args) => handleLifecycleEvent(ctx, args.event),
});
