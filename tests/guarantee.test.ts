// @vitest-environment node
// The guarantee under faults we did not pick (issue 8, with issue 12's fixes): no run is marked
// ended while its sandbox may still live, and no deployment kills another's sandbox. One story
// per finding; each names the promise it keeps and failed on the code before its fix.
// Faults the emulator does not inject are made here by small loopback servers: envd dying under
// a running command, a list that omits a sandbox being killed, a request that never answers.
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api, internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import {
  allRuns,
  convexErrorOf,
  getRun,
  GRACE_MS,
  NAMESPACE,
  newConvex,
  peakKillsInFlight,
  TAG_NAMESPACE,
  TAG_RUN_ID,
  useHarness,
  drivers,
} from "./helpers";
import { IDLE_MS } from "./drivers";

const BOOT_MS = 60_000;
const ACTION_LIMIT_MS = 10 * 60_000; // a Node action's time limit
const runCommand = (sandboxRunId: string, command = "echo hi") =>
  alice().action(api.actions.runCommand.runCommand, { sandboxRunId, command });
const tagged = (runId: string) => ({ [TAG_NAMESPACE]: NAMESPACE, [TAG_RUN_ID]: runId });
const isTerminal = (status: string) => status === "stopped" || status === "failed";

const h = useHarness();
const { alice, bob, start, sweep, reconcile } = drivers(h);

// ------------------------------------------------------------------ loopback fault servers

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function listen(handler: http.RequestListener): Promise<{ url: string }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  servers.push({
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  return { url: `http://127.0.0.1:${port}` };
}

const json502 = (res: http.ServerResponse) => {
  res.writeHead(502, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: 502, message: "The sandbox was not found" }));
};

/**
 * The user killed envd inside their sandbox: the command's stream starts, then its connection
 * drops, and E2B's proxy answers envd's /health with 502 (nothing listens on its port).
 */
const envdKilled = () =>
  listen((req, res) => {
    if (req.url?.startsWith("/health")) return json502(res);
    res.writeHead(200, { "content-type": "application/connect+json" });
    res.flushHeaders();
    setTimeout(() => req.socket.destroy(), 20);
  });

/**
 * Forwards every request to the emulator, leaving the `hide` sandboxes out of list answers (E2B
 * omits a sandbox being killed, whose VM may still run).
 */
const controlPlane = (o: { hide: string[] }) =>
  listen((req, res) => {
    const u = new URL(req.url!, "http://x");
    const isList = req.method === "GET" && u.pathname === "/v2/sandboxes";
    const body: Buffer[] = [];
    req.on("data", (c: Buffer) => body.push(c));
    req.on("end", () => {
      const target = new URL(h.emu.url);
      const up = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: u.pathname + u.search,
          headers: { ...req.headers, host: target.host },
        },
        (r) => {
          if (!(isList && r.statusCode === 200)) {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
            return;
          }
          const chunks: Buffer[] = [];
          r.on("data", (c: Buffer) => chunks.push(c));
          r.on("end", () => {
            const items = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { sandboxID: string }[];
            const { "content-length": _, ...headers } = r.headers;
            res.writeHead(200, headers);
            res.end(JSON.stringify(items.filter((s) => !o.hide.includes(s.sandboxID))));
          });
        },
      );
      up.on("error", () => req.socket.destroy());
      up.end(Buffer.concat(body));
    });
  });

/** Accepts requests and never answers; counts the ones the client aborted. */
async function blackHole() {
  const seen = { requests: 0, abortedByClient: 0 };
  const { url } = await listen((req, res) => {
    seen.requests++;
    res.on("close", () => {
      if (!res.writableEnded) seen.abortedByClient++;
    });
    req.resume();
  });
  return { url, seen };
}

async function activeRunsOf(owner: string) {
  return (await allRuns(h.t)).filter((r) => r.ownerId.endsWith(owner) && !isTerminal(r.status));
}

// ------------------------------------------------------------------ 1. data-plane "not found"

