// The chaos benchmark's workload driver: one simulated timeline of starts, heartbeats, user
// stops and cron sweeps, replayed identically against each strategy. It injects the E2B-side
// faults (on the strategy's own emulator); the strategy injects its database-side faults.
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type {
  E2BEmulator,
  EmulatedSandbox,
  FaultSpec,
  LifecycleEvent,
} from "../../tests/emulator/e2bEmulator";
import {
  ALL_FAULTS,
  type BackgroundFault,
  type FaultKind,
  type StartFault,
  type StartPlan,
} from "./chaosPlan";
import {
  type E2BKill,
  knowingReport,
  type KnowingReport,
  orphanReport,
  type OrphanReport,
  type RunFinal,
  type SandboxLife,
} from "./chaosMetrics";
import { meterSandboxes, pauseReport, type PauseReport, returnAt } from "./chaosPauseMetrics";

export type StartOutcome = { ok: true; runId: string; sandboxId?: string } | { ok: false; code: string };

export interface Strategy {
  readonly name: string;
  readonly emu: E2BEmulator;
  /** May tag-based ownership (rule (b) in chaosMetrics) count for this strategy's sandboxes? */
  readonly tagOwns: boolean;
  /** Database-side faults this strategy actually threw, by kind. */
  readonly injected: Record<FaultKind, number>;
  start(p: StartPlan): Promise<StartOutcome>;
  /** The user's page pings; "done" when the run is no longer live (the page stops pinging). */
  heartbeat(p: StartPlan, runId: string): Promise<"continue" | "done">;
  stop(p: StartPlan, runId: string): Promise<void>;
  /** The user runs one command in their sandbox; answers an outcome label. Optional. */
  command?(p: StartPlan, runId: string): Promise<string>;
  /** The secondDeployment fault: another deployment sharing the E2B key starts a run. Optional. */
  otherDeploymentStart?(p: StartPlan): Promise<boolean>;
  /**
   * The user comes back to an idle run (resumeSandboxRun for ours; absent: a heartbeat).
   * `resumed` when E2B was asked to resume it, with the call's wall time.
   */
  resume?(p: StartPlan, runId: string): Promise<{ live: boolean; resumed: boolean; wallMs: number }>;
  /** One cron tick: every sweep the strategy has, with its continuations drained. */
  sweep(): Promise<void>;
  /** Every run terminal? */
  allRunsTerminal(): Promise<boolean>;
  finalRuns(): Promise<RunFinal[]>;
  /** The run a sandbox belongs to; `startIndex` is the start whose create made it. */
  runOfSandbox(s: EmulatedSandbox, startIndex: number | undefined): string | undefined;
  /** Strategy-specific counters for the report. */
  extra(): Promise<Record<string, number | string>>;
  /** Lifecycle webhook deliveries queued on the simulated clock (a strategy that takes them). */
  readonly webhooks?: {
    nextDueAt(): number | undefined;
    /** Delivers everything due by `until` (the clock is at `until`), with its consequences. */
    deliverDue(until: number): Promise<void>;
  };
  close(): Promise<void>;
}

export type DriverOptions = {
  clock: { now(): number; set(ms: number): void };
  t0: number;
  sweepIntervalMs: number;
  heartbeatEveryMs: number;
  /** the strategies' E2B request deadline (real ms): what an injected timeout costs */
  requestTimeoutMs: number;
  /** give up this long after the last start if the workload has not drained */
  drainBoundMs: number;
  /** the pausing strategy's SANDBOX_PAUSED_RETENTION_MS, for the "paused past retention" count */
  pausedRetentionMs: number;
  progress?: (msg: string) => void;
};

export type WorkloadResult = {
  strategy: string;
  wallMs: number;
  startsOk: number;
  startsFailed: number;
  stopsIssued: number;
  heartbeats: number;
  sweeps: number;
  lastStartAt: number;
  endAt: number;
  drained: boolean;
  drainedAfterLastStartS: number;
  e2bCalls: number;
  e2bCallsByEndpoint: Record<string, number>;
  planned: Record<FaultKind, number>;
  injected: Record<FaultKind, number>;
  staleCreateFaults: number;
  /** real time spent in each kind of step, s */
  wallByStep: { starts: number; stops: number; heartbeats: number; sweeps: number; commands: number };
  /** requests the SDK gave up on at its deadline, by endpoint (from undici's diagnostics channel) */
  clientTimeouts: Record<string, number>;
  orphans: OrphanReport;
  /** the user's commands, by outcome */
  commands: Record<string, number>;
  pause: PauseReport;
  /** lost create responses and E2B-side deaths: how soon the backend knew (simulated s) */
  knowing: KnowingReport;
  extra: Record<string, number | string>;
};

