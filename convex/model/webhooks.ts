// E2B lifecycle webhooks: what a delivery must prove (its signature), what it says (a lifecycle
// event), and what each event changes. Polling (the sweep and the reconciler) stays the
// fallback; an event only makes the same transitions happen sooner, so a lost, late, repeated
// or reordered delivery is harmless. Runs in Convex's isolate: Web Crypto only, no node:crypto.
import { v, type Infer } from "convex/values";
import { internal } from "../_generated/api";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import { bootLifetimeMs, getConfig, runningLifetimeMs } from "./config";
import { recordPaused, recordResumed } from "./pause";
import { endRunSandboxGone, recordSandboxId, type Run, settleKill } from "./runs";
import { isTerminal } from "./status";
import { TAG_NAMESPACE, TAG_RUN_ID } from "./tags";

export const WEBHOOK_PATH = "/e2b/webhook";
/** Largest delivery read; E2B's events are well under 1 KB. */
export const MAX_WEBHOOK_BODY_BYTES = 64 * 1024;
export const SIGNATURE_VERSION = "v1";

export const LIFECYCLE_EVENT_TYPES = [
  "sandbox.lifecycle.created",
  "sandbox.lifecycle.killed",
  "sandbox.lifecycle.paused",
  "sandbox.lifecycle.resumed",
  "sandbox.lifecycle.updated",
] as const;

/**
 * A parsed lifecycle event, as the HTTP action hands it to the mutation. Only the tags this
 * backend wrote are carried over, never the whole (untrusted-shape) metadata.
 */
export const lifecycleEvent = v.object({
  id: v.string(),
  type: v.union(...LIFECYCLE_EVENT_TYPES.map((t) => v.literal(t))),
  sandboxId: v.string(),
  namespaceTag: v.optional(v.string()),
  runIdTag: v.optional(v.string()),
  at: v.optional(v.number()), // ms, E2B's timestamp of the event
  killReason: v.optional(v.string()),
});
export type LifecycleEvent = Infer<typeof lifecycleEvent>;

/**
 * E2B's v1 signature: SHA-256 over the secret followed by the raw body, base64url without
 * padding. Not an HMAC.
 */
