// @vitest-environment node
// Everything a client could send at every public function: each answer is a ConvexError with a
// clear code, nothing is written, no sandbox is created.
import { describe, expect, it } from "vitest";
import { api } from "../convex/_generated/api";
import { allRuns, convexErrorOf, drivers, rejection, type TestConvex, useHarness } from "./helpers";

const h = useHarness({ SANDBOX_MAX_ACTIVE_PER_USER: "2" });
const typed = drivers(h); // the typed start; `start` below sends raw, untyped args

describe("startSandboxRun refuses before writing or calling E2B", () => {
  it("no identity → UNAUTHENTICATED, nothing written, no sandbox", async () => {
    const err = await convexErrorOf(h.t.action(api.actions.startSandboxRun.startSandboxRun, {}));
    expect(err.code).toBe("UNAUTHENTICATED");
    expect(await allRuns(h.t)).toHaveLength(0);
    expect(h.emu.calls).toHaveLength(0);
  });

  it.each(["nope", "", "base ", "x".repeat(500)])(
    "unknown template %j → INVALID_TEMPLATE, nothing written",
    async (template) => {
      const err = await convexErrorOf(typed.start({ template }));
      expect(err.code).toBe("INVALID_TEMPLATE");
      expect(await allRuns(h.t)).toHaveLength(0);
      expect(h.emu.calls).toHaveLength(0);
    },
  );
});

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

// ---------------------------------------------------------------------------------------------
// Every class of bad input at every public function, generated: each function's arguments are
// spoiled one at a time. Two kinds of answer:
// - "ours": the value passes Convex's argument validator (a string, a number), so our code must
//   answer with a ConvexError and a code;
// - "validator": a wrong type, which Convex's own argument validator rejects before any of our
//   code runs (no code to read). What is observable is asserted: the call fails, says it is an
//   argument validation failure, writes nothing and calls E2B not at all.
type Args = Record<string, unknown>;
type Fn = {
  fn: string;
  call: (c: TestConvexLike, args: Args) => Promise<unknown>;
  base: (ids: Ctx) => Args;
  /** string arguments and the code a bad value earns */
  strings: Record<string, string>;
  /** number arguments (or pagination) and the code a non-finite value earns */
  numbers?: Record<string, string>;
  paginated?: boolean;
};
const page5 = { numItems: 5, cursor: null };
const FNS: Fn[] = [
  {
    fn: "startSandboxRun",
    call: (c, a) => c.action(api.actions.startSandboxRun.startSandboxRun, a as never),
    base: () => ({}),
    strings: { template: "INVALID_TEMPLATE", idempotencyKey: "INVALID_ARGUMENT" },
  },
  {
    fn: "stopSandboxRun",
    call: (c, a) => c.action(api.actions.stopSandboxRun.stopSandboxRun, a as never),
    base: (ids) => ({ sandboxRunId: ids.aliceRun }),
    strings: { sandboxRunId: "NOT_FOUND" },
  },
  {
    fn: "runCommand",
    call: (c, a) => c.action(api.actions.runCommand.runCommand, a as never),
    base: (ids) => ({ sandboxRunId: ids.aliceRun, command: "echo hi" }),
    strings: { sandboxRunId: "NOT_FOUND", command: "INVALID_ARGUMENT" },
    numbers: { timeoutMs: "INVALID_ARGUMENT" },
  },
  {
    fn: "heartbeat",
    call: (c, a) => c.mutation(api.runs.heartbeat, a as never),
    base: (ids) => ({ sandboxRunId: ids.aliceRun }),
    strings: { sandboxRunId: "NOT_FOUND" },
  },
  {
    fn: "getRun",
    call: (c, a) => c.query(api.runs.getRun, a as never),
    base: (ids) => ({ sandboxRunId: ids.aliceRun }),
    strings: { sandboxRunId: "NOT_FOUND" },
  },
  {
    fn: "listMyRuns",
    call: (c, a) => c.query(api.runs.listMyRuns, a as never),
    base: () => ({ paginationOpts: page5 }),
    strings: {},
    paginated: true,
  },
  {
    fn: "listRunEvents",
    call: (c, a) => c.query(api.runs.listRunEvents, a as never),
    base: (ids) => ({ sandboxRunId: ids.aliceRun, paginationOpts: page5 }),
    strings: { sandboxRunId: "NOT_FOUND" },
    paginated: true,
  },
  {
    fn: "listRunCommands",
    call: (c, a) => c.query(api.runs.listRunCommands, a as never),
    base: (ids) => ({ sandboxRunId: ids.aliceRun, paginationOpts: page5 }),
    strings: { sandboxRunId: "NOT_FOUND" },
    paginated: true,
  },
];

