// @vitest-environment node
// E2B lifecycle webhooks: the signed HTTP action at /e2b/webhook, the transitions each event
// makes, and delivery faults. Events come from the emulator's own lifecycle (a create, a kill,
// an expiry) through tests/emulator/webhooks.ts, signed, into convex-test's HTTP handler.
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { api, internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import * as lifecycle from "../convex/lifecycle";
import { insertBootingRun } from "../convex/model/runs";
import { e2bWebhookSignature, WebhookEmulator } from "./emulator/webhooks";
import {
  allRuns,
  captureWarnings,
  convexErrorOf,
  eventsOf,
  failNext,
  getRun,
  NAMESPACE,
  TAG_NAMESPACE,
  TAG_RUN_ID,
  useHarness,
  drivers,
} from "./helpers";
import { cronJob } from "./drivers";

const SECRET = "whsec_test_3f9a";
const SITE = "https://test-ns.convex.site";
const BOOT_MS = 60_000;

const h = useHarness({ E2B_WEBHOOK_SECRET: SECRET, CONVEX_SITE_URL: SITE });

let hooks: WebhookEmulator;
beforeAll(() => {
  hooks = new WebhookEmulator({
    // Into convex-test's HTTP router; `t` is the current test's backend.
    deliver: (url, init) => h.t.fetch(new URL(url).pathname, init),
    clock: () => Date.now(),
  }).attach(h.emu);
});

const register = () => h.t.action(internal.admin.registerE2BWebhook, {});
const { alice, start, sweep } = drivers(h);
/** Delivers everything due, then lets the kills the events scheduled run. */
const deliver = async () => {
  await hooks.flush();
  await h.t.finishAllScheduledFunctions(() => {});
};
/** Deliveries as "kind:status", leaving out `updated` (every lifetime extension sends one). */
const outcomes = () =>
  hooks.deliveries
    .filter((d) => d.type !== "sandbox.lifecycle.updated")
    .map((d) => `${d.type.replace("sandbox.lifecycle.", "")}:${d.status}`);

/** A request signed the way E2B signs, with room to forge any part of it. */
function post(body: string, headers: Record<string, string | undefined> = {}) {
  const sent: Record<string, string> = {
    "content-type": "application/json",
    "e2b-signature-version": "v1",
    "e2b-signature": e2bWebhookSignature(SECRET, body),
  };
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) delete sent[k];
    else sent[k] = v;
  }
  return h.t.fetch("/e2b/webhook", { method: "POST", headers: sent, body });
}

function eventBody(
  over: {
    id?: string;
    type?: string;
    sandboxId?: string;
    metadata?: Record<string, string>;
    killReason?: string;
  } = {},
) {
  return JSON.stringify({
    version: "v1",
    id: over.id ?? crypto.randomUUID(),
    type: over.type ?? "sandbox.lifecycle.created",
    eventData: {
      sandbox_metadata: over.metadata ?? {},
      ...(over.killReason ? { kill_reason: over.killReason } : {}),
    },
    sandboxId: over.sandboxId ?? "iforged00000000000000",
    sandboxTemplateId: "rki5dems9wqfm4r03t7g",
    timestamp: new Date().toISOString(),
  });
}

/** Everything a delivery could change: runs, their events, handled events, orphans, E2B. */
async function everything() {
  const db = await h.t.run(async (ctx) => ({
    runs: await ctx.db.query("sandboxRuns").collect(),
    events: await ctx.db.query("runEvents").collect(),
    handled: await ctx.db.query("webhookEvents").collect(),
    orphans: await ctx.db.query("orphanSandboxes").collect(),
  }));
  return { ...db, alive: h.emu.alive().map((s) => s.sandboxID), calls: h.emu.calls.length };
}

beforeEach(async () => {
  hooks.reset();
  await register();
});

