// `npm run bench:chaos [-- --runs 10000 --seed 1 --fault-rate 0.05]`
//
// A chaos BENCHMARK (not a test): N sandbox starts with random user activity, user stops and
// minute-by-minute sweeps on a simulated clock, with faults injected on E2B and on the database
// from one seeded plan, replayed against two strategies in this one process, each with its own
// local E2B emulator (nothing reaches E2B's cloud or a Convex deployment):
//   (a) ours: the real Convex functions (convex-test, in-process) + the real e2b SDK;
//   (b) the seed system's strategy, re-enacted (bench/lib/chaosSeedStrategy.ts) + the real SDK.
// Prints a side-by-side table and writes it to bench/results/chaos.md (+ chaos.json).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { DEFAULT_E2B_BACKOFF_MS } from "../convex/model/admission";
import type { WorkloadResult } from "./lib/chaosDriver";
import type { Latency } from "./lib/chaosMetrics";
import { oursEnv } from "./lib/chaosOurs";
import { ALL_FAULTS, makePlan } from "./lib/chaosPlan";
import { type ChaosOptions, type ChaosStrategy, T0, WEBHOOK_LATENCY_MS } from "./lib/chaosWorker";
import { CHAOS_PAUSED_RETENTION_MS } from "./lib/chaosOurs";
import { graceFloorMs, SWEEP_INTERVAL_MS } from "../convex/model/config";

// ------------------------------------------------------------------ options
const argv = process.argv.slice(2);
function opt(name: string, def: number): number {
  const i = argv.indexOf(`--${name}`);
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  const raw = eq ? eq.slice(name.length + 3) : i >= 0 ? argv[i + 1] : undefined;
  if (raw === undefined) return def;
  const v = Number(raw);
  if (!Number.isFinite(v)) throw new Error(`--${name} expects a number, got ${raw}`);
  return v;
}
const known = [
  "runs",
  "seed",
  "fault-rate",
  "starts-per-second",
  "owners",
  "request-timeout-ms",
  "heartbeat-every-s",
  "drain-bound-min",
  "prune-ended-after-min",
  "webhook-drop-rate",
  "webhook-duplicate-rate",
  "parallel",
];
for (const a of argv) {
  const name = a.startsWith("--") ? a.slice(2).split("=")[0]! : undefined;
  if (name !== undefined && !known.includes(name))
    throw new Error(`unknown option --${name} (known: ${known.map((k) => "--" + k).join(" ")})`);
}
const O: ChaosOptions = {
  runs: Math.max(1, Math.floor(opt("runs", 2_000))),
  seed: Math.floor(opt("seed", 1)),
  faultRate: opt("fault-rate", 0.05),
  startsPerSecond: opt("starts-per-second", 2),
  owners: Math.max(1, Math.floor(opt("owners", 50))),
  requestTimeoutMs: Math.max(100, Math.floor(opt("request-timeout-ms", 150))),
  heartbeatEveryMs: Math.floor(opt("heartbeat-every-s", 60) * 1000),
  drainBoundMs: Math.floor(opt("drain-bound-min", 120) * 60_000),
  pruneEndedAfterMs: Math.floor(opt("prune-ended-after-min", 2) * 60_000),
  webhookDropRate: opt("webhook-drop-rate", 0.05),
  webhookDuplicateRate: opt("webhook-duplicate-rate", 0.05),
};
// Strategies run this many at a time, one worker thread each: more workers than cores starve
// each other's event loops, and a starved loop misses the 150 ms request deadline (timeouts
// nobody injected).
const PARALLEL = Math.max(1, Math.floor(opt("parallel", availableParallelism())));
// Fails fast on a bad --fault-rate, before any worker starts.
makePlan({ ...O, runs: 1, t0: T0, backoffAfter429Ms: DEFAULT_E2B_BACKOFF_MS });
const command = `npm run bench:chaos${argv.length ? " -- " + argv.join(" ") : ""}`;
const realDate = new Date().toISOString();

