// Strategy (a), "ours": the REAL Convex functions of convex/, in-process with convex-test, the
// REAL e2b SDK over HTTP against this strategy's own emulator, on the simulated clock.
//
// Database-side faults: one registered function's `_handler` is swapped for a throwing one for
// exactly one call, armed just before the start and disarmed (if it did not fire) right after:
// starts run one at a time, so the fault can only hit the intended call.
// "The action dies right after create" is simulated as: storeSandboxId throws, and at that
// moment E2B_API_URL is pointed at a closed loopback port for the rest of that action (so the
// failure path's kill fails with a refused connection, without touching the emulator's fault
// queues), and recordKill throws. From E2B's and the database's side that is exactly an action
// that vanished after its create returned: a tagged sandbox, a "booting" run without sandboxId.
import { convexTest } from "convex-test";
import { api, internal } from "../../convex/_generated/api";
import type { Doc } from "../../convex/_generated/dataModel";
import * as lifecycle from "../../convex/lifecycle";
import schema from "../../convex/schema";
import { convexModules } from "../../scripts/lib/inProcess";
import { E2BEmulator, type EmulatedSandbox, useEmulatorEnv } from "../../tests/emulator/e2bEmulator";
import type { RunFinal } from "./chaosMetrics";
import { WebhookEmulator } from "../../tests/emulator/webhooks";
import { ALL_FAULTS, type FaultKind, prng, type StartPlan } from "./chaosPlan";
import type { StartOutcome, Strategy } from "./chaosDriver";

const API_KEY = "e2b_chaos_key";
/** Nothing listens on port 1: connections are refused at once. */
const DEAD_URL = "http://127.0.0.1:1";

/**
 * newInProcessConvex() from scripts/lib/inProcess.ts, with each module loader memoized: convex-test
 * calls the loader on every function call, and through tsx every dynamic import() is a round
 * trip to the loader thread (about 10 % of the benchmark's CPU). Same modules, same instances.
 */
export function newChaosConvex() {
  const modules = Object.fromEntries(
    Object.entries(convexModules()).map(([key, load]) => {
      let loaded: Promise<unknown> | undefined;
      return [key, () => (loaded ??= load())];
    }),
  );
  return convexTest({ schema, modules });
}

type Handler = { _handler: (...a: unknown[]) => unknown };

/** Makes the next call of a registered function throw, once. */
function armFailure(fn: unknown, onFire?: () => void) {
  const f = fn as Handler;
  const original = f._handler;
  let fired = false;
  f._handler = async () => {
    f._handler = original;
    fired = true;
    onFire?.();
    throw new Error("chaos: simulated database failure");
  };
  return {
    get fired() {
      return fired;
    },
    disarm() {
      if (!fired) f._handler = original;
    },
  };
}

export type OursOptions = {
  owners: number;
  requestTimeoutMs: number;
  /**
   * Delete runs this long after they ended, at each sweep tick (< 0: never). convex-test has no
   * real indexes: every index range scans the whole table, so with thousands of ended runs each
   * start and sweep costs O(all runs ever) instead of production's O(rows in range). Deleting
   * ended runs acts like an eager retention job: it changes no answer an index range gives for a
   * live run; a late call about a deleted run sees "missing" instead of "terminal", which every
   * function treats alike (the reconciler kills a listed sandbox as run_missing instead of
   * run_ended). Their final state is archived for the report first.
   */
  pruneEndedAfterMs: number;
  /** the idle policy: "kill" (production default) or "pause" */
  idleAction?: "kill" | "pause";
  env?: Record<string, string>;
  /**
   * Lifecycle webhooks on: registered with admin:registerE2BWebhook, delivered by
   * tests/emulator/webhooks.ts into convex-test's HTTP router on the simulated clock, with
   * E2B's retries (3, 10 s apart), seeded random latency, drops and duplicates.
   */
  webhooks?: { seed: number; dropRate: number; duplicateRate: number; latencyMs: [number, number] };
};

/**
 * Paused runs end only through their retention (or a stop, or the max lifetime): a short one
 * lets the workload drain within the benchmark's bound. Both policies get the same value.
 */