const BAD_STRINGS: [string, (ids: Ctx) => string][] = [
  ["huge string (1 MB)", () => "y".repeat(1_000_000)],
  ["control characters", () => "echo \u0007\u001b[2J"],
  ["RTL override", () => "\u202eexe.txt"],
  ["id of another table", (ids) => ids.commandId],
];
const WRONG_TYPES: [string, unknown][] = [
  ["a number", 42],
  ["null", null],
  ["an object", { $gt: "" }],
  ["NaN", Number.NaN],
];
const NON_FINITE: [string, number][] = [
  ["NaN", Number.NaN],
  ["+Infinity", Number.POSITIVE_INFINITY],
  ["-Infinity", Number.NEGATIVE_INFINITY],
];
const BAD_PAGES: [string, unknown][] = [
  ["numItems 0", { numItems: 0, cursor: null }],
  ["numItems -5", { numItems: -5, cursor: null }],
  ["numItems 10^9", { numItems: 1e9, cursor: null }],
  ["numItems NaN", { numItems: Number.NaN, cursor: null }],
  ["numItems Infinity", { numItems: Number.POSITIVE_INFINITY, cursor: null }],
  ["garbage cursor", { numItems: 5, cursor: "not-a-cursor" }],
  ["huge cursor", { numItems: 5, cursor: "c".repeat(1_000_000) }],
];

type Generated = Case & { kind: "ours" | "validator" };
function generated(): Generated[] {
  const out: Generated[] = [];
  const add = (f: Fn, label: string, spoil: (ids: Ctx) => Args, code: string, kind: Generated["kind"]) =>
    out.push({
      name: `${f.fn}: ${label}`,
      who: "alice",
      call: (c, ids) => f.call(c, { ...f.base(ids), ...spoil(ids) }),
      code,
      kind,
    });
  for (const f of FNS) {
    for (const [field, code] of Object.entries(f.strings)) {
      for (const [label, value] of BAD_STRINGS) {
        // Another table's id is a well-formed string: only an id argument rejects it by kind.
        if (label === "id of another table" && field !== "sandboxRunId") continue;
        add(f, `${field}: ${label}`, (ids) => ({ [field]: value(ids) }), code, "ours");
      }
      for (const [label, value] of WRONG_TYPES) {
        add(f, `${field}: ${label} (validator)`, () => ({ [field]: value }), "", "validator");
      }
    }
    for (const [field, code] of Object.entries(f.numbers ?? {})) {
      for (const [label, value] of NON_FINITE)
        add(f, `${field}: ${label}`, () => ({ [field]: value }), code, "ours");
      add(f, `${field}: a string (validator)`, () => ({ [field]: "1000" }), "", "validator");
    }
    if (f.paginated) {
      for (const [label, value] of BAD_PAGES) {
        add(f, `paginationOpts: ${label}`, () => ({ paginationOpts: value }), "INVALID_ARGUMENT", "ours");
      }
      add(f, "paginationOpts: missing (validator)", () => ({ paginationOpts: undefined }), "", "validator");
      add(
        f,
        "paginationOpts.numItems: a string (validator)",
        () => ({ paginationOpts: { numItems: "5", cursor: null } }),
        "",
        "validator",
      );
    }
    if (Object.keys(f.strings).length === 0 && !f.numbers) {
      add(f, "an unknown argument (validator)", () => ({ ownerId: "bob" }), "", "validator");
    }
  }
  return out;
}

