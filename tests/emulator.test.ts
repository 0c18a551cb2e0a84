// @vitest-environment node
/**
 * Drives the local E2B control-plane emulator with the REAL `e2b` SDK over loopback HTTP,
 * proving the emulator speaks the protocol the SDK expects (status codes, JSON error bodies,
 * pagination header, metadata filter encoding, TTL semantics, injected faults).
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach } from "vitest";
import {
  Sandbox,
  SandboxNotFoundError,
  RateLimitError,
  ServiceBusyError,
  SandboxError,
  AuthenticationError,
} from "e2b";
import {
  E2BEmulator,
  useEmulatorEnv,
  parseMetadataFilter,
  DEFAULT_TEMPLATES,
  type LifecycleEvent,
} from "./emulator/e2bEmulator";
import { rejection } from "./helpers";

const API_KEY = "e2b_test_key";
let emu: E2BEmulator;
let restoreEnv: () => void;

/** Every item of a list, following X-Next-Token; also returns page sizes. */
async function listAll(opts: Parameters<typeof Sandbox.list>[0]) {
  const p = Sandbox.list(opts);
  const pages: number[] = [];
  const items = [];
  while (p.hasNext) {
    const page = await p.nextItems();
    pages.push(page.length);
    items.push(...page);
  }
  return { items, pages };
}

function raw(path: string, init: RequestInit = {}, key: string | null = API_KEY): Promise<Response> {
  const headers = new Headers(init.headers);
  if (key !== null) headers.set("X-API-KEY", key);
  return fetch(emu.url + path, { ...init, headers });
}

beforeAll(async () => {
  emu = await E2BEmulator.start({ apiKey: API_KEY });
  restoreEnv = useEmulatorEnv(emu, API_KEY);
});

afterAll(async () => {
  restoreEnv?.();
  await emu?.stop();
});

beforeEach(() => {
  emu.reset();
  emu.setClock(Date.now);
});

describe("create / getInfo", () => {
  it("creates with metadata and timeoutMs; the emulator sees whole seconds (ceil) and the metadata", async () => {
    const sbx = await Sandbox.create("base", {
      metadata: { job: "j-1", owner: "alice" },
      envs: { FOO: "bar" },
      timeoutMs: 120_500,
    });
    expect(sbx.sandboxId).toMatch(/^i[a-z0-9]{20}$/);

    const call = emu.calls.find((c) => c.endpoint === "create")!;
    expect(call.method).toBe("POST");
    expect(call.path).toBe("/v2/sandboxes");
    expect(call.status).toBe(201);
    expect(call.body).toMatchObject({
      templateID: "base",
      timeout: 121,
      metadata: { job: "j-1", owner: "alice" },
    });

    const s = emu.get(sbx.sandboxId)!;
    expect(s.metadata).toEqual({ job: "j-1", owner: "alice" });
    expect(s.envVars).toEqual({ FOO: "bar" });
    expect(s.endAt - s.startedAt).toBe(121_000);
    expect(s.state).toBe("running");
    expect(s.alias).toBe("base");
    expect(emu.isAlive(sbx.sandboxId)).toBe(true);

    const info = await Sandbox.getInfo(sbx.sandboxId);
    expect(info.sandboxId).toBe(sbx.sandboxId);
    expect(info.templateId).toBe(s.templateID);
    expect(info.name).toBe("base");
    expect(info.metadata).toEqual({ job: "j-1", owner: "alice" });
    expect(info.state).toBe("running");
    expect(info.endAt.getTime()).toBe(s.endAt);
    expect(info.startedAt.getTime()).toBe(s.startedAt);
  });

  it("defaults the lifetime to 300 s when timeoutMs is absent", async () => {
    const sbx = await Sandbox.create("base");
    const call = emu.calls.find((c) => c.endpoint === "create")!;
    expect((call.body as Record<string, unknown>).timeout).toBeUndefined();
    const s = emu.get(sbx.sandboxId)!;
    expect(s.endAt - s.startedAt).toBe(300_000);
  });

  it("refuses a timeout over the plan cap with 400", async () => {
    const err = await rejection(Sandbox.create("base", { timeoutMs: 3_600_001 }));
    expect(err).toBeInstanceOf(SandboxError);
    expect((err as SandboxError).statusCode).toBe(400);
    expect((err as Error).message).toContain("Timeout cannot be greater than 1 hours");
    expect(emu.alive()).toHaveLength(0);
    // exactly at the cap is fine
    await Sandbox.create("base", { timeoutMs: 3_600_000 });
    expect(emu.alive()).toHaveLength(1);
  });

  it("getInfo and setTimeout on an unknown id throw SandboxNotFoundError", async () => {
    await expect(Sandbox.getInfo("iunknownunknownunkno")).rejects.toBeInstanceOf(SandboxNotFoundError);
    await expect(Sandbox.setTimeout("iunknownunknownunkno", 10_000)).rejects.toBeInstanceOf(
      SandboxNotFoundError,
    );
    await expect(Sandbox.connect("iunknownunknownunkno")).rejects.toBeInstanceOf(SandboxNotFoundError);
  });
});

