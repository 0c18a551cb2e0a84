// @vitest-environment node
// What a frontend does with typed api.* calls: ownership, idempotent start, quotas, stop,
// heartbeat, commands (through the SDK and the emulator's envd), the event log and stats.
import { describe, expect, it, vi } from "vitest";
import { api, internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import * as lifecycle from "../convex/lifecycle";
import {
  allRuns,
  clock,
  convexErrorOf,
  emu,
  failNext,
  getRun,
  t,
  useHarness,
  captureWarnings,
} from "./helpers";

const as = (subject: string) => t.withIdentity({ subject });
const alice = () => as("alice");
const bob = () => as("bob");
const start = (who = alice(), args: { template?: string; idempotencyKey?: string } = {}) =>
  who.action(api.actions.startSandboxRun.startSandboxRun, args);
const stop = (id: string, who = alice()) =>
  who.action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId: id });
const sweep = () => t.action(internal.actions.killIdleSandboxes.killIdleSandboxes, {});
const page = { numItems: 10, cursor: null };
const IDLE_MS = 600_000;

useHarness();

describe("ownership", () => {
  it("another user's run answers exactly like a missing one, on every function", async () => {
    const { sandboxRunId, sandboxId } = await start();
    const calls = [
      () => bob().query(api.runs.getRun, { sandboxRunId }),
      () => bob().query(api.runs.listRunEvents, { sandboxRunId, paginationOpts: page }),
      () => bob().query(api.runs.listRunCommands, { sandboxRunId, paginationOpts: page }),
      () => bob().mutation(api.runs.heartbeat, { sandboxRunId }),
      () => stop(sandboxRunId, bob()),
      () => bob().action(api.actions.runCommand.runCommand, { sandboxRunId, command: "echo hi" }),
    ];
    for (const call of calls) {
      const err = await convexErrorOf(call());
      expect(err).toEqual({ code: "NOT_FOUND", message: "No such sandbox run" });
    }
    // A deleted run answers the same.
    const other = await start();
    await t.run((ctx) => ctx.db.delete(other.sandboxRunId));
    expect(await convexErrorOf(alice().query(api.runs.getRun, { sandboxRunId: other.sandboxRunId }))).toEqual(
      {
        code: "NOT_FOUND",
        message: "No such sandbox run",
      },
    );
    expect(emu.isAlive(sandboxId)).toBe(true);
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "running" });
  });

  it("listMyRuns shows only the caller's runs, newest first, paginated, without owner tokens", async () => {
    const a1 = await start();
    clock.advance(1_000);
    await start(bob());
    clock.advance(1_000);
    const a2 = await start();
    const first = await alice().query(api.runs.listMyRuns, { paginationOpts: { numItems: 1, cursor: null } });
    expect(first.page.map((r) => r._id)).toEqual([a2.sandboxRunId]);
    expect(first.isDone).toBe(false);
    const rest = await alice().query(api.runs.listMyRuns, {
      paginationOpts: { numItems: 10, cursor: first.continueCursor },
    });
    expect(rest.page.map((r) => r._id)).toEqual([a1.sandboxRunId]);
    expect(JSON.stringify([first.page, rest.page])).not.toContain("alice");
  });
});

describe("idempotent start", () => {
  it("the same key gives the same run back, never a second sandbox", async () => {
    const a = await start(alice(), { idempotencyKey: "k1" });
    const b = await start(alice(), { idempotencyKey: "k1" });
    expect(b).toEqual(a);
    expect(emu.callCount("create")).toBe(1);
    // The key is per user.
    const c = await start(bob(), { idempotencyKey: "k1" });
    expect(c.sandboxRunId).not.toBe(a.sandboxRunId);
    expect(emu.callCount("create")).toBe(2);
  });

  it("two racing calls with one key create one sandbox", async () => {
    const [a, b] = await Promise.all([
      start(alice(), { idempotencyKey: "race" }),
      start(alice(), { idempotencyKey: "race" }),
    ]);
    expect(a).toEqual(b);
    expect(emu.all()).toHaveLength(1);
    expect(await allRuns(t)).toHaveLength(1);
  });

  it("when the first call died mid-way: still booting → START_IN_PROGRESS; ended without a sandbox → RUN_ENDED, no second sandbox", async () => {
    const warned = captureWarnings();
    vi.stubEnv("SANDBOX_BOOT_TIMEOUT_MS", "1000"); // the replay waits at most this long (real ms)
    failNext(lifecycle.storeSandboxId);
    failNext(lifecycle.recordKill);
    emu.fault("kill", { status: 500 });
    await expect(start(alice(), { idempotencyKey: "k" })).rejects.toThrow();
    expect(warned()).toContainEqual(expect.stringContaining("start cleanup record failed"));
    const inProgress = await convexErrorOf(start(alice(), { idempotencyKey: "k" }));
    expect(inProgress.code).toBe("START_IN_PROGRESS");
    clock.advance(61_000);
    await sweep(); // reaps the dead start's sandbox by tag
    expect(emu.alive()).toHaveLength(0);
    const ended = await convexErrorOf(start(alice(), { idempotencyKey: "k" }));
    expect(ended.code).toBe("RUN_ENDED");
    expect(ended.message).toContain("without a sandbox");
    expect(emu.callCount("create")).toBe(1);
    expect(await allRuns(t)).toHaveLength(1);
  });
});