const CREATE_FAULT: Partial<Record<StartFault, FaultSpec>> = {
  create500: { status: 500, message: "chaos: internal error" },
  create429: { status: 429, message: "chaos: rate limited" },
  create503: { status: 503, message: "chaos: service unavailable" },
  createResponseLost: { dropResponse: true },
  recordStartRefusalFails: { status: 429, message: "chaos: rate limited" },
};

/** The create fault of a start: createLandsLate's delay is drawn per start. */
function createFaultOf(p: StartPlan): FaultSpec | undefined {
  if (p.startFault === "createLandsLate") return { dropResponse: true, landAfterMs: p.landAfterMs ?? 0 };
  return p.startFault ? CREATE_FAULT[p.startFault] : undefined;
}

/**
 * killTimeout: E2B answers (and performs the kill) only `timeoutSlackMs` after the client's
 * request deadline. Not the emulator's `hang`: with e2b 2.51 on Node 20 a garbage collection
 * during the call can detach the SDK's timeout signal (nodejs/undici#4068, via the SDK's
 * Request.clone()), and a hung call then waits for undici's 300 s headersTimeout. A late answer
 * bounds that; the driver waits for it before simulated time moves on, so the kill lands in the
 * same simulated instant, as with `hang`.
 */
function backgroundFault(
  b: BackgroundFault,
  requestTimeoutMs: number,
): { endpoint: "kill" | "list" | "pause" | "connect"; spec: FaultSpec } {
  const err = { status: 500, message: "chaos: internal error" };
  const late = { delayMs: requestTimeoutMs + 20 };
  switch (b) {
    case "kill500":
      return { endpoint: "kill", spec: err };
    case "killTimeout":
      return { endpoint: "kill", spec: late };
    case "list500":
      return { endpoint: "list", spec: err };
    case "pause500":
      return { endpoint: "pause", spec: err };
    case "pauseTimeout":
      return { endpoint: "pause", spec: late };
    case "pauseResponseLost":
      return { endpoint: "pause", spec: { dropResponse: true } };
    case "resume500":
      return { endpoint: "connect", spec: err };
    case "resumeTimeout":
      return { endpoint: "connect", spec: late };
    case "resumeResponseLost":
      return { endpoint: "connect", spec: { dropResponse: true } };
    case "killFakeSuccess":
      return { endpoint: "kill", spec: { fakeSuccess: true } };
    case "listIgnoresRunId":
      return { endpoint: "list", spec: { ignoreMetadataKeys: ["convexRunId"] } };
  }
}

/** Which background faults a strategy's emulator gets: pause/resume ones only where it resumes. */
const PAUSE_FAULTS: readonly BackgroundFault[] = [
  "pause500",
  "pauseTimeout",
  "pauseResponseLost",
  "resume500",
  "resumeTimeout",
  "resumeResponseLost",
];
const RESUME_FAULTS: readonly BackgroundFault[] = ["resume500", "resumeTimeout", "resumeResponseLost"];

/**
 * Min-heap of timeline events: by time, then kind (start < stop < heartbeat < return < command < E2B kill),
 * then index. A heartbeat carries when the user's current active spell ends.
 */
type Ev = { at: number; kind: 0 | 1 | 2 | 3 | 4 | 5; i: number; until?: number };
class Heap {
  private a: Ev[] = [];
  get size() {
    return this.a.length;
  }
  private less(x: Ev, y: Ev) {
    return x.at !== y.at ? x.at < y.at : x.kind !== y.kind ? x.kind < y.kind : x.i < y.i;
  }
  push(e: Ev) {
    const a = this.a;
    a.push(e);
    let k = a.length - 1;
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (!this.less(a[k]!, a[p]!)) break;
      [a[k], a[p]] = [a[p]!, a[k]!];
      k = p;
    }
  }
  peek(): Ev | undefined {
    return this.a[0];
  }
  pop(): Ev | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        const r = l + 1;
        let m = k;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === k) break;
        [a[k], a[m]] = [a[m]!, a[k]!];
        k = m;
      }
    }
    return top;
  }
}

