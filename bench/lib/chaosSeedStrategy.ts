// Strategy (b): the seed system's lifecycle, re-enacted from /work/shared/seed/*.txt as plain
// TypeScript — an in-memory runs table with the same fault plan on its "database" writes, and
// the REAL e2b SDK against this strategy's own emulator. What the seed document shows:
//   start:   record the run "booting" → Sandbox.create → ONE update storing sandboxId + "running";
//            on failure: record "failed" THEN kill (a throwing record skips the kill).
//   kill:    Sandbox.connect(id) + sandbox.kill(), EVERY error treated as "already gone".
//   sweep:   runs stuck "booting" are marked "canceled" WITHOUT a kill (internalFindStuckBooting
//            finds them, but they lack a sandboxId); idle "running" runs are killed with that
//            helper and marked "stopped" whatever it returned.
//   no tags, no reconciler, no lifetime management.
// Assumptions where the seed document is silent (stated in the report):
//   - sandboxes get the SDK's default lifetime (Sandbox.create without timeoutMs: 300 s), and a
//     heartbeat only updates lastActivityAt (nothing extends the sandbox);
//   - "stuck booting" = booting longer than 60 s, idle = no activity for 10 min, sweep every
//     minute: the same figures as ours;
//   - a user stop kills with the same helper, then marks the run "stopped";
//   - its E2B calls use the same short request timeout as ours (the SDK default is 60 s, which
//     would only make an injected hang cost more wall time, not change what happens).
import { E2B, RateLimitError } from "e2b";
import { E2BEmulator, type EmulatedSandbox } from "../../tests/emulator/e2bEmulator";
import type { RunFinal } from "./chaosMetrics";
import { ALL_FAULTS, type FaultKind, type StartPlan } from "./chaosPlan";
import type { StartOutcome, Strategy } from "./chaosDriver";

const API_KEY = "e2b_chaos_seed_key";

type SeedStatus = "booting" | "running" | "failed" | "stopped" | "canceled";
type SeedRun = {
  id: string;
  ownerId: string;
  status: SeedStatus;
  sandboxId?: string;
  createdAt: number;
  lastActivityAt: number;
  endedAt?: number;
};
const TERMINAL: readonly SeedStatus[] = ["failed", "stopped", "canceled"];

class DbDown extends Error {
  constructor() {
    super("chaos: simulated database failure");
  }
}

async function mapWithConcurrency<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export type SeedOptions = {
  requestTimeoutMs: number;
  bootTimeoutMs: number;
  idleTimeoutMs: number;
  killConcurrency: number;
};

