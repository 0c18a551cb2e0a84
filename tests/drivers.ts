// The drivers shared by the tests, the benchmarks and the demo: how each calls the backend
// (start, stop, sweep, reconcile, pause lane), how a database failure is injected, how a cron is
// found. Plain TypeScript, no vitest, so bench/ and scripts/ can import it.
import type { TestConvex } from "convex-test";
import { api, internal } from "../convex/_generated/api";
import crons from "../convex/crons";
import type schema from "../convex/schema";

/** SANDBOX_IDLE_TIMEOUT_MS of the test env (tests/helpers.ts TEST_ENV). */
export const IDLE_MS = 600_000;

type Backend = TestConvex<typeof schema>;
type Caller = Pick<Backend, "action">;
export type StartArgs = { template?: string; idempotencyKey?: string; onIdle?: "kill" | "pause" };

export const startRun = (as: Caller, args: StartArgs = {}) =>
  as.action(api.actions.startSandboxRun.startSandboxRun, args);
export const stopRun = (as: Caller, sandboxRunId: string) =>
  as.action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId });
/** One invocation of the sweep cron target (boot timeouts, idle, max lifetime, owed kills, extensions). */
export const runSweep = (t: Caller) => t.action(internal.actions.killIdleSandboxes.killIdleSandboxes, {});
export const runReconcile = (t: Caller) =>
  t.action(internal.actions.reconcileSandboxes.reconcileSandboxes, {});
export const runPauseLane = (t: Caller) =>
  t.action(internal.actions.pauseIdleSandboxes.pauseIdleSandboxes, {});

type Registered = { _handler: (...a: unknown[]) => unknown };

/**
 * Makes the next `times` calls of a registered Convex function throw, as if the database were
 * down, then puts the function back. `disarm` puts it back early (calls not yet failed).
 */
export function failNextCall(
  fn: unknown,
  opts: { times?: number; message?: string; onFire?: () => void } = {},
) {
  const f = fn as Registered;
  const original = f._handler;
  let left = opts.times ?? 1;
  let fired = 0;
  const failing = async () => {
    fired++;
    if (--left <= 0) f._handler = original;
    opts.onFire?.();
    throw new Error(opts.message ?? "simulated: database unavailable");
  };
  f._handler = failing;
  return {
    get fired() {
      return fired > 0;
    },
    disarm() {
      if (f._handler === failing) f._handler = original;
    },
  };
}
export type ArmedFailure = ReturnType<typeof failNextCall>;

export type CronJob = { name: string; schedule: { type: string; minutes?: number; hourUTC?: number } };

/** A job registered in convex/crons.ts, by its name (convex-test runs no crons: tests call the target). */
export function cronJob(name: string): CronJob | undefined {
  // Convex keeps the registered jobs on the crons object; it has no public lookup.
  return (crons as unknown as { crons: Record<string, CronJob> }).crons[name];
}
