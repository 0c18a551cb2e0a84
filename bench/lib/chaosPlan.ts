// The chaos benchmark's plan: which fault hits which start, and what each run's user does.
// Everything is drawn from a PRNG seeded by (--seed, start index), so start i has the same
// plan whatever --runs is, and both strategies replay exactly the same plan.

/** Faults on the start path. At most one per start (they are alternatives), each at `rate`. */
export const START_FAULTS = [
  "create500", // E2B answers 500 to the create (nothing created)
  "create429", // E2B answers 429 without Retry-After (the SDK does not retry)
  "create503", // E2B answers 503 (nothing created)
  "createResponseLost", // E2B creates the sandbox, then the connection drops before the answer
  "actionDiesAfterCreate", // the sandbox exists; no step after the create has any effect
  "createRunFails", // step 1 (record the run) throws
  "storeSandboxIdFails", // step 3 throws (seed: its one update throws)
  "markRunRunningFails", // step 4 throws (seed: its one update throws)
  "recordKillFails", // step 4 throws AND the failure path's record throws
  "recordStartRefusalFails", // create refused (429) AND the refusal's record throws
  "createLandsLate", // the create's answer is lost; E2B lands the sandbox up to 70 s after the client gave up
] as const;
export type StartFault = (typeof START_FAULTS)[number];

/** Faults queued on the strategy's emulator when start i is issued; they hit the NEXT such call. */
export const BACKGROUND_FAULTS = [
  "kill500",
  "killTimeout",
  "list500",
  "listIgnoresRunId", // E2B applies only the namespace part of a metadata filter
  "killFakeSuccess", // E2B answers 204 to a kill without killing (only a later list can tell)
  // Pause and resume faults (only a strategy that pauses ever meets them). Drawn after the
  // others from the same stream, so the earlier faults of every start are unchanged.
  "pause500", // E2B answers 500 and does not pause
  "pauseTimeout", // E2B pauses, but answers only after the client's deadline
  "pauseResponseLost", // E2B pauses, then the connection drops
  "resume500", // E2B answers 500 and does not resume
  "resumeTimeout", // E2B resumes, but answers only after the client's deadline
  "resumeResponseLost", // E2B resumes, then the connection drops
] as const;
export type BackgroundFault = (typeof BACKGROUND_FAULTS)[number];

/** Faults in the life of run i after its start, each drawn independently at the rate. */
export const RUN_FAULTS = [
  "proxyNotFound", // E2B's proxy answers 502 "sandbox not found" to the user's command while the sandbox lives
  "envdKilled", // the user kills envd inside their sandbox before their command
  "secondDeployment", // a second deployment (own namespace, same E2B key) starts a sandbox alongside
] as const;
export type RunFault = (typeof RUN_FAULTS)[number];

/**
 * E2B ends a run's sandbox on its own (users report silent early deletions on 1–3 % of runs):
 * drawn per start from its own stream, at a time after the start; the driver kills whatever
 * sandbox that start made, if it is still alive then.
 */
export const E2B_SIDE_FAULTS = ["e2bKillsSandbox"] as const;
export type E2BSideFault = (typeof E2B_SIDE_FAULTS)[number];

export type FaultKind = StartFault | BackgroundFault | RunFault | E2BSideFault;
export const ALL_FAULTS: readonly FaultKind[] = [
  ...START_FAULTS,
  ...BACKGROUND_FAULTS,
  ...RUN_FAULTS,
  ...E2B_SIDE_FAULTS,
];

export type Behaviour =
  | { kind: "idle" } // never touches the run after the start: the idle sweep ends it
  | { kind: "active"; activeForMs: number } // heartbeats for a while, then leaves the tab
  | { kind: "stop"; stopAfterMs: number }; // heartbeats, then presses stop

