// @vitest-environment node
// The public surface as a hostile signed-in user tries it (issue 9): output floods, refusal
// floods, queue hogging, raw text, pagination and echo edge cases. Through the real SDK and the
// emulator's envd, which runs commands on this machine.
import { describe, expect, it, vi } from "vitest";
import { api, internal } from "../convex/_generated/api";
import * as lifecycle from "../convex/lifecycle";
import { drainLimitBytes } from "../convex/lib/util";
import { MAX_COMMAND_OUTPUT_BYTES_LIMIT, DOCUMENT_LIMIT_BYTES } from "../convex/model/config";
import {
  captureWarnings,
  convexErrorOf,
  failNext,
  getRun,
  isWellFormed,
  useHarness,
  drivers,
} from "./helpers";

const h = useHarness();

const { alice, start } = drivers(h);
const run = (sandboxRunId: string, command: string, timeoutMs?: number) =>
  alice().action(api.actions.runCommand.runCommand, {
    sandboxRunId,
    command,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });
const CAP = 64 * 1024;

async function tableSizes() {
  return h.t.run(async (ctx) => ({
    sandboxRuns: (await ctx.db.query("sandboxRuns").collect()).length,
    runEvents: (await ctx.db.query("runEvents").collect()).length,
    commands: (await ctx.db.query("commands").collect()).length,
    createThrottle: (await ctx.db.query("createThrottle").collect()).length,
    orphanSandboxes: (await ctx.db.query("orphanSandboxes").collect()).length,
  }));
}

/** Anything that looks like a stack line or a token. */
const RAW = /\n\s+at |e2b_[a-z0-9]{4,}|eyJ[\w-]+\.|<html|secret-token/;

describe("command output: memory bounded, not just the answer", () => {
  it("stdout flooding 20 MB: the cap kept, the command stopped after the drain allowance (output_limit)", async () => {
    const { sandboxRunId } = await start();
    const r = await run(
      sandboxRunId,
      "echo start >&2; head -c 20000000 /dev/zero | tr '\\0' a; echo done >&2",
    );
    expect(r).toMatchObject({ status: "output_limit", stdoutTruncated: true, stderr: "start\n" });
    expect(r.exitCode).toBeUndefined();
    expect(Buffer.byteLength(r.stdout)).toBe(CAP);
    // Every byte that arrived was counted; the process was killed soon after the allowance.
    expect(r.stdoutBytes! + r.stderrBytes!).toBeGreaterThan(drainLimitBytes(CAP));
    expect(r.stdoutBytes).toBeLessThan(20_000_000);
  });

  it("a chatty command under the drain allowance runs to its end with its exit code", async () => {
    const { sandboxRunId } = await start();
    const r = await run(sandboxRunId, "head -c 1000000 /dev/zero | tr '\\0' a; echo done >&2; exit 4");
    expect(r).toMatchObject({ status: "finished", exitCode: 4, stdoutTruncated: true, stderr: "done\n" });
    expect(r.stdoutBytes).toBe(1_000_000);
    expect(Buffer.byteLength(r.stdout)).toBe(CAP);
  });

  it("both streams past their caps: the process is killed (output_limit), not left to its timeout", async () => {
    const { sandboxRunId } = await start();
    // tee writes each chunk to both streams, so neither can outrun the other on a busy machine.
    const r = await run(sandboxRunId, "yes | tee >(cat >&2)", 30_000);
    expect(r.status).toBe("output_limit");
    expect(r.exitCode).toBeUndefined();
    expect(r.stdoutTruncated && r.stderrTruncated).toBe(true);
    expect(Buffer.byteLength(r.stdout)).toBe(CAP);
    expect(Buffer.byteLength(r.stderr)).toBe(CAP);
    // Killed soon after both caps: far less than what `yes` prints in 30 s.
    expect(r.stdoutBytes! + r.stderrBytes!).toBeLessThan(64 * 1024 * 1024);
    const [cmd] = (
      await alice().query(api.runs.listRunCommands, {
        sandboxRunId,
        paginationOpts: { numItems: 1, cursor: null },
      })
    ).page;
    expect(cmd).toMatchObject({ status: "output_limit", stdoutTruncated: true, stderrTruncated: true });
  });

  it("at the largest allowed cap a command record fits one Convex document", async () => {
    vi.stubEnv("SANDBOX_COMMAND_OUTPUT_MAX_BYTES", String(MAX_COMMAND_OUTPUT_BYTES_LIMIT));
    const { sandboxRunId } = await start();
    // 4-byte characters on both streams, and the longest command (10,000 UTF-16 units of 3-byte characters).
    const command = `yes 😀😀😀 & yes 😀 >&2; wait #${"é".repeat(2)}${"中".repeat(9_900)}`;
    const r = await run(sandboxRunId, command, 30_000);
    expect(r.status).toBe("output_limit");
    const doc = (await h.t.run((ctx) => ctx.db.get(r.commandId)))!;
    // Convex counts a string as its UTF-8 bytes; every other field is a few bytes.
    const strings = [doc.command, doc.stdout, doc.stderr, doc.ownerId, doc.error ?? ""];
    const bytes = strings.reduce((n, s) => n + Buffer.byteLength(s), 0) + 1024;
    expect(Buffer.byteLength(doc.stdout)).toBeGreaterThan(MAX_COMMAND_OUTPUT_BYTES_LIMIT - 4);
    expect(bytes).toBeLessThan(DOCUMENT_LIMIT_BYTES);
  });

  it("caps and timeouts are validated together: a record past 1 MiB or a command past 10 minutes is CONFIG_INVALID", async () => {
    const { sandboxRunId } = await start();
    vi.stubEnv("SANDBOX_COMMAND_OUTPUT_MAX_BYTES", String(512 * 1024));
    expect((await convexErrorOf(run(sandboxRunId, "true"))).code).toBe("CONFIG_INVALID");
    vi.stubEnv("SANDBOX_COMMAND_OUTPUT_MAX_BYTES", String(CAP));
    vi.stubEnv("SANDBOX_COMMAND_TIMEOUT_MS", String(10 * 60_000));
    const err = await convexErrorOf(run(sandboxRunId, "true"));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("SANDBOX_COMMAND_TIMEOUT_MS");
  });
});