describe("admin:registerE2BWebhook", () => {
  it("registers this deployment's webhook once, then updates it in place", async () => {
    const [hook] = hooks.registered();
    expect(hooks.registered()).toHaveLength(1);
    expect(hook).toMatchObject({
      url: `${SITE}/e2b/webhook`,
      enabled: true,
      signatureSecret: SECRET,
      name: `convex-sandboxes-${NAMESPACE}`,
    });
    expect(hook!.events.sort()).toEqual(
      ["created", "killed", "paused", "resumed", "updated"].map((k) => `sandbox.lifecycle.${k}`),
    );
    vi.stubEnv("E2B_WEBHOOK_SECRET", "whsec_rotated");
    expect(await register()).toMatchObject({ action: "updated", id: hook!.id });
    expect(hooks.registered()).toEqual([{ ...hook, signatureSecret: "whsec_rotated" }]);
  });

  it("refuses to register without E2B_WEBHOOK_SECRET", async () => {
    vi.stubEnv("E2B_WEBHOOK_SECRET", "");
    expect((await convexErrorOf(register())).message).toContain("E2B_WEBHOOK_SECRET");
  });
});

describe("created", () => {
  it("the action died after the create: the event records the id on the booting run at once", async () => {
    failNext(lifecycle.recordSandboxId);
    failNext(lifecycle.settleKill);
    h.emu.fault("kill", { status: 500 });
    const warned = captureWarnings();
    await expect(start()).rejects.toThrow();
    expect(warned()).toEqual([
      expect.stringContaining("start failed after create"),
      expect.stringContaining("start cleanup record failed"),
    ]);
    const [run] = await allRuns(h.t);
    expect(run).toMatchObject({ status: "booting" });
    expect(run!.sandboxId).toBeUndefined();
    const [sandbox] = h.emu.alive();

    await deliver();
    expect(await getRun(h.t, run!._id)).toMatchObject({ status: "booting", sandboxId: sandbox!.sandboxID });
    // The sweep now kills it by id after the boot deadline, no list needed.
    h.clock.advance(BOOT_MS + 1);
    const lists = h.emu.callCount("list");
    await sweep();
    expect(h.emu.alive()).toHaveLength(0);
    expect(h.emu.callCount("list")).toBe(lists);
    expect(await getRun(h.t, run!._id)).toMatchObject({ status: "failed", endReason: "boot_timeout" });
  });

  it("create response lost and the tag list failing: the event records the id and the owed kill is made now", async () => {
    h.emu.fault("create", { dropResponse: true });
    h.emu.fault("list", { status: 500 });
    await expect(start()).rejects.toThrow();
    const [run] = await allRuns(h.t);
    expect(run).toMatchObject({ status: "stopping", killAttempts: 1 });
    expect(h.emu.alive()).toHaveLength(1);

    await deliver(); // created → id stored, kill now → killed
    expect(h.emu.alive()).toHaveLength(0);
    const ended = await getRun(h.t, run!._id);
    expect(ended).toMatchObject({
      status: "failed",
      endReason: "start_failed",
      sandboxId: h.emu.all()[0]!.sandboxID,
    });
    await deliver(); // the kill's own `killed` event: the run is already terminal, nothing changes
    expect(await getRun(h.t, run!._id)).toEqual(ended);
  });

  it("for a run that is missing, ended, or records another sandbox: the sandbox is killed now", async () => {
    // seed() announces each sandbox (`created`) as E2B's node would.
    const missing = h.emu.seed({ metadata: { [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: "no-such-run" } });
    const { sandboxRunId, sandboxId } = await start();
    await deliver();
    const second = h.emu.seed({ metadata: { [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: sandboxRunId } });
    await deliver();
    await alice().action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId });
    const late = h.emu.seed({ metadata: { [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: sandboxRunId } });
    await deliver();
    expect(h.emu.alive()).toHaveLength(0);
    const orphans = await h.t.run((ctx) => ctx.db.query("orphanSandboxes").collect());
    expect(orphans).toEqual([
      expect.objectContaining({ sandboxId: missing.sandboxID, reason: "run_missing" }),
    ]);
    const reaped = (await eventsOf(h.t, sandboxRunId)).filter((e) => e.kind === "reconcile_kill");
    expect(reaped.map((e) => [e.sandboxId, e.reason]).sort()).toEqual(
      [
        [second.sandboxID, "not_the_runs_sandbox"],
        [late.sandboxID, "run_ended"],
      ].sort(),
    );
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", sandboxId });
  });

  it("a created event racing the start (delivered the moment E2B publishes it) never breaks that start", async () => {
    const flushing: Promise<void>[] = [];
    const off = h.emu.onLifecycle(() => flushing.push(hooks.flush()));
    try {
      const { sandboxRunId, sandboxId } = await start();
      await Promise.all(flushing);
      expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running", sandboxId });
      expect(outcomes()).toEqual(["created:200"]);
      expect(h.emu.isAlive(sandboxId)).toBe(true);
    } finally {
      off();
    }
  });

  it("a created event landing between the create and the start's own store: the store agrees, the start goes on", async () => {
    const run = await h.t.run((ctx) => insertBootingRun(ctx, { ownerId: "alice", template: "base" }));
    const s = h.emu.seed({ metadata: { [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: run._id } });
    await deliver(); // seed() announces it: `created`
    const args = { runId: run._id, sandboxId: s.sandboxID, sandboxExpiresAt: Date.now() + 120_000 };
    expect(await h.t.mutation(internal.lifecycle.recordSandboxId, args)).toEqual({ wanted: true });
    expect(await h.t.mutation(internal.lifecycle.markRunning, args)).toBe(true);
    expect(h.emu.isAlive(s.sandboxID)).toBe(true);
    const kinds = (await eventsOf(h.t, run._id)).map((e) => e.kind);
    expect(kinds.filter((k) => k === "sandbox_recorded")).toHaveLength(1);
  });
});

describe("killed", () => {
  it("E2B ends a running run's sandbox on its own: the run ends sandbox_gone at once", async () => {
    const { sandboxRunId, sandboxId } = await start();
    await deliver();
    h.emu.killDirect(sandboxId);
    await deliver();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
    expect(outcomes()).toEqual(["created:200", "killed:200"]);
  });

  it("a run owing a kill: E2B's killed event confirms it, the run ends without waiting for the sweep", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.emu.fault("kill", { status: 500 });
    await alice().action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId });
    const owed = await getRun(h.t, sandboxRunId);
    expect(owed).toMatchObject({ status: "stopping", endReason: "user" });
    h.emu.killDirect(sandboxId);
    await deliver();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "user" });
  });

  it("a killed event for a run's previous or foreign sandbox changes nothing", async () => {
    const { sandboxRunId } = await start();
    const stray = h.emu.seed({ metadata: { [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: sandboxRunId } });
    h.emu.killDirect(stray.sandboxID);
    await deliver();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running" });
  });
});