describe("quotas", () => {
  it("at most SANDBOX_MAX_ACTIVE_PER_USER non-terminal runs; a refusal writes nothing", async () => {
    vi.stubEnv("SANDBOX_MAX_ACTIVE_PER_USER", "2");
    const first = await start();
    await start();
    const events = (await t.run((ctx) => ctx.db.query("runEvents").collect())).length;
    const err = await convexErrorOf(start());
    expect(err.code).toBe("QUOTA_EXCEEDED");
    expect(await allRuns(t)).toHaveLength(2);
    expect(emu.callCount("create")).toBe(2);
    expect((await t.run((ctx) => ctx.db.query("runEvents").collect())).length).toBe(events);
    await start(bob()); // others are not affected
    await stop(first.sandboxRunId);
    await start(); // a slot is free again
  });

  it("per-user start rate: RATE_LIMITED with retryAfterMs", async () => {
    vi.stubEnv("SANDBOX_STARTS_PER_MINUTE_PER_USER", "2");
    await start();
    clock.advance(10_000);
    await start();
    const err = await convexErrorOf(start());
    expect(err.code).toBe("RATE_LIMITED");
    expect(err.retryAfterMs).toBeGreaterThan(49_900);
    expect(err.retryAfterMs).toBeLessThanOrEqual(50_000);
    clock.advance(50_001);
    await start();
  });

  it("global create throttle (E2B_CREATES_PER_SECOND): spaced creates, refusal past the wait bound", async () => {
    vi.stubEnv("E2B_CREATES_PER_SECOND", "0.1"); // one create per 10 s
    await start();
    const err = await convexErrorOf(start(bob()));
    expect(err.code).toBe("RATE_LIMITED");
    expect(err.retryAfterMs).toBeGreaterThan(4_900);
    expect(err.retryAfterMs).toBeLessThanOrEqual(5_000);
    expect(emu.callCount("create")).toBe(1);
    clock.advance(10_000);
    await start(bob());
  });

  it("E2B's 429 backs every start off", async () => {
    emu.fault("create", { status: 429 });
    const err = await convexErrorOf(start());
    expect(err).toMatchObject({ code: "RATE_LIMITED", retryAfterMs: 10_000 });
    const next = await convexErrorOf(start(bob()));
    expect(next.code).toBe("RATE_LIMITED");
    expect(emu.callCount("create")).toBe(1);
    clock.advance(10_000);
    await start(bob());
  });
});

describe("stopSandboxRun", () => {
  it("kills, then records stopped/user; idempotent", async () => {
    const { sandboxRunId, sandboxId } = await start();
    expect(await stop(sandboxRunId)).toEqual({ status: "stopped" });
    expect(emu.isAlive(sandboxId)).toBe(false);
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "user" });
    const kills = emu.callCount("kill");
    expect(await stop(sandboxRunId)).toEqual({ status: "stopped" });
    expect(emu.callCount("kill")).toBe(kills);
  });

  it("a failed kill leaves the run stopping for the sweep", async () => {
    const { sandboxRunId, sandboxId } = await start();
    emu.fault("kill", { status: 503 });
    expect(await stop(sandboxRunId)).toEqual({ status: "stopping" });
    expect(emu.isAlive(sandboxId)).toBe(true);
    clock.advance(5_001);
    await sweep();
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "user" });
    expect(emu.isAlive(sandboxId)).toBe(false);
  });
});

describe("heartbeat", () => {
  it("keeps a run from going idle, with throttled writes", async () => {
    const { sandboxRunId, sandboxId } = await start();
    const hb = () => alice().mutation(api.runs.heartbeat, { sandboxRunId });
    clock.advance(5_000);
    expect((await hb()).lastActivityAt).toBe((await getRun(t, sandboxRunId)).startedAt); // within 15 s: no write
    clock.advance(10_100);
    const moved = await hb();
    expect(moved.lastActivityAt).toBe(Date.now());
    for (let m = 0; m < 15; m++) {
      clock.advance(60_000);
      await hb();
      await sweep();
    }
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "running" });
    expect(emu.isAlive(sandboxId)).toBe(true); // its E2B lifetime was extended through the sweep
    clock.advance(IDLE_MS + 1);
    await sweep();
    expect(await hb()).toMatchObject({ status: "stopped" });
  });
});

