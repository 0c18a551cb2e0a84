import { convexTest } from "convex-test";
import { afterAll, afterEach, beforeAll, beforeEach, vi } from "vitest";
import schema from "../convex/schema";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { type E2BEmulator, useEmulatorEnv } from "./emulator/e2bEmulator";
import { startEmulatorWithEnvd } from "./emulator/envd";
import { graceFloorMs } from "../convex/model/config";

// convex-test finds the functions root through convex/_generated, so the glob includes it.
export const modules = import.meta.glob("../convex/**/*.*s");

export const NAMESPACE = "test-ns";
export const TAG_NAMESPACE = "convexNamespace";
export const TAG_RUN_ID = "convexRunId";

/** Test defaults: short enough to reason about, the same shape as production's. */
export const TEST_ENV = {
  SANDBOX_NAMESPACE: NAMESPACE,
  SANDBOX_TEMPLATES: "base,python",
  SANDBOX_BOOT_TIMEOUT_MS: "60000",
  SANDBOX_IDLE_TIMEOUT_MS: "600000",
  SANDBOX_MAX_LIFETIME_MS: "3600000",
  E2B_REQUEST_TIMEOUT_MS: "5000",
  // Quotas out of the way unless a test is about them.
  E2B_CREATES_PER_SECOND: "1000",
  SANDBOX_MAX_ACTIVE_PER_USER: "100",
  SANDBOX_STARTS_PER_MINUTE_PER_USER: "1000",
  SANDBOX_MAX_QUEUED_STARTS_PER_USER: "100",
} as const;

/** The grace window under TEST_ENV: its floor (create-slot wait + E2B's 70 s create deadline + our request bound). */
export const GRACE_MS = graceFloorMs({ e2bRequestTimeoutMs: Number(TEST_ENV.E2B_REQUEST_TIMEOUT_MS) });

export function newConvex(opts: { transactionLimits?: boolean | Record<string, number> } = {}) {
  return convexTest({
    schema,
    modules,
    ...(opts.transactionLimits !== undefined ? { transactionLimits: opts.transactionLimits } : {}),
  });
}

export type TestConvex = ReturnType<typeof newConvex>;

/** Starts the emulator (control plane and envd) and points the real SDK at it; call from beforeAll. */
export async function startEmulator(opts: Parameters<typeof startEmulatorWithEnvd>[0] = {}) {
  // The clock is read through Date at call time, so a test's simulated clock moves E2B's too.
  const emu: E2BEmulator = await startEmulatorWithEnvd({
    apiKey: "e2b_test_key",
    clock: () => Date.now(),
    ...opts,
  });
  const restoreEnv = useEmulatorEnv(emu, "e2b_test_key");
  return {
    emu,
    async stop() {
      restoreEnv();
      await emu.stop();
    },
  };
}

export function applyTestEnv(overrides: Record<string, string> = {}) {
  for (const [k, v] of Object.entries({ ...TEST_ENV, ...overrides })) vi.stubEnv(k, v);
}

/** Only Date is faked: real timers keep undici's sockets and convex-test's scheduler honest. */
export function useSimulatedClock(start = Date.UTC(2026, 10, 28, 12, 0, 0)) {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(start);
  return {
    advance(ms: number) {
      vi.setSystemTime(Date.now() + ms);
    },
  };
}

/** Makes the next `times` calls of a registered Convex function throw, as if the database were down. */
export function failNext(fn: unknown, times = 1, message = "simulated: database unavailable") {
  const spy = vi.spyOn(fn as { _handler: (...a: unknown[]) => unknown }, "_handler");
  for (let i = 0; i < times; i++) spy.mockRejectedValueOnce(new Error(message));
  return spy;
}

export async function getRun(t: TestConvex, id: Id<"sandboxRuns">): Promise<Doc<"sandboxRuns">> {
  const run = await t.run((ctx) => ctx.db.get(id));
  if (!run) throw new Error(`run ${id} missing`);
  return run;
}

export async function allRuns(t: TestConvex) {
  return t.run((ctx) => ctx.db.query("sandboxRuns").collect());
}

export async function eventsOf(t: TestConvex, id: Id<"sandboxRuns">) {
  return t.run((ctx) =>
    ctx.db
      .query("runEvents")
      .withIndex("by_runId_and_at", (q) => q.eq("runId", id))
      .collect(),
  );
}

/** The most kill calls E2B held in flight at once while `fn` ran (sampled every 2 ms). */
export async function peakKillsInFlight(fn: () => Promise<unknown>): Promise<number> {
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, emu.calls.filter((c) => c.endpoint === "kill" && c.status === 0).length);
  }, 2);
  try {
    await fn();
  } finally {
    clearInterval(sampler);
  }
  return peak;
}

/**
 * Captures console.warn for the rest of the test: an expected warning is asserted, not printed
 * (useHarness restores console afterwards). Returns the lines warned so far.
 */
export function captureWarnings(): () => string[] {
  const spy = vi.spyOn(console, "warn").mockImplementation(() => {});
  return () => spy.mock.calls.map((args) => args.map(String).join(" "));
}

/** Awaits a promise that must reject and returns what it rejected with. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected the call to throw");
}

/** Extracts the ConvexError payload of a rejected call. */
export async function convexErrorOf(
  p: Promise<unknown>,
): Promise<{ code: string; message: string; [k: string]: unknown }> {
  const err = await rejection(p);
  const data = (err as { data?: unknown }).data;
  if (data && typeof data === "object" && "code" in data) return data as { code: string; message: string };
  throw new Error(`expected a ConvexError with a code, got: ${String(err)}`);
}

// The harness every E2B-facing test file shares. ES module bindings are live: test files import
// `t`, `emu` and `clock` and always see the current test's values.
export let emu: E2BEmulator;
export let t: TestConvex;
export let clock: ReturnType<typeof useSimulatedClock>;

/** One emulator per file; a fresh backend, test env and simulated clock per test. */
export function useHarness(env: Record<string, string> = {}) {
  let stop: () => Promise<void>;
  beforeAll(async () => {
    ({ emu, stop } = await startEmulator());
  });
  afterAll(async () => {
    await stop();
  });
  beforeEach(() => {
    emu.reset();
    applyTestEnv(env);
    clock = useSimulatedClock();
    t = newConvex();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
    vi.unstubAllEnvs();
  });
}

/** True when a string holds no lone surrogate (String#isWellFormed, which this TS lib lacks). */
export function isWellFormed(s: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}