describe("paused, resumed, updated", () => {
  const PAUSE_AFTER_MS = 300_000;
  const startPausing = () => alice().action(api.actions.startSandboxRun.startSandboxRun, { onIdle: "pause" });
  const pauseLane = () => h.t.action(internal.actions.pauseIdleSandboxes.pauseIdleSandboxes, {});

  it("events about a run that asked for nothing are acknowledged and change nothing", async () => {
    const { sandboxRunId, sandboxId } = await start();
    await deliver();
    const before = await everything();
    for (const type of ["paused", "resumed", "updated"] as const)
      hooks.publish({
        type,
        sandboxId,
        templateId: "base",
        metadata: h.emu.get(sandboxId)!.metadata,
        at: Date.now(),
      });
    await deliver();
    expect(hooks.deliveries.slice(-3).map((d) => [d.type, d.status, d.response])).toEqual(
      ["paused", "resumed", "updated"].map((k) => [`sandbox.lifecycle.${k}`, 200, { outcome: "ignored" }]),
    );
    const after = await everything();
    expect(after.runs).toEqual(before.runs);
    expect(after.events).toEqual(before.events);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running" });
  });

  it("paused: our pause whose answer was lost is confirmed by E2B's event, before the lane asks again", async () => {
    const { sandboxRunId, sandboxId } = await startPausing();
    await deliver();
    h.clock.advance(PAUSE_AFTER_MS + 1_000);
    h.emu.fault("pause", { dropResponse: true });
    await pauseLane();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "pausing" });
    await deliver();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "paused", pausedAt: Date.now() });
    expect(h.emu.get(sandboxId)!.state).toBe("paused");
    expect(h.emu.callCount("pause")).toBe(1); // no second ask was needed
  });

  it("resumed: our resume whose answer was lost makes the run running again (it bills again)", async () => {
    const { sandboxRunId, sandboxId } = await startPausing();
    h.clock.advance(PAUSE_AFTER_MS + 1_000);
    await pauseLane();
    await deliver();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "paused" });
    h.emu.fault("connect", { dropResponse: true });
    const resume = () => alice().action(api.actions.resumeSandboxRun.resumeSandboxRun, { sandboxRunId });
    expect((await convexErrorOf(resume())).code).toBe("E2B_UNAVAILABLE");
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "resuming" });
    expect(h.emu.get(sandboxId)!.state).toBe("running");
    await deliver();
    const run = await getRun(h.t, sandboxRunId);
    expect(run).toMatchObject({ status: "running" });
    expect(run.sandboxExpiresAt).toBeGreaterThanOrEqual(h.emu.get(sandboxId)!.endAt);
    // A duplicate or late resumed event changes nothing more.
    const before = await everything();
    hooks.publish({
      type: "resumed",
      sandboxId,
      templateId: "base",
      metadata: h.emu.get(sandboxId)!.metadata,
      at: Date.now(),
    });
    await deliver();
    expect((await everything()).runs).toEqual(before.runs);
  });
});