describe("list", () => {
  it("filters by metadata with special characters in keys and values (ANDed)", async () => {
    const key = "we&ird key=ü";
    const val = "v a=l&ue %20 + ü 🚀";
    const a = await Sandbox.create("base", { metadata: { [key]: val, team: "red" } });
    const b = await Sandbox.create("base", { metadata: { [key]: val, team: "blue" } });
    await Sandbox.create("base", { metadata: { [key]: "other" } });
    await Sandbox.create("base", { metadata: { unrelated: val } });

    const one = await listAll({ query: { metadata: { [key]: val } } });
    expect(one.items.map((s) => s.sandboxId).sort()).toEqual([a.sandboxId, b.sandboxId].sort());
    expect(one.items[0]!.metadata[key]).toBe(val);

    const both = await listAll({ query: { metadata: { [key]: val, team: "blue" } } });
    expect(both.items.map((s) => s.sandboxId)).toEqual([b.sandboxId]);

    const none = await listAll({ query: { metadata: { [key]: val, team: "green" } } });
    expect(none.items).toHaveLength(0);
  });

  it("parses the wire form of the filter like the server does", () => {
    // What the SDK sends, after URL parsing removed the outermost layer.
    const wire = new URLSearchParams({
      [encodeURIComponent("a&b c")]: encodeURIComponent("x=y+z"),
    }).toString();
    expect(parseMetadataFilter(wire)).toEqual({ "a&b c": "x=y+z" });
    expect(() => parseMetadataFilter("")).toThrow();
  });

  it("an empty metadata filter object is a 400, as on the real API (SDK sends metadata=)", async () => {
    const err = await rejection(Sandbox.list({ query: { metadata: {} } }).nextItems());
    expect(err).toBeInstanceOf(SandboxError);
    expect((err as SandboxError).statusCode).toBe(400);
  });

  it("paginates with X-Next-Token, newest first, no duplicates across pages", async () => {
    const t0 = Date.now() - 60_000;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++)
      ids.push(emu.seed({ metadata: { suite: "page" }, startedAt: t0 + i * 1000 }).sandboxID);
    // five more sharing one start time: ties must not duplicate or drop across a page boundary
    for (let i = 0; i < 5; i++)
      ids.push(emu.seed({ metadata: { suite: "page" }, startedAt: t0 - 5000 }).sandboxID);
    emu.seed({ metadata: { suite: "other" } });

    const { items, pages } = await listAll({ limit: 3, query: { metadata: { suite: "page" } } });
    expect(pages).toEqual([3, 3, 3, 3]);
    expect(emu.callCount("list")).toBe(4);
    const got = items.map((s) => s.sandboxId);
    expect(new Set(got).size).toBe(12);
    expect(new Set(got)).toEqual(new Set(ids));
    const starts = items.map((s) => s.startedAt.getTime());
    expect([...starts].sort((x, y) => y - x)).toEqual(starts);
  });

  it("sends X-Next-Token only when more remain, and X-Total-Running", async () => {
    emu.seed({});
    emu.seed({ startedAt: Date.now() - 1000 });
    const first = await raw("/v2/sandboxes?limit=1");
    expect(first.status).toBe(200);
    const token = first.headers.get("x-next-token");
    expect(token).toBeTruthy();
    expect(first.headers.get("x-total-running")).toBe("2");
    expect(await first.json()).toHaveLength(1);
    const second = await raw(`/v2/sandboxes?limit=1&nextToken=${encodeURIComponent(token!)}`);
    expect(await second.json()).toHaveLength(1);
    expect(second.headers.has("x-next-token")).toBe(false);
    const bad = await raw("/v2/sandboxes?nextToken=not-a-token");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ code: 400, message: "Invalid next token" });
  });

  it("filters by state: default running+paused, or either", async () => {
    const r = emu.seed({ state: "running" }).sandboxID;
    const p = emu.seed({ state: "paused" }).sandboxID;
    const all = await listAll({});
    expect(all.items.map((s) => s.sandboxId).sort()).toEqual([r, p].sort());
    const paused = await listAll({ query: { state: ["paused"] } });
    expect(paused.items.map((s) => [s.sandboxId, s.state])).toEqual([[p, "paused"]]);
    const running = await listAll({ query: { state: ["running"] } });
    expect(running.items.map((s) => [s.sandboxId, s.state])).toEqual([[r, "running"]]);
    expect(emu.calls.filter((c) => c.endpoint === "list").map((c) => c.status)).toEqual([200, 200, 200]);
  });
});

describe("kill / setTimeout / expiry / pause / connect", () => {
  it("kill returns true, then false (JSON 404)", async () => {
    const sbx = await Sandbox.create("base");
    expect(await Sandbox.kill(sbx.sandboxId)).toBe(true);
    expect(await Sandbox.kill(sbx.sandboxId)).toBe(false);
    expect(emu.calls.filter((c) => c.endpoint === "kill").map((c) => c.status)).toEqual([204, 404]);
    const s = emu.get(sbx.sandboxId)!;
    expect(s.diedBy).toBe("killed");
    expect(emu.isAlive(sbx.sandboxId)).toBe(false);
    expect(emu.all()).toHaveLength(1);
    await expect(Sandbox.getInfo(sbx.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
  });

  it("setTimeout restarts the TTL from now: shortens, extends, clipped at startedAt + cap", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    emu.setClock(() => now);
    const sbx = await Sandbox.create("base", { timeoutMs: 600_000 });
    now += 10_000;
    await Sandbox.setTimeout(sbx.sandboxId, 60_000);
    expect(emu.get(sbx.sandboxId)!.endAt).toBe(now + 60_000);
    await sbx.setTimeout(1_200_000);
    expect(emu.get(sbx.sandboxId)!.endAt).toBe(now + 1_200_000);
    await Sandbox.setTimeout(sbx.sandboxId, 3_600_000);
    const s = emu.get(sbx.sandboxId)!;
    expect(s.endAt).toBe(s.startedAt + 3_600_000);
    expect(emu.calls.filter((c) => c.endpoint === "setTimeout").map((c) => c.status)).toEqual([
      204, 204, 204,
    ]);
  });

  it("sandboxes expire when the injected clock passes endAt (lazily)", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    emu.setClock(() => now);
    const sbx = await Sandbox.create("base", { timeoutMs: 10_000, metadata: { k: "v" } });
    now += 9_999;
    expect(emu.isAlive(sbx.sandboxId)).toBe(true);
    expect((await listAll({ query: { metadata: { k: "v" } } })).items).toHaveLength(1);
    now += 1;
    expect((await listAll({ query: { metadata: { k: "v" } } })).items).toHaveLength(0);
    await expect(Sandbox.getInfo(sbx.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
    expect(await Sandbox.kill(sbx.sandboxId)).toBe(false);
    const s = emu.get(sbx.sandboxId)!;
    expect(s.diedBy).toBe("expired");
    expect(s.diedAt).toBe(s.endAt);
  });

  it("with lifecycle.onTimeout = pause, expiry pauses instead of killing", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    emu.setClock(() => now);
    const sbx = await Sandbox.create("base", { timeoutMs: 5_000, lifecycle: { onTimeout: "pause" } });
    expect(emu.calls[0]!.body).toMatchObject({ autoPause: true });
    now += 5_000;
    expect(emu.get(sbx.sandboxId)!.state).toBe("paused");
    expect((await Sandbox.getInfo(sbx.sandboxId)).state).toBe("paused");
  });

  it("pause → 204 (true), again → 409 (false); connect resumes with a fresh TTL (201), running → 200", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    emu.setClock(() => now);
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000, metadata: { m: "1" } });
    expect(await Sandbox.pause(sbx.sandboxId)).toBe(true);
    expect(await Sandbox.pause(sbx.sandboxId)).toBe(false);
    expect(emu.calls.filter((c) => c.endpoint === "pause").map((c) => c.status)).toEqual([204, 409]);
    expect((await listAll({ query: { state: ["paused"] } })).items.map((s) => s.sandboxId)).toEqual([
      sbx.sandboxId,
    ]);
    await expect(Sandbox.setTimeout(sbx.sandboxId, 1000)).rejects.toBeInstanceOf(SandboxNotFoundError);

    now += 3_600_000; // paused sandboxes do not expire
    const resumed = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 });
    expect(resumed.sandboxId).toBe(sbx.sandboxId);
    let s = emu.get(sbx.sandboxId)!;
    expect(s.state).toBe("running");
    expect(s.startedAt).toBe(now);
    expect(s.endAt).toBe(now + 120_000);
    expect(s.metadata).toEqual({ m: "1" });

    // already running: TTL only extended (300 s default), never shortened
    await Sandbox.connect(sbx.sandboxId);
    expect(emu.get(sbx.sandboxId)!.endAt).toBe(now + 300_000);
    await Sandbox.connect(sbx.sandboxId, { timeoutMs: 1_000 });
    s = emu.get(sbx.sandboxId)!;
    expect(s.endAt).toBe(now + 300_000);
    expect(emu.calls.filter((c) => c.endpoint === "connect").map((c) => c.status)).toEqual([201, 200, 200]);
  });
});