describe("refusals cost no writes", () => {
  it("1,000 refused starts leave every table's size unchanged", async () => {
    vi.stubEnv("SANDBOX_MAX_ACTIVE_PER_USER", "1");
    await start();
    const before = await tableSizes();
    const creates = h.emu.callCount("create");
    for (let i = 0; i < 1_000; i++) {
      const err = await convexErrorOf(start());
      expect(err.code).toBe("QUOTA_EXCEEDED");
    }
    expect(await tableSizes()).toEqual(before);
    expect(h.emu.callCount("create")).toBe(creates);
  });

  it("rate refusals still say when to retry, and write nothing", async () => {
    vi.stubEnv("SANDBOX_STARTS_PER_MINUTE_PER_USER", "1");
    await start();
    const before = await tableSizes();
    const err = await convexErrorOf(start());
    expect(err).toMatchObject({ code: "RATE_LIMITED" });
    expect(err.retryAfterMs).toBeGreaterThan(0);
    expect(await tableSizes()).toEqual(before);
  });
});

describe("fair create queue", () => {
  const admit = (ownerId: string) =>
    h.t.mutation(internal.lifecycle.admitStart, { ownerId, template: "base" });

  it("two users flooding cannot make a third user's first start wait longer than one throttle slot", async () => {
    vi.stubEnv("E2B_CREATES_PER_SECOND", "1");
    vi.stubEnv("SANDBOX_MAX_QUEUED_STARTS_PER_USER", "1");
    const slotMs = 1_000;
    const outcome = async (u: string) => {
      const r = await admit(u);
      return r.kind === "created" ? r.waitMs : r.kind === "refused" ? r.code : r.kind;
    };
    // Each flooder's first start may queue; after that a flooder takes only free slots.
    expect([await outcome("a"), await outcome("b")]).toEqual([0, slotMs]);
    expect([await outcome("a"), await outcome("b")]).toEqual(["RATE_LIMITED", "RATE_LIMITED"]);
    const refused = await admit("a");
    expect(refused).toMatchObject({ kind: "refused", code: "RATE_LIMITED" });
    expect(refused.kind === "refused" && refused.retryAfterMs).toBeGreaterThan(slotMs);
    // Thirty simulated seconds: both flood every 100 ms; a new user's first start every 2.5 s.
    const firstStartWaits: number[] = [];
    for (let tick = 1; tick <= 300; tick++) {
      h.clock.advance(100);
      await outcome("a");
      await outcome("b");
      if (tick % 25 === 0) {
        const w = await outcome(`newcomer-${tick}`);
        expect(typeof w, `newcomer at tick ${tick}: ${w}`).toBe("number");
        firstStartWaits.push(w as number);
      }
    }
    expect(firstStartWaits).toHaveLength(12);
    expect(Math.max(...firstStartWaits)).toBeLessThanOrEqual(slotMs);
    // The flooders still got slots: the throttle stays busy, not starved.
    const created = await h.t.run(async (ctx) => (await ctx.db.query("sandboxRuns").collect()).length);
    expect(created).toBeGreaterThan(25);
  });
});