describe("1 · a run ends sandbox_gone only on the control plane's word", () => {
  it("promise: no run ends while its sandbox lives — E2B's proxy says 'not found' during a command", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.emu.envdFault({ kind: "proxy502" }); // E2B's proxy: 502 "The sandbox was not found", intermittently
    const err = await convexErrorOf(runCommand(sandboxRunId));
    expect(err.code).toBe("E2B_UNAVAILABLE");
    expect(h.emu.isAlive(sandboxId)).toBe(true);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running", sandboxId });
    // The run still holds its quota slot: a flaky proxy frees nothing.
    expect(await activeRunsOf("alice")).toHaveLength(1);
  });

  it("promise: no run ends while its sandbox lives — the user kills envd in their own sandbox", async () => {
    const { sandboxRunId, sandboxId } = await start();
    vi.stubEnv("E2B_SANDBOX_URL", (await envdKilled()).url);
    const err = await convexErrorOf(runCommand(sandboxRunId, "pkill envd"));
    expect(err.code).not.toBe("SANDBOX_GONE");
    expect(h.emu.isAlive(sandboxId)).toBe(true);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running" });
    // Still reaped as usual: idle, then killed by the sweep, and only then terminal.
    h.clock.advance(IDLE_MS + 1);
    await sweep();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "idle" });
  });

  it("when E2B's control plane confirms it (getInfo 404, then our kill), the run ends sandbox_gone", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.emu.killDirect(sandboxId);
    const err = await convexErrorOf(runCommand(sandboxRunId));
    expect(err.code).toBe("SANDBOX_GONE");
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
    expect(h.emu.calls.filter((c) => c.endpoint === "getInfo" && c.sandboxID === sandboxId)).toHaveLength(1);
  });

  it("promise: no run ends while its sandbox lives — list and getInfo miss a sandbox whose VM still runs (being killed)", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.clock.advance(GRACE_MS + 1);
    await h.t.run((ctx) => ctx.db.patch(sandboxRunId, { lastActivityAt: Date.now() }));
    vi.stubEnv("E2B_API_URL", (await controlPlane({ hide: [sandboxId] })).url);
    h.emu.fault("getInfo", { status: 404, message: `Sandbox "${sandboxId}" doesn't exist` });
    const r = await reconcile();
    // The reconciler killed it before recording it gone: never terminal while it lived.
    expect(r.sandboxesGone).toBe(1);
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
  });
});

// ------------------------------------------------------------------ 2. namespaces

describe("2 · the default namespace is unique to the deployment", () => {
  it("promise: no deployment kills another's — two self-hosted deployments sharing one E2B key", async () => {
    vi.stubEnv("SANDBOX_NAMESPACE", "");
    vi.stubEnv("CONVEX_CLOUD_URL", "https://convex.a.com");
    const a = await start();
    // Deployment B: its own database, same E2B key, its own URL.
    vi.stubEnv("CONVEX_CLOUD_URL", "https://convex.b.org");
    const b = newConvex();
    h.clock.advance(GRACE_MS + 1);
    await b.action(internal.actions.reconcileSandboxes.reconcileSandboxes, {});
    expect(h.emu.isAlive(a.sandboxId)).toBe(true);
    vi.stubEnv("CONVEX_CLOUD_URL", "https://convex.a.com");
    expect(await getRun(h.t, a.sandboxRunId)).toMatchObject({ status: "running" });
  });

  it("a local deployment without SANDBOX_NAMESPACE is refused with CONFIG_INVALID naming it, before any sandbox", async () => {
    vi.stubEnv("SANDBOX_NAMESPACE", "");
    vi.stubEnv("CONVEX_CLOUD_URL", "http://127.0.0.1:3210");
    const err = await convexErrorOf(start());
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message.startsWith("SANDBOX_NAMESPACE:")).toBe(true);
    expect(h.emu.all()).toHaveLength(0);
  });
});

// ------------------------------------------------------------------ 3. E2B's bounds

describe("3 · every value sent to E2B is within E2B's bounds", () => {
  it("promise: the reconciler keeps working — a page size of 500 never sends a list limit above 100", async () => {
    vi.stubEnv("SANDBOX_SWEEP_PAGE_SIZE", "500");
    const orphan = h.emu.seed({ metadata: tagged("no-such-run"), timeoutMs: 3_600_000 });
    h.clock.advance(GRACE_MS + 1);
    await reconcile();
    const limits = h.emu.calls
      .filter((c) => c.endpoint === "list")
      .map((c) => Number(new URLSearchParams(c.query ?? "").get("limit")));
    expect(limits.length).toBeGreaterThan(0);
    for (const limit of limits) expect(limit).toBeLessThanOrEqual(100);
    expect(h.emu.isAlive(orphan.sandboxID)).toBe(false);
  });

  it("lifetimes beyond the E2B plan's maximum are refused at configuration, not sent", async () => {
    vi.stubEnv("SANDBOX_IDLE_TIMEOUT_MS", String(2 * 3_600_000));
    vi.stubEnv("SANDBOX_MAX_LIFETIME_MS", String(3 * 3_600_000));
    const err = await convexErrorOf(start());
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toMatch(/^SANDBOX_(IDLE_TIMEOUT|MAX_LIFETIME)_MS:/);
    expect(h.emu.all()).toHaveLength(0);
    // On a plan that allows it (Pro: 24 h), the same settings work and stay within the plan.
    vi.stubEnv("E2B_PLAN_MAX_LIFETIME_MS", String(24 * 3_600_000));
    const { sandboxId } = await start();
    const sb = h.emu.get(sandboxId)!;
    expect(sb.endAt - Date.now()).toBeLessThanOrEqual(24 * 3_600_000);
  });
});

