// One strategy of the chaos benchmark, in its own worker thread of the benchmark's process: its
// own event loop (an injected timeout or a busy convex-test transaction in one strategy never
// delays the other's HTTP calls), its own simulated clock (each worker has its own `Date`) and
// its own copy of process.env. Both workers build the same plan from the same options.
import { parentPort, workerData } from "node:worker_threads";
import { E2B } from "e2b";
import { E2BEmulator } from "../../tests/emulator/e2bEmulator";
import { DEFAULT_E2B_BACKOFF_MS } from "../../convex/model/admission";
import { SWEEP_INTERVAL_MS } from "../../convex/model/config";
import { installSimulatedClock } from "../../scripts/lib/inProcess";
import { runWorkload, type Strategy } from "./chaosDriver";
import { CHAOS_PAUSED_RETENTION_MS, oursStrategy } from "./chaosOurs";
import { makePlan } from "./chaosPlan";
import { seedStrategy } from "./chaosSeedStrategy";

export type ChaosOptions = {
  runs: number;
  seed: number;
  faultRate: number;
  startsPerSecond: number;
  owners: number;
  requestTimeoutMs: number;
  heartbeatEveryMs: number;
  drainBoundMs: number;
  /** ours: delete runs this long after they ended (convex-test scans whole tables); <0 = never */
  pruneEndedAfterMs: number;
  /** ours + webhooks: share of delivery attempts lost, and of events delivered twice */
  webhookDropRate: number;
  webhookDuplicateRate: number;
};

/** Ours under each idle policy, ours with lifecycle webhooks, and the seed system's strategy. */
export type ChaosStrategy = "ours" | "ours-pause" | "ours-webhooks" | "seed";
/** Simulated latency of a webhook delivery, ms (uniform): E2B publishes, then delivers. */
export const WEBHOOK_LATENCY_MS: [number, number] = [200, 2_000];

export const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

/**
 * The SDK loads undici and builds its HTTP agent on its first call, inside that call's request
 * deadline: with a 150 ms deadline the first create would time out. Warm it up against a
 * throwaway emulator, so that no call of the workload (and no count) is affected.
 */
async function warmUp() {
  const emu = await E2BEmulator.start({ apiKey: "warm-up" });
  try {
    const sdk = new E2B({ apiKey: "warm-up", apiUrl: emu.url, sandboxUrl: emu.url } as ConstructorParameters<
      typeof E2B
    >[0]);
    for (let i = 0; i < 3; i++) {
      const s = await sdk.Sandbox.create("base");
      await sdk.Sandbox.kill(s.sandboxId);
    }
  } finally {
    await emu.stop();
  }
}

async function main() {
  const { strategy, options: O } = workerData as { strategy: ChaosStrategy; options: ChaosOptions };
  let warnings = 0;
  console.warn = () => void warnings++; // ours logs each cleanup it leaves to the sweep: expected under chaos
  const plans = makePlan({
    runs: O.runs,
    seed: O.seed,
    faultRate: O.faultRate,
    startsPerSecond: O.startsPerSecond,
    owners: O.owners,
    t0: T0,
    backoffAfter429Ms: DEFAULT_E2B_BACKOFF_MS,
  });
  await warmUp();
  const clock = installSimulatedClock(T0);
  const strat: Strategy =
    strategy !== "seed"
      ? await oursStrategy({
          owners: O.owners,
          requestTimeoutMs: O.requestTimeoutMs,
          pruneEndedAfterMs: O.pruneEndedAfterMs,
          idleAction: strategy === "ours-pause" ? "pause" : "kill",
          ...(strategy === "ours-webhooks"
            ? {
                webhooks: {
                  seed: O.seed,
                  dropRate: O.webhookDropRate,
                  duplicateRate: O.webhookDuplicateRate,
                  latencyMs: WEBHOOK_LATENCY_MS,
                },
              }
            : {}),
        })
      : await seedStrategy({
          requestTimeoutMs: O.requestTimeoutMs,
          bootTimeoutMs: 60_000,
          idleTimeoutMs: 600_000,
          killConcurrency: 16,
        });
  try {
    const result = await runWorkload(strat, plans, {
      clock,
      t0: T0,
      sweepIntervalMs: SWEEP_INTERVAL_MS,
      heartbeatEveryMs: O.heartbeatEveryMs,
      requestTimeoutMs: O.requestTimeoutMs,
      drainBoundMs: O.drainBoundMs,
      pausedRetentionMs: CHAOS_PAUSED_RETENTION_MS,
      progress: (m) => process.stderr.write(`  … ${m}\n`),
    });
    parentPort!.postMessage({ result, warnings });
  } finally {
    await strat.close();
    clock.restore();
  }
}

if (parentPort) await main();
