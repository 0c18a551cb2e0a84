// @vitest-environment node
// Issue 5, "sweeps that stay cheap at 100,000 runs": with convex-test's transaction limits on and
// lowered to a few hundred documents per transaction, the real sweep (several pages, through the
// real e2b SDK against the emulator) reaps exactly the idle runs among 100,000 finished ones.
// Any transaction that scanned the finished runs would throw; the second test shows the same
// limits do throw for such a scan, so passing here means every sweep transaction is bounded.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import * as lifecycle from "../convex/lifecycle";
import {
  diffFinishedRuns,
  getRuns,
  type IdleRun,
  seedFinishedRuns,
  seedIdleRuns,
} from "../bench/lib/scaleSeed";
import type { E2BEmulator } from "./emulator/e2bEmulator";
import {
  applyTestEnv,
  NAMESPACE,
  newConvex,
  startEmulator,
  type TestConvex,
  useSimulatedClock,
} from "./helpers";

const FINISHED = 100_000;
const IDLE = 100;
const PAGE_SIZE = 25; // 100 idle runs → 4 full pages, then an empty one
const IDLE_MS = 600_000;
const MAX_LIFETIME_MS = 3_600_000;
/**
 * Lowered from Convex's 32,000 read / 16,000 written / 4,096 ranges per transaction. A sweep
 * transaction at this page size uses at most ~125 / 75 / 50 (measured with the bench's
 * instrumentation); one scan of the finished runs would need 100,000.
 */
const LIMITS = { documentsRead: 250, documentsWritten: 250, databaseQueries: 250 };
const BATCH = 250; // documents per setup/check transaction: at the limits

let emu: E2BEmulator;
let stopEmu: () => Promise<void>;
let t: TestConvex;
let now: number;
let finishedIds: Id<"sandboxRuns">[];
let idle: IdleRun[];

const sweep = () => t.action(internal.actions.killIdleSandboxes.killIdleSandboxes, {});
const scheduledJobs = () => t.run((ctx) => ctx.db.system.query("_scheduled_functions").take(200));

