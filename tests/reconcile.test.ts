// @vitest-environment node
// The reconciling pass and the dead-man switch: whatever exists at E2B under our namespace is
// killed unless a live run owns it; E2B's own lifetime is extended only while a run is active.
import { describe, expect, it, vi } from "vitest";
import type { Id } from "../convex/_generated/dataModel";
import {
  eventsOf,
  getRun,
  GRACE_MS,
  NAMESPACE,
  TAG_NAMESPACE,
  TAG_RUN_ID,
  useHarness,
  captureWarnings,
  drivers,
} from "./helpers";
import { cronJob, IDLE_MS } from "./drivers";

const LIFETIME_MS = IDLE_MS + 120_000;
const tagged = (runId: string, ns = NAMESPACE) => ({ [TAG_NAMESPACE]: ns, [TAG_RUN_ID]: runId });
const orphans = () => h.t.run((ctx) => ctx.db.query("orphanSandboxes").collect());

const h = useHarness();
const { start, reconcile, sweep } = drivers(h);

describe("reconcileSandboxes", () => {
  it("is registered as its own cron every minute", () => {
    const job = cronJob("reconcileSandboxes");
    expect(job?.name).toBe("actions/reconcileSandboxes:reconcileSandboxes");
    expect(job?.schedule).toMatchObject({ type: "interval", minutes: 1 });
  });

  it("run record deleted → its sandbox is reaped and an orphan record kept", async () => {
    const { sandboxRunId, sandboxId } = await start();
    await h.t.run((ctx) => ctx.db.delete(sandboxRunId));
    h.clock.advance(GRACE_MS + 1);
    const r = await reconcile();
    expect(r).toMatchObject({ orphansKilled: 1, listFailed: false });
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    expect(await orphans()).toMatchObject([
      { sandboxId, taggedRunId: sandboxRunId, reason: "run_missing", kill: { outcome: "killed" } },
    ]);
  });

  it("run ended but its kill was lost → the live sandbox is reaped, recorded on the run", async () => {
    const { sandboxRunId, sandboxId } = await start();
    await h.t.run((ctx) =>
      ctx.db.patch(sandboxRunId, { status: "stopped", endReason: "user", endedAt: Date.now() }),
    );
    h.clock.advance(GRACE_MS + 1);
    await reconcile();
    expect(h.emu.isAlive(sandboxId)).toBe(false);
    const ev = (await eventsOf(h.t, sandboxRunId)).find((e) => e.kind === "reconcile_kill");
    expect(ev).toMatchObject({ sandboxId, reason: "run_ended", kill: { outcome: "killed" } });
  });

  it("a second sandbox for one run → the extra one is reaped, the recorded one kept", async () => {
    const { sandboxRunId, sandboxId } = await start();
    const extra = h.emu.seed({ metadata: tagged(sandboxRunId), timeoutMs: 3_600_000 });
    h.clock.advance(GRACE_MS + 1);
    await h.t.run((ctx) => ctx.db.patch(sandboxRunId, { lastActivityAt: Date.now() }));
    await reconcile();
    expect(h.emu.isAlive(extra.sandboxID)).toBe(false);
    expect(h.emu.isAlive(sandboxId)).toBe(true);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running", sandboxId });
    const ev = (await eventsOf(h.t, sandboxRunId)).find((e) => e.kind === "reconcile_kill");
    expect(ev).toMatchObject({ sandboxId: extra.sandboxID, reason: "not_the_runs_sandbox" });
  });

  it("a young untracked sandbox is spared until the grace window passes", async () => {
    const young = h.emu.seed({ metadata: tagged("no-such-run"), timeoutMs: 3_600_000 });
    h.clock.advance(GRACE_MS - 1_000);
    await reconcile();
    expect(h.emu.isAlive(young.sandboxID)).toBe(true);
    h.clock.advance(2_000);
    await reconcile();
    expect(h.emu.isAlive(young.sandboxID)).toBe(false);
    expect(await orphans()).toMatchObject([{ sandboxId: young.sandboxID, reason: "run_missing" }]);
  });

  it("never touches another namespace's sandboxes, nor untagged ones", async () => {
    const foreign = h.emu.seed({ metadata: tagged("whatever", "prod-other"), timeoutMs: 3_600_000 });
    const untagged = h.emu.seed({ metadata: {}, timeoutMs: 3_600_000 });
    h.clock.advance(GRACE_MS + 1);
    const r = await reconcile();
    expect(r.listed).toBe(0);
    expect(h.emu.isAlive(foreign.sandboxID)).toBe(true);
    expect(h.emu.isAlive(untagged.sandboxID)).toBe(true);
    expect(h.emu.callCount("kill")).toBe(0);
  });

  it("a paused orphan is killed too", async () => {
    const paused = h.emu.seed({ metadata: tagged("gone-run"), timeoutMs: 3_600_000, state: "paused" });
    h.clock.advance(GRACE_MS + 1);
    await reconcile();
    expect(h.emu.isAlive(paused.sandboxID)).toBe(false);
  });

  it("a list page failing once (timeout, 5xx) is tried again within the pass; a refusal (429) is not", async () => {
    const orphan = h.emu.seed({ metadata: tagged("gone-run"), timeoutMs: 3_600_000 });
    h.clock.advance(GRACE_MS + 1);
    h.emu.fault("list", { status: 500 });
    expect(await reconcile()).toMatchObject({ listFailed: false, orphansKilled: 1 });
    expect(h.emu.isAlive(orphan.sandboxID)).toBe(false);
    const calls = h.emu.callCount("list");
    const warned = captureWarnings();
    h.emu.fault("list", { status: 429 });
    expect(await reconcile()).toMatchObject({ listFailed: true });
    expect(h.emu.callCount("list")).toBe(calls + 1);
    expect(warned()).toContainEqual(expect.stringContaining("reconcile: list failed (rate_limited"));
  });

  it("a failing list changes nothing; the next pass succeeds", async () => {
    const warned = captureWarnings();
    const orphan = h.emu.seed({ metadata: tagged("gone-run"), timeoutMs: 3_600_000 });
    const { sandboxRunId } = await start();
    h.clock.advance(GRACE_MS + 1);
    await h.t.run((ctx) => ctx.db.patch(sandboxRunId, { lastActivityAt: Date.now() }));
    h.emu.fault("list", { status: 500, times: 3 }); // every try of this pass
    const before = await getRun(h.t, sandboxRunId);
    const r1 = await reconcile();
    expect(r1.listFailed).toBe(true);
    expect(warned()).toContainEqual(expect.stringContaining("reconcile: list failed (unavailable"));
    expect(h.emu.isAlive(orphan.sandboxID)).toBe(true);
    expect(await getRun(h.t, sandboxRunId)).toEqual(before);
    expect(await orphans()).toHaveLength(0);
    const r2 = await reconcile();
    expect(r2).toMatchObject({ listFailed: false, orphansKilled: 1 });
    expect(h.emu.isAlive(orphan.sandboxID)).toBe(false);
  });

  it("a kill that fails is tried once more within the pass", async () => {
    const orphan = h.emu.seed({ metadata: tagged("gone-run"), timeoutMs: 3_600_000 });
    h.clock.advance(GRACE_MS + 1);
    h.emu.fault("kill", { status: 502 });
    expect(await reconcile()).toMatchObject({ orphansKilled: 1, killFailures: 0 });
    expect(h.emu.isAlive(orphan.sandboxID)).toBe(false);
    expect(h.emu.callCount("kill")).toBe(2);
  });

  it("a kill that fails twice is retried by the next pass", async () => {
    const orphan = h.emu.seed({ metadata: tagged("gone-run"), timeoutMs: 3_600_000 });
    h.clock.advance(GRACE_MS + 1);
    h.emu.fault("kill", { status: 502, times: 2 });
    expect(await reconcile()).toMatchObject({ orphansKilled: 0, killFailures: 1 });
    expect(h.emu.isAlive(orphan.sandboxID)).toBe(true);
    expect(await reconcile()).toMatchObject({ orphansKilled: 1 });
    expect(h.emu.isAlive(orphan.sandboxID)).toBe(false);
  });

  it("pages through long listings across invocations", async () => {
    vi.stubEnv("SANDBOX_SWEEP_PAGE_SIZE", "3");
    for (let i = 0; i < 40; i++) h.emu.seed({ metadata: tagged(`gone-${i}`), timeoutMs: 3_600_000 });
    h.clock.advance(GRACE_MS + 1);
    const r = await reconcile();
    expect(r).toMatchObject({ listed: 30, orphansKilled: 30, more: true });
    await h.t.finishAllScheduledFunctions(() => {});
    expect(h.emu.alive()).toHaveLength(0);
  });

  it("a sandbox E2B expired on its own → the run ends stopped/sandbox_gone", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.clock.advance(GRACE_MS + 1);
    await h.t.run((ctx) => ctx.db.patch(sandboxRunId, { lastActivityAt: Date.now() }));
    h.emu.expireDirect(sandboxId);
    const r = await reconcile();
    expect(r.sandboxesGone).toBe(1);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
  });

  it("a run whose sandbox is listed, or only missing from a list that lags, is left running", async () => {
    const { sandboxRunId } = await start(); // younger than the grace window
    const listed = await start();
    h.emu.killDirect((await getRun(h.t, sandboxRunId)).sandboxId!);
    const r = await reconcile();
    expect(r.sandboxesGone).toBe(0);
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running" });
    expect(await getRun(h.t, listed.sandboxRunId)).toMatchObject({ status: "running" });
  });
});

