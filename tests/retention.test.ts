// @vitest-environment node
// Retention: finished runs (with events and commands) past SANDBOX_RETENTION_DAYS are deleted
// in bounded batches by a daily cron; live runs and runs whose kill is still owed are kept.
import { describe, expect, it } from "vitest";
import { api, internal } from "../convex/_generated/api";
import { purgeExpired } from "../convex/model/retention";
import { getRun, useHarness, drivers } from "./helpers";
import { cronJob } from "./drivers";

const DAY_MS = 24 * 3_600_000;
const h = useHarness({ SANDBOX_RETENTION_DAYS: "30" });
const { alice, start, stop } = drivers(h);

async function finishedRunWithHistory() {
  const { sandboxRunId } = await start();
  await alice().action(api.actions.runCommand.runCommand, { sandboxRunId, command: "echo hi" });
  await stop(sandboxRunId);
  return sandboxRunId;
}

const count = () =>
  h.t.run(async (ctx) => ({
    runs: (await ctx.db.query("sandboxRuns").collect()).length,
    events: (await ctx.db.query("runEvents").collect()).length,
    commands: (await ctx.db.query("commands").collect()).length,
    orphans: (await ctx.db.query("orphanSandboxes").collect()).length,
  }));

describe("retention", () => {
  it("is a daily cron", () => {
    const job = cronJob("purgeOldRuns");
    expect(job?.name).toBe("retention:purgeOldRuns");
    expect(job?.schedule).toMatchObject({ type: "daily" });
  });

  it("deletes old finished runs with their events and commands; keeps young, live and owed ones", async () => {
    const old = await finishedRunWithHistory();
    const owed = (await alice().action(api.actions.startSandboxRun.startSandboxRun, {})).sandboxRunId;
    h.emu.fault("kill", { status: 500, times: Infinity });
    await alice().action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId: owed }); // stays "stopping"
    h.emu.clearFaults();
    const live = (await alice().action(api.actions.startSandboxRun.startSandboxRun, {})).sandboxRunId;
    await h.t.run((ctx) =>
      ctx.db.insert("orphanSandboxes", {
        sandboxId: "iold",
        reason: "run_missing",
        kill: { outcome: "killed" },
        at: Date.now(),
      }),
    );
    h.clock.advance(20 * DAY_MS);
    const young = await finishedRunWithHistory();
    h.clock.advance(11 * DAY_MS);

    const r = await h.t.mutation(internal.retention.purgeOldRuns, {});
    expect(r.more).toBe(false);
    expect(await h.t.run((ctx) => ctx.db.get(old))).toBeNull();
    const leftovers = await h.t.run(async (ctx) => ({
      events: await ctx.db
        .query("runEvents")
        .withIndex("by_runId_and_at", (q) => q.eq("runId", old))
        .collect(),
      commands: await ctx.db
        .query("commands")
        .withIndex("by_runId_and_startedAt", (q) => q.eq("runId", old))
        .collect(),
    }));
    expect(leftovers).toEqual({ events: [], commands: [] });
    expect(await getRun(h.t, young)).toMatchObject({ status: "stopped" });
    expect(await getRun(h.t, owed)).toMatchObject({ status: "stopping" });
    expect(await getRun(h.t, live)).toMatchObject({ status: "running" });
    expect((await count()).orphans).toBe(0);
  });

  it("works in bounded batches and continues until done", async () => {
    for (let i = 0; i < 4; i++) await finishedRunWithHistory();
    h.clock.advance(31 * DAY_MS);
    const before = await count();
    expect(before.runs).toBe(4);
    let rounds = 0;
    for (;;) {
      const r = await h.t.run((ctx) => purgeExpired(ctx, 5));
      expect(r.deleted).toBeLessThanOrEqual(5);
      rounds++;
      if (!r.more) break;
    }
    expect(rounds).toBeGreaterThan(3);
    expect(await count()).toEqual({ runs: 0, events: 0, commands: 0, orphans: 0 });
  });
});
