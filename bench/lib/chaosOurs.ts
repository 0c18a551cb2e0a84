// Strategy (a), "ours": the REAL Convex functions of convex/, in-process with convex-test, the
// REAL e2b SDK over HTTP against this strategy's own emulator, on the simulated clock.
//
// Database-side faults: one registered function's `_handler` is swapped for a throwing one for
// exactly one call, armed just before the start and disarmed (if it did not fire) right after:
// starts run one at a time, so the fault can only hit the intended call.
// "The action dies right after create" is simulated as: recordSandboxId throws, and at that
// moment E2B_API_URL is pointed at a closed loopback port for the rest of that action (so the
// failure path's kill fails with a refused connection, without touching the emulator's fault
// queues), and settleKill throws. From E2B's and the database's side that is exactly an action
// that vanished after its create returned: a tagged sandbox, a "booting" run without sandboxId.
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { convexTest } from "convex-test";
import { api, internal } from "../../convex/_generated/api";
import type { Doc } from "../../convex/_generated/dataModel";
import * as lifecycle from "../../convex/lifecycle";
import schema from "../../convex/schema";
import { convexModules } from "../../scripts/lib/inProcess";
import { type ArmedFailure, failNextCall } from "../../tests/drivers";
import { type EmulatedSandbox, useEmulatorEnv } from "../../tests/emulator/e2bEmulator";
import { startEmulatorWithEnvd } from "../../tests/emulator/envd";
import type { RunFinal } from "./chaosMetrics";
import { WebhookEmulator } from "../../tests/emulator/webhooks";
import { ALL_FAULTS, type FaultKind, prng, type StartPlan } from "./chaosPlan";
import type { StartOutcome, Strategy } from "./chaosDriver";

const API_KEY = "e2b_chaos_key";
/** The second deployment of the secondDeployment fault: same E2B key, its own namespace. */
const OTHER_NAMESPACE = "chaos-b";
const OTHER_PREFIX = "b:";
/** Query parameter the second deployment's path to E2B adds to every call, so its calls are known. */
const OTHER_MARK = "chaosDeployment=b";

/**
 * The second deployment's way to E2B: a loopback forwarder that marks each request with
 * OTHER_MARK (E2B ignores unknown query parameters; the emulator records the query), so the
 * report can tell whose call killed what even when a call arrives after its caller gave up.
 */