// ------------------------------------------------------------------ 4. by-tag kills

describe("4 · every kill by tag checks the listed tags itself", () => {
  it("promise: one run's kill never touches another's sandbox — E2B ignores the run-id part of a filter", async () => {
    const b = await start({}, bob());
    h.emu.fault("list", { ignoreMetadataKeys: [TAG_RUN_ID] });
    h.emu.fault("create", { dropResponse: true }); // alice's create answer is lost: her start kills by tag
    await expect(start()).rejects.toThrow();
    expect(h.emu.isAlive(b.sandboxId)).toBe(true);
    expect(await getRun(h.t, b.sandboxRunId)).toMatchObject({ status: "running" });
    const aliceRun = (await allRuns(h.t)).find((r) => r._id !== b.sandboxRunId)!;
    const aliceSandbox = h.emu.all().find((s) => s.metadata[TAG_RUN_ID] === aliceRun._id)!;
    expect(h.emu.isAlive(aliceSandbox.sandboxID)).toBe(false); // hers was killed
    // The one sandbox left after the tag check is hers: she learns its id, not Bob's.
    expect(aliceRun).toMatchObject({ status: "failed", sandboxId: aliceSandbox.sandboxID });
  });
});

// ------------------------------------------------------------------ 5. late creates

describe("5 · the grace window covers the longest a create can still land", () => {
  it("promise: no run ends while its sandbox may still appear — a create E2B finishes 70 s after we gave up", async () => {
    // A load balancer gives up with 502 while E2B keeps working: the sandbox appears 70 s later.
    h.emu.fault("create", { status: 502, message: "bad gateway", landAfterMs: 70_000 });
    await expect(start()).rejects.toThrow();
    const [run] = await allRuns(h.t);
    for (const at of [BOOT_MS + 1, 70_000 + 1]) {
      h.clock.advance(at - (Date.now() - run!.createdAt));
      await sweep();
      await reconcile();
      expect(isTerminal((await getRun(h.t, run!._id)).status)).toBe(false);
    }
    const [late] = h.emu.alive();
    expect(late!.metadata[TAG_RUN_ID]).toBe(run!._id); // it landed
    h.clock.advance(GRACE_MS - 70_000);
    await sweep();
    expect(h.emu.isAlive(late!.sandboxID)).toBe(false);
    expect(await getRun(h.t, run!._id)).toMatchObject({ status: "failed", endReason: "start_failed" });
  });

  it("a create landing later still (beyond E2B's deadline) is reaped by the reconciler within grace + one sweep", async () => {
    h.emu.fault("create", { status: 502, message: "bad gateway", landAfterMs: 2 * GRACE_MS });
    await expect(start()).rejects.toThrow();
    const [run] = await allRuns(h.t);
    h.clock.advance(GRACE_MS + 1);
    await sweep();
    expect(await getRun(h.t, run!._id)).toMatchObject({ status: "failed" });
    h.clock.advance(GRACE_MS); // it lands now
    const [later] = h.emu.alive();
    expect(later).toBeDefined();
    h.clock.advance(GRACE_MS + 1);
    await reconcile();
    expect(h.emu.isAlive(later!.sandboxID)).toBe(false);
  });

  it("a grace window below the floor is refused at configuration", async () => {
    vi.stubEnv("SANDBOX_RECONCILE_GRACE_MS", String(BOOT_MS));
    const err = await convexErrorOf(start());
    expect(err).toMatchObject({ code: "CONFIG_INVALID" });
    expect(err.message.startsWith("SANDBOX_RECONCILE_GRACE_MS:")).toBe(true);
  });
});

// ------------------------------------------------------------------ 6. sweep lanes