/** Waits for the sweep's self-scheduled pages (real timers, runAfter(0)) and theirs, until none is left. */
async function drainScheduled() {
  for (let i = 0; i < 20; i++) {
    await t.finishAllScheduledFunctions(() => {});
    const open = (await scheduledJobs()).filter(
      (j) => j.state.kind === "pending" || j.state.kind === "inProgress",
    );
    if (open.length === 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("scheduled sweep pages did not finish");
}

beforeAll(async () => {
  ({ emu, stop: stopEmu } = await startEmulator());
  applyTestEnv({
    SANDBOX_SWEEP_PAGE_SIZE: String(PAGE_SIZE),
    // In-process, convex-test answers each index range by visiting the whole table (~0.2 s at
    // 100,000 runs), synchronously: a page claimed while another page's kills are in flight
    // holds their responses for seconds, and a 5 s deadline would report kills E2B performed
    // as timeouts (they are retried and confirmed by a later sweep: correct, but not this
    // test's subject). Convex's indexes do not stall like that.
    E2B_REQUEST_TIMEOUT_MS: "60000",
  });
  useSimulatedClock();
  now = Date.now();
  t = newConvex({ transactionLimits: LIMITS });
  const t0 = performance.now();
  // t.run is itself a transaction under these limits (convex-test has no unlimited setup path,
  // and another instance cannot share this database), so seeding goes in batches that fit.
  finishedIds = await seedFinishedRuns(t, FINISHED, { now, batch: BATCH });
  idle = await seedIdleRuns(t, emu, IDLE, {
    now,
    namespace: NAMESPACE,
    idleTimeoutMs: IDLE_MS,
    maxLifetimeMs: MAX_LIFETIME_MS,
    sandboxLifetimeMs: 60_000, // = lastActivityAt + idle timeout + slack: what the dead-man switch leaves
    renewDue: true, // extensions are due too: the renew scan fills pages as well
    batch: BATCH,
  });
  // Setup time, for whoever tunes this file (SCALE_TEST_VERBOSE=1); a test run stays quiet.
  if (process.env.SCALE_TEST_VERBOSE)
    console.log(
      `scale.test: seeded ${FINISHED} finished + ${IDLE} idle runs in ${Math.round(performance.now() - t0)} ms`,
    );
}, 120_000);

afterAll(async () => {
  await stopEmu();
  vi.useRealTimers();
  vi.unstubAllEnvs();
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("sweep at scale, under lowered transaction limits", () => {
  it("reaps exactly the 100 idle runs among 100,000 finished ones, in several bounded pages", async () => {
    expect(emu.alive()).toHaveLength(IDLE);
    emu.calls.length = 0;

    const first = await sweep();
    expect(first).toMatchObject({ killed: PAGE_SIZE, failed: 0, more: true });
    await drainScheduled();

    // Every continuation page ran to completion: a limit error inside one would mark it failed.
    const jobs = await scheduledJobs();
    expect(jobs.map((j) => j.state.kind)).toEqual(jobs.map(() => "success"));
    expect(jobs.every((j) => j.name.includes("killIdleSandboxes"))).toBe(true);
    expect(1 + jobs.length).toBeGreaterThanOrEqual(IDLE / PAGE_SIZE + 1); // 4 full pages + the last, empty one

    // The 100 idle runs: stopped for idleness, each sandbox killed exactly once, by id.
    const reaped = await getRuns(
      t,
      idle.map((r) => r.runId),
      BATCH,
    );
    for (const run of reaped) {
      expect(run).toMatchObject({ status: "stopped", endReason: "idle", killAttempts: 0 });
      // The clock is frozen; convex-test may pin a transaction 1 ms later to keep commits ordered.
      expect(run!.endedAt! - now).toBeLessThanOrEqual(1);
      expect(run!.deadlineAt).toBe(run!.endedAt);
      expect(run!.renewAt).toBeUndefined();
    }
    for (const { sandboxId } of idle) expect(emu.get(sandboxId)).toMatchObject({ diedBy: "killed" });
    expect(emu.alive()).toHaveLength(0);
    expect(emu.callCount("kill")).toBe(IDLE);
    expect(emu.callCount()).toBe(IDLE); // no list (every id was known), no extension

    // The 100,000 finished runs: every field as seeded.
    const { checked, problems } = await diffFinishedRuns(t, finishedIds, now, BATCH);
    expect(problems).toEqual([]);
    expect(checked).toBe(FINISHED);

    // Events were written for the idle runs only: claim → stopping, kill, stopping → stopped.
    const idleIds = new Set<string>(idle.map((r) => r.runId));
    const events: { runId?: string; kind: string }[] = [];
    let cursor: string | null = null;
    do {
      const page: { page: { runId?: string; kind: string }[]; isDone: boolean; continueCursor: string } =
        await t.run((ctx) => ctx.db.query("runEvents").paginate({ numItems: BATCH, cursor }));
      events.push(...page.page);
      cursor = page.isDone ? null : page.continueCursor;
    } while (cursor !== null);
    expect(events).toHaveLength(3 * IDLE);
    expect(events.every((e) => e.runId !== undefined && idleIds.has(e.runId))).toBe(true);

    // A second sweep has nothing left to do.
    expect(await sweep()).toEqual({ killed: 0, failed: 0, extended: 0, more: false });
  }, 120_000);

  it("the lowered limits are real: scanning the finished runs, or an oversized setup, throws", async () => {
    const stopped = () =>
      t.run((ctx) =>
        ctx.db
          .query("sandboxRuns")
          .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", "stopped"))
          .collect(),
      );
    await expect(stopped()).rejects.toThrow(
      /Scanned too many documents in a single function execution \(limit: 250\)/,
    );
    // The bound itself is fine.
    const bounded = await t.run((ctx) =>
      ctx.db
        .query("sandboxRuns")
        .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", "stopped"))
        .take(LIMITS.documentsRead),
    );
    expect(bounded).toHaveLength(LIMITS.documentsRead);

    // A sweep page that scanned the finished runs would fail the sweep the same way.
    vi.spyOn(
      lifecycle.claimSweep as unknown as { _handler: (...a: unknown[]) => unknown },
      "_handler",
    ).mockImplementationOnce(async (ctx: unknown) => {
      const { db } = ctx as Parameters<Parameters<typeof t.run>[0]>[0];
      await db
        .query("sandboxRuns")
        .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", "failed"))
        .collect();
      return { kills: [], extends: [], more: false };
    });
    await expect(sweep()).rejects.toThrow(/Scanned too many documents/);

    // Setup transactions are limited too: this is why seeding goes in batches.
    await expect(
      t.run(async (ctx) => {
        for (let i = 0; i <= LIMITS.documentsWritten; i++) {
          await ctx.db.insert("sandboxRuns", {
            ownerId: "x",
            template: "base",
            status: "failed",
            createdAt: now,
            lastActivityAt: now,
            deadlineAt: now,
            killAttempts: 0,
          });
        }
      }),
    ).rejects.toThrow(/Wrote too many documents in a single function execution \(limit: 250\)/);
  }, 60_000);
});