export type StartPlan = {
  index: number;
  at: number; // simulated ms
  owner: number;
  startFault?: StartFault;
  background: BackgroundFault[];
  behaviour: Behaviour;
  runFaults: RunFault[];
  /** createLandsLate: how long after the create's arrival E2B lands the sandbox (simulated ms) */
  landAfterMs?: number;
  /** the user runs one command this long after the start (simulated ms), if at all */
  commandAfterMs?: number;
  /**
   * The user comes back after being idle this long (not for "stop"), stays active for
   * `returnActiveMs`, then leaves for good. Drawn from its own stream: the rest of the plan is
   * the same as without it.
   */
  returnAfterIdleMs?: number;
  returnActiveMs?: number;
  /** e2bKillsSandbox: E2B kills this start's sandbox this long after the start (simulated ms) */
  e2bKillsAfterMs?: number;
};

/** sfc32: small, fast, well distributed; seeded through splitmix32. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split();
  let b = split();
  let c = split();
  let d = split();
  return () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
}

const mix = (seed: number, index: number, stream: number) =>
  (Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) ^
    Math.imul(index + 1, 0x165667b1) ^
    Math.imul(stream + 1, 0x9e3779b1)) >>>
  0;

export type PlanOptions = {
  runs: number;
  seed: number;
  faultRate: number;
  startsPerSecond: number;
  owners: number;
  t0: number;
  /** simulated pause a client observes after a create answered 429 (our back-off window) */
  backoffAfter429Ms: number;
};

export function makePlan(o: PlanOptions): StartPlan[] {
  if (o.faultRate * START_FAULTS.length > 1) {
    throw new Error(
      `--fault-rate ${o.faultRate}: at most ${1 / START_FAULTS.length} (the ${START_FAULTS.length} start faults are alternatives)`,
    );
  }
  const gap = Math.round(1000 / o.startsPerSecond);
  const plans: StartPlan[] = [];
  let at = o.t0 + gap;
  for (let i = 0; i < o.runs; i++) {
    const f = prng(mix(o.seed, i, 1));
    const u = f();
    const k = Math.floor(u / o.faultRate);
    const startFault = k < START_FAULTS.length ? START_FAULTS[k] : undefined;
    const background = BACKGROUND_FAULTS.filter(() => f() < o.faultRate);

    const w = prng(mix(o.seed, i, 2));
    const b = w();
    const minutes = (lo: number, hi: number) => Math.round((lo + w() * (hi - lo)) * 60_000);
    const behaviour: Behaviour =
      b < 0.4
        ? { kind: "idle" }
        : b < 0.75
          ? { kind: "active", activeForMs: minutes(1, 30) }
          : b < 0.8
            ? { kind: "active", activeForMs: minutes(50, 75) } // outlives the max lifetime
            : { kind: "stop", stopAfterMs: minutes(5 / 60, 15) };
    // A fourth stream, so that adding these left every earlier draw of start i unchanged.
    const q = prng(mix(o.seed, i, 4));
    const runFaults = RUN_FAULTS.filter(() => q() < o.faultRate);
    const landAfterMs = Math.round(q() * 70_000);
    const dataPlane = runFaults.includes("proxyNotFound") || runFaults.includes("envdKilled");
    // Data-plane faults need a command to hit; 10 % of other users run one too.
    const command = dataPlane || q() < 0.1;

    const r = prng(mix(o.seed, i, 3));
    const returns = behaviour.kind !== "stop" && r() < 0.4;
    const rMinutes = (lo: number, hi: number) => Math.round((lo + r() * (hi - lo)) * 60_000);
    const d = prng(mix(o.seed, i, 4));
    const e2bKillsAfterMs = d() < o.faultRate ? Math.round((0.25 + d() * 19.75) * 60_000) : undefined;
    plans.push({
      index: i,
      at,
      owner: i % o.owners,
      ...(startFault ? { startFault } : {}),
      background,
      behaviour,
      runFaults,
      ...(startFault === "createLandsLate" ? { landAfterMs } : {}),
      ...(command ? { commandAfterMs: 30_000 } : {}),
      // Back after 2–45 idle minutes: before a pause, while paused, after an idle kill or past retention.
      ...(returns ? { returnAfterIdleMs: rMinutes(2, 45), returnActiveMs: rMinutes(1, 10) } : {}),
      ...(e2bKillsAfterMs !== undefined ? { e2bKillsAfterMs } : {}),
    });
    at += gap + (startFault === "create429" ? o.backoffAfter429Ms : 0);
  }
  return plans;
}
