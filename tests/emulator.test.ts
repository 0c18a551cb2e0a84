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
    emu.setLatency("kill", 50);
    const t = Date.now();
    const results = await Promise.all(ids.map((id) => Sandbox.kill(id)));
    expect(results.every((r) => r === true)).toBe(true);
    expect(Date.now() - t).toBeLessThan(3000);
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
    now += 60_000; // runs 5 s, then its timeout kills it
    expect(emu.all()[0]).toMatchObject({ runningMs: 15_000, pausedMs: 20_000, diedBy: "expired" });
    now += 60_000;
    expect(emu.get(sbx.sandboxId)).toMatchObject({ runningMs: 15_000, pausedMs: 20_000 });
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
