// @vitest-environment node
// Pause on idle, resume on demand — and still no leaks. Real Convex functions (convex-test) +
// the real e2b SDK over HTTP + the local emulator; one story per test, one fault per story.
import { Sandbox } from "e2b";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { api } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import * as pauses from "../convex/pauses";
import {
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

const PAUSE_AFTER_MS = 300_000;
/** Idle long enough to be paused (the clock moves a millisecond inside a start). */
const PAUSE_IDLE_MS = PAUSE_AFTER_MS + 1_000;
const RETENTION_MS = 3_600_000;
const SWEEP_MS = 60_000;
/** Longer than any lease (a resume's: 75 s E2B deadline + 30 s). */
const PAST_LEASE_MS = 3 * 60_000;

const resume = (sandboxRunId: string) =>
  alice().action(api.actions.resumeSandboxRun.resumeSandboxRun, { sandboxRunId });
const command = (sandboxRunId: string, cmd = "echo hi") =>
  alice().action(api.actions.runCommand.runCommand, { sandboxRunId, command: cmd });
const status = async (id: Id<"sandboxRuns">) => (await getRun(h.t, id)).status;
const transitions = async (id: Id<"sandboxRuns">) =>
  (await eventsOf(h.t, id)).filter((e) => e.kind === "transition").map((e) => e.to);
const sdkOpts = () => ({ apiKey: "e2b_test_key", requestTimeoutMs: 2_000 });

/** A run under the pause policy, paused by the lane after its idle time. */
async function pausedRun() {
  const { sandboxRunId, sandboxId } = await start({ onIdle: "pause" });
  h.clock.advance(PAUSE_IDLE_MS);
  await pauseLane();
  expect(await status(sandboxRunId)).toBe("paused");
  return { sandboxRunId, sandboxId };
}

// A short request deadline keeps timeout stories quick; retention short enough to reach.
const h = useHarness({ E2B_REQUEST_TIMEOUT_MS: "2000", SANDBOX_PAUSED_RETENTION_MS: String(RETENTION_MS) });
const { alice, start, stop, pauseLane, sweep: killSweep, reconcile } = drivers(h);
// The SDK's first call loads its HTTP stack inside the call's deadline: warm it up outside.
beforeAll(async () => {
  const s = await Sandbox.create("base", { ...sdkOpts(), requestTimeoutMs: 30_000 });
  await Sandbox.kill(s.sandboxId, { ...sdkOpts(), requestTimeoutMs: 30_000 });
});

describe("the pause policy", () => {
  it("an idle run started with onIdle pause is paused (not killed) after SANDBOX_PAUSE_AFTER_IDLE_MS, visible everywhere", async () => {
    const { sandboxRunId, sandboxId } = await start({ onIdle: "pause" });
    h.clock.advance(PAUSE_AFTER_MS - 1_000);
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("running");
    h.clock.advance(2_000);
    expect(await pauseLane()).toMatchObject({ paused: 1 });
    expect(h.emu.get(sandboxId)).toMatchObject({ state: "paused" });
    expect(h.emu.isAlive(sandboxId)).toBe(true);

    const run = await alice().query(api.runs.getRun, { sandboxRunId });
    expect(run).toMatchObject({ status: "paused", onIdle: "pause", pausedAt: Date.now() });
    const mine = await alice().query(api.runs.listMyRuns, { paginationOpts: { numItems: 5, cursor: null } });
    expect(mine.page[0]).toMatchObject({ _id: sandboxRunId, status: "paused" });
    const events = await alice().query(api.runs.listRunEvents, {
      sandboxRunId,
      paginationOpts: { numItems: 20, cursor: null },
    });
    expect(events.page.map((e) => `${e.kind}:${e.to ?? e.detail ?? ""}`).slice(0, 3)).toEqual([
      "transition:paused",
      "pause:paused",
      "transition:pausing",
    ]);
    // The kill sweep leaves it alone, even past the idle timeout.
    h.clock.advance(20 * 60_000);
    await killSweep();
    expect(await status(sandboxRunId)).toBe("paused");
    expect(h.emu.isAlive(sandboxId)).toBe(true);
  });

  it("SANDBOX_IDLE_ACTION=pause is the default for starts; onIdle kill overrides it; kill-policy runs are killed as before", async () => {
    vi.stubEnv("SANDBOX_IDLE_ACTION", "pause");
    const paused = await start();
    const killed = await start({ onIdle: "kill" });
    expect((await getRun(h.t, paused.sandboxRunId)).onIdle).toBe("pause");
    expect((await getRun(h.t, killed.sandboxRunId)).onIdle).toBe("kill");
    h.clock.advance(PAUSE_IDLE_MS);
    await pauseLane();
    expect(await status(paused.sandboxRunId)).toBe("paused");
    expect(await status(killed.sandboxRunId)).toBe("running");
    h.clock.advance(600_000 - PAUSE_AFTER_MS);
    await killSweep();
    expect(await getRun(h.t, killed.sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
    expect(h.emu.isAlive(killed.sandboxId)).toBe(false);
    expect(await status(paused.sandboxRunId)).toBe("paused");
  });

  it("a bad SANDBOX_IDLE_ACTION, or a pause not before the idle timeout, is CONFIG_INVALID", async () => {
    vi.stubEnv("SANDBOX_IDLE_ACTION", "hibernate");
    expect((await convexErrorOf(start())).message).toMatch(/^SANDBOX_IDLE_ACTION:/);
    vi.stubEnv("SANDBOX_IDLE_ACTION", "pause");
    vi.stubEnv("SANDBOX_PAUSE_AFTER_IDLE_MS", "600000");
    expect((await convexErrorOf(start())).message).toMatch(/^SANDBOX_PAUSE_AFTER_IDLE_MS:/);
  });

  it("resumeSandboxRun resumes (201), is idempotent, counts as activity; heartbeat never resumes", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    h.clock.advance(10 * 60_000);
    expect(await alice().mutation(api.runs.heartbeat, { sandboxRunId })).toMatchObject({ status: "paused" });
    expect(h.emu.get(sandboxId)!.state).toBe("paused");

    expect(await resume(sandboxRunId)).toEqual({ status: "running", sandboxId });
    expect(h.emu.calls.filter((c) => c.endpoint === "connect").map((c) => c.status)).toEqual([201]);
    expect(h.emu.get(sandboxId)!.state).toBe("running");
    const run = await getRun(h.t, sandboxRunId);
    expect(run.status).toBe("running");
    expect(Date.now() - run.lastActivityAt).toBeLessThan(10);
    expect(run.sandboxExpiresAt).toBe(h.emu.get(sandboxId)!.endAt);
    // Again: answers at once, no second E2B call.
    expect(await resume(sandboxRunId)).toEqual({ status: "running", sandboxId });
    expect(h.emu.callCount("connect")).toBe(1);
    // Activity: not paused by the next pass, paused again after a whole idle period.
    h.clock.advance(SWEEP_MS);
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("running");
    h.clock.advance(PAUSE_IDLE_MS);
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("paused");
  });

  it("runCommand on a paused run resumes it first, then runs the command", async () => {
    const { sandboxRunId } = await pausedRun();
    const r = await command(sandboxRunId, "echo back");
    expect(r).toMatchObject({ status: "finished", exitCode: 0, stdout: "back\n" });
    expect(await status(sandboxRunId)).toBe("running");
    expect(await transitions(sandboxRunId)).toEqual([
      "booting",
      "running",
      "pausing",
      "paused",
      "resuming",
      "running",
    ]);
  });

  it("stopSandboxRun on a paused run kills it: the snapshot is deleted, the run ends stopped", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    expect(await stop(sandboxRunId)).toEqual({ status: "stopped" });
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "user" });
    expect(await convexErrorOf(resume(sandboxRunId))).toMatchObject({ code: "RUN_ENDED" });
  });

  it("a run paused past SANDBOX_PAUSED_RETENTION_MS is killed within one sweep interval: stopped, paused_expired", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    const pausedAt = h.emu.get(sandboxId)!.endAt; // the emulator reports the pause time
    h.clock.advance(RETENTION_MS - 1);
    await pauseLane();
    expect(h.emu.isAlive(sandboxId)).toBe(true);
    h.clock.advance(SWEEP_MS);
    await pauseLane();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(h.emu.get(sandboxId)!.diedAt! - pausedAt).toBeLessThanOrEqual(RETENTION_MS + SWEEP_MS);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "paused_expired" });
  });

  it("max lifetime counts running time only: paused time does not use it up", async () => {
    const { sandboxRunId } = await start({ onIdle: "pause" });
    h.clock.advance(PAUSE_IDLE_MS);
    await pauseLane(); // ran 5 min of 60
    h.clock.advance(RETENTION_MS - 60_000); // paused 59 min
    await resume(sandboxRunId);
    const run = await getRun(h.t, sandboxRunId);
    // 60 min of max lifetime, minus the ~5 min it ran; the 59 paused minutes do not count.
    const leftMs = run.deadlineAt - Date.now();
    expect(Math.abs(leftMs - (3_600_000 - PAUSE_IDLE_MS))).toBeLessThan(10);
    // The user stays active (heartbeats, sweeps extend the sandbox) until just before it runs out.
    for (let spent = 0; spent + 4 * 60_000 < leftMs; spent += 4 * 60_000) {
      h.clock.advance(4 * 60_000);
      await alice().mutation(api.runs.heartbeat, { sandboxRunId });
      await killSweep();
      expect(await status(sandboxRunId)).toBe("running");
    }
    h.clock.advance(4 * 60_000);
    await alice().mutation(api.runs.heartbeat, { sandboxRunId });
    await killSweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "max_lifetime" });
  });
});

