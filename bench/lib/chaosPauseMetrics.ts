// Pause accounting for the chaos benchmark: when each sandbox was running (billed compute) and
// when it was paused, from its emulator's lifecycle events (checked against the emulator's
// per-sandbox meter), set against when each simulated user was idle.
import type { E2BEmulator, LifecycleEvent } from "../../tests/emulator/e2bEmulator";
import type { RunFinal } from "./chaosMetrics";
import type { StartPlan } from "./chaosPlan";

export type Segment = { state: "running" | "paused"; from: number; to: number };
export type Meter = { sandboxId: string; segments: Segment[]; diedAt: number | undefined };

/**
 * Each sandbox's running and paused spans, from the emulator's lifecycle events (created,
 * paused, resumed, killed — on the emulator clock, as E2B's node publishes them), cut at `endAt`.
 * `meterMismatches` counts sandboxes whose running total disagrees with the emulator's own
 * per-sandbox meter (`runningMs`) by more than a millisecond: expected 0.
 */
export function meterSandboxes(
  emu: E2BEmulator,
  events: readonly LifecycleEvent[],
  endAt: number,
): { meters: Meter[]; meterMismatches: number } {
  const state = new Map<string, { s: "running" | "paused" | "dead"; since: number; segs: Segment[] }>();
  for (const e of events) {
    const st = state.get(e.sandboxId);
    if (e.type === "created") {
      state.set(e.sandboxId, { s: "running", since: e.at, segs: [] });
      continue;
    }
    if (!st || st.s === "dead") continue;
    const to =
      e.type === "paused" ? "paused" : e.type === "resumed" ? "running" : e.type === "killed" ? "dead" : st.s;
    if (to === st.s) continue;
    st.segs.push({ state: st.s, from: st.since, to: e.at });
    st.s = to;
    st.since = e.at;
  }
  let meterMismatches = 0;
  const meters = emu.all().map((sb) => {
    const st = state.get(sb.sandboxID) ?? { s: "dead" as const, since: endAt, segs: [] };
    const segs = st.segs.map((g) => ({ ...g, to: Math.min(g.to, endAt) })).filter((g) => g.to > g.from);
    if (st.s !== "dead" && endAt > st.since) segs.push({ state: st.s, from: st.since, to: endAt });
    const runningMs = segs.reduce((n, g) => n + (g.state === "running" ? g.to - g.from : 0), 0);
    if (Math.abs(runningMs - sb.runningMs) > 1) meterMismatches++;
    return { sandboxId: sb.sandboxID, segments: segs, diedAt: sb.diedAt };
  });
  return { meters, meterMismatches };
}

/** When the user comes back to an idle run, if they do. */
export function returnAt(p: StartPlan): number | undefined {
  if (p.returnAfterIdleMs === undefined || p.behaviour.kind === "stop") return undefined;
  const activeMs = p.behaviour.kind === "active" ? p.behaviour.activeForMs : 0;
  return p.at + activeMs + p.returnAfterIdleMs;
}

/** The spans in which the user of a run is idle (not for a user who pressed stop). */
export function idlePeriods(p: StartPlan): [number, number][] {
  if (p.behaviour.kind === "stop") return [];
  const idleFrom = p.at + (p.behaviour.kind === "active" ? p.behaviour.activeForMs : 0);
  const back = returnAt(p);
  if (back === undefined) return [[idleFrom, Number.POSITIVE_INFINITY]];
  return [
    [idleFrom, back],
    [back + p.returnActiveMs!, Number.POSITIVE_INFINITY],
  ];
}

export type PauseReport = {
  idlePeriods: number;
  /** compute (running) sandbox-seconds that fell in a period when the run's user was idle */
  idleComputeS: number;
  idleComputePerPeriodS: number;
  idleComputeP99S: number;
  idleComputeMaxS: number;
  pausedSandboxHours: number;
  pauses: number;
  resumes: number;
  resumeP50Ms: number;
  resumeP95Ms: number;
  /** paused spans longer than retention + one sweep interval (goal 0) */
  pausedPastRetention: number;
  /** each of those spans, described (filled in by the driver) */
  pastRetention?: string[];
  longestPausedS: number;
  /** runs that ended (stopped/failed) while the sandbox they recorded was still alive (goal 0) */
  terminalWhileLived: number;
  /** sandboxes whose metered running time disagrees with the emulator's meter (expected 0) */
  meterMismatches: number;
};

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

export function pauseReport(a: {
  meters: Meter[];
  meterMismatches: number;
  /** the run each sandbox (same order as meters) belongs to */
  sandboxRun: (string | undefined)[];
  runIndex: Map<string, number>;
  plans: readonly StartPlan[];
  finals: RunFinal[];
  resumeWallMs: number[];
  retentionMs: number;
  sweepIntervalMs: number;
  endAt: number;
}): PauseReport {
  const perPeriod: number[] = [];
  const periodsOfRun = new Map<number, [number, number][]>();
  for (const i of a.runIndex.values()) periodsOfRun.set(i, idlePeriods(a.plans[i]!));
  // Every idle period of every run that started counts, with the compute any of its sandboxes used in it.
  const computeOf = new Map<string, number[]>();
  for (const [i, periods] of periodsOfRun)
    computeOf.set(
      String(i),
      periods.map(() => 0),
    );
  let pausedMs = 0;
  let pauses = 0;
  let pastRetention = 0;
  let longestPausedMs = 0;
  a.meters.forEach((m, k) => {
    const runId = a.sandboxRun[k];
    const i = runId !== undefined ? a.runIndex.get(runId) : undefined;
    const periods = i !== undefined ? periodsOfRun.get(i) : undefined;
    const acc = i !== undefined ? computeOf.get(String(i)) : undefined;
    for (const g of m.segments) {
      if (g.state === "paused") {
        pauses++;
        pausedMs += g.to - g.from;
        longestPausedMs = Math.max(longestPausedMs, g.to - g.from);
        if (g.to - g.from > a.retentionMs + a.sweepIntervalMs) pastRetention++;
      } else if (periods && acc) {
        periods.forEach(([from, to], j) => {
          acc[j]! += Math.max(0, Math.min(to, g.to) - Math.max(from, g.from));
        });
      }
    }
  });
  for (const xs of computeOf.values()) for (const x of xs) perPeriod.push(x / 1000);
  const idleComputeS = perPeriod.reduce((s, x) => s + x, 0);

  const deathOf = new Map(a.meters.map((m) => [m.sandboxId, m.diedAt]));
  let terminalWhileLived = 0;
  for (const r of a.finals) {
    if (!r.terminal || r.sandboxId === undefined || r.endedAt === undefined) continue;
    const died = deathOf.get(r.sandboxId);
    if (deathOf.has(r.sandboxId) && (died === undefined || died > r.endedAt)) terminalWhileLived++;
  }
  return {
    idlePeriods: perPeriod.length,
    idleComputeS,
    idleComputePerPeriodS: perPeriod.length ? idleComputeS / perPeriod.length : 0,
    idleComputeP99S: quantile(perPeriod, 0.99),
    idleComputeMaxS: perPeriod.length ? Math.max(...perPeriod) : 0,
    pausedSandboxHours: pausedMs / 3_600_000,
    pauses,
    resumes: a.resumeWallMs.length,
    resumeP50Ms: quantile(a.resumeWallMs, 0.5),
    resumeP95Ms: quantile(a.resumeWallMs, 0.95),
    pausedPastRetention: pastRetention,
    longestPausedS: longestPausedMs / 1000,
    terminalWhileLived,
    meterMismatches: a.meterMismatches,
  };
}