describe("runCommand", () => {
  const run = (sandboxRunId: string, command: string, timeoutMs?: number) =>
    alice().action(api.actions.runCommand.runCommand, {
      sandboxRunId,
      command,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    });

  it("runs through the real SDK, stores the record, counts as activity", async () => {
    const { sandboxRunId } = await start();
    clock.advance(120_000);
    const r = await run(sandboxRunId, "echo hello; echo oops >&2; exit 3");
    expect(r).toMatchObject({
      status: "finished",
      exitCode: 3,
      stdout: "hello\n",
      stderr: "oops\n",
      stdoutTruncated: false,
    });
    const runDoc = await getRun(t, sandboxRunId);
    expect(runDoc.lastActivityAt).toBe(Date.now());
    const cmds = await alice().query(api.runs.listRunCommands, { sandboxRunId, paginationOpts: page });
    expect(cmds.page).toMatchObject([
      { command: "echo hello; echo oops >&2; exit 3", status: "finished", exitCode: 3 },
    ]);
    expect(emu.callCount("connect")).toBe(1);
  });

  it("caps stdout/stderr at the configured size with a truncated flag", async () => {
    vi.stubEnv("SANDBOX_COMMAND_OUTPUT_MAX_BYTES", "100");
    const { sandboxRunId } = await start();
    const r = await run(sandboxRunId, "seq 1 1000");
    expect(r.stdoutTruncated).toBe(true);
    expect(Buffer.byteLength(r.stdout)).toBeLessThanOrEqual(100);
    expect(r.stdout.startsWith("1\n2\n3\n")).toBe(true);
  });

  it("a command past its timeout is recorded timed_out", async () => {
    const { sandboxRunId } = await start();
    const r = await run(sandboxRunId, "echo started; sleep 5", 1_000);
    expect(r.status).toBe("timed_out");
    expect(r.exitCode).toBeUndefined();
  });

  it("only running runs; a vanished sandbox ends the run sandbox_gone", async () => {
    const { sandboxRunId, sandboxId } = await start();
    emu.killDirect(sandboxId);
    const gone = await convexErrorOf(run(sandboxRunId, "echo hi"));
    expect(gone.code).toBe("SANDBOX_GONE");
    expect(await getRun(t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
    const notRunning = await convexErrorOf(run(sandboxRunId, "echo hi"));
    expect(notRunning.code).toBe("RUN_NOT_RUNNING");
  });

  it("no secret — E2B key or envd access token — is ever stored or returned", async () => {
    const { sandboxRunId, sandboxId } = await start();
    const r = await run(sandboxRunId, "echo ok");
    const token = emu.get(sandboxId)!.envdAccessToken;
    expect(token.length).toBeGreaterThan(8);
    const everything = await t.run(async (ctx) => ({
      runs: await ctx.db.query("sandboxRuns").collect(),
      events: await ctx.db.query("runEvents").collect(),
      commands: await ctx.db.query("commands").collect(),
      orphans: await ctx.db.query("orphanSandboxes").collect(),
      throttle: await ctx.db.query("createThrottle").collect(),
    }));
    const dump = JSON.stringify([everything, r, await alice().query(api.runs.getRun, { sandboxRunId })]);
    expect(dump).not.toContain(token);
    expect(dump).not.toContain("e2b_test_key");
  });
});

describe("event log and stats", () => {
  it("records every transition and kill; stats add them up", async () => {
    const a = await start();
    const b = await start();
    emu.fault("kill", { status: 500 });
    await stop(a.sandboxRunId);
    clock.advance(5_001);
    await sweep();
    await stop(b.sandboxRunId);
    const events = await alice().query(api.runs.listRunEvents, {
      sandboxRunId: a.sandboxRunId,
      paginationOpts: { numItems: 50, cursor: null },
    });
    const story = events.page.map((e) => `${e.kind}:${e.to ?? e.kill?.outcome ?? ""}`).reverse();
    expect(story).toEqual([
      "transition:booting",
      "sandbox_recorded:",
      "transition:running",
      "transition:stopping",
      "kill:failed",
      "kill:killed",
      "transition:stopped",
    ]);
    const s = await t.action(internal.admin.stats, {});
    expect(s.runsByStatus).toEqual({ stopped: 2 });
    expect(s.killsByOutcome).toEqual({ failed: 1, killed: 2 });
    expect(s.sandboxSecondsByTemplate.base).toBeGreaterThan(0);
    expect(s.orphansReaped).toBe(0);
  });
});

export type { Id };