describe("resumeSandboxRun's surface", () => {
  it("owner only; bad or foreign ids answer NOT_FOUND; a running run answers at once; a booting or ended one refuses", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    for (const id of ["", "nope", "x".repeat(200)]) {
      expect(await convexErrorOf(resume(id))).toMatchObject({ code: "NOT_FOUND" });
    }
    const bob = h.t.withIdentity({ subject: "bob" });
    const asBob = bob.action(api.actions.resumeSandboxRun.resumeSandboxRun, { sandboxRunId });
    expect(await convexErrorOf(asBob)).toEqual({ code: "NOT_FOUND", message: "No such sandbox run" });
    const anonymous = h.t.action(api.actions.resumeSandboxRun.resumeSandboxRun, { sandboxRunId });
    expect(await convexErrorOf(anonymous)).toMatchObject({ code: "UNAUTHENTICATED" });
    expect(h.emu.get(sandboxId)!.state).toBe("paused");
    expect(h.emu.callCount("connect")).toBe(0);

    const killPolicy = await start({ onIdle: "kill" });
    expect(await resume(killPolicy.sandboxRunId)).toEqual({
      status: "running",
      sandboxId: killPolicy.sandboxId,
    });
    expect(h.emu.callCount("connect")).toBe(0);
    const booting = await h.t.run((ctx) =>
      ctx.db.insert("sandboxRuns", {
        ownerId: "https://convex.test|alice",
        template: "base",
        status: "booting",
        createdAt: Date.now(),
        lastActivityAt: Date.now(),
        deadlineAt: Date.now() + 60_000,
        killAttempts: 0,
      }),
    );
    expect(await convexErrorOf(resume(booting))).toMatchObject({ code: "RUN_NOT_RUNNING" });
    await stop(killPolicy.sandboxRunId);
    expect(await convexErrorOf(resume(killPolicy.sandboxRunId))).toMatchObject({ code: "RUN_ENDED" });
  });

  it("an idempotent start replayed while its run is paused answers the run, not an error", async () => {
    const first = await alice().action(api.actions.startSandboxRun.startSandboxRun, {
      onIdle: "pause",
      idempotencyKey: "k-1",
    });
    h.clock.advance(PAUSE_IDLE_MS);
    await pauseLane();
    const again = await alice().action(api.actions.startSandboxRun.startSandboxRun, {
      onIdle: "pause",
      idempotencyKey: "k-1",
    });
    expect(again).toEqual(first);
    expect(h.emu.callCount("create")).toBe(1);
  });
});