export async function seedStrategy(o: SeedOptions): Promise<Strategy> {
  const emu = await E2BEmulator.start({ apiKey: API_KEY, clock: () => Date.now() });
  // Its own connection config (not the env vars ours reads), pointed at its own emulator.
  const client = new E2B({
    apiKey: API_KEY,
    apiUrl: emu.url,
    sandboxUrl: emu.url,
    requestTimeoutMs: o.requestTimeoutMs,
  } as ConstructorParameters<typeof E2B>[0]);
  const runs = new Map<string, SeedRun>();
  const runByStart = new Map<number, string>();
  const injected = Object.fromEntries(ALL_FAULTS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const counters = { startErrors: 0, canceledWithoutKill: 0, killErrors: {} as Record<string, number> };
  let nextId = 1;

  const update = (run: SeedRun, patch: Partial<SeedRun>) => {
    Object.assign(run, patch);
    if (patch.status && TERMINAL.includes(patch.status) && run.endedAt === undefined)
      run.endedAt = Date.now();
  };

  /** The seed's killSandboxSafely: connect + kill; every error means "gone". */
  const killSandbox = async (sandboxId: string) => {
    try {
      const sandbox = await client.Sandbox.connect(sandboxId);
      await sandbox.kill();
    } catch (err) {
      // e.g. SandboxNotFoundError (it expired: truly gone), SandboxError 500, TimeoutError
      const name = (err as { name?: string }).name ?? "Error";
      counters.killErrors[name] = (counters.killErrors[name] ?? 0) + 1;
    }
  };

  return {
    name: "seed",
    emu,
    tagOwns: false, // it tags nothing: only a recorded sandboxId makes a sandbox findable
    injected,

    async start(p: StartPlan): Promise<StartOutcome> {
      const f = p.startFault;
      // 1. internalCreate: the run, "booting"
      if (f === "createRunFails") {
        injected.createRunFails++;
        counters.startErrors++;
        return { ok: false, code: "db_down" };
      }
      const run: SeedRun = {
        id: `seed-${nextId++}`,
        ownerId: `chaos-user-${p.owner}`,
        status: "booting",
        createdAt: Date.now(),
        lastActivityAt: Date.now(),
      };
      runs.set(run.id, run);
      runByStart.set(p.index, run.id);
      let sandboxId: string | undefined;
      try {
        // 2. Sandbox.create, SDK default lifetime
        const sandbox = await client.Sandbox.create("base");
        sandboxId = sandbox.sandboxId;
        if (f === "actionDiesAfterCreate") {
          injected.actionDiesAfterCreate++;
          counters.startErrors++;
          return { ok: false, code: "action_died" }; // nothing after the create ever runs
        }
        // 3. ONE internalUpdate: sandboxId + "running"
        if (f === "storeSandboxIdFails" || f === "markRunRunningFails" || f === "recordKillFails") {
          if (f !== "recordKillFails") injected[f]++;
          throw new DbDown();
        }
        update(run, { sandboxId, status: "running", lastActivityAt: Date.now() });
        return { ok: true, runId: run.id };
      } catch (err) {
        counters.startErrors++;
        // failure path: record "failed" THEN kill; a record that throws skips the kill
        const refused = err instanceof RateLimitError;
        if ((f === "recordKillFails" && !refused) || (f === "recordStartRefusalFails" && refused)) {
          injected[f]++;
          return { ok: false, code: "db_down" };
        }
        update(run, { status: "failed" });
        if (sandboxId !== undefined) await killSandbox(sandboxId);
        return {
          ok: false,
          code: err instanceof DbDown ? "db_down" : ((err as { name?: string }).name ?? "error"),
        };
      }
    },

    async heartbeat(_p, runId) {
      const run = runs.get(runId)!;
      if (run.status !== "running") return "done";
      update(run, { lastActivityAt: Date.now() });
      return "continue";
    },

    async stop(_p, runId) {
      const run = runs.get(runId)!;
      if (TERMINAL.includes(run.status)) return;
      if (run.sandboxId !== undefined) await killSandbox(run.sandboxId);
      update(run, { status: "stopped" });
    },

    async sweep() {
      const now = Date.now();
      const idle: SeedRun[] = [];
      for (const run of runs.values()) {
        if (run.status === "booting" && now - run.createdAt > o.bootTimeoutMs) {
          update(run, { status: "canceled" }); // no sandboxId known: nothing is killed
          counters.canceledWithoutKill++;
        } else if (run.status === "running" && now - run.lastActivityAt > o.idleTimeoutMs) {
          idle.push(run);
        }
      }
      await mapWithConcurrency(idle, o.killConcurrency, async (run) => {
        if (run.sandboxId !== undefined) await killSandbox(run.sandboxId);
        update(run, { status: "stopped" });
      });
    },

    async allRunsTerminal() {
      for (const run of runs.values()) if (!TERMINAL.includes(run.status)) return false;
      return true;
    },

    async finalRuns(): Promise<RunFinal[]> {
      return [...runs.values()].map((r) => ({
        runId: r.id,
        sandboxId: r.sandboxId,
        terminal: TERMINAL.includes(r.status),
        endedAt: r.endedAt,
      }));
    },

    runOfSandbox(_s: EmulatedSandbox, startIndex: number | undefined) {
      return startIndex === undefined ? undefined : runByStart.get(startIndex);
    },

    async extra() {
      const status: Record<string, number> = {};
      for (const r of runs.values()) status[r.status] = (status[r.status] ?? 0) + 1;
      return {
        "runs by status": Object.entries(status)
          .sort()
          .map(([k, v]) => `${k} ${v}`)
          .join(", "),
        "kill helper errors, all treated as gone": Object.entries(counters.killErrors)
          .sort()
          .map(([k, v]) => `${k} ${v}`)
          .join(", "),
        "runs canceled without a kill": counters.canceledWithoutKill,
      };
    },

    async close() {
      await emu.stop();
    },
  };
}
