// @vitest-environment node
// The core promise, one story per test: a sandbox never outlives its run under any single
// fault. Real Convex functions (convex-test) + the real e2b SDK over HTTP + the local emulator.
import { describe, expect, it, vi } from "vitest";
import { api, internal } from "../convex/_generated/api";
import * as lifecycle from "../convex/lifecycle";
import crons from "../convex/crons";
import {
  allRuns,
  clock,
  convexErrorOf,
  emu,
  eventsOf,
  failNext,
  getRun,
  GRACE_MS,
  NAMESPACE,
  peakKillsInFlight,
  t,
  TAG_NAMESPACE,
  TAG_RUN_ID,
  captureWarnings,
  useHarness,
} from "./helpers";

const alice = () => t.withIdentity({ subject: "alice" });

const BOOT_MS = 60_000;
const IDLE_MS = 600_000;
const start = (template?: string) =>
  alice().action(api.actions.startSandboxRun.startSandboxRun, template === undefined ? {} : { template });
const sweep = () => t.action(internal.actions.killIdleSandboxes.killIdleSandboxes, {});

useHarness();

describe("startSandboxRun", () => {
  it("happy path: records, creates a tagged sandbox with a boot lifetime, then running with a running lifetime", async () => {
    const { sandboxRunId, sandboxId } = await start();
    const run = await getRun(t, sandboxRunId);
    expect(run).toMatchObject({ status: "running", sandboxId, template: "base", killAttempts: 0 });
    expect(run.ownerId).toContain("alice");

    const sb = emu.get(sandboxId)!;
    expect(emu.isAlive(sandboxId)).toBe(true);
    expect(sb.metadata).toEqual({ [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: sandboxRunId });
    const create = emu.calls.find((c) => c.endpoint === "create")!;
    expect(create.status).toBe(201);
    // Created with a boot-sized lifetime (boot timeout + one sweep interval = 120 s) ...
    expect(emu.calls.filter((c) => c.endpoint === "setTimeout")).toHaveLength(1);
    // ... then given the running lifetime: idle timeout + slack (600 s + 120 s) from now.
    expect(sb.endAt - Date.now()).toBe(IDLE_MS + 120_000);
    expect(run.sandboxExpiresAt).toBe(sb.endAt);

    const kinds = (await eventsOf(t, sandboxRunId)).map((e) => `${e.kind}:${e.to ?? ""}`);
    expect(kinds).toEqual(["transition:booting", "sandbox_recorded:", "transition:running"]);
  });

  it("creates with a boot-sized E2B lifetime, so a sandbox nobody hears of dies on its own", async () => {
    const warned = captureWarnings();
    failNext(lifecycle.storeSandboxId, 1);
    failNext(lifecycle.recordKill, 1);
    emu.fault("kill", { status: 500 });
    await expect(start()).rejects.toThrow();
    expect(warned()).toContainEqual(expect.stringContaining("start cleanup record failed"));
    const [sb] = emu.all();
    expect(sb!.endAt - sb!.startedAt).toBe(BOOT_MS + 60_000);
    clock.advance(BOOT_MS + 60_000 + 1);
    expect(emu.alive()).toHaveLength(0);
  });

  it("seed scenario: the sandboxId mutation fails after create → killed at once, run terminal", async () => {
    failNext(lifecycle.storeSandboxId);
    const warned = captureWarnings();
    const err = await convexErrorOf(start());
    expect(err.code).toBe("START_FAILED");
    expect(warned()).toContainEqual(expect.stringContaining("start failed after create"));
    expect(JSON.stringify(err)).not.toMatch(/e2b_test_key|at .*\.ts/);
    expect(emu.alive()).toHaveLength(0);
    const [run] = await allRuns(t);
    expect(run).toMatchObject({ status: "failed", endReason: "start_failed" });
  });

  it("seed scenario, database down: store, kill and record all fail → after a sweep no sandbox lives, run terminal", async () => {
    const warned = captureWarnings();
    failNext(lifecycle.storeSandboxId);
    failNext(lifecycle.recordKill);
    emu.fault("kill", { status: 500 });
    await expect(start()).rejects.toThrow();
    expect(warned()).toContainEqual(expect.stringContaining("start cleanup record failed"));
    const [stuck] = await allRuns(t);
    // Exactly the seed's state: booting, no sandboxId anywhere, the sandbox alive at E2B.
    expect(stuck).toMatchObject({ status: "booting" });
    expect(stuck!.sandboxId).toBeUndefined();
    expect(emu.alive()).toHaveLength(1);

    await sweep(); // before the boot deadline: nothing to do yet
    expect(emu.alive()).toHaveLength(1);
    clock.advance(GRACE_MS + 1);
    await sweep();
    expect(emu.alive()).toHaveLength(0);
    expect(await getRun(t, stuck!._id)).toMatchObject({ status: "failed", endReason: "boot_timeout" });
    expect(emu.calls.some((c) => c.endpoint === "list")).toBe(true);
  });

  it("create response lost → the action finds the sandbox by its tag and kills it; the sweep confirms after grace", async () => {
    emu.fault("create", { dropResponse: true });
    const err = await convexErrorOf(start());
    expect(err.code).toBe("E2B_UNAVAILABLE");
    expect(emu.all()).toHaveLength(1);
    expect(emu.alive()).toHaveLength(0);
    const [run] = await allRuns(t);
    // Not terminal yet: a create could still land within the grace window.
    expect(run).toMatchObject({ status: "stopping", endReason: "start_failed" });
    clock.advance(GRACE_MS + 1);
    await sweep();
    expect(await getRun(t, run!._id)).toMatchObject({ status: "failed", endReason: "start_failed" });
  });

  it("create response lost and the tag list fails too → the sweep finds it by tag later and kills it", async () => {
    emu.fault("create", { dropResponse: true });
    emu.fault("list", { status: 500 });
    await expect(start()).rejects.toThrow();
    expect(emu.alive()).toHaveLength(1);
    const [run] = await allRuns(t);
    expect(run).toMatchObject({ status: "stopping", killAttempts: 1 });
    clock.advance(GRACE_MS + 1);
    await sweep();
    expect(emu.alive()).toHaveLength(0);
    expect(await getRun(t, run!._id)).toMatchObject({ status: "failed", endReason: "start_failed" });
  });

  it("the 'running' mutation fails → the sandbox is killed and the run is terminal", async () => {
    failNext(lifecycle.markRunRunning);
    const warned = captureWarnings();
    const err = await convexErrorOf(start());
    expect(err.code).toBe("START_FAILED");
    expect(warned()).toContainEqual(expect.stringContaining("start failed after create"));
    expect(emu.alive()).toHaveLength(0);
    expect((await allRuns(t))[0]).toMatchObject({ status: "failed", endReason: "start_failed" });
  });

  it("failure path whose 'failed' record throws → the kill still happened; the sweep closes the run", async () => {
    const warned = captureWarnings();
    failNext(lifecycle.markRunRunning);
    failNext(lifecycle.recordKill);
    await expect(start()).rejects.toThrow();
    expect(warned()).toContainEqual(expect.stringContaining("start cleanup record failed"));
    expect(emu.alive()).toHaveLength(0); // killed before any record was attempted
    const [run] = await allRuns(t);
    expect(run).toMatchObject({ status: "booting" });
    expect(run!.sandboxId).toBeDefined();
    clock.advance(BOOT_MS + 1);
    await sweep();
    expect(await getRun(t, run!._id)).toMatchObject({ status: "failed", endReason: "boot_timeout" });
  });

  it("E2B errors reach the caller as ConvexError codes; a refused create ends the run without a sweep", async () => {
    emu.fault("create", { status: 429 });
    const limited = await convexErrorOf(start());
    expect(limited.code).toBe("RATE_LIMITED");
    expect(limited.retryAfterMs).toBeGreaterThan(0);
    clock.advance(limited.retryAfterMs as number); // the global back-off E2B's 429 imposed
    emu.fault("create", { status: 500, message: "boom" });
    const e500 = await convexErrorOf(start());
    expect(e500.code).toBe("E2B_UNAVAILABLE");
    expect(e500.message).toContain("500");
    const runs = await allRuns(t);
    expect(runs.map((r) => r.status).sort()).toEqual(["failed", "stopping"]);
    expect(emu.all()).toHaveLength(0);
  });
});

describe("killIdleSandboxes", () => {
  it("kills an idle run and leaves an active one untouched", async () => {
    const idle = await start();
    const active = await start();
    clock.advance(IDLE_MS - 1_000);
    await t.run((ctx) => ctx.db.patch(active.sandboxRunId, { lastActivityAt: Date.now() }));
    clock.advance(2_000);
    const r = await sweep();
    expect(r.killed).toBe(1);
    expect(await getRun(t, idle.sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
    expect(emu.isAlive(idle.sandboxId)).toBe(false);
    expect(await getRun(t, active.sandboxRunId)).toMatchObject({ status: "running" });
    expect(emu.isAlive(active.sandboxId)).toBe(true);
  });

  it("kill answers 500 → the run stays owed ('stopping'), the next sweep kills it", async () => {
    const { sandboxRunId, sandboxId } = await start();
    clock.advance(IDLE_MS + 1);
    emu.fault("kill", { status: 500 });
    await sweep();
    const owed = await getRun(t, sandboxRunId);
    expect(owed).toMatchObject({ status: "stopping", endReason: "idle", killAttempts: 1 });
    expect(owed.lastKillError).toContain("500");
    expect(emu.isAlive(sandboxId)).toBe(true);
    clock.advance(5_001);
    await sweep();
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
    expect(emu.isAlive(sandboxId)).toBe(false);
  });

  it.each([
    ["429", { status: 429 }],
    ["503", { status: 503 }],
    ["401", { status: 401 }],
  ])("a kill failing with %s never marks the run dead", async (_name, fault) => {
    const { sandboxRunId, sandboxId } = await start();
    clock.advance(IDLE_MS + 1);
    emu.fault("kill", fault);
    await sweep();
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopping" });
    expect(emu.isAlive(sandboxId)).toBe(true);
  });

  it("kill answers 404 (sandbox already gone) → the run is terminal", async () => {
    const { sandboxRunId, sandboxId } = await start();
    emu.killDirect(sandboxId);
    clock.advance(IDLE_MS + 1);
    await sweep();
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
    const kill = (await eventsOf(t, sandboxRunId)).find((e) => e.kind === "kill");
    expect(kill?.kill).toEqual({ outcome: "gone" });
  });

  it("kills runs past their max lifetime even while active", async () => {
    const { sandboxRunId, sandboxId } = await start();
    for (let i = 0; i < 7; i++) {
      clock.advance(540_000);
      await t.run((ctx) => ctx.db.patch(sandboxRunId, { lastActivityAt: Date.now() }));
      await sweep();
    }
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "max_lifetime" });
    expect(emu.isAlive(sandboxId)).toBe(false);
  });

  it("never touches a sandbox of another namespace, even one tagged with our run's id", async () => {
    const warned = captureWarnings();
    failNext(lifecycle.storeSandboxId);
    failNext(lifecycle.recordKill);
    emu.fault("kill", { status: 500 });
    await expect(start()).rejects.toThrow();
    expect(warned()).toContainEqual(expect.stringContaining("start cleanup record failed"));
    const [run] = await allRuns(t);
    const foreign = emu.seed({
      metadata: { [TAG_NAMESPACE]: "prod-other", [TAG_RUN_ID]: run!._id },
      timeoutMs: 3_600_000,
    });
    clock.advance(BOOT_MS + 1);
    await sweep();
    expect(emu.isAlive(foreign.sandboxID)).toBe(true);
    expect(emu.alive().map((s) => s.sandboxID)).toEqual([foreign.sandboxID]);
    expect(emu.calls.filter((c) => c.endpoint === "kill" && c.sandboxID === foreign.sandboxID)).toHaveLength(
      0,
    );
  });

  it("a duplicate or late sweep is harmless: a terminal run is not touched again", async () => {
    const { sandboxRunId } = await start();
    clock.advance(IDLE_MS + 1);
    await sweep();
    const kills = emu.callCount("kill");
    await sweep();
    expect(emu.callCount("kill")).toBe(kills);
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopped" });
    // A late record for the same run does nothing either.
    await t.mutation(internal.lifecycle.recordKill, {
      runId: sandboxRunId,
      reason: "user",
      kill: { outcome: "killed" },
    });
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
  });

  it("a backlog drains in parallel lanes, with kills in flight bounded by lanes × concurrency", async () => {
    vi.stubEnv("SANDBOX_SWEEP_PAGE_SIZE", "5");
    vi.stubEnv("SANDBOX_KILL_CONCURRENCY", "2");
    vi.stubEnv("SANDBOX_SWEEP_PARALLEL_PAGES", "3");
    const ids = [];
    for (let i = 0; i < 40; i++) ids.push(await start());
    clock.advance(IDLE_MS + 1);
    emu.setLatency("kill", 20);
    const peak = await peakKillsInFlight(async () => {
      expect(await sweep()).toMatchObject({ killed: 5, more: true });
      await t.finishAllScheduledFunctions(() => {});
    });
    for (const { sandboxRunId } of ids) expect((await getRun(t, sandboxRunId)).status).toBe("stopped");
    expect(emu.alive()).toHaveLength(0);
    expect(emu.callCount("kill")).toBe(40);
    expect(peak).toBeGreaterThan(2); // lanes really ran side by side ...
    expect(peak).toBeLessThanOrEqual(3 * 2); // ... and never more than lanes × concurrency
  });

  it("honours E2B's 429: after a rate-limited kill, the page's next kills wait", async () => {
    vi.stubEnv("SANDBOX_KILL_CONCURRENCY", "1");
    const runs = [await start(), await start(), await start()];
    clock.advance(IDLE_MS + 1);
    emu.fault("kill", { status: 429 });
    const began = performance.now();
    const r = await sweep();
    const elapsedMs = performance.now() - began;
    expect(r).toMatchObject({ killed: 2, failed: 1 });
    expect(elapsedMs).toBeGreaterThanOrEqual(1_000);
    const owed = await Promise.all(runs.map(({ sandboxRunId }) => getRun(t, sandboxRunId)));
    expect(owed.filter((run) => run.status === "stopping")).toMatchObject([
      { lastKillError: expect.stringContaining("rate_limited") },
    ]);
  });

  it("crons.ts registers the sweep every minute", () => {
    const job = (
      crons as unknown as {
        crons: Record<string, { name: string; schedule: { type: string; minutes?: number } }>;
      }
    ).crons.killIdleSandboxes;
    expect(job).toBeDefined();
    expect(job!.name).toBe("actions/killIdleSandboxes:killIdleSandboxes");
    expect(job!.schedule).toMatchObject({ type: "interval", minutes: 1 });
  });
});

describe("bad input", () => {
  it("no identity → UNAUTHENTICATED, nothing written, no sandbox", async () => {
    const err = await convexErrorOf(t.action(api.actions.startSandboxRun.startSandboxRun, {}));
    expect(err.code).toBe("UNAUTHENTICATED");
    expect(await allRuns(t)).toHaveLength(0);
    expect(emu.calls).toHaveLength(0);
  });

  it.each(["nope", "", "base ", "x".repeat(500)])(
    "unknown template %j → INVALID_TEMPLATE, nothing written",
    async (template) => {
      const err = await convexErrorOf(start(template));
      expect(err.code).toBe("INVALID_TEMPLATE");
      expect(await allRuns(t)).toHaveLength(0);
      expect(emu.calls).toHaveLength(0);
    },
  );

  it("no E2B_API_KEY: starts refuse before writing; the crons do nothing, with one warning, until it is set", async () => {
    const { sandboxRunId, sandboxId } = await start();
    vi.stubEnv("E2B_API_KEY", "");
    const err = await convexErrorOf(start());
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("E2B_API_KEY");
    expect(await allRuns(t)).toHaveLength(1);
    clock.advance(IDLE_MS + 1);
    const callsBefore = emu.calls.length;
    const warned = captureWarnings();
    await sweep();
    await sweep();
    await t.action(internal.actions.reconcileSandboxes.reconcileSandboxes, {});
    // Nothing called, nothing owed: the idle run is untouched until the key is back.
    expect(emu.calls.length).toBe(callsBefore);
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "running", killAttempts: 0 });
    expect(warned().filter((w) => w.includes("E2B_API_KEY is not set"))).toHaveLength(1); // once, not per pass
    vi.stubEnv("E2B_API_KEY", "e2b_test_key");
    await sweep();
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopped" });
    expect(emu.isAlive(sandboxId)).toBe(false);
  });

  it("a bad configuration names the variable", async () => {
    vi.stubEnv("SANDBOX_IDLE_TIMEOUT_MS", "soon");
    const err = await convexErrorOf(start());
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("SANDBOX_IDLE_TIMEOUT_MS");
    expect(await allRuns(t)).toHaveLength(0);
  });
});