async function markingForwarder(target: string): Promise<{ url: string; close(): Promise<void> }> {
  const to = new URL(target);
  const server = http.createServer((req, res) => {
    const path = req.url!.includes("?") ? `${req.url}&${OTHER_MARK}` : `${req.url}?${OTHER_MARK}`;
    const up = http.request(
      { host: to.hostname, port: to.port, method: req.method, path, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", () => req.socket.destroy());
    res.on("close", () => {
      if (!res.writableEnded) up.destroy(); // the caller gave up: so does the forwarded call
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
/** Nothing listens on port 1: connections are refused at once. */
const DEAD_URL = "http://127.0.0.1:1";

/**
 * newInProcessConvex() from scripts/lib/inProcess.ts, with each module loader memoized: convex-test
 * calls the loader on every function call, and through tsx every dynamic import() is a round
 * trip to the loader thread (about 10 % of the benchmark's CPU). Same modules, same instances.
 */
/** How long the harness keeps handled-event records (simulated ms): see prune(). */
const WEBHOOK_EVENTS_KEPT_MS = 5 * 60_000;

export function newChaosConvex() {
  const modules = Object.fromEntries(
    Object.entries(convexModules()).map(([key, load]) => {
      let loaded: Promise<unknown> | undefined;
      return [key, () => (loaded ??= load())];
    }),
  );
  return convexTest({ schema, modules });
}

/** Makes the next call of a registered function throw, once (the suite's own injection). */
const armFailure = (fn: unknown, onFire?: () => void) =>
  failNextCall(fn, { message: "chaos: simulated database failure", ...(onFire ? { onFire } : {}) });

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
  // envd answers the users' commands from a script: nothing runs on this machine.
  const emu = await startEmulatorWithEnvd({
    apiKey: API_KEY,
    clock: () => Date.now(),
    envd: { runMode: "scripted", script: () => ({ stdout: "ok\n" }) },
  });
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
  const caughtUp: Record<string, number> = {}; // by event kind, tallied as prune() deletes them
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
    // Handled-event records too (production keeps them for the retention window): convex-test
    // visits a whole table per index range, so a dedupe lookup would cost O(events so far).
    // Every retry and catch-up re-read of an event comes within a minute of it; they are
    // tallied by how they came before they go.
    const events = await t.run(async (ctx) => {
      const old = await ctx.db
        .query("webhookEvents")
        .withIndex("by_at", (q) => q.lt("at", Date.now() - WEBHOOK_EVENTS_KEPT_MS))
        .collect();
      for (const e of old) await ctx.db.delete(e._id);
      return old;
    });
    for (const e of events) if (e.via === "catch_up") tallyKind(caughtUp, e.type);
  };
  const allRuns = async () => [
    ...archive,
    ...(await t.run((ctx) => ctx.db.query("sandboxRuns").collect())).map(archived),
  ];

  // The second deployment: its own database and users, the same E2B key and emulator (reached
  // through a forwarder that marks its calls), its own namespace. Its functions run only while
  // process.env says so, and every one of its scheduled continuations is drained before the env
  // is switched back.
  let other:
    | {
        t: ReturnType<typeof newChaosConvex>;
        users: ReturnType<ReturnType<typeof newChaosConvex>["withIdentity"]>[];
        forwarder: Awaited<ReturnType<typeof markingForwarder>>;
      }
    | undefined;
  const asOther = async <T>(fn: (o: NonNullable<typeof other>) => Promise<T>): Promise<T> => {
    if (!other) {
      const ot = newChaosConvex();
      other = {
        t: ot,
        users: Array.from({ length: 10 }, (_, i) => ot.withIdentity({ subject: `other-user-${i}` })),
        forwarder: await markingForwarder(emu.url),
      };
    }
    const saved = { ns: process.env.SANDBOX_NAMESPACE, url: process.env.E2B_API_URL };
    process.env.SANDBOX_NAMESPACE = OTHER_NAMESPACE;
    process.env.E2B_API_URL = other.forwarder.url;
    try {
      const r = await fn(other);
      await other.t.finishAllScheduledFunctions(() => {}, 1_000_000);
      return r;
    } finally {
      process.env.SANDBOX_NAMESPACE = saved.ns;
      process.env.E2B_API_URL = saved.url;
    }
  };
  const otherRuns = async () =>
    other ? (await other.t.run((ctx) => ctx.db.query("sandboxRuns").collect())).map(archived) : [];

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
      const arms: ArmedFailure[] = [];
      switch (p.startFault) {
        case "createRunFails":
          arms.push(armFailure(lifecycle.admitStart));
          break;
        case "storeSandboxIdFails":
          arms.push(armFailure(lifecycle.recordSandboxId));
          break;
        case "markRunRunningFails":
          arms.push(armFailure(lifecycle.markRunning));
          break;
        case "recordKillFails":
          arms.push(armFailure(lifecycle.markRunning), armFailure(lifecycle.settleKill));
          break;
        case "recordStartRefusalFails": // the driver queued the 429
          arms.push(armFailure(lifecycle.recordStartRefused));
          break;
        case "actionDiesAfterCreate":
          arms.push(
            armFailure(lifecycle.recordSandboxId, () => {
              process.env.E2B_API_URL = DEAD_URL;
            }),
            armFailure(lifecycle.settleKill),
          );
          break;
        default:
          break;
      }
      try {
        const r = await users[p.owner]!.action(api.actions.startSandboxRun.startSandboxRun, {});
        return { ok: true, runId: r.sandboxRunId, sandboxId: r.sandboxId };
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

    async command(p, runId) {
      try {
        await users[p.owner]!.action(api.actions.runCommand.runCommand, {
          sandboxRunId: runId,
          command: "echo ok",
        });
        return "ok";
      } catch (err) {
        return (err as { data?: { code?: string } }).data?.code ?? "thrown";
      }
    },

    async otherDeploymentStart(p) {
      return asOther(async (o) => {
        try {
          await o.users[p.index % o.users.length]!.action(api.actions.startSandboxRun.startSandboxRun, {});
          return true;
        } catch {
          return false;
        }
      });
    },

    async sweep() {
      // The crons fire every minute; run one after the other (a valid interleaving, and a
      // deterministic one), each with its self-scheduled continuations drained. The catch-up
      // does nothing without a webhook secret, as in production.
      for (const cron of [
        internal.actions.killIdleSandboxes.killIdleSandboxes,
        internal.actions.pauseIdleSandboxes.pauseIdleSandboxes,
        internal.actions.reconcileSandboxes.reconcileSandboxes,
        internal.actions.catchUpLifecycleEvents.catchUpLifecycleEvents,
      ]) {
        try {
          await t.action(cron, {});
        } catch {
          counters.sweepErrors++;
        }
        await drain();
      }
      await prune();
      if (other) {
        await asOther(async (o) => {
          for (const cron of [
            internal.actions.killIdleSandboxes.killIdleSandboxes,
            internal.actions.reconcileSandboxes.reconcileSandboxes,
          ]) {
            try {
              await o.t.action(cron, {});
            } catch {
              counters.sweepErrors++;
            }
            await o.t.finishAllScheduledFunctions(() => {}, 1_000_000);
          }
        });
      }
    },

    async allRunsTerminal() {
      const mine = await t.run(async (ctx) => {
        for (const status of ["booting", "running", "stopping", "pausing", "paused", "resuming"] as const) {
          const one = await ctx.db
            .query("sandboxRuns")
            .withIndex("by_status_and_deadlineAt", (q) => q.eq("status", status))
            .first();
          if (one) return false;
        }
        return true;
      });
      return mine && (await otherRuns()).every((r) => r.final.terminal);
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
      const ours = (await allRuns()).map((a) => {
        const at = recorded.get(a.final.runId);
        return at === undefined ? a.final : { ...a.final, sandboxRecordedAt: at };
      });
      const theirs = (await otherRuns()).map((a) => ({ ...a.final, runId: OTHER_PREFIX + a.final.runId }));
      return [...ours, ...theirs];
    },

    runOfSandbox(s: EmulatedSandbox) {
      const runId = s.metadata.convexRunId;
      return runId !== undefined && s.metadata.convexNamespace === OTHER_NAMESPACE
        ? OTHER_PREFIX + runId
        : runId;
    },

    async extra() {
      const runs = await allRuns();
      const theirRuns = (await otherRuns()).length;
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
        const caughtUpLeft = (await ctx.db.query("webhookEvents").collect()).filter(
          (e) => e.via === "catch_up",
        );
        const count = (xs: string[]) =>
          xs.reduce<Record<string, number>>((m, k) => ((m[k] = (m[k] ?? 0) + 1), m), {});
        return {
          status: count(runs.map((r) => r.status)),
          endReason: count(runs.map((r) => r.endReason)),
          killFailures: count(
            kills.filter((k) => k.kill?.outcome === "failed").map((k) => (k.kill as { kind: string }).kind),
          ),
          reconcileKills: reconcileKills.length + orphanRecords.length,
          caughtUpLeft: caughtUpLeft.map((e) => e.type),
        };
      });
      const caughtUpAll = { ...caughtUp }; // pruned ones, and those still in the table
      for (const type of x.caughtUpLeft) tallyKind(caughtUpAll, type);
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
        "second deployment: its runs / kills of the other's sandboxes, ours→theirs / theirs→ours": (() => {
          const ns = new Map(emu.all().map((s) => [s.sandboxID, s.metadata.convexNamespace]));
          let oursKilledTheirs = 0;
          let theirsKilledOurs = 0;
          for (const c of emu.calls) {
            if (c.endpoint !== "kill" || c.sandboxID === undefined) continue;
            const target = ns.get(c.sandboxID);
            const byOther = c.query?.includes(OTHER_MARK) === true;
            if (target === OTHER_NAMESPACE && !byOther) oursKilledTheirs++;
            if (target !== OTHER_NAMESPACE && target !== undefined && byOther) theirsKilledOurs++;
          }
          return `${theirRuns} / ${oursKilledTheirs} / ${theirsKilledOurs}`;
        })(),
        "resume errors seen by callers (run ended, or E2B failed)": fmt(counters.resumeErrors),
        ...(hooks
          ? {
              "webhook deliveries": webhookSummary(hooks, counters.webhookErrors),
              "events-API catch-ups (reads, of which failed) / events only a catch-up brought": `${
                hooks.eventsApiCalls.length
              }, ${hooks.eventsApiCalls.filter((c) => c.status !== 200).length} / ${fmt(caughtUpAll)}`,
            }
          : {}),
      };
    },

    async close() {
      await other?.forwarder.close();
      restoreE2BEnv();
      for (const [k, v] of savedEnv) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await emu.stop();
    },
  };
}

/** Counts an event under its kind ("killed" for "sandbox.lifecycle.killed"). */
function tallyKind(m: Record<string, number>, type: string): void {
  const k = type.replace("sandbox.lifecycle.", "");
  m[k] = (m[k] ?? 0) + 1;
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
