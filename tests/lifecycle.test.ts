// @vitest-environment node
// The core promise, one story per test: a sandbox never outlives its run under any single
// fault. Real Convex functions (convex-test) + the real e2b SDK over HTTP + the local emulator.
import { describe, expect, it, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import * as lifecycle from "../convex/lifecycle";
import {
  allRuns,
  convexErrorOf,
  eventsOf,
  failNext,
  getRun,
  GRACE_MS,
  NAMESPACE,
  peakKillsInFlight,
  TAG_NAMESPACE,
  TAG_RUN_ID,
  captureWarnings,
  useHarness,
  drivers,
} from "./helpers";
import { cronJob, IDLE_MS } from "./drivers";

const BOOT_MS = 60_000;

const h = useHarness();
const { start, sweep } = drivers(h);

/**
 * The seed system's lost sandbox: created, its id never stored, and the start's kill and its
 * failure record failing too — a booting run with no id whose sandbox lives on at E2B.
 */
async function startWithDatabaseDown() {
  const warned = captureWarnings();
  failNext(lifecycle.recordSandboxId);
  failNext(lifecycle.settleKill);
  h.emu.fault("kill", { status: 500 });
  await expect(start()).rejects.toThrow();
  expect(warned()).toContainEqual(expect.stringContaining("start cleanup record failed"));
  const [run] = await allRuns(h.t);
  return run!;
}

describe("startSandboxRun", () => {
  it("happy path: records, creates a tagged sandbox with a boot lifetime, then running with a running lifetime", async () => {
    const { sandboxRunId, sandboxId } = await start();
    const run = await getRun(h.t, sandboxRunId);
    expect(run).toMatchObject({ status: "running", sandboxId, template: "base", killAttempts: 0 });
    expect(run.ownerId).toContain("alice");

    const sb = h.emu.get(sandboxId)!;
    expect(h.emu.isAlive(sandboxId)).toBe(true);
    expect(sb.metadata).toEqual({ [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: sandboxRunId });
    const create = h.emu.calls.find((c) => c.endpoint === "create")!;
    expect(create.status).toBe(201);
    // Created with a boot-sized lifetime (boot timeout + one sweep interval = 120 s) ...
    expect(h.emu.calls.filter((c) => c.endpoint === "setTimeout")).toHaveLength(1);
    // ... then given the running lifetime: idle timeout + slack (600 s + 120 s) from now.
    expect(sb.endAt - Date.now()).toBe(IDLE_MS + 120_000);
    expect(run.sandboxExpiresAt).toBe(sb.endAt);

    const kinds = (await eventsOf(h.t, sandboxRunId)).map((e) => `${e.kind}:${e.to ?? ""}`);
    expect(kinds).toEqual(["transition:booting", "sandbox_recorded:", "transition:running"]);
  });

  it("creates with a boot-sized E2B lifetime, so a sandbox nobody hears of dies on its own", async () => {
    const warned = captureWarnings();
    failNext(lifecycle.recordSandboxId, 1);
    failNext(lifecycle.settleKill, 1);
    h.emu.fault("kill", { status: 500 });
    await expect(start()).rejects.toThrow();
    expect(warned()).toContainEqual(expect.stringContaining("start cleanup record failed"));
    const [sb] = h.emu.all();
    expect(sb!.endAt - sb!.startedAt).toBe(BOOT_MS + 60_000);
    h.clock.advance(BOOT_MS + 60_000 + 1);
    expect(h.emu.alive()).toHaveLength(0);
  });

  it("seed scenario: the sandboxId mutation fails after create → killed at once, run terminal", async () => {
    failNext(lifecycle.recordSandboxId);
    const warned = captureWarnings();
    const err = await convexErrorOf(start());
    expect(err.code).toBe("START_FAILED");
    expect(warned()).toContainEqual(expect.stringContaining("start failed after create"));
    expect(JSON.stringify(err)).not.toMatch(/e2b_test_key|at .*\.ts/);
    expect(h.emu.alive()).toHaveLength(0);
    const [run] = await allRuns(h.t);
    expect(run).toMatchObject({ status: "failed", endReason: "start_failed" });
  });

  it("seed scenario, database down: store, kill and record all fail → after a sweep no sandbox lives, run terminal", async () => {
    const stuck = await startWithDatabaseDown();
    // Exactly the seed's state: booting, no sandboxId anywhere, the sandbox alive at E2B.
    expect(stuck).toMatchObject({ status: "booting" });
    expect(stuck.sandboxId).toBeUndefined();
    expect(h.emu.alive()).toHaveLength(1);

    await sweep(); // before the boot deadline: nothing to do yet
    expect(h.emu.alive()).toHaveLength(1);
    h.clock.advance(GRACE_MS + 1);
    await sweep();
    expect(h.emu.alive()).toHaveLength(0);
    expect(await getRun(h.t, stuck._id)).toMatchObject({ status: "failed", endReason: "boot_timeout" });
    expect(h.emu.calls.some((c) => c.endpoint === "list")).toBe(true);
  });

  it("create response lost → the action finds its one sandbox by tag, records its id, kills it and ends the run", async () => {
    h.emu.fault("create", { dropResponse: true });
    const err = await convexErrorOf(start());
    expect(err.code).toBe("E2B_UNAVAILABLE");
    const [sandbox] = h.emu.all();
    expect(h.emu.all()).toHaveLength(1);
    expect(h.emu.alive()).toHaveLength(0);
    // One create makes at most one sandbox: the one found is the run's, so no grace is owed.
    const [run] = await allRuns(h.t);
    expect(run).toMatchObject({ status: "failed", endReason: "start_failed", sandboxId: sandbox!.sandboxID });
  });

  it("create response lost, the sandbox found but its kill fails → the run learns the id and the sweep kills by id", async () => {
    h.emu.fault("create", { dropResponse: true });
    h.emu.fault("kill", { status: 500 });
    await expect(start()).rejects.toThrow();
    const [sandbox] = h.emu.alive();
    const [run] = await allRuns(h.t);
    expect(run).toMatchObject({ status: "stopping", sandboxId: sandbox!.sandboxID, killAttempts: 1 });
    h.clock.advance(60_000);
    await sweep();
    expect(h.emu.alive()).toHaveLength(0);
    expect(await getRun(h.t, run!._id)).toMatchObject({ status: "failed", endReason: "start_failed" });
  });

  it("create response lost and the tag list fails too → the sweep finds it by tag later and kills it", async () => {
    h.emu.fault("create", { dropResponse: true });
    h.emu.fault("list", { status: 500 });
    await expect(start()).rejects.toThrow();
    expect(h.emu.alive()).toHaveLength(1);
    const [run] = await allRuns(h.t);
    expect(run).toMatchObject({ status: "stopping", killAttempts: 1 });
    h.clock.advance(GRACE_MS + 1);
    await sweep();
    expect(h.emu.alive()).toHaveLength(0);
    expect(await getRun(h.t, run!._id)).toMatchObject({ status: "failed", endReason: "start_failed" });
  });

  it("the 'running' mutation fails → the sandbox is killed and the run is terminal", async () => {
    failNext(lifecycle.markRunning);
    const warned = captureWarnings();
    const err = await convexErrorOf(start());
    expect(err.code).toBe("START_FAILED");
    expect(warned()).toContainEqual(expect.stringContaining("start failed after create"));
    expect(h.emu.alive()).toHaveLength(0);
    expect((await allRuns(h.t))[0]).toMatchObject({ status: "failed", endReason: "start_failed" });
  });

  it("failure path whose 'failed' record throws → the kill still happened; the sweep closes the run", async () => {
    const warned = captureWarnings();
    failNext(lifecycle.markRunning);
    failNext(lifecycle.settleKill);
    await expect(start()).rejects.toThrow();
    expect(warned()).toContainEqual(expect.stringContaining("start cleanup record failed"));
    expect(h.emu.alive()).toHaveLength(0); // killed before any record was attempted
    const [run] = await allRuns(h.t);
    expect(run).toMatchObject({ status: "booting" });
    expect(run!.sandboxId).toBeDefined();
    h.clock.advance(BOOT_MS + 1);
    await sweep();
    expect(await getRun(h.t, run!._id)).toMatchObject({ status: "failed", endReason: "boot_timeout" });
  });

  it("E2B errors reach the caller as ConvexError codes; a refused create ends the run without a sweep", async () => {
    h.emu.fault("create", { status: 429 });
    const limited = await convexErrorOf(start());
    expect(limited.code).toBe("RATE_LIMITED");
    expect(limited.retryAfterMs).toBeGreaterThan(0);
    h.clock.advance(limited.retryAfterMs as number); // the global back-off E2B's 429 imposed
    h.emu.fault("create", { status: 500, message: "boom" });
    const e500 = await convexErrorOf(start());
    expect(e500.code).toBe("E2B_UNAVAILABLE");
    expect(e500.message).toContain("500");
    const runs = await allRuns(h.t);
    expect(runs.map((r) => r.status).sort()).toEqual(["failed", "stopping"]);
    expect(h.emu.all()).toHaveLength(0);
  });
});

describe("killIdleSandboxes", () => {
  it("kills an idle run and leaves an active one untouched", async () => {
    const idle = await start();
    const active = await start();
    h.clock.advance(IDLE_MS - 1_000);
    await h.t.run((ctx) => ctx.db.patch(active.sandboxRunId, { lastActivityAt: Date.now() }));
    h.clock.advance(2_000);
    const r = await sweep();
    expect(r.killed).toBe(1);
    expect(await getRun(h.t, idle.sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
    expect(h.emu.isAlive(idle.sandboxId)).toBe(false);
    expect(await getRun(h.t, active.sandboxRunId)).toMatchObject({ status: "running" });
    expect(h.emu.isAlive(active.sandboxId)).toBe(true);
  });

  it("kill answers 500 → the run stays owed ('stopping'), the next sweep kills it", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.clock.advance(IDLE_MS + 1);
    h.emu.fault("kill", { status: 500 });
    await sweep();
    const owed = await getRun(h.t, sandboxRunId);
    expect(owed).toMatchObject({ status: "stopping", endReason: "idle", killAttempts: 1 });
    expect(owed.lastKillError).toContain("500");
    expect(h.emu.isAlive(sandboxId)).toBe(true);
    h.clock.advance(5_001);
    await sweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
    expect(h.emu.isAlive(sandboxId)).toBe(false);
  });

  it.each([
    ["429", { status: 429 }],
    ["503", { status: 503 }],
    ["401", { status: 401 }],
  ])("a kill failing with %s never marks the run dead", async (_name, fault) => {
    const { sandboxRunId, sandboxId } = await start();
    h.clock.advance(IDLE_MS + 1);
    h.emu.fault("kill", fault);
    await sweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopping" });
    expect(h.emu.isAlive(sandboxId)).toBe(true);
  });

  it("kill answers 404 (sandbox already gone) → the run is terminal", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.emu.killDirect(sandboxId);
    h.clock.advance(IDLE_MS + 1);
    await sweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
    const kill = (await eventsOf(h.t, sandboxRunId)).find((e) => e.kind === "kill");
    expect(kill?.kill).toEqual({ outcome: "gone" });
  });

  it("kills runs past their max lifetime even while active", async () => {
    const { sandboxRunId, sandboxId } = await start();
    for (let i = 0; i < 7; i++) {
      h.clock.advance(540_000);
      await h.t.run((ctx) => ctx.db.patch(sandboxRunId, { lastActivityAt: Date.now() }));
      await sweep();
    }
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "max_lifetime" });
    expect(h.emu.isAlive(sandboxId)).toBe(false);
  });

  it("never touches a sandbox of another namespace, even one tagged with our run's id", async () => {
    const run = await startWithDatabaseDown();
    const foreign = h.emu.seed({
      metadata: { [TAG_NAMESPACE]: "prod-other", [TAG_RUN_ID]: run._id },
      timeoutMs: 3_600_000,
    });
    h.clock.advance(BOOT_MS + 1);
    await sweep();
    expect(h.emu.isAlive(foreign.sandboxID)).toBe(true);
    expect(h.emu.alive().map((s) => s.sandboxID)).toEqual([foreign.sandboxID]);
    expect(
      h.emu.calls.filter((c) => c.endpoint === "kill" && c.sandboxID === foreign.sandboxID),
    ).toHaveLength(0);
  });

  it("a duplicate or late sweep is harmless: a terminal run is not touched again", async () => {
    const { sandboxRunId } = await start();
    h.clock.advance(IDLE_MS + 1);
    await sweep();
    const kills = h.emu.callCount("kill");
    await sweep();
    expect(h.emu.callCount("kill")).toBe(kills);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped" });
    // A late record for the same run does nothing either.
    await h.t.mutation(internal.lifecycle.settleKill, {
      runId: sandboxRunId,
      reason: "user",
      kill: { outcome: "killed" },
    });
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
  });

  it("a backlog drains in parallel lanes, with kills in flight bounded by lanes × concurrency", async () => {
    vi.stubEnv("SANDBOX_SWEEP_PAGE_SIZE", "5");
    vi.stubEnv("SANDBOX_KILL_CONCURRENCY", "2");
    vi.stubEnv("SANDBOX_SWEEP_PARALLEL_PAGES", "3");
    const ids = [];
    for (let i = 0; i < 40; i++) ids.push(await start());
    h.clock.advance(IDLE_MS + 1);
    h.emu.setLatency("kill", 20);
    const peak = await peakKillsInFlight(h.emu, async () => {
      expect(await sweep()).toMatchObject({ killed: 5, more: true });
      await h.t.finishAllScheduledFunctions(() => {});
    });
    for (const { sandboxRunId } of ids) expect((await getRun(h.t, sandboxRunId)).status).toBe("stopped");
    expect(h.emu.alive()).toHaveLength(0);
    expect(h.emu.callCount("kill")).toBe(40);
    expect(peak).toBeGreaterThan(2); // lanes really ran side by side ...
    expect(peak).toBeLessThanOrEqual(3 * 2); // ... and never more than lanes × concurrency
  });

  it("honours E2B's 429: after a rate-limited kill, the page's next kills wait", async () => {
    vi.stubEnv("SANDBOX_KILL_CONCURRENCY", "1");
    const runs = [await start(), await start(), await start()];
    h.clock.advance(IDLE_MS + 1);
    h.emu.fault("kill", { status: 429 });
    const began = performance.now();
    const r = await sweep();
    const elapsedMs = performance.now() - began;
    expect(r).toMatchObject({ killed: 2, failed: 1 });
    expect(elapsedMs).toBeGreaterThanOrEqual(1_000);
    const owed = await Promise.all(runs.map(({ sandboxRunId }) => getRun(h.t, sandboxRunId)));
    expect(owed.filter((run) => run.status === "stopping")).toMatchObject([
      { lastKillError: expect.stringContaining("rate_limited") },
    ]);
  });

  it("crons.ts registers the sweep every minute", () => {
    const job = cronJob("killIdleSandboxes");
    expect(job).toBeDefined();
    expect(job!.name).toBe("actions/killIdleSandboxes:killIdleSandboxes");
    expect(job!.schedule).toMatchObject({ type: "interval", minutes: 1 });
  });
});

