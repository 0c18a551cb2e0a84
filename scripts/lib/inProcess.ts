// Runs the real Convex functions in-process (convex-test) outside vitest, for the demo and the
// benchmarks: builds the module map vitest's import.meta.glob would, and a movable clock.
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { convexTest } from "convex-test";
import schema from "../../convex/schema";

const root = fileURLToPath(new URL("../..", import.meta.url));

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : /\.[jt]s$/.test(name) ? [p] : [];
  });
}

export function convexModules(): Record<string, () => Promise<unknown>> {
  const modules: Record<string, () => Promise<unknown>> = {};
  for (const file of walk(join(root, "convex"))) {
    // Same keys as import.meta.glob("../convex/**/*.*s") from tests/: convex-test finds the
    // functions root through "_generated".
    const key = "../" + relative(root, file).split("\\").join("/");
    modules[key] = () => import(pathToFileURL(file).href);
  }
  return modules;
}

export function newInProcessConvex(opts: { transactionLimits?: boolean | Record<string, number> } = {}) {
  return convexTest({ schema, modules: convexModules(), ...opts });
}

/** A simulated wall clock: Date.now() and new Date() read it; timers stay real. */
export function installSimulatedClock(startMs: number) {
  const RealDate = Date;
  let now = startMs;
  class SimDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(now);
      else super(...(args as [number]));
    }
    static override now() {
      return now;
    }
  }
  globalThis.Date = SimDate as DateConstructor;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
    set(ms: number) {
      now = ms;
    },
    restore() {
      globalThis.Date = RealDate;
    },
  };
}