export async function e2bSignature(secret: string, rawBody: Uint8Array): Promise<string> {
  const key = new TextEncoder().encode(secret);
  const signed = new Uint8Array(key.length + rawBody.length);
  signed.set(key, 0);
  signed.set(rawBody, key.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", signed));
  let bin = "";
  for (const b of digest) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Compares in time independent of where the strings differ (their length is public: 43 chars). */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * Whether a delivery is E2B's. An unset or empty secret refuses everything: a signature is
 * never checked against an empty secret. A missing version header is read as v1 (the only
 * one); any other version is refused, since we could not check it.
 */
export async function verifyDelivery(
  secret: string | undefined,
  rawBody: Uint8Array,
  headers: { signature: string | null; version: string | null },
): Promise<boolean> {
  if (!secret) return false;
  if (headers.version !== null && headers.version.trim() !== SIGNATURE_VERSION) return false;
  const given = headers.signature?.trim();
  if (!given) return false;
  return constantTimeEqual(given, await e2bSignature(secret, rawBody));
}

export type ParsedDelivery =
  | { kind: "event"; event: LifecycleEvent }
  | { kind: "unknown_type"; type: string }
  | { kind: "malformed"; why: string };

const str = (x: unknown, max = 256): string | undefined =>
  typeof x === "string" && x.length > 0 && x.length <= max ? x : undefined;

function timestampMs(x: unknown): number | undefined {
  if (typeof x === "number" && Number.isFinite(x)) return x;
  if (typeof x === "string") {
    const ms = Date.parse(x);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

/** Reads a (signed) delivery body. */
export function parseDelivery(rawBody: Uint8Array): ParsedDelivery {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(rawBody));
  } catch {
    return { kind: "malformed", why: "body is not JSON" };
  }
  return parseEvent(body);
}

/**
 * Reads one event, as a delivery carries it and as E2B's events API lists it:
 * `{ id, type, sandboxId, eventData: { sandbox_metadata, kill_reason }, timestamp }`.
 */
export function parseEvent(body: unknown): ParsedDelivery {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    return { kind: "malformed", why: "body is not a JSON object" };
  const b = body as Record<string, unknown>;
  const id = str(b.id);
  const type = str(b.type);
  if (id === undefined || type === undefined) return { kind: "malformed", why: "id and type are required" };
  if (!(LIFECYCLE_EVENT_TYPES as readonly string[]).includes(type)) return { kind: "unknown_type", type };
  const sandboxId = str(b.sandboxId);
  if (sandboxId === undefined) return { kind: "malformed", why: "sandboxId is required" };
  const data =
    typeof b.eventData === "object" && b.eventData !== null ? (b.eventData as Record<string, unknown>) : {};
  const meta =
    typeof data.sandbox_metadata === "object" && data.sandbox_metadata !== null
      ? (data.sandbox_metadata as Record<string, unknown>)
      : {};
  const namespaceTag = str(meta[TAG_NAMESPACE]);
  const runIdTag = str(meta[TAG_RUN_ID]);
  const at = timestampMs(b.timestamp);
  const killReason = str(data.kill_reason, 64);
  return {
    kind: "event",
    event: {
      id,
      type: type as LifecycleEvent["type"],
      sandboxId,
      ...(namespaceTag !== undefined ? { namespaceTag } : {}),
      ...(runIdTag !== undefined ? { runIdTag } : {}),
      ...(at !== undefined ? { at } : {}),
      ...(killReason !== undefined ? { killReason } : {}),
    },
  };
}

/** Events about sandboxes this deployment did not tag are none of its business. */
export function isForThisNamespace(e: LifecycleEvent): boolean {
  return e.namespaceTag === getConfig().namespace;
}

/**
 * A kill answered 404 this soon after `created` may mean "not stored yet" rather than "gone":
 * E2B publishes `created` before its API stores the sandbox (ms later, normally).
 */
export const CREATED_STORE_LAG_MS = 10_000;

/**
 * Handles one event once: a replayed event id changes nothing. Returns what it did (also kept
 * in `webhookEvents`, for operators).
 */
export async function handleLifecycleEvent(
  ctx: MutationCtx,
  e: LifecycleEvent,
  via: "webhook" | "catch_up" = "webhook",
): Promise<string> {
  const seen = await ctx.db
    .query("webhookEvents")
    .withIndex("by_eventId", (q) => q.eq("eventId", e.id))
    .first();
  if (seen) return "duplicate";
  const runId = e.runIdTag !== undefined ? ctx.db.normalizeId("sandboxRuns", e.runIdTag) : null;
  const run = runId ? await ctx.db.get("sandboxRuns", runId) : null;
  let outcome: string;
  if (e.type === "sandbox.lifecycle.created") outcome = await onCreated(ctx, e, run);
  else if (e.type === "sandbox.lifecycle.killed") outcome = await onKilled(ctx, e, run);
  else if (e.type === "sandbox.lifecycle.paused") outcome = await onPaused(ctx, e, run);
  else if (e.type === "sandbox.lifecycle.resumed") outcome = await onResumed(ctx, e, run);
  // updated (a lifetime change) tells nothing the run does not already know.
  else outcome = "ignored";
  await ctx.db.insert("webhookEvents", {
    eventId: e.id,
    type: e.type,
    sandboxId: e.sandboxId,
    at: Date.now(),
    outcome,
    via,
  });
  return outcome;
}

// ------------------------------------------------------------------ catching up on lost deliveries

/**
 * A delivery E2B made that never reached us waits for E2B's retry (reportedly 10 s later), or
 * for polling (minutes). So deliveries double as a doorbell: while events flow, at most every
 * CATCH_UP_MIN_INTERVAL_MS a catch-up reads E2B's events API (the same events, with the same
 * ids) back to where the last one read, and handles what no delivery brought. A lone event
 * lost in a quiet moment is caught by the catch-up cron (every SWEEP_INTERVAL_MS) or the retry.
 */
export const CATCH_UP_MIN_INTERVAL_MS = 2_000;
/** Read this far behind the newest event already read: events reach the API up to ~1 s late. */
export const CATCH_UP_OVERLAP_MS = 10_000;
/** Pages of 100 events per catch-up; a team busier than that leaves the rest to E2B's retries. */
export const CATCH_UP_MAX_PAGES = 5;
/** With no cursor yet (first catch-up), read this far back. */
export const CATCH_UP_FIRST_LOOKBACK_MS = 10 * 60_000;

/** Schedules a catch-up unless one started within CATCH_UP_MIN_INTERVAL_MS (one write per interval). */
export async function requestCatchUp(ctx: MutationCtx): Promise<void> {
  const state = await ctx.db.query("eventCatchUp").first();
  const now = Date.now();
  if (state && now - state.requestedAt < CATCH_UP_MIN_INTERVAL_MS) return;
  if (state) await ctx.db.patch("eventCatchUp", state._id, { requestedAt: now });
  else
    await ctx.db.insert("eventCatchUp", {
      requestedAt: now,
      readThroughAt: now - CATCH_UP_FIRST_LOOKBACK_MS,
    });
  await ctx.scheduler.runAfter(0, internal.actions.catchUpLifecycleEvents.catchUpLifecycleEvents, {});
}

/** From when the next catch-up reads (ms, E2B's event timestamps). */
export async function catchUpCursor(ctx: QueryCtx): Promise<number> {
  const state = await ctx.db.query("eventCatchUp").first();
  return (state?.readThroughAt ?? Date.now() - CATCH_UP_FIRST_LOOKBACK_MS) - CATCH_UP_OVERLAP_MS;
}

/** Handles the events a catch-up read (each once, as if delivered) and moves the cursor on. */
export async function handleCaughtUpEvents(
  ctx: MutationCtx,
  args: { events: LifecycleEvent[]; readThroughAt: number },
): Promise<{ handled: number }> {
  let handled = 0;
  for (const e of args.events)
    if ((await handleLifecycleEvent(ctx, e, "catch_up")) !== "duplicate") handled++;
  const state = await ctx.db.query("eventCatchUp").first();
  if (state && args.readThroughAt > state.readThroughAt)
    await ctx.db.patch("eventCatchUp", state._id, { readThroughAt: args.readThroughAt });
  else if (!state)
    await ctx.db.insert("eventCatchUp", { requestedAt: Date.now(), readThroughAt: args.readThroughAt });
  return { handled };
}

/**
 * The event proves the create happened, so:
 * - a booting run without an id learns it, exactly as its start would have stored it (a start
 *   still in flight then finds the same id stored, which it accepts);
 * - a run owing a kill without an id (stopping after an ambiguous create) learns it and the
 *   kill is made now;
 * - a sandbox no live run owns (run missing, ended, or recording another sandbox) is killed now.
 */
async function onCreated(ctx: MutationCtx, e: LifecycleEvent, run: Run | null): Promise<string> {
  const taggedRunId = e.runIdTag !== undefined ? { taggedRunId: e.runIdTag } : {};
  if (!run) return await killNow(ctx, e, { reason: "run_missing", ...taggedRunId });
  const orphanOf = { runId: run._id, ...taggedRunId };
  if (isTerminal(run.status)) return await killNow(ctx, e, { reason: "run_ended", ...orphanOf });
  if (run.sandboxId !== undefined) {
    return run.sandboxId === e.sandboxId
      ? "already_recorded"
      : await killNow(ctx, e, { reason: "not_the_runs_sandbox", ...orphanOf });
  }
  await recordSandboxId(ctx, {
    runId: run._id,
    sandboxId: e.sandboxId,
    sandboxExpiresAt: Date.now() + bootLifetimeMs(getConfig()),
  });
  if (run.status !== "stopping") return "recorded";
  await ctx.scheduler.runAfter(0, internal.actions.killWebhookSandbox.killWebhookSandbox, {
    sandboxId: e.sandboxId,
    owedBy: run._id,
    createdAt: e.at ?? Date.now(),
  });
  return "recorded_kill_owed";
}

/**
 * Our pause whose answer was lost (run still `pausing`): E2B's signed word confirms it now,
 * instead of at the lane's next ask. Any other state is left to the pause lane's own checks (a
 * pause we did not ask for is reconciled like any paused sandbox).
 */
async function onPaused(ctx: MutationCtx, e: LifecycleEvent, run: Run | null): Promise<string> {
  if (!run || run.status !== "pausing" || run.sandboxId !== e.sandboxId) return "ignored";
  return (await recordPaused(ctx, run._id, e.sandboxId)) ? "recorded_paused" : "ignored";
}

/**
 * Our resume whose answer was lost (run still `resuming`): the sandbox is running and billing
 * again, so the run is running again, with the lifetime our resume asked for counted from the
 * event. A stop that waited for this resume gets its kill now.
 */
async function onResumed(ctx: MutationCtx, e: LifecycleEvent, run: Run | null): Promise<string> {
  if (!run || run.sandboxId !== e.sandboxId) return "ignored";
  if (run.status !== "resuming" && !(run.status === "stopping" && run.killNotBeforeAt !== undefined)) {
    return "ignored";
  }
  const at = e.at ?? Date.now();
  const r = await recordResumed(ctx, {
    runId: run._id,
    sandboxId: e.sandboxId,
    sandboxExpiresAt: at + runningLifetimeMs(getConfig()),
  });
  if (!r.killNow) return r.status === "running" ? "recorded_resumed" : "ignored";
  await ctx.scheduler.runAfter(0, internal.actions.killWebhookSandbox.killWebhookSandbox, {
    sandboxId: e.sandboxId,
    owedBy: run._id,
    createdAt: 0, // not a `created` event: a 404 here is E2B's word
  });
  return "resumed_kill_owed";
}

async function killNow(
  ctx: MutationCtx,
  e: LifecycleEvent,
  orphan: {
    reason: "run_missing" | "run_ended" | "not_the_runs_sandbox";
    runId?: Run["_id"];
    taggedRunId?: string;
  },
): Promise<string> {
  await ctx.scheduler.runAfter(0, internal.actions.killWebhookSandbox.killWebhookSandbox, {
    sandboxId: e.sandboxId,
    orphan,
    createdAt: e.at ?? Date.now(),
  });
  return `kill_${orphan.reason}`;
}

/**
 * E2B's signed word that the sandbox is dead, like a 404: a running run ends `sandbox_gone`; a
 * booting or stopping run whose one sandbox this is (by id, or by tag when it never learned
 * the id) has its kill confirmed. Anything else (another sandbox, a run already ended) is a
 * late or foreign event: nothing changes.
 */
async function onKilled(ctx: MutationCtx, e: LifecycleEvent, run: Run | null): Promise<string> {
  if (!run || isTerminal(run.status)) return "ignored_no_live_run";
  if (run.sandboxId !== undefined && run.sandboxId !== e.sandboxId) return "ignored_not_the_runs_sandbox";
  if (run.status === "running") {
    await endRunSandboxGone(ctx, run._id, e.sandboxId);
    return "ended_sandbox_gone";
  }
  // Pausing, paused, resuming: the pause policy's own checks settle those (a run that ever
  // paused ends only through a confirmed kill); this event is not routed through them yet.
  if (run.status !== "booting" && run.status !== "stopping") return "ignored_pause_state";
  if (run.sandboxId === undefined) {
    await recordSandboxId(ctx, {
      runId: run._id,
      sandboxId: e.sandboxId,
      sandboxExpiresAt: e.at ?? Date.now(),
    });
  }
  const to = await settleKill(ctx, {
    runId: run._id,
    sandboxId: e.sandboxId,
    reason: "start_failed", // a stopping run keeps its own reason
    kill: { outcome: "gone" },
    // A stopping run keeps the error that made it stop.
    ...(run.status === "booting"
      ? { error: `E2B reported the sandbox killed${e.killReason ? ` (${e.killReason})` : ""}` }
      : {}),
  });
  return to === null ? "ignored" : `settled_${to}`;
}

/** Retention: deletes handled-event records older than `cutoff`, at most `budget`. */
export async function purgeWebhookEvents(ctx: MutationCtx, cutoff: number, budget: number): Promise<number> {
  const old = await ctx.db
    .query("webhookEvents")
    .withIndex("by_at", (q) => q.lt("at", cutoff))
    .take(budget);
  for (const e of old) await ctx.db.delete("webhookEvents", e._id);
  return old.length;
}