export const CHAOS_PAUSED_RETENTION_MS = 30 * 60_000;

/** The env this run uses; every other knob keeps its production default. */
export function oursEnv(
  o: Pick<OursOptions, "requestTimeoutMs" | "env" | "idleAction">,
): Record<string, string> {
  return {
    SANDBOX_NAMESPACE: "chaos",
    SANDBOX_TEMPLATES: "base",
    // Quotas out of the way: the workload is many users' worth of starts.
    SANDBOX_MAX_ACTIVE_PER_USER: "1000",
    SANDBOX_STARTS_PER_MINUTE_PER_USER: "10000",
    SANDBOX_MAX_QUEUED_STARTS_PER_USER: "100",
    // The global create throttle makes the start action REALLY sleep for its slot when starts
    // come faster than this in simulated time: 1000/s keeps every slot free.
    E2B_CREATES_PER_SECOND: "1000",
    // Bounds each E2B call in REAL time: what an injected kill timeout costs.
    E2B_REQUEST_TIMEOUT_MS: String(o.requestTimeoutMs),
    SANDBOX_IDLE_ACTION: o.idleAction ?? "kill",
    SANDBOX_PAUSED_RETENTION_MS: String(CHAOS_PAUSED_RETENTION_MS),
    ...(o.env ?? {}),
  };
}