describe("6 · at most SANDBOX_SWEEP_PARALLEL_PAGES sweep lanes, across cron ticks", () => {
  it("promise: kills in flight never exceed lanes × concurrency, even when a page outlasts the cron interval", async () => {
    vi.stubEnv("SANDBOX_SWEEP_PAGE_SIZE", "4");
    vi.stubEnv("SANDBOX_KILL_CONCURRENCY", "2");
    vi.stubEnv("SANDBOX_SWEEP_PARALLEL_PAGES", "2");
    const ids = [];
    for (let i = 0; i < 24; i++) ids.push(await start());
    h.clock.advance(IDLE_MS + 1);
    h.emu.setLatency("kill", 40);
    const peak = await peakKillsInFlight(h.emu, async () => {
      const first = sweep();
      const draining = h.t.finishAllScheduledFunctions(() => {});
      await new Promise((r) => setTimeout(r, 20));
      const second = sweep(); // the next cron tick, while the first tick's lanes still drain
      await Promise.all([first, second, draining]);
      await h.t.finishAllScheduledFunctions(() => {});
    });
    for (const { sandboxRunId } of ids) expect((await getRun(h.t, sandboxRunId)).status).toBe("stopped");
    expect(h.emu.alive()).toHaveLength(0);
    expect(peak).toBeLessThanOrEqual(2 * 2);
  });
});

// ------------------------------------------------------------------ 7. action time budgets

describe("7 · every action fits a Node action's 10 minutes even if every E2B call hangs", () => {
  it("a request timeout that cannot fit is refused at configuration", async () => {
    vi.stubEnv("E2B_REQUEST_TIMEOUT_MS", String(10 * 60_000));
    const err = await convexErrorOf(start());
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message.startsWith("E2B_REQUEST_TIMEOUT_MS:")).toBe(true);
  });

  it("promise: a sweep page's by-tag kills fit the action, counting the deadline's 5 s slack", async () => {
    vi.stubEnv("E2B_REQUEST_TIMEOUT_MS", "1000");
    vi.stubEnv("SANDBOX_KILL_CONCURRENCY", "1");
    // 60 runs past their boot deadline that never learned a sandbox id: each is a kill by tag.
    await h.t.run(async (ctx) => {
      for (let i = 0; i < 60; i++) {
        await ctx.db.insert("sandboxRuns", {
          ownerId: "x",
          template: "base",
          status: "booting",
          createdAt: Date.now(),
          lastActivityAt: Date.now(),
          deadlineAt: Date.now(),
          killAttempts: 0,
        });
      }
    });
    h.clock.advance(1);
    const page = await sweep(); // the first page (its continuations run in the background)
    const claimed = page.killed + page.failed;
    await h.t.finishAllScheduledFunctions(() => {});
    expect(claimed).toBeGreaterThan(0);
    // Each by-tag kill is at least a list and a kill, each allowed request timeout + 5 s.
    expect(claimed * 2 * (1_000 + 5_000)).toBeLessThanOrEqual(ACTION_LIMIT_MS);
  });

  it("promise: a by-tag kill makes one list call per attempt, however many pages E2B would return", async () => {
    const runId = await h.t.run((ctx) =>
      ctx.db.insert("sandboxRuns", {
        ownerId: "x",
        template: "base",
        status: "stopping",
        endReason: "start_failed",
        createdAt: Date.now(),
        lastActivityAt: Date.now(),
        deadlineAt: Date.now(),
        killAttempts: 0,
      }),
    );
    for (let i = 0; i < 101; i++) h.emu.seed({ metadata: tagged(runId), timeoutMs: 3_600_000 });
    h.clock.advance(GRACE_MS + 1);
    await sweep();
    expect(h.emu.callCount("list")).toBe(1);
    expect(h.emu.callCount("kill")).toBeLessThanOrEqual(2);
    // Not terminal while tagged sandboxes live: the kill stays owed.
    expect(await getRun(h.t, runId)).toMatchObject({ status: "stopping" });
  });

  it("promise: a reconcile pass stops taking pages at its wall-clock budget and continues in the next", async () => {
    vi.stubEnv("SANDBOX_SWEEP_PAGE_SIZE", "10");
    for (let i = 0; i < 150; i++) h.emu.seed({ metadata: tagged(`young-${i}`), timeoutMs: 3_600_000 });
    // Real time runs fast: every reading of the clock is 30 s after the last (slow E2B calls).
    let fake = performance.now();
    vi.spyOn(performance, "now").mockImplementation(() => (fake += 30_000));
    const r = await reconcile();
    vi.mocked(performance.now).mockRestore();
    await h.t.finishAllScheduledFunctions(() => {}); // the continuation lists the rest
    expect(r.more).toBe(true);
    expect(r.listed).toBeLessThan(100); // the pass did not take its 10 pages
  });
});