describe("no raw text where a caller or a table can see it", () => {
  it("a non-E2B failure's message (stack lines, tokens) is never stored on the run or returned", async () => {
    const leak =
      "boom\n    at secret (/srv/app.js:1:1) e2b_abcdefghijklmnop secret-token eyJhbGciOi.eyJzdWIi.sig";
    failNext(lifecycle.markRunning, 1, leak);
    const warned = captureWarnings();
    const err = await convexErrorOf(start());
    expect(err.code).toBe("START_FAILED");
    expect(warned()).toContainEqual(expect.stringContaining("start failed after create: boom"));
    expect(warned().join("\n")).not.toContain("e2b_abcdefghijklmnop"); // the log line is masked too
    const runs = await h.t.run((ctx) => ctx.db.query("sandboxRuns").collect());
    const events = await h.t.run((ctx) => ctx.db.query("runEvents").collect());
    const shown = await alice().query(api.runs.getRun, { sandboxRunId: runs[0]!._id });
    expect(JSON.stringify([err, runs, events, shown])).not.toMatch(RAW);
    expect(runs[0]!.error).toBe("internal error");
  });

  it("E2B's error body never reaches a caller or a table: fixed message per code, HTTP status as a field", async () => {
    const body =
      "<html>proxy error</html> token=e2b_0123456789abcdef secret-token\n    at handler (x.js:1:1)";
    const warned = captureWarnings();
    for (const status of [400, 500]) {
      h.emu.fault("create", { status, message: body });
      const err = await convexErrorOf(start());
      expect(err.code).toBe(status === 400 ? "E2B_REJECTED" : "E2B_UNAVAILABLE");
      expect(err.status).toBe(status);
      expect(JSON.stringify(err), JSON.stringify(err)).not.toMatch(RAW);
    }
    const everything = await h.t.run(async (ctx) => ({
      runs: await ctx.db.query("sandboxRuns").collect(),
      events: await ctx.db.query("runEvents").collect(),
    }));
    expect(JSON.stringify(everything)).not.toMatch(RAW);
    // Only the log keeps E2B's words, for an operator, with the key masked.
    expect(warned()).toContainEqual(expect.stringContaining("E2B call failed"));
    expect(warned().join("\n")).not.toContain("e2b_0123456789abcdef");
  });

  it("a kill failure's E2B body is not stored either", async () => {
    const { sandboxRunId } = await start();
    h.emu.fault("kill", { status: 500, message: "internal <html> e2b_abcdefghijkl\n    at k (y.js:2:2)" });
    await alice().action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId });
    const doc = await getRun(h.t, sandboxRunId);
    expect(doc.lastKillError).toBe("unavailable: E2B answered 500");
    const events = await alice().query(api.runs.listRunEvents, {
      sandboxRunId,
      paginationOpts: { numItems: 50, cursor: null },
    });
    expect(JSON.stringify([doc, events])).not.toMatch(RAW);
  });
});

