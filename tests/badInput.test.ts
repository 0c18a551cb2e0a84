// @vitest-environment node
// Everything a client could send at every public function: each answer is a ConvexError with a
// clear code, nothing is written, no sandbox is created.
import { describe, expect, it } from "vitest";
import { api } from "../convex/_generated/api";
import { convexErrorOf, emu, t, type TestConvex, useHarness } from "./helpers";

useHarness({ SANDBOX_MAX_ACTIVE_PER_USER: "2" });

type Who = "anonymous" | "alice" | "bob";
type Ctx = { aliceRun: string; stoppedRun: string; commandId: string };
type Case = { name: string; who: Who; call: (c: TestConvexLike, ids: Ctx) => Promise<unknown>; code: string };
type TestConvexLike = Pick<TestConvex, "query" | "mutation" | "action">;

const huge = "x".repeat(100_000);
function runIdCases(): Case[] {
  const fns: [string, (c: TestConvexLike, id: string) => Promise<unknown>][] = [
    ["getRun", (c, id) => c.query(api.runs.getRun, { sandboxRunId: id })],
    [
      "listRunEvents",
      (c, id) =>
        c.query(api.runs.listRunEvents, { sandboxRunId: id, paginationOpts: { numItems: 5, cursor: null } }),
    ],
    [
      "listRunCommands",
      (c, id) =>
        c.query(api.runs.listRunCommands, {
          sandboxRunId: id,
          paginationOpts: { numItems: 5, cursor: null },
        }),
    ],
    ["heartbeat", (c, id) => c.mutation(api.runs.heartbeat, { sandboxRunId: id })],
    ["stopSandboxRun", (c, id) => c.action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId: id })],
    [
      "runCommand",
      (c, id) => c.action(api.actions.runCommand.runCommand, { sandboxRunId: id, command: "echo hi" }),
    ],
  ];
  const cases: Case[] = [];
  for (const [fn, call] of fns) {
    cases.push({
      name: `${fn}: no identity`,
      who: "anonymous",
      call: (c, ids) => call(c, ids.aliceRun),
      code: "UNAUTHENTICATED",
    });
    cases.push({
      name: `${fn}: another user's run`,
      who: "bob",
      call: (c, ids) => call(c, ids.aliceRun),
      code: "NOT_FOUND",
    });
    for (const [label, idOf] of [
      ["empty id", () => ""],
      ["garbage id", () => "not-an-id"],
      ["huge id", () => huge],
      ["id of another table", (ids: Ctx) => ids.commandId],
    ] as const) {
      cases.push({
        name: `${fn}: ${label}`,
        who: "alice",
        call: (c, ids) => call(c, idOf(ids)),
        code: "NOT_FOUND",
      });
    }
  }
  return cases;
}

const start = (c: TestConvexLike, args: Record<string, unknown>) =>
  c.action(
    api.actions.startSandboxRun.startSandboxRun,
    args as { template?: string; idempotencyKey?: string },
  );
const cmd = (command: string, timeoutMs?: number) => (c: TestConvexLike, ids: Ctx) =>
  c.action(api.actions.runCommand.runCommand, {
    sandboxRunId: ids.aliceRun,
    command,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });

const CASES: Case[] = [
  {
    name: "startSandboxRun: no identity",
    who: "anonymous",
    call: (c) => start(c, {}),
    code: "UNAUTHENTICATED",
  },
  {
    name: "startSandboxRun: unknown template",
    who: "alice",
    call: (c) => start(c, { template: "nope" }),
    code: "INVALID_TEMPLATE",
  },
  {
    name: "startSandboxRun: empty template",
    who: "alice",
    call: (c) => start(c, { template: "" }),
    code: "INVALID_TEMPLATE",
  },
  {
    name: "startSandboxRun: path-like template",
    who: "alice",
    call: (c) => start(c, { template: "../base" }),
    code: "INVALID_TEMPLATE",
  },
  {
    name: "startSandboxRun: huge template",
    who: "alice",
    call: (c) => start(c, { template: huge }),
    code: "INVALID_TEMPLATE",
  },
  {
    name: "startSandboxRun: empty idempotencyKey",
    who: "alice",
    call: (c) => start(c, { idempotencyKey: "" }),
    code: "INVALID_ARGUMENT",
  },
  {
    name: "startSandboxRun: idempotencyKey with spaces",
    who: "alice",
    call: (c) => start(c, { idempotencyKey: "a b" }),
    code: "INVALID_ARGUMENT",
  },
  {
    name: "startSandboxRun: huge idempotencyKey",
    who: "alice",
    call: (c) => start(c, { idempotencyKey: huge }),
    code: "INVALID_ARGUMENT",
  },
  {
    name: "startSandboxRun: over the active-runs quota",
    who: "alice",
    call: (c) => start(c, {}),
    code: "QUOTA_EXCEEDED",
  },
  {
    name: "listMyRuns: no identity",
    who: "anonymous",
    call: (c) => c.query(api.runs.listMyRuns, { paginationOpts: { numItems: 5, cursor: null } }),
    code: "UNAUTHENTICATED",
  },
  ...runIdCases(),
  { name: "runCommand: empty command", who: "alice", call: cmd(""), code: "INVALID_ARGUMENT" },
  { name: "runCommand: blank command", who: "alice", call: cmd("   \n"), code: "INVALID_ARGUMENT" },
  { name: "runCommand: huge command", who: "alice", call: cmd(huge), code: "INVALID_ARGUMENT" },
  { name: "runCommand: NUL in command", who: "alice", call: cmd("echo a\0b"), code: "INVALID_ARGUMENT" },
  { name: "runCommand: negative timeout", who: "alice", call: cmd("echo", -1), code: "INVALID_ARGUMENT" },
  { name: "runCommand: zero timeout", who: "alice", call: cmd("echo", 0), code: "INVALID_ARGUMENT" },
  {
    name: "runCommand: fractional timeout",
    who: "alice",
    call: cmd("echo", 1500.5),
    code: "INVALID_ARGUMENT",
  },
  { name: "runCommand: enormous timeout", who: "alice", call: cmd("echo", 1e12), code: "INVALID_ARGUMENT" },
  { name: "runCommand: NaN timeout", who: "alice", call: cmd("echo", Number.NaN), code: "INVALID_ARGUMENT" },
  {
    name: "runCommand: infinite timeout",
    who: "alice",
    call: cmd("echo", Number.POSITIVE_INFINITY),
    code: "INVALID_ARGUMENT",
  },
  {
    name: "runCommand: a stopped run",
    who: "alice",
    call: (c, ids) =>
      c.action(api.actions.runCommand.runCommand, { sandboxRunId: ids.stoppedRun, command: "echo" }),
    code: "RUN_NOT_RUNNING",
  },
  {
    name: "runCommand: another user's run with a bad command",
    who: "bob",
    call: cmd(""),
    code: "INVALID_ARGUMENT",
  },
];

async function snapshot() {
  const tables = await t.run(async (ctx) => ({
    sandboxRuns: await ctx.db.query("sandboxRuns").collect(),
    commands: await ctx.db.query("commands").collect(),
    events: (await ctx.db.query("runEvents").collect()).filter((e) => e.kind !== "quota_refused"),
    orphans: await ctx.db.query("orphanSandboxes").collect(),
  }));
  return { tables: JSON.stringify(tables), calls: emu.calls.length, sandboxes: emu.all().length };
}

describe("bad input at every public function", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    // Fixture: Alice has one running run (with one command) and one stopped run; her quota is 2.
    const alice = t.withIdentity({ subject: "alice" });
    const { sandboxRunId: aliceRun } = await alice.action(api.actions.startSandboxRun.startSandboxRun, {});
    const { commandId } = await alice.action(api.actions.runCommand.runCommand, {
      sandboxRunId: aliceRun,
      command: "true",
    });
    const { sandboxRunId: stoppedRun } = await alice.action(api.actions.startSandboxRun.startSandboxRun, {});
    await alice.action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId: stoppedRun });
    const ids: Ctx = { aliceRun, stoppedRun, commandId };
    if (c.name.includes("quota")) {
      // A second live run puts Alice at her limit.
      await t.run(async (ctx) => {
        const r = (await ctx.db.get(ctx.db.normalizeId("sandboxRuns", stoppedRun)!))!;
        await ctx.db.patch(r._id, { status: "running", endedAt: undefined, endReason: undefined });
      });
    }
    const who = c.who === "anonymous" ? t : t.withIdentity({ subject: c.who });
    const before = await snapshot();
    const err = await convexErrorOf(c.call(who, ids));
    expect(err.code).toBe(c.code);
    expect(typeof err.message).toBe("string");
    expect(err.message.length).toBeLessThan(300);
    expect(JSON.stringify(err)).not.toMatch(/e2b_test_key|\n\s+at /);
    expect(await snapshot()).toEqual(before);
  });
});
