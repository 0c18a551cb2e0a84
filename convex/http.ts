import { httpRouter } from "convex/server";
import { internal } from "./_generated/api";
import { env, httpAction } from "./_generated/server";
import {
  isForThisNamespace,
  MAX_WEBHOOK_BODY_BYTES,
  parseDelivery,
  verifyDelivery,
  WEBHOOK_PATH,
} from "./model/webhooks";

const http = httpRouter();

const answer = (status: number, body: Record<string, unknown>) => Response.json(body, { status });

/** The raw body, or null once it exceeds `maxBytes` (the rest is never read). */
async function readCapped(request: Request, maxBytes: number): Promise<Uint8Array | null> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) return null;
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.byteLength;
  }
  return body;
}

/**
 * E2B lifecycle events (register with `npx convex run admin:registerE2BWebhook`).
 * 413 past 64 KB (nothing beyond is read); 401 unless E2B's signature over the raw body checks
 * out, before anything is parsed; 400 for a signed body that is not an event (a fault at the
 * sender that retrying will not fix, so it should show in E2B's delivery log); 200 for an
 * event type this backend does not know (E2B may add types: refusing them would only make
 * E2B retry and flag the webhook), for another namespace's sandbox, and for a replay.
 */
http.route({
  path: WEBHOOK_PATH,
  method: "POST",
  handler: httpAction(async (ctx, request) => {
    const raw = await readCapped(request, MAX_WEBHOOK_BODY_BYTES);
    if (raw === null) return answer(413, { error: `body over ${MAX_WEBHOOK_BODY_BYTES} bytes` });
    const signed = await verifyDelivery(env.E2B_WEBHOOK_SECRET, raw, {
      signature: request.headers.get("e2b-signature"),
      version: request.headers.get("e2b-signature-version"),
    });
    if (!signed) return answer(401, { error: "missing or invalid e2b-signature" });
    const parsed = parseDelivery(raw);
    if (parsed.kind === "malformed") return answer(400, { error: parsed.why });
    if (parsed.kind === "unknown_type") return answer(200, { outcome: "ignored_unknown_type" });
    if (!isForThisNamespace(parsed.event)) return answer(200, { outcome: "ignored_other_namespace" });
    const outcome = await ctx.runMutation(internal.webhooks.handleEvent, { event: parsed.event });
    return answer(200, { outcome });
  }),
});

export default http;