async function snapshot() {
  const tables = await h.t.run(async (ctx) => ({
    sandboxRuns: await ctx.db.query("sandboxRuns").collect(),
    commands: await ctx.db.query("commands").collect(),
    events: await ctx.db.query("runEvents").collect(),
    orphans: await ctx.db.query("orphanSandboxes").collect(),
    throttle: await ctx.db.query("createThrottle").collect(),
  }));
  return { tables: JSON.stringify(tables), calls: h.emu.calls.length, sandboxes: h.emu.all().length };
}

async function fixture(): Promise<Ctx> {
  // Alice has one running run (with one command) and one stopped run; her quota is 2.
  const alice = h.t.withIdentity({ subject: "alice" });
  const { sandboxRunId: aliceRun } = await alice.action(api.actions.startSandboxRun.startSandboxRun, {});
  const { commandId } = await alice.action(api.actions.runCommand.runCommand, {
    sandboxRunId: aliceRun,
    command: "true",
  });
  const { sandboxRunId: stoppedRun } = await alice.action(api.actions.startSandboxRun.startSandboxRun, {});
  await alice.action(api.actions.stopSandboxRun.stopSandboxRun, { sandboxRunId: stoppedRun });
  return { aliceRun, stoppedRun, commandId };
}

describe("every class of bad input at every public function", () => {
  const cases = generated();
  it("covers every public function with every class that applies to it", () => {
    for (const f of FNS)
      expect(cases.filter((c) => c.name.startsWith(`${f.fn}:`)).length, f.fn).toBeGreaterThan(3);
    expect(cases.filter((c) => c.kind === "ours").length).toBeGreaterThan(40);
  });
  // One fixture per function (a start, a command, a stop cost about a second on a busy machine);
  // every case is checked against its own before/after snapshot.
  it.each(FNS.map((f) => [f.fn] as const))(
    "%s: every class, each a coded refusal or a validator rejection, no writes, no E2B calls",
    async (fn) => {
      const ids = await fixture();
      const who = h.t.withIdentity({ subject: "alice" });
      for (const c of cases.filter((x) => x.name.startsWith(`${fn}:`))) {
        const before = await snapshot();
        if (c.kind === "ours") {
          const err = await convexErrorOf(c.call(who, ids));
          expect(err.code, c.name).toBe(c.code);
          expect(err.message.length, c.name).toBeLessThan(300);
          expect(JSON.stringify(err), c.name).not.toMatch(/e2b_test_key|\n\s+at |y{100}|c{100}/);
        } else {
          const err = await rejection(c.call(who, ids));
          expect(String(err), c.name).toMatch(/validat/i);
        }
        expect(await snapshot(), c.name).toEqual(before);
      }
    },
  );
});

describe("bad input at every public function", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const ids = await fixture();
    const { stoppedRun } = ids;
    if (c.name.includes("quota")) {
      // A second live run puts Alice at her limit.
      await h.t.run(async (ctx) => {
        const r = (await ctx.db.get(ctx.db.normalizeId("sandboxRuns", stoppedRun)!))!;
        await ctx.db.patch(r._id, { status: "running", endedAt: undefined, endReason: undefined });
      });
    }
    const who = c.who === "anonymous" ? h.t : h.t.withIdentity({ subject: c.who });
    const before = await snapshot();
    const err = await convexErrorOf(c.call(who, ids));
    expect(err.code).toBe(c.code);
    expect(typeof err.message).toBe("string");
    expect(err.message.length).toBeLessThan(300);
    expect(JSON.stringify(err)).not.toMatch(/e2b_test_key|\n\s+at /);
    expect(await snapshot()).toEqual(before);
  });
});