describe("faults", () => {
  it("500 → SandboxError with statusCode 500", async () => {
    const id = emu.seed({}).sandboxID;
    emu.fault("getInfo", { status: 500, message: "boom" });
    const err = await rejection(Sandbox.getInfo(id));
    expect(err).toBeInstanceOf(SandboxError);
    expect((err as SandboxError).statusCode).toBe(500);
    expect((err as Error).message).toContain("boom");
    // one-shot by default
    expect((await Sandbox.getInfo(id)).sandboxId).toBe(id);
  });

  it("429 without Retry-After → RateLimitError, no retry", async () => {
    emu.fault("create", { status: 429 });
    await expect(Sandbox.create("base")).rejects.toBeInstanceOf(RateLimitError);
    expect(emu.callCount("create")).toBe(1);
    expect(emu.alive()).toHaveLength(0);
  });

  it("429 with Retry-After → the SDK retries (observed in the call count)", async () => {
    emu.fault("create", { status: 429, retryAfterS: 0, times: 2 });
    const sbx = await Sandbox.create("base");
    expect(emu.callCount("create")).toBe(3);
    expect(emu.calls.map((c) => c.status)).toEqual([429, 429, 201]);
    expect(emu.isAlive(sbx.sandboxId)).toBe(true);

    emu.fault("list", { status: 429, retryAfterS: 0, times: Infinity });
    await expect(Sandbox.list().nextItems()).rejects.toBeInstanceOf(RateLimitError);
    expect(emu.callCount("list")).toBe(4); // 1 + the SDK's default 3 retries
    emu.clearFaults();
    await Sandbox.list().nextItems();
  });

  it("503 → ServiceBusyError", async () => {
    emu.fault("kill", { status: 503 });
    const err = await rejection(Sandbox.kill(emu.seed({}).sandboxID));
    expect(err).toBeInstanceOf(ServiceBusyError);
  });

  it("wrong API key → 401 → AuthenticationError; missing key → 401 JSON", async () => {
    await expect(Sandbox.create("base", { apiKey: "e2b_wrong" })).rejects.toBeInstanceOf(AuthenticationError);
    expect(emu.calls[0]!.status).toBe(401);
    expect(emu.alive()).toHaveLength(0);
    const res = await raw("/v2/sandboxes", {}, null);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 401 });
  });

  it("dropResponse on create: the SDK call throws, yet the sandbox exists and list by metadata finds it", async () => {
    emu.fault("create", { dropResponse: true });
    const err = await rejection(Sandbox.create("base", { metadata: { job: "lost-1" } }));
    expect(err).toBeInstanceOf(Error);
    expect(emu.calls[0]!.status).toBe(0);
    const found = await listAll({ query: { metadata: { job: "lost-1" } } });
    expect(found.items).toHaveLength(1);
    expect(emu.isAlive(found.items[0]!.sandboxId)).toBe(true);
  });

  it("dropResponse on kill: the SDK call throws, yet the sandbox is dead", async () => {
    const id = emu.seed({}).sandboxID;
    emu.fault("kill", { dropResponse: true });
    await expect(Sandbox.kill(id)).rejects.toBeInstanceOf(Error);
    expect(emu.get(id)!.diedBy).toBe("killed");
  });

  it("hang on create: the SDK hits requestTimeoutMs, the sandbox exists", async () => {
    emu.fault("create", { hang: true });
    const t = Date.now();
    const err = await rejection(
      Sandbox.create("base", { metadata: { job: "hung-1" }, requestTimeoutMs: 300 }),
    );
    expect(Date.now() - t).toBeLessThan(3000);
    expect((err as Error).name).toBe("TimeoutError");
    const found = await listAll({ query: { metadata: { job: "hung-1" } } });
    expect(found.items).toHaveLength(1);
  });

  it("delayMs delays the answer; latency applies per endpoint", async () => {
    const id = emu.seed({}).sandboxID;
    emu.fault("getInfo", { delayMs: 200 });
    let t = Date.now();
    await Sandbox.getInfo(id);
    expect(Date.now() - t).toBeGreaterThanOrEqual(190);
    emu.setLatency("getInfo", 150);
    t = Date.now();
    await Sandbox.getInfo(id);
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
  });

  it("queued faults apply in order", async () => {
    const id = emu.seed({}).sandboxID;
    emu.fault("getInfo", { status: 500 });
    emu.fault("getInfo", { status: 503 });
    await expect(Sandbox.getInfo(id)).rejects.toBeInstanceOf(SandboxError);
    await expect(Sandbox.getInfo(id)).rejects.toBeInstanceOf(ServiceBusyError);
    await expect(Sandbox.getInfo(id)).resolves.toMatchObject({ sandboxId: id });
  });
});