// ------------------------------------------------------------------ 8. the dead-man switch

describe("8 · the dead-man switch does not rest on defaults", () => {
  it("creates ask E2B explicitly to kill the sandbox when its lifetime ends", async () => {
    await start();
    const create = h.emu.calls.find((c) => c.endpoint === "create")!;
    expect(create.body).toMatchObject({ autoPause: false });
  });

  it("promise: a hung call never outlives its deadline — the outer deadline aborts the HTTP request", async () => {
    const { sandboxRunId } = await start();
    vi.stubEnv("E2B_REQUEST_TIMEOUT_MS", "100");
    const hole = await blackHole();
    vi.stubEnv("E2B_API_URL", hole.url);
    // The SDK's own timeout signal lost (nodejs/undici#4068): only our deadline is left.
    vi.spyOn(AbortSignal, "timeout").mockImplementation(() => new AbortController().signal);
    await alice().action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId });
    await new Promise((r) => setTimeout(r, 50));
    expect(hole.seen.requests).toBe(1);
    expect(hole.seen.abortedByClient).toBe(1);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopping" });
  }, 20_000);
});

// ------------------------------------------------------------------ issue 12: E2B's states

describe("E2B's states: a 404 is not always 'gone'", () => {
  it("promise: no run ends while its sandbox lives — extending a PAUSED sandbox answers 404", async () => {
    const { sandboxRunId, sandboxId } = await start();
    const paused = await fetch(`${h.emu.url}/sandboxes/${sandboxId}/pause`, {
      method: "POST",
      headers: { "X-API-KEY": "e2b_test_key" },
    });
    expect(paused.status).toBe(204);
    h.clock.advance(6 * 60_000 + 1_000);
    await h.t.run((ctx) => ctx.db.patch(sandboxRunId as Id<"sandboxRuns">, { lastActivityAt: Date.now() }));
    await sweep();
    // Not ended: E2B still has it (paused). The kill is owed, and only its answer ends the run.
    expect(h.emu.get(sandboxId)).toMatchObject({ state: "paused" });
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopping" });
    await sweep();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped" });
  });

  it("an unknown template at E2B is a refusal (INVALID_TEMPLATE), never SANDBOX_GONE", async () => {
    // On this deployment's allow-list, but the E2B team has no such template: E2B answers 404.
    vi.stubEnv("SANDBOX_TEMPLATES", "base,ruby");
    const err = await convexErrorOf(
      alice().action(api.actions.startSandboxRun.startSandboxRun, { template: "ruby" }),
    );
    expect(err.code).toBe("INVALID_TEMPLATE");
    expect((await allRuns(h.t))[0]).toMatchObject({ status: "failed", endReason: "start_failed" });
    expect(h.emu.callCount("list")).toBe(0); // refused: nothing to look for
  });
});

// ------------------------------------------------------------------ what is assumed of E2B (README)

describe("what the promise assumes of E2B, and how far it holds when E2B errs", () => {
  it("a kill answering success without killing: the reconciler kills the sandbox within grace + one sweep", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.clock.advance(GRACE_MS + 1);
    h.emu.fault("kill", { fakeSuccess: true }); // E2B says killed but did not
    await alice().action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId });
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped" });
    expect(h.emu.isAlive(sandboxId)).toBe(true); // the one case where a run ends while its sandbox lives
    h.clock.advance(60_000); // the next reconcile tick
    await reconcile();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
  });

  it("a kill that failed after E2B dropped the sandbox: 404 on retry ends the run; E2B's reaper ends the VM within ~80 s", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.emu.fault("kill", { applied: true }); // 500, but the store entry is gone
    await alice().action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId });
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopping" }); // a failed kill never ends a run
    h.clock.advance(10_000);
    await sweep(); // the retry answers 404: E2B's word that it is gone
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped" });
    expect(h.emu.orphanedVms().map((s) => s.sandboxID)).toEqual([sandboxId]);
    h.clock.advance(80_000);
    expect(h.emu.orphanedVms()).toHaveLength(0);
  });
});