export async function oursStrategy(o: OursOptions): Promise<Strategy> {
  const emu = await E2BEmulator.start({ apiKey: API_KEY, clock: () => Date.now() });
  const restoreE2BEnv = useEmulatorEnv(emu, API_KEY);
  const env = {
    ...oursEnv(o),
    ...(o.webhooks
      ? { E2B_WEBHOOK_SECRET: "whsec_chaos", CONVEX_SITE_URL: "https://chaos.convex.site" }
      : {}),
  };
  const savedEnv = Object.keys(env).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, env);

  const t = newChaosConvex();
  const users = Array.from({ length: o.owners }, (_, i) =>
    t.withIdentity({ subject: `chaos-user-${i}`, name: `User ${i}` }),
  );
  const injected = Object.fromEntries(ALL_FAULTS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const counters = {
    startErrors: {} as Record<string, number>,
    stopErrors: 0,
    heartbeatErrors: 0,
    sweepErrors: 0,
    resumeErrors: {} as Record<string, number>,
    webhookErrors: 0,
  };
  const drain = () => t.finishAllScheduledFunctions(() => {}, 1_000_000);
  let hooks: WebhookEmulator | undefined;
  if (o.webhooks) {
    const w = o.webhooks;
    const random = prng(w.seed);
    const [lo, hi] = w.latencyMs;
    hooks = new WebhookEmulator({
      deliver: (url, init) => t.fetch(new URL(url).pathname, init),
      clock: () => Date.now(),
      latencyMs: () => Math.round(lo + random() * (hi - lo)),
      retries: { max: 3, intervalMs: 10_000 },
    }).attach(emu);
    hooks.faultRates({ drop: w.dropRate, duplicate: w.duplicateRate }, random);
    // Setup, not workload: the first plain fetch warms up outside the 150 ms request deadline.
    process.env.E2B_REQUEST_TIMEOUT_MS = "10000";
    await t.action(internal.admin.registerE2BWebhook, {});
    process.env.E2B_REQUEST_TIMEOUT_MS = String(o.requestTimeoutMs);
  }
  type Archived = { final: RunFinal; status: string; endReason: string };
  const archive: Archived[] = [];
  const archived = (r: Doc<"sandboxRuns">): Archived => ({
    final: {
      runId: r._id,
      sandboxId: r.sandboxId,
      terminal: r.status === "stopped" || r.status === "failed",
      endedAt: r.endedAt,
    },
    status: r.status,
    endReason: r.endReason ?? "-",
  });
  const prune = async () => {
    if (o.pruneEndedAfterMs < 0) return;
    const cutoff = Date.now() - o.pruneEndedAfterMs;
    const gone = await t.run(async (ctx) => {
      const out: Doc<"sandboxRuns">[] = [];
      for (const status of ["stopped", "failed"] as const) {
        // terminal runs keep deadlineAt = endedAt
        const old = await ctx.db
          .query("sandboxRuns")
          .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", status).lt("deadlineAt", cutoff))
          .collect();
        for (const r of old) await ctx.db.delete(r._id);
        out.push(...old);
      }
      return out;
    });
    for (const r of gone) archive.push(archived(r));
  };
  const allRuns = async () => [
    ...archive,
    ...(await t.run((ctx) => ctx.db.query("sandboxRuns").collect())).map(archived),
  ];

  return {
    name: o.webhooks ? "ours + webhooks" : o.idleAction === "pause" ? "ours (pause)" : "ours (kill)",
    emu,
    ...(hooks
      ? {
          webhooks: {
            nextDueAt: () => hooks.nextDueAt(),
            async deliverDue(until: number) {
              try {
                await hooks.flush(until);
              } catch {
                counters.webhookErrors++;
              }
              await drain();
            },
          },
        }
      : {}),
    tagOwns: true,
    injected,

    async start(p: StartPlan): Promise<StartOutcome> {
      const arms: ReturnType<typeof armFailure>[] = [];
      switch (p.startFault) {
        case "createRunFails":
          arms.push(armFailure(lifecycle.createRun));
          break;
        case "storeSandboxIdFails":
          arms.push(armFailure(lifecycle.storeSandboxId));
          break;
        case "markRunRunningFails":
          arms.push(armFailure(lifecycle.markRunRunning));
          break;
        case "recordKillFails":
          arms.push(armFailure(lifecycle.markRunRunning), armFailure(lifecycle.recordKill));
          break;
        case "recordStartRefusalFails": // the driver queued the 429
          arms.push(armFailure(lifecycle.recordStartRefusal));
          break;
        case "actionDiesAfterCreate":
          arms.push(
            armFailure(lifecycle.storeSandboxId, () => {
              process.env.E2B_API_URL = DEAD_URL;
            }),
            armFailure(lifecycle.recordKill),
          );
          break;
        default:
          break;
      }
      try {
        const r = await users[p.owner]!.action(api.actions.startSandboxRun.startSandboxRun, {});
        return { ok: true, runId: r.sandboxRunId };
      } catch (err) {
        const code = (err as { data?: { code?: string } }).data?.code ?? "thrown";
        counters.startErrors[code] = (counters.startErrors[code] ?? 0) + 1;
        return { ok: false, code };
      } finally {
        process.env.E2B_API_URL = emu.url;
        if (p.startFault && arms.length > 0 && arms.every((a) => a.fired)) injected[p.startFault]++;
        for (const a of arms) a.disarm();
      }
    },

    async heartbeat(p, runId) {
      try {
        const r = await users[p.owner]!.mutation(api.runs.heartbeat, { sandboxRunId: runId });
        return r.status === "running" || r.status === "booting" ? "continue" : "done";
      } catch {
        counters.heartbeatErrors++;
        return "done";
      }
    },

    async resume(p, runId) {
      const before = emu.calls.length;
      const t0 = performance.now();
      let live = true;
      try {
        await users[p.owner]!.action(api.actions.resumeSandboxRun.resumeSandboxRun, { sandboxRunId: runId });
      } catch (err) {
        live = false; // ended, or E2B failed: the user gives up on this run
        const code = (err as { data?: { code?: string } }).data?.code ?? "thrown";
        counters.resumeErrors[code] = (counters.resumeErrors[code] ?? 0) + 1;
      }
      const wallMs = performance.now() - t0;
      let resumed = false;
      for (let k = before; k < emu.calls.length; k++)
        if (emu.calls[k]!.endpoint === "connect") resumed = true;
      return { live, resumed: resumed && live, wallMs };
    },

    async stop(p, runId) {
      try {
        await users[p.owner]!.action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId: runId });
      } catch {
        counters.stopErrors++;
      }
    },

    async sweep() {
      // Both crons fire every minute; run one after the other (a valid interleaving, and a
      // deterministic one), each with its self-scheduled continuations drained.
      try {
        await t.action(internal.actions.killIdleSandboxes.killIdleSandboxes, {});
      } catch {
        counters.sweepErrors++;
      }
      await drain();
      try {
        await t.action(internal.actions.pauseIdleSandboxes.pauseIdleSandboxes, {});
      } catch {
        counters.sweepErrors++;
      }
      await drain();
      try {
        await t.action(internal.actions.reconcileSandboxes.reconcileSandboxes, {});
      } catch {
        counters.sweepErrors++;
      }
      await drain();
      await prune();
    },

    async allRunsTerminal() {
      return t.run(async (ctx) => {
        for (const status of ["booting", "running", "stopping", "pausing", "paused", "resuming"] as const) {
          const one = await ctx.db
            .query("sandboxRuns")
            .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", status))
            .first();
          if (one) return false;
        }
        return true;
      });
    },

    async finalRuns(): Promise<RunFinal[]> {
      // Pruning deletes runs, not their events: when each run first recorded its sandbox id.
      const recorded = new Map(
        await t.run(async (ctx) =>
          (
            await ctx.db
              .query("runEvents")
              .withIndex("by_kind_and_at", (q) => q.eq("kind", "sandbox_recorded"))
              .order("desc")
              .collect()
          ).map((e) => [e.runId as string, e.at] as const),
        ),
      );
      return (await allRuns()).map((a) => {
        const at = recorded.get(a.final.runId);
        return at === undefined ? a.final : { ...a.final, sandboxRecordedAt: at };
      });
    },

    runOfSandbox(s: EmulatedSandbox) {
      return s.metadata.convexRunId;
    },

    async extra() {
      const runs = await allRuns();
      const x = await t.run(async (ctx) => {
        const kills = await ctx.db
          .query("runEvents")
          .withIndex("by_kind_and_at", (q) => q.eq("kind", "kill"))
          .collect();
        const reconcileKills = await ctx.db
          .query("runEvents")
          .withIndex("by_kind_and_at", (q) => q.eq("kind", "reconcile_kill"))
          .collect();
        const orphanRecords = await ctx.db.query("orphanSandboxes").collect();
        const count = (xs: string[]) =>
          xs.reduce<Record<string, number>>((m, k) => ((m[k] = (m[k] ?? 0) + 1), m), {});
        return {
          status: count(runs.map((r) => r.status)),
          endReason: count(runs.map((r) => r.endReason)),
          killFailures: count(
            kills.filter((k) => k.kill?.outcome === "failed").map((k) => (k.kill as { kind: string }).kind),
          ),
          reconcileKills: reconcileKills.length + orphanRecords.length,
        };
      });
      const fmt = (m: Record<string, number>) =>
        Object.entries(m)
          .sort()
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "-";
      return {
        "runs by status": fmt(x.status),
        "runs by end reason": fmt(x.endReason),
        "start errors seen by callers": fmt(counters.startErrors),
        "failed kill attempts (by kind)": fmt(x.killFailures),
        "sandboxes killed by the reconciler": x.reconcileKills,
        "ended runs pruned from the table (harness)": archive.length,
        "stop / heartbeat / sweep action errors": `${counters.stopErrors} / ${counters.heartbeatErrors} / ${counters.sweepErrors}`,
        "resume errors seen by callers (run ended, or E2B failed)": fmt(counters.resumeErrors),
        ...(hooks ? { "webhook deliveries": webhookSummary(hooks, counters.webhookErrors) } : {}),
      };
    },

    async close() {
      restoreE2BEnv();
      for (const [k, v] of savedEnv) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await emu.stop();
    },
  };
}

/** Attempts by what became of them, for the report. */
function webhookSummary(hooks: WebhookEmulator, errors: number): string {
  const by: Record<string, number> = {};
  const bump = (k: string) => (by[k] = (by[k] ?? 0) + 1);
  for (const d of hooks.deliveries) {
    bump(d.dropped ? "dropped" : d.status === undefined ? "pending" : `HTTP ${d.status}`);
    if (d.attempt > 1) bump("retries");
    if (d.fault?.duplicate) bump("duplicated");
  }
  const events = new Set(hooks.deliveries.map((d) => d.eventId)).size;
  return `${events} events, ${hooks.deliveries.length} attempts: ${Object.entries(by)
    .sort()
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")}${errors ? `, ${errors} delivery errors` : ""}`;
}