// ------------------------------------------------------------------ run: the strategies, PARALLEL at a time
const wallStart = performance.now();
let warnings = 0;
function runStrategy(strategy: ChaosStrategy): Promise<WorkloadResult> {
  process.stderr.write(`${strategy}: ${O.runs} starts …\n`);
  return new Promise((resolve, reject) => {
    // Worker threads do not inherit tsx's loader: register it in the worker, then load the module.
    const entry = new URL("./lib/chaosWorker.ts", import.meta.url).href;
    const boot = `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
    const w = new Worker(boot, { eval: true, workerData: { strategy, options: O } });
    let result: WorkloadResult | undefined;
    w.on("message", (m: { result: WorkloadResult; warnings: number }) => {
      result = m.result;
      warnings += m.warnings;
      process.stderr.write(`${strategy}: done in ${(m.result.wallMs / 1000).toFixed(1)} s wall\n`);
    });
    w.on("error", reject);
    w.on("exit", (code) =>
      result
        ? resolve(result)
        : reject(new Error(`${strategy} worker exited with code ${code} and no result`)),
    );
  });
}
const STRATEGIES: ChaosStrategy[] = ["ours", "ours-pause", "ours-webhooks", "seed"];
const results: WorkloadResult[] = new Array(STRATEGIES.length);
let nextStrategy = 0;
await Promise.all(
  Array.from({ length: Math.min(PARALLEL, STRATEGIES.length) }, async () => {
    while (nextStrategy < STRATEGIES.length) {
      const i = nextStrategy++;
      results[i] = await runStrategy(STRATEGIES[i]!);
    }
  }),
);
const totalWallS = (performance.now() - wallStart) / 1000;

// ------------------------------------------------------------------ report
const [ours, oursPause, oursHooks, seed] = results as [
  WorkloadResult,
  WorkloadResult,
  WorkloadResult,
  WorkloadResult,
];
const n = (x: number, d = 0) =>
  Number.isFinite(x)
    ? x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d })
    : "—";
const table = (head: string[], rows: (string | number)[][]) =>
  [
    `| ${head.join(" | ")} |`,
    `|${head.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");

const main = table(
  [
    "strategy",
    "sandboxes alive with no live run after drain",
    "runs left non-terminal",
    "longest orphan life (sim s)",
    "orphan sandbox-seconds",
    "runs terminal while their sandbox lived (longest, sim s)",
    "E2B calls / start",
    "wall time",
  ],
  results.map((r) => [
    r.strategy,
    r.orphans.aliveOrphansAtEnd,
    r.orphans.nonTerminalRuns,
    n(r.orphans.longestOrphanS, 1),
    n(r.orphans.orphanSandboxSeconds, 0),
    `${r.orphans.terminalWhileAlive} (${n(r.orphans.longestTerminalWhileAliveS, 1)})`,
    n(r.e2bCalls / O.runs, 2),
    `${n(r.wallMs / 1000, 1)} s`,
  ]),
);

const ratio =
  seed.orphans.orphanSandboxSeconds > 0
    ? ours.orphans.orphanSandboxSeconds / seed.orphans.orphanSandboxSeconds
    : ours.orphans.orphanSandboxSeconds === 0
      ? 0
      : Number.POSITIVE_INFINITY;
/** Ours' grace window under this run's env, plus one sweep interval (s): the bound where only the reconciler can help. */
const graceSweepS = (graceFloorMs({ e2bRequestTimeoutMs: O.requestTimeoutMs }) + SWEEP_INTERVAL_MS) / 1000;
type Goal = [goal: string, target: string, measured: string, met: boolean];
/** A goal whose target is none at all. */
const zeroGoal = (goal: string, count: number): Goal => [goal, "0", String(count), count === 0];
/** Runs terminal while their sandbox lived, under every fault but killFakeSuccess (its own bound). */
const twaExceptFakeSuccess = (r: WorkloadResult) =>
  Object.entries(r.orphans.terminalWhileAliveByFault)
    .filter(([k]) => k !== "killFakeSuccess")
    .reduce((sum, [, v]) => sum + v.count, 0);
/** killFakeSuccess (E2B says killed but did not): the longest span, bounded by grace + one sweep. */
const fakeSuccessGoal = (goal: string, r: WorkloadResult): Goal => {
  const f = r.orphans.terminalWhileAliveByFault.killFakeSuccess;
  return [
    goal,
    `≤ ${n(graceSweepS, 0)} s (grace + one sweep interval)`,
    `${n(f?.longestS ?? 0, 1)} s (${f?.count ?? 0} runs)`,
    (f?.longestS ?? 0) <= graceSweepS,
  ];
};
const goals: Goal[] = [
  zeroGoal("sandboxes alive with no live run after drain", ours.orphans.aliveOrphansAtEnd),
  zeroGoal("runs left non-terminal", ours.orphans.nonTerminalRuns),
  [
    "longest orphan life",
    `≤ ${n(graceSweepS, 0)} s (grace + one sweep interval)`,
    `${n(ours.orphans.longestOrphanS, 1)} s`,
    ours.orphans.longestOrphanS <= graceSweepS,
  ],
  zeroGoal(
    "runs terminal while their sandbox lived, any fault but killFakeSuccess",
    twaExceptFakeSuccess(ours),
  ),
  fakeSuccessGoal("… under killFakeSuccess (E2B says killed but did not): longest span", ours),
  [
    "orphan sandbox-seconds",
    `≤ 10 % of the seed's (${n(seed.orphans.orphanSandboxSeconds * 0.1, 0)})`,
    `${n(ours.orphans.orphanSandboxSeconds, 0)} (${n(ratio * 100, 2)} %)`,
    ratio <= 0.1,
  ],
  [
    "workload drained (every run terminal, every sandbox dead)",
    `within ${O.drainBoundMs / 60_000} min of the last start`,
    ours.drained ? `after ${n(ours.drainedAfterLastStartS, 0)} s` : "NO",
    ours.drained,
  ],
];
// The pause policy, side by side with the kill policy under the same plan.
const PAUSE_AFTER_IDLE_S = 300; // SANDBOX_PAUSE_AFTER_IDLE_MS default
const SWEEP_S = 60;
const pauseGoals: Goal[] = [
  zeroGoal(
    "pause policy: sandboxes alive (running or paused) with no live run after drain",
    oursPause.orphans.aliveOrphansAtEnd,
  ),
  zeroGoal("pause policy: runs left non-terminal", oursPause.orphans.nonTerminalRuns),
  zeroGoal(
    "pause policy: paused sandboxes alive past retention + one sweep",
    oursPause.pause.pausedPastRetention,
  ),
  zeroGoal(
    "pause policy: runs terminal while their sandbox lived, any fault but killFakeSuccess",
    twaExceptFakeSuccess(oursPause),
  ),
  fakeSuccessGoal("pause policy, under killFakeSuccess: longest span", oursPause),
  [
    "pause policy: idle compute s per idle period",
    `≤ ${PAUSE_AFTER_IDLE_S + SWEEP_S} (pause after idle + one sweep); kill policy: ${n(ours.pause.idleComputePerPeriodS, 1)}`,
    n(oursPause.pause.idleComputePerPeriodS, 1),
    oursPause.pause.idleComputePerPeriodS <= PAUSE_AFTER_IDLE_S + SWEEP_S,
  ],
  [
    "pause policy: workload drained",
    `within ${O.drainBoundMs / 60_000} min of the last start`,
    oursPause.drained ? `after ${n(oursPause.drainedAfterLastStartS, 0)} s` : "NO",
    oursPause.drained,
  ],
];
goals.push(...pauseGoals);
const pauseTable = table(
  [
    "strategy",
    "idle periods",
    "compute sandbox-s while the user was idle",
    "… per idle period (p99 / max)",
    "paused sandbox-hours",
    "pauses / resumes",
    "resume latency p50 / p95 (wall ms)",
    "paused past retention + one sweep",
    "runs terminal while their sandbox lived",
    "leaked (running or paused) after drain",
    "meter mismatches",
  ],
  results.map((r) => [
    r.strategy,
    r.pause.idlePeriods,
    n(r.pause.idleComputeS, 0),
    `${n(r.pause.idleComputePerPeriodS, 1)} (${n(r.pause.idleComputeP99S, 0)} / ${n(r.pause.idleComputeMaxS, 0)})`,
    n(r.pause.pausedSandboxHours, 1),
    `${r.pause.pauses} / ${r.pause.resumes}`,
    r.pause.resumes ? `${n(r.pause.resumeP50Ms, 0)} / ${n(r.pause.resumeP95Ms, 0)}` : "—",
    r.pause.pausedPastRetention,
    r.pause.terminalWhileLived,
    r.orphans.aliveOrphansAtEnd,
    r.pause.meterMismatches,
  ]),
);

const goalTable = table(
  ['goal (ours; "pause policy" rows: ours under SANDBOX_IDLE_ACTION=pause)', "target", "measured", "met"],
  goals.map(([g, tgt, v, ok]) => [g, tgt, v, ok ? "yes" : "**NO**"]),
);

const twaOf = (r: WorkloadResult, k: string) => {
  const x = r.orphans.terminalWhileAliveByFault?.[k];
  return x ? `${x.count} (${n(x.longestS, 1)} s)` : "0";
};
const faultTable = table(
  [
    "fault (rate each " + O.faultRate + ")",
    "planned",
    "injected: ours (kill)",
    "injected: ours (pause)",
    "injected: ours + webhooks",
    "injected: seed",
    "runs terminal while their sandbox lived: ours (kill)",
    "… ours (pause)",
    "… ours + webhooks",
    "… seed",
  ],
  [
    ...ALL_FAULTS.map((k) => [
      k,
      Math.max(ours.planned[k], oursPause.planned[k]),
      ours.injected[k],
      oursPause.injected[k],
      oursHooks.injected[k],
      seed.injected[k],
      twaOf(ours, k),
      twaOf(oursPause, k),
      twaOf(oursHooks, k),
      twaOf(seed, k),
    ]),
    [
      "(no fault)",
      "",
      "",
      "",
      "",
      "",
      twaOf(ours, "(none)"),
      twaOf(oursPause, "(none)"),
      twaOf(oursHooks, "(none)"),
      twaOf(seed, "(none)"),
    ],
  ],
);

const fmtCounts = (m: Record<string, number>) =>
  Object.entries(m)
    .sort()
    .map(([k, v]) => `${k} ${v}`)
    .join(", ") || "none";
/** Timeouts on calls that carried no timeout fault: every one but a kill's, and kills beyond the injected ones. */
const unplannedTimeouts = (r: WorkloadResult) =>
  Object.entries(r.clientTimeouts).reduce(
    (sum, [ep, v]) =>
      sum +
      (ep === "kill"
        ? Math.max(0, v - r.injected.killTimeout)
        : ep === "pause"
          ? Math.max(0, v - r.injected.pauseTimeout)
          : ep === "connect"
            ? Math.max(0, v - r.injected.resumeTimeout)
            : v),
    0,
  );

const row = (label: string, f: (r: WorkloadResult) => string | number) => [label, ...results.map(f)];
const ctx = table(
  ["", ...results.map((r) => r.strategy)],
  [
    row("starts ok / failed", (r) => `${r.startsOk} / ${r.startsFailed}`),
    row("heartbeats / user stops / sweep ticks", (r) => `${r.heartbeats} / ${r.stopsIssued} / ${r.sweeps}`),
    row("sandboxes created", (r) => r.orphans.sandboxes),
    row("sandbox-seconds in total", (r) => n(r.orphans.sandboxSeconds, 0)),
    row("orphaned sandboxes (any length)", (r) => r.orphans.orphans),
    row("users' commands, by outcome", (r) => fmtCounts(r.commands ?? {})),
    row("sandboxes alive at the end (any)", (r) => r.orphans.aliveAtEnd),
    row(
      "simulated span: last start / end",
      (r) => `${n((r.lastStartAt - T0) / 1000)} s / ${n((r.endAt - T0) / 1000)} s`,
    ),
    row("drained after the last start", (r) => (r.drained ? `${n(r.drainedAfterLastStartS)} s` : "no")),
    row("E2B calls by endpoint", (r) =>
      Object.entries(r.e2bCallsByEndpoint)
        .map(([k, v]) => `${k} ${v}`)
        .join(", "),
    ),
    row("create faults left queued (start never reached create)", (r) => r.staleCreateFaults),
    row("client-side request timeouts, by endpoint", (r) => fmtCounts(r.clientTimeouts)),
    row("… of which not injected (a busy event loop)", unplannedTimeouts),
    ...[...new Set(results.flatMap((r) => Object.keys(r.extra)))].map((k) =>
      row(k, (r) => String(r.extra[k] ?? "—")),
    ),
  ],
);

// How soon the backend knew what E2B knew: webhooks on vs polling alone.
const sec = (x: number) => (Number.isFinite(x) ? `${n(x, 1)} s` : "never");
const lat = (l: Latency) => (l.n === 0 ? "—" : `${sec(l.p50)} / ${sec(l.p95)} / ${sec(l.p99)}`);
const knowingTable = table(
  [
    "strategy",
    "lost create response: creation → id recorded (p50 / p95 / p99)",
    "… → run ended (p50 / p95 / p99)",
    "E2B-side death → run ended (p50 / p95 / p99)",
    "lost creates / E2B-side deaths counted",
  ],
  results.map((r) => [
    r.strategy,
    `${lat(r.knowing.lostCreateIdRecorded)} (${r.knowing.lostCreateIdRecorded.happened} of ${r.knowing.lostCreateIdRecorded.n} recorded)`,
    lat(r.knowing.lostCreateRunEnded),
    lat(r.knowing.e2bDeathRunEnded),
    `${r.knowing.lostCreateIdRecorded.n} / ${r.knowing.e2bDeathRunEnded.n}`,
  ]),
);
const hookGoals: Goal[] = [
  [
    "lost create response: id recorded, p99",
    "≤ 5 s",
    sec(oursHooks.knowing.lostCreateIdRecorded.p99),
    oursHooks.knowing.lostCreateIdRecorded.p99 <= 5,
  ],
  [
    "E2B-side death → run ended, p99",
    "≤ 5 s",
    sec(oursHooks.knowing.e2bDeathRunEnded.p99),
    oursHooks.knowing.e2bDeathRunEnded.p99 <= 5,
  ],
  zeroGoal("sandboxes alive with no live run after drain", oursHooks.orphans.aliveOrphansAtEnd),
  zeroGoal("runs left non-terminal", oursHooks.orphans.nonTerminalRuns),
  zeroGoal(
    "runs terminal while their sandbox lived, any fault but killFakeSuccess (as for ours)",
    twaExceptFakeSuccess(oursHooks),
  ),
  fakeSuccessGoal("… under killFakeSuccess: longest span (as for ours)", oursHooks),
];
const hookGoalTable = table(
  ["goal (ours + webhooks)", "target", "ours + webhooks", "met"],
  hookGoals.map(([g, tgt, v, ok]) => [g, tgt, v, ok ? "yes" : "**NO**"]),
);

const envUsed = oursEnv({ requestTimeoutMs: O.requestTimeoutMs });
const allMet = goals.every((g) => g[3]) && hookGoals.every((g) => g[3]);
const wallOf = (r: WorkloadResult) =>
  `${n(r.wallMs / 1000, 1)} s (starts ${n(r.wallByStep.starts, 0)}, stops ${n(r.wallByStep.stops, 0)}, heartbeats ${n(
    r.wallByStep.heartbeats,
    0,
  )}, sweeps ${n(r.wallByStep.sweeps, 0)})`;
const section = `## \`${command}\`

- date: ${realDate}; machine: \`nproc\` = ${availableParallelism()}, node ${process.version}, ${process.platform}/${process.arch}
- workload: ${O.runs} starts (plan seed ${O.seed}, fault rate ${O.faultRate}), ${O.startsPerSecond} per simulated second by ${O.owners} users
  (after a create answered 429 the next start waits out the ${DEFAULT_E2B_BACKOFF_MS / 1000} s back-off); heartbeats every
  ${O.heartbeatEveryMs / 1000} s while a user is active; sweeps every simulated minute; drain bound ${O.drainBoundMs / 60_000} simulated min.
- ours: production defaults except ${Object.entries(envUsed)
  .map(([k, v]) => `${k}=${v}`)
  .join(
    ", ",
  )}; ended runs pruned ${O.pruneEndedAfterMs < 0 ? "never" : `${O.pruneEndedAfterMs / 60_000} simulated min after they ended`}.
- ours + webhooks: the same, plus lifecycle webhooks (E2B_WEBHOOK_SECRET, registered with admin:registerE2BWebhook):
  delivery latency ${WEBHOOK_LATENCY_MS[0] / 1000}–${WEBHOOK_LATENCY_MS[1] / 1000} simulated s, ${O.webhookDropRate * 100} % of delivery attempts lost (E2B retries: 3, 10 s apart),
  ${O.webhookDuplicateRate * 100} % of events delivered twice (1 s apart). "ours" is the same backend with no webhook registered: polling alone.
- wall time: **${n(totalWallS, 1)} s** in total; the strategies ran ${PARALLEL} at a time (\`--parallel\`, default nproc), one worker thread each — ours ${wallOf(ours)},
  ours + webhooks ${wallOf(oursHooks)}, seed ${wallOf(seed)}.
- goals: **${allMet ? "all met" : "NOT all met"}**

${main}

${goalTable}

**Pause vs kill, side by side** (same plan; idle = the simulated user's idle spans; compute from the emulator's
lifecycle events — created, paused, resumed, killed — checked against its per-sandbox meter):

${pauseTable}
${
  oursPause.pause.pastRetention?.length
    ? `\nPaused spans past retention + one sweep (pause policy):\n${oursPause.pause.pastRetention
        .map((d) => `- ${d}`)
        .join("\n")}\n`
    : ""
}
${knowingTable}

${hookGoalTable}

${faultTable}

${ctx}
`;

const HOW_TO_READ = `## How to read it

- **What runs**: \`npm run bench:chaos\` replays one seeded plan against three strategies in one process, each in its own
  worker thread (own event loop, own simulated clock, own env) with its own local E2B emulator; nothing reaches E2B's cloud
  or a Convex deployment. (a) **ours**: the real functions of \`convex/\` in-process (convex-test, the module map of
  \`scripts/lib/inProcess.ts\` with memoized loaders) and the real \`e2b\` SDK over HTTP; both crons
  (killIdleSandboxes, pauseIdleSandboxes, then reconcileSandboxes) every simulated minute with their self-scheduled
  continuations drained — once with \`SANDBOX_IDLE_ACTION=kill\` ("ours (kill)", production's default) and once with
  \`SANDBOX_IDLE_ACTION=pause\` ("ours (pause)"); both with \`SANDBOX_PAUSED_RETENTION_MS=${CHAOS_PAUSED_RETENTION_MS}\` so paused
  runs end within the drain bound (production default: 24 h).
  (b) **seed**: the seed system re-enacted from /work/shared/seed (bench/lib/chaosSeedStrategy.ts): record → create → one
  update (sandboxId + running); failure path records "failed" then kills; kill = connect + kill, every error = gone;
  sweep cancels stuck-booting runs without a kill and kills idle runs; no tags, no reconciler. Same real SDK.
- **Workload per run**: 40 % idle after the start, 35 % active 1–30 min, 5 % active 50–75 min (past the 1 h max lifetime),
  20 % press stop after 5 s–15 min. 40 % of the users who did not press stop come back after 2–45 idle minutes
  (ours: \`resumeSandboxRun\`; seed: a heartbeat), stay active 1–10 min, then leave for good. A start that failed is
  not touched again by its user.
- **Pause columns**: *compute sandbox-s while the user was idle* = running (not paused) sandbox time inside the user's
  idle spans, per sandbox from the emulator's lifecycle events (running from created or resumed until paused or
  killed; "meter mismatches" counts sandboxes whose total disagrees with the emulator's \`runningMs\` meter: 0); *per idle period* divides it by the number of idle spans of started runs (goal for the pause policy:
  ≤ pause-after-idle 300 s + one 60 s sweep; the kill policy's idle timeout is 600 s). *Resume latency* is the wall time
  of \`resumeSandboxRun\` calls that reached E2B (the emulator adds no resume delay: E2B's ~1 s is not modelled).
  *Paused past retention + one sweep* counts paused spans longer than ${CHAOS_PAUSED_RETENTION_MS / 60_000} + 1 min. *Runs terminal while
  their sandbox lived*: a run ended (stopped/failed) before the sandbox it recorded died.
- **Pause/resume faults** (pause500, pauseTimeout, pauseResponseLost, resume500, resumeTimeout, resumeResponseLost) are
  queued like kill500 on the next pause / connect call, only on ours' emulators (the seed's kill calls connect); the kill
  policy never pauses, so they never fire there. A timeout answers (and acts) 20 ms after the client's deadline; a lost
  response acts, then drops the connection.
- **Orphan**: a sandbox alive while no non-terminal run owns it. A run owns a sandbox when it records its id, or — for a
  strategy whose own code can find sandboxes by tag (ours: \`convexRunId\`) — when it records no id yet and the sandbox
  carries its tag. The seed tags nothing, so a sandbox whose id it never stored is an orphan from birth. Lifetimes come
  from the emulator (\`startedAt\` / \`diedAt\`, simulated clock). "Orphan sandbox-seconds" sums those lives.
- **E2B calls / start**: every HTTP call the strategy's emulator saw (creates, kills, lists, lifetime extensions,
  connects…) divided by the number of starts.
- **Faults**: one plan, drawn per start index from the plan seed (start i has the same faults whatever --runs is, and
  both strategies get the same). The eleven start-path faults are alternatives (at most one per start, each with the
  fault rate); kill500, killTimeout, list500, listIgnoresRunId and killFakeSuccess are drawn independently and queued
  on the strategy's emulator when that start is issued, so they hit the next such call whoever makes it (the seed never
  lists: list faults never reach it); proxyNotFound, envdKilled and secondDeployment are drawn independently per run.
  createLandsLate = the create's connection drops at once while E2B keeps the sandbox an invisible reservation that
  lands 0–70 s later (emulator \`landAfterMs\`); listIgnoresRunId = E2B matches only the namespace part of a list's
  metadata filter (\`ignoreMetadataKeys\`); killFakeSuccess = a kill answers 204 without killing (\`fakeSuccess\`; only
  the reconciler can catch it). The data-plane faults hit the user's command: every run with one (and 10 % of the
  others) runs one \`runCommand\` 30 s after its start, against the emulator's envd (scripted: nothing runs on this
  machine); proxyNotFound = E2B's proxy answers that command 502 "sandbox not found" while the sandbox lives,
  envdKilled = the user killed envd first (every envd call then fails while the control plane says running). Both are
  injected only when the run's start succeeded and its sandbox is alive at that moment. secondDeployment = a second
  deployment of ours (its own in-process database, namespace \`chaos-b\`, the same E2B key and emulator) starts an idle
  run at that moment and runs both its crons every tick; kills of one deployment's sandboxes by the other are counted.
- **Runs terminal while their sandbox lived**: a run marked stopped/failed while a sandbox it records, or (ours) one
  tagged with it, was still alive — how many, and the longest such span. Each is charged to a kill fault that sandbox
  met (killFakeSuccess first), else to its start's fault, else "(no fault)".
  "injected" counts faults that really fired. How each is made: create 500/429/503 and a lost create response
  (E2B creates, then drops the connection) are emulator faults on the next create; a database failure swaps the
  registered function's \`_handler\` for one call (seed: its in-memory write throws; fault labels keep the step names
  they were first given, so results stay comparable); "action dies after create" =
  recordSandboxId throws, E2B_API_URL then points at a closed port for the rest of that action (so the failure path's
  kill fails) and settleKill throws (seed: nothing after its create runs); recordKillFails = markRunning and then
  the failure path's record both throw; recordStartRefusalFails = a 429 and then its record throws; killTimeout = E2B
  answers (and kills) only 20 ms after the client's request deadline, so the caller sees a timeout while the kill
  happens (the driver lets the late answer land before simulated time moves on). A plain \`hang\` is not used: with
  e2b 2.51 on Node 20 a garbage collection during the call can detach the SDK's timeout signal (nodejs/undici#4068,
  through the SDK's \`Request.clone()\`), and the hung call then waits for undici's 300 s headers timeout.
- **ours + webhooks** (beside **ours**, polling alone): the same backend with a lifecycle webhook registered through
  \`admin:registerE2BWebhook\`; tests/emulator/webhooks.ts signs each event the emulator publishes and delivers it into
  convex-test's HTTP router at its due time on the simulated clock (latency drawn uniformly from the range shown; each
  attempt lost with the drop rate and retried by "E2B" up to 3 times, 10 s apart, the interval E2B's docs preview gives;
  duplicates 1 s apart). **e2bKillsSandbox**: E2B ends a start's sandbox on its own 15 s–20 min after the start, if it
  still lives (drawn per start from its own stream, so the other faults of start i are unchanged). **Knowing**: for each
  sandbox whose create response was lost, from its creation to its id recorded on its run ("never" if the run never
  learned it; p99 counts "never" as infinite) and to the run ending; for each such E2B-side death of a sandbox its live
  run recorded, from the death to the run ending. **Runs ended while the sandbox they recorded lived on** counts runs
  made terminal while their own sandbox was still alive at E2B.
- **Client-side timeouts not injected**: requests the SDK abandoned at E2B_REQUEST_TIMEOUT_MS although no fault delayed
  them (the worker's event loop was busy for longer than that, e.g. under load): unplanned chaos, counted separately.
- **Seed assumptions** (the seed document is silent): sandboxes get the SDK's default lifetime (300 s); heartbeats
  extend nothing; stuck-booting = 60 s and idle = 10 min like ours; a user stop kills with the seed's helper, then marks
  the run stopped; same request timeout as ours.
- **Harness artefact, ours**: convex-test has no real indexes (every index range scans its whole table), so ended runs
  are deleted from the table a couple of simulated minutes after they end (like the retention cron, sooner), after their
  final state is archived for the report. A late call about a deleted run sees "missing" instead of "terminal", which
  every function treats alike (the reconciler would kill a listed sandbox as run_missing instead of run_ended).
  \`--prune-ended-after-min -1\` turns it off (slower, same results).
- Options: \`--runs N\` (2000) \`--seed S\` (1) \`--fault-rate R\` (0.05, at most 0.1) \`--starts-per-second\` (2)
  \`--owners\` (50) \`--request-timeout-ms\` (150) \`--heartbeat-every-s\` (60) \`--drain-bound-min\` (120)
  \`--prune-ended-after-min\` (2).
`;

// chaos.md keeps the latest result of every distinct command (e.g. the default and --runs 10000), from chaos.json.
const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "results");
mkdirSync(outDir, { recursive: true });
type Saved = {
  version: 1;
  runs: Record<
    string,
    {
      runs: number;
      date: string;
      section: string;
      options: ChaosOptions;
      totalWallS: number;
      results: WorkloadResult[];
    }
  >;
};
let saved: Saved = { version: 1, runs: {} };
try {
  const prev = JSON.parse(readFileSync(join(outDir, "chaos.json"), "utf8")) as Partial<Saved>;
  if (prev.version === 1 && prev.runs) saved = prev as Saved;
} catch {
  // first run, or an older format: start afresh
}
saved.runs[command] = { runs: O.runs, date: realDate, section, options: O, totalWallS, results };
const sections = Object.values(saved.runs)
  .sort((a, b) => a.runs - b.runs || a.date.localeCompare(b.date))
  .map((r) => r.section);
writeFileSync(
  join(outDir, "chaos.md"),
  `# Chaos benchmark: ours vs the seed strategy\n\nThe latest result of each command; regenerate with the command shown.\n\n${sections.join("\n")}\n${HOW_TO_READ}`,
);
writeFileSync(join(outDir, "chaos.json"), JSON.stringify(saved, null, 2) + "\n");

console.log(`\n${command}   (${O.runs} starts, plan seed ${O.seed}, fault rate ${O.faultRate})`);
console.log(
  `wall ${n(totalWallS, 1)} s — ours ${wallOf(ours)}, ours + webhooks ${wallOf(oursHooks)}, seed ${wallOf(seed)}\n`,
);
console.log(main + "\n");
console.log(goalTable + "\n");
console.log(pauseTable + "\n");
console.log(knowingTable + "\n");
console.log(hookGoalTable + "\n");
console.log(faultTable + "\n");
console.log(ctx + "\n");
console.log(
  `written: bench/results/chaos.md, bench/results/chaos.json (${warnings} console warnings from ours suppressed)`,
);
console.log(allMet ? "all goals met" : "SOME GOALS NOT MET");
process.exit(0);
