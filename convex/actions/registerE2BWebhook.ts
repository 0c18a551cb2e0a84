"use node";
import { v } from "convex/values";
import { env, internalAction } from "../_generated/server";
import { getConfig } from "../model/config";
import { fail } from "../model/errors";
import { LIFECYCLE_EVENT_TYPES, WEBHOOK_PATH } from "../model/webhooks";
import { upsertLifecycleWebhook } from "../lib/e2b.sdk";
import { toCallerError } from "../lib/failures";

/** Registers (or updates) this deployment's lifecycle webhook at E2B; see admin:registerE2BWebhook. */
export const registerE2BWebhook = internalAction({
  args: {},
  returns: v.object({
    action: v.union(v.literal("created"), v.literal("updated")),
    id: v.string(),
    url: v.string(),
  }),
  handler: async () => {
    const c = getConfig();
    const secret = env.E2B_WEBHOOK_SECRET;
    if (!secret)
      throw fail(
        "CONFIG_INVALID",
        "E2B_WEBHOOK_SECRET: is required (npx convex env set E2B_WEBHOOK_SECRET …)",
      );
    const site = env.CONVEX_SITE_URL;
    if (!site) throw fail("CONFIG_INVALID", "CONVEX_SITE_URL: is not set by this deployment");
    const url = `${site.replace(/\/+$/, "")}${WEBHOOK_PATH}`;
    const r = await upsertLifecycleWebhook(c, {
      name: `convex-sandboxes-${c.namespace}`,
      url,
      events: [...LIFECYCLE_EVENT_TYPES],
      enabled: true,
      signatureSecret: secret,
    });
    if (!r.ok) throw toCallerError(r.failure);
    return { action: r.action, id: r.id, url };
  },
});