describe("delivery faults", () => {
  it("duplicate: the second delivery of an event is answered 200 and has no effect", async () => {
    hooks.fault({ duplicate: true });
    const { sandboxRunId, sandboxId } = await start();
    await deliver();
    hooks.fault({ duplicate: true });
    h.emu.killDirect(sandboxId);
    await deliver();
    const said = hooks.deliveries.filter((d) => d.type !== "sandbox.lifecycle.updated");
    expect(said.map((d) => (d.response as { outcome?: string }).outcome)).toEqual([
      "already_recorded",
      "duplicate",
      "ended_sandbox_gone",
      "duplicate",
    ]);
    const transitions = (await eventsOf(h.t, sandboxRunId)).filter((e) => e.kind === "transition");
    expect(transitions.map((e) => e.to)).toEqual(["booting", "running", "stopped"]);
  });

  it("drop: a lost event leaves the job to polling, which still does it", async () => {
    const { sandboxRunId, sandboxId } = await start();
    await deliver();
    hooks.fault({ drop: true });
    h.emu.killDirect(sandboxId);
    await deliver();
    expect(hooks.deliveries.at(-1)).toMatchObject({ type: "sandbox.lifecycle.killed", dropped: true });
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running" });
    // Past the reconciler's grace window (its floor covers E2B's 70 s create deadline).
    h.clock.advance(5 * 60_000);
    await h.t.action(internal.actions.reconcileSandboxes.reconcileSandboxes, {});
    await sweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
  });

  it("drop with E2B's retry: the next attempt, 10 s later, applies it", async () => {
    hooks.setRetries({ max: 3, intervalMs: 10_000 });
    const { sandboxRunId, sandboxId } = await start();
    await deliver();
    hooks.fault({ drop: true });
    h.emu.killDirect(sandboxId);
    await deliver();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running" });
    h.clock.advance(10_000);
    await deliver();
    expect(hooks.deliveries.slice(-2).map((d) => [d.attempt, d.dropped ?? false, d.status])).toEqual([
      [1, true, undefined],
      [2, false, 200],
    ]);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
  });

  it("delay: a late event is applied when it arrives", async () => {
    const { sandboxRunId, sandboxId } = await start();
    hooks.fault({ delayMs: 30_000 });
    h.emu.killDirect(sandboxId);
    await deliver();
    await deliver();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running" });
    h.clock.advance(30_000);
    await deliver();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
  });

  it("reorder: killed before created for a lost create response still ends with the run terminal and nothing alive", async () => {
    h.emu.fault("create", { dropResponse: true });
    h.emu.fault("list", { status: 500 });
    hooks.fault({ reorder: true }); // `created` is overtaken by the next event
    await expect(start()).rejects.toThrow();
    const [run] = await allRuns(h.t);
    const [sandbox] = h.emu.alive();
    h.emu.killDirect(sandbox!.sandboxID);
    await deliver();
    expect(outcomes()).toEqual(["created:200", "killed:200"]);
    expect(hooks.deliveries[1]!.deliveredAt).toBeLessThanOrEqual(hooks.deliveries[0]!.deliveredAt!);
    expect(await getRun(h.t, run!._id)).toMatchObject({ status: "failed", sandboxId: sandbox!.sandboxID });
    expect(h.emu.alive()).toHaveLength(0);
  });

  it("bad signature: refused with 401, nothing changes", async () => {
    const { sandboxRunId, sandboxId } = await start();
    await deliver();
    const before = await everything();
    hooks.fault({ badSignature: true });
    h.emu.killDirect(sandboxId);
    await deliver();
    expect(outcomes()).toEqual(["created:200", "killed:401"]);
    const after = await everything();
    expect(after.runs).toEqual(before.runs);
    expect(after.handled).toEqual(before.handled);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running" });
  });
});

