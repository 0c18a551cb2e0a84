// Pause accounting for the chaos benchmark: when each sandbox was running (billed compute) and
// when it was paused, replayed from the calls its emulator performed, set against when each
// simulated user was idle.
import type { E2BEmulator } from "../../tests/emulator/e2bEmulator";
import type { RunFinal } from "./chaosMetrics";
import type { StartPlan } from "./chaosPlan";

export type Segment = { state: "running" | "paused"; from: number; to: number };
export type Meter = { sandboxId: string; segments: Segment[]; diedAt: number | undefined };

/**
 * Each sandbox's running and paused spans, from the emulator's call log in arrival order: a
 * call changes state when E2B performed it — every call but a status-only fault; a dropped or
 * late answer was performed — and only from the state where it applies (pause: running →
 * paused, connect: paused → running, kill: → dead). Death is the emulator's own `diedAt` (which
 * covers expiry) or the kill, whichever came first. `createdAt[k]` is when the k-th sandbox
 * (emulator creation order) was created.
 */
export function meterSandboxes(emu: E2BEmulator, createdAt: readonly number[], endAt: number): Meter[] {
  const all = emu.all();
  const state = new Map<string, { s: "running" | "paused" | "dead"; since: number; segs: Segment[] }>();
  all.forEach((sb, k) =>
    state.set(sb.sandboxID, { s: "running", since: createdAt[k] ?? sb.startedAt, segs: [] }),
  );
  const move = (
    id: string | undefined,
    at: number,
    from: "running" | "paused" | "any",
    to: "running" | "paused" | "dead",
  ) => {
    const st = id !== undefined ? state.get(id) : undefined;
    if (!st || st.s === "dead" || (from !== "any" && st.s !== from)) return;
    st.segs.push({ state: st.s, from: st.since, to: at });
    st.s = to;
    st.since = at;
  };
  for (const c of emu.calls) {
    const performed = !(c.fault?.status !== undefined && !c.fault.dropResponse && !c.fault.hang);
    if (!performed || c.status >= 400) continue;
    if (c.endpoint === "pause") move(c.sandboxID, c.at, "running", "paused");
    else if (c.endpoint === "connect") move(c.sandboxID, c.at, "paused", "running");
    else if (c.endpoint === "kill") move(c.sandboxID, c.at, "any", "dead");
  }
  return all.map((sb) => {
    const st = state.get(sb.sandboxID)!;
    const end = Math.min(sb.diedAt ?? endAt, endAt);
    const segs = st.segs.map((g) => ({ ...g, to: Math.min(g.to, end) })).filter((g) => g.to > g.from);
    if (st.s !== "dead" && end > st.since) segs.push({ state: st.s, from: st.since, to: end });
    return { sandboxId: sb.sandboxID, segments: segs, diedAt: sb.diedAt };
  });
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
  longestPausedS: number;
  /** runs that ended (stopped/failed) while the sandbox they recorded was still alive (goal 0) */
  terminalWhileLived: number;
};

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

export function pauseReport(a: {
  meters: Meter[];
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
  };
}