describe("dead-man switch", () => {
  async function touch(id: Id<"sandboxRuns">) {
    await h.t.run((ctx) => ctx.db.patch(id, { lastActivityAt: Date.now() }));
  }

  it("an active run's E2B lifetime is extended (at most once per half lifetime); an idle one's is not", async () => {
    const active = await start();
    const idle = await start();
    const t0 = Date.now();
    expect(h.emu.get(active.sandboxId)!.endAt).toBeGreaterThanOrEqual(t0 + LIFETIME_MS - 1_000);

    // Sweeps every minute for 8 minutes; the active run shows activity each minute.
    for (let m = 1; m <= 8; m++) {
      h.clock.advance(60_000);
      await touch(active.sandboxRunId);
      await sweep();
    }
    const extensions = h.emu.calls.filter(
      (c) => c.endpoint === "setTimeout" && c.sandboxID === active.sandboxId,
    );
    // One at start (the running lifetime), then one once half the lifetime (6 min) had passed.
    expect(extensions).toHaveLength(2);
    const last = extensions[1]!;
    expect(last.at - t0).toBeGreaterThanOrEqual(LIFETIME_MS / 2);
    expect(last.at - t0).toBeLessThan(LIFETIME_MS / 2 + 2 * 60_000);
    // The new lifetime counts from the last sign of life, and the run records it.
    expect(Math.abs(h.emu.get(active.sandboxId)!.endAt - (last.at + LIFETIME_MS))).toBeLessThanOrEqual(1_000);
    expect(
      Math.abs(
        (await getRun(h.t, active.sandboxRunId)).sandboxExpiresAt! - h.emu.get(active.sandboxId)!.endAt,
      ),
    ).toBeLessThanOrEqual(1_000);
    // The idle run got no extension: E2B will end it one lifetime after its start.
    expect(
      h.emu.calls.filter((c) => c.endpoint === "setTimeout" && c.sandboxID === idle.sandboxId),
    ).toHaveLength(1);
    expect(h.emu.get(idle.sandboxId)!.endAt).toBeLessThanOrEqual(t0 + LIFETIME_MS);
  });

  it("with Convex down, a sandbox lives at most one lifetime past its last sign of life", async () => {
    const { sandboxId } = await start();
    h.clock.advance(LIFETIME_MS - 1);
    expect(h.emu.isAlive(sandboxId)).toBe(true);
    h.clock.advance(2);
    expect(h.emu.isAlive(sandboxId)).toBe(false);
  });

  it("extension answering 404 → the run ends stopped/sandbox_gone", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.emu.killDirect(sandboxId);
    h.clock.advance(6 * 60_000 + 1_000);
    await touch(sandboxRunId);
    await sweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "stopped", endReason: "sandbox_gone" });
  });

  it("a failed extension is retried at the next sweep and never ends the run", async () => {
    const { sandboxRunId, sandboxId } = await start();
    h.clock.advance(6 * 60_000 + 1_000);
    await touch(sandboxRunId);
    h.emu.fault("setTimeout", { status: 500 });
    await sweep();
    expect(await getRun(h.t, sandboxRunId)).toMatchObject({ status: "running" });
    const lastActivityAt = Date.now();
    h.clock.advance(60_000);
    await sweep();
    expect(h.emu.calls.filter((c) => c.endpoint === "setTimeout")).toHaveLength(3);
    expect(Math.abs(h.emu.get(sandboxId)!.endAt - (lastActivityAt + LIFETIME_MS))).toBeLessThanOrEqual(1_000);
  });
});