describe("catching up on lost deliveries through E2B's events API", () => {
  const catchUp = () => h.t.action(internal.actions.catchUpLifecycleEvents.catchUpLifecycleEvents, {});
  const handledVia = async () =>
    (await h.t.run((ctx) => ctx.db.query("webhookEvents").collect())).map(
      (e) => `${e.type.replace("sandbox.lifecycle.", "")}:${e.outcome}:${e.via ?? "webhook"}`,
    );
  const eventsApi = (query: string) =>
    fetch(`${h.emu.url}/events/sandboxes${query}`, { headers: { "X-API-Key": "e2b_test_key" } });

  /** A running run whose sandbox E2B killed, the `killed` delivery lost; a minute later. */
  const runWithLostDeath = async () => {
    const a = await start();
    await deliver();
    hooks.fault({ drop: true });
    h.emu.killDirect(a.sandboxId);
    await deliver();
    h.clock.advance(60_000);
    return a;
  };

  it("E2B's events API: newest first, visible ~1 s after, the delivery's own id; limit 1..100 and offset checked", async () => {
    const { sandboxId } = await start();
    expect(await (await eventsApi("")).json()).toEqual([]); // not flushed to the events store yet
    h.clock.advance(1_000);
    const listed = (await (await eventsApi("?limit=100")).json()) as { id: string; type: string }[];
    expect(listed.map((e) => e.type)).toEqual(["sandbox.lifecycle.updated", "sandbox.lifecycle.created"]);
    await deliver();
    expect(hooks.deliveries.map((d) => d.eventId).sort()).toEqual(listed.map((e) => e.id).sort());
    const oldestFirst = (await (await eventsApi(`/${sandboxId}?orderAsc=true&limit=1&offset=0`)).json()) as {
      type: string;
    }[];
    expect(oldestFirst.map((e) => e.type)).toEqual(["sandbox.lifecycle.created"]);
    for (const bad of ["?limit=0", "?limit=101", "?offset=-1", "?limit=ten"])
      expect((await eventsApi(bad)).status).toBe(400);
  });

  it("promise: a dropped killed delivery while events flow is read from E2B's events API at the next delivery (seconds, not E2B's retry)", async () => {
    const a = await start();
    await deliver();
    hooks.fault({ drop: true });
    h.emu.killDirect(a.sandboxId); // E2B ends it on its own; the delivery never arrives
    await deliver();
    expect(await getRun(h.t, a.sandboxRunId)).toMatchObject({ status: "running" });
    h.clock.advance(2_000);
    await start(); // someone else's start: its `created` delivery rings for a catch-up
    await deliver();
    expect(await getRun(h.t, a.sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
    // The lost event was handled once, by the catch-up; the others it read were duplicates.
    expect((await handledVia()).filter((x) => x.endsWith(":catch_up"))).toEqual([
      "killed:ended_sandbox_gone:catch_up",
    ]);
  });

  it("deliveries ring at most once per interval: a burst of events makes one events-API read", async () => {
    for (let i = 0; i < 5; i++) await start();
    await deliver();
    expect(hooks.eventsApiCalls).toHaveLength(1);
    h.clock.advance(2_000);
    await start();
    await deliver();
    expect(hooks.eventsApiCalls).toHaveLength(2);
  });

  it("a lone event whose every delivery failed: the catch-up cron reads it", async () => {
    const a = await runWithLostDeath();
    expect(await catchUp()).toMatchObject({ handled: 1, complete: true, failed: false });
    expect(await getRun(h.t, a.sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
    const job = cronJob("catchUpLifecycleEvents");
    expect(job!.name).toBe("actions/catchUpLifecycleEvents:catchUpLifecycleEvents");
    expect(job!.schedule).toMatchObject({ type: "interval", minutes: 1 });
  });

  it("the events API failing: nothing changes, the next catch-up does the job", async () => {
    const a = await runWithLostDeath();
    hooks.eventsApiFault(500);
    expect(await catchUp()).toMatchObject({ handled: 0, failed: true });
    expect(await getRun(h.t, a.sandboxRunId)).toMatchObject({ status: "running" });
    expect(await catchUp()).toMatchObject({ handled: 1, failed: false });
    expect(await getRun(h.t, a.sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
  });

  it("another namespace's events are read and ignored: no kill, no write", async () => {
    const foreign = h.emu.seed({ metadata: { [TAG_NAMESPACE]: "other-ns", [TAG_RUN_ID]: "their-run" } });
    h.clock.advance(60_000);
    const before = await everything();
    const kills = h.emu.callCount("kill");
    const r = await catchUp();
    expect(r.read).toBeGreaterThan(0);
    expect(r.handled).toBe(0);
    expect(h.emu.isAlive(foreign.sandboxID)).toBe(true);
    const after = await everything();
    expect(after.runs).toEqual(before.runs);
    expect(after.handled).toEqual(before.handled);
    expect(h.emu.callCount("kill")).toBe(kills);
  });

  it("webhooks off (no E2B_WEBHOOK_SECRET): the catch-up makes no E2B call", async () => {
    await start();
    h.clock.advance(60_000);
    vi.stubEnv("E2B_WEBHOOK_SECRET", "");
    const calls = h.emu.calls.length;
    expect(await catchUp()).toEqual({ read: 0, handled: 0, complete: true, failed: false });
    expect(hooks.eventsApiCalls).toHaveLength(0);
    expect(h.emu.calls.length).toBe(calls);
  });
});

describe("POST /e2b/webhook refuses what E2B did not send", () => {
  let runId: Id<"sandboxRuns">;
  let sandboxId: string;
  let killedFor: (id?: string) => string;
  beforeEach(async () => {
    ({ sandboxRunId: runId, sandboxId } = await start());
    await deliver();
    killedFor = (id) =>
      eventBody({
        id,
        type: "sandbox.lifecycle.killed",
        sandboxId,
        metadata: { [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: runId },
      });
  });

  const unchanged = async (send: () => Promise<Response>, status: number) => {
    const before = await everything();
    const res = await send();
    expect(res.status).toBe(status);
    await h.t.finishAllScheduledFunctions(() => {});
    expect(await everything()).toEqual(before);
  };

  it("forged: no signature, a wrong secret, a signature over another body, an unknown version → 401", async () => {
    const body = killedFor();
    await unchanged(() => post(body, { "e2b-signature": undefined }), 401);
    await unchanged(() => post(body, { "e2b-signature": e2bWebhookSignature("guess", body) }), 401);
    await unchanged(() => post(body, { "e2b-signature": e2bWebhookSignature(SECRET, killedFor()) }), 401);
    await unchanged(() => post(body, { "e2b-signature-version": "v2" }), 401);
    // Standard base64 (the alphabet some third-party code uses) is not E2B's encoding.
    const std = e2bWebhookSignature(SECRET, body).replace(/-/g, "+").replace(/_/g, "/");
    if (std !== e2bWebhookSignature(SECRET, body))
      await unchanged(() => post(body, { "e2b-signature": std }), 401);
  });

  it("no E2B_WEBHOOK_SECRET: every delivery is refused, even one signed with an empty secret", async () => {
    vi.stubEnv("E2B_WEBHOOK_SECRET", "");
    const body = killedFor();
    await unchanged(() => post(body, { "e2b-signature": e2bWebhookSignature("", body) }), 401);
    await unchanged(() => post(body), 401);
  });

  it("replayed: the same signed event twice → 200 both times, the second changes nothing", async () => {
    const body = killedFor("evt-replayed");
    expect((await post(body)).status).toBe(200);
    expect(await getRun(h.t, runId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
    const res = await post(body);
    expect(await res.json()).toEqual({ outcome: "duplicate" });
    await unchanged(() => post(body), 200);
  });

  it("oversized: a body over 64 KB → 413 before anything is checked", async () => {
    const big = JSON.stringify({ pad: "x".repeat(70 * 1024), ...JSON.parse(killedFor()) });
    await unchanged(() => post(big), 413);
  });

  it("foreign namespace or untagged: acknowledged (200) and ignored", async () => {
    const foreign = eventBody({
      type: "sandbox.lifecycle.killed",
      sandboxId,
      metadata: { [TAG_NAMESPACE]: "someone-else", [TAG_RUN_ID]: runId },
    });
    await unchanged(() => post(foreign), 200);
    await unchanged(() => post(eventBody({ type: "sandbox.lifecycle.created", sandboxId })), 200);
    expect(h.emu.isAlive(sandboxId)).toBe(true);
  });

  it("signed but malformed → 400; signed with an unknown type → 200 and ignored", async () => {
    await unchanged(() => post("{not json"), 400);
    await unchanged(() => post(JSON.stringify({ id: "x", type: "sandbox.lifecycle.killed" })), 400);
    await unchanged(() => post(JSON.stringify([1, 2])), 400);
    const res = await post(eventBody({ type: "sandbox.lifecycle.checkpointed", sandboxId }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ outcome: "ignored_unknown_type" });
  });
});

describe("retention", () => {
  it("purges handled-event records past the retention window", async () => {
    await start();
    await deliver();
    expect(await h.t.run((ctx) => ctx.db.query("webhookEvents").collect())).toHaveLength(2); // created, updated
    h.clock.advance(31 * 24 * 3_600_000);
    await h.t.mutation(internal.retention.purgeOldRuns, {});
    expect(await h.t.run((ctx) => ctx.db.query("webhookEvents").collect())).toHaveLength(0);
  });
});