describe("wire details and load", () => {
  it("answers JSON errors for unknown paths, bad JSON and bad bodies", async () => {
    const unknown = await raw("/nope");
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: 404 });
    expect(emu.calls[0]!.endpoint).toBe("other");

    const badJson = await raw("/v2/sandboxes", {
      method: "POST",
      body: "{not json",
      headers: { "content-type": "application/json" },
    });
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toMatchObject({ code: 400 });

    const noTemplate = await raw("/v2/sandboxes", { method: "POST", body: "{}" });
    expect(noTemplate.status).toBe(400);

    const kill404 = await raw("/sandboxes/iabc", { method: "DELETE" });
    expect(kill404.status).toBe(404);
    expect(await kill404.json()).toMatchObject({ code: 404, message: expect.stringContaining("iabc") });

    const envd = await raw("/health", { headers: { "E2b-Sandbox-Id": "iabc" } });
    expect(envd.status).toBe(502);
    expect(await envd.json()).toEqual({ code: 502, message: "The sandbox was not found" });
  });

  it("routes envd traffic of running sandboxes to envdHandler", async () => {
    const other = await E2BEmulator.start({
      envdHandler: (_req, res) => {
        res.writeHead(204);
        res.end();
      },
    });
    try {
      const id = other.seed({}).sandboxID;
      const ok = await fetch(`${other.url}/health`, { headers: { "E2b-Sandbox-Id": id } });
      expect(ok.status).toBe(204);
      other.killDirect(id);
      const gone = await fetch(`${other.url}/health`, { headers: { "E2b-Sandbox-Id": id } });
      expect(gone.status).toBe(502);
    } finally {
      await other.stop();
    }
  });

  it("serves many concurrent kills with latency", async () => {
    const ids = Array.from({ length: 300 }, () => emu.seed({}).sandboxID);
    emu.setLatency("kill", 200);
    const killing = Promise.all(ids.map((id) => Sandbox.kill(id)));
    // Served concurrently, proven without a clock: many kills are in flight at once.
    await until(() => emu.calls.filter((c) => c.endpoint === "kill" && c.status === 0).length >= 20);
    const results = await killing;
    expect(results.every((r) => r === true)).toBe(true);
    expect(emu.calls.every((c) => c.status === 204)).toBe(true);
    expect(emu.alive()).toHaveLength(0);
    expect(emu.callCount("kill")).toBe(300);
  });

  it("killDirect / expireDirect / seed manipulate state without HTTP", async () => {
    const a = emu.seed({ metadata: { x: "1" } }).sandboxID;
    const b = emu.seed({ metadata: { x: "1" } }).sandboxID;
    emu.killDirect(a);
    emu.expireDirect(b);
    expect(emu.get(a)!.diedBy).toBe("killed");
    expect(emu.get(b)!.diedBy).toBe("expired");
    expect((await listAll({ query: { metadata: { x: "1" } } })).items).toHaveLength(0);
    expect(emu.callCount()).toBe(1);
  });

  it("stop() returns even with a hung request open", async () => {
    const other = await E2BEmulator.start();
    other.fault("list", { hang: true });
    const pending = fetch(`${other.url}/v2/sandboxes`).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    expect(other.callCount("list")).toBe(1);
    await other.stop();
    expect(await pending).toBeInstanceOf(Error);
  });
});

describe("extension points: lifecycle events, mount, meter", () => {
  it("emits created, updated, paused, resumed and killed on the emulator clock; unsubscribe stops them", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    emu.setClock(() => now);
    const events: LifecycleEvent[] = [];
    const off = emu.onLifecycle((e) => events.push(e));
    try {
      const sbx = await Sandbox.create("base", { timeoutMs: 60_000, metadata: { run: "r1" } });
      now += 1_000;
      await Sandbox.setTimeout(sbx.sandboxId, 120_000);
      await Sandbox.connect(sbx.sandboxId, { timeoutMs: 1_000 }); // would shorten: no change, no event
      await Sandbox.connect(sbx.sandboxId, { timeoutMs: 600_000 }); // extends: updated
      now += 1_000;
      await Sandbox.pause(sbx.sandboxId);
      now += 1_000;
      await Sandbox.connect(sbx.sandboxId, { timeoutMs: 10_000 });
      now += 1_000;
      await Sandbox.kill(sbx.sandboxId);
      const t0 = Date.parse("2030-01-01T00:00:00Z");
      expect(events.map((e) => [e.type, e.at, e.killReason])).toEqual([
        ["created", t0, undefined],
        ["updated", t0 + 1_000, undefined],
        ["updated", t0 + 1_000, undefined],
        ["paused", t0 + 2_000, undefined],
        ["resumed", t0 + 3_000, undefined],
        ["killed", t0 + 4_000, "request"],
      ]);
      expect(events[0]).toMatchObject({
        sandboxId: sbx.sandboxId,
        templateId: emu.get(sbx.sandboxId)!.templateID,
        metadata: { run: "r1" },
      });

      // expiry is lazy, but its event carries the time it happened (endAt)
      events.length = 0;
      const short = await Sandbox.create("base", { timeoutMs: 5_000 });
      now += 60_000;
      emu.tick();
      expect(events.map((e) => [e.type, e.at, e.killReason])).toEqual([
        ["created", now - 60_000, undefined],
        ["killed", now - 55_000, "timeout"],
      ]);
      expect(events[1]!.sandboxId).toBe(short.sandboxId);
    } finally {
      off();
    }
    await Sandbox.create("base");
    expect(events).toHaveLength(2);
  });

  it("tickEveryMs: expiry runs on its own, so its `killed` event comes without any request", async () => {
    const other = await E2BEmulator.start({ tickEveryMs: 10 });
    try {
      const events: LifecycleEvent[] = [];
      other.onLifecycle((e) => events.push(e));
      const id = other.seed({ timeoutMs: 50 }).sandboxID;
      await until(() => events.some((e) => e.type === "killed"));
      expect(events.map((e) => [e.type, e.sandboxId, e.killReason])).toEqual([
        ["created", id, undefined],
        ["killed", id, "timeout"],
      ]);
    } finally {
      await other.stop();
    }
  });

  it("mount(): a prefix is served by its handler after the API-key check", async () => {
    const seen: Array<{ method: string; url: string; body: string }> = [];
    emu.mount("/events/webhooks", (req, res, body) => {
      seen.push({ method: req.method!, url: req.url!, body: body.toString("utf8") });
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: "wh1" }));
    });
    const ok = await raw("/events/webhooks", { method: "POST", body: '{"name":"x"}' });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toEqual({ id: "wh1" });
    expect(seen).toEqual([{ method: "POST", url: "/events/webhooks", body: '{"name":"x"}' }]);
    const sub = await raw("/events/webhooks/wh1", { method: "DELETE" });
    expect(sub.status).toBe(201);
    const noKey = await raw("/events/webhooks", { method: "POST", body: "{}" }, null);
    expect(noKey.status).toBe(401);
    expect(seen).toHaveLength(2);
    expect(emu.calls.map((c) => [c.endpoint, c.status])).toEqual([
      ["other", 201],
      ["other", 201],
      ["other", 401],
    ]);
  });

  it("meters running and paused time per sandbox on the emulator clock, and stops once dead", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    emu.setClock(() => now);
    const sbx = await Sandbox.create("base", { timeoutMs: 600_000 });
    now += 10_000;
    expect(emu.get(sbx.sandboxId)).toMatchObject({ runningMs: 10_000, pausedMs: 0 });
    await Sandbox.pause(sbx.sandboxId);
    now += 20_000;
    expect(emu.alive()[0]).toMatchObject({ runningMs: 10_000, pausedMs: 20_000 });
    await Sandbox.connect(sbx.sandboxId, { timeoutMs: 5_000 });
    now += 60_000; // runs 5 s; its timeout kills the VM, the snapshot row stays: paused again
    expect(emu.alive()[0]).toMatchObject({ state: "paused", runningMs: 15_000, pausedMs: 75_000 });
    await Sandbox.kill(sbx.sandboxId);
    expect(emu.all()[0]).toMatchObject({ runningMs: 15_000, pausedMs: 75_000, diedBy: "killed" });
    now += 60_000;
    expect(emu.get(sbx.sandboxId)).toMatchObject({ runningMs: 15_000, pausedMs: 75_000 });
  });
});