/** The control-plane endpoint of an SDK request, as the emulator names it. */
function endpointOf(method: string, path: string): string {
  const p = path.split("?")[0]!;
  if (p === "/v2/sandboxes") return method === "POST" ? "create" : "list";
  if (p.endsWith("/connect")) return "connect";
  if (p.endsWith("/timeout")) return "setTimeout";
  if (p.endsWith("/pause")) return "pause";
  if (p.startsWith("/sandboxes/")) return method === "DELETE" ? "kill" : "getInfo";
  return "other";
}

const zero = (): Record<FaultKind, number> =>
  Object.fromEntries(ALL_FAULTS.map((k) => [k, 0])) as Record<FaultKind, number>;

export async function runWorkload(
  strat: Strategy,
  plans: readonly StartPlan[],
  o: DriverOptions,
): Promise<WorkloadResult> {
  const wallStart = performance.now();
  const emu = strat.emu;
  const clientTimeouts: Record<string, number> = {};
  const onRequestError = (m: unknown) => {
    const { request, error } = m as {
      request?: { method?: string; path?: string };
      error?: { name?: string };
    };
    if (error?.name !== "TimeoutError" || !request?.path) return;
    const ep = endpointOf(request.method ?? "GET", request.path);
    clientTimeouts[ep] = (clientTimeouts[ep] ?? 0) + 1;
  };
  subscribe("undici:request:error", onRequestError);
  try {
    return await drive();
  } finally {
    unsubscribe("undici:request:error", onRequestError);
  }

  async function drive(): Promise<WorkloadResult> {
    o.clock.set(o.t0);
    const heap = new Heap();
    for (const p of plans) heap.push({ at: p.at, kind: 0, i: p.index });
    const runIds = new Map<number, string>();
    const sandboxIds = new Map<number, string>();
    const commands: Record<string, number> = {};
    const planned = zero();
    const injectedE2B = zero();
    /** the start whose create made each sandbox (E2B publishes a late-landing one later), and when */
    const createdBy = new Map<string, number>();
    const createdAt = new Map<string, number>(); // a resumed sandbox's startedAt is its resume
    let creating: number | undefined;
    const resumeWallMs: number[] = [];
    const lifecycle: LifecycleEvent[] = [];
    const unlisten = emu.onLifecycle((e) => {
      lifecycle.push(e);
      if (e.type !== "created") return;
      if (!createdAt.has(e.sandboxId)) createdAt.set(e.sandboxId, e.at);
      if (creating !== undefined && !createdBy.has(e.sandboxId)) createdBy.set(e.sandboxId, creating);
    });
    // Sandboxes by the start during which E2B created them (its `created` event), robust to a
    // create that a busy event loop let time out; and those whose create response was lost.
    let startInFlight: number | undefined;
    const sandboxesOfStart = new Map<number, string[]>();
    const lostCreateIds = new Set<string>();
    const offLifecycle = emu.onLifecycle((e) => {
      if (e.type !== "created" || startInFlight === undefined) return;
      const list = sandboxesOfStart.get(startInFlight) ?? [];
      list.push(e.sandboxId);
      sandboxesOfStart.set(startInFlight, list);
    });
    const e2bKills: E2BKill[] = [];
    let startsOk = 0;
    let startsDone = 0;
    let startsFailed = 0;
    let stopsIssued = 0;
    let heartbeats = 0;
    let sweeps = 0;
    let staleCreateFaults = 0;
    const lastStartAt = plans.length > 0 ? plans[plans.length - 1]!.at : o.t0;
    const bound = lastStartAt + o.drainBoundMs;
    let nextSweep = o.t0 + o.sweepIntervalMs;
    let drained = false;
    let drainedAt = Number.NaN;
    let lastReport = performance.now();

    const wallByStep = { starts: 0, stops: 0, heartbeats: 0, sweeps: 0, commands: 0 };
    /** Waits until E2B has answered every late-answered (killTimeout) call made since `from`. */
    const settle = async (from: number) => {
      for (let k = from; k < emu.calls.length; k++) {
        const c = emu.calls[k]!;
        while (c.fault?.delayMs !== undefined && c.status === 0) await new Promise((r) => setTimeout(r, 2));
      }
    };

    for (;;) {
      const ev = heap.peek();
      const hookAt = strat.webhooks?.nextDueAt();
      if (hookAt !== undefined && hookAt <= Math.min(nextSweep, ev?.at ?? Number.POSITIVE_INFINITY, bound)) {
        // A webhook delivery is due before anything else happens.
        const at = Math.max(o.clock.now(), hookAt);
        o.clock.set(at);
        await strat.webhooks!.deliverDue(at);
        continue;
      }
      if (nextSweep <= (ev?.at ?? Number.POSITIVE_INFINITY)) {
        if (nextSweep > bound) break;
        o.clock.set(nextSweep);
        const callsBefore = emu.calls.length;
        const t = performance.now();
        await strat.sweep();
        await settle(callsBefore);
        wallByStep.sweeps += (performance.now() - t) / 1000;
        sweeps++;
        nextSweep += o.sweepIntervalMs;
        if (
          startsDone === plans.length &&
          emu.alive().length === 0 &&
          emu.pendingCreates().length === 0 &&
          (await strat.allRunsTerminal())
        ) {
          drained = true;
          drainedAt = o.clock.now();
          break;
        }
        if (o.progress && performance.now() - lastReport > 10_000) {
          lastReport = performance.now();
          const done = startsDone;
          o.progress(
            `${strat.name}: t+${Math.round((o.clock.now() - o.t0) / 1000)}s, ${done}/${plans.length} starts, ` +
              `${emu.alive().length} sandboxes alive, ${Math.round((performance.now() - wallStart) / 1000)}s wall`,
          );
        }
        continue;
      }
      heap.pop();
      o.clock.set(ev!.at);
      const p = plans[ev!.i]!;
      if (ev!.kind === 0) {
        // ---- a start, with its planned faults
        for (const b of p.background) {
          if (PAUSE_FAULTS.includes(b) && !strat.resume) continue;
          if (RESUME_FAULTS.includes(b)) continue; // queued when this run's user comes back
          planned[b]++;
          const f = backgroundFault(b, o.requestTimeoutMs);
          emu.fault(f.endpoint, f.spec);
        }
        const createFault = createFaultOf(p);
        if (p.startFault) planned[p.startFault]++;
        if (createFault) emu.fault("create", createFault);
        const before = emu.calls.length;
        const t = performance.now();
        creating = p.index;
        startInFlight = p.index;
        const r = await strat.start(p);
        await settle(before);
        creating = undefined;
        startInFlight = undefined;
        // A create still in flight at E2B belongs to this start, whenever it lands.
        if (p.startFault === "createLandsLate")
          for (const s of emu.pendingCreates())
            if (!createdBy.has(s.sandboxID)) createdBy.set(s.sandboxID, p.index);
        if (p.runFaults.includes("secondDeployment") && strat.otherDeploymentStart) {
          planned.secondDeployment++;
          const b = performance.now();
          if (await strat.otherDeploymentStart(p)) injectedE2B.secondDeployment++;
          wallByStep.starts += (performance.now() - b) / 1000;
        } else if (p.runFaults.includes("secondDeployment")) planned.secondDeployment++;
        wallByStep.starts += (performance.now() - t) / 1000;
        startsDone++;
        let faultedCreates = 0;
        for (let k = before; k < emu.calls.length; k++) {
          const c = emu.calls[k]!;
          if (c.endpoint !== "create") continue;
          if (c.fault) faultedCreates++;
          if (c.fault?.dropResponse)
            for (const id of sandboxesOfStart.get(p.index) ?? []) lostCreateIds.add(id);
        }
        if (createFault) {
          if (faultedCreates > 0) injectedE2B[p.startFault!]++;
          else staleCreateFaults++; // the start never reached its create: the fault now waits for the next one
        }
        if (r.ok) {
          startsOk++;
          runIds.set(p.index, r.runId);
          if (r.sandboxId !== undefined) sandboxIds.set(p.index, r.sandboxId);
          if (p.commandAfterMs !== undefined && strat.command)
            heap.push({ at: p.at + p.commandAfterMs, kind: 4, i: p.index });
          const b = p.behaviour;
          if (b.kind === "stop") heap.push({ at: p.at + b.stopAfterMs, kind: 1, i: p.index });
          const until = b.kind === "active" ? b.activeForMs : b.kind === "stop" ? b.stopAfterMs : 0;
          if (o.heartbeatEveryMs < until)
            heap.push({ at: p.at + o.heartbeatEveryMs, kind: 2, i: p.index, until: p.at + until });
          const back = returnAt(p);
          if (back !== undefined) heap.push({ at: back, kind: 3, i: p.index });
          if (p.e2bKillsAfterMs !== undefined) {
            planned.e2bKillsSandbox++;
            heap.push({ at: p.at + p.e2bKillsAfterMs, kind: 5, i: p.index });
          }
        } else {
          startsFailed++;
        }
        for (const f of p.runFaults) if (f !== "secondDeployment") planned[f]++;
      } else if (ev!.kind === 4) {
        // ---- the user's command, with the run's data-plane faults
        const sandboxId = sandboxIds.get(p.index);
        const live = sandboxId !== undefined && emu.isAlive(sandboxId);
        if (live && p.runFaults.includes("proxyNotFound")) {
          emu.envdFault({ kind: "proxy502" });
          injectedE2B.proxyNotFound++;
        }
        if (live && p.runFaults.includes("envdKilled")) {
          emu.killEnvd(sandboxId);
          injectedE2B.envdKilled++;
        }
        const callsBefore = emu.calls.length;
        const t = performance.now();
        const outcome = await strat.command!(p, runIds.get(p.index)!);
        await settle(callsBefore);
        wallByStep.commands += (performance.now() - t) / 1000;
        commands[outcome] = (commands[outcome] ?? 0) + 1;
      } else if (ev!.kind === 5) {
        // E2B ends this start's sandbox on its own, if it still lives.
        const victim = (sandboxesOfStart.get(p.index) ?? []).find((id) => emu.isAlive(id));
        if (victim !== undefined) {
          emu.killDirect(victim);
          injectedE2B.e2bKillsSandbox++;
          e2bKills.push({ index: p.index, sandboxId: victim, at: o.clock.now() });
        }
      } else if (ev!.kind === 1) {
        stopsIssued++;
        const callsBefore = emu.calls.length;
        const t = performance.now();
        await strat.stop(p, runIds.get(p.index)!);
        await settle(callsBefore);
        wallByStep.stops += (performance.now() - t) / 1000;
      } else if (ev!.kind === 3) {
        // The user is back: resume (or ping), then active for a while.
        const runId = runIds.get(p.index)!;
        // Resume faults at the fault rate per return (queued at the start, they would outnumber resumes).
        for (const b of p.background) {
          if (!RESUME_FAULTS.includes(b) || !strat.resume) continue;
          planned[b]++;
          const f = backgroundFault(b, o.requestTimeoutMs);
          emu.fault(f.endpoint, f.spec);
        }
        const callsBefore = emu.calls.length;
        const t = performance.now();
        let live: boolean;
        if (strat.resume) {
          const r = await strat.resume(p, runId);
          live = r.live;
          if (r.resumed) resumeWallMs.push(r.wallMs);
        } else {
          heartbeats++;
          live = (await strat.heartbeat(p, runId)) === "continue";
        }
        await settle(callsBefore);
        wallByStep.heartbeats += (performance.now() - t) / 1000;
        const until = ev!.at + p.returnActiveMs!;
        if (live && ev!.at + o.heartbeatEveryMs < until)
          heap.push({ at: ev!.at + o.heartbeatEveryMs, kind: 2, i: p.index, until });
      } else {
        heartbeats++;
        const until = ev!.until!;
        const t = performance.now();
        const next =
          (await strat.heartbeat(p, runIds.get(p.index)!)) === "continue"
            ? ev!.at + o.heartbeatEveryMs
            : Number.POSITIVE_INFINITY;
        wallByStep.heartbeats += (performance.now() - t) / 1000;
        if (next < until) heap.push({ at: next, kind: 2, i: p.index, until });
      }
    }

    const endAt = o.clock.now();
    emu.tick(); // lands lazy expiries up to the end
    unlisten();
    // Faults that E2B actually served (background ones hit whichever call came next), and the
    // kill faults each sandbox met, for the per-fault breakdown.
    const killFaults = new Map<string, FaultKind>();
    for (const c of emu.calls) {
      if (!c.fault) continue;
      const kind = c.fault.delayMs !== undefined ? "Timeout" : c.fault.dropResponse ? "ResponseLost" : "500";
      if (c.endpoint === "kill") {
        const k: FaultKind = c.fault.fakeSuccess
          ? "killFakeSuccess"
          : c.fault.delayMs !== undefined
            ? "killTimeout"
            : "kill500";
        injectedE2B[k]++;
        if (c.sandboxID !== undefined && killFaults.get(c.sandboxID) !== "killFakeSuccess")
          killFaults.set(c.sandboxID, k);
      } else if (c.endpoint === "list")
        injectedE2B[c.fault.ignoreMetadataKeys ? "listIgnoresRunId" : "list500"]++;
      else if (c.endpoint === "pause") injectedE2B[`pause${kind}`]++;
      else if (c.endpoint === "connect") injectedE2B[`resume${kind}`]++;
    }
    /** The fault a sandbox's story is charged to: a kill fault it met, else its start's faults. */
    const chargedTo = (sandboxId: string, start: number | undefined): string => {
      const k = killFaults.get(sandboxId);
      if (k) return k;
      const p = start !== undefined ? plans[start] : undefined;
      return p?.startFault ?? p?.runFaults[0] ?? "(none)";
    };
    const injected = zero();
    for (const k of ALL_FAULTS) injected[k] = injectedE2B[k] + strat.injected[k];
    // recordStartRefusalFails is both a 429 and a failed record: count it once, when the record threw.
    injected.recordStartRefusalFails = strat.injected.recordStartRefusalFails;

    const all = emu.all();
    const lives: SandboxLife[] = all.map((s) => ({
      sandboxId: s.sandboxID,
      runId: strat.runOfSandbox(s, createdBy.get(s.sandboxID)),
      startedAt: createdAt.get(s.sandboxID) ?? s.startedAt, // the emulator resets startedAt on a resume, as E2B does
      diedAt: s.diedAt,
      fault: s.metadata.convexNamespace?.endsWith("-b")
        ? "secondDeployment"
        : chargedTo(s.sandboxID, createdBy.get(s.sandboxID)),
    }));
    const finals = await strat.finalRuns();
    const { meters, meterMismatches } = meterSandboxes(emu, lifecycle, endAt);
    const runIndex = new Map([...runIds].map(([i, id]) => [id, i])); // run id → its start
    const pause = pauseReport({
      meters,
      meterMismatches,
      sandboxRun: lives.map((l) => l.runId),
      runIndex,
      plans,
      finals,
      resumeWallMs,
      retentionMs: o.pausedRetentionMs,
      sweepIntervalMs: o.sweepIntervalMs,
      endAt,
    });
    const finalById = new Map(finals.map((f) => [f.runId, f]));
    // Each paused span past retention + one sweep (goal: none), with its run's faults and the
    // E2B calls on that sandbox: what the report shows to explain a miss.
    const pastRetention: string[] = [];
    meters.forEach((m, k) => {
      for (const g of m.segments) {
        if (g.state !== "paused" || g.to - g.from <= o.pausedRetentionMs + o.sweepIntervalMs) continue;
        const runId = lives[k]?.runId;
        const idx = runId !== undefined ? runIndex.get(runId) : undefined;
        const plan = idx !== undefined ? plans[idx] : undefined;
        const at = (ms: number) => `${Math.round((ms - o.t0) / 100) / 10}`;
        const calls = emu.calls
          .filter((c) => c.sandboxID === m.sandboxId && c.at >= g.from - 1)
          .map(
            (c) => `${c.endpoint} ${c.status || "no answer"}${c.fault ? " (injected)" : ""} at ${at(c.at)} s`,
          );
        pastRetention.push(
          `paused ${at(g.from)}–${at(g.to)} s (${(g.to - g.from) / 1000} s); run faults: ${
            plan?.runFaults.join(", ") || "none"
          }; calls: ${calls.join("; ")}`,
        );
      }
    });
    offLifecycle();
    const lostCreates = all
      .filter((s) => lostCreateIds.has(s.sandboxID))
      .map((s) => ({
        sandbox: s,
        run: finalById.get(strat.runOfSandbox(s, createdBy.get(s.sandboxID)) ?? ""),
      }));
    const deaths = e2bKills.map((d) => ({ ...d, run: finalById.get(runIds.get(d.index) ?? "") }));
    const byEndpoint: Record<string, number> = {};
    for (const c of emu.calls) byEndpoint[c.endpoint] = (byEndpoint[c.endpoint] ?? 0) + 1;
    return {
      strategy: strat.name,
      wallMs: performance.now() - wallStart,
      startsOk,
      startsFailed,
      stopsIssued,
      heartbeats,
      sweeps,
      lastStartAt,
      endAt,
      drained,
      drainedAfterLastStartS: drained ? (drainedAt - lastStartAt) / 1000 : Number.NaN,
      e2bCalls: emu.calls.length,
      e2bCallsByEndpoint: byEndpoint,
      planned,
      injected,
      staleCreateFaults,
      clientTimeouts,
      wallByStep,
      orphans: orphanReport(lives, finals, { endAt, tagOwns: strat.tagOwns }),
      commands,
      pause: { ...pause, pastRetention },
      knowing: knowingReport(lostCreates, deaths, endAt),
      extra: await strat.extra(),
    };
  }
}