describe("pause faults", () => {
  it("pause answers 500 (not paused): the run stays pausing, the next pass asks again", async () => {
    const { sandboxRunId, sandboxId } = await start({ onIdle: "pause" });
    h.clock.advance(PAUSE_IDLE_MS);
    h.emu.fault("pause", { status: 500 });
    await pauseLane();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "pausing", pauseAttempts: 1 });
    expect(h.emu.get(sandboxId)!.state).toBe("running");
    h.clock.advance(SWEEP_MS);
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("paused");
    expect(h.emu.get(sandboxId)!.state).toBe("paused");
  });

  it("pause answers 409 (already paused at E2B): recorded as paused", async () => {
    const { sandboxRunId, sandboxId } = await start({ onIdle: "pause" });
    await Sandbox.pause(sandboxId, sdkOpts()); // paused behind our back
    h.clock.advance(PAUSE_IDLE_MS);
    await pauseLane();
    expect(h.emu.calls.filter((c) => c.endpoint === "pause").map((c) => c.status)).toEqual([204, 409]);
    expect(await status(sandboxRunId)).toBe("paused");
  });

  it("pause answers 404: not taken as proof; a kill confirms before the run ends", async () => {
    const { sandboxRunId, sandboxId } = await start({ onIdle: "pause" });
    h.emu.killDirect(sandboxId);
    h.clock.advance(PAUSE_IDLE_MS);
    await pauseLane();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopping", endReason: "sandbox_gone" });
    await killSweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
    expect(h.emu.calls.filter((c) => c.endpoint === "kill").map((c) => c.status)).toEqual([404]);
  });

  it("pause times out without effect: stays pausing; asked again, paused", async () => {
    const { sandboxRunId, sandboxId } = await start({ onIdle: "pause" });
    h.clock.advance(PAUSE_IDLE_MS);
    h.emu.fault("pause", { delayMs: 2_300, status: 500 }); // answers (500) after our 2 s deadline
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("pausing");
    h.clock.advance(SWEEP_MS);
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("paused");
    expect(h.emu.get(sandboxId)!.state).toBe("paused");
  });

  it("pause response lost (it paused, we do not know): asked again, E2B's 409 confirms it", async () => {
    const { sandboxRunId, sandboxId } = await start({ onIdle: "pause" });
    h.clock.advance(PAUSE_IDLE_MS);
    h.emu.fault("pause", { dropResponse: true });
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("pausing");
    expect(h.emu.get(sandboxId)!.state).toBe("paused");
    h.clock.advance(SWEEP_MS);
    await pauseLane();
    expect(h.emu.calls.filter((c) => c.endpoint === "pause").map((c) => c.status)).toEqual([0, 409]);
    expect(await status(sandboxRunId)).toBe("paused");
  });

  it("the pass dies between the pause and its record: the lease passes, the next pass confirms (409)", async () => {
    const { sandboxRunId } = await start({ onIdle: "pause" });
    h.clock.advance(PAUSE_IDLE_MS);
    failNext(pauses.settlePausePage);
    await expect(pauseLane()).rejects.toThrow();
    expect(await status(sandboxRunId)).toBe("pausing");
    h.clock.advance(10_000);
    await pauseLane(); // still leased: nothing asked twice at once
    expect(h.emu.callCount("pause")).toBe(1);
    h.clock.advance(PAST_LEASE_MS);
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("paused");
  });

  it("the user's command arrives while the lane is pausing: it waits for the pause, resumes, runs", async () => {
    const { sandboxRunId, sandboxId } = await start({ onIdle: "pause" });
    h.clock.advance(PAUSE_IDLE_MS);
    h.emu.fault("pause", { delayMs: 300 });
    const lane = pauseLane();
    await vi.waitFor(async () => expect(await status(sandboxRunId)).toBe("pausing"), { interval: 20 });
    const r = await command(sandboxRunId, "echo still-here");
    await lane;
    expect(r).toMatchObject({ status: "finished", stdout: "still-here\n" });
    expect(await status(sandboxRunId)).toBe("running");
    expect(h.emu.get(sandboxId)!.state).toBe("running");
    const order = h.emu.calls.filter((c) => c.endpoint === "pause" || c.endpoint === "connect");
    expect(order.map((c) => `${c.endpoint}:${c.status}`)).toEqual([
      "pause:204",
      "connect:201",
      "connect:200",
    ]);
  });
});