describe("edges", () => {
  it("paginationOpts out of range or a bad cursor is INVALID_ARGUMENT", async () => {
    const { sandboxRunId } = await start();
    const bad = [
      { numItems: 0, cursor: null },
      { numItems: -1, cursor: null },
      { numItems: 1_000_000, cursor: null },
      { numItems: 1.5, cursor: null },
      { numItems: Number.NaN, cursor: null },
      { numItems: Number.POSITIVE_INFINITY, cursor: null },
      { numItems: 5, cursor: "garbage" },
      { numItems: 5, cursor: "" },
      { numItems: 5, cursor: "x".repeat(100_000) },
    ];
    for (const paginationOpts of bad) {
      for (const call of [
        () => alice().query(api.runs.listMyRuns, { paginationOpts }),
        () => alice().query(api.runs.listRunEvents, { sandboxRunId, paginationOpts }),
        () => alice().query(api.runs.listRunCommands, { sandboxRunId, paginationOpts }),
      ]) {
        const err = await convexErrorOf(call());
        expect(err.code).toBe("INVALID_ARGUMENT");
      }
    }
  });

  it("a valid endCursor (what usePaginatedQuery sends to keep pages stable) passes through", async () => {
    for (let i = 0; i < 3; i++) {
      await start();
      h.clock.advance(1_000);
    }
    const first = await alice().query(api.runs.listMyRuns, { paginationOpts: { numItems: 2, cursor: null } });
    const again = await alice().query(api.runs.listMyRuns, {
      paginationOpts: { numItems: 1, cursor: null, endCursor: first.continueCursor },
    });
    expect(again.page.map((r) => r._id)).toEqual(first.page.map((r) => r._id));
  });

  it("echoed input is cut on code points: never half a surrogate pair, no control or bidi characters", async () => {
    const template = `a${"😀".repeat(100)}\u202e\u0007`;
    const err = await convexErrorOf(
      alice().action(api.actions.startSandboxRun.startSandboxRun, { template }),
    );
    expect(err.code).toBe("INVALID_TEMPLATE");
    expect(isWellFormed(err.message)).toBe(true);
    expect(err.message).not.toMatch(/[\u0000-\u001f\u202a-\u202e\u2066-\u2069]/);
    const rtl = await convexErrorOf(
      alice().action(api.actions.startSandboxRun.startSandboxRun, { template: "x\u202egpj.exe\u0000" }),
    );
    expect(rtl.message).not.toMatch(/[\u0000-\u001f\u202a-\u202e]/);
  });

  it("every public function declares a returns validator; public views name their fields", async () => {
    const fns = {
      getRun: api.runs.getRun,
      listMyRuns: api.runs.listMyRuns,
      listRunEvents: api.runs.listRunEvents,
      listRunCommands: api.runs.listRunCommands,
      heartbeat: api.runs.heartbeat,
    };
    const modules = {
      getRun: (await import("../convex/runs")).getRun,
      listMyRuns: (await import("../convex/runs")).listMyRuns,
      listRunEvents: (await import("../convex/runs")).listRunEvents,
      listRunCommands: (await import("../convex/runs")).listRunCommands,
      heartbeat: (await import("../convex/runs")).heartbeat,
      startSandboxRun: (await import("../convex/actions/startSandboxRun")).startSandboxRun,
      stopSandboxRun: (await import("../convex/actions/stopSandboxRun")).stopSandboxRun,
      runCommand: (await import("../convex/actions/runCommand")).runCommand,
    };
    expect(Object.keys(fns).every((k) => k in modules)).toBe(true);
    for (const [name, fn] of Object.entries(modules)) {
      const returns = (fn as unknown as { exportReturns(): string }).exportReturns();
      expect(returns, name).not.toBe("null");
      expect(JSON.parse(returns), name).not.toBeNull();
    }
    const { sandboxRunId } = await start();
    const shown = await alice().query(api.runs.getRun, { sandboxRunId });
    for (const hidden of ["ownerId", "deadlineAt", "renewAt", "lastKillError", "createSlotAt"]) {
      expect(shown).not.toHaveProperty(hidden);
    }
  });
});