describe("fault kinds for the guarantee", () => {
  it("ignoreMetadataKeys: list applies only part of the metadata filter", async () => {
    const a = emu.seed({ metadata: { ns: "x", run: "a" } }).sandboxID;
    const b = emu.seed({ metadata: { ns: "x", run: "b" } }).sandboxID;
    emu.seed({ metadata: { ns: "y", run: "a" } });
    emu.fault("list", { ignoreMetadataKeys: ["run"] });
    const loose = await listAll({ query: { metadata: { ns: "x", run: "a" } } });
    expect(loose.items.map((s) => s.sandboxId).sort()).toEqual([a, b].sort());
    const strict = await listAll({ query: { metadata: { ns: "x", run: "a" } } });
    expect(strict.items.map((s) => s.sandboxId)).toEqual([a]);
  });

  it("fakeSuccess: kill answers 204 (true) and the sandbox lives on", async () => {
    const id = emu.seed({ metadata: { k: "v" } }).sandboxID;
    emu.fault("kill", { fakeSuccess: true });
    expect(await Sandbox.kill(id)).toBe(true);
    expect(emu.calls[0]!.status).toBe(204);
    expect(emu.isAlive(id)).toBe(true);
    expect((await Sandbox.getInfo(id)).state).toBe("running");
    expect(await Sandbox.kill(id)).toBe(true);
    expect(emu.isAlive(id)).toBe(false);
  });

  it("applied kill 500: E2B dropped the entry (retry 404, unlisted) while the VM bills until the orphan reaper (~80 s)", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    emu.setClock(() => now);
    const events: LifecycleEvent[] = [];
    const off = emu.onLifecycle((e) => events.push(e));
    try {
      const sbx = await Sandbox.create("base", { metadata: { k: "v" } });
      emu.fault("kill", { status: 500, applied: true });
      const err = await rejection(Sandbox.kill(sbx.sandboxId));
      expect((err as SandboxError).statusCode).toBe(500);
      expect(await Sandbox.kill(sbx.sandboxId)).toBe(false); // 404: "gone" per the control plane
      await expect(Sandbox.getInfo(sbx.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
      expect((await listAll({ query: { metadata: { k: "v" } } })).items).toHaveLength(0);
      expect(emu.alive()).toHaveLength(0);
      now += 79_999;
      expect(emu.orphanedVms()).toMatchObject([
        { sandboxID: sbx.sandboxId, orphaned: true, runningMs: 79_999 },
      ]);
      expect(emu.get(sbx.sandboxId)!.diedAt).toBeUndefined(); // still billing
      now += 1;
      expect(emu.orphanedVms()).toHaveLength(0);
      expect(emu.get(sbx.sandboxId)).toMatchObject({ diedBy: "reaped", diedAt: now, runningMs: 80_000 });
      expect(events.map((e) => [e.type, e.killReason])).toEqual([
        ["created", undefined],
        ["killed", "orphaned"],
      ]);
    } finally {
      off();
    }
  });

  it("applied pause 500: the pause answered 500, the sandbox is 404 and its VM an orphan", async () => {
    const sbx = await Sandbox.create("base");
    emu.fault("pause", { applied: true }); // status defaults to 500
    const err = await rejection(Sandbox.pause(sbx.sandboxId));
    expect((err as SandboxError).statusCode).toBe(500);
    await expect(Sandbox.getInfo(sbx.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
    expect(emu.orphanedVms().map((s) => s.sandboxID)).toEqual([sbx.sandboxId]);
  });

  it("landAfterMs + dropResponse: invisible reservation (list omits, 404s, kill changes nothing), then it lands", async () => {
    const t0 = Date.parse("2030-01-01T00:00:00Z");
    let now = t0;
    emu.setClock(() => now);
    emu.fault("create", { landAfterMs: 70_000, dropResponse: true });
    await expect(Sandbox.create("base", { metadata: { job: "late" }, timeoutMs: 60_000 })).rejects.toThrow();
    const [pending] = emu.pendingCreates();
    const id = pending!.sandboxID;
    now += 30_000;
    expect((await listAll({ query: { metadata: { job: "late" } } })).items).toHaveLength(0);
    await expect(Sandbox.getInfo(id)).rejects.toBeInstanceOf(SandboxNotFoundError);
    expect(await Sandbox.kill(id)).toBe(false);
    await expect(Sandbox.setTimeout(id, 1_000)).rejects.toBeInstanceOf(SandboxNotFoundError);
    await expect(Sandbox.connect(id)).rejects.toBeInstanceOf(SandboxNotFoundError);
    expect(await Sandbox.pause(id).catch((e: unknown) => e)).toBeInstanceOf(SandboxNotFoundError);
    expect(emu.alive()).toHaveLength(0);
    now = t0 + 70_000;
    const found = await listAll({ query: { metadata: { job: "late" } } });
    expect(found.items.map((s) => [s.sandboxId, s.startedAt.getTime(), s.endAt.getTime()])).toEqual([
      [id, t0 + 70_000, t0 + 130_000],
    ]);
    expect(emu.get(id)!.runningMs).toBe(0);
  });

  it("landAfterMs + status: the client sees the error, the sandbox still lands; alone, the 201 waits for the landing", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    emu.setClock(() => now);
    emu.fault("create", { landAfterMs: 5_000, status: 500 });
    const err = await rejection(Sandbox.create("base", { metadata: { job: "a" } }));
    expect((err as SandboxError).statusCode).toBe(500);
    expect(emu.alive()).toHaveLength(0);
    now += 5_000;
    expect(emu.alive().map((s) => s.metadata.job)).toEqual(["a"]);

    emu.fault("create", { landAfterMs: 5_000 });
    let settled = false;
    const creating = Sandbox.create("base", { metadata: { job: "b" } }).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false);
    now += 5_000;
    const sbx = await creating;
    expect(emu.get(sbx.sandboxId)!.startedAt).toBe(now);
  });
});

describe("strict as E2B: what its validator and handlers refuse", () => {
  const VALIDATION = "validation error: error in openapi3filter.RequestError: ";

  it("list limit outside 1..100 → 400 (spec paginationLimit), never clipped", async () => {
    emu.seed({});
    for (const limit of [101, 1000, 0]) {
      const err = await rejection(Sandbox.list({ limit }).nextItems());
      expect((err as SandboxError).statusCode).toBe(400);
    }
    const res = await raw("/v2/sandboxes?limit=101");
    expect(await res.json()).toEqual({
      code: 400,
      message: `${VALIDATION}parameter "limit" in query has an error: number must be at most 100`,
    });
    expect((await raw("/v2/sandboxes?limit=x")).status).toBe(400);
    expect(await Sandbox.list({ limit: 100 }).nextItems()).toHaveLength(1);
  });

  it("unknown state values → 400 (enum running, paused)", async () => {
    const res = await raw("/v2/sandboxes?state=running,killed");
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain('parameter "state" in query');
  });

  it("create/connect timeout < 1 s → 400 (v2 schema minimum), above the plan cap → 400 with E2B's message", async () => {
    const zero = await rejection(Sandbox.create("base", { timeoutMs: 0 }));
    expect((zero as SandboxError).statusCode).toBe(400);
    expect((zero as Error).message).toContain('Error at "/timeout": number must be at least 1');
    const neg = await raw("/v2/sandboxes", { method: "POST", body: '{"templateID":"base","timeout":-5}' });
    expect(neg.status).toBe(400);
    expect(emu.alive()).toHaveLength(0);

    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const endAt = emu.get(sbx.sandboxId)!.endAt;
    const c0 = await raw(`/v2/sandboxes/${sbx.sandboxId}/connect`, { method: "POST", body: '{"timeout":0}' });
    expect(c0.status).toBe(400);
    const cap = await rejection(Sandbox.connect(sbx.sandboxId, { timeoutMs: 3_600_001 }));
    expect((cap as SandboxError).statusCode).toBe(400);
    expect((cap as Error).message).toContain("Timeout cannot be greater than 1 hours");
    expect(emu.get(sbx.sandboxId)).toMatchObject({ state: "running", endAt });
  });

  it("negative or missing setTimeout → 400 and the sandbox is left as it was (schema minimum 0)", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const before = emu.get(sbx.sandboxId)!;
    const neg = await raw(`/sandboxes/${sbx.sandboxId}/timeout`, { method: "POST", body: '{"timeout":-1}' });
    expect(neg.status).toBe(400);
    expect(((await neg.json()) as { message: string }).message).toContain("number must be at least 0");
    const missing = await raw(`/sandboxes/${sbx.sandboxId}/timeout`, { method: "POST", body: "{}" });
    expect(missing.status).toBe(400);
    expect(emu.get(sbx.sandboxId)).toMatchObject({ state: "running", endAt: before.endAt });
    expect(emu.isAlive(sbx.sandboxId)).toBe(true);
    // 0 is valid: expire now (allowShorter)
    await Sandbox.setTimeout(sbx.sandboxId, 0);
    expect(emu.isAlive(sbx.sandboxId)).toBe(false);
  });

  it("malformed metadata or envVars → 400, nothing created", async () => {
    const post = (body: unknown) => raw("/v2/sandboxes", { method: "POST", body: JSON.stringify(body) });
    for (const body of [
      { templateID: "base", metadata: { n: 1 } },
      { templateID: "base", metadata: ["a"] },
      { templateID: "base", metadata: null },
      { templateID: "base", envVars: { A: true } },
      { templateID: 7 },
    ]) {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toMatch(/^validation error: /);
    }
    expect(emu.alive()).toHaveLength(0);
    const err = await rejection(Sandbox.list({ query: { metadata: {} } }).nextItems());
    expect((err as SandboxError).statusCode).toBe(400);
  });

  it("sandbox ids E2B rejects → 400 Invalid sandbox ID on every endpoint (not a false 404); <id>-<clientID> is accepted", async () => {
    const id = emu.seed({}).sandboxID;
    for (const bad of ["sbx_123", "I-UPPER", "a-b-c", "dots.x"]) {
      const kill = await raw(`/sandboxes/${bad}`, { method: "DELETE" });
      expect(kill.status).toBe(400);
      expect(await kill.json()).toEqual({ code: 400, message: "Invalid sandbox ID" });
    }
    const err = await rejection(Sandbox.getInfo("sbx_123"));
    expect(err).not.toBeInstanceOf(SandboxNotFoundError);
    expect((err as SandboxError).statusCode).toBe(400);
    expect((await rejection(Sandbox.kill("sbx_123"))) as SandboxError).toMatchObject({ statusCode: 400 });
    expect(((await rejection(Sandbox.setTimeout("a-b-c", 1000))) as SandboxError).statusCode).toBe(400);
    expect((await Sandbox.getInfo(`${id}-6532622b`)).sandboxId).toBe(id);
  });

  it("unknown template → 404 `template '<x>' not found`; an alias or its ID works; bad reference → 400", async () => {
    const err = await rejection(Sandbox.create("nope"));
    expect(err).not.toBeInstanceOf(SandboxNotFoundError);
    expect(emu.calls[0]).toMatchObject({ status: 404 });
    const res = await raw("/v2/sandboxes", { method: "POST", body: '{"templateID":"nope"}' });
    expect(await res.json()).toEqual({ code: 404, message: "template 'nope' not found" });
    const tag = await raw("/v2/sandboxes", { method: "POST", body: '{"templateID":"base:v9"}' });
    expect(await tag.json()).toEqual({ code: 404, message: "tag 'v9' does not exist for template 'base'" });
    expect((await raw("/v2/sandboxes", { method: "POST", body: '{"templateID":"a b"}' })).status).toBe(400);
    const py = await Sandbox.create("python");
    expect(emu.get(py.sandboxId)).toMatchObject({ alias: "python", templateID: DEFAULT_TEMPLATES.python });
    const byId = await Sandbox.create(DEFAULT_TEMPLATES.base!);
    expect(emu.get(byId.sandboxId)).toMatchObject({ alias: "base" });
    expect(emu.alive()).toHaveLength(2);
  });

  it("create faults carry E2B's placement error_code; a concurrency 429 has no Retry-After", async () => {
    emu.fault("create", { status: 503 });
    const res = await raw("/v2/sandboxes", { method: "POST", body: '{"templateID":"base"}' });
    expect(await res.json()).toMatchObject({ code: 503, error_code: "sandbox_capacity_unavailable" });
    const other = await E2BEmulator.start({ apiKey: API_KEY, maxConcurrentSandboxes: 1 });
    try {
      const post = () =>
        fetch(`${other.url}/v2/sandboxes`, {
          method: "POST",
          headers: { "X-API-KEY": API_KEY },
          body: '{"templateID":"base"}',
        });
      expect((await post()).status).toBe(201);
      const full = await post();
      expect(full.status).toBe(429);
      expect(full.headers.has("retry-after")).toBe(false);
      expect(((await full.json()) as { message: string }).message).toContain(
        "maximum number of concurrent E2B sandboxes (1)",
      );
    } finally {
      await other.stop();
    }
  });
});