describe("resume faults", () => {
  it("resume answers 404 (snapshot gone): SANDBOX_GONE, and the run ends only after a kill confirms", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    h.emu.killDirect(sandboxId);
    expect(await convexErrorOf(resume(sandboxRunId))).toMatchObject({ code: "SANDBOX_GONE" });
    expect(h.emu.calls.filter((c) => c.endpoint === "kill").map((c) => c.status)).toEqual([404]);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
  });

  it("resume answers 500 (E2B's API answered: no resume of ours at work): the next pass asks E2B, which says paused", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    h.emu.fault("connect", { status: 500 });
    expect(await convexErrorOf(resume(sandboxRunId))).toMatchObject({ code: "E2B_UNAVAILABLE" });
    expect(await status(sandboxRunId)).toBe("resuming");
    h.clock.advance(SWEEP_MS);
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("paused");
    expect(h.emu.get(sandboxId)!.state).toBe("paused");
    expect(await resume(sandboxRunId)).toEqual({ status: "running", sandboxId });
  });

  it("resume answers 502 or 504 (a gateway's answer: E2B may still be resuming): no check until the lease passes", async () => {
    for (const gateway of [502, 504]) {
      const { sandboxRunId, sandboxId } = await pausedRun();
      h.emu.fault("connect", { status: gateway });
      await expect(resume(sandboxRunId)).rejects.toThrow();
      expect(await status(sandboxRunId)).toBe("resuming");
      const checks = h.emu.callCount("getInfo");
      h.clock.advance(SWEEP_MS);
      await pauseLane(); // leased: no check while a connect may be at work at E2B
      expect(h.emu.callCount("getInfo")).toBe(checks);
      h.clock.advance(PAST_LEASE_MS);
      await pauseLane();
      expect(await status(sandboxRunId)).toBe("paused");
      expect(h.emu.get(sandboxId)!.state).toBe("paused");
      await stop(sandboxRunId);
    }
  });

  it("promise: a resume answering 500 just before retention ends never keeps the snapshot past retention + one sweep", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    const pausedAt = h.emu.get(sandboxId)!.endAt;
    h.clock.advance(RETENTION_MS - 10_000);
    await pauseLane();
    h.emu.fault("connect", { status: 500 });
    await expect(resume(sandboxRunId)).rejects.toThrow();
    for (let tick = 0; tick < 3 && h.emu.isAlive(sandboxId); tick++) {
      h.clock.advance(SWEEP_MS);
      await pauseLane();
    }
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(h.emu.get(sandboxId)!.diedAt! - pausedAt).toBeLessThanOrEqual(RETENTION_MS + SWEEP_MS);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "paused_expired" });
  });

  it("resume times out or its response is lost (it resumed and bills): a retry joins it; unretried, the lane finds it running and pauses it again", async () => {
    const a = await pausedRun();
    h.emu.fault("connect", { dropResponse: true });
    expect(await convexErrorOf(resume(a.sandboxRunId))).toMatchObject({ code: "E2B_UNAVAILABLE" });
    expect(h.emu.get(a.sandboxId)!.state).toBe("running");
    expect(await status(a.sandboxRunId)).toBe("resuming");
    expect(await resume(a.sandboxRunId)).toEqual({ status: "running", sandboxId: a.sandboxId });

    const b = await pausedRun();
    h.emu.fault("connect", { delayMs: 2_300 }); // resumes after our 2 s deadline
    expect(await convexErrorOf(resume(b.sandboxRunId))).toMatchObject({ code: "E2B_TIMEOUT" });
    await vi.waitFor(() => expect(h.emu.get(b.sandboxId)!.state).toBe("running"), { interval: 20 });
    h.clock.advance(PAST_LEASE_MS);
    await pauseLane();
    expect(h.emu.calls.filter((c) => c.endpoint === "getInfo").map((c) => c.status)).toEqual([200]);
    expect(await status(b.sandboxRunId)).toBe("running");
    h.clock.advance(PAUSE_IDLE_MS);
    await pauseLane();
    expect(await status(b.sandboxRunId)).toBe("paused");
    expect(h.emu.get(b.sandboxId)!.state).toBe("paused");
  });

  it("a resume that starts while the lane looks up an unanswered one wins: the older lookup is not recorded", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    h.emu.fault("connect", { status: 500 });
    await convexErrorOf(resume(sandboxRunId));
    h.clock.advance(PAST_LEASE_MS);
    h.emu.fault("getInfo", { delayMs: 300 }); // the lookup answers "paused" while the new connect waits
    h.emu.fault("connect", { delayMs: 700 });
    const lane = pauseLane();
    await vi.waitFor(() => expect(h.emu.callCount("getInfo")).toBe(1), { interval: 10 });
    const again = resume(sandboxRunId);
    await lane;
    expect(await again).toEqual({ status: "running", sandboxId });
    expect(await status(sandboxRunId)).toBe("running");
    expect(h.emu.get(sandboxId)!.state).toBe("running");
  });

  it("the action dies between the resume and its record: the lane finds it running after the lease", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    failNext(pauses.recordResumed);
    await expect(resume(sandboxRunId)).rejects.toThrow();
    expect(h.emu.get(sandboxId)!.state).toBe("running");
    expect(await status(sandboxRunId)).toBe("resuming");
    h.clock.advance(PAST_LEASE_MS);
    await pauseLane();
    expect(await status(sandboxRunId)).toBe("running");
  });

  it("a stop races a resume: no kill while the resume may be at work; the resume's answer triggers the kill", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    h.emu.fault("connect", { delayMs: 250 });
    const resuming = resume(sandboxRunId);
    await vi.waitFor(async () => expect(await status(sandboxRunId)).toBe("resuming"), { interval: 10 });
    // Were a kill to reach E2B mid-resume, E2B's race (infra #3636) would resurrect the sandbox.
    h.emu.fault("kill", { raceResume: true });
    expect(await stop(sandboxRunId)).toEqual({ status: "stopping" });
    expect(h.emu.callCount("kill")).toBe(0);
    expect(await convexErrorOf(resuming)).toMatchObject({ code: "RUN_ENDED" });
    const order = h.emu.calls.filter((c) => c.endpoint === "connect" || c.endpoint === "kill");
    expect(order.map((c) => `${c.endpoint}:${c.status}`)).toEqual(["connect:201", "kill:204"]);
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "user" });
  });

  it("a stop races a resume whose action then dies: the sweep kills once the resume's lease has passed", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    h.emu.fault("connect", { delayMs: 250 });
    failNext(pauses.recordResumed);
    const resuming = resume(sandboxRunId);
    await vi.waitFor(async () => expect(await status(sandboxRunId)).toBe("resuming"), { interval: 10 });
    h.emu.fault("kill", { raceResume: true });
    await stop(sandboxRunId);
    await expect(resuming).rejects.toThrow();
    expect(h.emu.get(sandboxId)!.state).toBe("running");
    await killSweep();
    expect(h.emu.callCount("kill")).toBe(0); // not before the lease
    expect(await stop(sandboxRunId)).toEqual({ status: "stopping" }); // nor on a repeated stop
    expect(h.emu.callCount("kill")).toBe(0);
    h.clock.advance(PAST_LEASE_MS);
    await killSweep();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "user" });
  });
});