describe("bad configuration", () => {
  it("no E2B_API_KEY: starts refuse before writing; the crons do nothing, with one warning, until it is set", async () => {
    const { sandboxRunId, sandboxId } = await start();
    vi.stubEnv("E2B_API_KEY", "");
    const err = await convexErrorOf(start());
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("E2B_API_KEY");
    expect(await allRuns(h.t)).toHaveLength(1);
    h.clock.advance(IDLE_MS + 1);
    const callsBefore = h.emu.calls.length;
    const warned = captureWarnings();
    await sweep();
    await sweep();
    await h.t.action(internal.actions.reconcileSandboxes.reconcileSandboxes, {});
    // Nothing called, nothing owed: the idle run is untouched until the key is back.
    expect(h.emu.calls.length).toBe(callsBefore);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running", killAttempts: 0 });
    expect(warned().filter((w) => w.includes("E2B_API_KEY is not set"))).toHaveLength(1); // once, not per pass
    vi.stubEnv("E2B_API_KEY", "e2b_test_key");
    await sweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped" });
    expect(h.emu.isAlive(sandboxId)).toBe(false);
  });

  it("a bad configuration names the variable", async () => {
    vi.stubEnv("SANDBOX_IDLE_TIMEOUT_MS", "soon");
    const err = await convexErrorOf(start());
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("SANDBOX_IDLE_TIMEOUT_MS");
    expect(await allRuns(h.t)).toHaveLength(0);
  });
});