/** Polls (real time) until `cond` holds. */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("E2B's states: reservations, snapshots, transitions and races (e2b-semantics.md)", () => {
  it("a create in flight is only a reservation: invisible, 404 everywhere, a kill changes nothing; it lands with a fresh startedAt, even if the client left (store.go Reserve)", async () => {
    emu.fault("create", { delayMs: 400 });
    const t0 = Date.now();
    const lost = rejection(Sandbox.create("base", { metadata: { job: "held" }, requestTimeoutMs: 150 }));
    await until(() => emu.pendingCreates().length === 1);
    const id = emu.pendingCreates()[0]!.sandboxID;
    expect((await listAll({ query: { metadata: { job: "held" } } })).items).toHaveLength(0);
    await expect(Sandbox.getInfo(id)).rejects.toBeInstanceOf(SandboxNotFoundError);
    expect(await Sandbox.kill(id)).toBe(false);
    expect(await Sandbox.pause(id).catch((e: unknown) => e)).toBeInstanceOf(SandboxNotFoundError);
    expect(((await lost) as Error).name).toBe("TimeoutError"); // the client gave up
    await until(() => emu.isAlive(id));
    expect(emu.get(id)!.startedAt).toBeGreaterThanOrEqual(t0 + 400);
    expect((await listAll({ query: { metadata: { job: "held" } } })).items.map((s) => s.sandboxId)).toEqual([
      id,
    ]);
  });

  it("a create held past the API's 70 s deadline answers 504 sandbox_placement_timeout and leaves nothing (main.go requestTimeout)", async () => {
    const other = await E2BEmulator.start({ apiKey: API_KEY, createDeadlineMs: 100 });
    try {
      other.fault("create", { delayMs: 250 });
      const res = await fetch(`${other.url}/v2/sandboxes`, {
        method: "POST",
        headers: { "X-API-KEY": API_KEY },
        body: '{"templateID":"base"}',
      });
      expect(res.status).toBe(504);
      expect(await res.json()).toMatchObject({ code: 504, error_code: "sandbox_placement_timeout" });
      expect(other.alive()).toHaveLength(0);
      expect(other.pendingCreates()).toHaveLength(0);
    } finally {
      await other.stop();
    }
  });

  it("only DELETE removes a snapshot: paused → resumed → timed out comes back `paused` (stale), connect resumes it, kill ends it (H/sandbox_kill.go)", async () => {
    const t0 = Date.parse("2030-01-01T00:00:00Z");
    let now = t0;
    emu.setClock(() => now);
    const sbx = await Sandbox.create("base", { timeoutMs: 600_000, metadata: { run: "s1" } });
    now += 1_000;
    await Sandbox.pause(sbx.sandboxId);
    now += 1_000;
    await Sandbox.connect(sbx.sandboxId, { timeoutMs: 10_000 });
    now += 60_000; // its timeout ended the resumed VM
    const info = await Sandbox.getInfo(sbx.sandboxId);
    expect(info.state).toBe("paused");
    expect(info.endAt.getTime()).toBe(t0 + 1_000); // the last pause
    expect(info.startedAt.getTime()).toBe(t0);
    const listed = await listAll({ query: { metadata: { run: "s1" }, state: ["paused"] } });
    expect(listed.items.map((s) => s.sandboxId)).toEqual([sbx.sandboxId]);
    await expect(Sandbox.setTimeout(sbx.sandboxId, 1_000)).rejects.toBeInstanceOf(SandboxNotFoundError);
    await Sandbox.connect(sbx.sandboxId, { timeoutMs: 10_000 }); // resumes the stale snapshot
    expect(emu.get(sbx.sandboxId)).toMatchObject({ state: "running", startedAt: now });
    expect(emu.calls.filter((c) => c.endpoint === "connect").map((c) => c.status)).toEqual([201, 201]);
    expect(await Sandbox.kill(sbx.sandboxId)).toBe(true);
    now += 60_000;
    await expect(Sandbox.getInfo(sbx.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
    expect(emu.alive()).toHaveLength(0);
  });

  it("killing: get 404, list omits, connect and timeout 409 `is being killed`, pause 404, a second kill joins (O/delete_instance.go, U/messages.go)", async () => {
    const id = emu.seed({ metadata: { k: "kill" } }).sandboxID;
    emu.fault("kill", { delayMs: 400 });
    const first = Sandbox.kill(id);
    await until(() => emu.get(id)?.phase === "killing");
    await expect(Sandbox.getInfo(id)).rejects.toBeInstanceOf(SandboxNotFoundError);
    expect((await listAll({ query: { metadata: { k: "kill" } } })).items).toHaveLength(0);
    const c = await rejection(Sandbox.connect(id));
    expect((c as SandboxError).statusCode).toBe(409);
    expect((c as Error).message).toContain(`Sandbox "${id}" is being killed`);
    expect(((await rejection(Sandbox.setTimeout(id, 1000))) as SandboxError).statusCode).toBe(409);
    expect(await Sandbox.pause(id).catch((e: unknown) => e)).toBeInstanceOf(SandboxNotFoundError);
    expect(await Sandbox.kill(id)).toBe(true); // joined the kill in flight
    expect(await first).toBe(true);
    expect(emu.get(id)!.diedBy).toBe("killed");
  });

  it("pausing: get and list say paused, timeout 409 `is being paused`, a second pause joins, connect waits then resumes (201) (R/state_change.go)", async () => {
    const id = emu.seed({ metadata: { k: "pause" } }).sandboxID;
    emu.fault("pause", { delayMs: 400 });
    const first = Sandbox.pause(id);
    await until(() => emu.get(id)?.phase === "pausing");
    expect((await Sandbox.getInfo(id)).state).toBe("paused");
    const listed = await listAll({ query: { metadata: { k: "pause" } } });
    expect(listed.items.map((s) => s.state)).toEqual(["paused"]);
    const t = await rejection(Sandbox.setTimeout(id, 1000));
    expect((t as Error).message).toContain(`Sandbox "${id}" is being paused`);
    const second = Sandbox.pause(id);
    const resumed = Sandbox.connect(id, { timeoutMs: 60_000 });
    expect(await first).toBe(true);
    expect(await second).toBe(true);
    await resumed;
    expect(emu.calls.filter((c) => c.endpoint === "pause").map((c) => c.status)).toEqual([204, 204]);
    expect(emu.calls.filter((c) => c.endpoint === "connect").map((c) => c.status)).toEqual([201]);
    expect(emu.get(id)!.state).toBe("running");
  });

  it("a sandbox killed outside (killDirect) under a pause in flight stays dead", async () => {
    const id = emu.seed({}).sandboxID;
    emu.fault("pause", { delayMs: 200 });
    const pausing = Sandbox.pause(id);
    await until(() => emu.get(id)?.phase === "pausing");
    emu.killDirect(id);
    await pausing;
    expect(emu.isAlive(id)).toBe(false);
    expect(emu.get(id)).toMatchObject({ diedBy: "killed", hasSnapshot: false, pausedMs: 0 });
  });

  it("a kill while pausing waits for the pause, then deletes the new snapshot (204)", async () => {
    const id = emu.seed({}).sandboxID;
    emu.setLatency("pause", 0);
    const other = await E2BEmulator.start({ apiKey: API_KEY, transitionMs: { pause: 300 } });
    try {
      const s = other.seed({}).sandboxID;
      const post = (path: string, method = "POST") =>
        fetch(`${other.url}${path}`, { method, headers: { "X-API-KEY": API_KEY } });
      const pausing = post(`/sandboxes/${s}/pause`);
      await until(() => other.get(s)?.phase === "pausing");
      const kill = await post(`/sandboxes/${s}`, "DELETE");
      expect(kill.status).toBe(204);
      expect((await pausing).status).toBe(204);
      expect(other.get(s)).toMatchObject({ diedBy: "killed", hasSnapshot: false });
    } finally {
      await other.stop();
    }
    expect(emu.isAlive(id)).toBe(true);
  });

  it("a 500 kill or pause either left the sandbox as it was, or (applied) dropped it — back to its previous snapshot if it had one", async () => {
    const a = emu.seed({}).sandboxID;
    emu.fault("kill", { status: 500 });
    expect(((await rejection(Sandbox.kill(a))) as SandboxError).statusCode).toBe(500);
    expect((await Sandbox.getInfo(a)).state).toBe("running");

    const b = await Sandbox.create("base");
    await Sandbox.pause(b.sandboxId);
    await Sandbox.connect(b.sandboxId);
    emu.fault("pause", { applied: true });
    expect(((await rejection(Sandbox.pause(b.sandboxId))) as SandboxError).statusCode).toBe(500);
    expect((await Sandbox.getInfo(b.sandboxId)).state).toBe("paused"); // the previous snapshot
    expect(emu.orphanedVms().map((s) => s.sandboxID)).toEqual([b.sandboxId]); // still billing
  });

  it("kill vs an in-flight resume: by default the kill waits and kills the resumed sandbox; under raceResume it answers 204 and the resume publishes it running (infra #3636)", async () => {
    for (const race of [false, true]) {
      const id = emu.seed({ state: "paused" }).sandboxID;
      emu.fault("connect", { delayMs: 300 });
      const resuming = Sandbox.connect(id, { timeoutMs: 60_000 });
      await until(() => emu.get(id)?.phase === "resuming");
      expect((await Sandbox.getInfo(id)).state).toBe("paused"); // still its snapshot
      if (race) emu.fault("kill", { raceResume: true });
      const t = Date.now();
      expect(await Sandbox.kill(id)).toBe(true);
      if (race) expect(emu.get(id)!.phase).toBe("resuming"); // answered before the resume ended
      await resuming;
      expect(Date.now() - t).toBeGreaterThanOrEqual(0);
      expect(emu.isAlive(id)).toBe(race);
      if (race) expect(emu.get(id)).toMatchObject({ state: "running", hasSnapshot: false });
    }
  });

  it("concurrency counts running, transitional, pending creates and resumes, not paused; a resume can get the 429 without Retry-After (O/create_instance.go)", async () => {
    const other = await E2BEmulator.start({ apiKey: API_KEY, maxConcurrentSandboxes: 2 });
    const restore = useEmulatorEnv(other, API_KEY);
    try {
      const paused = other.seed({ state: "paused" }).sandboxID;
      other.seed({});
      other.fault("create", { delayMs: 300 });
      const held = Sandbox.create("base"); // a pending create counts
      await until(() => other.pendingCreates().length === 1);
      expect(await rejection(Sandbox.create("base"))).toBeInstanceOf(RateLimitError);
      await held;
      const err = await rejection(Sandbox.connect(paused));
      expect(err).toBeInstanceOf(RateLimitError);
      expect(other.callCount("connect")).toBe(1); // no Retry-After: the SDK does not retry
      expect(other.get(paused)!.state).toBe("paused");
    } finally {
      restore();
      useEmulatorEnv(emu, API_KEY);
      await other.stop();
    }
  });

  it("list ties: desc = startedAt DESC, id ASC; asc = startedAt ASC, id DESC; pages follow the same order (U/sandboxes_list.go)", async () => {
    const t = Date.now() - 10_000;
    const ids = [0, 1, 2].map(() => emu.seed({ startedAt: t }).sandboxID);
    const older = emu.seed({ startedAt: t - 1000 }).sandboxID;
    const sorted = [...ids].sort();
    const desc = await listAll({ limit: 1 });
    expect(desc.items.map((s) => s.sandboxId)).toEqual([...sorted, older]);
    const asc: string[] = [];
    let token: string | null = null;
    do {
      const res: Response = await raw(
        `/v2/sandboxes?order=asc&limit=1${token ? `&nextToken=${encodeURIComponent(token)}` : ""}`,
      );
      asc.push(...((await res.json()) as Array<{ sandboxID: string }>).map((s) => s.sandboxID));
      token = res.headers.get("x-next-token");
    } while (token);
    expect(asc).toEqual([older, ...[...sorted].reverse()]);
  });

  it("pause 404 when missing or being created; kill of a paused sandbox deletes it (204, then 404), list forgets it (H/sandbox_pause.go, H/sandbox_kill.go)", async () => {
    expect(await Sandbox.pause("imissingmissingmissin").catch((e: unknown) => e)).toBeInstanceOf(
      SandboxNotFoundError,
    );
    const id = emu.seed({ state: "paused", metadata: { k: "p" } }).sandboxID;
    expect((await listAll({ query: { metadata: { k: "p" }, state: ["paused"] } })).items).toHaveLength(1);
    expect(await Sandbox.kill(id)).toBe(true);
    expect(await Sandbox.kill(id)).toBe(false);
    expect((await listAll({ query: { metadata: { k: "p" } } })).items).toHaveLength(0);
    await expect(Sandbox.connect(id)).rejects.toBeInstanceOf(SandboxNotFoundError);
    expect(emu.get(id)).toMatchObject({ diedBy: "killed", hasSnapshot: false });
  });

  it("autoResume is recorded and reported in lifecycle", async () => {
    const sbx = await Sandbox.create("base", { lifecycle: { onTimeout: "pause", autoResume: true } });
    expect(emu.calls[0]!.body).toMatchObject({ autoPause: true, autoResume: { enabled: true } });
    const info = await raw(`/sandboxes/${sbx.sandboxId}`);
    expect(await info.json()).toMatchObject({ lifecycle: { autoResume: true, onTimeout: "pause" } });
    expect(emu.get(sbx.sandboxId)!.autoResume).toBe(true);
  });
});