describe("kills of paused sandboxes", () => {
  it("a kill of a paused sandbox fails (twice): the run stays stopping, the sweep retries until E2B confirms", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    h.clock.advance(RETENTION_MS);
    h.emu.fault("kill", { status: 500, times: 2 }); // the pass retries once at once
    await pauseLane();
    expect(h.emu.callCount("kill")).toBe(2);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({
      status: "stopping",
      endReason: "paused_expired",
    });
    expect(h.emu.get(sandboxId)!.state).toBe("paused");
    h.clock.advance(SWEEP_MS);
    await killSweep();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "paused_expired" });
  });

  it("a pause that never gets an answer still ends at retention: the run is killed, not asked again", async () => {
    const { sandboxRunId, sandboxId } = await start({ onIdle: "pause" });
    h.clock.advance(PAUSE_IDLE_MS);
    h.emu.fault("pause", { dropResponse: true }); // it paused; we never hear so
    h.emu.fault("pause", { status: 500, times: Infinity }); // and every later ask fails
    await pauseLane();
    const pausedAt = h.emu.get(sandboxId)!.endAt;
    for (let waited = 0; waited < RETENTION_MS; waited += 10 * 60_000) {
      h.clock.advance(10 * 60_000);
      await pauseLane();
    }
    expect(await status(sandboxRunId)).not.toBe("pausing");
    h.clock.advance(SWEEP_MS);
    await pauseLane();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(h.emu.get(sandboxId)!.diedAt! - pausedAt).toBeLessThanOrEqual(RETENTION_MS + SWEEP_MS);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "paused_expired" });
  });

  it("the pass dies between the retention kill and its record: the sweep kills again, 404 confirms", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    h.clock.advance(RETENTION_MS);
    failNext(pauses.settlePausePage);
    await expect(pauseLane()).rejects.toThrow();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await status(sandboxRunId)).toBe("stopping");
    h.clock.advance(PAST_LEASE_MS);
    await killSweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "paused_expired" });
  });

  it("once paused, a 404 from setTimeout is not 'gone': the run is killed (confirmed) before it ends", async () => {
    const { sandboxRunId, sandboxId } = await pausedRun();
    await resume(sandboxRunId);
    // E2B: a resumed sandbox whose lifetime ends comes back as paused (its snapshot is kept).
    await Sandbox.pause(sandboxId, sdkOpts());
    h.clock.advance(7 * 60_000);
    await alice().mutation(api.runs.heartbeat, { sandboxRunId });
    await killSweep(); // the extension answers 404
    expect(h.emu.calls.filter((c) => c.endpoint === "setTimeout").at(-1)!.status).toBe(404);
    expect(h.emu.isAlive(sandboxId)).toBe(true);
    expect(await status(sandboxRunId)).toBe("stopping");
    await killSweep();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
  });

  it("the reconciler spares a paused run's own sandbox and reaps paused sandboxes no paused run owns", async () => {
    const mine = await pausedRun();
    const ended = await pausedRun();
    await h.t.run(async (ctx) => {
      await ctx.db.patch(ended.sandboxRunId, { status: "stopped", endReason: "user", endedAt: Date.now() });
    });
    const stray = h.emu.seed({
      state: "paused",
      metadata: { [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: "no-such-run" },
    });
    h.clock.advance(5 * 60_000);
    await reconcile();
    expect(h.emu.isAlive(mine.sandboxId)).toBe(true);
    expect(await status(mine.sandboxRunId)).toBe("paused");
    expect(h.emu.isAlive(ended.sandboxId)).toBe(false);
    expect(h.emu.isAlive(stray.sandboxID)).toBe(false);
  });
});
